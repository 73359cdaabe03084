//! activeDeadlineSeconds, as kubelet applies it: counted from the pod's start time (kept in its
//! record, so an agent restart does not reset it); when it passes, a pod that has not finished
//! gets its containers stopped (SIGTERM, grace period, SIGKILL), is never restarted again, and
//! ends Failed with reason `DeadlineExceeded`.

use std::time::{Duration, SystemTime};

use super::status::PodPhase;
use super::worker::PodWorker;

pub const REASON: &str = "DeadlineExceeded";
pub const MESSAGE: &str = "Pod was active on the node longer than the specified deadline";

impl PodWorker {
    /// Records the pod's start time, once.
    pub(super) fn mark_started(&self) {
        let mut st = self.lock_status();
        if st.start_time.is_none() {
            let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
            st.start_time = Some(now);
        }
    }

    /// How long until the deadline passes: None without a deadline, once it was applied, or for
    /// a pod that already finished.
    pub(super) fn deadline_in(&self) -> Option<Duration> {
        let secs = self.pod.spec.active_deadline_seconds?;
        let st = self.lock_status();
        let finished = matches!(st.phase, PodPhase::Succeeded | PodPhase::Failed);
        if self.stopping || st.reason == REASON || (finished && self.is_idle()) {
            return None;
        }
        let start = st.start_time.as_deref().map(humantime::parse_rfc3339_weak);
        let start = match start {
            Some(Ok(t)) => t,
            // A record without a usable start time counts from now.
            _ => SystemTime::now(),
        };
        let end = start + Duration::from_secs(u64::try_from(secs).unwrap_or(0));
        Some(end.duration_since(SystemTime::now()).unwrap_or_default())
    }

    /// The deadline passed: stop everything, for good, and fail the pod.
    pub(super) async fn deadline_exceeded(&mut self) {
        tracing::info!(pod = %self.pod.metadata.name, "activeDeadlineSeconds passed; stopping the pod");
        {
            let mut st = self.lock_status();
            st.phase = PodPhase::Failed;
            st.reason = REASON.to_string();
            st.message = MESSAGE.to_string();
            st.ready = false;
        }
        self.stop_containers().await;
        self.persist();
    }
}
