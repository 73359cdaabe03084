//! What the collector does about one object, decided from the graph alone (no I/O), as
//! Kubernetes' garbage collector decides it:
//! - an owner being deleted with the `orphan` finalizer: every dependent loses its reference
//!   to it, then the finalizer goes;
//! - an owner being deleted with `foregroundDeletion`: its dependents are deleted, and once no
//!   dependent that blocks it (`blockOwnerDeletion`) is left, the finalizer goes;
//! - a dependent none of whose owners exists any more (or whose owners all wait for their
//!   dependents) is deleted — in the foreground when an owner waits, so the wait covers the
//!   whole tree; one that keeps a live owner only loses the references to the absent ones.

use serde_json::{json, Value};

use super::graph::{Graph, Node, ObjectRef};
use crate::api::delete::{FOREGROUND_FINALIZER, ORPHAN_FINALIZER};

/// One write the collector makes.
#[derive(Clone, Debug)]
pub enum Step {
    /// Delete the object, if it still has this uid.
    Delete {
        at: ObjectRef,
        uid: String,
        propagation: &'static str,
    },
    /// Merge-patch `metadata` of the object, conditional on the revision it was seen at.
    PatchMeta {
        at: ObjectRef,
        revision: i64,
        metadata: Value,
    },
}

/// The steps for the object with `uid`, in order; empty when there is nothing to do.
pub fn plan(graph: &Graph, uid: &str) -> Vec<Step> {
    let Some(node) = graph.node(uid) else {
        return Vec::new();
    };
    let mut steps = Vec::new();
    if node.deleting && node.has_finalizer(ORPHAN_FINALIZER) {
        for dependent in graph.dependents_of(uid) {
            steps.push(set_owners(dependent, |o| o != uid));
        }
        steps.push(drop_finalizer(node, ORPHAN_FINALIZER));
        return steps;
    }
    if node.waiting_for_dependents() {
        let mut blocked = false;
        for dependent in graph.dependents_of(uid) {
            if dependent
                .owners
                .iter()
                .any(|o| o.uid == uid && o.block_owner_deletion == Some(true))
            {
                blocked = true;
            }
            if !dependent.deleting {
                steps.push(delete(graph, dependent, true));
            }
        }
        if !blocked {
            steps.push(drop_finalizer(node, FOREGROUND_FINALIZER));
        }
        return steps;
    }
    if node.owners.is_empty() || node.deleting {
        return steps;
    }
    let mut absent = Vec::new();
    let mut waiting = false;
    let mut live = false;
    for owner in &node.owners {
        match graph.node(&owner.uid) {
            Some(o) if same_scope(node, o) => {
                if o.waiting_for_dependents() {
                    waiting = true;
                } else {
                    live = true;
                }
            }
            // An owner of a kind no served resource has (a custom resource whose CRD this
            // process does not serve yet, or any more) cannot be looked up: kube's collector
            // leaves such a dependent alone rather than delete it.
            None if !resolvable(&owner.raw) => live = true,
            _ => absent.push(owner.uid.as_str()),
        }
    }
    if !live && (waiting || !absent.is_empty()) {
        steps.push(delete(graph, node, waiting));
    } else if !absent.is_empty() {
        steps.push(set_owners(node, |o| !absent.contains(&o)));
    }
    steps
}

/// Whether an owner reference's group and kind name a served resource.
fn resolvable(reference: &serde_json::Value) -> bool {
    let api_version = reference["apiVersion"].as_str().unwrap_or("");
    let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
    let kind = reference["kind"].as_str().unwrap_or("");
    crate::kinds::all().any(|r| r.group == group && r.kind == kind)
}

/// A namespaced dependent's owner is in its namespace or cluster-scoped; a cluster-scoped
/// dependent's owner is cluster-scoped. Anything else names no real owner.
fn same_scope(dependent: &Node, owner: &Node) -> bool {
    match (&dependent.at.namespace, &owner.at.namespace) {
        (_, None) => true,
        (Some(d), Some(o)) => d == o,
        (None, Some(_)) => false,
    }
}

fn delete(graph: &Graph, node: &Node, foreground: bool) -> Step {
    let has_dependents = graph.dependents_of(&node.uid).next().is_some();
    Step::Delete {
        at: node.at.clone(),
        uid: node.uid.clone(),
        propagation: if foreground && has_dependents {
            "Foreground"
        } else {
            "Background"
        },
    }
}

fn set_owners(node: &Node, keep: impl Fn(&str) -> bool) -> Step {
    let owners: Vec<Value> = node
        .owners
        .iter()
        .filter(|o| keep(&o.uid))
        .map(|o| o.raw.clone())
        .collect();
    Step::PatchMeta {
        at: node.at.clone(),
        revision: node.revision,
        metadata: json!({ "ownerReferences": if owners.is_empty() { Value::Null } else { json!(owners) } }),
    }
}

