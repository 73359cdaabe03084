//! What NodeRestriction admission checks on the object a node writes, once the result of the
//! write is known (the authorizer only saw the request): a node may not set or change labels
//! in the `kubernetes.io`/`k8s.io` namespaces beyond the kubelet's own (hostname, os, arch,
//! instance type, topology, `node.kubernetes.io/*`, `kubelet.kubernetes.io/*`), nor any
//! `node-restriction.kubernetes.io/` label, nor its taints — so it cannot promote itself to
//! attract other workloads.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::authn::Identity;
use crate::kinds::Resource;
use crate::status::ApiError;

/// Labels a kubelet may set on its Node.
const KUBELET_LABELS: &[&str] = &[
    "kubernetes.io/hostname",
    "kubernetes.io/arch",
    "kubernetes.io/os",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "failure-domain.beta.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/os",
];

/// Label domains a kubelet may use freely.
const KUBELET_DOMAINS: &[&str] = &["kubelet.kubernetes.io", "node.kubernetes.io"];

fn in_domain(domain: &str, of: &str) -> bool {
    domain == of || domain.ends_with(&format!(".{of}"))
}

/// Whether a node may set label `key` on itself.
pub fn node_may_set_label(key: &str) -> bool {
    let Some((domain, _)) = key.split_once('/') else {
        return true;
    };
    if in_domain(domain, "node-restriction.kubernetes.io") {
        return false;
    }
    if !in_domain(domain, "kubernetes.io") && !in_domain(domain, "k8s.io") {
        return true;
    }
    KUBELET_LABELS.contains(&key) || KUBELET_DOMAINS.iter().any(|d| in_domain(domain, d))
}

/// An admission plugin's 403, as kube-apiserver words it: `pods "m" is forbidden: <why>`.
pub fn admission_forbidden(resource: &Resource, name: &str, why: &str) -> ApiError {
    let what = resource.group_resource();
    let message = if name.is_empty() {
        format!("{what} is forbidden: {why}")
    } else {
        format!("{what} {name:?} is forbidden: {why}")
    };
    let mut e = ApiError::forbidden(message);
    e.details =
        Some(serde_json::json!({"name": name, "group": resource.group, "kind": resource.plural}));
    e
}

/// Refuses a node's write of its Node (`old` is `None` on create) that NodeRestriction
/// would refuse; anything else passes.
pub fn admit(
    identity: &Identity,
    resource: &Resource,
    old: Option<&Value>,
    new: &Value,
) -> Result<(), ApiError> {
    let Some(node) = identity.node_name() else {
        return Ok(());
    };
    if identity.is_admin() || (resource.group, resource.plural) != ("", "nodes") {
        return Ok(());
    }
    let name = new["metadata"]["name"].as_str().unwrap_or("");
    let refuse = |why: String| Err(admission_forbidden(resource, name, &why));
    let labels = |v: Option<&Value>| -> Vec<(String, Value)> {
        v.and_then(|v| v["metadata"]["labels"].as_object())
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    };
    let (before, after) = (labels(old), labels(Some(new)));
    let changed: BTreeSet<&str> = after
        .iter()
        .filter(|(k, v)| !before.iter().any(|(bk, bv)| bk == k && bv == v))
        .chain(
            before
                .iter()
                .filter(|(k, _)| !after.iter().any(|(ak, _)| ak == k)),
        )
        .map(|(k, _)| k.as_str())
        .filter(|k| !node_may_set_label(k))
        .collect();
    if !changed.is_empty() {
        let keys: Vec<&str> = changed.into_iter().collect();
        let verb = if old.is_some() {
            "modify labels"
        } else {
            "set the following labels"
        };
        return refuse(format!(
            "node {node:?} is not allowed to {verb}: {}",
            keys.join(", ")
        ));
    }
    let taints = |v: Option<&Value>| v.map(|v| v["spec"]["taints"].clone()).unwrap_or_default();
    let no_taints = |t: &Value| t.is_null() || t.as_array().is_some_and(Vec::is_empty);
    if let Some(old) = old {
        let (was, is) = (taints(Some(old)), taints(Some(new)));
        if was != is && !(no_taints(&was) && no_taints(&is)) {
            return refuse(format!("node {node:?} is not allowed to modify taints"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node_resource() -> &'static Resource {
        crate::kinds::find("", "v1", "nodes").unwrap()
    }

    fn node(labels: Value, taints: Value) -> Value {
        json!({"metadata": {"name": "n1", "labels": labels}, "spec": {"taints": taints}})
    }

    #[test]
    fn a_node_keeps_to_the_kubelets_labels_and_cannot_touch_taints() {
        let n1 = Identity {
            user: "system:node:n1".into(),
            groups: vec!["system:nodes".into()],
            ..Default::default()
        };
        let r = node_resource();
        let old = node(
            json!({"kubernetes.io/hostname": "n1", "node-role.kubernetes.io/worker": ""}),
            json!(null),
        );
        for (labels, ok) in [
            (
                json!({"kubernetes.io/hostname": "n1", "node-role.kubernetes.io/worker": "", "bosun.dev/x": "y"}),
                true,
            ),
            (
                json!({"kubernetes.io/hostname": "n1", "node-role.kubernetes.io/worker": "", "node.kubernetes.io/exclude": "y"}),
                true,
            ),
            (
                json!({"kubernetes.io/hostname": "n1", "node-role.kubernetes.io/worker": "", "topology.kubernetes.io/zone": "a"}),
                true,
            ),
            // An unchanged restricted label is fine; a new or changed one is not.
            (
                json!({"kubernetes.io/hostname": "n1", "node-role.kubernetes.io/worker": "", "node-role.kubernetes.io/control-plane": ""}),
                false,
            ),
            (
                json!({"kubernetes.io/hostname": "n1", "node-role.kubernetes.io/worker": "x"}),
                false,
            ),
            (json!({"kubernetes.io/hostname": "n1"}), false),
            (
                json!({"kubernetes.io/hostname": "n1", "node-role.kubernetes.io/worker": "", "a.node-restriction.kubernetes.io/b": ""}),
                false,
            ),
            (
                json!({"kubernetes.io/hostname": "n1", "node-role.kubernetes.io/worker": "", "example.k8s.io/x": ""}),
                false,
            ),
        ] {
            let new = node(labels.clone(), json!(null));
            assert_eq!(admit(&n1, r, Some(&old), &new).is_ok(), ok, "{labels}");
        }
        let e = admit(
            &n1,
            r,
            None,
            &node(
                json!({"node-role.kubernetes.io/control-plane": ""}),
                json!([]),
            ),
        )
        .unwrap_err();
        assert_eq!(e.message, "nodes \"n1\" is forbidden: node \"n1\" is not allowed to set the following labels: node-role.kubernetes.io/control-plane");
        let tainted = node(
            json!({"kubernetes.io/hostname": "n1", "node-role.kubernetes.io/worker": ""}),
            json!([{"key": "k", "effect": "NoSchedule"}]),
        );
        let e = admit(&n1, r, Some(&tainted), &old).unwrap_err();
        assert!(
            e.message.ends_with("is not allowed to modify taints"),
            "{}",
            e.message
        );
        // Administrators are not restricted.
        let admin = Identity {
            user: "a".into(),
            groups: vec!["system:masters".into()],
            ..Default::default()
        };
        assert!(admit(&admin, r, Some(&tainted), &old).is_ok());
    }
}
