//! Kernel tests of pod-level fields that change how a pod runs: hostNetwork, hostPID and
//! hostIPC (the pod shares the node's namespaces; the node's network is a netns the test
//! made), and activeDeadlineSeconds.

mod common;
mod netns;

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use common::{Node, BUSYBOX};

fn own_ns(kind: &str) -> String {
    let link = std::fs::read_link(format!("/proc/self/ns/{kind}")).expect("readlink");
    link.to_string_lossy().into_owned()
}

#[test]
fn host_namespaces_are_the_nodes_and_host_pid_leftovers_are_reaped() {
    let node_net = netns::node_netns("10.77.0.7");
    let mut node =
        Node::new("hostns").with_flags(&["--node-netns", &node_net.path().display().to_string()]);
    node.start_daemon();
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: hostns}}\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 1\n  hostNetwork: true\n  hostPID: true\n  hostIPC: true\n  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sh, -c, 'for k in net pid ipc uts; do readlink /proc/self/ns/$k; done; hostname; sleep 1000 & echo leftover=$!']\n"
    );
    node.apply("hostns.yaml", &yaml);
    let p = node.wait_pod("hostns", "Succeeded", Duration::from_secs(30), |p| {
        p["phase"] == "Succeeded"
    });
    assert_eq!(p["podIP"], "10.77.0.7", "the node's IP: {p:#}");
    let logs = node.logs(&["hostns"]);
    let lines: Vec<&str> = logs.lines().collect();
    let node_net_ino = std::fs::metadata(node_net.path()).expect("netns").ino();
    assert_eq!(lines[0], format!("net:[{node_net_ino}]"), "{logs}");
    assert_eq!(lines[1], own_ns("pid"), "{logs}");
    assert_eq!(lines[2], own_ns("ipc"), "{logs}");
    assert_eq!(lines[3], own_ns("uts"), "{logs}");
    let hostname = nix::unistd::gethostname().expect("hostname");
    assert_eq!(lines[4], hostname.to_string_lossy(), "{logs}");
    // The background sleep outlived the main process: killed and reaped, not a zombie.
    let leftover: i32 = lines[5]
        .strip_prefix("leftover=")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{logs}"));
    let proc_dir = format!("/proc/{leftover}");
    common::wait_until("leftover process reaped", Duration::from_secs(10), || {
        !std::path::Path::new(&proc_dir).exists()
    });
    // (The finished pod keeps its /etc files' tmpfs until it is deleted.)
    let held: Vec<String> = node
        .mounts()
        .into_iter()
        .filter(|m| m.contains("/ns/"))
        .collect();
    assert!(held.is_empty(), "no sandbox namespace held: {held:?}");
}

#[test]
fn active_deadline_seconds_stops_the_pod_as_failed_deadline_exceeded() {
    let mut node = Node::new("deadline");
    node.start_daemon();
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: late}}\nspec:\n  restartPolicy: Always\n  activeDeadlineSeconds: 2\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n"
    );
    node.apply("late.yaml", &yaml);
    let running = node.wait_pod("late", "running", Duration::from_secs(20), |p| {
        p["containerStatuses"][0]["state"]["running"].is_object()
    });
    let started = running["startTime"]
        .as_str()
        .expect("startTime")
        .to_string();
    let p = node.wait_pod("late", "DeadlineExceeded", Duration::from_secs(20), |p| {
        p["reason"] == "DeadlineExceeded"
            && p["containerStatuses"][0]["state"]["terminated"].is_object()
    });
    assert_eq!(p["phase"], "Failed", "{p:#}");
    assert!(p["message"]
        .as_str()
        .is_some_and(|m| m.contains("deadline")));
    let c = &p["containerStatuses"][0];
    assert_eq!(c["restartCount"], 0, "never restarted: {p:#}");
    let finished = c["state"]["terminated"]["finishedAt"]
        .as_str()
        .expect("finishedAt");
    let parse = |t: &str| humantime::parse_rfc3339_weak(t).expect("time");
    let ran = parse(finished)
        .duration_since(parse(&started))
        .expect("order");
    assert!(ran >= Duration::from_secs(2), "stopped after {ran:?}");
    // A restarted agent keeps the verdict and the stopped container.
    node.stop_daemon();
    node.start_daemon();
    let p = node.wait_pod("late", "adopted", Duration::from_secs(10), |_| true);
    assert_eq!(p["reason"], "DeadlineExceeded", "{p:#}");
    assert_eq!(p["startTime"].as_str(), Some(started.as_str()));
    assert!(p["containerStatuses"][0]["state"]["terminated"].is_object());
}
