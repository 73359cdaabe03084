//! Processes left in a container's cgroup when its main process ended. In a container of its
//! own PID namespace the kernel kills them with PID 1; in one that shares the host's (hostPID)
//! nothing does, and they are re-parented to the agent, the child subreaper. They are killed
//! through pidfds (a reused pid is never hit) and reaped here, so none lingers as a zombie of
//! the agent. Only the pids given (read from the container's cgroup) are touched: never a
//! `waitpid(-1)`. Blocking; call from a blocking task.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::sys::pidfd::{pidfd_open, pidfd_send_signal, start_time, try_reap, ProcessExit};

/// SIGKILLs `pids` and waits up to `limit` until each is reaped (by the agent, or by a parent
/// that still lives). Returns how many were still not reaped when `limit` passed.
pub fn kill_and_reap(pids: &[i32], limit: Duration) -> usize {
    let mut left: Vec<(i32, OwnedFd, Option<u64>)> = Vec::new();
    for &pid in pids {
        // Opened before the kill: the pidfd pins the identity of the process we read.
        let Ok(fd) = pidfd_open(pid) else { continue };
        let started = start_time(pid);
        let _ = pidfd_send_signal(&fd, Signal::SIGKILL);
        left.push((pid, fd, started));
    }
    let deadline = Instant::now() + limit;
    loop {
        left.retain(|(pid, fd, started)| !gone(*pid, fd, *started));
        if left.is_empty() || Instant::now() >= deadline {
            return left.len();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether the process is reaped: by us now, or already by someone else.
fn gone(pid: i32, fd: &OwnedFd, started: Option<u64>) -> bool {
    match try_reap(fd, pid) {
        Ok(None) => false,
        // Not our child (yet): a zombie whose parent is still exiting is re-parented to us
        // shortly; it is gone only once /proc no longer shows this very process.
        Ok(Some(ProcessExit::Unknown)) => started.is_none() || start_time(pid) != started,
        Ok(Some(_)) => true,
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_child_is_reaped_not_left_a_zombie() {
        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id() as i32;
        assert_eq!(kill_and_reap(&[pid], Duration::from_secs(5)), 0);
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} reaped"
        );
        std::mem::forget(child);
    }
}
