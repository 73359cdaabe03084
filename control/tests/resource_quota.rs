//! ResourceQuotas through the real kubectl: `kubectl create quota` (protobuf), kube's table and
//! `describe`, usage counted by the quota controller, creates past a quota refused in kube's
//! words (`exceeded quota: …`, `failed quota: …: must specify …`) and let through again once
//! something is deleted; `count/…` quotas; a scoped quota; kube's validation.

mod common;

use std::time::{Duration, Instant};

use common::{ok, stderr, Control};
use serde_json::json;

fn wait_until(what: &str, control: &Control, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "not within 30 s: {what}\n{}",
            ok(control.kubectl(&["get", "quota", "-A", "-o", "yaml"]))
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn used(control: &Control, resource: &str) -> String {
    let path = format!("jsonpath={{.status.used.{}}}", resource.replace('.', "\\."));
    ok(control.kubectl(&["get", "quota", "compute", "-n", "team", "-o", &path]))
}

fn create_pod(control: &Control, name: &str, resources: serde_json::Value) -> std::process::Output {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "team"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "resources": resources}]}});
    let file = control.dir.path().join(format!("{name}.json"));
    std::fs::write(&file, pod.to_string()).expect("write");
    control.kubectl(&["create", "-f", file.to_str().unwrap_or_default()])
}

/// Namespace `team` with the quota `compute` of `flags`, once its controller counted usage.
fn team_quota(control: &Control, flags: &[&str]) {
    ok(control.kubectl(&["create", "namespace", "team"]));
    let mut args = vec!["create", "quota", "compute", "-n", "team"];
    args.extend_from_slice(flags);
    ok(control.kubectl(&args));
    wait_until("usage counted", control, || used(control, "pods") == "0");
}

#[test]
fn quotas_count_usage_and_refuse_what_goes_past_them() {
    let control = Control::start();
    team_quota(
        &control,
        &["--hard=pods=2,requests.cpu=1,limits.memory=1Gi,configmaps=5,count/deployments.apps=1"],
    );
    // kube-root-ca.crt is there already.
    wait_until("the namespace's ConfigMap counted", &control, || {
        used(&control, "configmaps") == "1"
    });
    let table = ok(control.kubectl(&["get", "quota", "-n", "team"]));
    let header = table.lines().next().unwrap_or("");
    assert!(
        header.starts_with("NAME")
            && header.contains("AGE")
            && header.contains("REQUEST")
            && header.contains("LIMIT"),
        "{table}"
    );
    assert!(
        table.contains("pods: 0/2")
            && table.contains("requests.cpu: 0/1")
            && table.contains("limits.memory: 0/1Gi"),
        "{table}"
    );

    let bare = create_pod(&control, "bare", json!({}));
    assert!(
        stderr(&bare).contains("pods \"bare\" is forbidden: failed quota: compute: must specify limits.memory for: c; requests.cpu for: c"),
        "{}",
        stderr(&bare)
    );
    let sized = json!({"requests": {"cpu": "300m"}, "limits": {"memory": "256Mi"}});
    for name in ["p1", "p2"] {
        ok(create_pod(&control, name, sized.clone()));
    }
    assert_eq!(used(&control, "pods"), "2");
    assert_eq!(used(&control, "requests.cpu"), "600m");
    assert_eq!(used(&control, "limits.memory"), "512Mi");
    let third = create_pod(&control, "p3", sized.clone());
    assert!(
        stderr(&third).contains("pods \"p3\" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=2, limited: pods=2"),
        "{}",
        stderr(&third)
    );
    let describe = ok(control.kubectl(&["describe", "quota", "compute", "-n", "team"]));
    assert!(
        describe
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["pods", "2", "2"]),
        "{describe}"
    );

    ok(control.kubectl(&[
        "delete",
        "pod",
        "p1",
        "-n",
        "team",
        "--grace-period=0",
        "--force",
    ]));
    wait_until("p1's share freed", &control, || {
        used(&control, "pods") == "1"
    });
    ok(create_pod(&control, "p3", sized));

    ok(control.kubectl(&[
        "create",
        "deployment",
        "d1",
        "--image=busybox",
        "--replicas=0",
        "-n",
        "team",
    ]));
    let d2 = control.kubectl(&[
        "create",
        "deployment",
        "d2",
        "--image=busybox",
        "--replicas=0",
        "-n",
        "team",
    ]);
    assert!(
        stderr(&d2).contains("exceeded quota: compute, requested: count/deployments.apps=1, used: count/deployments.apps=1, limited: count/deployments.apps=1"),
        "{}",
        stderr(&d2)
    );
    // Another namespace has no quota.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "free"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let file = control.dir.path().join("free.json");
    std::fs::write(&file, pod.to_string()).expect("write");
    ok(control.kubectl(&["create", "-f", file.to_str().unwrap_or_default()]));
}

#[test]
fn kubes_quota_validation() {
    let control = Control::start();
    let bad = control.kubectl(&["create", "quota", "bad", "--hard=widgets=1,cpu=-1"]);
    let text = stderr(&bad);
    assert!(
        text.contains(
            "spec.hard[widgets]: Invalid value: \"widgets\": must be a standard resource for quota"
        ),
        "{text}"
    );
    assert!(
        text.contains("spec.hard[cpu]: Invalid value: \"-1\": must be greater than or equal to 0"),
        "{text}"
    );
    let mixed = control.kubectl(&[
        "create",
        "quota",
        "mixed",
        "--hard=requests.cpu=1",
        "--scopes=BestEffort",
    ]);
    assert!(
        stderr(&mixed).contains("spec.hard[requests.cpu]: Invalid value: \"requests.cpu\": unsupported scope applied to resource"),
        "{}",
        stderr(&mixed)
    );
    let affinity = control.kubectl(&[
        "create",
        "quota",
        "aff",
        "--hard=pods=1",
        "--scopes=CrossNamespacePodAffinity",
    ]);
    assert!(
        stderr(&affinity).contains("spec.scopes: Forbidden"),
        "{}",
        stderr(&affinity)
    );
}

#[test]
fn a_scoped_quota_tracks_only_the_pods_its_scopes_match() {
    let control = Control::start();
    team_quota(&control, &["--hard=pods=1", "--scopes=BestEffort"]);
    ok(create_pod(&control, "be-1", json!({})));
    let second = create_pod(&control, "be-2", json!({}));
    assert!(
        stderr(&second)
            .contains("exceeded quota: compute, requested: pods=1, used: pods=1, limited: pods=1"),
        "{}",
        stderr(&second)
    );
    // A pod with requests is not BestEffort: the quota does not track it.
    ok(create_pod(
        &control,
        "sized",
        json!({"requests": {"cpu": "100m"}}),
    ));
    ok(control.kubectl(&["create", "configmap", "c", "-n", "team"]));
    wait_until("the controller agrees", &control, || {
        used(&control, "pods") == "1"
    });
}
