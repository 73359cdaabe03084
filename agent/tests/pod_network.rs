//! Kernel tests of pods on the CNI network, end to end through the agent: the agent runs with
//! its node network in a netns the test made (`--node-netns`), so the host's own network is
//! never touched; pods get IPs from bosun-cni, reach each other, and are probed by pod IP.

mod common;
mod netns;

use std::time::Duration;

use common::Node;
use netns::{bosun_cni_dir, node_netns};

#[test]
fn pods_get_ips_reach_each_other_and_are_probed_by_pod_ip() {
    let node_ns = node_netns("192.168.77.1");
    let mut node = Node::new("podnet");
    let conf = node.base.join("cni");
    let node_path = node_ns.path();
    let bins = bosun_cni_dir();
    node.extra_flags = vec![
        "--network".into(),
        "cni".into(),
        "--node-netns".into(),
        node_path.display().to_string(),
        "--cni-conf-dir".into(),
        conf.display().to_string(),
        "--cni-bin-dir".into(),
        bins.display().to_string(),
        "--pod-cidr".into(),
        "10.244.77.0/24".into(),
    ];
    node.start_daemon();
    node.apply(
        "web.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: httpd\n    image: bosun.test/busybox:1\n    command: [httpd, -f, -p, '8080', -h, /var/www]\n    readinessProbe: {httpGet: {port: 8080}, periodSeconds: 1}\n",
    );
    let web = node.wait_pod("web", "ready", Duration::from_secs(30), |p| {
        p["ready"] == true
    });
    let ip = web["podIP"].as_str().expect("pod IP").to_string();
    assert!(ip.starts_with("10.244.77."), "{web:#}");
    // Node routing: blackholes for the pod and service CIDRs inside the node netns only.
    let routes = String::from_utf8_lossy(&node_ns.ip(&["route", "show"]).stdout).to_string();
    assert!(routes.contains("blackhole 10.244.77.0/24"), "{routes}");
    assert!(routes.contains("blackhole 10.96.0.0/12"), "{routes}");
    assert!(routes.contains(&format!("{ip} dev bsn")), "{routes}");
    // Another pod fetches from the first by its pod IP.
    node.apply(
        "client.yaml",
        &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: client}}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: c\n    image: bosun.test/busybox:1\n    command: [sh, -c, 'for i in $(seq 1 30); do wget -qO- http://{ip}:8080/ && exit 0; sleep 0.2; done; exit 1']\n"),
    );
    let client = node.wait_pod("client", "done", Duration::from_secs(30), |p| {
        p["phase"] == "Succeeded" || p["phase"] == "Failed"
    });
    assert_eq!(
        client["phase"],
        "Succeeded",
        "{client:#}\n{}",
        node.daemon_log()
    );
    assert!(node.logs(&["client"]).contains("hello from bosun"));
    // Deleting the pod releases its address and route.
    node.remove("web.yaml");
    node.wait_gone("web", Duration::from_secs(20));
    let routes = String::from_utf8_lossy(&node_ns.ip(&["route", "show"]).stdout).to_string();
    assert!(
        !routes.contains(&format!("{ip} dev")),
        "route of the deleted pod is gone: {routes}"
    );
}
