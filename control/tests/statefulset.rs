//! The StatefulSet controller through the real kubectl: OrderedReady makes `web-1` only once
//! `web-0` is Running and Ready; every pod has its identity (name, hostname, subdomain,
//! labels) and its own claim `data-web-N`, made before it and kept when the pod is deleted or
//! the set scaled down (3→1→3 reattaches the same claims, same uids); scale-down goes from the
//! highest ordinal; Parallel makes every pod at once; RollingUpdate with a partition replaces
//! only the ordinals at or above it, highest first; OnDelete replaces only deleted pods; an
//! orphan pod named like a member is adopted;
//! `kubectl get sts`, `rollout status|history` and `describe` show it all.
//!
//! No agent runs in these tests: the test plays the kubelet, either by hand (`mark_ready`,
//! where the order matters) or through `common::kubelets::FakeKubelets`, reporting pods
//! Running and Ready through their `status` subresource.

mod common;

use std::time::{Duration, Instant};

use common::kubelets::FakeKubelets;
use common::{ok, stderr, Control, Streaming};
use serde_json::{json, Value};

fn set(replicas: u32, policy: &str, strategy: Value) -> Value {
    let labels = json!({"app": "web"});
    json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "serviceName": "nginx", "podManagementPolicy": policy,
            "updateStrategy": strategy,
            "selector": {"matchLabels": labels},
            // No scheduler places these pods (none runs by this name): the test plays the
            // kubelet for unbound pods, so the scheduler's status writes stay out of the way.
            "template": {"metadata": {"labels": labels}, "spec": {"schedulerName": "test-none",
                "containers": [{"name": "c",
                "image": "busybox:1", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}})
}

fn apply(control: &Control, object: &Value) -> std::process::Output {
    let file = control.dir.path().join("sts.json");
    std::fs::write(&file, object.to_string()).expect("write the manifest");
    control.kubectl(&["apply", "-f", file.to_str().expect("utf-8 path")])
}

fn get(control: &Control, what: &str) -> Value {
    let out = control.kubectl(&["get", what, "-o", "json"]);
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// The live (not terminating) pods of the set: name → pod.
fn pods(control: &Control) -> Vec<(String, Value)> {
    let list = get(control, "pods");
    let mut out: Vec<(String, Value)> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                p.clone(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn names(control: &Control) -> Vec<String> {
    pods(control).into_iter().map(|(n, _)| n).collect()
}

fn image(control: &Control, name: &str) -> String {
    pods(control)
        .into_iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, p)| {
            p["spec"]["containers"][0]["image"]
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

/// Claim name → uid.
fn claims(control: &Control) -> Vec<(String, String)> {
    let list = get(control, "pvc");
    let mut out: Vec<(String, String)> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let m = &c["metadata"];
            (
                m["name"].as_str().unwrap_or("").to_owned(),
                m["uid"].as_str().unwrap_or("").to_owned(),
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
            "not within 30 s: {what}\n{}\nserver log:\n{}",
            ok(control.kubectl(&["get", "sts,pods,pvc,controllerrevisions", "-o", "yaml"])),
            control.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Plays the kubelet for one pod: Running and Ready.
fn mark_ready(control: &Control, pod: &str) {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format a timestamp");
    let status = json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": now}]}});
    ok(control.kubectl(&[
        "patch",
        "pod",
        pod,
        "--subresource=status",
        "--type=merge",
        "-p",
        &status.to_string(),
    ]));
}

fn sts_status(control: &Control) -> Value {
    get(control, "sts/web")["status"].clone()
}

fn rolling(partition: u32) -> Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"partition": partition}})
}

#[test]
fn ordered_pods_keep_their_identity_and_their_claims() {
    let control = Control::start();
    ok(apply(&control, &set(3, "OrderedReady", rolling(0))));
    // web-0 exists and the controller has written its status after making it: it has decided
    // not to make web-1 while web-0 is not Ready.
    wait_until("web-0 and a status counting it", &control, || {
        names(&control) == ["web-0"] && sts_status(&control)["replicas"] == 1
    });
    assert_eq!(names(&control), ["web-0"], "web-1 before web-0 was Ready");
    assert_eq!(claims(&control).len(), 1, "{:?}", claims(&control));

    let web0 = &pods(&control)[0].1;
    let labels = &web0["metadata"]["labels"];
    assert_eq!(labels["statefulset.kubernetes.io/pod-name"], "web-0");
    assert_eq!(labels["apps.kubernetes.io/pod-index"], "0");
    let revision = labels["controller-revision-hash"]
        .as_str()
        .expect("revision label");
    assert!(revision.starts_with("web-"), "{revision}");
    assert_eq!(web0["spec"]["hostname"], "web-0");
    assert_eq!(web0["spec"]["subdomain"], "nginx");
    assert_eq!(
        web0["metadata"]["ownerReferences"][0]["kind"],
        "StatefulSet"
    );
    assert_eq!(web0["metadata"]["ownerReferences"][0]["controller"], true);
    let volume = &web0["spec"]["volumes"][0];
    assert_eq!(
        (
            volume["name"].as_str(),
            volume["persistentVolumeClaim"]["claimName"].as_str()
        ),
        (Some("data"), Some("data-web-0"))
    );

    for (n, next) in [(0, "web-1"), (1, "web-2")] {
        mark_ready(&control, &format!("web-{n}"));
        wait_until(&format!("{next} once web-{n} is Ready"), &control, || {
            names(&control).iter().any(|p| p == next)
        });
    }
    mark_ready(&control, "web-2");
    let done = ok(control.kubectl(&["rollout", "status", "sts/web", "--timeout=30s"]));
    assert!(
        done.contains("roll out complete: 3 new pods have been updated"),
        "{done}"
    );
    let table = ok(control.kubectl(&["get", "sts"]));
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        table.split_whitespace().take(3).collect::<Vec<_>>(),
        ["NAME", "READY", "AGE"]
    );
    assert_eq!(row[..2], ["web", "3/3"], "{table}");
    let wide = ok(control.kubectl(&["get", "sts", "-o", "wide"]));
    assert!(
        wide.lines()
            .next()
            .is_some_and(|h| h.ends_with("CONTAINERS   IMAGES")),
        "{wide}"
    );
    assert!(wide.contains("busybox:1"), "{wide}");
    let describe = ok(control.kubectl(&["describe", "sts", "web"]));
    for message in [
        "create Claim data-web-0 Pod web-0 in StatefulSet web success",
        "create Pod web-0 in StatefulSet web successful",
        "create Pod web-2 in StatefulSet web successful",
    ] {
        assert!(describe.contains(message), "{message}\n{describe}");
    }

    // The kubelet's part from here on is played by FakeKubelets.
    let _kubelets = FakeKubelets::start(&control, "default");
    let kept = claims(&control);
    assert_eq!(
        kept.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
        ["data-web-0", "data-web-1", "data-web-2"]
    );
    let uid_of = |name: &str| {
        pods(&control)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p["metadata"]["uid"].as_str().unwrap_or("").to_owned())
    };
    let old_uid = uid_of("web-1").expect("web-1");
    ok(control.kubectl(&["delete", "pod", "web-1", "--wait=false"]));
    wait_until("web-1 made again, same name, same claim", &control, || {
        uid_of("web-1").is_some_and(|u| u != old_uid)
    });
    let web1 = pods(&control)
        .into_iter()
        .find(|(n, _)| n == "web-1")
        .expect("web-1")
        .1;
    assert_eq!(
        web1["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "data-web-1"
    );
    assert_eq!(claims(&control), kept);

    // 3 → 1: highest ordinal first, claims kept.
    wait_until("three ready pods", &control, || {
        sts_status(&control)["readyReplicas"] == 3
    });
    let watch = Streaming::spawn(
        &control.kubeconfig(),
        &["get", "pods", "-w", "--output-watch-events", "--no-headers"],
    );
    // The watch has listed the pods before anything changes.
    watch.wait_for("web-2", Duration::from_secs(10));
    ok(control.kubectl(&["scale", "sts/web", "--replicas=1"]));
    let seen = watch.wait_for("DELETED", Duration::from_secs(30));
    assert!(
        seen.last().is_some_and(|l| l.contains("web-2")),
        "{seen:#?}"
    );
    let seen = watch.wait_for("DELETED", Duration::from_secs(30));
    assert!(
        seen.last().is_some_and(|l| l.contains("web-1")),
        "{seen:#?}"
    );
    wait_until("web-0 alone", &control, || names(&control) == ["web-0"]);
    assert_eq!(claims(&control), kept);

    // 1 → 3: the same claims (same uids) reattached.
    ok(control.kubectl(&["scale", "sts/web", "--replicas=3"]));
    wait_until("three ready pods again", &control, || {
        names(&control) == ["web-0", "web-1", "web-2"] && sts_status(&control)["readyReplicas"] == 3
    });
    assert_eq!(claims(&control), kept);
    for (name, pod) in pods(&control) {
        let claim = pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"].clone();
        assert_eq!(claim, format!("data-{name}"));
    }
    let describe = ok(control.kubectl(&["describe", "sts", "web"]));
    assert!(
        describe.contains("delete Pod web-2 in StatefulSet web successful"),
        "{describe}"
    );

    // Deleting the set takes its pods (garbage collector) and leaves the claims.
    ok(control.kubectl(&["delete", "sts", "web"]));
    wait_until("no pod left", &control, || names(&control).is_empty());
    assert_eq!(claims(&control), kept);
}

#[test]
fn parallel_makes_every_pod_at_once() {
    let control = Control::start();
    ok(apply(&control, &set(3, "Parallel", rolling(0))));
    // No pod is ever Ready here: all three exist all the same.
    wait_until("web-0, web-1 and web-2 with their claims", &control, || {
        names(&control) == ["web-0", "web-1", "web-2"] && claims(&control).len() == 3
    });
    assert!(pods(&control)
        .iter()
        .all(|(_, p)| p["status"]["phase"] != "Running"));
}

#[test]
fn a_rolling_update_stops_at_the_partition_and_goes_highest_first() {
    let control = Control::start();
    let _kubelets = FakeKubelets::start(&control, "default");
    ok(apply(&control, &set(3, "OrderedReady", rolling(1))));
    ok(control.kubectl(&["rollout", "status", "sts/web", "--timeout=30s"]));
    let watch = Streaming::spawn(
        &control.kubeconfig(),
        &["get", "pods", "-w", "--output-watch-events", "--no-headers"],
    );
    // The watch has listed the pods before anything changes.
    watch.wait_for("web-2", Duration::from_secs(10));
    ok(control.kubectl(&["set", "image", "sts/web", "c=busybox:2"]));
    let seen = watch.wait_for("DELETED", Duration::from_secs(30));
    assert!(
        seen.last().is_some_and(|l| l.contains("web-2")),
        "{seen:#?}"
    );
    let seen = watch.wait_for("DELETED", Duration::from_secs(30));
    assert!(
        seen.last().is_some_and(|l| l.contains("web-1")),
        "{seen:#?}"
    );
    let done = ok(control.kubectl(&["rollout", "status", "sts/web", "--timeout=30s"]));
    assert!(
        done.contains("partitioned roll out complete: 2 new pods"),
        "{done}"
    );
    assert_eq!(
        ["web-0", "web-1", "web-2"].map(|p| image(&control, p)),
        ["busybox:1", "busybox:2", "busybox:2"]
    );
    let status = sts_status(&control);
    assert_ne!(
        status["currentRevision"], status["updateRevision"],
        "{status:#}"
    );
    assert_eq!(
        (
            status["updatedReplicas"].as_i64(),
            status["currentReplicas"].as_i64()
        ),
        (Some(2), Some(1)),
        "{status:#}"
    );

    // Below the partition a deleted pod comes back at the current revision.
    let old = pods(&control)[0].1["metadata"]["uid"].clone();
    ok(control.kubectl(&["delete", "pod", "web-0", "--wait=false"]));
    wait_until("web-0 made again", &control, || {
        pods(&control)
            .first()
            .is_some_and(|(n, p)| n == "web-0" && p["metadata"]["uid"] != old)
    });
    assert_eq!(image(&control, "web-0"), "busybox:1");

    // Partition 0: the last one goes, the update revision becomes current.
    ok(control.kubectl(&[
        "patch",
        "sts",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}}"#,
    ]));
    wait_until(
        "web-0 updated and the update revision current",
        &control,
        || {
            let s = sts_status(&control);
            image(&control, "web-0") == "busybox:2"
                && s["currentRevision"] == s["updateRevision"]
                && s["currentReplicas"] == 3
        },
    );
    let done = ok(control.kubectl(&["rollout", "status", "sts/web", "--timeout=30s"]));
    assert!(
        done.contains("partitioned roll out complete: 3 new pods"),
        "{done}"
    );
    let history = ok(control.kubectl(&["rollout", "history", "sts/web"]));
    assert!(
        history.lines().any(|l| l.starts_with("1 "))
            && history.lines().any(|l| l.starts_with("2 ")),
        "{history}"
    );
    let first = ok(control.kubectl(&["rollout", "history", "sts/web", "--revision=1"]));
    assert!(first.contains("busybox:1"), "{first}");

    // Undo: the first template comes back as revision 3 and rolls out highest first.
    let undone = ok(control.kubectl(&["rollout", "undo", "sts/web"]));
    assert!(undone.contains("rolled back"), "{undone}");
    wait_until("every pod back on busybox:1", &control, || {
        let s = sts_status(&control);
        ["web-0", "web-1", "web-2"].map(|p| image(&control, p)) == ["busybox:1"; 3]
            && s["currentRevision"] == s["updateRevision"]
    });
    let history = ok(control.kubectl(&["rollout", "history", "sts/web"]));
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, ["2", "3"], "{history}");
}

