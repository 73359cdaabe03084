//! A work queue like client-go's: keys marked dirty are handed out in batches, each key once
//! however often it was marked; a failed key comes back after an exponential backoff (200 ms
//! doubling to 30 s); a key may ask to be looked at again after a delay. Batches of one
//! controller start at least [`BATCH_INTERVAL`] apart, so a burst of changes (a thousand pods
//! reporting one after the other) costs a few passes over their parent, not one per change.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::Notify;

use super::client::ClientError;
use super::informer::Informer;

/// What one pass of a controller over a key asks for: nothing more, or another look after a
/// delay.
pub type Outcome = Result<Option<Duration>, ClientError>;

/// Hands every key of `queue` to `reconcile`, for ever: a key asking for another look comes
/// back after its delay, a failed one after its backoff (logged unless it only lacked the
/// newest state).
pub async fn work<F, Fut>(queue: Arc<WorkQueue>, controller: &'static str, reconcile: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Outcome>,
{
    work_in_order(queue, controller, |_: &str| 0, reconcile).await
}

/// [`work`], each batch's keys taken highest `rank` first (the scheduler's: pod priority).
pub async fn work_in_order<F, Fut>(
    queue: Arc<WorkQueue>,
    controller: &'static str,
    rank: impl Fn(&str) -> i64,
    reconcile: F,
) where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let mut not_before = Instant::now();
    loop {
        let mut batch: Vec<String> = queue
            .next_batch_after(not_before)
            .await
            .into_iter()
            .collect();
        not_before = Instant::now() + BATCH_INTERVAL;
        // Stable: keys of one rank stay in key order.
        batch.sort_by_key(|key| std::cmp::Reverse(rank(key)));
        for key in batch {
            match reconcile(key.clone()).await {
                Ok(again) => {
                    queue.forget(&key);
                    if let Some(delay) = again {
                        queue.add_after(key, delay);
                    }
                }
                Err(error) => {
                    let tries = queue.retry(&key);
                    if tries == 1 || !error.is_transient() {
                        tracing::warn!(%key, %error, tries, controller, "retrying");
                    }
                }
            }
        }
    }
}

/// Waits until every one of `caches` has its first list in, like client-go's
/// `WaitForCacheSync`: a controller deciding on a cache not yet filled would take "nothing
/// listed yet" for "nothing there" (a ReplicaSet controller starting after a restart would make
/// pods its ReplicaSets already have).
pub async fn wait_synced(caches: &[&Arc<Informer>]) {
    for cache in caches {
        cache.wait_for(1, Duration::MAX).await;
    }
}

/// Feeds a controller of `parents` that owns `children`: every parent change marks that
/// parent, every child change the parents it concerns (`parents_of`), and all parents once
/// listed.
pub async fn follow_owned(parents: &Informer, children: &Informer, queue: &WorkQueue) {
    let all = || parents.keys();
    tokio::join!(
        forward(parents, queue, |key| vec![key], all),
        forward(
            children,
            queue,
            |key| parents_of(children, parents, &key),
            all
        ),
        resync_when_listed(parents, queue),
    );
}

/// Marks every key of `informer` once its first list is in (what a controller starts with).
pub async fn resync_when_listed(informer: &Informer, queue: &WorkQueue) {
    informer.wait_for(1, Duration::MAX).await;
    queue.add(informer.keys());
}

/// The keys of `parents` a change of the child at `key` (in `children`) concerns: its
/// controller when that is one of them, none when another kind controls it, and every parent
/// of its namespace when the child is gone or an orphan one of them may adopt.
pub fn parents_of(children: &Informer, parents: &Informer, key: &str) -> Vec<String> {
    let prefix = parents.resource.key_prefix();
    let namespace = crate::kinds::for_key(key)
        .and_then(|(_, ns, _)| ns)
        .unwrap_or("")
        .to_owned();
    if let Some(child) = children.get(key) {
        if let Some(owner) = super::pods::controller_of(&child) {
            return if owner["kind"] == parents.resource.kind {
                vec![format!(
                    "{prefix}{namespace}/{}",
                    owner["name"].as_str().unwrap_or("")
                )]
            } else {
                Vec::new()
            };
        }
    }
    let in_namespace = format!("{prefix}{namespace}/");
    parents
        .keys()
        .into_iter()
        .filter(|k| k.starts_with(&in_namespace))
        .collect()
}

