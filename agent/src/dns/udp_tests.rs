use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::RwLock;

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use serde_json::json;

use super::*;
use crate::dns::forward::Forwarder;
use crate::dns::records::Zone;
use crate::spec::service_from_api;

/// Long enough for any answer on a loaded machine; only reached when one is missing.
const ANSWER_LIMIT: Duration = Duration::from_secs(5);

fn zone() -> Zone {
    let web = service_from_api(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}}))
    .expect("service");
    Zone::build("cluster.local", &[web], &[])
}

/// The UDP server on loopback with [`zone`], forwarding to `upstreams`.
async fn server(upstreams: Vec<SocketAddr>) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    let out = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let handler = Handler {
        zone: Arc::new(RwLock::new(Arc::new(zone()))),
        forwarder: Forwarder::start(upstreams, out),
    };
    tokio::spawn(serve(socket, handler));
    addr
}

async fn exchange(server: SocketAddr, request: &[u8]) -> Message {
    let client = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    client.send_to(request, server).await.expect("send");
    let mut buf = [0u8; 4096];
    let (n, _) = tokio::time::timeout(ANSWER_LIMIT, client.recv_from(&mut buf))
        .await
        .expect("an answer in time")
        .expect("recv");
    Message::from_vec(&buf[..n]).expect("a DNS message")
}

fn query(name: &str, rtype: RecordType, id: u16, edns: bool) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(id)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(name).expect("name"), rtype));
    if edns {
        m.set_edns(Edns::new());
    }
    m.to_vec().expect("encode")
}

fn a_of(m: &Message) -> Vec<(Ipv4Addr, u32)> {
    m.answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some((a.0, r.ttl())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn plain_and_edns_queries_get_the_same_cluster_answer() {
    let addr = server(vec![]).await;
    let name = "WEB.default.svc.Cluster.Local.";
    let plain = exchange(addr, &query(name, RecordType::A, 7, false)).await;
    let edns = exchange(addr, &query(name, RecordType::A, 8, true)).await;
    assert!(plain.extensions().is_none());
    let opt = edns
        .extensions()
        .as_ref()
        .expect("an EDNS answer has an OPT record");
    assert_eq!(opt.max_payload(), Edns::new().max_payload().max(512));
    for (m, id) in [(&plain, 7), (&edns, 8)] {
        assert_eq!(m.id(), id);
        assert_eq!(m.message_type(), MessageType::Response);
        assert!(m.authoritative() && m.recursion_available() && m.recursion_desired());
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert_eq!(m.queries()[0].name().to_ascii(), name);
        assert_eq!(a_of(m), [(Ipv4Addr::new(10, 96, 0, 20), 5)]);
    }
    // The name exists: AAAA is NODATA with the zone's SOA.
    let aaaa = exchange(addr, &query(name, RecordType::AAAA, 9, false)).await;
    assert_eq!(aaaa.response_code(), ResponseCode::NoError);
    assert!(aaaa.answers().is_empty());
    assert_eq!(aaaa.name_servers()[0].record_type(), RecordType::SOA);
}

#[tokio::test]
async fn unknown_cluster_names_get_nxdomain_and_bad_datagrams_formerr() {
    let addr = server(vec![]).await;
    let nx = exchange(
        addr,
        &query("nope.default.svc.cluster.local.", RecordType::A, 3, false),
    )
    .await;
    assert_eq!(nx.id(), 3);
    assert_eq!(nx.response_code(), ResponseCode::NXDomain);
    assert_eq!(nx.name_servers()[0].record_type(), RecordType::SOA);
    // The general path answers EDNS with an OPT record too.
    let nx = exchange(
        addr,
        &query("nope.default.svc.cluster.local.", RecordType::A, 5, true),
    )
    .await;
    assert_eq!(nx.response_code(), ResponseCode::NXDomain);
    assert!(nx.extensions().is_some(), "{nx:?}");
    // A header announcing a question that is not there.
    let mut truncated = query("web.default.svc.cluster.local.", RecordType::A, 4, false);
    truncated.truncate(20);
    let bad = exchange(addr, &truncated).await;
    assert_eq!(bad.id(), 4);
    assert_eq!(bad.response_code(), ResponseCode::FormErr);
}

#[tokio::test]
async fn outside_names_are_forwarded_once_then_answered_from_the_cache() {
    let (up, count) = crate::dns::forward::tests::upstream(60).await;
    let addr = server(vec![up]).await;
    for (id, edns) in [(1, false), (2, false), (3, true), (4, false)] {
        let m = exchange(addr, &query("Example.ORG.", RecordType::A, id, edns)).await;
        assert_eq!(m.id(), id);
        assert!(!m.authoritative() && m.recursion_available());
        assert_eq!(m.queries()[0].name().to_ascii(), "Example.ORG.");
        let answers = a_of(&m);
        assert_eq!(answers.len(), 1, "{m:?}");
        assert_eq!(answers[0].0, Ipv4Addr::new(192, 0, 2, 1));
        assert!(answers[0].1 <= crate::dns::forward::MAX_TTL);
    }
    assert_eq!(count.load(Ordering::SeqCst), 1);
}
