//! kubelet's events about its Node, from the image garbage collection: an agent whose
//! thresholds cannot be met (high 1%, low 0%: the filesystem under the test's temp directory is
//! never empty) and whose only image was imported a moment ago (kubelet's 2-minute minimum age
//! keeps it) reports FreeDiskSpaceFailed about its Node at every pass (every second here), and
//! ImageGCFailed once a failure repeats — events `kubectl describe node` shows.

use std::time::Duration;

use bosun_e2e::{wait_until, Control, Node};
use serde_json::Value;

/// The reasons of the events about Node `node`.
fn node_event_reasons(control: &Control, node: &str) -> Vec<String> {
    let events = control
        .get_json(&["events", "-n", "default"])
        .unwrap_or(Value::Null);
    events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["kind"] == "Node" && e["involvedObject"]["name"] == node)
        .filter_map(|e| e["reason"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn image_gc_failures_are_events_of_the_node() {
    let control = Control::start();
    let mut node = Node::new(68, &control);
    node.add_agent_flags(&[
        "--image-gc-high-threshold",
        "1",
        "--image-gc-low-threshold",
        "0",
        "--image-gc-period",
        "1s",
    ]);
    node.start_agent();
    let name = node.name.clone();
    wait_until(
        "FreeDiskSpaceFailed and ImageGCFailed events of the node",
        Duration::from_secs(40),
        || {
            let reasons = node_event_reasons(&control, &name);
            reasons.iter().any(|r| r == "FreeDiskSpaceFailed")
                && reasons.iter().any(|r| r == "ImageGCFailed")
        },
    );
    let events = control.kubectl_ok(&["get", "events", "-n", "default", "-o", "json"]);
    assert!(
        events.contains("Failed to garbage collect required amount of images."),
        "{events}"
    );
    let described = control.kubectl_ok(&["describe", "node", &name]);
    assert!(described.contains("FreeDiskSpaceFailed"), "{described}");
    assert!(
        node.log().contains("FreeDiskSpaceFailed"),
        "the agent logs it too:\n{}",
        node.log()
    );
}
