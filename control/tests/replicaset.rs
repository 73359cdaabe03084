//! The ReplicaSet controller through the real kubectl: a ReplicaSet gets its pods (owned by
//! it, made from its template), `kubectl scale` both ways, a deleted pod is replaced, a
//! matching orphan pod is adopted, `describe` shows the controller's events, the status counts
//! what exists, and deleting the ReplicaSet removes its pods (garbage collector).

mod common;

use std::time::{Duration, Instant};

use common::{ok, stdout, Control};
use serde_json::Value;

const RS: &str = r#"{"apiVersion": "apps/v1", "kind": "ReplicaSet",
  "metadata": {"name": "web", "labels": {"app": "web"}},
  "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
           "template": {"metadata": {"labels": {"app": "web", "tier": "front"}},
                        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}"#;

const ORPHAN: &str = r#"{"apiVersion": "v1", "kind": "Pod",
  "metadata": {"name": "stray", "labels": {"app": "web"}},
  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}"#;

fn apply(control: &Control, name: &str, text: &str) {
    let file = control.dir.path().join(name);
    std::fs::write(&file, text).expect("write the manifest");
    ok(control.kubectl(&["apply", "-f", file.to_str().expect("utf-8 path")]));
}

fn pods(control: &Control) -> Vec<Value> {
    let out = ok(control.kubectl(&["get", "pods", "-l", "app=web", "-o", "json"]));
    let list: Value = serde_json::from_str(&out).expect("JSON");
    list["items"].as_array().cloned().unwrap_or_default()
}

fn names(pods: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = pods
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

fn wait_until(what: &str, control: &Control, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "not within 20 s: {what}\nserver log:\n{}",
            control.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_replicaset_keeps_its_pods() {
    let control = Control::start();
    apply(&control, "orphan.json", ORPHAN);
    apply(&control, "rs.json", RS);
    wait_until("three pods, the orphan adopted", &control, || {
        pods(&control).len() == 3
    });
    let rs_uid = ok(control.kubectl(&["get", "rs", "web", "-o", "jsonpath={.metadata.uid}"]));
    for pod in pods(&control) {
        let owner = &pod["metadata"]["ownerReferences"][0];
        assert_eq!(owner["uid"], rs_uid.as_str(), "{pod:#}");
        assert_eq!(owner["controller"], true);
        let name = pod["metadata"]["name"].as_str().unwrap_or("");
        if name != "stray" {
            assert!(name.starts_with("web-"), "{name}");
            assert_eq!(pod["metadata"]["labels"]["tier"], "front");
        }
    }
    wait_until("status.replicas is 3", &control, || {
        stdout(&control.kubectl(&[
            "get",
            "rs",
            "web",
            "-o",
            "jsonpath={.status.replicas}/{.status.observedGeneration}",
        ])) == "3/1"
    });
    let table = ok(control.kubectl(&["get", "rs", "web"]));
    assert!(
        table.contains("DESIRED")
            && table.lines().nth(1).is_some_and(|l| l
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                == ["web", "3", "3"]),
        "{table}"
    );

    ok(control.kubectl(&["scale", "rs", "web", "--replicas=5"]));
    wait_until("five pods", &control, || pods(&control).len() == 5);
    ok(control.kubectl(&["scale", "rs", "web", "--replicas=2"]));
    wait_until("two pods", &control, || pods(&control).len() == 2);

    let before = names(&pods(&control));
    ok(control.kubectl(&["delete", "pod", &before[0]]));
    wait_until("the deleted pod is replaced", &control, || {
        let now = names(&pods(&control));
        now.len() == 2 && !now.contains(&before[0])
    });
    let describe = ok(control.kubectl(&["describe", "rs", "web"]));
    assert!(
        describe.contains("SuccessfulCreate") && describe.contains("Created pod: web-"),
        "{describe}"
    );
    assert!(describe.contains("SuccessfulDelete"), "{describe}");

    ok(control.kubectl(&["delete", "rs", "web"]));
    wait_until("the pods go with their ReplicaSet", &control, || {
        pods(&control).is_empty()
    });
}
