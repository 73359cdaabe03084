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
use std::sync::{Arc, OnceLock, RwLock, Weak};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use super::decode_stored;
use crate::kinds::Resource;
use crate::store::{EventKind, ListOptions, Store};

/// What the cache knows of one namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Known {
    Active,
    Terminating,
    /// Not in the cache: ask the store.
    Unknown,
}

/// Namespace name → terminating, while the watch is healthy (`None`: ask the store).
pub struct NamespaceCache {
    names: RwLock<Option<HashMap<String, bool>>>,
    started: OnceLock<()>,
    /// Dropped with the cache, which ends the task following the store (and its hold on it).
    alive: watch::Sender<()>,
}

impl Default for NamespaceCache {
    fn default() -> Self {
        NamespaceCache {
            names: RwLock::default(),
            started: OnceLock::new(),
            alive: watch::Sender::new(()),
        }
    }
}

impl NamespaceCache {
    /// What the cache knows of `name`; the first call starts following the store.
    pub fn lookup(
        self: &Arc<Self>,
        store: &Arc<dyn Store>,
        resource: &'static Resource,
        name: &str,
    ) -> Known {
        self.started.get_or_init(|| {
            let (cache, store, alive) = (
                Arc::downgrade(self),
                Arc::clone(store),
                self.alive.subscribe(),
            );
            tokio::spawn(async move {
                let mut alive = alive;
                tokio::select! {
                    () = follow(cache, store, resource.key_prefix()) => {}
                    _ = alive.changed() => {} // the cache is gone
                }
            });
        });
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
}

fn terminating(object: &Value) -> bool {
    !object["metadata"]["deletionTimestamp"].is_null()
}

fn name_of(key: &str, prefix: &str) -> String {
    key.strip_prefix(prefix).unwrap_or(key).to_owned()
}

/// Lists then watches the namespaces into `cache` until the cache is dropped; any failure
/// empties the cache (every lookup goes to the store) and starts over after a second.
async fn follow(cache: Weak<NamespaceCache>, store: Arc<dyn Store>, prefix: String) {
    loop {
        let synced = async {
            let page = store.list(&prefix, &ListOptions::default()).await.ok()?;
            if page.more {
                return None; // more namespaces than a page: live lookups it is
            }
            let names = page
                .items
                .iter()
                .filter_map(|kv| {
                    Some((
                        name_of(&kv.key, &prefix),
                        terminating(&decode_stored(kv).ok()?),
                    ))
                })
                .collect();
            *cache.upgrade()?.write() = Some(names);
            let mut stream = store.watch(&prefix, page.revision).await.ok()?;
            while let Some(Ok(event)) = stream.next().await {
                let cache = cache.upgrade()?;
                let mut guard = cache.write();
                let names = guard.get_or_insert_with(HashMap::new);
                let name = name_of(&event.kv.key, &prefix);
                match event.kind {
                    EventKind::Put => match decode_stored(&event.kv) {
                        Ok(object) => {
                            names.insert(name, terminating(&object));
                        }
                        Err(_) => {
                            names.remove(&name);
                        }
                    },
                    EventKind::Delete => {
                        names.remove(&name);
                    }
                }
            }
            Some(())
        };
        synced.await;
        let Some(this) = cache.upgrade() else {
            return;
        };
        *this.write() = None;
        drop(this);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
