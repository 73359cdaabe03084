//! Tests for `desired_state`: endpoints from local pods and from EndpointSlices, and one
//! error per kind of bad input, named by field, while the other services stay programmed.

use super::*;
use crate::spec::{parse_manifests, Manifest};

fn manifests(yaml: &str) -> (Vec<Service>, Vec<EndpointSlice>) {
    let mut services = Vec::new();
    let mut slices = Vec::new();
    for m in parse_manifests(yaml).expect("parses") {
        match m {
            Manifest::Service(s) => services.push(s),
            Manifest::EndpointSlice(s) => slices.push(s),
            other => panic!("unexpected {other:?}"),
        }
    }
    (services, slices)
}

fn limits() -> Limits {
    Limits {
        service_cidr: "10.96.0.0/16".parse().expect("cidr"),
        max_backends: 4,
        cluster_dns: None,
    }
}

fn pod(name: &str, ip: u8, ready: bool) -> LocalPod {
    LocalPod {
        namespace: "default".into(),
        name: name.into(),
        labels: BTreeMap::from([("app".into(), "web".into())]),
        ip: Some(Ipv4Addr::new(10, 244, 0, ip)),
        ready,
        running: true,
        terminating: false,
        ports: vec![NamedPort {
            name: Some("http".into()),
            port: 8000 + ip as u16,
            protocol: Protocol::Tcp,
        }],
    }
}

fn key(vip: [u8; 4], port: u16) -> ServiceKey {
    ServiceKey {
        ip: vip.into(),
        port,
        protocol: LbProtocol::Tcp,
    }
}

fn backends(state: &DesiredState, k: ServiceKey) -> Vec<(Ipv4Addr, u16)> {
    let (_, spec) = state
        .services
        .get(&k)
        .unwrap_or_else(|| panic!("{k} missing: {state:?}"));
    let n = spec.normalized();
    n.backends.iter().map(|b| (b.ip, b.port)).collect()
}

const WEB: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  clusterIP: 10.96.0.10\n  selector: {app: web}\n  ports: [{name: http, port: 80, targetPort: http}, {name: num, port: 81, targetPort: 9000}]\n";

#[test]
fn selector_services_get_the_ready_local_pods_with_named_ports_resolved_per_pod() {
    let (svcs, _) = manifests(WEB);
    let mut other_ns = pod("elsewhere", 9, true);
    other_ns.namespace = "prod".into();
    let mut unlabelled = pod("db", 8, true);
    unlabelled.labels.clear();
    let mut no_ip = pod("starting", 7, true);
    no_ip.ip = None;
    let pods = [
        pod("a", 1, true),
        pod("b", 2, true),
        pod("c", 3, false),
        other_ns,
        unlabelled,
        no_ip,
    ];
    let state = desired_state(&svcs, &[], &pods, &limits());
    assert!(state.errors.is_empty(), "{:?}", state.errors);
    let ip = |n| Ipv4Addr::new(10, 244, 0, n);
    assert_eq!(
        backends(&state, key([10, 96, 0, 10], 80)),
        vec![(ip(1), 8001), (ip(2), 8002)]
    );
    assert_eq!(
        backends(&state, key([10, 96, 0, 10], 81)),
        vec![(ip(1), 9000), (ip(2), 9000)]
    );
    let (owner, _) = &state.services[&key([10, 96, 0, 10], 80)];
    assert_eq!(
        (owner.name.as_str(), owner.port_name.as_str()),
        ("web", "http")
    );
}

#[test]
fn a_pod_without_the_named_port_is_not_a_backend() {
    let (svcs, _) = manifests(WEB);
    let mut p = pod("a", 1, true);
    p.ports[0].name = Some("metrics".into());
    let state = desired_state(&svcs, &[], &[p], &limits());
    assert!(backends(&state, key([10, 96, 0, 10], 80)).is_empty());
}

#[test]
fn terminating_ready_pods_are_fallbacks_only() {
    let (svcs, _) = manifests(WEB);
    let mut leaving = pod("a", 1, true);
    leaving.terminating = true;
    let state = desired_state(&svcs, &[], &[leaving.clone(), pod("b", 2, true)], &limits());
    let (_, spec) = &state.services[&key([10, 96, 0, 10], 80)];
    let n = spec.normalized();
    assert!(n.backends[0].ready && n.backends[1].terminating, "{n:?}");
    let state = desired_state(&svcs, &[], &[leaving], &limits());
    assert_eq!(backends(&state, key([10, 96, 0, 10], 80)).len(), 1);
}

