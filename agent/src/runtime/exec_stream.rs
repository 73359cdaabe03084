//! Interactive exec (`kubectl exec`): a command in a running container with live stdio. The
//! agent starts `bosun-init __exec-stream` with one end of a unix socket as its stdin and sends
//! a [`StreamSpec`] line; the helper joins the container (like the probe exec), makes the
//! command's stdio there — pipes, or with `tty` a pty from the container's own devpts, so
//! `tty` inside names `/dev/pts/N` — and passes the agent's ends back (SCM_RIGHTS: stdin's
//! write end, stdout's and stderr's read ends as asked, or the pty master). It forks the
//! command (the pty as its controlling terminal), then reports one [`StreamEnd`] line: the
//! exit code, or why the command could not start. The command dies with the helper
//! (PDEATHSIG), so killing the helper ends the session.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::unistd::{dup2, pipe2};
use serde::{Deserialize, Serialize};

use super::exec::{enter_container, start_program, wait_exit, ExecSpec};
use crate::sys::clone3::fork_child;
use crate::sys::fd_pass::{recv_fds, send_fds, TAG_FAILED, TAG_FDS};

/// Whether the helper sent the stdio (after that, a failure is reported without its tag).
static SENT: AtomicBool = AtomicBool::new(false);

/// What the agent asks of the helper.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamSpec {
    pub exec: ExecSpec,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
    /// The pty's window size (rows, columns) before the command starts: the client's
    /// terminal, so `stty size` run first already sees it.
    #[serde(default)]
    pub tty_size: Option<(u16, u16)>,
}

/// How the command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StreamEnd {
    /// It ran and exited with this code (128 + signal when killed).
    Exited(i32),
    /// It never started (command not found, bad workingDir, container gone, …).
    NotStarted(String),
}

/// The agent's ends of the command's stdio.
pub enum StreamFds {
    /// Non-TTY: stdin's write end, stdout's and stderr's read ends (those asked for).
    Pipes {
        stdin: Option<OwnedFd>,
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
    },
    /// TTY: the pty master (input, output and window size).
    Pty(OwnedFd),
}

/// A started exec: its stdio and the helper, whose last line tells how it ended.
pub struct StreamProcess {
    pub fds: StreamFds,
    pub helper: tokio::process::Child,
    socket: UnixStream,
}

/// How long the helper may take to enter the container and hand over the stdio.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Starts the helper (`init_exe __exec-stream`) for `spec` and takes its stdio ends.
pub async fn start(init_exe: &Path, spec: StreamSpec) -> Result<StreamProcess, String> {
    let (ours, theirs) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    let helper = tokio::process::Command::new(init_exe)
        .arg("__exec-stream")
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .env_clear()
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting the exec helper: {e}"))?;
    let (tty, stdin, stdout, stderr) = (spec.tty, spec.stdin, spec.stdout, spec.stderr);
    let socket =
        tokio::task::spawn_blocking(move || -> Result<(UnixStream, Vec<OwnedFd>), String> {
            let mut line = serde_json::to_vec(&spec).map_err(|e| format!("encoding: {e}"))?;
            line.push(b'\n');
            let mut socket = ours;
            socket
                .set_read_timeout(Some(START_TIMEOUT))
                .map_err(|e| format!("socket: {e}"))?;
            socket
                .write_all(&line)
                .map_err(|e| format!("sending the exec spec: {e}"))?;
            match recv_fds(socket.as_fd()) {
                Ok((TAG_FDS, fds)) => Ok((socket, fds)),
                // The helper failed before making the stdio: its reason follows on the socket.
                other => Err(read_end(&socket).map_or_else(
                    |e| format!("the exec helper: {e} ({other:?})"),
                    |end| match end {
                        StreamEnd::NotStarted(why) => why,
                        StreamEnd::Exited(code) => format!("the exec helper exited with {code}"),
                    },
                )),
            }
        })
        .await
        .map_err(|e| format!("exec helper task: {e}"))?;
    let (socket, fds) = socket?;
    let mut fds = fds.into_iter();
    let fds = match tty {
        true => StreamFds::Pty(fds.next().ok_or("the exec helper sent no pty")?),
        false => {
            let mut take = |asked: bool| if asked { fds.next() } else { None };
            StreamFds::Pipes {
                stdin: take(stdin),
                stdout: take(stdout),
                stderr: take(stderr),
            }
        }
    };
    socket
        .set_read_timeout(None)
        .map_err(|e| format!("socket: {e}"))?;
    Ok(StreamProcess {
        fds,
        helper,
        socket,
    })
}

impl StreamProcess {
    /// Waits for the helper's report (blocking a pool thread until the command ends).
    pub async fn end(self) -> StreamEnd {
        let StreamProcess {
            mut helper, socket, ..
        } = self;
        let end = tokio::task::spawn_blocking(move || read_end(&socket))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
        let _ = helper.wait().await;
        end.unwrap_or_else(|e| StreamEnd::NotStarted(format!("the exec helper: {e}")))
    }
}

/// Reads the helper's last report: a start failure wins over the exit code that follows it.
fn read_end(socket: &UnixStream) -> Result<StreamEnd, String> {
    let mut ended = None;
    for line in BufReader::new(socket).lines() {
        let line = line.map_err(|e| e.to_string())?;
        let end: StreamEnd = serde_json::from_str(&line).map_err(|e| e.to_string())?;
        if !matches!(ended, Some(StreamEnd::NotStarted(_))) {
            ended = Some(end);
        }
    }
    ended.ok_or_else(|| "ended without a report".to_owned())
}

