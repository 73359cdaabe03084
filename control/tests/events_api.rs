//! Events at both of their APIs, through the real kubectl: core/v1 and events.k8s.io/v1 are
//! one set of stored events (as in kube-apiserver), with events.k8s.io/v1's field names
//! (`note`, `regarding`, `reportingController`, `deprecatedCount`, …) converted both ways.

mod common;

use common::{ok, Control};
use serde_json::Value;

#[test]
fn core_and_events_k8s_io_events_are_one_set_in_two_shapes() {
    let control = Control::start();
    // Written at events.k8s.io/v1 …
    let v1 = r#"{"apiVersion": "events.k8s.io/v1", "kind": "Event",
      "metadata": {"name": "web.1", "namespace": "default"},
      "eventTime": "2026-12-02T12:00:00.000000Z", "type": "Normal", "reason": "Started",
      "action": "Start", "note": "Started container web",
      "regarding": {"apiVersion": "v1", "kind": "Pod", "name": "web", "namespace": "default"},
      "reportingController": "kubelet", "reportingInstance": "node-1"}"#;
    let file = control.dir.path().join("v1.json");
    std::fs::write(&file, v1).expect("write");
    ok(control.kubectl(&["create", "-f", file.to_str().expect("utf-8")]));
    // … read at core/v1.
    let core: Value = serde_json::from_str(&ok(
        control.kubectl(&["get", "event", "web.1", "-o", "json"])
    ))
    .expect("json");
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["message"], "Started container web", "{core:#}");
    assert_eq!(core["involvedObject"]["name"], "web");
    assert_eq!(core["reportingComponent"], "kubelet");
    assert!(core.get("note").is_none(), "{core:#}");
    let table = ok(control.kubectl(&["get", "events"]));
    assert!(
        table.contains("pod/web") && table.contains("Started container web"),
        "{table}"
    );

    // Written at core/v1 …
    let core_event = r#"{"apiVersion": "v1", "kind": "Event",
      "metadata": {"name": "web.2", "namespace": "default"},
      "type": "Warning", "reason": "BackOff", "message": "Back-off restarting failed container",
      "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": "web", "namespace": "default"},
      "source": {"component": "kubelet", "host": "node-1"}, "count": 3,
      "firstTimestamp": "2026-12-02T12:00:00Z", "lastTimestamp": "2026-12-02T12:01:00Z"}"#;
    let file = control.dir.path().join("core.json");
    std::fs::write(&file, core_event).expect("write");
    ok(control.kubectl(&["create", "-f", file.to_str().expect("utf-8")]));
    // … read at events.k8s.io/v1, in its shape.
    let list: Value = serde_json::from_str(&ok(control.kubectl(&[
        "get",
        "events.v1.events.k8s.io",
        "-o",
        "json",
    ])))
    .expect("json");
    let items = list["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 2, "{list:#}");
    let backoff = items
        .iter()
        .find(|e| e["metadata"]["name"] == "web.2")
        .expect("web.2");
    assert_eq!(backoff["apiVersion"], "events.k8s.io/v1");
    assert_eq!(backoff["note"], "Back-off restarting failed container");
    assert_eq!(backoff["regarding"]["name"], "web");
    assert_eq!(backoff["deprecatedCount"], 3);
    assert_eq!(backoff["deprecatedSource"]["host"], "node-1");
    assert!(backoff.get("message").is_none(), "{backoff:#}");
    let table = ok(control.kubectl(&["get", "events.v1.events.k8s.io"]));
    assert!(
        table.contains("BackOff") && table.contains("pod/web"),
        "{table}"
    );
    // Deleting at one API deletes the one event.
    ok(control.kubectl(&["delete", "events.v1.events.k8s.io", "web.1"]));
    let left = ok(control.kubectl(&["get", "events", "-o", "name"]));
    assert_eq!(left.trim(), "event/web.2", "{left}");
}
