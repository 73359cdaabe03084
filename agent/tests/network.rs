//! Kernel tests of the agent's network module: pod sandboxes made by the runtime, attached
//! through CNI (bosun-cni by default, Debian's bridge + host-local as a chain), inside node
//! netns the tests create. Needs root and `target/<profile>/bosun-cni`.

mod netns;

use std::path::{Path, PathBuf};

use bosun_agent::network::{NetworkConfig, PodNetwork, PodNetworkRef};
use bosun_agent::runtime::sandbox::PodSandbox;
use netns::{bosun_cni_dir, node_netns, ping_from, Netns};

struct Pod {
    sandbox: PodSandbox,
    net: PodNetworkRef,
}

impl Pod {
    fn new(root: &Path, uid: &str) -> Self {
        let sandbox = PodSandbox::create(root.join("pods").join(uid), uid).expect("sandbox");
        let net = PodNetworkRef {
            container_id: uid.to_owned(),
            netns: sandbox.ns_path("net"),
            ifname: "eth0".into(),
            namespace: "default".into(),
            name: format!("pod-{uid}"),
            port_mappings: Vec::new(),
        };
        Pod { sandbox, net }
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = self.sandbox.remove();
    }
}

fn config(root: &Path, bin_dirs: Vec<PathBuf>, pod_cidr: &str) -> NetworkConfig {
    let mut cfg = NetworkConfig::new(root.join("cni-conf"), bin_dirs, root.join("cni-cache"));
    cfg.pod_cidr = pod_cidr.parse().unwrap();
    cfg
}

fn ip_of(net: &PodNetwork, node: &Netns, pod: &Pod) -> String {
    let status = node.run_in(|| net.add(&pod.net)).expect("CNI ADD");
    assert_eq!(status.ips.len(), 1, "{}", status.result);
    status.ips[0].to_string()
}

#[test]
fn default_bosun_cni_network_connects_pods_and_node_routes_blackhole_the_cidrs() {
    let root = tempfile::tempdir().unwrap();
    let node = node_netns("10.97.0.1");
    let net =
        PodNetwork::load(config(root.path(), vec![bosun_cni_dir()], "10.244.0.0/24")).unwrap();
    assert!(
        root.path().join("cni-conf/10-bosun.conflist").is_file(),
        "default conflist written"
    );
    let added = node.run_in(|| net.setup_node()).expect("setup_node");
    assert_eq!(added.len(), 2, "two blackholes added: {added:?}");
    let again = node
        .run_in(|| net.setup_node())
        .expect("setup_node is idempotent");
    assert!(again.is_empty(), "nothing added the second time: {again:?}");
    let routes = String::from_utf8_lossy(&node.ip(&["route"]).stdout).into_owned();
    assert!(routes.contains("blackhole 10.244.0.0/24"), "{routes}");
    assert!(routes.contains("blackhole 10.96.0.0/12"), "{routes}");
    let (a, b) = (
        Pod::new(root.path(), "uid-a"),
        Pod::new(root.path(), "uid-b"),
    );
    let (ip_a, ip_b) = (ip_of(&net, &node, &a), ip_of(&net, &node, &b));
    assert!(ping_from(&a.net.netns, &ip_b), "pod a -> pod b");
    assert!(
        ping_from(&node.path(), &ip_a),
        "node -> pod a (the /32 beats the blackhole)"
    );
    node.run_in(|| net.check(&a.net)).expect("CHECK");
    node.run_in(|| net.del(&a.net)).expect("DEL");
    node.run_in(|| net.del(&a.net)).expect("second DEL");
    node.run_in(|| net.del(&b.net)).expect("DEL b");
}

#[test]
fn pods_on_two_nodes_talk_through_peer_routes() {
    let root1 = tempfile::tempdir().unwrap();
    let root2 = tempfile::tempdir().unwrap();
    let (n1, n2) = (node_netns("10.97.1.1"), node_netns("10.97.2.1"));
    let link = netns::unique("bsn");
    let (l1, l2) = (format!("{link}a"), format!("{link}b"));
    n1.ip(&[
        "link", "add", &l1, "type", "veth", "peer", "name", &l2, "netns", &n2.name,
    ]);
    n1.ip(&["addr", "add", "10.96.200.1/30", "dev", &l1]);
    n2.ip(&["addr", "add", "10.96.200.2/30", "dev", &l2]);
    n1.ip(&["link", "set", &l1, "up"]);
    n2.ip(&["link", "set", &l2, "up"]);
    let mut c1 = config(root1.path(), vec![bosun_cni_dir()], "10.244.1.0/24");
    c1.service_cidr = "10.95.0.0/16".parse().unwrap();
    c1.peers = vec![(
        "10.244.2.0/24".parse().unwrap(),
        "10.96.200.2".parse().unwrap(),
    )];
    let mut c2 = config(root2.path(), vec![bosun_cni_dir()], "10.244.2.0/24");
    c2.service_cidr = "10.95.0.0/16".parse().unwrap();
    c2.peers = vec![(
        "10.244.1.0/24".parse().unwrap(),
        "10.96.200.1".parse().unwrap(),
    )];
    let (net1, net2) = (PodNetwork::load(c1).unwrap(), PodNetwork::load(c2).unwrap());
    n1.run_in(|| net1.setup_node()).unwrap();
    n2.run_in(|| net2.setup_node()).unwrap();
    let a = Pod::new(root1.path(), "uid-a");
    let b = Pod::new(root2.path(), "uid-b");
    let (ip_a, ip_b) = (ip_of(&net1, &n1, &a), ip_of(&net2, &n2, &b));
    assert!(ip_a.starts_with("10.244.1.") && ip_b.starts_with("10.244.2."));
    assert!(
        ping_from(&a.net.netns, &ip_b),
        "pod on node 1 -> pod on node 2"
    );
    assert!(
        ping_from(&b.net.netns, &ip_a),
        "pod on node 2 -> pod on node 1"
    );
    n1.run_in(|| net1.del(&a.net)).unwrap();
    n2.run_in(|| net2.del(&b.net)).unwrap();
}

