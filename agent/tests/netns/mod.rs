//! Helpers for the agent's network tests: throwaway node netns (`ip netns`, deleted on
//! drop), running agent code on a thread inside a node netns, pinging from a pod sandbox,
//! and locating the bosun-cni binary built by `cargo build --workspace`. Everything stays
//! inside namespaces the test made.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

// Not every test file uses every helper.
#[allow(unused_imports)]
pub use bosun_test_support::{run, unique, Netns};

/// A node: a netns (from `bosun-test-support`) with `node_ip` on lo.
pub fn node_netns(node_ip: &str) -> Netns {
    let node = Netns::new("bsnta-");
    node.ip(&["addr", "add", &format!("{node_ip}/32"), "dev", "lo"]);
    node
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
