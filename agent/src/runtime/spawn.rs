//! Agent side of container creation: prepares the per-container directories and FIFOs, runs the
//! intermediate (`<agent exe> __container-init`), which joins the container cgroup itself, and returns
//! the container's PID 1 with a pidfd once it has exec'd. Blocking; call from a blocking task.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::init::parse_status;
use super::{InitSpec, RuntimeError};
use crate::sys::pidfd::{pidfd_open, start_time, try_reap};

/// A started container process.
#[derive(Debug)]
pub struct StartedProcess {
    pub pid: i32,
    pub pidfd: OwnedFd,
    /// From /proc/PID/stat; identifies the process across agent restarts.
    pub start_time: u64,
}

/// Creates `dir/{upper,work,rootfs}` (a previous instance's go to the trash under `root`) and
/// the two log FIFOs; returns (stdout, stderr) FIFOs.
pub fn prepare_container_dir(root: &Path, dir: &Path) -> Result<(PathBuf, PathBuf), RuntimeError> {
    super::trash::discard(root, dir).map_err(|e| RuntimeError::io("clean", dir, e))?;
    for sub in ["upper", "work", "rootfs"] {
        let p = dir.join(sub);
        std::fs::create_dir_all(&p).map_err(|e| RuntimeError::io("mkdir", &p, e))?;
    }
    let out = dir.join("stdout.fifo");
    let err = dir.join("stderr.fifo");
    for f in [&out, &err] {
        nix::unistd::mkfifo(f.as_path(), nix::sys::stat::Mode::from_bits_truncate(0o600))
            .map_err(|e| RuntimeError::io("mkfifo", f, std::io::Error::from(e)))?;
    }
    Ok((out, err))
}

/// Runs `init_exe SUBCOMMAND` with `payload` (its JSON spec) on stdin and returns what it
/// printed on stdout (its status lines) once it exited: the container intermediate, the pod
/// init.
pub(crate) fn run_helper(
    init_exe: &Path,
    subcommand: &str,
    payload: &[u8],
) -> Result<String, RuntimeError> {
    let failed = |what: &str, e: std::io::Error| RuntimeError::Start {
        id: subcommand.to_owned(),
        message: format!("{what}: {e}"),
    };
    let mut child = Command::new(init_exe)
        .arg(subcommand)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .env_clear()
        .spawn()
        .map_err(|e| RuntimeError::io("spawn", init_exe, e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(payload)
            .map_err(|e| failed("sending spec", e))?;
    }
    let mut status = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut status)
            .map_err(|e| failed("reading status", e))?;
    }
    let _ = child.wait();
    Ok(status)
}

/// Runs the intermediate and returns PID 1 after it exec'd the workload. A workload that cannot
/// start (missing binary, bad workingDir, …) gives `RuntimeError::Start` with the reason.
pub fn start_container(init_exe: &Path, spec: &InitSpec) -> Result<StartedProcess, RuntimeError> {
    let start_err = |message: String| RuntimeError::Start {
        id: spec.id.clone(),
        message,
    };
    let t0 = std::time::Instant::now();
    let lap = |what: &str| tracing::debug!(target: "bosun_agent::phase", what = %spec.id, phase = what, total_us = t0.elapsed().as_micros() as u64, "runtime");
    let payload = serde_json::to_vec(spec)?;
    let status = run_helper(init_exe, "__container-init", &payload).map_err(|e| match e {
        RuntimeError::Start { message, .. } => start_err(message),
        other => other,
    })?;
    lap("pid1-exec");
    let (pid, error) = parse_status(&status);
    let Some(pid) = pid else {
        return Err(start_err(
            error.unwrap_or_else(|| "intermediate exited without a pid".into()),
        ));
    };
    let pidfd = pidfd_open(pid).map_err(|e| start_err(format!("pidfd_open {pid}: {e}")))?;
    if let Some(message) = error {
        // PID 1 reported why it could not exec and exited 127; reap it.
        for _ in 0..200 {
            if matches!(try_reap(&pidfd, pid), Ok(Some(_)) | Err(_)) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        return Err(start_err(message));
    }
    Ok(StartedProcess {
        pid,
        start_time: start_time(pid).unwrap_or(0),
        pidfd,
    })
}
