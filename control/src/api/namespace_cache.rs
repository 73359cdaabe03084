//! The namespaces as a watch of the store shows them, for the create path's "does the
//! namespace exist, is it terminating" check — kube-apiserver's NamespaceLifecycle admission
//! reads an informer too. Without it every create paid a store read before its write: one
//! more etcd round trip per create.
//!
//! A namespace the cache does not know (not listed yet, just created, or the watch broken) is
//! looked up in the store, as kube-apiserver falls back to a live lookup. A deletion started
//! through this server marks the namespace terminating here at once; one started through
//! another server over the same etcd arrives with the watch (milliseconds), and the namespace
//! finalizer deletes whatever was created in that window.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;

use super::decode_stored;
use super::store_mirror::{Follower, Mirror};
use crate::kinds::Resource;
use crate::store::{Event, EventKind, KeyValue, Store};

/// What the cache knows of one namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Known {
    Active,
    Terminating,
    /// Not in the cache: ask the store.
    Unknown,
}

/// Namespace name → terminating, while the watch is healthy (`None`: ask the store).
#[derive(Default)]
pub struct NamespaceCache {
    names: RwLock<Option<HashMap<String, bool>>>,
    /// The prefix followed (set on the first lookup).
    prefix: std::sync::OnceLock<String>,
    follower: Follower,
}

impl NamespaceCache {
    /// What the cache knows of `name`; the first call starts following the store.
    pub fn lookup(
        self: &Arc<Self>,
        store: &Arc<dyn Store>,
        resource: &'static Resource,
        name: &str,
    ) -> Known {
        let prefix = self.prefix.get_or_init(|| resource.key_prefix()).clone();
        self.follower.start(Arc::downgrade(self), store, prefix);
        match self
            .read()
            .as_ref()
            .and_then(|names| names.get(name).copied())
        {
            Some(false) => Known::Active,
            Some(true) => Known::Terminating,
            None => Known::Unknown,
        }
    }

    /// Records that `name` is being deleted (a deletion this server made).
    pub fn mark_terminating(&self, name: &str) {
        if let Some(names) = self.write().as_mut() {
            names.insert(name.to_owned(), true);
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Option<HashMap<String, bool>>> {
        self.names
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Option<HashMap<String, bool>>> {
        self.names
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn name_of<'a>(&self, key: &'a str) -> &'a str {
        self.prefix
            .get()
            .and_then(|prefix| key.strip_prefix(prefix.as_str()))
            .unwrap_or(key)
    }
}

fn terminating(object: &Value) -> bool {
    !object["metadata"]["deletionTimestamp"].is_null()
}

impl Mirror for NamespaceCache {
    fn reset(&self, items: Option<&[KeyValue]>) {
        let names = items.map(|items| {
            items
                .iter()
                .filter_map(|kv| {
                    let object = decode_stored(kv).ok()?;
                    Some((self.name_of(&kv.key).to_owned(), terminating(&object)))
                })
                .collect()
        });
        *self.write() = names;
    }

    fn apply(&self, event: &Event) {
        let name = self.name_of(&event.kv.key).to_owned();
        let mut guard = self.write();
        let names = guard.get_or_insert_with(HashMap::new);
        match (&event.kind, decode_stored(&event.kv)) {
            (EventKind::Put, Ok(object)) => {
                names.insert(name, terminating(&object));
            }
            _ => {
                names.remove(&name);
            }
        }
    }
}
