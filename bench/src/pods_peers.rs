//! The pods benchmark's peers: `crun run` and `runc run` of an OCI bundle holding the same
//! busybox image, namespaces and limits as the bosun bench pod.
//!
//! The rootfs is unpacked once with umoci and shared; each run gets its own bundle directory
//! (a config.json pointing at that rootfs) so its cgroup, `/bosun-bench-<peer>/<id>`, is its
//! own. Container state lives under the bench's work dir (`--root`), not /run.
//!
//! Debian's crun 1.8 refuses this machine's hybrid cgroup layout; it runs in a mount
//! namespace without the v2 mount ([`NoV2MountNs`]) when the v2 hierarchy holds a
//! controller. runc runs as is.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::pods_mountns::{NoV2MountNs, UNIFIED};
use xtask::util;

/// A peer runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    Crun,
    Runc,
}

impl Peer {
    pub fn name(self) -> &'static str {
        match self {
            Peer::Crun => "crun",
            Peer::Runc => "runc",
        }
    }
}

/// The prepared peers: the shared rootfs, the base config and how to start crun.
pub struct Peers {
    work: PathBuf,
    base: Value,
    crun_ns: Option<NoV2MountNs>,
    notes: Vec<String>,
}

impl Peers {
    /// Unpacks `image` (an OCI layout) under `work`, builds the base config and makes sure
    /// both runtimes run it.
    pub fn prepare(image: &Path, work: &Path) -> Result<Self> {
        let base = base_config(image, work)?;
        let mut peers = Self {
            work: work.to_owned(),
            base,
            crun_ns: None,
            notes: Vec::new(),
        };
        if NoV2MountNs::needed() {
            peers.crun_ns = Some(NoV2MountNs::start()?);
            peers.notes.push(format!(
                "crun ran in a mount namespace without {UNIFIED} (entered by setns before exec)"
            ));
        }
        peers
            .probe(Peer::Crun)
            .context("crun cannot run the bench bundle")?;
        peers
            .probe(Peer::Runc)
            .context("runc cannot run the bench bundle")?;
        Ok(peers)
    }

    /// What the output should say about how the peers were run.
    pub fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }

    /// Writes the bundle for container `id` and returns the command that runs it.
    pub fn command(&self, peer: Peer, id: &str) -> Result<Command> {
        let bundle = self.work.join("bundles").join(peer.name()).join(id);
        std::fs::create_dir_all(&bundle)
            .with_context(|| format!("creating {}", bundle.display()))?;
        let mut config = self.base.clone();
        config["linux"]["cgroupsPath"] = json!(format!("/bosun-bench-{}/{id}", peer.name()));
        let path = bundle.join("config.json");
        std::fs::write(&path, serde_json::to_vec(&config)?)
            .with_context(|| format!("writing {}", path.display()))?;
        let state = state_dir(&self.work, peer);
        let bundle = bundle.display().to_string();
        let state = state.display().to_string();
        let mut command = util::cmd(
            peer.name(),
            ["--root", &state, "run", "--bundle", &bundle, id],
        );
        if let (Peer::Crun, Some(ns)) = (peer, &self.crun_ns) {
            ns.enter_on_exec(&mut command);
        }
        Ok(command)
    }

    /// One run of the bundle, to check the runtime works before measuring it.
    fn probe(&self, peer: Peer) -> Result<()> {
        let id = format!("bosun-bench-probe-{}", peer.name());
        util::output(&mut self.command(peer, &id)?).map(drop)
    }
}

/// Unpacks `image` (an OCI layout of bosun.test/busybox:1) under `work` with umoci and
/// returns `crun spec`'s config edited to run `true` from it with the bench pod's namespaces
/// and limits.
pub fn base_config(image: &Path, work: &Path) -> Result<Value> {
    let unpacked = work.join("peer-image");
    let spec_dir = work.join("peer-spec");
    std::fs::create_dir_all(&spec_dir)?;
    let image_ref = format!("{}:bosun.test/busybox:1", image.display());
    util::output(
        util::cmd("umoci", ["unpack", "--image"])
            .args([&image_ref])
            .arg(&unpacked),
    )?;
    util::output(util::cmd("crun", ["spec"]).current_dir(&spec_dir))?;
    let path = spec_dir.join("config.json");
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut base: Value = serde_json::from_slice(&text).context("parsing `crun spec`")?;
    edit_config(&mut base, &unpacked.join("rootfs"))?;
    Ok(base)
}

/// Sets the process, rootfs, namespaces and limits the bench pod has.
fn edit_config(config: &mut Value, rootfs: &Path) -> Result<()> {
    if !rootfs.join("bin").exists() {
        bail!("umoci left no rootfs at {}", rootfs.display());
    }
    config["process"]["args"] = json!(["true"]);
    config["process"]["terminal"] = json!(false);
    config["root"] = json!({"path": rootfs, "readonly": false});
    let linux = &mut config["linux"];
    linux["namespaces"] = json!(
        ["pid", "mount", "network", "ipc", "uts", "cgroup"].map(|kind| json!({ "type": kind }))
    );
    linux["resources"]["memory"] = json!({"limit": 64 * 1024 * 1024});
    linux["resources"]["cpu"] = json!({"quota": 50_000, "period": 100_000});
    Ok(())
}

/// The `--root` state directory of `peer` under the work dir.
pub fn state_dir(work: &Path, peer: Peer) -> PathBuf {
    work.join("state").join(peer.name())
}
