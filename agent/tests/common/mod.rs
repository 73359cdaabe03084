//! Test harness for the agent's kernel tests: each test gets its own root, run dir and cgroup
//! root and bpffs pin dir (so tests run in parallel without sharing kernel state), the test
//! images imported, and helpers to run pods in the foreground or drive a daemon. Everything
//! is cleaned on drop.
//! These tests need root and a kernel with namespaces, overlayfs and cgroups; they use the
//! real `bosun-agent` binary and real containers.

#![allow(dead_code)]

pub mod registry;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const AGENT: &str = env!("CARGO_BIN_EXE_bosun-agent");

/// Where `cargo xtask images` put the test images.
pub fn images_dir() -> PathBuf {
    if let Ok(d) = std::env::var("BOSUN_TEST_IMAGES") {
        return PathBuf::from(d);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/images")
}

pub fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "kernel tests need root: run them with `cargo xtask test` as root"
    );
}

/// One agent "node" with private directories.
pub struct Node {
    pub name: String,
    pub base: PathBuf,
    pub root: PathBuf,
    pub run_dir: PathBuf,
    pub manifests: PathBuf,
    pub cgroup_root: String,
    /// The dataplane's pins (used when the agent runs with --network cni or --dataplane ebpf).
    pub bpffs: PathBuf,
    pub extra_flags: Vec<String>,
    daemon: Option<Child>,
}

