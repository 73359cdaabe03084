//! ComponentStatuses through the real kubectl: `kubectl get cs` lists the scheduler, the
//! controller manager and the embedded store, healthy, with kube's deprecation warning;
//! `get cs <name> -o json` reads one, `explain` describes them; they cannot be deleted, and a node may not read them.
//! (The etcd members' entries are in `etcd_kubectl`.)

mod common;

use common::{kubectl_with, ok, stderr, Control};
use serde_json::Value;

#[test]
fn kubectl_get_cs_lists_the_components_healthy() {
    let control = Control::start();
    let out = control.kubectl(&["get", "cs"]);
    let table = ok(out.clone());
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["NAME", "STATUS", "MESSAGE", "ERROR"], "{table}");
    let names: Vec<&str> = lines[1..].iter().map(|l| l[0]).collect();
    assert_eq!(
        names,
        ["scheduler", "controller-manager", "embedded-store"],
        "{table}"
    );
    assert!(
        lines[1..].iter().all(|l| l[1..] == ["Healthy", "ok"]),
        "{table}"
    );
    assert!(
        stderr(&out).contains("Warning: v1 ComponentStatus is deprecated in v1.19+"),
        "{}",
        stderr(&out)
    );

    let one: Value = serde_json::from_str(&ok(control.kubectl(&[
        "get",
        "componentstatus",
        "embedded-store",
        "-o",
        "json",
    ])))
    .unwrap_or_default();
    assert_eq!(one["kind"], "ComponentStatus");
    assert_eq!(one["conditions"][0]["type"], "Healthy");
    assert_eq!(one["conditions"][0]["status"], "True");

    let missing = control.kubectl(&["get", "cs", "kubelet"]);
    assert!(
        stderr(&missing).contains(r#"componentstatuses "kubelet" not found"#),
        "{}",
        stderr(&missing)
    );
    let delete = control.kubectl(&["delete", "cs", "scheduler"]);
    assert!(
        stderr(&delete).contains("the server does not allow this method"),
        "{}",
        stderr(&delete)
    );
    let node = kubectl_with(&control.node_kubeconfig("worker-1"), &["get", "cs"]);
    assert!(
        stderr(&node).contains(r#"cannot list resource "componentstatuses""#),
        "{}",
        stderr(&node)
    );
    let explain = ok(control.kubectl(&["explain", "cs.conditions"]));
    assert!(
        explain.contains("KIND:") && explain.contains("ComponentStatus"),
        "{explain}"
    );
    let resources = ok(control.kubectl(&["api-resources", "--api-group="]));
    assert!(
        resources
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["componentstatuses", "cs", "v1", "false", "ComponentStatus"]),
        "{resources}"
    );
}
