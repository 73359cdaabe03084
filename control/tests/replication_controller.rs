//! core/v1 ReplicationControllers through the real kubectl: selector and labels defaulted from
//! the template, pods made and owned by the controller, `get rc` (and `-o wide`) in kubectl's
//! columns, `kubectl scale rc`, `describe rc` with the controller's events, kube's validation
//! words, and `kubectl apply --prune` with its default allow-list (which names
//! ReplicationControllers, so it failed when they were not served) pruning a
//! ReplicationController whose pods then go with it.

mod common;

use std::time::{Duration, Instant};

use common::{ok, stderr, stdout, Control};
use serde_json::Value;

const RC: &str = r#"{"apiVersion": "v1", "kind": "ReplicationController",
  "metadata": {"name": "web"},
  "spec": {"replicas": 3,
           "template": {"metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}"#;

const ONLY_A_CONFIGMAP: &str = r#"{"apiVersion": "v1", "kind": "ConfigMap",
  "metadata": {"name": "settings", "labels": {"app": "web"}}, "data": {"a": "1"}}"#;

fn write(control: &Control, name: &str, text: &str) -> String {
    let file = control.dir.path().join(name);
    std::fs::write(&file, text).expect("write the manifest");
    file.to_str().expect("utf-8 path").to_owned()
}

fn pods(control: &Control) -> Vec<Value> {
    let out = ok(control.kubectl(&["get", "pods", "-l", "app=web", "-o", "json"]));
    let list: Value = serde_json::from_str(&out).expect("JSON");
    list["items"].as_array().cloned().unwrap_or_default()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_replication_controller_keeps_its_pods_scales_and_is_pruned() {
    let control = Control::start();
    let rc = write(&control, "rc.json", RC);
    ok(control.kubectl(&["apply", "-f", &rc]));
    let stored: Value =
        serde_json::from_str(&ok(control.kubectl(&["get", "rc", "web", "-o", "json"])))
            .expect("JSON");
    assert_eq!(stored["spec"]["selector"]["app"], "web", "{stored:#}");
    assert_eq!(stored["metadata"]["labels"]["app"], "web", "{stored:#}");
    assert_eq!(stored["metadata"]["generation"], 1, "{stored:#}");

    wait_until("three pods", || pods(&control).len() == 3);
    let owner = &pods(&control)[0]["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "ReplicationController", "{owner}");
    assert_eq!(owner["apiVersion"], "v1", "{owner}");
    assert_eq!(owner["controller"], true, "{owner}");
    wait_until("status.replicas 3", || {
        let table = ok(control.kubectl(&["get", "rc", "web", "--no-headers"]));
        table.split_whitespace().take(4).collect::<Vec<_>>() == ["web", "3", "3", "0"]
    });
    let wide = ok(control.kubectl(&["get", "rc", "-o", "wide"]));
    assert_eq!(
        common::header(&wide),
        [
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ],
        "{wide}"
    );
    assert!(
        wide.lines().nth(1).is_some_and(|l| l.ends_with("app=web")),
        "{wide}"
    );

    ok(control.kubectl(&["scale", "rc", "web", "--replicas=1"]));
    wait_until("one pod", || pods(&control).len() == 1);
    let mut described = String::new();
    let shown = |d: &str| {
        d.contains("Replicas:     1 current / 1 desired")
            && d.contains("Pods Status:  0 Running / 1 Waiting")
            && d.contains("replication-controller  Created pod:")
            && d.contains("SuccessfulDelete")
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !shown(&described) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        described = ok(control.kubectl(&["describe", "rc", "web"]));
    }
    assert!(shown(&described), "{described}");

    // kube's words for a template the selector does not match.
    let bad = RC.replace(
        r#""replicas": 3,"#,
        r#""replicas": 3, "selector": {"app": "db"},"#,
    );
    let out = control.kubectl(&["apply", "-f", &write(&control, "bad.json", &bad)]);
    assert!(
        stderr(&out).contains("spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: selector does not match template labels"),
        "{}",
        stderr(&out)
    );

    // apply --prune with kubectl's default allow-list: the ReplicationController carries the
    // label and is not in the file, so it goes, and its pod with it.
    let file = write(&control, "cm.json", ONLY_A_CONFIGMAP);
    let out = control.kubectl(&["apply", "--prune", "-l", "app=web", "-f", &file]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("replicationcontroller/web pruned"),
        "{}",
        stdout(&out)
    );
    wait_until("the pod gone with its controller", || {
        pods(&control).is_empty()
    });
}
