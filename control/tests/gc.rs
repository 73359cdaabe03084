//! The garbage collector through the real kubectl: `kubectl delete` with the default
//! (background) cascade removes a Deployment's ReplicaSet and that one's Pod; `--cascade=orphan`
//! leaves the ReplicaSet without its owner reference; `--cascade=foreground` keeps the owner
//! until a blocking dependent is gone; a dependent of two owners survives one of them; an
//! object created with an owner that does not exist is collected.

mod common;

use std::time::{Duration, Instant};

use common::{ok, stdout, Control};
use serde_json::{json, Value};

fn uid(control: &Control, what: &str) -> String {
    ok(control.kubectl(&["get", what, "-o", "jsonpath={.metadata.uid}"]))
}

fn owner(api_version: &str, kind: &str, name: &str, uid: &str, block: bool) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "name": name, "uid": uid,
           "controller": true, "blockOwnerDeletion": block})
}

fn create(control: &Control, object: &Value) {
    let file = control.dir.path().join(format!(
        "{}.json",
        object["metadata"]["name"].as_str().unwrap_or("object")
    ));
    std::fs::write(&file, object.to_string()).expect("write the manifest");
    ok(control.kubectl(&["create", "-f", file.to_str().expect("utf-8 path")]));
}

fn config_map(name: &str, owners: Vec<Value>, finalizers: &[&str]) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "ownerReferences": owners, "finalizers": finalizers},
           "data": {"k": "v"}})
}

/// The object as JSON, or `None` once it is NotFound.
fn read(control: &Control, what: &str) -> Option<Value> {
    let out = control.kubectl(&["get", what, "-o", "json"]);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("NotFound"), "kubectl get {what}: {err}");
        return None;
    }
    Some(serde_json::from_slice(&out.stdout).expect("kubectl prints JSON"))
}

/// Waits (bounded) until `done` holds.
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

/// A Deployment, a ReplicaSet it owns and a Pod the ReplicaSet owns, made by hand. The
/// ReplicaSet wants no replicas and the Pod is outside its selector with a non-controller
/// reference, so the ReplicaSet controller leaves both alone and only the collector acts.
fn deployment_tree(control: &Control) {
    let labels = json!({"app": "web"});
    let template = json!({"metadata": {"labels": labels},
                          "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    create(
        control,
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"selector": {"matchLabels": labels}, "template": template}}),
    );
    let deployment = uid(control, "deployment/web");
    create(
        control,
        &json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": "web-1", "labels": labels,
                             "ownerReferences": [owner("apps/v1", "Deployment", "web", &deployment, true)]},
                "spec": {"replicas": 0, "selector": {"matchLabels": labels}, "template": template}}),
    );
    let rs = uid(control, "replicaset/web-1");
    let mut reference = owner("apps/v1", "ReplicaSet", "web-1", &rs, true);
    reference["controller"] = json!(false);
    create(
        control,
        &json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web-1-a", "labels": {"app": "solo"},
                             "ownerReferences": [reference]},
                "spec": template["spec"]}),
    );
}

#[test]
fn background_deletion_collects_the_whole_tree() {
    let control = Control::start();
    deployment_tree(&control);
    ok(control.kubectl(&["delete", "deployment", "web"]));
    wait_until("the ReplicaSet and its Pod are collected", &control, || {
        read(&control, "replicaset/web-1").is_none() && read(&control, "pod/web-1-a").is_none()
    });
}

#[test]
fn orphan_deletion_keeps_dependents_without_the_reference() {
    let control = Control::start();
    deployment_tree(&control);
    ok(control.kubectl(&["delete", "deployment", "web", "--cascade=orphan"]));
    wait_until("the Deployment is gone", &control, || {
        read(&control, "deployment/web").is_none()
    });
    let rs = read(&control, "replicaset/web-1").expect("the ReplicaSet is orphaned, not deleted");
    assert!(rs["metadata"]["ownerReferences"].is_null(), "{rs:#}");
    assert!(rs["metadata"]["deletionTimestamp"].is_null(), "{rs:#}");
    let pod = read(&control, "pod/web-1-a").expect("the Pod keeps its ReplicaSet");
    assert_eq!(pod["metadata"]["ownerReferences"][0]["name"], "web-1");
}

#[test]
fn foreground_deletion_waits_for_blocking_dependents() {
    let control = Control::start();
    create(&control, &config_map("owner", vec![], &[]));
    let owner_uid = uid(&control, "configmap/owner");
    let reference = owner("v1", "ConfigMap", "owner", &owner_uid, true);
    create(
        &control,
        &config_map("held", vec![reference.clone()], &["example.com/hold"]),
    );
    let mut loose = reference;
    loose["blockOwnerDeletion"] = json!(false);
    loose["controller"] = json!(false);
    create(&control, &config_map("loose", vec![loose], &[]));
    ok(control.kubectl(&[
        "delete",
        "configmap",
        "owner",
        "--cascade=foreground",
        "--wait=false",
    ]));
    wait_until(
        "the blocking dependent is being deleted and the loose one is gone",
        &control,
        || {
            read(&control, "configmap/held")
                .is_some_and(|held| !held["metadata"]["deletionTimestamp"].is_null())
                && read(&control, "configmap/loose").is_none()
        },
    );
    let owner = read(&control, "configmap/owner").expect("the owner waits for its dependent");
    assert_eq!(
        owner["metadata"]["finalizers"],
        json!(["foregroundDeletion"])
    );
    assert!(!owner["metadata"]["deletionTimestamp"].is_null());
    ok(control.kubectl(&[
        "patch",
        "configmap",
        "held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]));
    wait_until("the owner goes once its dependent has", &control, || {
        read(&control, "configmap/owner").is_none()
    });
}

#[test]
fn a_dependent_of_two_owners_survives_one_and_dangling_owners_are_collected() {
    let control = Control::start();
    create(&control, &config_map("a", vec![], &[]));
    create(&control, &config_map("b", vec![], &[]));
    let (a, b) = (uid(&control, "configmap/a"), uid(&control, "configmap/b"));
    let mut second = owner("v1", "ConfigMap", "b", &b, false);
    second["controller"] = json!(false);
    create(
        &control,
        &config_map(
            "shared",
            vec![owner("v1", "ConfigMap", "a", &a, false), second],
            &[],
        ),
    );
    ok(control.kubectl(&["delete", "configmap", "a"]));
    wait_until("the shared dependent names only b", &control, || {
        read(&control, "configmap/shared").is_some_and(|s| {
            s["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|o| o.len() == 1 && o[0]["uid"] == json!(b))
        })
    });

    let ghost = owner(
        "v1",
        "ConfigMap",
        "ghost",
        "6f1a2b3c-0000-4000-8000-000000000000",
        false,
    );
    create(&control, &config_map("stray", vec![ghost], &[]));
    wait_until(
        "a dependent of an owner that never existed is collected",
        &control,
        || read(&control, "configmap/stray").is_none(),
    );
    let names = stdout(&control.kubectl(&["get", "configmaps", "-o", "name"]));
    assert!(
        names.contains("configmap/b") && names.contains("configmap/shared"),
        "{names}"
    );
}
