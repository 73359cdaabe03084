//! `kubectl apply --server-side` with the real kubectl: the object is created from the
//! manager's intent, a later intent changes what it sets and removes what it left out, the
//! fields another manager changed (`kubectl scale`) are a conflict naming them until
//! `--force-conflicts`, a second manager's fields survive the first one's apply, strict field
//! validation names an unknown field, and client-side apply's fields pass to kubectl's
//! server-side apply without a conflict.

mod common;

use std::path::{Path, PathBuf};

use common::{ok, stderr, Control};
use serde_json::Value;

fn deployment(image: &str, replicas: u32, tier: Option<&str>) -> String {
    let tier = tier.map(|t| format!(", tier: {t}")).unwrap_or_default();
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {{app: web{tier}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - {{name: web, image: {image}}}
      - {{name: side, image: busybox, command: [sleep, '3600']}}
"
    )
}

fn write(control: &Control, name: &str, text: &str) -> PathBuf {
    let path = control.dir.path().join(name);
    std::fs::write(&path, text).expect("write manifest");
    path
}

fn apply(control: &Control, file: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["apply", "--server-side", "-f", file.to_str().expect("path")];
    args.extend_from_slice(extra);
    control.kubectl(&args)
}

fn get(control: &Control, what: &[&str]) -> Value {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend_from_slice(&["-o", "json", "--show-managed-fields"]);
    serde_json::from_str(&ok(control.kubectl(&args))).expect("JSON")
}

fn managers(object: &Value) -> Vec<(String, String)> {
    object["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["manager"].as_str().unwrap_or("").to_owned(),
                e["operation"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn kubectl_server_side_apply_creates_merges_removes_and_reports_conflicts() {
    let control = Control::start();
    let file = write(
        &control,
        "web.yaml",
        &deployment("nginx:1.25", 2, Some("front")),
    );
    let out = ok(apply(&control, &file, &[]));
    assert!(
        out.contains("deployment.apps/web serverside-applied"),
        "{out}"
    );
    let d = get(&control, &["deployment", "web"]);
    assert_eq!(managers(&d)[0], ("kubectl".into(), "Apply".into()), "{d}");
    let fields = &d["metadata"]["managedFields"][0]["fieldsV1"];
    assert_eq!(
        fields["f:spec"]["f:replicas"],
        serde_json::json!({}),
        "{fields}"
    );
    // The server filled in its defaults, as on any create (a Deployment without them made a new
    // ReplicaSet on every sync: its template never matched the defaulted ReplicaSet's)...
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600, "{d}");
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["terminationMessagePath"], "/dev/termination-log");
    // ...and they are not the manager's.
    assert!(
        fields["f:spec"].get("f:progressDeadlineSeconds").is_none(),
        "{fields}"
    );
    assert_eq!(d["metadata"]["labels"]["tier"], "front");

    // A new intent: another image, no tier label. The side container stays.
    let file = write(&control, "web.yaml", &deployment("nginx:1.27", 2, None));
    ok(apply(&control, &file, &[]));
    let d = get(&control, &["deployment", "web"]);
    let containers = &d["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["image"], "nginx:1.27", "{containers}");
    assert_eq!(containers[1]["name"], "side", "{containers}");
    assert!(d["metadata"]["labels"].get("tier").is_none(), "{d}");

    // Another manager changes replicas: applying 2 again conflicts, naming the field.
    ok(control.kubectl(&["scale", "deployment/web", "--replicas=5"]));
    let d = get(&control, &["deployment", "web"]);
    assert!(
        managers(&d).contains(&("kubectl".into(), "Update".into())),
        "scale recorded as kubectl's update: {:?}",
        managers(&d)
    );
    // The Deployment controller's status writes are its own (waited for: it runs apart).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let controller = ("kube-controller-manager".to_owned(), "Update".to_owned());
    while !managers(&get(&control, &["deployment", "web"])).contains(&controller) {
        assert!(
            std::time::Instant::now() < deadline,
            "no status update by the controller"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let refused = apply(&control, &file, &[]);
    assert!(!refused.status.success(), "a conflicting apply succeeded");
    let err = stderr(&refused);
    assert!(err.contains("Apply failed with 1 conflict"), "{err}");
    assert!(err.contains(".spec.replicas"), "{err}");
    assert!(err.contains("--force-conflicts"), "kubectl's advice: {err}");
    ok(apply(&control, &file, &["--force-conflicts"]));
    let d = get(&control, &["deployment", "web"]);
    assert_eq!(d["spec"]["replicas"], 2);

    // A second manager's label survives kubectl's next apply, which does not name it.
    let label = write(
        &control,
        "label.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {owner: team-b}\n",
    );
    ok(apply(&control, &label, &["--field-manager=team-b"]));
    ok(apply(&control, &file, &[]));
    let d = get(&control, &["deployment", "web"]);
    assert_eq!(d["metadata"]["labels"]["owner"], "team-b", "{d}");
    assert_eq!(d["metadata"]["labels"]["app"], "web", "{d}");
    assert!(
        managers(&d).contains(&("team-b".into(), "Apply".into())),
        "{:?}",
        managers(&d)
    );

    // Strict field validation names an unknown field; nothing is written.
    let bad = write(
        &control,
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\ndata: {a: b}\nbogus: 1\n",
    );
    let refused = apply(&control, &bad, &[]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("bogus"), "{}", stderr(&refused));
    assert!(!control
        .kubectl(&["get", "configmap", "bad"])
        .status
        .success());
}

#[test]
fn client_side_apply_hands_its_fields_to_kubectl_server_side_apply() {
    let control = Control::start();
    let cm = |value: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings}}\ndata: {{mode: {value}, keep: 'yes'}}\n")
    };
    let file = write(&control, "cm.yaml", &cm("fast"));
    ok(control.kubectl(&["apply", "-f", file.to_str().expect("path")]));
    let file = write(&control, "cm.yaml", &cm("safe"));
    let out = ok(apply(&control, &file, &[]));
    assert!(
        out.contains("configmap/settings serverside-applied"),
        "{out}"
    );
    let c = get(&control, &["configmap", "settings"]);
    assert_eq!(c["data"]["mode"], "safe", "{c}");
    assert!(
        managers(&c).contains(&("kubectl".into(), "Apply".into())),
        "{:?}",
        managers(&c)
    );
}