#[test]
fn no_ready_pod_means_an_empty_service_not_a_missing_one() {
    let (svcs, _) = manifests(WEB);
    let state = desired_state(&svcs, &[], &[pod("a", 1, false)], &limits());
    assert!(backends(&state, key([10, 96, 0, 10], 80)).is_empty());
}

#[test]
fn publish_not_ready_addresses_makes_every_pod_with_an_ip_a_backend() {
    let yaml = WEB.replace("spec:\n", "spec:\n  publishNotReadyAddresses: true\n");
    let (svcs, _) = manifests(&yaml);
    let mut no_ip = pod("starting", 7, false);
    no_ip.ip = None;
    let state = desired_state(&svcs, &[], &[pod("a", 1, false), no_ip], &limits());
    assert!(state.errors.is_empty(), "{:?}", state.errors);
    assert_eq!(
        backends(&state, key([10, 96, 0, 10], 80)),
        vec![(Ipv4Addr::new(10, 244, 0, 1), 8001)]
    );
}

const EXT: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: ext}\nspec:\n  clusterIP: 10.96.0.20\n  clusterIPs: [10.96.0.20, 10.96.0.21]\n  sessionAffinity: ClientIP\n  ports: [{name: http, port: 80}, {name: dns, port: 53, protocol: UDP}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: ext-a\n  labels: {kubernetes.io/service-name: ext}\naddressType: IPv4\nendpoints:\n- addresses: [10.1.0.1]\n- addresses: [10.1.0.2]\n  conditions: {ready: false}\nports: [{name: http, port: 8080}, {name: dns, port: 5353, protocol: UDP}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: other\n  labels: {kubernetes.io/service-name: web}\naddressType: IPv4\nendpoints: [{addresses: [10.9.9.9]}]\nports: [{name: http, port: 1}]\n";

#[test]
fn selectorless_services_take_their_endpoint_slices_on_every_cluster_ip() {
    let (svcs, slices) = manifests(EXT);
    let state = desired_state(&svcs, &slices, &[pod("a", 1, true)], &limits());
    assert!(state.errors.is_empty(), "{:?}", state.errors);
    for vip in [[10, 96, 0, 20], [10, 96, 0, 21]] {
        let b = backends(&state, key(vip, 80));
        assert_eq!(b, vec![(Ipv4Addr::new(10, 1, 0, 1), 8080)]);
    }
    let udp = ServiceKey {
        protocol: LbProtocol::Udp,
        ..key([10, 96, 0, 20], 53)
    };
    assert_eq!(
        backends(&state, udp),
        vec![(Ipv4Addr::new(10, 1, 0, 1), 5353)]
    );
    let (_, spec) = &state.services[&udp];
    assert_eq!(spec.affinity_timeout, Some(Duration::from_secs(10800)));
}

#[test]
fn headless_services_are_left_alone() {
    let (svcs, _) = manifests(&WEB.replace("10.96.0.10", "None"));
    let state = desired_state(&svcs, &[], &[pod("a", 1, true)], &limits());
    assert!(state.services.is_empty() && state.errors.is_empty());
}

#[test]
fn bad_services_are_reported_by_field_and_the_others_still_programmed() {
    let outside = WEB
        .replace("name: web", "name: outside")
        .replace("10.96.0.10", "10.97.0.1");
    let dup = WEB.replace("name: web", "name: zz-dup");
    let bad_port = WEB
        .replace("name: web", "name: bad")
        .replace("port: 81,", "port: 0,");
    let not_ip = WEB
        .replace("name: web", "name: notip")
        .replace("10.96.0.10", "10.96.0");
    let text = [WEB, &outside, &dup, &bad_port, &not_ip].join("---\n");
    let (svcs, _) = manifests(&text);
    let state = desired_state(&svcs, &[], &[pod("a", 1, true)], &limits());
    let errors: Vec<String> = state.errors.iter().map(ToString::to_string).collect();
    let expect = [
        "Service default/bad: spec.ports[1].port: 0: must be 1..65535",
        "Service default/notip: spec.clusterIP: \"10.96.0\" is not an IPv4 address",
        "Service default/outside: spec.clusterIP: 10.97.0.1 is outside the service CIDR 10.96.0.0/16",
        "Service default/zz-dup: spec.ports[0].port: 10.96.0.10:80/tcp is already used by default/web",
        "Service default/zz-dup: spec.ports[1].port: 10.96.0.10:81/tcp is already used by default/web",
    ];
    assert_eq!(errors, expect);
    assert_eq!(backends(&state, key([10, 96, 0, 10], 80)).len(), 1);
    assert_eq!(state.services.len(), 2);
}

#[test]
fn too_many_backends_for_the_maps_is_an_error_for_that_port() {
    let (svcs, _) = manifests(WEB);
    let pods: Vec<LocalPod> = (1..=5).map(|n| pod(&format!("p{n}"), n, true)).collect();
    let state = desired_state(&svcs, &[], &pods, &limits());
    assert_eq!(state.services.len(), 0);
    assert_eq!(state.errors.len(), 2);
    assert!(
        state.errors[0].message.contains("5 backends"),
        "{:?}",
        state.errors
    );
    assert_eq!(state.errors[0].field, "spec.ports[0]");
}

#[test]
fn invalid_slices_are_reported_and_skipped() {
    let (svcs, slices) = manifests(&EXT.replace("10.1.0.2", "nope"));
    let state = desired_state(&svcs, &slices, &[], &limits());
    assert_eq!(state.errors.len(), 1, "{:?}", state.errors);
    assert_eq!(state.errors[0].kind, "EndpointSlice");
    assert_eq!(state.errors[0].field, "endpoints[1].addresses[0]");
    assert!(backends(&state, key([10, 96, 0, 20], 80)).is_empty());
}

#[test]
fn maglev_is_chosen_by_annotation() {
    let yaml = WEB.replace(
        "metadata: {name: web}",
        "metadata: {name: web, annotations: {bosun.dev/load-balancing: maglev}}",
    );
    let (svcs, _) = manifests(&yaml);
    let state = desired_state(&svcs, &[], &[], &limits());
    assert!(state.services.values().all(|(_, s)| s.maglev));
}

#[test]
fn the_adoption_grace_keeps_running_pods_that_were_serving() {
    let (svcs, _) = manifests(WEB);
    let serving = BTreeSet::from([Ipv4Addr::new(10, 244, 0, 1), Ipv4Addr::new(10, 244, 0, 3)]);
    let mut stopped = pod("c", 3, false);
    stopped.running = false;
    // a: adopted, not yet re-probed; b: new and not ready; c: died while the agent was away.
    let pods = with_adoption_grace(&[pod("a", 1, false), pod("b", 2, false), stopped], &serving);
    let state = desired_state(&svcs, &[], &pods, &limits());
    let ip = Ipv4Addr::new(10, 244, 0, 1);
    assert_eq!(backends(&state, key([10, 96, 0, 10], 80)), vec![(ip, 8001)]);
}

#[test]
fn the_cluster_dns_address_goes_to_the_nodes_own_server() {
    let dns: Service = crate::spec::service_from_api(serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system"},
        "spec": {"clusterIP": "10.96.0.10", "selector": {"k8s-app": "kube-dns"},
            "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                      {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}
    }))
    .expect("service");
    let server: std::net::SocketAddrV4 = "192.168.7.1:53".parse().expect("addr");
    let limits = Limits {
        cluster_dns: Some(("10.96.0.10".parse().expect("ip"), server)),
        ..limits()
    };
    for services in [vec![dns], vec![]] {
        let state = desired_state(&services, &[], &[], &limits);
        assert!(state.errors.is_empty(), "{:?}", state.errors);
        for protocol in [LbProtocol::Udp, LbProtocol::Tcp] {
            let key = ServiceKey {
                ip: "10.96.0.10".parse().expect("ip"),
                port: 53,
                protocol,
            };
            let (owner, spec) = &state.services[&key];
            assert_eq!(owner.name, "kube-dns");
            assert_eq!(spec.backends, [Backend::ready(*server.ip(), 53)]);
        }
    }
}
