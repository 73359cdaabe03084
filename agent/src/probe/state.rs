//! Threshold logic of one probe: a result changes only after `successThreshold` consecutive
//! successes or `failureThreshold` consecutive failures, as kubelet's prober does. Pure.

/// Which probe of a container.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeKind {
    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "liveness",
            ProbeKind::Readiness => "readiness",
            ProbeKind::Startup => "startup",
        }
    }

    /// The result a probe reports before its first verdict: kubelet treats liveness as passing
    /// and readiness/startup as not (yet) passing.
    pub fn initial(self) -> bool {
        matches!(self, ProbeKind::Liveness)
    }
}

/// Counters of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeState {
    pub healthy: bool,
    consecutive_ok: u32,
    consecutive_fail: u32,
    success_threshold: u32,
    failure_threshold: u32,
}

impl ProbeState {
    pub fn new(kind: ProbeKind, success_threshold: u32, failure_threshold: u32) -> Self {
        ProbeState {
            healthy: kind.initial(),
            consecutive_ok: 0,
            consecutive_fail: 0,
            success_threshold: success_threshold.max(1),
            failure_threshold: failure_threshold.max(1),
        }
    }

    /// Records one result; returns the new verdict when it changed.
    pub fn observe(&mut self, ok: bool) -> Option<bool> {
        if ok {
            self.consecutive_ok += 1;
            self.consecutive_fail = 0;
            if !self.healthy && self.consecutive_ok >= self.success_threshold {
                self.healthy = true;
                return Some(true);
            }
        } else {
            self.consecutive_fail += 1;
            self.consecutive_ok = 0;
            if self.healthy && self.consecutive_fail >= self.failure_threshold {
                self.healthy = false;
                return Some(false);
            }
            // Readiness/startup start "not healthy" without a transition: report the first
            // time the failure threshold is reached so a failing startup probe can act.
            if !self.healthy && self.consecutive_fail == self.failure_threshold {
                return Some(false);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_needs_success_threshold_consecutive_passes() {
        let mut s = ProbeState::new(ProbeKind::Readiness, 2, 3);
        assert!(!s.healthy);
        assert_eq!(s.observe(true), None);
        assert_eq!(s.observe(false), None);
        assert_eq!(s.observe(true), None);
        assert_eq!(s.observe(true), Some(true));
        assert_eq!(s.observe(true), None);
    }

    #[test]
    fn liveness_fails_after_failure_threshold_consecutive_failures() {
        let mut s = ProbeState::new(ProbeKind::Liveness, 1, 3);
        assert!(s.healthy);
        assert_eq!(s.observe(false), None);
        assert_eq!(s.observe(false), None);
        assert_eq!(s.observe(true), None, "a success resets the count");
        assert_eq!(s.observe(false), None);
        assert_eq!(s.observe(false), None);
        assert_eq!(s.observe(false), Some(false));
        assert_eq!(s.observe(false), None, "reported once");
    }

    #[test]
    fn a_startup_probe_that_never_passes_reports_failure_once() {
        let mut s = ProbeState::new(ProbeKind::Startup, 1, 2);
        assert_eq!(s.observe(false), None);
        assert_eq!(s.observe(false), Some(false));
        assert_eq!(s.observe(false), None);
    }
}
