//! Pod Security admission through the real kubectl, in kube-apiserver's words: a namespace
//! labelled `enforce=restricted` refuses `kubectl run`'s pod and admits a compliant one; a
//! Deployment is admitted with kubectl's `Warning: would violate PodSecurity …` under `warn`
//! and its pods are refused when the ReplicaSet controller makes them (its FailedCreate event
//! and the Deployment's ReplicaFailure condition say why); a bad label value is refused;
//! tightening a namespace warns of its pods that break the new level.

mod common;

use std::time::Duration;

use common::{ok, stderr, stdout, wait_until, Control};
use serde_json::json;

const COMPLIANT: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: tidy, namespace: secure}
spec:
  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: app
    image: busybox:1.36
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
"#;

#[test]
fn namespaces_enforce_warn_and_check_their_pod_security_levels() {
    let control = Control::start();
    ok(control.kubectl(&["create", "namespace", "secure"]));
    ok(control.kubectl(&[
        "label",
        "namespace",
        "secure",
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/warn=restricted",
    ]));

    // A bad level is refused, naming the label.
    let out = control.kubectl(&[
        "label",
        "namespace",
        "secure",
        "pod-security.kubernetes.io/audit=strict",
    ]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(r#"metadata.labels[pod-security.kubernetes.io/audit]: Invalid value: "strict": must be one of privileged, baseline, restricted"#),
        "{}",
        stderr(&out)
    );

    // kubectl run's pod breaks restricted: refused with every reason.
    let out = control.kubectl(&["run", "web", "--image=nginx", "-n", "secure"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(r#"pods "web" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "web" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "web" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "web" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "web" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#),
        "{}",
        stderr(&out)
    );
    let file = control.dir.path().join("tidy.yaml");
    std::fs::write(&file, COMPLIANT).unwrap();
    ok(control.kubectl(&["apply", "-f", file.to_str().unwrap_or_default()]));

    // A Deployment is admitted with a warning; its pods are refused when made.
    let out = control.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "-n",
        "secure",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(r#"Warning: would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "nginx" must set"#),
        "{}",
        stderr(&out)
    );
    wait_until(
        "the ReplicaSet's FailedCreate",
        Duration::from_secs(20),
        || {
            let events = stdout(&control.kubectl(&[
                "get",
                "events",
                "-n",
                "secure",
                "--field-selector=reason=FailedCreate",
                "-o",
                "jsonpath={.items[*].message}",
            ]));
            events.contains("is forbidden: violates PodSecurity \"restricted:latest\"")
        },
    );
    // The ReplicaSet's ReplicaFailure condition, copied to the Deployment.
    wait_until(
        "the Deployment's ReplicaFailure",
        Duration::from_secs(20),
        || {
            let message = stdout(&control.kubectl(&[
                "get",
                "deployment",
                "web",
                "-n",
                "secure",
                "-o",
                r#"jsonpath={.status.conditions[?(@.type=="ReplicaFailure")].message}"#,
            ]));
            message.contains("violates PodSecurity")
        },
    );

    // Tightening a namespace that holds a privileged pod warns of it.
    ok(control.kubectl(&["create", "namespace", "open"]));
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "root", "namespace": "open"},
        "spec": {"hostNetwork": true, "containers": [{"name": "c", "image": "busybox:1.36"}]}});
    ok(control.create_json("root", &pod));
    let out = control.kubectl(&[
        "label",
        "namespace",
        "open",
        "pod-security.kubernetes.io/enforce=baseline",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains(r#"Warning: existing pods in namespace "open" violate the new PodSecurity enforce level "baseline:latest""#),
        "{said}"
    );
    assert!(said.contains("Warning: root: host namespaces"), "{said}");
}
