//! Kernel test helpers shared by bosun's integration tests and benchmarks: throwaway network
//! namespaces ([`Netns`]) and cgroup directories ([`CgroupDir`]), unique names, a command
//! runner, the socket client process of the load-balancing tests ([`client`]) and an HTTPS
//! admission webhook server ([`webhook`]). Everything is removed on drop, also when a test fails.
//!
//! Network safety (DESIGN.md §7): a [`Netns`] starts with only `lo` and no route anywhere;
//! whatever a test adds stays inside namespaces it created. Nothing here touches the host's
//! own network namespace.
//!
//! Only tests and benchmarks depend on this crate; no shipped binary does.

#![forbid(unsafe_code)]

mod cgroup;
pub mod client;
mod command;
mod netns;
mod registry;
pub mod webhook;

pub use cgroup::CgroupDir;
pub use command::{run, try_run, CommandError};
pub use netns::{Netns, NetnsError};
pub use registry::{Registry, RegistryError, RegistryOptions};

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A name unique to this process and call: `prefix` + pid + `x` + counter. With a prefix of
/// at most 4 bytes it fits an interface name (15 bytes).
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id() % 100_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `condition` every 20 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_carry_the_prefix() {
        let (a, b) = (unique("bst-"), unique("bst-"));
        assert_ne!(a, b);
        assert!(a.starts_with("bst-") && b.starts_with("bst-"));
    }

    #[test]
    fn wait_until_returns_once_the_condition_holds() {
        let mut calls = 0;
        wait_until("the third call", Duration::from_secs(5), || {
            calls += 1;
            calls == 3
        });
        assert_eq!(calls, 3);
    }

    #[test]
    #[should_panic(expected = "waiting for something that never happens")]
    fn wait_until_panics_naming_what_it_waited_for() {
        wait_until(
            "something that never happens",
            Duration::from_millis(50),
            || false,
        );
    }
}
