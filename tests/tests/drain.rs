//! `kubectl drain` and `uncordon` end to end on real nodes: drain cordons the node (kubelet's
//! NodeNotSchedulable event, after its start events, in `kubectl describe node`) and evicts
//! its pods (`pods/eviction`, protobuf bodies) or, with `--disable-eviction`, deletes them
//! (protobuf DeleteOptions); a pod no controller owns needs `--force`, in
//! kubectl's words. The Deployment's replacement pod waits unschedulable while the node is
//! cordoned and runs once it is uncordoned. A PodDisruptionBudget (`kubectl create pdb`) holds
//! a drain back while it allows no disruption — kubectl prints the 429's text and gives up at
//! its timeout — and lets it through one pod at a time once it does, the pods moving to the
//! other node.

use std::time::Duration;

use bosun_e2e::{stderr, stdout, wait_logged, wait_node_ready, Control, Node};
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
    wait_node_ready(&control, &node);
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
    // kubelet's events on its node: its start, its conditions, and now the cordon.
    wait_logged(
        "the node's NodeNotSchedulable event",
        &control,
        &node,
        Duration::from_secs(30),
        || {
            let describe = control.kubectl_ok(&["describe", "node", &name]);
            [
                "Starting kubelet.",
                &format!("Node {name} status is now: NodeHasSufficientMemory"),
                "Updated Node Allocatable limit across pods",
                &format!("Node {name} status is now: NodeReady"),
                &format!("Node {name} event: Registered Node {name} in Controller"),
                &format!("Node {name} status is now: NodeNotSchedulable"),
            ]
            .iter()
            .all(|text| describe.contains(text))
        },
    );

    // Deletes, not evictions: client-go's DeleteOptions in protobuf.
    let out = control.kubectl(&[
        "drain",
        &name,
        "--force",
        "--ignore-daemonsets",
        "--disable-eviction",
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

const TWO_WEB: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: c, image: bosun.test/busybox:1, command: [sleep, '1000']}
"#;

fn budget_status(control: &Control) -> Value {
    control.get_json(&["pdb", "web"]).unwrap_or_default()["status"].clone()
}

/// Whether both web pods run on `node`.
fn both_on(control: &Control, node: &str) -> bool {
    let pods = web_pods(control);
    pods.len() == 2
        && pods.iter().all(|p| {
            p["spec"]["nodeName"] == node
                && control.container_running(p["metadata"]["name"].as_str().unwrap_or(""))
        })
}

#[test]
fn a_disruption_budget_holds_a_drain_back_until_it_allows_a_disruption() {
    let control = Control::start();
    let mut a = Node::new(93, &control);
    let mut b = Node::new(94, &control);
    a.start_agent();
    b.start_agent();
    let (name_a, name_b) = (a.name.clone(), b.name.clone());
    wait_logged("nodes Ready", &control, &a, Duration::from_secs(20), || {
        control.node_ready(&name_a) && control.node_ready(&name_b)
    });
    control.kubectl_ok(&["cordon", &name_b]);
    control.apply(TWO_WEB);
    wait_logged(
        "both web pods on a",
        &control,
        &a,
        Duration::from_secs(60),
        || both_on(&control, &name_a),
    );
    control.kubectl_ok(&[
        "create",
        "pdb",
        "web",
        "--selector=app=web",
        "--min-available=2",
    ]);
    wait_logged(
        "the budget allows nothing",
        &control,
        &a,
        Duration::from_secs(20),
        || {
            let s = budget_status(&control);
            s["currentHealthy"] == 2 && s["expectedPods"] == 2 && s["disruptionsAllowed"] == 0
        },
    );
    let table = control.kubectl_ok(&["get", "pdb", "web"]);
    assert!(
        table.contains("MIN AVAILABLE   MAX UNAVAILABLE   ALLOWED DISRUPTIONS"),
        "{table}"
    );
    assert!(
        table.contains("web    2               N/A               0"),
        "{table}"
    );
    control.kubectl_ok(&["uncordon", &name_b]);

    let out = control.kubectl(&["drain", &name_a, "--timeout=8s"]);
    assert!(!out.status.success());
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        said.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{said}"
    );
    assert_eq!(web_pods(&control).len(), 2, "no pod went");

    control.kubectl_ok(&[
        "patch",
        "pdb",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"minAvailable":1}}"#,
    ]);
    let out = control.kubectl(&["drain", &name_a, "--timeout=90s"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains(&format!("node/{name_a} drained")),
        "{}",
        stdout(&out)
    );
    wait_logged(
        "both web pods on b",
        &control,
        &b,
        Duration::from_secs(60),
        || both_on(&control, &name_b),
    );
}