impl Node {
    pub fn new(name: &str) -> Node {
        require_root();
        let base = std::env::temp_dir().join(format!("bosun-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let node = Node {
            name: name.to_string(),
            root: base.join("root"),
            run_dir: base.join("run"),
            manifests: base.join("manifests"),
            cgroup_root: format!("bosun-test-{name}-{}", std::process::id()),
            bpffs: PathBuf::from(format!(
                "/sys/fs/bpf/bosun-test-{name}-{}",
                std::process::id()
            )),
            base,
            extra_flags: Vec::new(),
            daemon: None,
        };
        std::fs::create_dir_all(&node.manifests).expect("create manifests dir");
        for img in ["busybox", "busybox-entry"] {
            let out = node
                .cmd()
                .args(["image", "import"])
                .arg(images_dir().join(img))
                .output()
                .expect("run image import");
            assert!(
                out.status.success(),
                "import {img}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        node
    }

    pub fn with_flags(mut self, flags: &[&str]) -> Node {
        self.extra_flags = flags.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(AGENT);
        c.arg("--root")
            .arg(&self.root)
            .arg("--run-dir")
            .arg(&self.run_dir);
        // No CNI by default: pods get a private netns with only lo, and the host's network is
        // never touched. Network tests run agents with --node-netns.
        if !self.extra_flags.iter().any(|f| f == "--network") {
            c.arg("--network").arg("none");
        }
        if !self.extra_flags.iter().any(|f| f == "--bpffs-dir") {
            c.arg("--bpffs-dir").arg(&self.bpffs);
        }
        c.arg("--cgroup-root")
            .arg(&self.cgroup_root)
            .arg("--log-level")
            .arg("info");
        c.args(&self.extra_flags);
        c
    }

    /// `bosun-agent run` of a pod given as YAML.
    pub fn run_pod(&self, yaml: &str) -> Output {
        let file = self.base.join(format!("run-{}.yaml", unique()));
        std::fs::write(&file, yaml).expect("write pod");
        self.cmd()
            .arg("run")
            .arg(&file)
            .output()
            .expect("run bosun-agent run")
    }

    /// Starts `bosun-agent run` without waiting.
    pub fn spawn_run(&self, yaml: &str) -> Child {
        let file = self.base.join(format!("run-{}.yaml", unique()));
        std::fs::write(&file, yaml).expect("write pod");
        self.cmd()
            .arg("run")
            .arg(&file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn bosun-agent run")
    }

    pub fn start_daemon(&mut self) {
        assert!(self.daemon.is_none(), "daemon already running");
        let log = std::fs::File::create(self.base.join(format!("agent-{}.log", unique())))
            .expect("log file");
        let child = self
            .cmd()
            .arg("--manifests")
            .arg(&self.manifests)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn daemon");
        self.daemon = Some(child);
        wait_until("agent socket", Duration::from_secs(10), || {
            self.run_dir.join("agent.sock").exists() && self.try_ps().is_some()
        });
    }

    /// Stops the daemon like a service manager would (SIGTERM); pods keep running.
    pub fn stop_daemon(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::SIGTERM,
            );
            let _ = child.wait();
            let _ = std::fs::remove_file(self.run_dir.join("agent.sock"));
        }
    }

    /// Kills the daemon with SIGKILL (a crash); pods keep running.
    pub fn kill_daemon(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(self.run_dir.join("agent.sock"));
        }
    }

    /// All agent log files' text (for error-message assertions).
    pub fn daemon_log(&self) -> String {
        let mut out = String::new();
        for e in std::fs::read_dir(&self.base).expect("base dir").flatten() {
            if e.file_name().to_string_lossy().starts_with("agent-") {
                out.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        out
    }

    pub fn apply(&self, file: &str, yaml: &str) {
        let tmp = self.manifests.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, yaml).expect("write manifest");
        std::fs::rename(tmp, self.manifests.join(file)).expect("rename manifest");
    }

    pub fn remove(&self, file: &str) {
        std::fs::remove_file(self.manifests.join(file)).expect("remove manifest");
    }

    pub fn try_ps(&self) -> Option<Vec<serde_json::Value>> {
        let out = self.cmd().args(["ps", "--json"]).output().ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    pub fn ps(&self) -> Vec<serde_json::Value> {
        self.try_ps().expect("bosun-agent ps")
    }

    pub fn pod(&self, name: &str) -> Option<serde_json::Value> {
        self.ps().into_iter().find(|p| p["name"] == name)
    }

    /// Waits for `pred` on the pod's status; returns the status that satisfied it.
    pub fn wait_pod(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let pod = self.pod(name);
            if let Some(p) = &pod {
                if pred(p) {
                    return p.clone();
                }
            }
            if Instant::now() > deadline {
                panic!("pod {name}: timed out waiting for {what}; last status: {pod:#?}\nagent log:\n{}", self.daemon_log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn wait_gone(&self, name: &str, timeout: Duration) {
        wait_until(&format!("pod {name} gone"), timeout, || {
            self.pod(name).is_none()
        });
    }

    pub fn logs(&self, args: &[&str]) -> String {
        let out = self
            .cmd()
            .arg("logs")
            .args(args)
            .output()
            .expect("run logs");
        assert!(
            out.status.success(),
            "logs {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn try_logs(&self, args: &[&str]) -> Option<String> {
        let out = self.cmd().arg("logs").args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// cgroup directories of this node's pods, in every hierarchy.
    pub fn pod_cgroups(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for h in std::fs::read_dir("/sys/fs/cgroup")
            .expect("cgroupfs")
            .flatten()
        {
            let root = h.path().join(&self.cgroup_root);
            collect_pod_dirs(&root, &mut found);
        }
        found
    }

    /// Mounts under this node's directories.
    pub fn mounts(&self) -> Vec<String> {
        let base = self.base.display().to_string();
        std::fs::read_to_string("/proc/self/mounts")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.split(' ').nth(1).is_some_and(|m| m.starts_with(&base)))
            .map(str::to_string)
            .collect()
    }
}

fn collect_pod_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.path().is_dir() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("pod") {
                out.push(e.path());
            } else {
                collect_pod_dirs(&e.path(), out);
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Delete every pod through the agent, then stop it; force-clean whatever is left.
        if self.daemon.is_some() {
            for e in std::fs::read_dir(&self.manifests)
                .into_iter()
                .flatten()
                .flatten()
            {
                let _ = std::fs::remove_file(e.path());
            }
            let deadline = Instant::now() + Duration::from_secs(40);
            while Instant::now() < deadline && self.try_ps().is_some_and(|p| !p.is_empty()) {
                std::thread::sleep(Duration::from_millis(200));
            }
            self.stop_daemon();
        }
        // Links first (unpin_all's order), so the hooks leave the cgroups before they go.
        let _ = bosun_ebpf::unpin_all(&self.bpffs);
        force_clean(self);
    }
}

fn force_clean(node: &Node) {
    // Every process anywhere under the test's cgroup root (containers live in child cgroups of
    // their pod's, e.g. a pod the agent refused to touch because its record was unreadable).
    for h in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        kill_tree(&h.path().join(&node.cgroup_root));
    }
    std::thread::sleep(Duration::from_millis(100));
    for h in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        rmdir_tree(&h.path().join(&node.cgroup_root));
    }
    for m in node.mounts() {
        if let Some(target) = m.split(' ').nth(1) {
            let _ = nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let _ = std::fs::remove_dir_all(&node.base);
}

/// SIGKILLs every process in the cgroup at `dir` and its descendants.
fn kill_tree(dir: &Path) {
    if let Ok(pids) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in pids.lines().filter_map(|p| p.parse::<i32>().ok()) {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
    }
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.path().is_dir() {
            kill_tree(&entry.path());
        }
    }
}

fn rmdir_tree(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.path().is_dir() {
            rmdir_tree(&e.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A single-container pod manifest (1 s grace period, so cleanup is quick).
pub fn pod(name: &str, restart: &str, image: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: {restart}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {image}\n{extra}"
    )
}

pub const BUSYBOX: &str = "bosun.test/busybox:1";

/// `bosun-agent run` in the background, its stdout read line by line as it comes.
pub struct ForegroundRun {
    pub child: std::process::Child,
    pub lines: std::sync::mpsc::Receiver<String>,
    pub stdout: String,
}

impl ForegroundRun {
    pub fn spawn(node: &Node, yaml: &str) -> ForegroundRun {
        use std::io::BufRead;
        let mut child = node.spawn_run(yaml);
        let out = child.stdout.take().expect("piped stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ForegroundRun {
            child,
            lines,
            stdout: String::new(),
        }
    }

    /// Waits until the pod printed `want` (so its signal handlers are installed).
    pub fn wait_line(&mut self, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stdout.push_str(&line);
                    self.stdout.push('\n');
                    if line == want {
                        return;
                    }
                }
                Err(e) => panic!("no line {want:?} from the pod ({e}); got {:?}", self.stdout),
            }
        }
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal).expect("signal run");
    }

    pub fn wait_output(mut self) -> std::process::Output {
        let mut out = wait_output(&mut self.child);
        // The reader thread ends at EOF, once the process is gone.
        for line in self.lines.iter() {
            self.stdout.push_str(&line);
            self.stdout.push('\n');
        }
        out.stdout = self.stdout.into_bytes();
        out
    }
}

pub fn wait_output(child: &mut std::process::Child) -> std::process::Output {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut s) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut s, &mut err);
            }
            panic!("bosun-agent run did not exit; its log:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = String::new();
    let mut err = String::new();
    use std::io::Read;
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    std::process::Output {
        status: child.wait().expect("wait"),
        stdout: out.into_bytes(),
        stderr: err.into_bytes(),
    }
}
