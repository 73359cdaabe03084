//! The PersistentVolume controller (kube-controller-manager's `persistentvolume-binder`):
//! binds claims to volumes both ways, marks volumes Available/Bound/Released, sends claims of a
//! provisioning class to their provisioner (the `storage-provisioner` annotations, as kube does
//! for an external CSI provisioner), keeps WaitForFirstConsumer claims Pending until the
//! scheduler names a node (`volume.kubernetes.io/selected-node`), and releases the volume of a
//! deleted claim. `matching` decides which volume fits (pure); `claim` and `volume` are the
//! two halves of the one reconcile (a key is a claim's or a volume's), `protection` lets a
//! claim or volume being deleted go once nothing uses it. It never deletes a
//! volume: a Released volume with reclaimPolicy Delete is the provisioner's (named by
//! `pv.kubernetes.io/provisioned-by`) to delete, on its node.

mod claim;
pub(crate) mod matching;
mod protection;
mod volume;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;

use super::client::{revision_of, ClientError, Loopback};
use super::events::{record, EventType};
use super::informer::Informer;
use super::queue::{forward, wait_synced, work, WorkQueue};

pub const COMPONENT: &str = "persistentvolume-controller";
pub const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
pub const BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
pub const STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
pub const BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// kube's periodic resync of every claim and volume.
const RESYNC: Duration = Duration::from_secs(15);

/// The caches it reads.
pub struct Caches {
    pub volumes: Arc<Informer>,
    pub claims: Arc<Informer>,
    pub classes: Arc<Informer>,
    pub nodes: Arc<Informer>,
    /// For the pvc-protection finalizer: which claims pods use.
    pub pods: Arc<Informer>,
}

/// Starts the controller.
pub fn spawn(client: Loopback, caches: Caches) -> Vec<tokio::task::JoinHandle<()>> {
    let binder = Arc::new(Binder {
        client,
        caches,
        queue: WorkQueue::new(),
        said: Mutex::default(),
    });
    vec![
        tokio::spawn(Arc::clone(&binder).feed()),
        tokio::spawn(binder.work()),
    ]
}

pub(crate) struct Binder {
    client: Loopback,
    caches: Caches,
    queue: Arc<WorkQueue>,
    /// Object uid → the reason of the last event recorded about it, so a claim waiting in
    /// the same state is told once, not at every resync.
    said: Mutex<HashMap<String, String>>,
}

impl Binder {
    fn all_keys(&self) -> Vec<String> {
        let mut keys = self.caches.claims.keys();
        keys.extend(self.caches.volumes.keys());
        keys
    }

    /// Claims waiting for a volume.
    fn unbound_claims(&self) -> Vec<String> {
        let prefix = self.caches.claims.resource.key_prefix();
        self.caches
            .claims
            .list(|c| c["spec"]["volumeName"].as_str().is_none_or(str::is_empty))
            .iter()
            .map(|c| key_of(&prefix, c))
            .collect()
    }

    /// Claims being deleted (a pod that goes may free them).
    fn deleted_claims(&self) -> Vec<String> {
        let prefix = self.caches.claims.resource.key_prefix();
        self.caches
            .claims
            .list(|c| !c["metadata"]["deletionTimestamp"].is_null())
            .iter()
            .map(|c| key_of(&prefix, c))
            .collect()
    }

    /// The volumes whose claimRef names the claim at `key` (a deleted claim is gone from the
    /// cache, so its volume is found by the reference).
    fn volumes_naming(&self, key: &str) -> Vec<String> {
        let Some((_, Some(namespace), name)) = crate::kinds::for_key(key) else {
            return Vec::new();
        };
        let prefix = self.caches.volumes.resource.key_prefix();
        self.caches
            .volumes
            .list(|v| {
                let r = &v["spec"]["claimRef"];
                r["namespace"] == namespace && r["name"] == name
            })
            .iter()
            .map(|v| key_of(&prefix, v))
            .collect()
    }

    async fn feed(self: Arc<Self>) {
        let all = || self.all_keys();
        let claim_changed = |key: String| {
            let mut keys = self.volumes_naming(&key);
            keys.push(key);
            keys
        };
        let volume_changed = |key: String| {
            let mut keys = self.unbound_claims();
            keys.push(key);
            keys
        };
        let class_changed = |_| self.unbound_claims();
        let pod_changed = |_| self.deleted_claims();
        tokio::join!(
            forward(&self.caches.claims, &self.queue, claim_changed, all),
            forward(&self.caches.volumes, &self.queue, volume_changed, all),
            forward(&self.caches.classes, &self.queue, class_changed, all),
            forward(&self.caches.pods, &self.queue, pod_changed, all),
            async {
                for cache in [
                    &self.caches.claims,
                    &self.caches.volumes,
                    &self.caches.classes,
                ] {
                    cache.wait_for(1, Duration::MAX).await;
                }
                loop {
                    self.queue.add(self.all_keys());
                    self.prune_said();
                    tokio::time::sleep(RESYNC).await;
                }
            },
        );
    }

