//! `kubectl drain` and `uncordon` end to end on a real node: drain cordons the node and, with
//! no eviction API served, deletes its pods (client-go sends the DeleteOptions as protobuf);
//! a pod no controller owns needs `--force`, in kubectl's words. The Deployment's replacement
//! pod waits unschedulable while the node is cordoned and runs once it is uncordoned.

use std::time::Duration;

use bosun_e2e::{stderr, stdout, wait_logged, Control, Node};
use serde_json::Value;

const WORKLOADS: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: c, image: bosun.test/busybox:1, command: [sleep, '1000']}
---
apiVersion: v1
kind: Pod
metadata: {name: loner}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: bosun.test/busybox:1, command: [sleep, '1000']}
"#;

fn web_pods(control: &Control) -> Vec<Value> {
    control
        .get_json(&["pods", "-l", "app=web"])
        .and_then(|l| l["items"].as_array().cloned())
        .unwrap_or_default()
}

fn uid(pod: &Value) -> String {
    pod["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn drain_deletes_a_nodes_pods_and_uncordon_lets_the_replacement_run() {
    let control = Control::start();
    let mut node = Node::new(95, &control);
    node.start_agent();
    let name = node.name.clone();
    wait_logged(
        "node Ready",
        &control,
        &node,
        Duration::from_secs(20),
        || control.node_ready(&name),
    );
    control.apply(&WORKLOADS.replace("NODE", &name));
    wait_logged(
        "web and loner running",
        &control,
        &node,
        Duration::from_secs(60),
        || {
            control.container_running("loner")
                && web_pods(&control).first().is_some_and(|p| {
                    control.container_running(p["metadata"]["name"].as_str().unwrap_or(""))
                })
        },
    );
    let first = uid(&web_pods(&control)[0]);

    let out = control.kubectl(&["drain", &name, "--timeout=20s"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "cannot delete Pods that declare no controller (use --force to override): default/loner"
        ),
        "{}",
        stderr(&out)
    );
    let cordoned = control.get_json(&["node", &name]).unwrap_or_default();
    assert_eq!(cordoned["spec"]["unschedulable"], true, "{cordoned:#}");

    let out = control.kubectl(&[
        "drain",
        &name,
        "--force",
        "--ignore-daemonsets",
        "--timeout=60s",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("node/{name} drained")),
        "{}",
        stdout(&out)
    );
    assert!(control.get_json(&["pod", "loner"]).is_none());
    wait_logged(
        "the replacement web pod unschedulable",
        &control,
        &node,
        Duration::from_secs(30),
        || {
            web_pods(&control).iter().any(|p| {
                uid(p) != first
                    && p["status"]["conditions"].as_array().is_some_and(|cs| {
                        cs.iter().any(|c| {
                            c["type"] == "PodScheduled"
                                && c["reason"] == "Unschedulable"
                                && c["message"]
                                    .as_str()
                                    .is_some_and(|m| m.contains("node(s) were unschedulable"))
                        })
                    })
            })
        },
    );

    control.kubectl_ok(&["uncordon", &name]);
    wait_logged(
        "the replacement web pod running",
        &control,
        &node,
        Duration::from_secs(60),
        || {
            web_pods(&control).iter().any(|p| {
                uid(p) != first
                    && control.container_running(p["metadata"]["name"].as_str().unwrap_or(""))
            })
        },
    );
}
