//! An informer: the objects of one resource kept in memory from a list and a watch of its
//! store prefix, like client-go's shared informers. Subscribers get the key of every change.
//! A failed or ended watch lists again; a failed list keeps the last cache ("could not read" is
//! never "nothing there"). [`Informer::revision`] says how far the cache has seen, so a
//! controller can wait for its own writes before it decides again.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{broadcast, watch};

use crate::api::decode_stored;
use crate::kinds::Resource;
use crate::store::{EventKind, ListOptions, Store};

const PAGE: usize = 500;

/// The cache of one resource.
pub struct Informer {
    pub resource: &'static Resource,
    objects: RwLock<HashMap<String, Arc<Value>>>,
    changes: broadcast::Sender<String>,
    revision: watch::Sender<i64>,
    /// Only objects of this name are cached (and their changes told), when set.
    only_name: Option<&'static str>,
}

impl Informer {
    /// Starts following `resource` in `store`; the task ends when the informer is dropped
    /// by every holder but the task.
    pub fn spawn(store: Arc<dyn Store>, resource: &'static Resource) -> Arc<Informer> {
        Self::start(store, resource, None)
    }

    /// An informer of the objects named `name` only, in every namespace (the others are
    /// neither kept nor told), as a field selector on `metadata.name` would give: a
    /// controller that owns one well-known object per namespace need not hold every object
    /// of its kind. Its watch ([`Store::watch_named`]) is woken by that name's writes only,
    /// so only they move its [`Informer::wait_for`] revision.
    pub fn spawn_named(
        store: Arc<dyn Store>,
        resource: &'static Resource,
        name: &'static str,
    ) -> Arc<Informer> {
        Self::start(store, resource, Some(name))
    }

    fn start(
        store: Arc<dyn Store>,
        resource: &'static Resource,
        only_name: Option<&'static str>,
    ) -> Arc<Informer> {
        let (changes, _) = broadcast::channel(4096);
        let informer = Arc::new(Informer {
            resource,
            objects: RwLock::default(),
            changes,
            revision: watch::Sender::new(0),
            only_name,
        });
        tokio::spawn(follow(store, Arc::downgrade(&informer)));
        informer
    }

    /// Keys of changed objects (a lagging subscriber gets `Lagged` and should resync all).
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.changes.subscribe()
    }

    /// Waits (up to `limit`) until the cache reflects `revision`; whether it does.
    pub async fn wait_for(&self, revision: i64, limit: Duration) -> bool {
        let mut rx = self.revision.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|r| *r >= revision))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The object stored at `key`.
    pub fn get(&self, key: &str) -> Option<Arc<Value>> {
        self.read().get(key).cloned()
    }

    /// Every cached object matching `keep`.
    pub fn list(&self, keep: impl Fn(&Value) -> bool) -> Vec<Arc<Value>> {
        self.read().values().filter(|v| keep(v)).cloned().collect()
    }

    /// Every cached key.
    pub fn keys(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// Whether the object stored at `key` is one this informer keeps.
    fn keeps(&self, key: &str) -> bool {
        named(self.only_name, key)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Value>>> {
        self.objects
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Value>>> {
        self.objects
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

async fn follow(store: Arc<dyn Store>, informer: std::sync::Weak<Informer>) {
    let Some(prefix) = informer.upgrade().map(|i| i.resource.key_prefix()) else {
        return;
    };
    loop {
        let Some(only_name) = informer.upgrade().map(|i| i.only_name) else {
            return;
        };
        let listed = list(store.as_ref(), &prefix, only_name).await;
        let Some(this) = informer.upgrade() else {
            return;
        };
        let revision = match listed {
            Ok((objects, revision)) => {
                let old = std::mem::replace(&mut *this.write(), objects);
                let changed: Vec<String> = {
                    let new = this.read();
                    old.keys()
                        .filter(|k| !new.contains_key(*k))
                        .chain(new.keys())
                        .cloned()
                        .collect()
                };
                this.revision.send_replace(revision);
                for key in changed {
                    let _ = this.changes.send(key);
                }
                revision
            }
            Err(error) => {
                tracing::warn!(resource = this.resource.plural, %error, "informer: listing; keeping the last cache");
                drop(this);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        drop(this);
        // A named informer's watch is woken only by its name's writes.
        let watched = match only_name {
            Some(name) => store.watch_named(&prefix, name, revision).await,
            None => store.watch(&prefix, revision).await,
        };
        let mut stream = match watched {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%prefix, %error, "informer: watching");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(event) = stream.next().await {
            let Some(this) = informer.upgrade() else {
                return;
            };
            let event = match event {
                Ok(event) => event,
                Err(error) => {
                    tracing::info!(%prefix, %error, "informer: the watch ended; listing again");
                    break;
                }
            };
            let key = event.kv.key.clone();
            if !this.keeps(&key) {
                this.revision.send_replace(event.revision());
                continue;
            }
            match event.kind {
                EventKind::Put => match decode_stored(&event.kv) {
                    Ok(object) => {
                        this.write().insert(key.clone(), Arc::new(object));
                    }
                    Err(error) => {
                        tracing::warn!(%key, %error.message, "informer: skipping an undecodable object");
                    }
                },
                EventKind::Delete => {
                    this.write().remove(&key);
                }
            }
            this.revision.send_replace(event.revision());
            let _ = this.changes.send(key);
        }
    }
}

/// Whether `key` is of an object named `only_name` (any key when it is `None`).
fn named(only_name: Option<&str>, key: &str) -> bool {
    only_name.is_none_or(|name| key.rsplit('/').next() == Some(name))
}

async fn list(
    store: &dyn Store,
    prefix: &str,
    only_name: Option<&str>,
) -> Result<(HashMap<String, Arc<Value>>, i64), crate::store::Error> {
    let mut objects = HashMap::new();
    let mut options = ListOptions {
        limit: PAGE,
        ..ListOptions::default()
    };
    loop {
        let page = store.list(prefix, &options).await?;
        for kv in page.items.iter().filter(|kv| named(only_name, &kv.key)) {
            if let Ok(object) = decode_stored(kv) {
                objects.insert(kv.key.clone(), Arc::new(object));
            }
        }
        if !page.more {
            return Ok((objects, page.revision));
        }
        options.after_key = page.items.last().map(|kv| kv.key.clone());
        options.revision = Some(page.revision);
    }
}
