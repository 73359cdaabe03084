//! `kubectl scale` through the `scale` subresource (autoscaling/v1 Scale): the real kubectl
//! changes a Deployment's replicas, reads the Scale, and gets a field-named error for a
//! negative count; the ReplicaSet and StatefulSet scale the same way.

mod common;

use common::{ok, stderr, Control};

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx:1.25}]
";

#[test]
fn kubectl_scale_changes_replicas_through_the_scale_subresource() {
    let control = Control::start();
    let file = control.dir.path().join("web.yaml");
    std::fs::write(&file, DEPLOYMENT).expect("write");
    ok(control.kubectl(&["create", "-f", file.to_str().expect("path")]));

    let out = ok(control.kubectl(&["scale", "deployment/web", "--replicas=3"]));
    assert!(out.contains("deployment.apps/web scaled"), "{out}");
    let spec = ok(control.kubectl(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.replicas} {.metadata.generation}",
    ]));
    assert_eq!(spec, "3 2", "replicas set and the generation bumped");

    let scale = ok(control.kubectl(&[
        "get",
        "--raw",
        "/apis/apps/v1/namespaces/default/deployments/web/scale",
    ]));
    let scale: serde_json::Value = serde_json::from_str(&scale).expect("Scale JSON");
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"]["replicas"], 3);
    assert_eq!(scale["status"]["selector"], "app=web");

    // A precondition on the current size, as `kubectl scale --current-replicas` sends it.
    let out = control.kubectl(&[
        "scale",
        "deployment/web",
        "--current-replicas=2",
        "--replicas=5",
    ]);
    assert!(!out.status.success(), "the precondition must fail");

    let out = control.kubectl(&["scale", "deployment/web", "--replicas=-1"]);
    assert!(!out.status.success());
    // kubectl refuses a negative count itself; the server refuses one sent raw.
    let raw = control.kubectl(&[
        "patch",
        "deployment",
        "web",
        "--subresource=scale",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":-1}}"#,
    ]);
    assert!(!raw.status.success());
    assert!(stderr(&raw).contains("spec.replicas"), "{}", stderr(&raw));
    let spec = ok(control.kubectl(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]));
    assert_eq!(spec, "3", "a refused scale changes nothing");
}
