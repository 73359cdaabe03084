//! A container's stdin (`stdin: true`) and terminal (`tty: true`), held by the agent itself (no
//! shim): the write end of a FIFO in the container's directory, or the master of a pty whose
//! slave is the container's stdin, stdout and stderr — its output then goes to the log as
//! stdout, as with kubelet. `kubectl attach -i` (and `kubectl run -i`) write there; with
//! `stdinOnce` the end of the first attach session closes stdin (the container reads EOF; a
//! terminal only stops taking input, as with containerd). As nothing but the agent holds these
//! ends, an agent restart closes them: the container then reads EOF, or its terminal hangs up.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;

use crate::runtime::ContainerInput;

/// The agent's end of one container instance's stdin.
#[derive(Debug)]
pub struct ContainerStdin {
    writer: tokio::sync::Mutex<Option<pipe::Sender>>,
    /// The pty master, for the window size (terminals only).
    master: Option<OwnedFd>,
    once: bool,
}

impl ContainerStdin {
    /// Whether the container has a terminal.
    pub fn terminal(&self) -> bool {
        self.master.is_some()
    }

    /// Whether the first attach session to end closes stdin.
    pub fn once(&self) -> bool {
        self.once
    }

    /// Writes `data` to the container's stdin; false once it is closed (or the container gone).
    pub async fn write(&self, data: &[u8]) -> bool {
        let mut writer = self.writer.lock().await;
        match writer.as_mut() {
            Some(w) => w.write_all(data).await.is_ok(),
            None => false,
        }
    }

    /// Closes stdin for good: the container reads EOF (a terminal takes no more input).
    pub async fn close(&self) {
        self.writer.lock().await.take();
    }

    /// Sets the terminal's window size (rows, columns); nothing without a terminal.
    pub fn resize(&self, size: rustix::termios::Winsize) {
        if let Some(master) = &self.master {
            if let Err(e) = rustix::termios::tcsetwinsize(master, size) {
                tracing::debug!(error = %e, "container terminal resize");
            }
        }
    }
}

/// What [`prepare`] made for one container instance, before it starts.
#[derive(Debug, Default)]
pub struct PreparedStdin {
    /// What the container's PID 1 opens.
    pub input: ContainerInput,
    /// With a terminal: the pty master to copy the container's output from.
    pub output: Option<OwnedFd>,
    /// The agent's end, kept by the running instance.
    pub stdin: Option<Arc<ContainerStdin>>,
    /// The pty slave, held until the container has opened it (a master whose slave was never
    /// opened reads as hung up).
    pub slave: Option<OwnedFd>,
}

/// Makes the container's stdin: nothing (`/dev/null`), `dir/stdin.fifo`, or a pty.
pub fn prepare(
    stdin: bool,
    tty: bool,
    stdin_once: bool,
    dir: &Path,
) -> std::io::Result<PreparedStdin> {
    if tty {
        return terminal(stdin_once);
    }
    if !stdin {
        return Ok(PreparedStdin::default());
    }
    let fifo = dir.join("stdin.fifo");
    nix::unistd::mkfifo(
        fifo.as_path(),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )?;
    // Read-write: opening never blocks, and the container's read-only open finds a writer.
    let writer = pipe::OpenOptions::new()
        .read_write(true)
        .open_sender(&fifo)?;
    Ok(PreparedStdin {
        input: ContainerInput::Fifo(fifo),
        output: None,
        stdin: Some(Arc::new(ContainerStdin {
            writer: tokio::sync::Mutex::new(Some(writer)),
            master: None,
            once: stdin_once,
        })),
        slave: None,
    })
}

/// A pty from the node's /dev/ptmx: the container opens the slave by its path before it
/// enters its own mount namespace.
fn terminal(stdin_once: bool) -> std::io::Result<PreparedStdin> {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname(&master, Vec::new())?;
    let name = std::path::PathBuf::from(name.to_string_lossy().into_owned());
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(&name)?;
    use std::os::fd::AsRawFd;
    let nonblocking = nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK);
    nix::fcntl::fcntl(master.as_raw_fd(), nonblocking)?;
    let writer = pipe::Sender::from_owned_fd_unchecked(master.try_clone()?)?;
    Ok(PreparedStdin {
        input: ContainerInput::Terminal(name),
        output: Some(master.try_clone()?),
        stdin: Some(Arc::new(ContainerStdin {
            writer: tokio::sync::Mutex::new(Some(writer)),
            master: Some(master),
            once: stdin_once,
        })),
        slave: Some(OwnedFd::from(slave)),
    })
}

/// The stdins of the node's running container instances, by (pod uid, container name). Holds
/// them weakly: an instance's end closes with the instance.
#[derive(Debug, Default, Clone)]
pub struct Stdins(Arc<Mutex<StdinsByContainer>>);

/// (pod uid, container name) → the instance's stdin.
type StdinsByContainer = HashMap<(String, String), Weak<ContainerStdin>>;

impl Stdins {
    pub fn insert(&self, uid: &str, container: &str, stdin: &Arc<ContainerStdin>) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, held| held.strong_count() > 0);
        map.insert(
            (uid.to_owned(), container.to_owned()),
            Arc::downgrade(stdin),
        );
    }

    pub fn get(&self, uid: &str, container: &str) -> Option<Arc<ContainerStdin>> {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(&(uid.to_owned(), container.to_owned()))
            .and_then(Weak::upgrade)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn a_fifo_stdin_reaches_its_reader_and_closing_it_is_eof() {
        let dir = tempfile::tempdir().expect("tempdir");
        let prepared = prepare(true, false, true, dir.path()).expect("prepare");
        let ContainerInput::Fifo(path) = &prepared.input else {
            panic!("a fifo: {:?}", prepared.input);
        };
        let reader = std::fs::File::open(path).expect("open read-only finds the writer");
        let stdin = prepared.stdin.expect("stdin");
        assert!(stdin.once() && !stdin.terminal());
        assert!(stdin.write(b"hello\n").await);
        stdin.close().await;
        assert!(!stdin.write(b"more").await, "closed");
        let mut reader = tokio::fs::File::from_std(reader);
        let mut got = String::new();
        reader.read_to_string(&mut got).await.expect("read to EOF");
        assert_eq!(got, "hello\n");
    }

    #[tokio::test]
    async fn a_terminal_echoes_input_on_its_output_and_takes_a_window_size() {
        let prepared = prepare(false, true, false, Path::new("/nonexistent")).expect("pty");
        assert!(matches!(prepared.input, ContainerInput::Terminal(_)));
        let stdin = prepared.stdin.expect("stdin");
        assert!(stdin.terminal() && !stdin.once());
        stdin.resize(rustix::termios::Winsize {
            ws_row: 40,
            ws_col: 120,
            ws_xpixel: 0,
            ws_ypixel: 0,
        });
        let slave = prepared.slave.expect("slave");
        let size = rustix::termios::tcgetwinsize(&slave).expect("size");
        assert_eq!((size.ws_row, size.ws_col), (40, 120));
        assert!(stdin.write(b"hi\n").await);
        let output = pipe::Receiver::from_owned_fd_unchecked(prepared.output.expect("master"))
            .expect("register");
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while !seen.ends_with(b"hi\r\n") && tokio::time::Instant::now() < deadline {
            let _ = tokio::time::timeout(std::time::Duration::from_millis(100), output.readable())
                .await;
            let mut buf = [0u8; 64];
            if let Ok(n) = output.try_read(&mut buf) {
                seen.extend_from_slice(&buf[..n]);
            }
        }
        assert!(seen.ends_with(b"hi\r\n"), "echo: {seen:?}");
    }
}
