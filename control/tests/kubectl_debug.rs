//! `kubectl debug POD --image=IMG --target=C -c NAME` through the pods' `ephemeralcontainers`
//! subresource, as kube-apiserver serves it: the container added to `spec.ephemeralContainers`
//! with a container's defaults (nothing else of the pod changes), listed in discovery; an
//! existing one neither changed nor removed, workload fields refused, none at create or in a
//! pod template, none changed by an update of the pod, each in kube's words; a node's agent
//! reports their status through `pods/status` but may not add one; RBAC decides on
//! `pods/ephemeralcontainers`, and admission policies see the write as an UPDATE of that
//! subresource carrying the Pod.
//! The pod is bound to a node that has no agent: it stays Pending, which the API does not mind.

mod common;

use std::time::Duration;

use common::{kubectl_with, ok, stderr, stdout, wait_until, Control};
use serde_json::{json, Value};

fn pod_json(control: &Control, name: &str) -> Value {
    let text = ok(control.kubectl(&["get", "pod", name, "-o", "json"]));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("pod JSON: {e}\n{text}"))
}

/// Runs kubectl, expects it to fail, and returns what it said on stderr.
fn refused(out: std::process::Output) -> String {
    assert!(!out.status.success(), "kubectl succeeded: {}", stdout(&out));
    stderr(&out)
}

