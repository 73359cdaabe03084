//! Kernel tests of bosun-cni in routed mode: pods are netns, "nodes" are netns the test
//! makes (two nodes are joined by a bsn-prefixed veth); the plugin runs inside the node netns.
//! Traffic stays inside those namespaces.

mod common;

use std::collections::HashSet;

use common::{conf, node, result_ip, verb, Netns};
use serde_json::json;

#[test]
fn pods_on_one_node_reach_each_other_and_the_node_reaches_them() {
    let data = tempfile::tempdir().unwrap();
    let node = node("bsnt-n", "10.99.0.1");
    let (a, b) = (Netns::new("bsnt-a"), Netns::new("bsnt-b"));
    let c = conf("1.0.0", "10.244.7.0/24", data.path());
    let ip_a = result_ip(&verb(&node, "ADD", "pod-a", &a, &c));
    let ip_b = result_ip(&verb(&node, "ADD", "pod-b", &b, &c));
    assert_ne!(ip_a, ip_b);
    assert!(a.ping(&ip_b), "pod a -> pod b {ip_b}");
    assert!(b.ping(&ip_a), "pod b -> pod a {ip_a}");
    assert!(node.ping(&ip_a), "node -> pod a");
    assert!(a.ping("10.99.0.1"), "pod a -> node");
    let mtu = String::from_utf8_lossy(&a.ip(&["link", "show", "eth0"]).stdout).into_owned();
    assert!(mtu.contains("mtu 1400"), "{mtu}");
    assert!(verb(&node, "DEL", "pod-a", &a, &c).success);
    assert!(verb(&node, "DEL", "pod-b", &b, &c).success);
}

