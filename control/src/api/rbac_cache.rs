//! The RBAC authorizer's copy of the cluster's Roles, ClusterRoles, RoleBindings and
//! ClusterRoleBindings: each kind followed from the store ([`Follower`]), the [`Policy`] built
//! again only after one of them changed. Like kube-apiserver's RBAC informers it trails the
//! store by a watch event; while a kind is not listed (start, a broken watch) the policy is
//! read from the store.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use serde_json::Value;

use super::store_mirror::{Follower, Mirror};
use super::{decode_stored, map_store_error, validate_rbac::GROUP};
use crate::authz::rbac::Policy;
use crate::kinds::{self, Resource};
use crate::status::ApiError;
use crate::store::{Event, EventKind, KeyValue, ListOptions, Store};

const PLURALS: [&str; 4] = [
    "roles",
    "clusterroles",
    "rolebindings",
    "clusterrolebindings",
];

fn resources() -> Result<[&'static Resource; 4], ApiError> {
    let find = |plural| {
        kinds::find(GROUP, "v1", plural)
            .ok_or_else(|| ApiError::internal(format!("the kinds table has no {plural}")))
    };
    Ok([
        find(PLURALS[0])?,
        find(PLURALS[1])?,
        find(PLURALS[2])?,
        find(PLURALS[3])?,
    ])
}

/// One kind's objects by key, while its watch is healthy.
#[derive(Default)]
struct KindCopy {
    objects: RwLock<Option<BTreeMap<String, Value>>>,
    changes: AtomicU64,
    follower: Follower,
}

impl Mirror for KindCopy {
    fn reset(&self, items: Option<&[KeyValue]>) {
        let objects = items.map(|items| {
            items
                .iter()
                .filter_map(|kv| Some((kv.key.clone(), decode_stored(kv).ok()?)))
                .collect()
        });
        *self
            .objects
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = objects;
        self.changes.fetch_add(1, Ordering::Release);
    }

    fn apply(&self, event: &Event) {
        let mut guard = self
            .objects
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let objects = guard.get_or_insert_with(BTreeMap::new);
        match (&event.kind, decode_stored(&event.kv)) {
            (EventKind::Put, Ok(object)) => {
                objects.insert(event.kv.key.clone(), object);
            }
            _ => {
                objects.remove(&event.kv.key);
            }
        }
        self.changes.fetch_add(1, Ordering::Release);
    }
}

/// The four kinds' copies and the policy last built from them.
#[derive(Default)]
pub struct RbacCache {
    kinds: [Arc<KindCopy>; 4],
    started: OnceLock<()>,
    built: Mutex<Option<(u64, Arc<Policy>)>>,
}

impl RbacCache {
    /// The policy as the copies know it; `None` while one of them is not listed. The first
    /// call starts following the store.
    fn known(&self, store: &Arc<dyn Store>) -> Option<Arc<Policy>> {
        let resources = resources().ok()?;
        self.started.get_or_init(|| {
            for (copy, resource) in self.kinds.iter().zip(resources) {
                copy.follower
                    .start(Arc::downgrade(copy), store, resource.key_prefix());
            }
        });
        let generation: u64 = self
            .kinds
            .iter()
            .map(|k| k.changes.load(Ordering::Acquire))
            .sum();
        let mut built = self
            .built
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, policy)) = built.as_ref() {
            if *at == generation {
                return Some(Arc::clone(policy));
            }
        }
        let mut policy = Policy::default();
        for (copy, resource) in self.kinds.iter().zip(resources) {
            let objects = copy
                .objects
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for object in objects.as_ref()?.values() {
                policy.add_object(resource.kind, object);
            }
        }
        let policy = Arc::new(policy);
        *built = Some((generation, Arc::clone(&policy)));
        Some(policy)
    }

    /// The cluster's RBAC policy: the copies', or the store's while they do not know it.
    pub async fn policy(&self, store: &Arc<dyn Store>) -> Result<Arc<Policy>, ApiError> {
        if let Some(policy) = self.known(store) {
            return Ok(policy);
        }
        let mut policy = Policy::default();
        for resource in resources()? {
            let page = store
                .list(&resource.key_prefix(), &ListOptions::default())
                .await
                .map_err(map_store_error)?;
            for kv in &page.items {
                policy.add_object(resource.kind, &decode_stored(kv)?);
            }
        }
        Ok(Arc::new(policy))
    }
}
