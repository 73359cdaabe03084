//! What a node may do to pods, as the Node authorizer with the `system:node` role and
//! NodeRestriction admission allow it: read any pod; write the status of pods bound to it;
//! delete pods bound to it (a kubelet finishes their graceful deletion and replaces its mirror
//! pods); create only mirror pods — the `kubernetes.io/config.mirror` annotation, bound to
//! itself, with one owner reference, to its own Node (`v1`, same uid, `controller: true`, no
//! `blockOwnerDeletion`), referencing no service account, Secret, ConfigMap or
//! PersistentVolumeClaim (it could then read them); nothing else (no update or patch of a pod).
//! NodeRestriction's refusals read as kube-apiserver words them (`pods "m" is forbidden: node
//! "n1" can only create pods with spec.nodeName set to itself`).

use serde_json::Value;

use super::admission::admission_forbidden;
use super::node::collect_references;
use super::{Attributes, Denied, Facts};
use crate::kinds;
use crate::status::ApiError;

/// The annotation that marks a mirror pod (a static pod's reflection in the API).
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

pub async fn decide(
    node: &str,
    attrs: &Attributes<'_>,
    facts: &dyn Facts,
) -> Result<Option<Denied>, ApiError> {
    let refuse = |why: String| {
        let name = attrs.name.unwrap_or("");
        Err(admission_forbidden(attrs.resource, name, &why))
    };
    let stored = || async {
        match (attrs.namespace, attrs.name) {
            (Some(ns), Some(name)) => facts.stored(attrs.resource, Some(ns), name).await,
            _ => Ok(None),
        }
    };
    let bound = |pod: &Value| pod["spec"]["nodeName"] == node;
    match (attrs.verb, attrs.subresource) {
        ("get" | "list" | "watch", None) => Ok(None),
        // A pod that does not exist is answered 404 by the handler.
        ("update" | "patch", Some("status")) => match stored().await? {
            Some(pod) if !bound(&pod) => refuse(format!(
                "node {node:?} can only update pod status for pods with spec.nodeName set to itself"
            )),
            _ => Ok(None),
        },
        ("delete", None) => match stored().await? {
            Some(pod) if !bound(&pod) => refuse(format!(
                "node {node:?} can only delete pods with spec.nodeName set to itself"
            )),
            _ => Ok(None),
        },
        ("create", None) => {
            let pod = attrs.object.unwrap_or(&Value::Null);
            match mirror_pod_refusal(node, pod, facts).await? {
                Some(why) => refuse(why),
                None => Ok(None),
            }
        }
        _ => Ok(Some(Denied(String::new()))),
    }
}

/// Why NodeRestriction refuses `node`'s create of `pod`, if it does.
async fn mirror_pod_refusal(
    node: &str,
    pod: &Value,
    facts: &dyn Facts,
) -> Result<Option<String>, ApiError> {
    let no = |why: String| Ok(Some(why));
    if pod["metadata"]["annotations"][MIRROR_ANNOTATION].is_null() {
        return no(format!(
            "pod does not have \"{MIRROR_ANNOTATION}\" annotation, node {node:?} can only create mirror pods"
        ));
    }
    if pod["spec"]["nodeName"] != node {
        return no(format!(
            "node {node:?} can only create pods with spec.nodeName set to itself"
        ));
    }
    let owners = pod["metadata"]["ownerReferences"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let owner = match owners {
        [owner] => owner,
        [] => {
            return no(format!(
                "node {node:?} can only create pods with an owner reference set to itself"
            ))
        }
        _ => {
            return no(format!(
                "node {node:?} can only create pods with a single owner reference set to itself"
            ))
        }
    };
    if owner["apiVersion"] != "v1" || owner["kind"] != "Node" || owner["name"] != node {
        return no(format!(
            "node {node:?} can only create pods with an owner reference set to itself"
        ));
    }
    if owner["controller"] != true {
        return no(format!(
            "node {node:?} can only create pods with a controller owner reference set to itself"
        ));
    }
    if owner["blockOwnerDeletion"] == true {
        return no(format!(
            "node {node:?} must not set blockOwnerDeletion on an owner reference"
        ));
    }
    let nodes = kinds::find("", "v1", "nodes")
        .ok_or_else(|| ApiError::internal("the kinds table has no nodes"))?;
    let Some(stored) = facts.stored(nodes, None, node).await? else {
        return Err(ApiError::not_found(nodes.group, nodes.plural, node));
    };
    // In kube-apiserver's order: "expected" the owner's uid, "got" the Node's.
    let owner_uid = owner["uid"].as_str().unwrap_or("");
    let node_uid = stored["metadata"]["uid"].as_str().unwrap_or("");
    if owner_uid != node_uid {
        return no(format!(
            "node {node} UID mismatch: expected {owner_uid} got {node_uid}"
        ));
    }
    let account = pod["spec"]["serviceAccountName"].as_str().unwrap_or("");
    if !account.is_empty() {
        return no(format!(
            "node {node:?} can not create pods that reference a service account"
        ));
    }
    for plural in ["secrets", "configmaps", "persistentvolumeclaims"] {
        let mut names = Vec::new();
        collect_references(pod, plural, &mut names);
        if !names.is_empty() {
            return no(format!(
                "node {node:?} can not create pods that reference {plural}"
            ));
        }
    }
    Ok(None)
}