    async fn work(self: Arc<Self>) {
        let queue = Arc::clone(&self.queue);
        let caches = [
            &self.caches.volumes,
            &self.caches.claims,
            &self.caches.classes,
            &self.caches.nodes,
            &self.caches.pods,
        ];
        wait_synced(&caches).await;
        work(queue, COMPONENT, |key| {
            let this = Arc::clone(&self);
            async move { this.reconcile(&key).await.map(|()| None) }
        })
        .await
    }

    /// One pass over the claim or volume at `key`.
    async fn reconcile(&self, key: &str) -> Result<(), ClientError> {
        let deleting = |o: &Value| !o["metadata"]["deletionTimestamp"].is_null();
        if key.starts_with(&self.caches.volumes.resource.key_prefix()) {
            let Some(v) = self.caches.volumes.get(key) else {
                return Ok(());
            };
            volume::sync(self, &v).await?;
            match self.caches.volumes.get(key) {
                Some(v) if deleting(&v) => protection::volume(self, &v).await,
                _ => Ok(()),
            }
        } else {
            match self.caches.claims.get(key) {
                Some(c) if deleting(&c) => protection::claim(self, &c).await,
                Some(c) => claim::sync(self, &c).await,
                None => Ok(()),
            }
        }
    }

    fn volume(&self, name: &str) -> Option<Arc<Value>> {
        let prefix = self.caches.volumes.resource.key_prefix();
        self.caches.volumes.get(&format!("{prefix}{name}"))
    }

    fn claim(&self, namespace: &str, name: &str) -> Option<Arc<Value>> {
        let prefix = self.caches.claims.resource.key_prefix();
        self.caches
            .claims
            .get(&format!("{prefix}{namespace}/{name}"))
    }

    fn class(&self, name: &str) -> Option<Arc<Value>> {
        let prefix = self.caches.classes.resource.key_prefix();
        self.caches.classes.get(&format!("{prefix}{name}"))
    }

    fn node(&self, name: &str) -> Option<Arc<Value>> {
        let prefix = self.caches.nodes.resource.key_prefix();
        self.caches.nodes.get(&format!("{prefix}{name}"))
    }

    /// A merge patch of the volume (conditional on its resourceVersion); waits until the cache
    /// shows it, so the next decision cannot hand the same volume out twice.
    async fn patch_volume(
        &self,
        volume: &Value,
        patch: Value,
        status: bool,
    ) -> Result<Value, ClientError> {
        let informer = &self.caches.volumes;
        patched(&self.client, informer, volume, patch, status).await
    }

    async fn patch_claim(
        &self,
        claim: &Value,
        patch: Value,
        status: bool,
    ) -> Result<Value, ClientError> {
        let informer = &self.caches.claims;
        patched(&self.client, informer, claim, patch, status).await
    }

    /// Records `reason` about `object` unless it was the last thing said about it.
    async fn tell(&self, object: &Value, kind: EventType, reason: &str, message: &str) {
        let uid = object["metadata"]["uid"].as_str().unwrap_or("").to_owned();
        let said = format!("{reason}: {message}");
        {
            let mut memo = self.said.lock().unwrap_or_else(PoisonError::into_inner);
            if memo.get(&uid) == Some(&said) {
                return;
            }
            memo.insert(uid, said);
        }
        record(&self.client, COMPONENT, object, kind, reason, message).await;
    }

    /// Forgets what was said about objects that are gone.
    fn prune_said(&self) {
        let mut live = std::collections::HashSet::new();
        for cache in [&self.caches.claims, &self.caches.volumes] {
            for object in cache.list(|_| true) {
                live.insert(object["metadata"]["uid"].as_str().unwrap_or("").to_owned());
            }
        }
        self.said
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|uid, _| live.contains(uid));
    }

    /// Forgets what was said about `object` (its state moved on).
    fn forget(&self, object: &Value) {
        if let Some(uid) = object["metadata"]["uid"].as_str() {
            self.said
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(uid);
        }
    }
}

async fn patched(
    client: &Loopback,
    informer: &Informer,
    object: &Value,
    mut patch: Value,
    status: bool,
) -> Result<Value, ClientError> {
    patch["metadata"]["resourceVersion"] = object["metadata"]["resourceVersion"].clone();
    let (namespace, name) = (
        object["metadata"]["namespace"].as_str(),
        object["metadata"]["name"].as_str().unwrap_or(""),
    );
    let answer = if status {
        client
            .merge_patch_status(informer.resource, namespace, name, &patch)
            .await?
    } else {
        client
            .merge_patch(informer.resource, namespace, name, &patch)
            .await?
    };
    informer
        .wait_for(revision_of(&answer), Duration::from_secs(5))
        .await;
    Ok(answer)
}

fn key_of(prefix: &str, object: &Value) -> String {
    let meta = &object["metadata"];
    match meta["namespace"].as_str() {
        Some(ns) => format!("{prefix}{ns}/{}", meta["name"].as_str().unwrap_or("")),
        None => format!("{prefix}{}", meta["name"].as_str().unwrap_or("")),
    }
}

/// Whether `object` carries annotation `key`.
fn annotated(object: &Value, key: &str) -> bool {
    object["metadata"]["annotations"][key].is_string()
}
