//! The node rule: Kubernetes' Node authorizer and NodeRestriction admission as one decision
//! for a node named `node`. Relationship checks read the stored objects through `Facts`: a
//! pod's status may be written only while the stored pod is bound to the node, and a Secret,
//! ConfigMap or PersistentVolumeClaim is readable only while a pod bound to the node in the
//! same namespace references it (volumes, projected sources, env `valueFrom`, `envFrom`,
//! `imagePullSecrets`). Pod writes follow NodeRestriction (`node_pods`). A bosun node is also
//! the CSI provisioner and resizer of its node-local drivers (ARCHITECTURE.md "Volumes"), so
//! it holds the external-provisioner's and external-resizer's rights: claims and volumes
//! (read, create/delete volumes, patch claims and their status), StorageClasses (read), and
//! its own CSINode, like kubelet. It may request tokens for its pods' service accounts
//! (`node_tokens`).

use serde_json::Value;

use super::{Attributes, Denied, Facts};
use crate::status::ApiError;

/// The namespace of node Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

pub async fn decide(
    node: &str,
    attrs: &Attributes<'_>,
    facts: &dyn Facts,
) -> Result<Option<Denied>, ApiError> {
    let allow = Ok(None);
    let deny = Ok(Some(Denied(String::new())));
    let no_relationship = || {
        Ok(Some(Denied(format!(
            "no relationship found between node '{node}' and this object"
        ))))
    };
    let own = attrs.name == Some(node);
    let r = attrs.resource;
    match (r.group, r.plural) {
        // What every node watches to run its pods and the Services they reach (the objects
        // and their status; not a pod's log or other streams).
        ("", "nodes" | "pods" | "services" | "endpoints" | "namespaces")
        | ("discovery.k8s.io", "endpointslices")
            if attrs.reading() && matches!(attrs.subresource, None | Some("status")) =>
        {
            allow
        }
        ("", "nodes") => match attrs.verb {
            "create" | "update" | "patch" if own => allow,
            _ => deny,
        },
        ("coordination.k8s.io", "leases") => {
            let in_lease_ns = attrs.namespace == Some(NODE_LEASE_NAMESPACE);
            match attrs.verb {
                "get" | "create" | "update" | "patch" if own && in_lease_ns => allow,
                _ => deny,
            }
        }
        ("", "pods") => super::node_pods::decide(node, attrs, facts).await,
        ("", "events") | ("events.k8s.io", "events") => match attrs.verb {
            "create" | "patch" => allow,
            _ => deny,
        },
        // The external-provisioner's and external-resizer's ClusterRoles.
        ("", "persistentvolumes") => match attrs.verb {
            "get" | "list" | "watch" | "create" | "delete" | "patch" | "update"
                if attrs.subresource.is_none() =>
            {
                allow
            }
            _ => deny,
        },
        ("", "persistentvolumeclaims") => match (attrs.verb, attrs.subresource) {
            ("get" | "list" | "watch" | "update" | "patch", None)
            | ("patch" | "update", Some("status")) => allow,
            _ => deny,
        },
        ("storage.k8s.io", "storageclasses") if attrs.reading() => allow,
        // kubelet's own CSINode (the system:node role and NodeRestriction).
        ("storage.k8s.io", "csinodes") => match attrs.verb {
            "get" | "create" | "update" | "patch" | "delete" if own => allow,
            _ => deny,
        },
        ("", "secrets" | "configmaps") => {
            // get, or a list/watch pinned to one name (how kubelets watch one Secret).
            let (Some(ns), Some(name)) = (attrs.namespace, attrs.name) else {
                return deny;
            };
            if !attrs.reading() || attrs.subresource.is_some() {
                return deny;
            }
            let plural = r.plural;
            if facts
                .any_pod_on_node(ns, node, &|p| references(p, plural, name))
                .await?
            {
                allow
            } else {
                no_relationship()
            }
        }
        // Tokens for its pods' service accounts, bound to those pods (`node_tokens`).
        ("", "serviceaccounts") if attrs.subresource == Some("token") => {
            super::node_tokens::decide(node, attrs, facts).await
        }
        ("certificates.k8s.io", "certificatesigningrequests")
            if attrs.subresource.is_none()
                && matches!(attrs.verb, "create" | "get" | "list" | "watch") =>
        {
            allow
        }
        _ => deny,
    }
}

/// Whether `pod` references the `plural` object named `name`.
pub fn references(pod: &Value, plural: &str, name: &str) -> bool {
    let mut names = Vec::new();
    collect_references(pod, plural, &mut names);
    names.contains(&name) || (plural == "persistentvolumeclaims" && ephemeral_claim(pod, name))
}

/// Whether `name` is the claim of one of the pod's generic ephemeral volumes
/// (`<pod>-<volume>`).
fn ephemeral_claim(pod: &Value, name: &str) -> bool {
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or("");
    pod["spec"]["volumes"].as_array().is_some_and(|volumes| {
        volumes.iter().any(|v| {
            v["ephemeral"].is_object()
                && v["name"]
                    .as_str()
                    .is_some_and(|vol| format!("{pod_name}-{vol}") == name)
        })
    })
}

pub(super) fn collect_references<'a>(pod: &'a Value, plural: &str, out: &mut Vec<&'a str>) {
    let spec = &pod["spec"];
    let mut push = |v: &'a Value| {
        if let Some(s) = v.as_str() {
            out.push(s);
        }
    };
    let list = |v: &'a Value| v.as_array().map(Vec::as_slice).unwrap_or_default();
    let containers = ["containers", "initContainers", "ephemeralContainers"]
        .into_iter()
        .flat_map(|k| list(&spec[k]));
    match plural {
        "secrets" => {
            for s in list(&spec["imagePullSecrets"]) {
                push(&s["name"]);
            }
            for v in list(&spec["volumes"]) {
                push(&v["secret"]["secretName"]);
                push(&v["csi"]["nodePublishSecretRef"]["name"]);
                for kind in [
                    "cephfs",
                    "cinder",
                    "flexVolume",
                    "iscsi",
                    "rbd",
                    "scaleIO",
                    "storageos",
                ] {
                    push(&v[kind]["secretRef"]["name"]);
                }
                push(&v["azureFile"]["secretName"]);
                for source in list(&v["projected"]["sources"]) {
                    push(&source["secret"]["name"]);
                }
            }
            for c in containers {
                for e in list(&c["env"]) {
                    push(&e["valueFrom"]["secretKeyRef"]["name"]);
                }
                for e in list(&c["envFrom"]) {
                    push(&e["secretRef"]["name"]);
                }
            }
        }
        "configmaps" => {
            for v in list(&spec["volumes"]) {
                push(&v["configMap"]["name"]);
                for source in list(&v["projected"]["sources"]) {
                    push(&source["configMap"]["name"]);
                }
            }
            for c in containers {
                for e in list(&c["env"]) {
                    push(&e["valueFrom"]["configMapKeyRef"]["name"]);
                }
                for e in list(&c["envFrom"]) {
                    push(&e["configMapRef"]["name"]);
                }
            }
        }
        "persistentvolumeclaims" => {
            for v in list(&spec["volumes"]) {
                push(&v["persistentVolumeClaim"]["claimName"]);
            }
        }
        _ => {}
    }
}
