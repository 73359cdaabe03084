//! Preemption end to end on a real node: two pods of a low PriorityClass take most of the
//! node's CPU (requests sized from the node's own allocatable), a pod of a high class that
//! fits nowhere makes the scheduler evict one of them (DisruptionTarget condition, a
//! `Preempted` event), the node's agent stops the victim's container, and the high pod runs
//! on the room it was nominated to; the other low pod keeps running.

use std::time::Duration;

use bosun_e2e::{wait_logged, wait_node_ready, Control, Node};

fn pod(name: &str, class: &str, milli: i64) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  priorityClassName: {class}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: bosun.test/busybox:1\n    command: [sleep, '1000']\n    resources: {{requests: {{cpu: {milli}m}}}}\n"
    )
}

#[test]
fn a_high_priority_pod_preempts_a_low_one_on_a_full_node() {
    let control = Control::start();
    let mut node = Node::new(93, &control);
    node.start_agent();
    wait_node_ready(&control, &node);
    let allocatable = control
        .get_json(&["node", &node.name])
        .and_then(|n| {
            n["status"]["allocatable"]["cpu"]
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let cores: f64 = allocatable.trim_end_matches('m').parse().unwrap_or(0.0);
    let milli = if allocatable.ends_with('m') {
        cores
    } else {
        cores * 1000.0
    };
    assert!(
        milli >= 100.0,
        "the node's allocatable cpu: {allocatable:?}"
    );
    // Two fit, a third does not.
    let share = (milli * 0.45) as i64;
    control.kubectl_ok(&["create", "priorityclass", "low", "--value=10"]);
    control.kubectl_ok(&["create", "priorityclass", "high", "--value=1000"]);
    control.apply(&pod("low-a", "low", share));
    control.apply(&pod("low-b", "low", share));
    wait_logged(
        "both low pods running",
        &control,
        &node,
        Duration::from_secs(60),
        || control.container_running("low-a") && control.container_running("low-b"),
    );

    control.apply(&pod("urgent", "high", share));
    wait_logged(
        "the urgent pod running",
        &control,
        &node,
        Duration::from_secs(60),
        || control.container_running("urgent"),
    );
    let nominated = control
        .get_json(&["pod", "urgent"])
        .and_then(|p| p["status"]["nominatedNodeName"].as_str().map(str::to_owned));
    assert_eq!(nominated.as_deref(), Some(node.name.as_str()));
    let marked: Vec<&str> = ["low-a", "low-b"]
        .into_iter()
        .filter(|p| {
            control
                .get_json(&["pod", p])
                .is_none_or(|pod| !pod["metadata"]["deletionTimestamp"].is_null())
        })
        .collect();
    assert_eq!(marked.len(), 1, "one low pod preempted: {marked:?}");
    let (victim, survivor) = match marked[0] {
        "low-a" => ("low-a", "low-b"),
        _ => ("low-b", "low-a"),
    };
    let events = control.kubectl_ok(&["get", "events", "--field-selector", "reason=Preempted"]);
    assert!(events.contains("Preempted by pod"), "{events}");
    // The victim is gone once its agent stopped it; the other low pod runs on.
    wait_logged(
        "the victim deleted",
        &control,
        &node,
        Duration::from_secs(60),
        || control.get_json(&["pod", victim]).is_none(),
    );
    assert!(control.container_running(survivor), "{survivor} still runs");
}
