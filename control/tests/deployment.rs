//! The Deployment controller through the real kubectl: a Deployment gets a ReplicaSet named by
//! its template hash and that one its pods; `kubectl rollout status` waits for availability; a
//! template change rolls out through a second ReplicaSet within maxSurge/maxUnavailable;
//! `rollout history` lists both revisions and `rollout undo` brings the first template back as
//! revision 3; `kubectl scale` resizes; Recreate empties the old ReplicaSet first; a rollout
//! that makes no progress ends in ProgressDeadlineExceeded; the generation moves on the
//! Deployment's spec and annotations, not on the revision annotation its controller writes.
//!
//! No agent runs here (agents join with the cluster issue's node side), so a small thread
//! stands in for the kubelets: it marks every pod Running and Ready through the pods' `status`
//! subresource with kubectl, as a kubelet would report them.

mod common;

use std::time::{Duration, Instant};

use common::kubelets::FakeKubelets;
use common::{ok, stderr, stdout, Control};
use serde_json::Value;

const WEB: &str = r#"{"apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "web", "labels": {"app": "web"}},
  "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
           "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
           "template": {"metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}}}"#;

fn apply(control: &Control, name: &str, text: &str) {
    let file = control.dir.path().join(name);
    std::fs::write(&file, text).expect("write the manifest");
    ok(control.kubectl(&["apply", "-f", file.to_str().expect("utf-8 path")]));
}

fn json(control: &Control, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&ok(control.kubectl(&all))).expect("kubectl prints JSON")
}

fn items(list: &Value) -> Vec<Value> {
    list["items"].as_array().cloned().unwrap_or_default()
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

fn replicasets(control: &Control) -> Vec<Value> {
    items(&json(control, &["get", "rs", "-l", "app=web"]))
}

fn revision(rs: &Value) -> &str {
    rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        .as_str()
        .unwrap_or("")
}

fn rollout_status(control: &Control) -> String {
    ok(control.kubectl(&["rollout", "status", "deployment/web", "--timeout=30s"]))
}

#[test]
fn rolling_update_history_undo_and_scale() {
    let control = Control::start();
    let _kubelets = FakeKubelets::start(&control, "default");
    apply(&control, "web.json", WEB);
    let done = rollout_status(&control);
    assert!(
        done.contains("deployment \"web\" successfully rolled out"),
        "{done}"
    );
    let sets = replicasets(&control);
    assert_eq!(sets.len(), 1, "{sets:#?}");
    let first = sets[0]["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let hash = sets[0]["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap_or("");
    assert_eq!(first, format!("web-{hash}"));
    assert_eq!(revision(&sets[0]), "1");
    let pods = items(&json(
        &control,
        &["get", "pods", "-l", &format!("pod-template-hash={hash}")],
    ));
    assert_eq!(pods.len(), 3);
    assert_eq!(
        pods[0]["metadata"]["ownerReferences"][0]["name"],
        first.as_str()
    );

    let table = ok(control.kubectl(&["get", "deployment", "web"]));
    assert!(
        table.lines().nth(1).is_some_and(|l| l.contains("3/3")),
        "{table}"
    );

    ok(control.kubectl(&[
        "annotate",
        "deployment",
        "web",
        "kubernetes.io/change-cause=image 2",
    ]));
    ok(control.kubectl(&[
        "patch",
        "deployment",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"busybox:2"}]}}}}"#,
    ]));
    let done = rollout_status(&control);
    assert!(done.contains("successfully rolled out"), "{done}");
    let sets = replicasets(&control);
    assert_eq!(sets.len(), 2, "{sets:#?}");
    for rs in &sets {
        let name = rs["metadata"]["name"].as_str().unwrap_or("");
        let (want_replicas, want_revision) = if name == first { (0, "1") } else { (3, "2") };
        assert_eq!(rs["spec"]["replicas"], want_replicas, "{rs:#}");
        assert_eq!(revision(rs), want_revision, "{rs:#}");
    }
    let d = json(&control, &["get", "deployment", "web"]);
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    assert_eq!(d["status"]["updatedReplicas"], 3);
    let describe = ok(control.kubectl(&["describe", "deployment", "web"]));
    assert!(
        describe.contains("ScalingReplicaSet")
            && describe.contains(&format!("Scaled down replica set {first} from")),
        "{describe}"
    );

    let history = ok(control.kubectl(&["rollout", "history", "deployment/web"]));
    assert!(
        history.contains("REVISION") && history.contains("image 2"),
        "{history}"
    );

    let undo = ok(control.kubectl(&["rollout", "undo", "deployment/web"]));
    assert!(undo.contains("rolled back"), "{undo}");
    rollout_status(&control);
    wait_until(
        "the first ReplicaSet is revision 3 with every replica",
        &control,
        || {
            replicasets(&control).iter().any(|rs| {
                rs["metadata"]["name"] == first.as_str()
                    && revision(rs) == "3"
                    && rs["status"]["availableReplicas"] == 3
            })
        },
    );
    let images: Vec<Value> = items(&json(&control, &["get", "pods", "-l", "app=web"]))
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| p["spec"]["containers"][0]["image"].clone())
        .collect();
    assert!(images.iter().all(|i| i == "busybox:1"), "{images:?}");

    ok(control.kubectl(&["scale", "deployment", "web", "--replicas=1"]));
    wait_until("one pod left", &control, || {
        items(&json(&control, &["get", "pods", "-l", "app=web"])).len() == 1
    });
    rollout_status(&control);
}

