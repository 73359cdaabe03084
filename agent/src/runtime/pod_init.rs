//! A pod's shared PID namespace (`shareProcessNamespace: true`) and its PID 1, which kubelet's
//! pause container is: `bosun-init __pod-init` unshares a PID namespace, forks its PID 1,
//! reports that pid on stdout and exits. PID 1 reaps the zombies the pod's processes leave
//! and does nothing else, until the agent kills it when the pod goes (a PID namespace whose
//! PID 1 ended takes no more processes, so no container may be it: each one restarts on its
//! own). The agent pins the namespace with a bind mount beside the pod's other namespaces and
//! records PID 1's pid and start time (`pod-init` in the sandbox directory) to kill exactly it.

use std::io::{Read, Write};
use std::path::Path;

use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

use super::RuntimeError;
use crate::sys::clone3::fork_child;
use crate::sys::pidfd::{pidfd_open, pidfd_send_signal, start_time, try_reap};

/// Where the pod init runs: its own cgroup under the pod's (a cgroup v2 parent with
/// children may hold no process itself), so that it is the pod's, and outlives the agent's.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct PodInitSpec {
    /// cgroup v1 `tasks` files the helper joins before the fork.
    pub cgroup_tasks: Vec<std::path::PathBuf>,
    /// The cgroup v2 directory PID 1 is born in.
    pub cgroup_v2_dir: Option<std::path::PathBuf>,
}

/// Entry point of `bosun-init __pod-init`: the [`PodInitSpec`] on stdin. Never returns.
pub fn pod_init_main() -> ! {
    let mut out = std::io::stdout();
    let result = pod_init();
    match result {
        Ok(pid) => {
            let _ = writeln!(out, "pid {pid}");
            std::process::exit(0)
        }
        Err(why) => {
            let _ = writeln!(out, "error: {why}");
            std::process::exit(1)
        }
    }
}

fn pod_init() -> Result<i32, String> {
    let mut raw = String::new();
    std::io::stdin()
        .read_to_string(&mut raw)
        .map_err(|e| format!("reading spec: {e}"))?;
    let spec: PodInitSpec =
        serde_json::from_str(&raw).map_err(|e| format!("decoding spec: {e}"))?;
    super::init::join_cgroups(&spec.cgroup_tasks)?;
    let v2_dir = super::init::open_cgroup_dir(spec.cgroup_v2_dir.as_deref())?;
    unshare(CloneFlags::CLONE_NEWPID).map_err(|e| format!("unshare pid namespace: {e}"))?;
    use std::os::fd::AsFd;
    fork_child(v2_dir.as_ref().map(|f| f.as_fd()), reap_forever).map_err(|e| format!("clone3: {e}"))
}

/// PID 1: lets go of the agent's pipe and directory, then reaps children for ever.
fn reap_forever() -> i32 {
    let _ = std::env::set_current_dir("/");
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        use std::os::fd::AsRawFd;
        for fd in 0..3 {
            let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
        }
    }
    let _ = nix::unistd::setsid();
    let mut children = SigSet::empty();
    children.add(Signal::SIGCHLD);
    let _ = children.thread_block();
    loop {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = children.wait();
    }
}

/// Starts a pod's PID 1 with `init_exe` where `spec` says: its pid and start time.
pub fn start(init_exe: &Path, spec: &PodInitSpec) -> Result<(i32, u64), RuntimeError> {
    let fail = |message: String| RuntimeError::Start {
        id: "pod-init".into(),
        message,
    };
    let status = super::spawn::run_helper(init_exe, "__pod-init", &serde_json::to_vec(spec)?)?;
    let pid = status
        .trim()
        .strip_prefix("pid ")
        .and_then(|p| p.parse::<i32>().ok())
        .ok_or_else(|| fail(format!("pod init: {}", status.trim())))?;
    Ok((pid, start_time(pid).unwrap_or(0)))
}

/// Kills the pod's PID 1 recorded as `pid` started at `started` (nothing if that process is
/// gone: the pid may be another's now) and reaps it when it is the agent's child.
pub fn kill(pid: i32, started: u64) {
    if start_time(pid) != Some(started) {
        return;
    }
    let Ok(pidfd) = pidfd_open(pid) else {
        return;
    };
    if let Err(e) = pidfd_send_signal(&pidfd, Signal::SIGKILL) {
        tracing::debug!(pid, error = %e, "killing the pod's init");
        return;
    }
    for _ in 0..200 {
        if matches!(try_reap(&pidfd, pid), Ok(Some(_)) | Err(_)) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