#[test]
fn debian_bridge_and_host_local_chain_works_too() {
    let root = tempfile::tempdir().unwrap();
    let node = node_netns("10.97.3.1");
    let conf_dir = root.path().join("cni-conf");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let bridge = netns::unique("bsnbr");
    let conflist = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "debian-bridge",
        "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": false,
             "ipam": {"type": "host-local", "subnet": "10.245.0.0/24",
                      "dataDir": root.path().join("host-local"),
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "bosun-missing-plugin-is-not-listed-here", "x": 1}
        ]
    });
    let mut list = conflist.clone();
    list["plugins"].as_array_mut().unwrap().pop();
    std::fs::write(conf_dir.join("20-bridge.conflist"), list.to_string()).unwrap();
    std::fs::write(conf_dir.join("30-ignored.conflist"), conflist.to_string()).unwrap();
    let cfg = config(
        root.path(),
        vec![PathBuf::from("/usr/lib/cni")],
        "10.245.0.0/24",
    );
    let net = PodNetwork::load(cfg).expect("first conflist in lexical order is used");
    assert_eq!(net.network().name, "debian-bridge");
    let (a, b) = (
        Pod::new(root.path(), "uid-a"),
        Pod::new(root.path(), "uid-b"),
    );
    let (ip_a, ip_b) = (ip_of(&net, &node, &a), ip_of(&net, &node, &b));
    assert!(
        ping_from(&a.net.netns, &ip_b),
        "pod a -> pod b over the bridge"
    );
    assert!(ping_from(&node.path(), &ip_a), "node -> pod a");
    node.run_in(|| net.check(&a.net))
        .expect("CHECK through the chain");
    node.run_in(|| net.del(&a.net)).unwrap();
    node.run_in(|| net.del(&a.net)).expect("second DEL");
    node.run_in(|| net.del(&b.net)).unwrap();
}

#[test]
fn restarted_agent_finds_cached_results_and_gcs_leftovers() {
    let root = tempfile::tempdir().unwrap();
    let node = node_netns("10.97.4.1");
    let cfg = config(root.path(), vec![bosun_cni_dir()], "10.244.4.0/24");
    let (a, b) = (
        Pod::new(root.path(), "uid-a"),
        Pod::new(root.path(), "uid-b"),
    );
    let (ip_a, ip_b) = {
        let first = PodNetwork::load(cfg.clone()).unwrap();
        (ip_of(&first, &node, &a), ip_of(&first, &node, &b))
    }; // the first agent is gone
    let second = PodNetwork::load(cfg).unwrap();
    let status = second.status(&a.net).expect("cached result survives");
    assert_eq!(status.ips[0].to_string(), ip_a);
    node.run_in(|| second.check(&a.net))
        .expect("networking intact after restart");
    assert!(ping_from(&a.net.netns, &ip_b), "pods still talk");
    node.run_in(|| second.gc(std::slice::from_ref(&a.net)))
        .expect("GC");
    assert!(
        second.status(&b.net).is_none(),
        "pod b was not live: DELeted"
    );
    assert!(!ping_from(&a.net.netns, &ip_b), "pod b's veth is gone");
    node.run_in(|| second.check(&a.net))
        .expect("live pod untouched by GC");
    node.run_in(|| second.del(&a.net))
        .expect("DEL after restart");
    let links = String::from_utf8_lossy(&node.ip(&["link"]).stdout).into_owned();
    assert!(!links.contains("bsn"), "{links}");
}

#[test]
fn missing_plugin_and_malformed_config_are_named() {
    let root = tempfile::tempdir().unwrap();
    let conf_dir = root.path().join("cni-conf");
    std::fs::create_dir_all(&conf_dir).unwrap();
    std::fs::write(conf_dir.join("10-x.conflist"), "{\"name\": 3").unwrap();
    let err = PodNetwork::load(config(root.path(), vec![], "10.244.0.0/24")).unwrap_err();
    assert!(err.to_string().contains("10-x.conflist"), "{err}");
    std::fs::write(
        conf_dir.join("10-x.conflist"),
        r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"no-such-plugin"}]}"#,
    )
    .unwrap();
    let err = PodNetwork::load(config(root.path(), vec![], "10.244.0.0/24")).unwrap_err();
    assert!(err.to_string().contains("no-such-plugin"), "{err}");
}