#[test]
fn recreate_empties_the_old_replicaset_first() {
    let control = Control::start();
    let _kubelets = FakeKubelets::start(&control, "default");
    let recreate = WEB.replace(
        r#""strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}"#,
        r#""strategy": {"type": "Recreate"}"#,
    );
    apply(&control, "web.json", &recreate);
    rollout_status(&control);
    ok(control.kubectl(&[
        "patch",
        "deployment",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"busybox:2"}]}}}}"#,
    ]));
    rollout_status(&control);
    let events = ok(control.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=web",
        "-o",
        "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
    ]));
    let lines: Vec<&str> = events.lines().filter(|l| l.starts_with("Scaled")).collect();
    let down = lines
        .iter()
        .position(|l| l.starts_with("Scaled down"))
        .expect("a scale-down event");
    let second_up = lines
        .iter()
        .rposition(|l| l.starts_with("Scaled up"))
        .expect("scale-up events");
    assert!(
        down < second_up,
        "the old set goes to 0 before the new one starts: {lines:#?}"
    );
}

#[test]
fn no_progress_ends_in_progress_deadline_exceeded() {
    let control = Control::start();
    let stuck = WEB.replace(
        r#""replicas": 3,"#,
        r#""replicas": 1, "progressDeadlineSeconds": 2,"#,
    );
    apply(&control, "web.json", &stuck);
    let out = control.kubectl(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("exceeded its progress deadline"),
        "{}",
        stderr(&out)
    );
    let d = json(&control, &["get", "deployment", "web"]);
    let conditions = d["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        conditions
            .iter()
            .any(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded"),
        "{conditions:#?}"
    );
}

#[test]
fn pause_set_image_resume_and_restart() {
    let control = Control::start();
    let _kubelets = FakeKubelets::start(&control, "default");
    apply(&control, "web.json", WEB);
    rollout_status(&control);
    ok(control.kubectl(&["rollout", "pause", "deployment/web"]));
    ok(control.kubectl(&["set", "image", "deployment/web", "c=busybox:3"]));
    wait_until(
        "the paused deployment's change is observed",
        &control,
        || {
            let d = json(&control, &["get", "deployment", "web"]);
            d["status"]["observedGeneration"] == d["metadata"]["generation"]
                && d["status"]["conditions"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["reason"] == "DeploymentPaused"))
        },
    );
    assert_eq!(
        replicasets(&control).len(),
        1,
        "a paused deployment does not roll out"
    );

    ok(control.kubectl(&["rollout", "resume", "deployment/web"]));
    rollout_status(&control);
    let images: Vec<Value> = items(&json(&control, &["get", "pods", "-l", "app=web"]))
        .iter()
        .map(|p| p["spec"]["containers"][0]["image"].clone())
        .collect();
    assert!(
        images.len() == 3 && images.iter().all(|i| i == "busybox:3"),
        "{images:?}"
    );

    ok(control.kubectl(&["rollout", "restart", "deployment/web"]));
    rollout_status(&control);
    let sets = replicasets(&control);
    assert_eq!(sets.len(), 3, "{sets:#?}");
    let newest = sets
        .iter()
        .find(|rs| revision(rs) == "3")
        .expect("revision 3");
    assert!(newest["spec"]["template"]["metadata"]["annotations"]
        ["kubectl.kubernetes.io/restartedAt"]
        .is_string());
    assert_eq!(newest["status"]["availableReplicas"], 3);
}