#[test]
fn pods_on_two_nodes_reach_each_other_through_node_routes() {
    let data1 = tempfile::tempdir().unwrap();
    let data2 = tempfile::tempdir().unwrap();
    let n1 = node("bsnt-n1", "10.99.1.1");
    let n2 = node("bsnt-n2", "10.99.2.1");
    // Node 1 as a race of two ADDs left it once: forwarding on for `all` but off for
    // `default`, so its uplink, made next, does not forward the replies to its pods.
    let sysctl = |ns: &Netns, setting: &str| {
        let out = ns.command("sysctl").args(["-w", setting]).output().unwrap();
        assert!(out.status.success(), "sysctl {setting}: {out:?}");
    };
    sysctl(&n1, "net.ipv4.ip_forward=1");
    sysctl(&n1, "net.ipv4.conf.default.forwarding=0");
    let link = common::unique("bsn");
    let (l1, l2) = (format!("{link}a"), format!("{link}b"));
    n1.ip(&[
        "link", "add", &l1, "type", "veth", "peer", "name", &l2, "netns", &n2.name,
    ]);
    n1.ip(&["addr", "add", "10.98.0.1/30", "dev", &l1]);
    n2.ip(&["addr", "add", "10.98.0.2/30", "dev", &l2]);
    n1.ip(&["link", "set", &l1, "up"]);
    n2.ip(&["link", "set", &l2, "up"]);
    n1.ip(&["route", "add", "10.244.2.0/24", "via", "10.98.0.2"]);
    n2.ip(&["route", "add", "10.244.1.0/24", "via", "10.98.0.1"]);
    let (a, b) = (Netns::new("bsnt-a"), Netns::new("bsnt-b"));
    let ip_a = result_ip(&verb(
        &n1,
        "ADD",
        "pod-a",
        &a,
        &conf("1.1.0", "10.244.1.0/24", data1.path()),
    ));
    let ip_b = result_ip(&verb(
        &n2,
        "ADD",
        "pod-b",
        &b,
        &conf("1.1.0", "10.244.2.0/24", data2.path()),
    ));
    assert!(a.ping(&ip_b), "pod on node 1 -> pod on node 2 ({ip_b})");
    assert!(b.ping(&ip_a), "pod on node 2 -> pod on node 1 ({ip_a})");
    assert!(n1.ping(&ip_b), "node 1 -> pod on node 2");
    let forwarding = |name: &str| {
        let out = n1
            .command("sysctl")
            .args(["-n", &format!("net.ipv4.conf.{name}.forwarding")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(forwarding(&l1), "1", "the uplink forwards");
    assert_eq!(forwarding("default"), "1");
}

#[test]
fn fifty_concurrent_adds_get_fifty_distinct_ips() {
    let data = tempfile::tempdir().unwrap();
    let node = node("bsnt-n", "10.99.0.1");
    let pods: Vec<Netns> = (0..50).map(|_| Netns::new("bsnt-p")).collect();
    let c = conf("1.0.0", "10.244.3.0/24", data.path());
    let ips: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = pods
            .iter()
            .enumerate()
            .map(|(i, pod)| {
                let (node, c) = (&node, &c);
                s.spawn(move || result_ip(&verb(node, "ADD", &format!("pod-{i}"), pod, c)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let distinct: HashSet<&String> = ips.iter().collect();
    assert_eq!(distinct.len(), 50, "{ips:?}");
    for (i, pod) in pods.iter().enumerate() {
        assert!(verb(&node, "DEL", &format!("pod-{i}"), pod, &c).success);
    }
    let mut left: Vec<String> = std::fs::read_dir(data.path().join("bosun-test"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["attachments", "index-v1", "last_reserved_ip", "lock"],
        "no address is held"
    );
    let indexed = std::fs::read_dir(data.path().join("bosun-test/attachments"))
        .unwrap()
        .count();
    assert_eq!(indexed, 0, "no attachment is indexed");
}

#[test]
fn del_twice_is_fine_and_check_detects_a_deleted_route() {
    let data = tempfile::tempdir().unwrap();
    let node = node("bsnt-n", "10.99.0.1");
    let pod = Netns::new("bsnt-p");
    let mut c = conf("1.0.0", "10.244.4.0/24", data.path());
    let added = verb(&node, "ADD", "pod-c", &pod, &c);
    let ip = result_ip(&added);
    c["prevResult"] = added.json.clone().unwrap();
    let ok = verb(&node, "CHECK", "pod-c", &pod, &c);
    assert!(ok.success, "{:?}", ok.json);
    node.ip(&["route", "del", &format!("{ip}/32")]);
    let broken = verb(&node, "CHECK", "pod-c", &pod, &c);
    assert!(!broken.success);
    let err = broken.json.unwrap();
    assert_eq!(err["code"], 100, "{err}");
    assert!(err["msg"].as_str().unwrap().contains("route"), "{err}");
    assert!(verb(&node, "DEL", "pod-c", &pod, &c).success);
    assert!(verb(&node, "DEL", "pod-c", &pod, &c).success, "second DEL");
    let links = String::from_utf8_lossy(&node.ip(&["link"]).stdout).into_owned();
    assert!(!links.contains("bsn"), "{links}");
}

#[test]
fn gc_removes_attachments_not_in_valid_attachments() {
    let data = tempfile::tempdir().unwrap();
    let node = node("bsnt-n", "10.99.0.1");
    let (keep, leak) = (Netns::new("bsnt-k"), Netns::new("bsnt-l"));
    let mut c = conf("1.1.0", "10.244.5.0/24", data.path());
    let keep_ip = result_ip(&verb(&node, "ADD", "keep", &keep, &c));
    result_ip(&verb(&node, "ADD", "leak", &leak, &c));
    c["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    let gc = common::plugin(
        Some(&node),
        &[("CNI_COMMAND", "GC"), ("CNI_PATH", "/x")],
        &c.to_string(),
    );
    assert!(gc.success, "{:?}", gc.json);
    let held: Vec<String> = std::fs::read_dir(data.path().join("bosun-test"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.parse::<std::net::Ipv4Addr>().is_ok())
        .collect();
    assert_eq!(held, vec![keep_ip]);
    let pod_links = String::from_utf8_lossy(&leak.ip(&["link"]).stdout).into_owned();
    assert!(
        !pod_links.contains("eth0"),
        "leaked veth removed: {pod_links}"
    );
    let status = common::plugin(Some(&node), &[("CNI_COMMAND", "STATUS")], &c.to_string());
    assert!(status.success);
}