#[test]
fn kubectl_debug_adds_an_ephemeral_container_as_kube_does() {
    let control = Control::start();
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p1", "namespace": "default"},
        "spec": {"nodeName": "ghost", "containers": [{"name": "c", "image": "busybox:1.36",
            "command": ["sleep", "3600"]}]},
    });
    let created: Value = serde_json::from_str(&ok(control.create_json("p1", &pod))).unwrap();

    // Without -i/-t kubectl only adds the container and returns.
    let out = control.kubectl(&[
        "debug",
        "p1",
        "--image=busybox:1.36",
        "--target=c",
        "-c",
        "debugger",
    ]);
    assert!(out.status.success(), "{}{}", stderr(&out), stdout(&out));
    assert!(!stderr(&out).contains("error"), "{}", stderr(&out));

    let now = pod_json(&control, "p1");
    let debugger = &now["spec"]["ephemeralContainers"][0];
    assert_eq!(debugger["name"], "debugger", "{now:#}");
    assert_eq!(debugger["image"], "busybox:1.36");
    assert_eq!(debugger["targetContainerName"], "c");
    assert_eq!(debugger["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(debugger["terminationMessagePolicy"], "File");
    assert_eq!(debugger["imagePullPolicy"], "IfNotPresent");
    assert_eq!(now["spec"]["containers"], created["spec"]["containers"]);
    assert_eq!(now["status"], created["status"]);
    assert_ne!(
        now["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
    assert!(now["metadata"]["generation"].is_null(), "{now:#}");
    // Listed in discovery as kube lists it; kubectl's own discovery still reads.
    let core: Value =
        serde_json::from_str(&ok(control.kubectl(&["get", "--raw", "/api/v1"]))).unwrap();
    let listed = core["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["name"] == "pods/ephemeralcontainers")
        .cloned()
        .unwrap_or_default();
    assert_eq!(listed["kind"], "Pod", "{core:#}");
    assert_eq!(listed["verbs"], json!(["get", "patch", "update"]));
    assert!(ok(control.kubectl(&["api-resources"])).contains("pods"));
    // The subresource reads as the Pod.
    let raw = ok(control.kubectl(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/pods/p1/ephemeralcontainers",
    ]));
    let read: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(read["kind"], "Pod");
    assert_eq!(read["spec"]["ephemeralContainers"][0]["name"], "debugger");

    // The same name again: kubectl's strategic patch for it ends with the existing
    // container whole, so the merge leaves it as it was and kube answers with the pod.
    let out = control.kubectl(&["debug", "p1", "--image=busybox:1.37", "-c", "debugger"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        pod_json(&control, "p1")["spec"]["ephemeralContainers"],
        now["spec"]["ephemeralContainers"]
    );
    // A patch that does change it is refused.
    let changed =
        json!({"spec": {"ephemeralContainers": [{"name": "debugger", "image": "busybox:1.37"}]}});
    let err = refused(control.kubectl(&[
        "patch",
        "pod",
        "p1",
        "--subresource=ephemeralcontainers",
        "-p",
        &changed.to_string(),
    ]));
    assert!(
        err.contains(r#"The Pod "p1" is invalid: spec.ephemeralContainers: Forbidden: existing ephemeral containers "debugger" may not be changed"#),
        "{err}"
    );
    let patch = |control: &Control, sub: &str, ops: &Value| {
        control.kubectl(&[
            "patch",
            "pod",
            "p1",
            &format!("--subresource={sub}"),
            "--type=json",
            "-p",
            &ops.to_string(),
        ])
    };
    let remove = json!([{"op": "remove", "path": "/spec/ephemeralContainers/0"}]);
    let err = refused(patch(&control, "ephemeralcontainers", &remove));
    assert!(
        err.contains(r#"The Pod "p1" is invalid: spec.ephemeralContainers: Forbidden: existing ephemeral containers "debugger" may not be removed"#),
        "{err}"
    );
    let with_ports = json!([{"op": "add", "path": "/spec/ephemeralContainers/-", "value":
        {"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}}]);
    let err = refused(patch(&control, "ephemeralcontainers", &with_ports));
    assert!(
        err.contains("spec.ephemeralContainers[1].ports: Forbidden: cannot be set for an Ephemeral Container"),
        "{err}"
    );
    // An update of the pod itself leaves them alone.
    let err = refused(control.kubectl(&[
        "patch",
        "pod",
        "p1",
        "--type=json",
        "-p",
        &remove.to_string(),
    ]));
    assert!(
        err.contains("spec: Forbidden: pod updates may not change fields other than"),
        "{err}"
    );
    assert_eq!(
        pod_json(&control, "p1")["spec"]["ephemeralContainers"],
        now["spec"]["ephemeralContainers"]
    );

    // Not at create.
    let mut born_with = pod.clone();
    born_with["metadata"]["name"] = json!("p2");
    born_with["spec"]["ephemeralContainers"] =
        json!([{"name": "debugger", "image": "busybox:1.36"}]);
    let file = control.dir.path().join("p2.json");
    std::fs::write(&file, born_with.to_string()).unwrap();
    let err = refused(control.kubectl(&["apply", "-f", file.to_str().unwrap_or_default()]));
    assert!(
        err.contains("spec.ephemeralContainers: Forbidden: cannot be set on create"),
        "{err}"
    );

    // Nor in a pod template.
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d1", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "d1"}}, "template": {
            "metadata": {"labels": {"app": "d1"}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}],
                "ephemeralContainers": [{"name": "debugger", "image": "busybox:1.36"}]}}},
    });
    let file = control.dir.path().join("d1.json");
    std::fs::write(&file, deployment.to_string()).unwrap();
    let err = refused(control.kubectl(&["apply", "-f", file.to_str().unwrap_or_default()]));
    assert!(
        err.contains("spec.template.spec.ephemeralContainers: Forbidden: ephemeral containers not allowed in pod template"),
        "{err}"
    );

    // The node the pod is bound to reports the container's status, but adds none.
    let node = control.node_kubeconfig("ghost");
    let status = json!({"status": {"ephemeralContainerStatuses": [{"name": "debugger",
        "image": "busybox:1.36", "imageID": "", "ready": false, "restartCount": 0,
        "state": {"running": {"startedAt": "2025-01-01T00:00:00Z"}}}]}});
    ok(kubectl_with(
        &node,
        &[
            "patch",
            "pod",
            "p1",
            "--subresource=status",
            "--type=merge",
            "-p",
            &status.to_string(),
        ],
    ));
    let reported = pod_json(&control, "p1");
    let statuses = &reported["status"]["ephemeralContainerStatuses"];
    assert_eq!(statuses[0]["name"], "debugger", "{reported:#}");
    assert!(statuses[0]["state"]["running"].is_object());
    let add = json!([{"op": "add", "path": "/spec/ephemeralContainers/-", "value":
        {"name": "sneaky", "image": "busybox:1.36"}}]);
    let args = [
        "patch",
        "pod",
        "p1",
        "--subresource=ephemeralcontainers",
        "--type=json",
        "-p",
        &add.to_string(),
    ];
    // (kubectl reads the subresource before it patches: refused there already)
    let err = refused(kubectl_with(&node, &args));
    assert!(
        err.contains(r#"User "system:node:ghost" cannot get resource "pods/ephemeralcontainers""#),
        "{err}"
    );
}

#[test]
fn rbac_decides_on_pods_ephemeralcontainers() {
    let control = Control::start();
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1", "namespace": "default"},
        "spec": {"nodeName": "ghost", "containers": [{"name": "c", "image": "busybox:1.36"}]},
    });
    ok(control.create_json("p1", &pod));
    let role = |name: &str, resources: &[&str], verbs: &[&str]| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name, "namespace": "default"},
            "rules": [{"apiGroups": [""], "resources": resources, "verbs": verbs}]})
    };
    let binding = |name: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": "default"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]})
    };
    ok(control.create_json("reader", &role("reader", &["pods"], &["get", "patch"])));
    ok(control.create_json("reader-binding", &binding("reader")));
    let can = |control: &Control, resource: &str| {
        let out = control.kubectl(&["auth", "can-i", "get", resource, "--as=alice"]);
        stdout(&out).trim() == "yes"
    };
    wait_until("alice may read pods", Duration::from_secs(10), || {
        can(&control, "pods")
    });
    let debug = |control: &Control, name: &str| {
        control.kubectl(&[
            "debug",
            "p1",
            "--image=busybox:1.36",
            "-c",
            name,
            "--as=alice",
        ])
    };
    // Patching the pod is no right to its ephemeral containers.
    let err = refused(debug(&control, "one"));
    assert!(
        err.contains(r#"pods "p1" is forbidden: User "alice" cannot patch resource "pods/ephemeralcontainers" in API group "" in the namespace "default""#),
        "{err}"
    );
    let debugger = role("debugger", &["pods/ephemeralcontainers"], &["get", "patch"]);
    ok(control.create_json("debugger", &debugger));
    ok(control.create_json("debugger-binding", &binding("debugger")));
    wait_until(
        "alice may use pods/ephemeralcontainers",
        Duration::from_secs(10),
        || can(&control, "pods/ephemeralcontainers"),
    );
    let out = debug(&control, "two");
    assert!(out.status.success(), "{}", stderr(&out));
    let now = pod_json(&control, "p1");
    assert_eq!(
        now["spec"]["ephemeralContainers"][0]["name"], "two",
        "{now:#}"
    );
}

