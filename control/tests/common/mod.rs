//! A `bosun-control` process on a free loopback port with a temporary data dir, and the real
//! `kubectl` pointed at it through the kubeconfig the server wrote. Killed on drop.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const CONTROL: &str = env!("CARGO_BIN_EXE_bosun-control");

pub struct Control {
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Control {
    /// Starts the server and waits (bounded) for the kubeconfig it writes once listening.
    pub fn start() -> Control {
        let dir = tempfile::tempdir().expect("temp dir");
        let child = Command::new(CONTROL)
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--secure-port", "0", "--log-level", "debug"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("control.log")).expect("log"))
            .spawn()
            .expect("spawn bosun-control");
        let control = Control { dir, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !control.kubeconfig().exists() {
            assert!(
                Instant::now() < deadline,
                "no kubeconfig after 20 s; log:\n{}",
                control.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        control
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

    /// Runs the real kubectl with the admin kubeconfig.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        kubectl_with(&self.kubeconfig(), args)
    }
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
