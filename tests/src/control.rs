//! A `bosun-control` process with a temporary data dir on a fixed loopback port (fixed so that
//! a restart keeps the address the agents' kubeconfigs name), and `kubectl` pointed at it.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{binary, stderr, stdout};

pub struct Control {
    pub dir: tempfile::TempDir,
    pub port: u16,
    flags: Vec<String>,
    child: Option<Child>,
}

impl Control {
    /// Starts the server and waits (bounded) until it answers.
    pub fn start() -> Control {
        Control::start_with(&[])
    }

    /// Starts the server with extra flags (`--node-monitor-grace-period 3s`).
    pub fn start_with(flags: &[&str]) -> Control {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut control = Control {
            dir,
            port,
            flags: flags.iter().map(|f| f.to_string()).collect(),
            child: None,
        };
        control.spawn();
        control
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("control.log"))
            .expect("control log");
        let child = Command::new(binary("bosun-control", "bosun-control"))
            .arg("--data-dir")
            .arg(self.dir.path())
            .args(["--bind-address", "127.0.0.1"])
            .args(["--secure-port", &self.port.to_string()])
            .args(&self.flags)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn bosun-control");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.kubeconfig().exists()
                && self.kubectl(&["get", "--raw", "/readyz"]).status.success()
            {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none(),
                "bosun-control exited ({exited:?}); log:\n{}",
                self.log()
            );
            assert!(
                Instant::now() < deadline,
                "bosun-control not serving after 20 s; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server (the agents lose it).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same data dir and port.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "bosun-control is running");
        self.spawn();
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    /// The bootstrap kubeconfig the server wrote (a bootstrap token in `system:bootstrappers`).
    pub fn bootstrap_kubeconfig(&self) -> PathBuf {
        self.dir.path().join("bootstrap.kubeconfig")
    }

    /// A kubeconfig for node `name` (`system:node:<name>` in `system:nodes`, held to the node
    /// authorization rule), written by `bosun-control kubeconfig`.
    pub fn node_kubeconfig(&self, name: &str) -> PathBuf {
        let out = self.dir.path().join(format!("{name}.kubeconfig"));
        let status = Command::new(binary("bosun-control", "bosun-control"))
            .arg("kubeconfig")
            .arg("--data-dir")
            .arg(self.dir.path())
            .args(["--node", name])
            .arg("--out")
            .arg(&out)
            .stdout(Stdio::null())
            .status()
            .expect("run bosun-control kubeconfig");
        assert!(
            status.success(),
            "bosun-control kubeconfig --node {name} failed"
        );
        out
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("control.log")).unwrap_or_default()
    }

    /// Runs the real kubectl with the admin kubeconfig.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.dir.path())
            .arg("--request-timeout=10s")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl (cargo xtask setup installs it)")
    }

    /// The real kubectl with the admin kubeconfig, started in the background (stdout and
    /// stderr piped), for commands that wait (`kubectl delete`).
    pub fn spawn_kubectl(&self, args: &[&str]) -> std::process::Child {
        Command::new("kubectl")
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.dir.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl")
    }

    /// kubectl given `input` on a stdin that stays open until it exits (a command that attaches
    /// reads its input once attached, and a container whose stdin is not `stdinOnce` never
    /// sees its end), waited for at most `limit`.
    pub fn kubectl_with_input(&self, args: &[&str], input: &[u8], limit: Duration) -> Output {
        let mut child = Command::new("kubectl")
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.dir.path())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        let mut stdin = child.stdin.take().expect("kubectl's stdin");
        stdin.write_all(input).expect("write kubectl's input");
        let mut ended = false;
        crate::wait_until(&format!("kubectl {args:?} ends"), limit, || {
            ended = child.try_wait().ok().flatten().is_some();
            ended
        });
        drop(stdin);
        child.wait_with_output().expect("kubectl's output")
    }

    /// Asserts that `out`, kubectl's for `what`, succeeded (else fails with its output and the
    /// logs' tails); its stdout and stderr.
    pub fn succeeded(&self, what: &str, out: &Output, node: &crate::Node) -> (String, String) {
        let (o, e) = (stdout(out), stderr(out));
        assert!(
            out.status.success(),
            "kubectl {what}: {:?}\n{o}\n{e}{}",
            out.status,
            self.logs_tail(node)
        );
        (o, e)
    }

    /// The last 40 lines of the control's log and of `node`'s agent log, for a failure message.
    pub fn logs_tail(&self, node: &crate::Node) -> String {
        let tail = |t: String| {
            let lines: Vec<&str> = t.lines().filter(|l| !l.contains("phase")).collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        format!(
            "\n--- control log ---\n{}\n--- agent log ---\n{}",
            tail(self.log()),
            tail(node.log())
        )
    }

    /// kubectl that must succeed; its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            stderr(&out),
            stdout(&out)
        );
        stdout(&out)
    }

    /// `kubectl apply -f -` of `yaml`.
    pub fn apply(&self, yaml: &str) -> String {
        use std::io::Write;
        let mut child = Command::new("kubectl")
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.dir.path())
            .args(["--request-timeout=10s", "apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl apply");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(yaml.as_bytes())
            .expect("write the manifest to kubectl");
        let out = child.wait_with_output().expect("kubectl apply");
        assert!(
            out.status.success(),
            "kubectl apply failed: {}",
            stderr(&out)
        );
        stdout(&out)
    }

    /// Whether node `name` reports Ready=True.
    pub fn node_ready(&self, name: &str) -> bool {
        self.get_json(&["node", name]).is_some_and(|n| {
            n["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
    }

    /// An object as JSON (`kubectl get ... -o json`), None when kubectl fails.
    pub fn get_json(&self, args: &[&str]) -> Option<serde_json::Value> {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        let out = self.kubectl(&all);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port free right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}
