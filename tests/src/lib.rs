//! The harness of bosun's end-to-end tests: a real `bosun-control` on a loopback port
//! ([`Control`]), real `bosun-agent --kubeconfig` processes whose node network is a netns the
//! test made, with no route out ([`Node`]), and the real `kubectl` ([`Control::kubectl`]). The
//! binaries are the ones `cargo test --workspace` (or `cargo build`) put next to the test
//! executable. Everything is torn down on drop: processes, pod cgroups, mounts, netns,
//! directories. Needs root, `kubectl`, and the test images of `cargo xtask images`
//! (`BOSUN_TEST_IMAGES`).

pub mod control;
pub mod fabric;
pub mod node;
pub mod pods;

pub use bosun_test_support::{unique, wait_until};
pub use control::Control;
pub use fabric::Fabric;
pub use node::{Node, NodeOptions};
pub use pods::{wait_logged, wait_node_ready};

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

/// Control and node `n` on a fabric the host is plugged into (so control reaches the node's
/// kubelet API), the node Ready.
pub fn reachable_node(n: u8) -> (Control, Fabric, Node) {
    let control = Control::start();
    let fabric = Fabric::with_host_link();
    let options = NodeOptions {
        fabric: Some(&fabric),
        dataplane: false,
        static_pods: false,
    };
    let mut node = Node::with(n, &control, options);
    node.start_agent();
    wait_until("the node is Ready", Duration::from_secs(30), || {
        control.node_ready(&node.name)
    });
    (control, fabric, node)
}

/// The directory of the workspace's binaries (`target/<profile>/`), next to the test
/// executable (`target/<profile>/deps/`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/..")
        .to_owned()
}

/// The workspace binary `name`, with a clear message when it was not built.
pub fn binary(name: &str, package: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} missing: run `cargo build -p {package}` (or test the whole workspace) first",
        path.display()
    );
    path
}

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
        "end-to-end tests need root: run them with `cargo xtask test` as root"
    );
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The lines of the test's mount table whose mount point or source is under `base`.
pub fn mounts_under(base: &Path) -> Vec<String> {
    let base = base.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&base))
        .map(str::to_owned)
        .collect()
}
