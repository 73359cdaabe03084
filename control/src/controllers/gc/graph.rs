//! The garbage collector's view of ownership: every stored object by uid, with the owners it
//! names and the dependents that name it. Built from one list and one watch of the whole
//! registry — a single stream in revision order — so an owner is always known before any
//! dependent created after it, and "not in the graph" means "does not exist at this revision".
//! Applying a change returns the uids whose situation it may have changed.

use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;
use serde_json::Value;

use crate::api::delete::{FOREGROUND_FINALIZER, ORPHAN_FINALIZER};
use crate::kinds::{self, Resource};

/// Where an object lives.
#[derive(Clone, Debug)]
pub struct ObjectRef {
    pub resource: &'static Resource,
    pub namespace: Option<String>,
    pub name: String,
}

/// One entry of an object's `metadata.ownerReferences`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OwnerReference {
    pub uid: String,
    #[serde(default)]
    pub block_owner_deletion: Option<bool>,
    /// The whole entry, written back unchanged when another owner is dropped.
    #[serde(skip)]
    pub raw: Value,
}

/// What the collector keeps of one object.
#[derive(Clone, Debug)]
pub struct Node {
    pub at: ObjectRef,
    pub uid: String,
    /// The revision it was last seen at (its resourceVersion).
    pub revision: i64,
    pub owners: Vec<OwnerReference>,
    pub finalizers: Vec<String>,
    pub deleting: bool,
}

impl Node {
    pub fn has_finalizer(&self, finalizer: &str) -> bool {
        self.finalizers.iter().any(|f| f == finalizer)
    }

    /// Being deleted in the foreground: it waits for its dependents.
    pub fn waiting_for_dependents(&self) -> bool {
        self.deleting && self.has_finalizer(FOREGROUND_FINALIZER)
    }

    /// Whether the collector has work on it as an owner.
    fn collectable_owner(&self) -> bool {
        self.deleting
            && (self.has_finalizer(FOREGROUND_FINALIZER) || self.has_finalizer(ORPHAN_FINALIZER))
    }
}

#[derive(Deserialize)]
struct Partial {
    metadata: PartialMeta,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PartialMeta {
    #[serde(default)]
    uid: String,
    #[serde(default)]
    owner_references: Vec<Value>,
    #[serde(default)]
    finalizers: Vec<String>,
    #[serde(default)]
    deletion_timestamp: Option<String>,
}

/// The ownership graph.
#[derive(Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    uid_by_key: HashMap<String, String>,
    /// Owner uid → uids of the objects naming it (the owner may be absent).
    dependents: HashMap<String, BTreeSet<String>>,
}

impl Graph {
    pub fn node(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    /// The objects naming `uid` as an owner that still exist.
    pub fn dependents_of(&self, uid: &str) -> impl Iterator<Item = &Node> {
        self.dependents
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|d| self.nodes.get(d))
    }

    /// Every uid the collector should look at after a full (re)build.
    pub fn all_candidates(&self) -> BTreeSet<String> {
        self.nodes
            .values()
            .filter(|n| !n.owners.is_empty() || n.collectable_owner())
            .map(|n| n.uid.clone())
            .collect()
    }

    /// Records the object stored at `key` (created or changed); returns the uids to look at.
    /// Values that are not objects with a uid, and keys of no served resource, are skipped.
    pub fn put(&mut self, key: &str, value: &[u8], revision: i64) -> BTreeSet<String> {
        let mut dirty = BTreeSet::new();
        let Some((resource, namespace, name)) = kinds::for_key(key) else {
            return dirty;
        };
        let Ok(partial) = serde_json::from_slice::<Partial>(value) else {
            return dirty;
        };
        let meta = partial.metadata;
        if meta.uid.is_empty() {
            return dirty;
        }
        if self.uid_by_key.get(key).is_some_and(|old| *old != meta.uid) {
            dirty.extend(self.remove(key));
        }
        let owners = meta
            .owner_references
            .into_iter()
            .filter_map(|raw| {
                let mut owner: OwnerReference = serde_json::from_value(raw.clone()).ok()?;
                owner.raw = raw;
                Some(owner)
            })
            .collect();
        let node = Node {
            at: ObjectRef {
                resource,
                namespace: namespace.map(str::to_owned),
                name: name.to_owned(),
            },
            uid: meta.uid.clone(),
            revision,
            owners,
            finalizers: meta.finalizers,
            deleting: meta.deletion_timestamp.is_some(),
        };
        if let Some(old) = self.nodes.remove(&node.uid) {
            for owner in &old.owners {
                self.unlink(&owner.uid, &node.uid);
            }
        }
        for owner in &node.owners {
            self.dependents
                .entry(owner.uid.clone())
                .or_default()
                .insert(node.uid.clone());
        }
        if !node.owners.is_empty() || node.collectable_owner() {
            dirty.insert(node.uid.clone());
        }
        self.uid_by_key.insert(key.to_owned(), node.uid.clone());
        self.nodes.insert(node.uid.clone(), node);
        dirty
    }

