//! Helpers for the agent's network tests: throwaway node netns (`ip netns`, deleted on
//! drop), running agent code on a thread inside a node netns, pinging from a pod sandbox,
//! and locating the bosun-cni binary built by `cargo build --workspace`. Everything stays
//! inside namespaces the test made.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A node: a named netns with `node_ip` on lo and forwarding on.
pub struct NodeNetns {
    pub name: String,
}

impl NodeNetns {
    pub fn new(node_ip: &str) -> Self {
        let name = unique("bsnta-");
        run("ip", &["netns", "add", &name]);
        let n = NodeNetns { name };
        n.ip(&["link", "set", "lo", "up"]);
        n.ip(&["addr", "add", &format!("{node_ip}/32"), "dev", "lo"]);
        n
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    pub fn ip(&self, args: &[&str]) -> Output {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Runs `f` on a thread inside this netns (so plugins it spawns run here too).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        in_netns(&self.path(), f)
    }
}

impl Drop for NodeNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Runs `f` on a fresh thread that has entered the netns at `path`.
pub fn in_netns<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> T {
    let ns = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("netns thread")
    })
}

/// One ping from the netns at `netns` to `dst`.
pub fn ping_from(netns: &Path, dst: &str) -> bool {
    Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["/bin/busybox", "ping", "-c1", "-W2", dst])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The directory holding the bosun-cni binary (`target/<profile>/`).
pub fn bosun_cni_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/..")
        .to_owned();
    assert!(
        dir.join("bosun-cni").is_file(),
        "{} missing: run `cargo build -p bosun-cni` (or test the whole workspace) first",
        dir.join("bosun-cni").display()
    );
    dir
}
