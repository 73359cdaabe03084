//! LimitRanges through the real kubectl: kube's defaults on the range itself, a namespace's
//! pods given the default requests and limits their containers leave out (with kube's
//! `kubernetes.io/limit-ranger` annotation), containers, pods and claims outside the bounds
//! refused in kube's words, and a quota counting the defaulted pod.

mod common;

use std::time::{Duration, Instant};

use common::{ok, stderr, Control};
use serde_json::{json, Value};

fn pod(name: &str, resources: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "team"},
        "spec": {"containers": [{"name": "app", "image": "busybox", "resources": resources}]}})
}

#[test]
fn limit_ranges_default_and_bound_what_a_namespace_asks_for() {
    let control = Control::start();
    ok(control.kubectl(&["create", "namespace", "team"]));
    let range = json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "bounds", "namespace": "team"},
        "spec": {"limits": [
            {"type": "Container", "max": {"cpu": "1", "memory": "512Mi"}, "defaultRequest": {"cpu": "250m"},
             "maxLimitRequestRatio": {"cpu": "4"}},
            {"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}}]}});
    let stored: Value =
        serde_json::from_str(&ok(control.create_json("range", &range))).unwrap_or_default();
    let item = &stored["spec"]["limits"][0];
    assert_eq!(
        item["default"],
        json!({"cpu": "1", "memory": "512Mi"}),
        "the default limit is the max"
    );
    assert_eq!(
        item["defaultRequest"],
        json!({"cpu": "250m", "memory": "512Mi"})
    );
    let table = ok(control.kubectl(&["get", "limits", "-n", "team"]));
    assert!(
        table.contains("CREATED AT") && table.contains("bounds"),
        "{table}"
    );

    // The pod's one limit-only container gets the other defaults, reported as kube does.
    // A LimitRange just made reaches the admission through a watch: wait for it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let created: Value = loop {
        let out = control.create_json(
            "plain",
            &pod("plain", json!({"limits": {"memory": "256Mi"}})),
        );
        let created: Value = serde_json::from_str(&ok(out)).unwrap_or_default();
        if created["metadata"]["annotations"]["kubernetes.io/limit-ranger"].is_string() {
            break created;
        }
        ok(control.kubectl(&[
            "delete",
            "pod",
            "plain",
            "-n",
            "team",
            "--grace-period=0",
            "--force",
        ]));
        assert!(
            Instant::now() < deadline,
            "the LimitRange never applied: {created}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let resources = &created["spec"]["containers"][0]["resources"];
    assert_eq!(resources["limits"], json!({"cpu": "1", "memory": "256Mi"}));
    assert_eq!(
        resources["requests"],
        json!({"cpu": "250m", "memory": "256Mi"}),
        "memory request from the pod's own limit"
    );
    assert_eq!(
        created["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu request for container app; cpu limit for container app"
    );

    let big = control.create_json(
        "big",
        &pod(
            "big",
            json!({"limits": {"cpu": "2"}, "requests": {"cpu": "200m"}}),
        ),
    );
    assert!(
        stderr(&big).contains("pods \"big\" is forbidden: [maximum cpu usage per Container is 1, but limit is 2, cpu max limit to request ratio per Container is 4, but provided ratio is 10.000000]"),
        "{}",
        stderr(&big)
    );
    let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "small", "namespace": "team"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "100Mi"}}}});
    let small = control.create_json("small", &claim);
    assert!(
        stderr(&small).contains("persistentvolumeclaims \"small\" is forbidden: minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 100Mi"),
        "{}",
        stderr(&small)
    );

    // Invalid ranges are refused with kube's texts.
    let bad = json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "bad", "namespace": "team"},
        "spec": {"limits": [{"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}}]}});
    let text = stderr(&control.create_json("bad", &bad));
    assert!(text.contains("spec.limits[0].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1"), "{text}");
}
