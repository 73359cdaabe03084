//! What an update of a pod may change, as kube-apiserver has it, through the real kubectl: an
//! image (`kubectl set image`), labels, added tolerations and a lowered deadline go through;
//! `kubectl apply` of a changed command is refused with kube's text naming the field, and the
//! stored pod is unchanged. The pod is bound to a node with no agent, which the API does not
//! mind.

mod common;

use common::{ok, stderr, stdout, Control};
use serde_json::{json, Value};

fn pod_json(control: &Control, name: &str) -> Value {
    let text = ok(control.kubectl(&["get", "pod", name, "-o", "json"]));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("pod JSON: {e}\n{text}"))
}

#[test]
fn a_pod_update_may_change_only_what_kube_lets_it() {
    let control = Control::start();
    let pod = |command: &str, deadline: u32| {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"nodeName": "ghost", "activeDeadlineSeconds": deadline,
                "containers": [{"name": "c", "image": "busybox:1.36",
                "command": ["sleep", command]}]},
        })
    };
    let file = control.dir.path().join("p.json");
    std::fs::write(&file, pod("3600", 600).to_string()).unwrap();
    let path = file.to_str().unwrap_or_default();
    ok(control.kubectl(&["apply", "-f", path]));

    ok(control.kubectl(&["set", "image", "pod/p", "c=busybox:1.37"]));
    ok(control.kubectl(&["label", "pod", "p", "tier=web"]));
    let lower = json!({"spec": {"activeDeadlineSeconds": 300}});
    ok(control.kubectl(&["patch", "pod", "p", "-p", &lower.to_string()]));
    // Added to the defaults' tolerations of the lost-node taints (the list is replaced whole
    // by a strategic patch, so a patch naming only the new one would remove them).
    let more = json!([{"op": "add", "path": "/spec/tolerations/-",
        "value": {"key": "k", "operator": "Exists", "effect": "NoSchedule"}}]);
    ok(control.kubectl(&["patch", "pod", "p", "--type=json", "-p", &more.to_string()]));
    let now = pod_json(&control, "p");
    let keys: Vec<&Value> = (now["spec"]["tolerations"].as_array().into_iter().flatten())
        .map(|t| &t["key"])
        .collect();
    assert_eq!(
        keys,
        [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
            "k"
        ]
    );
    assert_eq!(now["spec"]["containers"][0]["image"], "busybox:1.37");
    assert_eq!(now["metadata"]["labels"]["tier"], "web");
    assert_eq!(now["spec"]["activeDeadlineSeconds"], 300);

    // A changed command: refused, in kube's words, with the field that differs.
    std::fs::write(&file, pod("60", 300).to_string()).unwrap();
    let out = control.kubectl(&["apply", "-f", path]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains(r#"The Pod "p" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"#),
        "{err}"
    );
    assert!(err.contains("spec.containers[0].command[1]"), "{err}");
    // A raised deadline has its own refusal.
    let raised = json!({"spec": {"activeDeadlineSeconds": 900}});
    let out = control.kubectl(&["patch", "pod", "p", "-p", &raised.to_string()]);
    assert!(
        stderr(&out).contains(
            "spec.activeDeadlineSeconds: Invalid value: 900: must be less than or equal to previous value"
        ),
        "{}",
        stderr(&out)
    );
    let after = pod_json(&control, "p");
    assert_eq!(after["spec"], now["spec"]);
    assert_eq!(
        after["metadata"]["resourceVersion"],
        now["metadata"]["resourceVersion"]
    );
}
