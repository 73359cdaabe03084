//! A work queue like client-go's: keys marked dirty are handed out in batches, each key once
//! however often it was marked; a failed key comes back after an exponential backoff (200 ms
//! doubling to 30 s); a key may ask to be looked at again after a delay.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

const MAX_BACKOFF: Duration = Duration::from_secs(30);

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
}