#[test]
fn on_delete_replaces_only_deleted_pods() {
    let control = Control::start();
    let _kubelets = FakeKubelets::start(&control, "default");
    // What bosun does not carry out is refused by name.
    let mut refused = set(
        2,
        "OrderedReady",
        json!({"type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 2}}),
    );
    let out = apply(&control, &refused);
    assert!(
        stderr(&out).contains("spec.updateStrategy.rollingUpdate.maxUnavailable"),
        "{}",
        stderr(&out)
    );
    refused = set(2, "OrderedReady", json!({"type": "OnDelete"}));
    refused["spec"]["persistentVolumeClaimRetentionPolicy"] = json!({"whenScaled": "Delete"});
    let out = apply(&control, &refused);
    assert!(
        stderr(&out).contains("spec.persistentVolumeClaimRetentionPolicy.whenScaled"),
        "{}",
        stderr(&out)
    );

    // An orphan named like a member and matching the selector is adopted, not replaced.
    let orphan = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-0", "labels": {"app": "web"}},
        "spec": {"schedulerName": "test-none", "containers": [{"name": "c", "image": "busybox:1"}]}});
    let file = control.dir.path().join("orphan.json");
    std::fs::write(&file, orphan.to_string()).expect("write the manifest");
    ok(control.kubectl(&["create", "-f", file.to_str().expect("utf-8 path")]));
    let orphan_uid = pods(&control)[0].1["metadata"]["uid"].clone();
    ok(apply(
        &control,
        &set(2, "OrderedReady", json!({"type": "OnDelete"})),
    ));
    wait_until("web-0 adopted with its identity labels", &control, || {
        pods(&control).first().is_some_and(|(_, p)| {
            p["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"
                && p["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "0"
                && p["metadata"]["uid"] == orphan_uid
        })
    });
    wait_until("two ready pods", &control, || {
        sts_status(&control)["readyReplicas"] == 2
    });
    let before = sts_status(&control)["updateRevision"].clone();
    ok(control.kubectl(&["set", "image", "sts/web", "c=busybox:2"]));
    wait_until("a new update revision", &control, || {
        let s = sts_status(&control);
        s["updateRevision"] != before && s["observedGeneration"] == 2
    });
    assert_eq!(
        ["web-0", "web-1"].map(|p| image(&control, p)),
        ["busybox:1", "busybox:1"]
    );
    ok(control.kubectl(&["delete", "pod", "web-1", "--wait=false"]));
    wait_until("web-1 made again from the new template", &control, || {
        image(&control, "web-1") == "busybox:2" && sts_status(&control)["updatedReplicas"] == 1
    });
    assert_eq!(image(&control, "web-0"), "busybox:1");

    // Only what kube lets change may change.
    let out = control.kubectl(&[
        "patch",
        "sts",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec": {"serviceName": "other"}}"#,
    ]);
    assert!(
        stderr(&out).contains("updates to statefulset spec for fields other than"),
        "{}",
        stderr(&out)
    );
}
