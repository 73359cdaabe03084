//! Graceful pod deletion through the real kubectl, as kube-apiserver does it: a pod bound to a
//! node is marked (deletionTimestamp, deletionGracePeriodSeconds, STATUS Terminating) and stays
//! until its kubelet — here the fake kubelets of `common::kubelets` — deletes it with grace 0
//! and its uid; a waiting `kubectl delete` returns once it is gone. A later delete only
//! shortens the grace; `--force --grace-period=0` and an unbound pod go at once; a collection
//! delete marks too; finalizers still hold a pod whose grace is over; the pod garbage collector
//! force-deletes a pod bound to a node that does not exist.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::kubelets::FakeKubelets;
use common::{ok, stderr, stdout, Control};
use serde_json::{json, Value};

fn create(control: &Control, name: &str, object: &Value) {
    let file = control.dir.path().join(format!("{name}.json"));
    std::fs::write(&file, object.to_string()).expect("write");
    ok(control.kubectl(&["create", "-f", file.to_str().expect("utf-8")]));
}

fn pod(name: &str, spec: Value) -> Value {
    let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    if let (Some(s), Some(add)) = (p["spec"].as_object_mut(), spec.as_object()) {
        s.extend(add.clone());
    }
    p
}

fn get(control: &Control, name: &str) -> Option<Value> {
    let out = control.kubectl(&["get", "pod", name, "-o", "json"]);
    if !out.status.success() {
        assert!(stderr(&out).contains("NotFound"), "{}", stderr(&out));
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn grace(control: &Control, name: &str) -> Option<i64> {
    get(control, name)?["metadata"]["deletionGracePeriodSeconds"].as_i64()
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
fn bound_pods_terminate_until_their_kubelet_finishes_them() {
    let control = Control::start();
    create(
        &control,
        "n1",
        &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}),
    );
    let bound = |name: &str, grace: i64| {
        pod(
            name,
            json!({"nodeName": "n1", "terminationGracePeriodSeconds": grace}),
        )
    };
    create(&control, "web", &bound("web", 30));

    // Marked, not deleted: Terminating with the pod's own grace.
    let out = ok(control.kubectl(&["delete", "pod", "web", "--wait=false"]));
    assert!(out.contains(r#"pod "web" deleted"#), "{out}");
    let web = get(&control, "web").expect("the pod stays while it terminates");
    assert!(web["metadata"]["deletionTimestamp"].is_string(), "{web:#}");
    assert_eq!(web["metadata"]["deletionGracePeriodSeconds"], 30);
    let table = ok(control.kubectl(&["get", "pods"]));
    let row = table.lines().find(|l| l.starts_with("web ")).unwrap_or("");
    assert!(row.contains("Terminating"), "{table}");

    // A later delete shortens the grace, never lengthens it.
    ok(control.kubectl(&["delete", "pod", "web", "--grace-period=60", "--wait=false"]));
    assert_eq!(grace(&control, "web"), Some(30));
    ok(control.kubectl(&["delete", "pod", "web", "--grace-period=10", "--wait=false"]));
    assert_eq!(grace(&control, "web"), Some(10));

    // The kubelet's final delete names the uid: another uid is refused and changes nothing.
    let body = control.dir.path().join("wrong-uid.json");
    std::fs::write(
        &body,
        json!({"gracePeriodSeconds": 0, "preconditions": {"uid": "not-the-uid"}}).to_string(),
    )
    .expect("write");
    let out = control.kubectl(&[
        "delete",
        "--raw",
        "/api/v1/namespaces/default/pods/web",
        "-f",
        body.to_str().expect("utf-8"),
    ]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("Precondition failed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(grace(&control, "web"), Some(10));

    // A waiting `kubectl delete` returns once the kubelet has finished the pod.
    let mut waiting = Command::new("kubectl")
        .env("KUBECONFIG", control.kubeconfig())
        .env("HOME", control.dir.path())
        .args(["delete", "pod", "web", "--timeout=30s"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl delete");
    let kubelets = FakeKubelets::start(&control, "default");
    let deadline = Instant::now() + Duration::from_secs(30);
    while waiting.try_wait().expect("kubectl delete").is_none() {
        assert!(Instant::now() < deadline, "kubectl delete still waiting");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = waiting.wait_with_output().expect("kubectl delete");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(get(&control, "web").is_none(), "the pod is gone");

    // A collection delete marks the bound pods too; the kubelet finishes them.
    create(&control, "a", &bound("a", 30));
    create(&control, "b", &bound("b", 30));
    wait_until("the kubelet reports a and b", &control, || {
        ["a", "b"]
            .iter()
            .all(|p| get(&control, p).is_some_and(|p| p["status"]["phase"] == "Running"))
    });
    drop(kubelets);
    let list = control.kubectl(&["delete", "--raw", "/api/v1/namespaces/default/pods"]);
    assert!(list.status.success(), "{}", stderr(&list));
    assert_eq!(grace(&control, "a"), Some(30));
    assert_eq!(grace(&control, "b"), Some(30));
    let kubelets = FakeKubelets::start(&control, "default");
    wait_until("a and b finished by the kubelet", &control, || {
        get(&control, "a").is_none() && get(&control, "b").is_none()
    });

    // A finalizer still holds a pod whose grace is over.
    let mut held = bound("held", 30);
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    create(&control, "held", &held);
    ok(control.kubectl(&["delete", "pod", "held", "--wait=false"]));
    wait_until("the kubelet ended the held pod's grace", &control, || {
        grace(&control, "held") == Some(0)
    });
    ok(control.kubectl(&[
        "patch",
        "pod",
        "held",
        "--type=json",
        "-p",
        r#"[{"op": "remove", "path": "/metadata/finalizers"}]"#,
    ]));
    assert!(get(&control, "held").is_none(), "gone with its finalizer");
    drop(kubelets);

    // --force --grace-period=0 deletes at once, with no kubelet to finish it.
    create(&control, "forced", &bound("forced", 30));
    let out = control.kubectl(&["delete", "pod", "forced", "--force", "--grace-period=0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(r#"pod "forced" force deleted"#));
    assert!(get(&control, "forced").is_none(), "deleted at once");

    // A pod no node holds has nothing to terminate: deleted at once.
    create(
        &control,
        "unbound",
        &pod("unbound", json!({"nodeSelector": {"no": "such-node"}})),
    );
    ok(control.kubectl(&["delete", "pod", "unbound", "--wait=false"]));
    assert!(get(&control, "unbound").is_none(), "deleted at once");
}

#[test]
fn pods_of_a_node_that_does_not_exist_are_collected() {
    let control = Control::start_with(&["--pod-gc-orphan-quarantine", "1s"]);
    create(
        &control,
        "orphan",
        &pod("orphan", json!({"nodeName": "no-such-node"})),
    );
    wait_until(
        "the pod garbage collector deletes the orphan",
        &control,
        || get(&control, "orphan").is_none(),
    );
    let reasons = ok(control.kubectl(&[
        "get",
        "events",
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
    ]));
    assert!(
        reasons.contains(r#"PodGC: Force-deleted: its node "no-such-node" does not exist"#),
        "{reasons}"
    );
}
