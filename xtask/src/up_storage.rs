//! Storage on `up`'s cluster: a `bosun-csi-local` driver per node (its socket where the node's
//! agent discovers it, `<node root>/plugins/local.csi.bosun.dev/csi.sock`, its volume files
//! under `<ROOT>/csi-local/<node>`; in the host's mount namespace, like the agent, so its
//! mounts are the agent's), the default StorageClass `local` of `examples/up/storage.yaml`,
//! and a check that a claim naming no class gets it and is Bound once a pod uses it
//! (`examples/up/data.yaml`). For `down`: the loop devices backed by files under `ROOT`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::up::{self, UpNode, ROOT};
use crate::util;

/// The driver's name (its plugin directory).
pub const DRIVER: &str = "local.csi.bosun.dev";
const BOUND_LIMIT: Duration = Duration::from_secs(90);

/// Where node `node`'s driver keeps its volume files.
pub fn state_dir(node: &UpNode) -> PathBuf {
    Path::new(ROOT).join("csi-local").join(node.name())
}

/// `bosun-csi-local` for `node`.
pub fn driver(node: &UpNode) -> Command {
    let socket = node.root().join("plugins").join(DRIVER).join("csi.sock");
    let mut c = Command::new(up::release_bin("bosun-csi-local"));
    c.arg("--endpoint")
        .arg(format!("unix://{}", socket.display()));
    c.args(["--node-id", &node.name()]);
    c.arg("--state-dir").arg(state_dir(node));
    c
}

/// Makes the plugin directory and starts the node's driver (before its agent, which then
/// registers it on the node's CSINode).
pub fn start_driver(node: &UpNode) -> Result<()> {
    let plugin_dir = node.root().join("plugins").join(DRIVER);
    std::fs::create_dir_all(&plugin_dir)?;
    let log = up::up_dir().join(format!("csi-local-{}.log", node.name()));
    up::spawn(
        &format!("csi-local-{}", node.name()),
        &mut driver(node),
        &log,
    )
}

/// Applies the default StorageClass.
pub fn default_class() -> Result<()> {
    println!("\n==> the default StorageClass `local` (bosun-csi-local)");
    let file = util::workspace_root().join("examples/up/storage.yaml");
    util::run(up::kubectl().arg("apply").arg("-f").arg(file))
}

/// Applies `examples/up/data.yaml` and waits (bounded) until its claim, which names no class,
/// has the default class and is Bound.
pub fn check_claim() -> Result<()> {
    println!("\n==> a claim of the default class, used by a pod");
    let file = util::workspace_root().join("examples/up/data.yaml");
    util::run(up::kubectl().arg("apply").arg("-f").arg(file))?;
    let deadline = Instant::now() + BOUND_LIMIT;
    loop {
        let out = up::kubectl()
            .args(["get", "pvc", "data", "-o"])
            .arg("jsonpath={.spec.storageClassName} {.status.phase}")
            .output();
        let text = out
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if text == "local Bound" {
            println!("claim `data`: class local, Bound");
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "claim `data` is {text:?} after {BOUND_LIMIT:?}, not `local Bound`; see the logs in {}",
                up::up_dir().display()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The loop devices (`/dev/loopN`) whose backing file is under `root`, from the text of each
/// `/sys/block/loopN/loop/backing_file`.
pub fn loops_backed_under(root: &Path, backing: &[(String, String)]) -> Vec<String> {
    backing
        .iter()
        .filter(|(_, file)| Path::new(file.trim().trim_end_matches(" (deleted)")).starts_with(root))
        .map(|(dev, _)| format!("/dev/{dev}"))
        .collect()
}

/// The loop devices attached now whose backing file is under `root`.
pub fn attached_loops_under(root: &Path) -> Vec<String> {
    let backing: Vec<(String, String)> = std::fs::read_dir("/sys/block")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let dev = e.file_name().to_string_lossy().into_owned();
            let file = std::fs::read_to_string(e.path().join("loop/backing_file")).ok()?;
            dev.starts_with("loop").then_some((dev, file))
        })
        .collect();
    loops_backed_under(root, &backing)
}

/// Detaches the loop devices of `up`'s volume files (after their mounts are gone).
pub fn detach_loops() {
    for dev in attached_loops_under(Path::new(ROOT)) {
        if util::succeeds(&mut util::cmd("losetup", ["-d", dev.as_str()])) {
            println!("detached {dev}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loops_backed_by_ups_files_are_detached() {
        let backing = [
            (
                "loop0".to_string(),
                format!("{ROOT}/csi-local/node-1/v1.img\n"),
            ),
            ("loop1".to_string(), "/var/lib/other/disk.img\n".to_string()),
            (
                "loop2".to_string(),
                format!("{ROOT}/csi-local/node-2/v2.img (deleted)\n"),
            ),
            ("loop3".to_string(), format!("{ROOT}-other/x.img\n")),
        ];
        assert_eq!(
            loops_backed_under(Path::new(ROOT), &backing),
            ["/dev/loop0", "/dev/loop2"]
        );
    }
}
