//! The DaemonSet controller through the real kubectl: one pod per node that fits (a tainted
//! node without a toleration gets none), placed by the scheduler through the pinned node
//! affinity; a node that joins gets its pod; `kubectl rollout status daemonset` waits for
//! availability; a template change rolls the pods over to the new image; a deleted pod's
//! replacement waits until the old one has finished terminating. Node objects and pod
//! readiness stand in for agents (see `common::kubelets`).

mod common;

use std::time::{Duration, Instant};

use common::kubelets::FakeKubelets;
use common::{ok, Control, Streaming};
use serde_json::{json, Value};

fn node(control: &Control, name: &str, taints: Value) {
    let file = control.dir.path().join(format!("{name}.json"));
    let object = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": {"taints": taints}});
    std::fs::write(&file, object.to_string()).expect("write");
    ok(control.kubectl(&["create", "-f", file.to_str().expect("utf-8")]));
    let status = json!({"status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}});
    ok(control.kubectl(&[
        "patch",
        "node",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &status.to_string(),
    ]));
}

fn placed(control: &Control) -> Vec<(String, String)> {
    let list: Value = serde_json::from_str(&ok(control.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=agent",
        "-o",
        "json",
    ])))
    .expect("JSON");
    let mut out: Vec<(String, String)> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            (
                p["spec"]["nodeName"].as_str().unwrap_or("").to_owned(),
                p["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn wait_until(what: &str, control: &Control, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "not within 30 s: {what}\npods: {:?}\nds: {}",
            placed(control),
            ok(control.kubectl(&["get", "ds,pods", "-o", "yaml"]))
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn one_pod_per_fitting_node_and_rolling_updates() {
    let control = Control::start();
    let kubelets = FakeKubelets::start(&control, "default");
    node(&control, "n1", json!([]));
    node(&control, "n2", json!([]));
    node(
        &control,
        "gpu",
        json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
    );
    let labels = json!({"app": "agent"});
    let ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}}});
    let file = control.dir.path().join("ds.json");
    std::fs::write(&file, ds.to_string()).expect("write");
    ok(control.kubectl(&["apply", "-f", file.to_str().expect("utf-8")]));
    let one = |n: &str, image: &str| (n.to_owned(), image.to_owned());
    wait_until(
        "a pod on n1 and n2, none on the tainted node",
        &control,
        || placed(&control) == [one("n1", "busybox:1"), one("n2", "busybox:1")],
    );
    let done = ok(control.kubectl(&["rollout", "status", "daemonset/agent", "--timeout=30s"]));
    assert!(done.contains("successfully rolled out"), "{done}");
    let table = ok(control.kubectl(&["get", "ds", "agent"]));
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.split_whitespace().take(6).collect::<Vec<_>>()
                == ["agent", "2", "2", "2", "2", "2"]),
        "{table}"
    );

    node(&control, "n3", json!([]));
    wait_until("the new node gets its pod", &control, || {
        placed(&control).len() == 3
    });

    ok(control.kubectl(&["set", "image", "daemonset/agent", "c=busybox:2"]));
    wait_until("every pod runs the new image", &control, || {
        placed(&control)
            == [
                one("n1", "busybox:2"),
                one("n2", "busybox:2"),
                one("n3", "busybox:2"),
            ]
    });
    ok(control.kubectl(&["rollout", "status", "daemonset/agent", "--timeout=30s"]));
    let describe = ok(control.kubectl(&["describe", "ds", "agent"]));
    assert!(
        describe.contains("SuccessfulCreate") && describe.contains("SuccessfulDelete"),
        "{describe}"
    );

    // A deleted daemon pod terminates first; its replacement comes once it is gone.
    let names = ok(control.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=agent",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName}{\"\\n\"}{end}",
    ]));
    let old = names
        .lines()
        .find(|l| l.ends_with(" n1"))
        .and_then(|l| l.split(' ').next())
        .expect("the pod on n1")
        .to_owned();
    let watch = Streaming::spawn(
        &control.kubeconfig(),
        &[
            "get",
            "pods",
            "-l",
            "app=agent",
            "-w",
            "--output-watch-events",
            "--no-headers",
        ],
    );
    watch.wait_for(&old, Duration::from_secs(10));
    drop(kubelets);
    ok(control.kubectl(&["delete", "pod", &old, "--wait=false"]));
    let mut seen = watch.wait_for("Terminating", Duration::from_secs(10));
    let _kubelets = FakeKubelets::start(&control, "default");
    loop {
        let lines = watch.wait_for(&old, Duration::from_secs(30));
        let deleted = lines.last().is_some_and(|l| l.starts_with("DELETED"));
        seen.extend(lines);
        if deleted {
            break;
        }
    }
    let early: Vec<&String> = seen
        .iter()
        .filter(|l| {
            l.starts_with("ADDED")
                && !names
                    .lines()
                    .any(|n| l.contains(n.split(' ').next().unwrap_or("-")))
        })
        .collect();
    assert!(
        early.is_empty(),
        "a replacement before the old pod was gone: {seen:#?}"
    );
    wait_until("n1 has its pod again", &control, || {
        placed(&control).len() == 3
    });
}

