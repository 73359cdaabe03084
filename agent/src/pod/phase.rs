//! Timing of lifecycle phases: each step of starting or stopping a container is logged at
//! debug level with its duration, so pod start latency can be explained from the logs.

use std::time::Instant;

pub struct PhaseTimer<'a> {
    what: &'a str,
    start: Instant,
    last: Instant,
}

impl<'a> PhaseTimer<'a> {
    pub fn new(what: &'a str) -> Self {
        let now = Instant::now();
        PhaseTimer {
            what,
            start: now,
            last: now,
        }
    }

    /// Logs the time since the previous mark.
    pub fn mark(&mut self, phase: &str) {
        let now = Instant::now();
        tracing::debug!(
            target: "bosun_agent::phase",
            what = self.what,
            phase,
            us = now.duration_since(self.last).as_micros() as u64,
            total_us = now.duration_since(self.start).as_micros() as u64,
            "phase"
        );
        self.last = now;
    }
}
