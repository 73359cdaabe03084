//! Process file descriptors: how the agent watches and signals containers without a shim.
//! A pidfd stays bound to one process even after its pid is reused, so a signal can never hit a
//! stranger. Must never reap a process it was not asked about (no `waitpid(-1)` anywhere).
//! The syscalls go through rustix and nix; the one `unsafe` left is tokio's registration of
//! the fd with the reactor.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use nix::sys::signal::Signal;
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};

/// How a watched process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessExit {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal number.
    Signal(i32),
    /// Gone, but it was not our child (adopted after an agent crash): the status is unknowable.
    Unknown,
}

impl ProcessExit {
    /// The exit code Kubernetes reports: the code, or 128 + signal.
    pub fn exit_code(self) -> i32 {
        match self {
            ProcessExit::Code(c) => c,
            ProcessExit::Signal(s) => 128 + s,
            ProcessExit::Unknown => 137,
        }
    }
}

/// Opens a pidfd for `pid` (works for zombies too, until they are reaped).
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("pid {pid}")))?;
    Ok(rustix::process::pidfd_open(
        pid,
        rustix::process::PidfdFlags::empty(),
    )?)
}

/// Sends `signal` to the process behind `pidfd`.
pub fn pidfd_send_signal(pidfd: &impl AsFd, signal: Signal) -> io::Result<()> {
    let sig = rustix::process::Signal::from_named_raw(signal as i32)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("signal {signal}")))?;
    Ok(rustix::process::pidfd_send_signal(pidfd, sig)?)
}

/// Reaps the process behind `pidfd` if it has exited. `Ok(None)`: still running.
/// When the process is not our child (ECHILD) but has exited, reports `ProcessExit::Unknown`.
pub fn try_reap(pidfd: &impl AsFd, pid: i32) -> io::Result<Option<ProcessExit>> {
    match waitid(
        Id::PIDFd(pidfd.as_fd()),
        WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG,
    ) {
        Ok(WaitStatus::Exited(_, code)) => Ok(Some(ProcessExit::Code(code))),
        Ok(WaitStatus::Signaled(_, sig, _)) => Ok(Some(ProcessExit::Signal(sig as i32))),
        Ok(_) => Ok(None),
        Err(nix::errno::Errno::ECHILD) => {
            if is_alive(pid) {
                Ok(None)
            } else {
                Ok(Some(ProcessExit::Unknown))
            }
        }
        Err(e) => Err(io::Error::from(e)),
    }
}

/// Registers a pidfd with the tokio reactor: it becomes readable when the process exits.
pub fn async_pidfd(
    fd: std::sync::Arc<OwnedFd>,
) -> io::Result<tokio::io::unix::AsyncFd<std::sync::Arc<OwnedFd>>> {
    // SAFETY: the Arc owns the OwnedFd, so the descriptor stays open and refers to the same
    // pidfd for as long as the AsyncFd (which holds a clone of the Arc) exists.
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(|e| io::Error::other(e.to_string()))
}

/// Whether a process with this pid exists and is not a zombie.
pub fn is_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the last ')' (the command may contain parentheses).
            stat.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
                .unwrap_or(false)
        }
        Err(_) => false,
    }
}

/// The process start time (clock ticks since boot, field 22 of /proc/PID/stat): with the pid it
/// identifies a process across agent restarts.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // rest starts at field 3 (state); start time is field 22 → index 19 of rest's fields.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Makes the calling process a child subreaper: orphaned container processes are re-parented
/// to it, so it can reap them with their exit status.
pub fn become_subreaper() -> io::Result<()> {
    Ok(nix::sys::prctl::set_child_subreaper(true)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn reaps_own_child_with_its_exit_code() {
        let mut child = Command::new("sh")
            .args(["-c", "exit 7"])
            .spawn()
            .expect("spawn sh");
        let pid = child.id() as i32;
        let fd = pidfd_open(pid).expect("pidfd_open");
        let exit = loop {
            if let Some(e) = try_reap(&fd, pid).expect("waitid") {
                break e;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert_eq!(exit, ProcessExit::Code(7));
        assert!(
            child.try_wait().is_err(),
            "already reaped through the pidfd"
        );
        assert_eq!(exit.exit_code(), 7);
    }

    #[test]
    fn signal_through_pidfd_kills() {
        let mut child = Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id() as i32;
        let fd = pidfd_open(pid).expect("pidfd_open");
        assert!(start_time(pid).is_some());
        pidfd_send_signal(&fd, Signal::SIGKILL).expect("signal");
        let exit = loop {
            if let Some(e) = try_reap(&fd, pid).expect("waitid") {
                break e;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert_eq!(exit, ProcessExit::Signal(9));
        assert!(
            child.try_wait().is_err(),
            "already reaped through the pidfd"
        );
        assert_eq!(exit.exit_code(), 137);
    }
}