/// Marks, for every change `informer` reports, the keys `map` gives; `resync`'s when this
/// subscriber fell behind. Ends when the informer goes.
pub async fn forward(
    informer: &Informer,
    queue: &WorkQueue,
    map: impl Fn(String) -> Vec<String>,
    resync: impl Fn() -> Vec<String>,
) {
    let mut changes = informer.subscribe();
    loop {
        match changes.recv().await {
            Ok(key) => queue.add(map(key)),
            Err(RecvError::Lagged(_)) => queue.add(resync()),
            Err(RecvError::Closed) => return,
        }
    }
}

const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The shortest time between the starts of two batches of one controller: keys marked
/// meanwhile wait for the next batch, and come once however often they were marked.
pub const BATCH_INTERVAL: Duration = Duration::from_millis(50);

/// The keys waiting for a controller.
#[derive(Default)]
pub struct WorkQueue {
    dirty: Mutex<BTreeSet<String>>,
    failures: Mutex<HashMap<String, u32>>,
    wake: Notify,
}

impl WorkQueue {
    pub fn new() -> Arc<WorkQueue> {
        Arc::new(WorkQueue::default())
    }

    /// Marks `keys` for a look.
    pub fn add(&self, keys: impl IntoIterator<Item = String>) {
        let mut dirty = self.dirty.lock().unwrap_or_else(PoisonError::into_inner);
        let before = dirty.len();
        dirty.extend(keys);
        if dirty.len() != before {
            self.wake.notify_one();
        }
    }

    /// Waits for and takes every marked key.
    pub async fn next_batch(&self) -> BTreeSet<String> {
        loop {
            let batch =
                std::mem::take(&mut *self.dirty.lock().unwrap_or_else(PoisonError::into_inner));
            if !batch.is_empty() {
                return batch;
            }
            self.wake.notified().await;
        }
    }

    /// Waits for a marked key, then until `not_before`, and takes every marked key.
    pub async fn next_batch_after(&self, not_before: Instant) -> BTreeSet<String> {
        loop {
            if !self
                .dirty
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_empty()
            {
                break;
            }
            self.wake.notified().await;
        }
        tokio::time::sleep_until(not_before).await;
        self.next_batch().await
    }

    /// Marks `key` again after `delay`.
    pub fn add_after(self: &Arc<Self>, key: String, delay: Duration) {
        let queue = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.add([key]);
        });
    }

    /// `key` was handled: its backoff starts over.
    pub fn forget(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    /// `key` failed: it comes back after its backoff; returns how often it failed in a row.
    pub fn retry(self: &Arc<Self>, key: &str) -> u32 {
        let tries = {
            let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
            let tries = failures.entry(key.to_owned()).or_insert(0);
            *tries += 1;
            *tries
        };
        let wait = Duration::from_millis(200 * 2u64.pow(tries.min(8))).min(MAX_BACKOFF);
        self.add_after(key.to_owned(), wait);
        tries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_come_once_per_batch_and_failures_come_back() {
        let queue = WorkQueue::new();
        queue.add(["b".to_owned(), "a".to_owned(), "b".to_owned()]);
        let batch: Vec<String> = queue.next_batch().await.into_iter().collect();
        assert_eq!(batch, ["a", "b"]);
        assert_eq!(queue.retry("a"), 1);
        let again = tokio::time::timeout(Duration::from_secs(5), queue.next_batch())
            .await
            .expect("the failed key comes back");
        assert!(again.contains("a"));
        queue.forget("a");
        assert_eq!(queue.retry("a"), 1);
    }

    #[tokio::test]
    async fn keys_marked_during_the_interval_wait_for_it_and_come_together() {
        let queue = WorkQueue::new();
        let first = Instant::now();
        queue.add(["a".to_owned()]);
        let marker = Arc::clone(&queue);
        tokio::spawn(async move {
            marker.add(["b".to_owned()]);
            tokio::time::sleep(Duration::from_millis(10)).await;
            marker.add(["c".to_owned(), "b".to_owned()]);
        });
        let waiting = queue.next_batch_after(first + BATCH_INTERVAL);
        let batch = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the batch comes");
        assert!(first.elapsed() >= BATCH_INTERVAL);
        assert_eq!(batch.into_iter().collect::<Vec<_>>(), ["a", "b", "c"]);
    }
}
