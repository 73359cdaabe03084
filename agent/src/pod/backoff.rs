//! CrashLoopBackOff: the delay before a crashed container is started again — the base delay
//! doubling per consecutive crash up to a cap, reset once a container ran long enough.

use std::time::Duration;

/// Backoff settings (kubelet: 10 s base, 5 min cap, reset after 10 min of running).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    pub base: Duration,
    pub max: Duration,
    pub reset_after: Duration,
}

/// kubelet's backoff of a failed volume operation (its nested pending operations: 500 ms,
/// doubling up to 2 min 2 s).
pub const VOLUME_BACKOFF: BackoffPolicy = BackoffPolicy {
    base: Duration::from_millis(500),
    max: Duration::from_secs(122),
    reset_after: Duration::from_secs(600),
};

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            base: Duration::from_secs(10),
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        }
    }
}

impl BackoffPolicy {
    /// Delay before restart number `consecutive_crashes` (1 = first restart after a crash).
    pub fn delay(&self, consecutive_crashes: u32) -> Duration {
        if consecutive_crashes == 0 {
            return Duration::ZERO;
        }
        let shift = (consecutive_crashes - 1).min(31);
        self.base
            .checked_mul(1u32 << shift)
            .map_or(self.max, |d| d.min(self.max))
    }

    /// The crash counter after a container that ran for `ran_for` exited.
    pub fn next_count(&self, previous: u32, ran_for: Duration) -> u32 {
        if ran_for >= self.reset_after {
            1
        } else {
            previous.saturating_add(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_ten_seconds_to_five_minutes() {
        let p = BackoffPolicy::default();
        let secs: Vec<u64> = (1..=7).map(|n| p.delay(n).as_secs()).collect();
        assert_eq!(secs, vec![10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(p.delay(0), Duration::ZERO);
        assert_eq!(p.delay(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn volume_operations_back_off_from_half_a_second() {
        let ms: Vec<u128> = (1..=10)
            .map(|n| VOLUME_BACKOFF.delay(n).as_millis())
            .collect();
        assert_eq!(
            ms,
            vec![500, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 122000, 122000]
        );
    }

    #[test]
    fn resets_after_a_long_run() {
        let p = BackoffPolicy::default();
        assert_eq!(p.next_count(5, Duration::from_secs(601)), 1);
        assert_eq!(p.next_count(5, Duration::from_secs(3)), 6);
    }
}