    /// Forgets the object that was stored at `key`; returns the uids to look at: its
    /// dependents (an owner is gone) and its owners waiting for their dependents.
    pub fn remove(&mut self, key: &str) -> BTreeSet<String> {
        let mut dirty = BTreeSet::new();
        let Some(uid) = self.uid_by_key.remove(key) else {
            return dirty;
        };
        let Some(node) = self.nodes.remove(&uid) else {
            return dirty;
        };
        dirty.extend(self.dependents_of(&uid).map(|d| d.uid.clone()));
        for owner in &node.owners {
            self.unlink(&owner.uid, &uid);
            if self.nodes.contains_key(&owner.uid) {
                dirty.insert(owner.uid.clone());
            }
        }
        dirty
    }

    fn unlink(&mut self, owner: &str, dependent: &str) {
        if let Some(set) = self.dependents.get_mut(owner) {
            set.remove(dependent);
            if set.is_empty() {
                self.dependents.remove(owner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bytes(value: Value) -> Vec<u8> {
        value.to_string().into_bytes()
    }

    fn cm(name: &str, uid: &str, owners: &[&str]) -> Vec<u8> {
        let refs: Vec<Value> = owners
            .iter()
            .map(|o| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": o, "uid": o}))
            .collect();
        bytes(json!({"metadata": {"name": name, "uid": uid, "ownerReferences": refs}}))
    }

    const KEY: &str = "/registry/core/configmaps/default/";

    #[test]
    fn dependents_are_indexed_and_dirtied_when_their_owner_goes() {
        let mut g = Graph::default();
        assert!(g.put(&format!("{KEY}a"), &cm("a", "ua", &[]), 1).is_empty());
        let dirty = g.put(&format!("{KEY}b"), &cm("b", "ub", &["ua"]), 2);
        assert_eq!(dirty, BTreeSet::from(["ub".to_owned()]));
        assert_eq!(g.dependents_of("ua").count(), 1);
        let dirty = g.remove(&format!("{KEY}a"));
        assert_eq!(dirty, BTreeSet::from(["ub".to_owned()]));
        assert!(g.node("ua").is_none());
        // The dependent still points at the absent owner.
        assert_eq!(g.dependents_of("ua").count(), 1);
        g.remove(&format!("{KEY}b"));
        assert_eq!(g.dependents_of("ua").count(), 0);
    }

    #[test]
    fn a_changed_owner_list_moves_the_links() {
        let mut g = Graph::default();
        g.put(&format!("{KEY}b"), &cm("b", "ub", &["ua"]), 2);
        g.put(&format!("{KEY}b"), &cm("b", "ub", &["uc"]), 3);
        assert_eq!(g.dependents_of("ua").count(), 0);
        assert_eq!(g.dependents_of("uc").count(), 1);
        assert_eq!(g.node("ub").unwrap().revision, 3);
    }

    #[test]
    fn owners_being_deleted_with_gc_finalizers_are_candidates() {
        let mut g = Graph::default();
        let owner = bytes(json!({"metadata": {"name": "a", "uid": "ua",
            "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["orphan"]}}));
        assert_eq!(
            g.put(&format!("{KEY}a"), &owner, 5),
            BTreeSet::from(["ua".to_owned()])
        );
        assert_eq!(g.all_candidates(), BTreeSet::from(["ua".to_owned()]));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_skipped() {
        let mut g = Graph::default();
        assert!(g.put("/registry/nothing/x", b"{}", 1).is_empty());
        assert!(g.put(&format!("{KEY}x"), b"not json", 1).is_empty());
        assert!(g
            .put(&format!("{KEY}x"), b"{\"metadata\":{}}", 1)
            .is_empty());
        assert!(g.all_candidates().is_empty());
    }
}