#[test]
fn rollout_history_and_undo_through_controller_revisions() {
    let control = Control::start();
    let _kubelets = FakeKubelets::start(&control, "default");
    node(&control, "n1", json!([]));
    let labels = json!({"app": "agent"});
    let ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}}});
    let file = control.dir.path().join("ds.json");
    std::fs::write(&file, ds.to_string()).expect("write");
    ok(control.kubectl(&["apply", "-f", file.to_str().expect("utf-8")]));
    let one = |image: &str| vec![("n1".to_owned(), image.to_owned())];
    wait_until("busybox:1 on n1", &control, || {
        placed(&control) == one("busybox:1")
    });
    ok(control.kubectl(&["set", "image", "daemonset/agent", "c=busybox:2"]));
    wait_until("busybox:2 on n1", &control, || {
        placed(&control) == one("busybox:2")
    });

    // Two revisions, the current one newest; each restores its own template.
    wait_until("two revisions", &control, || {
        let history = ok(control.kubectl(&["rollout", "history", "daemonset/agent"]));
        history.lines().any(|l| l.starts_with("1 ")) && history.lines().any(|l| l.starts_with("2 "))
    });
    let first = ok(control.kubectl(&["rollout", "history", "daemonset/agent", "--revision=1"]));
    assert!(first.contains("busybox:1"), "{first}");
    let revisions: Value = serde_json::from_str(&ok(control.kubectl(&[
        "get",
        "controllerrevisions",
        "-o",
        "json",
    ])))
    .expect("JSON");
    let items = revisions["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 2, "{revisions:#}");
    for r in &items {
        let owner = &r["metadata"]["ownerReferences"][0];
        assert_eq!(
            (owner["kind"].as_str(), owner["controller"].as_bool()),
            (Some("DaemonSet"), Some(true))
        );
        assert!(
            r["metadata"]["labels"]["controller-revision-hash"].is_string(),
            "{r:#}"
        );
    }

    // Undo: back to busybox:1, now revision 3.
    let undone = ok(control.kubectl(&["rollout", "undo", "daemonset/agent"]));
    assert!(undone.contains("rolled back"), "{undone}");
    wait_until("busybox:1 again", &control, || {
        placed(&control) == one("busybox:1")
    });
    wait_until("the restored template is revision 3", &control, || {
        let history = ok(control.kubectl(&["rollout", "history", "daemonset/agent"]));
        let revisions: Vec<&str> = history
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|w| w.parse::<u32>().is_ok())
            .collect();
        revisions == ["2", "3"]
    });
    // Deleting the DaemonSet takes its history with it (garbage collection by owner).
    ok(control.kubectl(&["delete", "daemonset/agent"]));
    wait_until("no revision left", &control, || {
        ok(control.kubectl(&["get", "controllerrevisions", "-o", "name"]))
            .trim()
            .is_empty()
    });
}
