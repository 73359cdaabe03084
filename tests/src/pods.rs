//! What tests ask of a pod's status through the real kubectl, and a bounded wait that shows
//! the agent's and control's logs when it runs out.

use std::time::Duration;

use crate::{wait_until, Control, Node};

impl Control {
    /// Whether `pod`'s first container is running.
    pub fn container_running(&self, pod: &str) -> bool {
        self.get_json(&["pod", pod])
            .is_some_and(|p| p["status"]["containerStatuses"][0]["state"]["running"].is_object())
    }

    /// The reason and message of `pod`'s first container's Waiting state (empty if it is not
    /// waiting or the pod cannot be read).
    pub fn container_waiting(&self, pod: &str) -> (String, String) {
        let p = self.get_json(&["pod", pod]).unwrap_or_default();
        let w = &p["status"]["containerStatuses"][0]["state"]["waiting"];
        let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
        (s(&w["reason"]), s(&w["message"]))
    }

    /// `status.phase` of object `name` of `kind` (empty if it cannot be read).
    pub fn phase(&self, kind: &str, name: &str) -> String {
        self.get_json(&[kind, name])
            .and_then(|o| o["status"]["phase"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// [`wait_until`] that, when `limit` runs out, fails with the tails of `node`'s agent log and
/// `control`'s log.
pub fn wait_logged(
    what: &str,
    control: &Control,
    node: &Node,
    limit: Duration,
    f: impl FnMut() -> bool,
) {
    let wait = std::panic::AssertUnwindSafe(|| wait_until(what, limit, f));
    if std::panic::catch_unwind(wait).is_err() {
        let tail = |log: String| {
            let lines: Vec<String> = log.lines().rev().take(60).map(str::to_owned).collect();
            lines.into_iter().rev().collect::<Vec<_>>().join("\n")
        };
        panic!(
            "not within {limit:?}: {what}\n--- agent log (tail) ---\n{}\n--- control log (tail) ---\n{}",
            tail(node.log()),
            tail(control.log())
        );
    }
}

/// Waits (20 s, logs on failure) until `node` is Ready in `control`'s API.
pub fn wait_node_ready(control: &Control, node: &Node) {
    wait_logged("node Ready", control, node, Duration::from_secs(20), || {
        control.node_ready(&node.name)
    });
}
