//! The harness of the driver tests: a sandbox directory unique to the process and call (the
//! driver's socket, state and every staging/target path live in it), the real
//! `bosun-csi-local` binary started on it, and a cleanup on drop — also after a panic — that
//! unmounts whatever is mounted under the sandbox, detaches the loop devices backed by files
//! in it, and removes it. Nothing outside the sandbox is touched.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bosun_csi::client::Client;
use nix::mount::{umount2, MntFlags};

/// A directory under the system temp dir, cleaned up on drop.
pub struct Sandbox {
    pub root: PathBuf,
}

impl Sandbox {
    pub fn new(prefix: &str) -> Sandbox {
        let root =
            std::env::temp_dir().join(bosun_test_support::unique(&format!("bosun-csi-{prefix}-")));
        std::fs::create_dir_all(&root).expect("create sandbox");
        Sandbox { root }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Mount points under the sandbox, innermost (latest) first.
    pub fn mounts(&self) -> Vec<PathBuf> {
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<PathBuf> = text
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(|p| PathBuf::from(p.replace("\\040", " ")))
            .filter(|p| p.starts_with(&self.root))
            .collect();
        points.reverse();
        points
    }

    /// Loop devices whose backing file is under the sandbox.
    pub fn loop_devices(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir("/sys/block") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("loop"))
            .filter_map(|e| {
                let backing = std::fs::read_to_string(e.path().join("loop/backing_file")).ok()?;
                Path::new(backing.trim())
                    .starts_with(&self.root)
                    .then(|| Path::new("/dev").join(e.file_name()))
            })
            .collect()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for _ in 0..3 {
            for point in self.mounts() {
                if umount2(&point, MntFlags::empty()).is_err() {
                    let _ = umount2(&point, MntFlags::MNT_DETACH);
                }
            }
        }
        for device in self.loop_devices() {
            let _ = Command::new("losetup").arg("-d").arg(&device).status();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A running `bosun-csi-local`, killed on drop.
pub struct Driver {
    /// The driver's stderr, printed when a test fails.
    pub log: PathBuf,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub node_id: String,
    child: Child,
}

impl Driver {
    /// Starts the driver on `sandbox/csi.sock` with state in `sandbox/state` and waits until it
    /// answers Probe.
    pub async fn start(sandbox: &Sandbox, node_id: &str) -> (Driver, Client) {
        let socket = sandbox.path("csi.sock");
        let state_dir = sandbox.path("state");
        let log = sandbox.path("driver.log");
        let child = spawn(&socket, node_id, &state_dir, &log);
        let mut driver = Driver {
            log,
            socket,
            state_dir,
            node_id: node_id.to_owned(),
            child,
        };
        let client = driver.connect().await;
        (driver, client)
    }

    /// Connects once the socket answers Probe (bounded wait).
    pub async fn connect(&mut self) -> Client {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("bosun-csi-local exited early: {status}");
            }
            if let Ok(mut client) = Client::connect(&self.socket).await {
                if client.probe().await.unwrap_or(false) {
                    return client;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "bosun-csi-local did not answer on {} in time",
                self.socket.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILLs the driver (no chance to clean anything) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills and starts the driver again on the same socket and state.
    pub async fn restart(&mut self) -> Client {
        self.kill();
        self.child = spawn(&self.socket, &self.node_id, &self.state_dir, &self.log);
        self.connect().await
    }
}

fn spawn(socket: &Path, node_id: &str, state_dir: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open the driver log");
    Command::new(env!("CARGO_BIN_EXE_bosun-csi-local"))
        .arg("--endpoint")
        .arg(format!("unix://{}", socket.display()))
        .args(["--node-id", node_id])
        .arg("--state-dir")
        .arg(state_dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn bosun-csi-local")
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- bosun-csi-local log ---\n{log}");
        }
    }
}

/// Writes `bytes` of non-zero data to a new file `path` in 1 MiB chunks and syncs it.
pub fn write_file(path: &Path, bytes: usize) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    let chunk = vec![0xa5u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        file.write_all(&chunk[..n])?;
        left -= n;
    }
    file.sync_all()
}

pub const MIB: i64 = 1 << 20;
