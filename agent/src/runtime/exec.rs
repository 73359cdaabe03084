//! Running a command inside a running container (exec probes, later `bosun exec`): the
//! agent starts `bosun-agent __exec`, moves it into the container's cgroup, and sends an
//! [`ExecSpec`]; the helper joins the container's namespaces, forks the command (so it is inside
//! the container's pid namespace), relays its output and exits with its status. The command dies
//! with the helper (PDEATHSIG), so killing the helper enforces a timeout.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::PathBuf;

use nix::sched::{setns, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use serde::{Deserialize, Serialize};

use super::init::{drop_privileges, exec_program, join_cgroups, open_cgroup_dir};
use super::ProcessSpec;
use crate::sys::clone3::fork_child;

/// An exec into the container whose PID 1 is `pid`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecSpec {
    pub pid: i32,
    /// cgroup v1 `tasks` files the helper joins, and the v2 directory the command is forked into.
    pub cgroup_tasks: Vec<PathBuf>,
    pub cgroup_v2_dir: Option<PathBuf>,
    pub process: ProcessSpec,
}

/// Namespaces joined, in order: the mount namespace last, since it changes the root.
const JOIN: &[(&str, CloneFlags)] = &[
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// Entry point of `bosun-agent __exec`. Never returns.
pub fn exec_main() -> ! {
    match run_exec() {
        Ok(code) => std::process::exit(code),
        Err(msg) => {
            eprintln!("exec: {msg}");
            std::process::exit(126);
        }
    }
}

fn run_exec() -> Result<i32, String> {
    let mut raw = String::new();
    std::io::stdin()
        .read_to_string(&mut raw)
        .map_err(|e| format!("reading spec: {e}"))?;
    let spec: ExecSpec = serde_json::from_str(&raw).map_err(|e| format!("decoding spec: {e}"))?;
    exec_in_container(&spec)
}

/// Joins the container of `spec` and runs its command there; returns its exit code. The calling
/// process must be single-threaded (it forks).
pub(crate) fn exec_in_container(spec: &ExecSpec) -> Result<i32, String> {
    let v2_dir = enter_container(spec)?;
    let child = fork_child(v2_dir.as_ref().map(|f| f.as_fd()), || {
        let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
        let err = start_program(&spec.process);
        eprintln!("exec: {err}");
        127
    })
    .map_err(|e| format!("clone3: {e}"))?;
    wait_exit(child)
}

/// Joins the cgroups and namespaces of the container of `spec` (the mount namespace last, so
/// the root becomes the container's); returns the v2 cgroup directory to fork into.
pub(crate) fn enter_container(spec: &ExecSpec) -> Result<Option<File>, String> {
    join_cgroups(&spec.cgroup_tasks)?;
    let v2_dir = open_cgroup_dir(spec.cgroup_v2_dir.as_deref())?;
    let mut handles = Vec::new();
    for (name, flag) in JOIN {
        let path = format!("/proc/{}/ns/{name}", spec.pid);
        let f = File::open(&path).map_err(|e| format!("container is gone ({path}: {e})"))?;
        handles.push((f, *flag, *name));
    }
    for (f, flag, name) in &handles {
        setns(f.as_fd(), *flag).map_err(|e| format!("setns {name}: {e}"))?;
    }
    Ok(v2_dir)
}

/// In the forked child: the working directory, the container's identity, then exec. Returns
/// only on failure, with the reason.
pub(crate) fn start_program(process: &ProcessSpec) -> String {
    std::env::set_current_dir(&process.cwd)
        .map_err(|e| format!("workingDir {}: {e}", process.cwd))
        .and_then(|()| drop_privileges(process))
        .err()
        .unwrap_or_else(|| exec_program(process))
}

/// Waits for child `pid`; its exit code, or 128 + the signal that killed it.
pub(crate) fn wait_exit(pid: i32) -> Result<i32, String> {
    let child = nix::unistd::Pid::from_raw(pid);
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("waitpid: {e}")),
        }
    }
}
