//! What the dataplane needs from the host before it can load: a bpffs at /sys/fs/bpf, the
//! v2 cgroup its hooks attach to, and the blackhole route for the service CIDR in the node
//! netns (unhandled VIPs die on the node instead of leaking to a gateway; installed through
//! `network::node`, which refuses to shadow a route the node has). Idempotent.

use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

use super::DataplaneStartError;
use crate::network::node::{blackhole, install_routes, NodeRoute};
use crate::runtime::cgroup::CgroupLayout;

/// Where bpffs is mounted on every Linux host.
pub const BPFFS: &str = "/sys/fs/bpf";
const CGROUP_FS: &str = "/sys/fs/cgroup";
const HYBRID_UNIFIED: &str = "/sys/fs/cgroup/unified";

/// Mounts bpffs at /sys/fs/bpf when nothing is mounted there and `dir` lives below it.
pub fn ensure_bpffs(dir: &Path) -> Result<(), DataplaneStartError> {
    if !dir.starts_with(BPFFS) {
        return Ok(());
    }
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mounted = mounts
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(BPFFS) && l.split(' ').nth(2) == Some("bpf"));
    if mounted {
        return Ok(());
    }
    tracing::info!(path = BPFFS, "mounting bpffs");
    nix::mount::mount(
        Some("bpf"),
        BPFFS,
        Some("bpf"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| DataplaneStartError::Bpffs {
        path: BPFFS.into(),
        source: e.into(),
    })
}

/// The v2 cgroup the hooks attach to: the pods' cgroup root in the v2 hierarchy, or the
/// hierarchy's root itself when host processes should get ClusterIPs too. Created if missing.
pub fn attach_cgroup(
    layout: CgroupLayout,
    cgroup_root: &str,
    host: bool,
) -> Result<PathBuf, DataplaneStartError> {
    let v2 = match layout {
        CgroupLayout::Hybrid => Path::new(HYBRID_UNIFIED),
        CgroupLayout::Unified => Path::new(CGROUP_FS),
        CgroupLayout::Legacy => return Err(DataplaneStartError::NoCgroupV2),
    };
    if host {
        return Ok(v2.to_path_buf());
    }
    let dir = v2.join(cgroup_root.trim_start_matches('/'));
    std::fs::create_dir_all(&dir).map_err(|e| DataplaneStartError::Cgroup {
        path: dir.clone(),
        source: e,
    })?;
    Ok(dir)
}

/// Installs the blackhole route for `service_cidr` in the node netns (`None`: our own), unless
/// it would shadow a route the node already has; kept when the agent stops (`bosun-agent
/// network teardown` removes it).
pub fn blackhole_service_cidr(
    node_netns: Option<&Path>,
    service_cidr: Ipv4Net,
) -> Result<(), DataplaneStartError> {
    let route = NodeRoute {
        route: blackhole(service_cidr),
        purpose: "service CIDR",
    };
    let err = |message: String| DataplaneStartError::Route {
        cidr: service_cidr,
        message,
    };
    crate::sys::netns_exec::in_netns(node_netns, || install_routes(&[route]))
        .map_err(|e| err(format!("entering the node netns: {e}")))?
        .map_err(|e| err(e.to_string()))?;
    Ok(())
}
