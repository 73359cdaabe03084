//! What is placed on every node, kept up to date from the pod cache's change stream, like
//! kube-scheduler's node-info cache: each change of a pod replaces that pod's contribution,
//! so placing one pod costs a look at the nodes, not a scan of every pod in the cluster (a
//! burst of n pods was O(n²)). Every update sets a pod's entry to what the cache holds *now*,
//! so the order in which changes arrive does not matter, and a full rebuild is always safe.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use serde_json::Value;

use super::placement::{requests_of, Requests};
use crate::controllers::informer::Informer;
use crate::controllers::pods::{controller_of, is_active};

/// One placed pod's share of its node.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Placed {
    node: String,
    requests: Requests,
    /// Its controller's uid, for spreading siblings.
    owner: Option<String>,
}

impl Placed {
    /// The share of `pod`, if it is active and bound to a node.
    fn of(pod: &Value) -> Option<Placed> {
        let node = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty())?;
        if !is_active(pod) {
            return None;
        }
        Some(Placed {
            node: node.to_owned(),
            requests: requests_of(pod),
            owner: owner_uid(pod),
        })
    }
}

/// The uid of `pod`'s controller.
pub fn owner_uid(pod: &Value) -> Option<String> {
    controller_of(pod).and_then(|o| o["uid"].as_str().map(str::to_owned))
}

/// Totals of one node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeUsage {
    pub requested: Requests,
    pub pods: usize,
}

#[derive(Default)]
struct Tables {
    pods: HashMap<String, Placed>,
    nodes: HashMap<String, NodeUsage>,
    /// (node, controller uid) → pods of that controller on that node.
    siblings: HashMap<(String, String), usize>,
}

impl Tables {
    fn add(&mut self, placed: &Placed) {
        let node = self.nodes.entry(placed.node.clone()).or_default();
        node.requested += placed.requests;
        node.pods += 1;
        if let Some(owner) = &placed.owner {
            *self
                .siblings
                .entry((placed.node.clone(), owner.clone()))
                .or_default() += 1;
        }
    }

    fn remove(&mut self, placed: &Placed) {
        if let Some(node) = self.nodes.get_mut(&placed.node) {
            node.requested.cpu_milli -= placed.requests.cpu_milli;
            node.requested.memory -= placed.requests.memory;
            node.pods = node.pods.saturating_sub(1);
            if node.pods == 0 {
                self.nodes.remove(&placed.node);
            }
        }
        if let Some(owner) = &placed.owner {
            let key = (placed.node.clone(), owner.clone());
            if let Some(n) = self.siblings.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.siblings.remove(&key);
                }
            }
        }
    }

    fn set(&mut self, key: &str, now: Option<Placed>) {
        if self.pods.get(key) == now.as_ref() {
            return;
        }
        if let Some(old) = self.pods.remove(key) {
            self.remove(&old);
        }
        if let Some(now) = now {
            self.add(&now);
            self.pods.insert(key.to_owned(), now);
        }
    }
}

/// The placed pods of every node.
#[derive(Default)]
pub struct Usage {
    tables: Mutex<Tables>,
}

impl Usage {
    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the cache's current state of the pod at `key`.
    pub fn observe(&self, pods: &Informer, key: &str) {
        let now = pods.get(key).and_then(|p| Placed::of(&p));
        self.lock().set(key, now);
    }

    /// Recounts everything from the cache (at start, and when a change was missed).
    pub fn rebuild(&self, pods: &Informer) {
        let mut fresh = Tables::default();
        for key in pods.keys() {
            if let Some(placed) = pods.get(&key).and_then(|p| Placed::of(&p)) {
                fresh.add(&placed);
                fresh.pods.insert(key, placed);
            }
        }
        *self.lock() = fresh;
    }

    /// Whether the pod at `key` is counted on a node.
    pub fn counts(&self, key: &str) -> bool {
        self.lock().pods.contains_key(key)
    }

    /// The keys of the pods counted on `node`.
    pub fn keys_on(&self, node: &str) -> Vec<String> {
        let tables = self.lock();
        tables
            .pods
            .iter()
            .filter(|(_, placed)| placed.node == node)
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// The totals of `node`, and how many pods of controller `owner` run there.
    pub fn of_node(&self, node: &str, owner: Option<&str>) -> (NodeUsage, usize) {
        let tables = self.lock();
        let usage = tables.nodes.get(node).copied().unwrap_or_default();
        let siblings = owner
            .and_then(|o| tables.siblings.get(&(node.to_owned(), o.to_owned())))
            .copied()
            .unwrap_or(0);
        (usage, siblings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(node: &str, cpu: &str, owner: &str, phase: &str) -> Option<Placed> {
        Placed::of(&json!({
            "metadata": {"ownerReferences": [{"controller": true, "uid": owner}]},
            "spec": {"nodeName": node, "containers": [{"resources": {"requests": {"cpu": cpu}}}]},
            "status": {"phase": phase}}))
    }

    #[test]
    fn a_pod_counts_once_where_it_is_now_and_leaves_nothing_behind() {
        let mut t = Tables::default();
        t.set("a", pod("n1", "100m", "rs1", "Running"));
        t.set("a", pod("n1", "100m", "rs1", "Running"));
        t.set("b", pod("n1", "250m", "rs1", "Pending"));
        assert_eq!(t.nodes["n1"].pods, 2);
        assert_eq!(t.nodes["n1"].requested.cpu_milli, 350);
        assert_eq!(t.siblings[&("n1".into(), "rs1".into())], 2);
        // Rebound elsewhere (cannot happen in Kubernetes, but the tables must stay right).
        t.set("b", pod("n2", "250m", "rs1", "Running"));
        assert_eq!(t.nodes["n1"].requested.cpu_milli, 100);
        assert_eq!(t.nodes["n2"].pods, 1);
        // Finished, then deleted.
        t.set("a", pod("n1", "100m", "rs1", "Succeeded"));
        t.set("b", None);
        assert!(t.nodes.is_empty() && t.siblings.is_empty() && t.pods.is_empty());
    }

    #[test]
    fn unbound_pods_take_nothing() {
        assert_eq!(pod("", "1", "rs1", "Pending"), None);
    }
}
