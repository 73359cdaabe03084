//! kube-apiserver's DefaultTolerationSeconds admission on pod create: a pod that does not
//! tolerate the `node.kubernetes.io/not-ready` or `node.kubernetes.io/unreachable` NoExecute
//! taint gets a toleration of it (`Exists`) for the server's default time, so
//! `kubectl describe pod` shows `node.kubernetes.io/not-ready:NoExecute op=Exists for 300s`
//! and the node lifecycle controller evicts the pod from a lost node after that time. The
//! default is `--pod-eviction-timeout` (5 minutes, kube's 300 s). A toleration with no key or
//! no effect already covers the taint.

use serde_json::{json, Value};

const TAINTS: [&str; 2] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
];

/// Adds to `pod` the tolerations it lacks of the lost-node taints, for `seconds`.
pub fn admit_create(pod: &mut Value, seconds: u64) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let tolerations = spec
        .entry("tolerations")
        .or_insert_with(|| Value::Array(Vec::new()));
    if tolerations.is_null() {
        *tolerations = Value::Array(Vec::new());
    }
    let Some(list) = tolerations.as_array_mut() else {
        return;
    };
    for taint in TAINTS {
        let tolerated = list.iter().any(|t| {
            let key = t["key"].as_str().unwrap_or("");
            let effect = t["effect"].as_str().unwrap_or("");
            (key.is_empty() || key == taint) && (effect.is_empty() || effect == "NoExecute")
        });
        if !tolerated {
            list.push(
                json!({"key": taint, "operator": "Exists", "effect": "NoExecute",
                "tolerationSeconds": seconds}),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_gets_the_lost_node_tolerations_it_lacks() {
        let mut pod = json!({"spec": {"containers": []}});
        admit_create(&mut pod, 300);
        assert_eq!(
            pod["spec"]["tolerations"],
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                 "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                 "effect": "NoExecute", "tolerationSeconds": 300},
            ])
        );
        // Its own toleration of one taint stays, and the other is added.
        let own = json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists",
            "effect": "NoExecute", "tolerationSeconds": 10});
        let mut pod = json!({"spec": {"tolerations": [own.clone()]}});
        admit_create(&mut pod, 60);
        let list = pod["spec"]["tolerations"].as_array().expect("list");
        assert_eq!(list.len(), 2);
        assert_eq!(list[0], own);
        assert_eq!(list[1]["key"], "node.kubernetes.io/not-ready");
        assert_eq!(list[1]["tolerationSeconds"], 60);
        // A toleration of every taint (no key, no effect) covers both.
        let all = json!([{"operator": "Exists"}]);
        let mut pod = json!({"spec": {"tolerations": all.clone()}});
        admit_create(&mut pod, 300);
        assert_eq!(pod["spec"]["tolerations"], all);
        // A NoSchedule toleration does not.
        let mut pod = json!({"spec": {"tolerations": [
            {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule", "operator": "Exists"}]}});
        admit_create(&mut pod, 300);
        assert_eq!(pod["spec"]["tolerations"].as_array().map(Vec::len), Some(3));
    }
}