/// Entry point of `bosun-init __exec-stream`. Never returns.
pub fn helper_main() -> ! {
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    let report = |end: &StreamEnd| {
        if let Ok(mut line) = serde_json::to_vec(end) {
            line.push(b'\n');
            let _ = std::io::stdin().as_fd().try_clone_to_owned().map(|fd| {
                let mut socket = UnixStream::from(fd);
                socket.write_all(&line)
            });
        }
    };
    match run_helper(&report) {
        Ok(code) => {
            report(&StreamEnd::Exited(code));
            std::process::exit(0)
        }
        Err(why) => {
            if !SENT.load(Ordering::Relaxed) {
                let _ = send_fds(std::io::stdin().as_fd(), TAG_FAILED, &[]);
            }
            report(&StreamEnd::NotStarted(why));
            std::process::exit(126)
        }
    }
}

/// The command's stdio (fds 0, 1, 2) and the agent's ends.
struct Stdio3 {
    child: [OwnedFd; 3],
    agent: Vec<OwnedFd>,
    tty: bool,
}

fn run_helper(report: &dyn Fn(&StreamEnd)) -> Result<i32, String> {
    let mut line = String::new();
    let mut byte = [0u8; 1];
    let mut stdin = std::io::stdin().lock();
    // Byte by byte: nothing past the line may be consumed from the socket.
    while stdin
        .read(&mut byte)
        .map_err(|e| format!("reading spec: {e}"))?
        == 1
    {
        if byte[0] == b'\n' {
            break;
        }
        line.push(byte[0] as char);
    }
    drop(stdin);
    let spec: StreamSpec =
        serde_json::from_str(&line).map_err(|e| format!("decoding spec: {e}"))?;
    let v2_dir = enter_container(&spec.exec)?;
    let stdio = match spec.tty {
        true => pty(spec.tty_size)?,
        false => pipes(&spec)?,
    };
    let agent: Vec<_> = stdio.agent.iter().map(|f| f.as_fd()).collect();
    send_fds(std::io::stdin().as_fd(), TAG_FDS, &agent)
        .map_err(|e| format!("sending stdio: {e}"))?;
    SENT.store(true, Ordering::Relaxed);
    let (status_read, status_write) = pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let process = &spec.exec.process;
    let child = fork_child(v2_dir.as_ref().map(|f| f.as_fd()), || {
        let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
        let err = child_stdio(&stdio)
            .err()
            .unwrap_or_else(|| start_program(process));
        let _ = nix::unistd::write(&status_write, err.as_bytes());
        127
    })
    .map_err(|e| format!("clone3: {e}"))?;
    drop(stdio);
    drop(status_write);
    let mut why = String::new();
    let _ = std::fs::File::from(status_read).read_to_string(&mut why);
    if !why.is_empty() {
        report(&StreamEnd::NotStarted(why));
    }
    wait_exit(child)
}

/// In the forked child: its stdio on 0, 1, 2; with a tty a new session whose controlling
/// terminal it is.
fn child_stdio(stdio: &Stdio3) -> Result<(), String> {
    for (target, fd) in stdio.child.iter().enumerate() {
        dup2(fd.as_raw_fd(), target as i32).map_err(|e| format!("dup2: {e}"))?;
    }
    if stdio.tty {
        nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
        rustix::process::ioctl_tiocsctty(std::io::stdin())
            .map_err(|e| format!("TIOCSCTTY: {e}"))?;
    }
    Ok(())
}

/// A pty from the container's devpts (the helper is in its mount namespace), of `size`
/// (rows, columns) when given.
fn pty(size: Option<(u16, u16)>) -> Result<Stdio3, String> {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
        .map_err(|e| format!("opening /dev/ptmx: {e}"))?;
    grantpt(&master).map_err(|e| format!("grantpt: {e}"))?;
    unlockpt(&master).map_err(|e| format!("unlockpt: {e}"))?;
    if let Some((ws_row, ws_col)) = size {
        let size = rustix::termios::Winsize {
            ws_row,
            ws_col,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(&master, size)
            .map_err(|e| format!("setting the window size: {e}"))?;
    }
    let name = ptsname(&master, Vec::new()).map_err(|e| format!("ptsname: {e}"))?;
    let name = name.to_string_lossy().into_owned();
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(&name)
        .map_err(|e| format!("opening {name}: {e}"))?;
    let slave = OwnedFd::from(slave);
    let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| format!("dup: {e}"));
    Ok(Stdio3 {
        child: [dup(&slave)?, dup(&slave)?, slave],
        agent: vec![master],
        tty: true,
    })
}

/// Pipes for the streams asked for, /dev/null for the others.
fn pipes(spec: &StreamSpec) -> Result<Stdio3, String> {
    let null = |write: bool| {
        std::fs::OpenOptions::new()
            .read(!write)
            .write(write)
            .custom_flags(libc::O_CLOEXEC)
            .open("/dev/null")
            .map(OwnedFd::from)
            .map_err(|e| format!("/dev/null: {e}"))
    };
    let pipe = || pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"));
    let mut agent = Vec::new();
    let stdin = match spec.stdin {
        true => {
            let (r, w) = pipe()?;
            agent.push(w);
            r
        }
        false => null(false)?,
    };
    let mut out = |asked: bool| -> Result<OwnedFd, String> {
        match asked {
            true => {
                let (r, w) = pipe()?;
                agent.push(r);
                Ok(w)
            }
            false => null(true),
        }
    };
    let stdout = out(spec.stdout)?;
    let stderr = out(spec.stderr)?;
    Ok(Stdio3 {
        child: [stdin, stdout, stderr],
        agent,
        tty: false,
    })
}
