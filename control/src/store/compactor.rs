//! The background compactor: every interval, compacts any [`Store`] so that it keeps only the
//! newest `keep_revisions` revisions of history (kine keeps about 1000), as kube-apiserver's
//! compactor does for etcd. It holds the store weakly, so it never keeps a dropped store alive,
//! and stops when its handle is dropped. A failed round is logged and retried next interval.

use std::sync::Weak;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::Store;

/// How much history the compactor keeps and how often it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactorConfig {
    /// Revisions of history kept behind the newest one.
    pub keep_revisions: i64,
    /// Time between two rounds.
    pub interval: Duration,
}

impl Default for CompactorConfig {
    fn default() -> Self {
        CompactorConfig {
            keep_revisions: 1000,
            interval: Duration::from_secs(60),
        }
    }
}

impl CompactorConfig {
    /// The revision to compact at when the store is at `current` and compacted at
    /// `compacted`, or `None` when there is nothing to forget yet.
    pub fn target(&self, current: i64, compacted: i64) -> Option<i64> {
        let target = current.saturating_sub(self.keep_revisions.max(0));
        (target > compacted).then_some(target)
    }
}

/// A running compactor; dropping it stops it.
#[derive(Debug)]
pub struct Compactor {
    task: JoinHandle<()>,
}

impl Compactor {
    /// Starts compacting `store` on the current tokio runtime.
    pub fn spawn<S: Store + ?Sized>(store: Weak<S>, config: CompactorConfig) -> Compactor {
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(config.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut compacted = 0;
            loop {
                ticks.tick().await;
                let Some(store) = store.upgrade() else { return };
                match round(&*store, &config, compacted).await {
                    Ok(now) => compacted = now,
                    Err(error) => tracing::warn!(%error, "store compaction failed"),
                }
            }
        });
        Compactor { task }
    }
}

async fn round<S: Store + ?Sized>(
    store: &S,
    config: &CompactorConfig,
    compacted: i64,
) -> super::Result<i64> {
    let current = store.revision().await?;
    match config.target(current, compacted) {
        Some(target) => {
            let now = store.compact(target).await?;
            tracing::debug!(revision = now, "store compacted");
            Ok(now)
        }
        None => Ok(compacted),
    }
}

impl Drop for Compactor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_keeps_the_newest_revisions() {
        let config = CompactorConfig {
            keep_revisions: 1000,
            interval: Duration::from_secs(1),
        };
        assert_eq!(config.target(500, 0), None);
        assert_eq!(config.target(1000, 0), None);
        assert_eq!(config.target(1500, 0), Some(500));
        assert_eq!(config.target(1500, 500), None);
        assert_eq!(config.target(1501, 500), Some(501));
    }
}
