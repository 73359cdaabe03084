//! Backoff for the agent's accept loops (metrics endpoint, local API socket). An `accept()`
//! error such as EMFILE leaves the listener readable, so retrying at once would spin the
//! single-threaded event loop at 100 % CPU; instead the loop waits 100 ms, doubling up to 1 s,
//! and logs once per episode of failures (and once when accepting works again).

use std::io;
use std::time::Duration;

/// The first wait after a failed accept.
pub const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest wait between accept attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(1);

/// The failure state of one accept loop.
#[derive(Debug)]
pub struct AcceptBackoff {
    server: &'static str,
    delay: Duration,
    failing: bool,
}

impl AcceptBackoff {
    /// `server` names the loop in the log (`metrics`, `api`).
    pub fn new(server: &'static str) -> Self {
        AcceptBackoff {
            server,
            delay: FIRST_DELAY,
            failing: false,
        }
    }

    /// Records a failed accept and returns how long to wait before the next one; logs only
    /// the first failure of an episode.
    pub fn on_error(&mut self, err: &io::Error) -> Duration {
        if !self.failing {
            self.failing = true;
            tracing::warn!(server = self.server, error = %err, "accept failed; retrying with backoff up to {}s (logged once until accepting works again)", MAX_DELAY.as_secs());
        }
        let delay = self.delay;
        self.delay = (self.delay * 2).min(MAX_DELAY);
        delay
    }

    /// Waits as [`Self::on_error`] says.
    pub async fn failed(&mut self, err: &io::Error) {
        tokio::time::sleep(self.on_error(err)).await;
    }

    /// Calls `accept` until it succeeds, backing off after each failure; returns what it
    /// accepted. The one accept loop of every agent server.
    pub async fn accept<T, F, Fut>(&mut self, mut accept: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = io::Result<T>>,
    {
        loop {
            match accept().await {
                Ok(accepted) => {
                    self.succeeded();
                    return accepted;
                }
                Err(e) => self.failed(&e).await,
            }
        }
    }

    /// Records a successful accept, ending an episode of failures.
    pub fn succeeded(&mut self) {
        if self.failing {
            tracing::info!(server = self.server, "accepting connections again");
        }
        self.failing = false;
        self.delay = FIRST_DELAY;
    }
}

#[cfg(test)]
mod emfile;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_a_second_and_reset_after_a_success() {
        let mut b = AcceptBackoff::new("test");
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let delays: Vec<u64> = (0..6)
            .map(|_| b.on_error(&emfile).as_millis() as u64)
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        b.succeeded();
        assert_eq!(b.on_error(&emfile), FIRST_DELAY);
    }
}
