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

/// What the cache holds of a namespace.
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    /// The revision of the namespace this is of: older news is ignored.
    revision: i64,
    terminating: bool,
    /// Its `pod-security.kubernetes.io/` labels (`pod_security`), when it has any.
    pod_security: Option<Arc<Value>>,
}

impl Entry {
    fn of(object: &Value, revision: i64) -> Entry {
        let labels = object["metadata"]["labels"].as_object();
        let pod_security: serde_json::Map<String, Value> = labels
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.starts_with(super::pod_security::LABEL_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Entry {
            revision,
            terminating: !object["metadata"]["deletionTimestamp"].is_null(),
            pod_security: (!pod_security.is_empty()).then(|| Arc::new(Value::Object(pod_security))),
        }
    }
}

/// Namespace name → what the cache holds of it, while the watch is healthy (`None`: ask the
/// store).
#[derive(Default)]
pub struct NamespaceCache {
    names: RwLock<Option<HashMap<String, Entry>>>,
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
            .and_then(|names| names.get(name).map(|entry| entry.terminating))
        {
            Some(false) => Known::Active,
            Some(true) => Known::Terminating,
            None => Known::Unknown,
        }
    }

    /// The `pod-security.kubernetes.io/` labels of `name` as the cache knows them:
    /// `Some(None)` when it has none, `None` when the cache does not know the namespace.
    pub fn pod_security_labels(
        self: &Arc<Self>,
        store: &Arc<dyn Store>,
        resource: &'static Resource,
        name: &str,
    ) -> Option<Option<Arc<Value>>> {
        let prefix = self.prefix.get_or_init(|| resource.key_prefix()).clone();
        self.follower.start(Arc::downgrade(self), store, prefix);
        self.read()
            .as_ref()
            .and_then(|names| names.get(name).map(|entry| entry.pod_security.clone()))
    }

    /// Records namespace `object` as stored at `revision` (a write this server made), ahead of
    /// its watch event: a pod created right after a namespace's labels changed meets them.
    pub fn saw(&self, object: &Value, revision: i64) {
        let name = object["metadata"]["name"].as_str().unwrap_or("");
        if let Some(names) = self.write().as_mut() {
            let newer = names
                .get(name)
                .is_none_or(|entry| entry.revision < revision);
            if newer {
                names.insert(name.to_owned(), Entry::of(object, revision));
            }
        }
    }

    /// Records that `name` is being deleted (a deletion this server made).
    pub fn mark_terminating(&self, name: &str) {
        if let Some(names) = self.write().as_mut() {
            let entry = names.entry(name.to_owned()).or_insert(Entry {
                revision: 0,
                terminating: true,
                pod_security: None,
            });
            entry.terminating = true;
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Option<HashMap<String, Entry>>> {
        self.names
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Option<HashMap<String, Entry>>> {
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

impl Mirror for NamespaceCache {
    fn reset(&self, items: Option<&[KeyValue]>) {
        let names = items.map(|items| {
            items
                .iter()
                .filter_map(|kv| {
                    let object = decode_stored(kv).ok()?;
                    let entry = Entry::of(&object, kv.mod_revision);
                    Some((self.name_of(&kv.key).to_owned(), entry))
                })
                .collect()
        });
        *self.write() = names;
    }

    fn apply(&self, event: &Event) {
        let name = self.name_of(&event.kv.key).to_owned();
        let mut guard = self.write();
        let names = guard.get_or_insert_with(HashMap::new);
        // A write this server made may be here before its event.
        if names
            .get(&name)
            .is_some_and(|entry| entry.revision > event.revision())
        {
            return;
        }
        match (&event.kind, decode_stored(&event.kv)) {
            (EventKind::Put, Ok(object)) => {
                names.insert(name, Entry::of(&object, event.revision()));
            }
            _ => {
                names.remove(&name);
            }
        }
    }
}