fn drop_finalizer(node: &Node, finalizer: &str) -> Step {
    let rest: Vec<&String> = node.finalizers.iter().filter(|f| *f != finalizer).collect();
    Step::PatchMeta {
        at: node.at.clone(),
        revision: node.revision,
        metadata: json!({ "finalizers": if rest.is_empty() { Value::Null } else { json!(rest) } }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "/registry/core/configmaps/default/";

    fn put(g: &mut Graph, name: &str, owners: &[(&str, bool)], extra: Value) {
        let refs: Vec<Value> = owners
            .iter()
            .map(|(o, block)| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": o, "uid": o, "blockOwnerDeletion": block}))
            .collect();
        let mut meta = json!({"name": name, "uid": name, "ownerReferences": refs});
        if let (Some(m), Some(e)) = (meta.as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        g.put(
            &format!("{KEY}{name}"),
            json!({ "metadata": meta }).to_string().as_bytes(),
            7,
        );
    }

    fn deleting(finalizers: &[&str]) -> Value {
        json!({"deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": finalizers})
    }

    fn deleted(steps: &[Step]) -> Vec<(&str, &str)> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Delete {
                    at, propagation, ..
                } => Some((at.name.as_str(), *propagation)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_dependent_of_an_absent_owner_is_deleted_in_the_background() {
        let mut g = Graph::default();
        put(&mut g, "dep", &[("gone", false)], json!({}));
        assert_eq!(deleted(&plan(&g, "dep")), [("dep", "Background")]);
    }

    #[test]
    fn an_owner_of_an_unserved_kind_is_never_taken_for_absent() {
        let mut g = Graph::default();
        let owner =
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "name": "w", "uid": "w"});
        put(&mut g, "dep", &[], json!({"ownerReferences": [owner]}));
        assert!(plan(&g, "dep").is_empty());
    }

    #[test]
    fn a_dependent_with_a_live_owner_only_loses_the_absent_ones() {
        let mut g = Graph::default();
        put(&mut g, "live", &[], json!({}));
        put(
            &mut g,
            "dep",
            &[("gone", false), ("live", false)],
            json!({}),
        );
        let steps = plan(&g, "dep");
        assert_eq!(steps.len(), 1);
        let Step::PatchMeta {
            metadata, revision, ..
        } = &steps[0]
        else {
            panic!("{steps:?}")
        };
        assert_eq!(*revision, 7);
        assert_eq!(metadata["ownerReferences"][0]["uid"], "live");
        assert_eq!(metadata["ownerReferences"].as_array().unwrap().len(), 1);
        put(&mut g, "ok", &[("live", false)], json!({}));
        assert!(plan(&g, "ok").is_empty());
    }

    #[test]
    fn orphaning_strips_references_then_the_finalizer() {
        let mut g = Graph::default();
        put(
            &mut g,
            "owner",
            &[],
            deleting(&["orphan", "example.com/keep"]),
        );
        put(&mut g, "dep", &[("owner", true)], json!({}));
        let steps = plan(&g, "owner");
        assert_eq!(steps.len(), 2);
        assert!(matches!(&steps[0], Step::PatchMeta { at, metadata, .. }
            if at.name == "dep" && metadata["ownerReferences"].is_null()));
        assert!(matches!(&steps[1], Step::PatchMeta { at, metadata, .. }
            if at.name == "owner" && metadata["finalizers"] == json!(["example.com/keep"])));
    }

    #[test]
    fn foreground_deletes_dependents_and_waits_for_blocking_ones() {
        let mut g = Graph::default();
        put(&mut g, "owner", &[], deleting(&["foregroundDeletion"]));
        put(&mut g, "blocking", &[("owner", true)], json!({}));
        put(&mut g, "grandchild", &[("blocking", true)], json!({}));
        put(&mut g, "loose", &[("owner", false)], json!({}));
        let steps = plan(&g, "owner");
        assert_eq!(
            deleted(&steps),
            [("blocking", "Foreground"), ("loose", "Background")]
        );
        assert!(!steps.iter().any(|s| matches!(s, Step::PatchMeta { .. })));
        // The dependents themselves see an owner waiting for them.
        assert_eq!(deleted(&plan(&g, "loose")), [("loose", "Background")]);
        g.remove(&format!("{KEY}blocking"));
        let steps = plan(&g, "owner");
        assert!(
            matches!(steps.last(), Some(Step::PatchMeta { metadata, .. })
            if metadata["finalizers"].is_null())
        );
    }

    #[test]
    fn a_mirror_pod_lives_with_its_node_and_goes_with_it() {
        let prefix = |plural| {
            let r = crate::kinds::find("", "v1", plural).expect("served");
            r.key_prefix()
        };
        let node_key = format!("{}n1", prefix("nodes"));
        let mut g = Graph::default();
        g.put(
            &node_key,
            br#"{"metadata":{"name":"n1","uid":"node-uid"}}"#,
            3,
        );
        let mirror = json!({"metadata": {"name": "etcd-n1", "uid": "mirror",
            "annotations": {"kubernetes.io/config.mirror": "h"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "n1",
                "uid": "node-uid", "controller": true}]}});
        let mirror_key = format!("{}kube-system/etcd-n1", prefix("pods"));
        let dirty = g.put(&mirror_key, mirror.to_string().as_bytes(), 4);
        // A namespaced pod owned by a cluster-scoped Node: a live owner, nothing to do.
        assert!(plan(&g, "mirror").is_empty(), "{dirty:?}");
        let dirty = g.remove(&node_key);
        assert!(dirty.contains("mirror"));
        assert_eq!(deleted(&plan(&g, "mirror")), [("etcd-n1", "Background")]);
    }

    #[test]
    fn an_owner_in_another_namespace_counts_as_absent() {
        let mut g = Graph::default();
        g.put(
            "/registry/core/configmaps/other/owner",
            br#"{"metadata":{"name":"owner","uid":"owner"}}"#,
            3,
        );
        put(&mut g, "dep", &[("owner", false)], json!({}));
        assert_eq!(deleted(&plan(&g, "dep")), [("dep", "Background")]);
    }
}
