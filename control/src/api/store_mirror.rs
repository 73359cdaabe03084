//! Following one prefix of the store into an in-memory copy: list, then watch from the
//! list's revision; any failure makes the copy unknown (its readers go to the store) and
//! starts over after a second. The namespace cache and the node authorizer's pod index are
//! such copies — kube-apiserver's admission plugins and node authorizer read informers too.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use tokio::sync::watch;

use crate::status::ApiError;
use crate::store::{Event, KeyValue, ListOptions, Store};

/// A copy of one prefix of the store.
pub trait Mirror: Send + Sync + 'static {
    /// Everything under the prefix as listed; `None`: the copy is unknown (following broke).
    fn reset(&self, items: Option<&[KeyValue]>);
    /// One change after the list.
    fn apply(&self, event: &Event);
}

/// Starts following once, and stops when dropped (with the copy that owns it).
pub struct Follower {
    started: OnceLock<()>,
    alive: watch::Sender<()>,
}

impl Default for Follower {
    fn default() -> Self {
        Follower {
            started: OnceLock::new(),
            alive: watch::Sender::new(()),
        }
    }
}

impl Follower {
    /// Follows `prefix` into `mirror`, the first time it is called.
    pub fn start<M: Mirror>(&self, mirror: Weak<M>, store: &Arc<dyn Store>, prefix: String) {
        self.started.get_or_init(|| {
            let (store, mut alive) = (Arc::clone(store), self.alive.subscribe());
            tokio::spawn(async move {
                tokio::select! {
                    () = follow(mirror, store, prefix) => {}
                    _ = alive.changed() => {} // the copy is gone
                }
            });
        });
    }
}

async fn follow<M: Mirror>(mirror: Weak<M>, store: Arc<dyn Store>, prefix: String) {
    loop {
        let synced = async {
            let page = store.list(&prefix, &ListOptions::default()).await.ok()?;
            if page.more {
                return None; // more than one page: the readers go to the store
            }
            mirror.upgrade()?.reset(Some(&page.items));
            let mut stream = store.watch(&prefix, page.revision).await.ok()?;
            while let Some(Ok(event)) = stream.next().await {
                mirror.upgrade()?.apply(&event);
            }
            Some(())
        };
        synced.await;
        let Some(this) = mirror.upgrade() else {
            return;
        };
        this.reset(None);
        drop(this);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A copy of the objects under one prefix, decoded, by key — what the RBAC, LimitRange and
/// quota admission caches hold.
#[derive(Default)]
pub struct ObjectCopy {
    objects: std::sync::RwLock<Option<std::collections::BTreeMap<String, serde_json::Value>>>,
    changes: std::sync::atomic::AtomicU64,
    follower: Follower,
}

impl ObjectCopy {
    /// Starts following `prefix` (the first call only).
    pub fn follow(self: &Arc<Self>, store: &Arc<dyn Store>, prefix: String) {
        self.follower.start(Arc::downgrade(self), store, prefix);
    }

    /// `read` of the objects by key; `None` while the copy is unknown.
    pub fn read<T>(
        &self,
        read: impl FnOnce(&std::collections::BTreeMap<String, serde_json::Value>) -> T,
    ) -> Option<T> {
        let objects = self
            .objects
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        objects.as_ref().map(read)
    }

    /// How many times the copy changed (to tell whether something built from it is stale).
    pub fn changes(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// Copies of the objects of `N` prefixes and a value built from them, built again only after
/// one of them changed (the RBAC policy, the admission policies).
pub struct Derived<T, const N: usize> {
    copies: [Arc<ObjectCopy>; N],
    started: std::sync::OnceLock<()>,
    built: std::sync::Mutex<Option<(u64, Arc<T>)>>,
}

impl<T, const N: usize> Default for Derived<T, N> {
    fn default() -> Self {
        Derived {
            copies: std::array::from_fn(|_| Arc::default()),
            started: std::sync::OnceLock::new(),
            built: std::sync::Mutex::new(None),
        }
    }
}

impl<T, const N: usize> Derived<T, N> {
    /// The value built from the copies of `prefixes` (followed from the first call on);
    /// `None` while one of them is unknown.
    pub fn get(
        &self,
        store: &Arc<dyn Store>,
        prefixes: [String; N],
        build: impl FnOnce([&std::collections::BTreeMap<String, serde_json::Value>; N]) -> T,
    ) -> Option<Arc<T>> {
        self.started.get_or_init(|| {
            for (copy, prefix) in self.copies.iter().zip(prefixes) {
                copy.follow(store, prefix);
            }
        });
        let generation: u64 = self.copies.iter().map(|c| c.changes()).sum();
        let mut built = self
            .built
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, value)) = built.as_ref() {
            if *at == generation {
                return Some(Arc::clone(value));
            }
        }
        let guards: Vec<_> = self
            .copies
            .iter()
            .map(|c| {
                c.objects
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
            })
            .collect();
        let maps: Vec<&std::collections::BTreeMap<String, serde_json::Value>> =
            guards.iter().map(|g| g.as_ref()).collect::<Option<_>>()?;
        let maps: [&std::collections::BTreeMap<String, serde_json::Value>; N] =
            maps.try_into().ok()?;
        let value = Arc::new(build(maps));
        *built = Some((generation, Arc::clone(&value)));
        Some(value)
    }
}

impl<T, const N: usize> Derived<T, N> {
    /// The value built from the objects under `prefixes`: from the copies, or — while one of
    /// them is not listed yet — from the store's lists, so a reader never waits on a copy.
    pub async fn get_or_read(
        &self,
        store: &Arc<dyn Store>,
        prefixes: [String; N],
        build: impl Fn([&[serde_json::Value]; N]) -> T,
    ) -> Result<Arc<T>, ApiError> {
        let known = self.get(store, prefixes.clone(), |maps| {
            let lists: [Vec<serde_json::Value>; N] =
                maps.map(|objects| objects.values().cloned().collect());
            build(lists.each_ref().map(Vec::as_slice))
        });
        if let Some(value) = known {
            return Ok(value);
        }
        let mut lists = Vec::with_capacity(N);
        for prefix in &prefixes {
            let page = store
                .list(prefix, &ListOptions::default())
                .await
                .map_err(super::map_store_error)?;
            let objects: Result<Vec<serde_json::Value>, ApiError> =
                page.items.iter().map(super::decode_stored).collect();
            lists.push(objects?);
        }
        let lists: [Vec<serde_json::Value>; N] = lists
            .try_into()
            .map_err(|_| ApiError::internal("a list of the store went missing"))?;
        Ok(Arc::new(build(lists.each_ref().map(Vec::as_slice))))
    }
}

impl Mirror for ObjectCopy {
    fn reset(&self, items: Option<&[KeyValue]>) {
        let objects = items.map(|items| {
            items
                .iter()
                .filter_map(|kv| Some((kv.key.clone(), super::decode_stored(kv).ok()?)))
                .collect()
        });
        *self
            .objects
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = objects;
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    fn apply(&self, event: &Event) {
        let mut guard = self
            .objects
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let objects = guard.get_or_insert_with(Default::default);
        match (&event.kind, super::decode_stored(&event.kv)) {
            (crate::store::EventKind::Put, Ok(object)) => {
                objects.insert(event.kv.key.clone(), object);
            }
            _ => {
                objects.remove(&event.kv.key);
            }
        }
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }
}
