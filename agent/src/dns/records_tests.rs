use std::net::Ipv4Addr;

use hickory_proto::rr::{RData, RecordType};
use serde_json::json;

use super::*;
use crate::spec::{endpoint_slice_from_api, service_from_api};

fn service(v: serde_json::Value) -> Service {
    service_from_api(v).expect("service")
}

fn zone() -> Zone {
    let services = vec![
        service(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}})),
        service(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "db", "namespace": "prod"},
            "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}})),
        service(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "empty", "namespace": "prod"},
            "spec": {"clusterIP": "None"}})),
        service(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "ext", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "example.org"}})),
    ];
    let slices = vec![endpoint_slice_from_api(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "db-x", "namespace": "prod",
            "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["10.244.1.5"], "hostname": "db-0", "conditions": {"ready": true}},
            {"addresses": ["10.244.2.7"], "conditions": {"ready": true}},
            {"addresses": ["10.244.2.9"], "conditions": {"ready": false}}
        ]
    }))
    .expect("slice")];
    Zone::build("cluster.local", &services, &slices)
}

fn a_records(z: &Zone, q: &str) -> Vec<Ipv4Addr> {
    match z.lookup(q, RecordType::A) {
        Answer::Records(r) => r
            .iter()
            .filter_map(|r| match r.data() {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect(),
        other => panic!("{q}: {other:?}"),
    }
}

#[test]
fn a_cluster_ip_service_answers_its_cluster_ip_in_any_case() {
    let z = zone();
    assert_eq!(
        a_records(&z, "web.default.svc.cluster.local."),
        ["10.96.0.20".parse::<Ipv4Addr>().unwrap()]
    );
    assert_eq!(
        a_records(&z, "WEB.Default.svc.cluster.local"),
        ["10.96.0.20".parse::<Ipv4Addr>().unwrap()]
    );
    // The name exists: AAAA is NODATA (a stub resolver asking both must not see NXDOMAIN).
    assert_eq!(
        z.lookup("web.default.svc.cluster.local", RecordType::AAAA),
        Answer::NoData
    );
}

#[test]
fn a_headless_service_answers_every_ready_endpoint_and_each_by_hostname() {
    let z = zone();
    let mut ips = a_records(&z, "db.prod.svc.cluster.local");
    ips.sort();
    assert_eq!(
        ips,
        [
            "10.244.1.5".parse::<Ipv4Addr>().unwrap(),
            "10.244.2.7".parse().unwrap()
        ]
    );
    assert_eq!(
        a_records(&z, "db-0.db.prod.svc.cluster.local"),
        ["10.244.1.5".parse::<Ipv4Addr>().unwrap()]
    );
    assert_eq!(
        a_records(&z, "10-244-2-7.db.prod.svc.cluster.local"),
        ["10.244.2.7".parse::<Ipv4Addr>().unwrap()]
    );
    assert_eq!(
        z.lookup("10-244-2-9.db.prod.svc.cluster.local", RecordType::A),
        Answer::NxDomain
    );
    assert_eq!(
        z.lookup("empty.prod.svc.cluster.local", RecordType::A),
        Answer::NoData
    );
}

#[test]
fn srv_records_name_the_port_and_target() {
    let z = zone();
    let Answer::Records(r) = z.lookup("_http._tcp.web.default.svc.cluster.local", RecordType::SRV)
    else {
        panic!("no SRV")
    };
    let RData::SRV(srv) = r[0].data() else {
        panic!("{r:?}")
    };
    assert_eq!(srv.port(), 80);
    assert_eq!(srv.target().to_string(), "web.default.svc.cluster.local.");
    let Answer::Records(r) = z.lookup("_pg._tcp.db.prod.svc.cluster.local", RecordType::SRV) else {
        panic!("no SRV")
    };
    let mut targets: Vec<String> = r
        .iter()
        .filter_map(|r| match r.data() {
            RData::SRV(s) => Some(format!("{}:{}", s.target(), s.port())),
            _ => None,
        })
        .collect();
    targets.sort();
    assert_eq!(
        targets,
        [
            "10-244-2-7.db.prod.svc.cluster.local.:5432",
            "db-0.db.prod.svc.cluster.local.:5432"
        ]
    );
}

#[test]
fn ptr_names_services_and_endpoints() {
    let z = zone();
    let ptr = |ip: &str| match z.lookup(&reverse_name(ip.parse().unwrap()), RecordType::PTR) {
        Answer::Records(r) => match r[0].data() {
            RData::PTR(p) => p.0.to_string(),
            other => panic!("{other:?}"),
        },
        other => panic!("{ip}: {other:?}"),
    };
    assert_eq!(ptr("10.96.0.20"), "web.default.svc.cluster.local.");
    assert_eq!(ptr("10.244.1.5"), "db-0.db.prod.svc.cluster.local.");
    assert_eq!(
        z.lookup("1.1.1.10.in-addr.arpa.", RecordType::PTR),
        Answer::Outside
    );
}

#[test]
fn external_name_is_a_cname_for_every_type() {
    let z = zone();
    for t in [RecordType::A, RecordType::AAAA, RecordType::CNAME] {
        let Answer::Records(r) = z.lookup("ext.default.svc.cluster.local", t) else {
            panic!("{t}")
        };
        assert_eq!(
            r[0].data(),
            &RData::CNAME(CNAME(Name::from_ascii("example.org.").unwrap()))
        );
    }
}

#[test]
fn unknown_names_inside_the_domain_are_nxdomain_and_outside_are_forwarded() {
    let z = zone();
    assert_eq!(
        z.lookup("nope.default.svc.cluster.local", RecordType::A),
        Answer::NxDomain
    );
    // The search-list expansion of an outside name (ndots:5).
    assert_eq!(
        z.lookup("example.org.default.svc.cluster.local", RecordType::A),
        Answer::NxDomain
    );
    assert_eq!(
        z.lookup("default.svc.cluster.local", RecordType::A),
        Answer::NoData
    );
    assert_eq!(z.lookup("example.org", RecordType::A), Answer::Outside);
    assert_eq!(z.lookup("notcluster.local", RecordType::A), Answer::Outside);
    assert!(matches!(
        z.lookup("cluster.local", RecordType::SOA),
        Answer::Records(_)
    ));
}

#[test]
fn ptr_of_a_headless_endpoint_without_hostname_is_its_dashed_name() {
    let z = zone();
    let Answer::Records(r) = z.lookup(&reverse_name(Ipv4Addr::new(10, 244, 2, 7)), RecordType::PTR)
    else {
        panic!("no PTR")
    };
    assert_eq!(
        r[0].data(),
        &RData::PTR(PTR(Name::from_ascii(
            "10-244-2-7.db.prod.svc.cluster.local."
        )
        .unwrap()))
    );
    // A not-ready endpoint has no name, so no PTR either: it is forwarded.
    assert_eq!(
        z.lookup(&reverse_name(Ipv4Addr::new(10, 244, 2, 9)), RecordType::PTR),
        Answer::Outside
    );
}

#[test]
fn publish_not_ready_addresses_publishes_endpoints_that_are_not_ready() {
    let svc = service(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "peers", "namespace": "prod"},
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": true}}));
    let slice = endpoint_slice_from_api(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "peers-x", "namespace": "prod",
            "labels": {"kubernetes.io/service-name": "peers"}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.244.3.1"], "hostname": "peers-0", "conditions": {"ready": false}},
            {"addresses": ["10.244.3.2"], "conditions": {"ready": true}}
        ]
    }))
    .expect("slice");
    let z = Zone::build("cluster.local", &[svc], &[slice]);
    let mut ips = a_records(&z, "peers.prod.svc.cluster.local");
    ips.sort();
    assert_eq!(
        ips,
        [Ipv4Addr::new(10, 244, 3, 1), Ipv4Addr::new(10, 244, 3, 2)]
    );
    assert_eq!(
        a_records(&z, "peers-0.peers.prod.svc.cluster.local"),
        [Ipv4Addr::new(10, 244, 3, 1)]
    );
    assert!(matches!(
        z.lookup(&reverse_name(Ipv4Addr::new(10, 244, 3, 1)), RecordType::PTR),
        Answer::Records(_)
    ));
}

#[test]
fn the_prepared_nxdomain_covers_exactly_the_names_lookup_calls_nxdomain() {
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;
    use hickory_proto::serialize::binary::BinEncodable;
    let z = zone();
    for name in [
        "nope.default.svc.cluster.local.",
        "web.default.svc.cluster.local.",
        "www.example.com.default.svc.cluster.local.",
        "default.svc.cluster.local.",
        "cluster.local.",
        "xcluster.local.",
        "db-0.db.prod.svc.cluster.local.",
        "ext.default.svc.cluster.local.",
        "_http._tcp.web.default.svc.cluster.local.",
        "_nope._tcp.web.default.svc.cluster.local.",
        "example.org.",
        "20.0.96.10.in-addr.arpa.",
    ] {
        for rtype in [
            RecordType::A,
            RecordType::AAAA,
            RecordType::SRV,
            RecordType::TXT,
        ] {
            let key = Query::query(Name::from_ascii(name).unwrap(), rtype)
                .to_bytes()
                .unwrap();
            let nx = z.lookup(name, rtype) == Answer::NxDomain;
            assert_eq!(z.nxdomain(&key).is_some(), nx, "{name} {rtype}");
        }
    }
}
