//! Following one prefix of the store into an in-memory copy: list, then watch from the
//! list's revision; any failure makes the copy unknown (its readers go to the store) and
//! starts over after a second. The namespace cache and the node authorizer's pod index are
//! such copies — kube-apiserver's admission plugins and node authorizer read informers too.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use tokio::sync::watch;

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
