//! A `bosun-control` process on a free loopback port with a temporary data dir, and the real
//! `kubectl` pointed at it through the kubeconfig the server wrote. Killed on drop.

#![allow(dead_code)]

pub mod kubelets;

// Not every test crate polls.
#[allow(unused_imports)]
pub use bosun_test_support::wait_until;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const CONTROL: &str = env!("CARGO_BIN_EXE_bosun-control");

pub struct Control {
    pub dir: tempfile::TempDir,
    child: Child,
    /// Extra flags, kept across restarts.
    flags: Vec<String>,
}

impl Control {
    /// Starts the server and waits (bounded) for the kubeconfig it writes once listening.
    pub fn start() -> Control {
        Control::start_with(&[])
    }

    /// Starts the server with extra flags.
    pub fn start_with(flags: &[&str]) -> Control {
        let dir = tempfile::tempdir().expect("temp dir");
        let flags: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
        let child = spawn(dir.path(), &flags);
        let control = Control { dir, child, flags };
        control.wait_ready();
        control
    }

    /// Stops the server and starts a new one on the same data directory (a new port).
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::remove_file(self.kubeconfig()).expect("remove the old kubeconfig");
        self.child = spawn(self.dir.path(), &self.flags);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let control = self;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !control.kubeconfig().exists() {
            assert!(
                Instant::now() < deadline,
                "no kubeconfig after 20 s; log:\n{}",
                control.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("control.log")).unwrap_or_default()
    }

    /// The server URL from the kubeconfig.
    pub fn server(&self) -> String {
        let text = std::fs::read_to_string(self.kubeconfig()).expect("kubeconfig");
        let config: serde_yaml::Value = serde_yaml::from_str(&text).expect("kubeconfig YAML");
        config["clusters"][0]["cluster"]["server"]
            .as_str()
            .expect("server")
            .to_owned()
    }

    /// A kubeconfig for node `name` (a CA-signed client certificate for `system:node:<name>`),
    /// made by `bosun-control kubeconfig`.
    pub fn node_kubeconfig(&self, name: &str) -> PathBuf {
        let out = self.dir.path().join(format!("node-{name}.kubeconfig"));
        let status = Command::new(CONTROL)
            .arg("kubeconfig")
            .arg("--data-dir")
            .arg(self.dir.path())
            .args(["--node", name])
            .arg("--out")
            .arg(&out)
            .stdout(Stdio::null())
            .status()
            .expect("run bosun-control kubeconfig");
        assert!(status.success(), "bosun-control kubeconfig --node {name}");
        out
    }

    /// A kubeconfig `<name>.kubeconfig` that authenticates with `token` only (a copy of the
    /// bootstrap kubeconfig carrying it instead; no client certificate).
    pub fn token_kubeconfig(&self, name: &str, token: &str) -> PathBuf {
        let text =
            std::fs::read_to_string(self.bootstrap_kubeconfig()).expect("bootstrap kubeconfig");
        let mut config: serde_yaml::Value = serde_yaml::from_str(&text).expect("YAML");
        config["users"][0]["user"]["token"] = token.into();
        let path = self.dir.path().join(format!("{name}.kubeconfig"));
        std::fs::write(&path, serde_yaml::to_string(&config).expect("YAML")).expect("write");
        path
    }

    /// The bootstrap kubeconfig the server wrote (a bootstrap token).
    pub fn bootstrap_kubeconfig(&self) -> PathBuf {
        self.dir.path().join("bootstrap.kubeconfig")
    }

    /// Runs the real kubectl with the admin kubeconfig.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        kubectl_with(&self.kubeconfig(), args)
    }

    /// `kubectl create -f` of `object` (written to `<name>.json`) with `-o json`.
    pub fn create_json(&self, name: &str, object: &serde_json::Value) -> Output {
        let file = self.dir.path().join(format!("{name}.json"));
        std::fs::write(&file, object.to_string()).expect("write");
        self.kubectl(&[
            "create",
            "-f",
            file.to_str().unwrap_or_default(),
            "-o",
            "json",
        ])
    }

    /// Runs the real kubectl with the admin kubeconfig and extra environment (`EDITOR`).
    pub fn kubectl_env(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        let kubeconfig = self.kubeconfig();
        Command::new("kubectl")
            .env("KUBECONFIG", &kubeconfig)
            .env("HOME", self.dir.path())
            .envs(env.iter().copied())
            .arg("--request-timeout=10s")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl (cargo xtask setup installs it)")
    }
}

fn spawn(dir: &Path, flags: &[String]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("control.log"))
        .expect("log");
    Command::new(CONTROL)
        .arg("--data-dir")
        .arg(dir)
        .args(["--secure-port", "0", "--log-level", "debug"])
        .args(flags)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn bosun-control")
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs kubectl with `kubeconfig` and a bounded request timeout.
pub fn kubectl_with(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", kubeconfig.parent().unwrap_or(Path::new("/tmp")))
        .arg("--request-timeout=10s")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run kubectl (cargo xtask setup installs it)")
}

/// A long-running kubectl (a watch) whose stdout lines arrive on a channel; killed on drop.
pub struct Streaming {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Streaming {
    pub fn spawn(kubeconfig: &Path, args: &[&str]) -> Streaming {
        let mut child = Command::new("kubectl")
            .env("KUBECONFIG", kubeconfig)
            .env("HOME", kubeconfig.parent().unwrap_or(Path::new("/tmp")))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run kubectl");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Streaming { child, lines }
    }

    /// Waits (bounded) for a line containing `text`; returns every line seen until then.
    pub fn wait_for(&self, text: &str, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(text);
                    seen.push(line);
                    if found {
                        return seen;
                    }
                }
                Err(_) => panic!("no line with {text:?} within {within:?}; saw {seen:#?}"),
            }
        }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts kubectl succeeded and returns its stdout.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "kubectl failed: {}\n{}",
        stderr(&out),
        stdout(&out)
    );
    stdout(&out)
}

/// The column names of a table kubectl printed (its first line).
pub fn header(table: &str) -> Vec<&str> {
    table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect()
}
