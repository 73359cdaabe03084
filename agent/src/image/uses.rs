//! Image uses held in memory between writes of `last-used.json`: a container start records
//! its image here, and the times reach the file at most every [`WRITE_EVERY`] (the first use
//! after a quiet spell at once), and before every garbage collection reads them. Writing the
//! file for every container start took the store's exclusive lock and made and deleted a
//! file each time — on a filesystem without a journal every later file creation then skips
//! each recently deleted inode, so a burst of a thousand pods slowed down quadratically.
//! Uses recorded since the last write are lost if the agent stops; their images keep the older
//! time (and images of running pods are never collected anyway).

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

pub(super) const WRITE_EVERY: Duration = Duration::from_secs(10);

/// Reference → Unix milliseconds of its newest use, not yet written.
#[derive(Debug, Default)]
pub(super) struct PendingUses {
    inner: Mutex<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    times: BTreeMap<String, u64>,
    written: Option<Instant>,
}

impl PendingUses {
    /// Records a use of `reference` at `millis`; true when the pending times are due to be
    /// written.
    pub fn record(&self, reference: &str, millis: u64) -> bool {
        let mut pending = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let time = pending.times.entry(reference.to_owned()).or_default();
        *time = (*time).max(millis);
        pending.written.is_none_or(|at| at.elapsed() >= WRITE_EVERY)
    }

    /// The pending times, now counted as written.
    pub fn take(&self) -> BTreeMap<String, u64> {
        let mut pending = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        pending.written = Some(Instant::now());
        std::mem::take(&mut pending.times)
    }
}

#[cfg(test)]
mod tests {
    use super::PendingUses;

    #[test]
    fn the_first_use_is_due_at_once_the_next_ones_wait_and_the_newest_time_wins() {
        let uses = PendingUses::default();
        assert!(uses.record("a", 5));
        assert_eq!(
            uses.take().into_iter().collect::<Vec<_>>(),
            [("a".into(), 5)]
        );
        assert!(!uses.record("b", 7), "written a moment ago");
        assert!(!uses.record("b", 6));
        assert_eq!(
            uses.take().into_iter().collect::<Vec<_>>(),
            [("b".into(), 7)]
        );
    }
}