/// `spec.replicas` of the ReplicaSets of `app=web`, by the image of their template.
fn sizes_by_image(control: &Control) -> std::collections::BTreeMap<String, i64> {
    replicasets(control)
        .iter()
        .map(|rs| {
            let image = rs["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (image, rs["spec"]["replicas"].as_i64().unwrap_or(-1))
        })
        .collect()
}

#[test]
fn scaling_a_stuck_rollout_is_spread_in_proportion() {
    let control = Control::start();
    let _kubelets = FakeKubelets::start(&control, "default");
    let web = WEB.replace("\"replicas\": 3", "\"replicas\": 10").replace(
        "\"maxSurge\": 1, \"maxUnavailable\": 0",
        "\"maxSurge\": 3, \"maxUnavailable\": 2",
    );
    apply(&control, "web.json", &web);
    wait_until("10 available", &control, || {
        json(&control, &["get", "deployment", "web"])["status"]["availableReplicas"] == 10
    });
    // A broken release: its pods never get ready, so the rollout stops at old 8 + new 5
    // (13 = 10 + maxSurge, 8 = 10 - maxUnavailable).
    ok(control.kubectl(&["set", "image", "deployment/web", "c=never-ready:2"]));
    let stuck = || {
        let sizes = sizes_by_image(&control);
        sizes.get("busybox:1") == Some(&8) && sizes.get("never-ready:2") == Some(&5)
    };
    wait_until("the rollout stuck at 8 + 5", &control, stuck);

    // Scaled to 20 meanwhile: the 10 more (23 = 20 + maxSurge) are shared 6 : 4 in proportion
    // to the sets' sizes, like kube-controller-manager — not all given to the broken set.
    ok(control.kubectl(&["scale", "deployment/web", "--replicas=20"]));
    wait_until("proportional sizes", &control, || {
        let sizes = sizes_by_image(&control);
        sizes.get("busybox:1") == Some(&14) && sizes.get("never-ready:2") == Some(&9)
    });
    let events =
        ok(control.kubectl(&["get", "events", "--field-selector=involvedObject.name=web"]));
    assert!(events.contains("from 8 to 14"), "{events}");
}

#[test]
fn the_generation_moves_on_annotations_but_not_on_the_revision() {
    let control = Control::start();
    ok(control.kubectl(&["create", "deployment", "gen", "--image=busybox:1"]));
    let revisioned = |control: &Control| {
        let d = json(control, &["get", "deployment", "gen"]);
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
            && d["status"]["observedGeneration"] == 1
    };
    wait_until("revision 1 observed", &control, || revisioned(&control));
    // The controller's revision annotation went in with the status: no new generation.
    let d = json(&control, &["get", "deployment", "gen"]);
    assert_eq!(d["metadata"]["generation"], 1, "{d:#}");
    // A user's annotation is a change of the Deployment, as in kube: generation 2, observed.
    ok(control.kubectl(&["annotate", "deployment", "gen", "team=blue"]));
    let d = json(&control, &["get", "deployment", "gen"]);
    assert_eq!(d["metadata"]["generation"], 2, "{d:#}");
    wait_until("generation 2 observed", &control, || {
        json(&control, &["get", "deployment", "gen"])["status"]["observedGeneration"] == 2
    });
    // A label is not.
    ok(control.kubectl(&["label", "deployment", "gen", "tier=front"]));
    let d = json(&control, &["get", "deployment", "gen"]);
    assert_eq!(d["metadata"]["generation"], 2, "{d:#}");
}
