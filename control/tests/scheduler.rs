//! The scheduler through the real kubectl: a Deployment's pods spread over two nodes, a pod
//! that fits nowhere stays Pending with kube-scheduler's FailedScheduling message and lands as
//! soon as a node with room appears, nodeSelector and `kubectl cordon` steer placement; a
//! pod of higher priority preempts one of lower priority (not with `preemptionPolicy: Never`).
//!
//! The Node objects are made with kubectl and marked Ready through their `status` subresource:
//! they stand in for agents, which register their own Nodes (the cluster issue's node side).

mod common;

use std::time::{Duration, Instant};

use common::{ok, Control};
use serde_json::{json, Value};

fn node(control: &Control, name: &str, cpu: &str, labels: Value) {
    let file = control.dir.path().join(format!("{name}.json"));
    let object =
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}});
    std::fs::write(&file, object.to_string()).expect("write");
    ok(control.kubectl(&["create", "-f", file.to_str().expect("utf-8")]));
    let status = json!({"status": {
        "capacity": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
        "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "message": "kubelet is posting ready status"}]}});
    ok(control.kubectl(&[
        "patch",
        "node",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &status.to_string(),
    ]));
    // The node lifecycle controller may have tainted the node while it had no Ready status
    // yet (as Kubernetes does for a registering node); wait until it has seen it Ready.
    wait_until("the node untainted", control, || {
        let node = ok(control.kubectl(&["get", "node", name, "-o", "jsonpath={.spec.taints}"]));
        node.trim().is_empty()
    });
}

fn create(control: &Control, name: &str, object: &Value) {
    let file = control.dir.path().join(format!("{name}.json"));
    std::fs::write(&file, object.to_string()).expect("write");
    ok(control.kubectl(&["create", "-f", file.to_str().expect("utf-8")]));
}

fn pod(name: &str, cpu: &str, spec: Value) -> Value {
    let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}]}});
    if let (Some(s), Some(add)) = (p["spec"].as_object_mut(), spec.as_object()) {
        s.extend(add.clone());
    }
    p
}

fn node_of(control: &Control, pod: &str) -> String {
    ok(control.kubectl(&["get", "pod", pod, "-o", "jsonpath={.spec.nodeName}"]))
}

fn wait_until(what: &str, control: &Control, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "not within 30 s: {what}\nserver log:\n{}",
            control.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn pods_spread_wait_for_room_and_follow_selectors_and_cordons() {
    let control = Control::start();
    node(&control, "n1", "2", json!({"disk": "ssd"}));
    node(&control, "n2", "2", json!({}));

    let labels = json!({"app": "web"});
    create(
        &control,
        "web",
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 4, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": pod("x", "500m", json!({}))["spec"]}}}),
    );
    wait_until("four web pods placed two per node", &control, || {
        let out = ok(control.kubectl(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={range .items[*]}{.spec.nodeName}{\"\\n\"}{end}",
        ]));
        let placed: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
        placed.len() == 4 && placed.iter().filter(|n| **n == "n1").count() == 2
    });
    let wide = ok(control.kubectl(&["get", "pods", "-o", "wide"]));
    assert!(wide.contains("n1") && wide.contains("n2"), "{wide}");

    create(&control, "big", &pod("big", "3", json!({})));
    let message = "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.";
    wait_until("the big pod is unschedulable", &control, || {
        let condition = ok(control.kubectl(&[
            "get",
            "pod",
            "big",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].message}",
        ]));
        condition == message
    });
    let describe = ok(control.kubectl(&["describe", "pod", "big"]));
    assert!(
        describe.contains("FailedScheduling") && describe.contains("2 Insufficient cpu"),
        "{describe}"
    );
    assert!(describe.contains("Pending"), "{describe}");
    // The default tolerations of a lost node's taints (DefaultTolerationSeconds admission).
    for taint in ["not-ready", "unreachable"] {
        let line = format!("node.kubernetes.io/{taint}:NoExecute op=Exists for 300s");
        assert!(describe.contains(&line), "{describe}");
    }

    create(
        &control,
        "ssd",
        &pod("ssd", "100m", json!({"nodeSelector": {"disk": "ssd"}})),
    );
    wait_until("the ssd pod is on n1", &control, || {
        node_of(&control, "ssd") == "n1"
    });
    let describe = ok(control.kubectl(&["describe", "pod", "ssd"]));
    assert!(
        describe.contains("Successfully assigned default/ssd to n1"),
        "{describe}"
    );

    ok(control.kubectl(&["cordon", "n2"]));
    create(
        &control,
        "after-cordon",
        &pod("after-cordon", "100m", json!({})),
    );
    wait_until("a new pod avoids the cordoned node", &control, || {
        node_of(&control, "after-cordon") == "n1"
    });

    node(&control, "n3", "8", json!({}));
    wait_until("the big pod lands once a node has room", &control, || {
        node_of(&control, "big") == "n3"
    });
    let scheduled = ok(control.kubectl(&[
        "get",
        "pod",
        "big",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].status}",
    ]));
    assert_eq!(scheduled, "True");
}

fn pod_field(control: &Control, pod: &str, path: &str) -> String {
    ok(control.kubectl(&["get", "pod", pod, "-o", &format!("jsonpath={{{path}}}")]))
}

#[test]
fn a_pod_of_higher_priority_preempts_one_of_lower_priority() {
    let control = Control::start();
    node(&control, "n1", "1", json!({}));
    ok(control.kubectl(&["create", "priorityclass", "low", "--value=10"]));
    ok(control.kubectl(&["create", "priorityclass", "high", "--value=1000"]));
    ok(control.kubectl(&[
        "create",
        "priorityclass",
        "polite",
        "--value=1000",
        "--preemption-policy=Never",
    ]));
    for name in ["low-a", "low-b"] {
        create(
            &control,
            name,
            &pod(name, "400m", json!({"priorityClassName": "low"})),
        );
    }
    wait_until("both low pods on n1", &control, || {
        node_of(&control, "low-a") == "n1" && node_of(&control, "low-b") == "n1"
    });

    create(
        &control,
        "polite",
        &pod("polite", "500m", json!({"priorityClassName": "polite"})),
    );
    let message = "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.";
    wait_until("the polite pod waits", &control, || {
        pod_field(
            &control,
            "polite",
            ".status.conditions[?(@.type==\"PodScheduled\")].message",
        ) == message
    });
    ok(control.kubectl(&["delete", "pod", "polite", "--wait=false"]));

    create(
        &control,
        "urgent",
        &pod("urgent", "500m", json!({"priorityClassName": "high"})),
    );
    wait_until("the urgent pod runs on n1", &control, || {
        node_of(&control, "urgent") == "n1"
    });
    assert_eq!(
        pod_field(&control, "urgent", ".status.nominatedNodeName"),
        "n1"
    );
    let leaving: Vec<&str> = ["low-a", "low-b"]
        .into_iter()
        .filter(|p| !pod_field(&control, p, ".metadata.deletionTimestamp").is_empty())
        .collect();
    assert_eq!(leaving.len(), 1, "one victim is enough: {leaving:?}");
    let victim = leaving[0];
    assert_eq!(
        pod_field(
            &control,
            victim,
            ".status.conditions[?(@.type==\"DisruptionTarget\")].reason"
        ),
        "PreemptionByScheduler"
    );
    let uid = pod_field(&control, "urgent", ".metadata.uid");
    let events = ok(control.kubectl(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={victim}"),
    ]));
    assert!(
        events.contains("Preempted")
            && events.contains(&format!("Preempted by pod {uid} on node n1")),
        "{events}"
    );
}