const DEBUG_POLICY: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: debug-images}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [UPDATE], resources: [pods/ephemeralcontainers]}
  validations:
  - expression: "request.subResource == 'ephemeralcontainers' && object.kind == 'Pod' && object.spec.ephemeralContainers.all(c, c.image.startsWith('busybox'))"
    message: debug with busybox
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: debug-images}
spec: {policyName: debug-images, validationActions: [Deny]}
"#;

#[test]
fn admission_policies_see_the_subresource_update_with_the_pod() {
    let control = Control::start();
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1", "namespace": "default"},
        "spec": {"nodeName": "ghost", "containers": [{"name": "c", "image": "busybox:1.36"}]},
    });
    ok(control.create_json("p1", &pod));
    let file = control.dir.path().join("policy.yaml");
    std::fs::write(&file, DEBUG_POLICY).unwrap();
    ok(control.kubectl(&["apply", "-f", file.to_str().unwrap_or_default()]));
    let alpine = json!({"spec": {"ephemeralContainers": [{"name": "a", "image": "alpine:3.20"}]}});
    wait_until("the policy refuses alpine", Duration::from_secs(10), || {
        let out = control.kubectl(&[
            "patch",
            "pod",
            "p1",
            "--subresource=ephemeralcontainers",
            "--dry-run=server",
            "-p",
            &alpine.to_string(),
        ]);
        !out.status.success()
    });
    let err = refused(control.kubectl(&["debug", "p1", "--image=alpine:3.20", "-c", "a"]));
    assert!(
        err.contains("ValidatingAdmissionPolicy 'debug-images' with binding 'debug-images' denied request: debug with busybox"),
        "{err}"
    );
    let out = control.kubectl(&["debug", "p1", "--image=busybox:1.36", "-c", "b"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let names: Vec<Value> = pod_json(&control, "p1")["spec"]["ephemeralContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(names, [json!("b")]);
}
