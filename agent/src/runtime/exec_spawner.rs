//! The exec spawner (`bosun-init __spawner`): a long-lived, single-threaded child of the agent
//! with almost no open files, which forks one helper per exec (probes) instead of the agent
//! starting a new process image each time. Requests arrive as JSON lines on stdin
//! (`{"id","timeout_ms","spec"}`); each helper's stdout/stderr go to a pipe the spawner reads
//! (first KiB kept); a helper past its deadline is killed (its command dies with it through
//! PDEATHSIG). Replies are JSON lines on stdout (`{"id","code","output"}`; code 124 = timeout).

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{dup2, pipe2, Pid};
use serde::{Deserialize, Serialize};

use super::exec::{exec_in_container, ExecSpec};
use crate::sys::clone3::fork_child;
use crate::sys::pidfd::pidfd_open;

/// Kept output per exec.
const MAX_OUTPUT: usize = 1024;

#[derive(Debug, Serialize, Deserialize)]
pub struct SpawnRequest {
    pub id: u64,
    pub timeout_ms: u64,
    pub spec: ExecSpec,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SpawnReply {
    pub id: u64,
    /// Exit code; 124 when killed at the deadline; 126 when it could not start.
    pub code: i32,
    pub output: String,
}

struct Running {
    id: u64,
    pid: Pid,
    pidfd: OwnedFd,
    output: Option<OwnedFd>,
    kept: Vec<u8>,
    deadline: Instant,
    timed_out: bool,
}

/// Entry point of `bosun-init __spawner`. Returns when stdin closes (the agent went away).
pub fn spawner_main() -> ! {
    // If the agent dies, so does the spawner, and with it every helper (their PDEATHSIG).
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    let mut out = std::io::stdout().lock();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock();
    let mut running: HashMap<i32, Running> = HashMap::new();
    let mut buf = String::new();
    let mut stdin_open = true;
    loop {
        if !stdin_open && running.is_empty() {
            std::process::exit(0);
        }
        let now = Instant::now();
        let wait = running
            .values()
            .map(|r| r.deadline.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_secs(60));
        let mut fds: Vec<PollFd> = Vec::new();
        let mut owners: Vec<(i32, bool)> = Vec::new();
        let stdin_fd = std::io::stdin();
        if stdin_open {
            fds.push(PollFd::new(stdin_fd.as_fd(), PollFlags::POLLIN));
            owners.push((0, false));
        }
        for (pid, r) in &running {
            fds.push(PollFd::new(r.pidfd.as_fd(), PollFlags::POLLIN));
            owners.push((*pid, true));
            if let Some(o) = &r.output {
                fds.push(PollFd::new(o.as_fd(), PollFlags::POLLIN));
                owners.push((*pid, false));
            }
        }
        let timeout =
            PollTimeout::try_from(wait.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::MAX);
        if poll(&mut fds, timeout).is_err() {
            continue;
        }
        let ready: Vec<(i32, bool, bool)> = fds
            .iter()
            .zip(&owners)
            .filter(|(f, _)| f.revents().is_some_and(|r| !r.is_empty()))
            .map(|(_, (pid, is_pidfd))| (*pid, *is_pidfd, *pid == 0 && !*is_pidfd))
            .collect();
        drop(fds);
        for (pid, is_pidfd, is_stdin) in ready {
            if is_stdin {
                buf.clear();
                match lines.read_line(&mut buf) {
                    Ok(0) | Err(_) => stdin_open = false,
                    Ok(_) => start(&buf, &mut running, &mut out),
                }
            } else if let Some(r) = running.get_mut(&pid) {
                if !is_pidfd {
                    drain(r);
                }
            }
        }
        // Deadlines, then exits (pidfd readable or not: waitpid WNOHANG decides).
        let now = Instant::now();
        for r in running.values_mut() {
            if now >= r.deadline && !r.timed_out {
                r.timed_out = true;
                let _ = kill(r.pid, Signal::SIGKILL);
            }
        }
        let pids: Vec<i32> = running.keys().copied().collect();
        for pid in pids {
            let status = match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => code,
                Ok(WaitStatus::Signaled(_, sig, _)) => 128 + sig as i32,
                Ok(_) => continue,
                Err(_) => 126,
            };
            if let Some(mut r) = running.remove(&pid) {
                drain(&mut r);
                let code = if r.timed_out { 124 } else { status };
                reply(&mut out, r.id, code, &r.kept);
            }
        }
    }
}

fn reply(out: &mut impl Write, id: u64, code: i32, output: &[u8]) {
    let text = String::from_utf8_lossy(output).into_owned();
    if let Ok(mut line) = serde_json::to_vec(&SpawnReply {
        id,
        code,
        output: text,
    }) {
        line.push(b'\n');
        let _ = out.write_all(&line);
        let _ = out.flush();
    }
}

/// Reads what a helper wrote so far (non-blocking); keeps the first KiB; EOF closes the pipe.
fn drain(r: &mut Running) {
    let Some(fd) = &r.output else { return };
    let mut chunk = [0u8; 4096];
    loop {
        match nix::unistd::read(fd.as_raw_fd(), &mut chunk) {
            Ok(0) => {
                r.output = None;
                return;
            }
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(r.kept.len());
                r.kept.extend_from_slice(&chunk[..n.min(room)]);
            }
            Err(_) => return,
        }
    }
}

fn start(line: &str, running: &mut HashMap<i32, Running>, out: &mut impl Write) {
    let req: SpawnRequest = match serde_json::from_str(line) {
        Ok(r) => r,
        Err(e) => {
            reply(out, 0, 126, format!("bad request: {e}").as_bytes());
            return;
        }
    };
    let fail = |out: &mut dyn Write, msg: String| {
        let mut w = out;
        reply(&mut w, req.id, 126, msg.as_bytes());
    };
    let (read_end, write_end) = match pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK) {
        Ok(p) => p,
        Err(e) => return fail(out, format!("pipe: {e}")),
    };
    let forked = fork_child(None, || {
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
        // stdout/stderr to the pipe (blocking), stdin from /dev/null.
        let _ = nix::fcntl::fcntl(
            write_end.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFL(OFlag::empty()),
        );
        let _ = dup2(write_end.as_raw_fd(), 1);
        let _ = dup2(write_end.as_raw_fd(), 2);
        if let Ok(null) = std::fs::File::open("/dev/null") {
            let _ = dup2(null.as_raw_fd(), 0);
        }
        match exec_in_container(&req.spec) {
            Ok(code) => code,
            Err(msg) => {
                let _ = writeln!(std::io::stderr(), "exec: {msg}");
                126
            }
        }
    });
    match forked {
        Err(e) => fail(out, format!("fork: {e}")),
        Ok(child) => {
            let child = Pid::from_raw(child);
            drop(write_end);
            let pidfd = match pidfd_open(child.as_raw()) {
                Ok(fd) => fd,
                Err(e) => return fail(out, format!("pidfd_open: {e}")),
            };
            running.insert(
                child.as_raw(),
                Running {
                    id: req.id,
                    pid: child,
                    pidfd,
                    output: Some(read_end),
                    kept: Vec::new(),
                    deadline: Instant::now() + Duration::from_millis(req.timeout_ms),
                    timed_out: false,
                },
            );
        }
    }
}
