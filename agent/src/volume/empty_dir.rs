//! `emptyDir`: a directory under the pod's directory (the node's disk), or with `medium:
//! Memory` a tmpfs mounted there on the host side, sized by `sizeLimit`, else by the pod's
//! memory limit (kubelet's rule); its pages are charged to the memory cgroup of the container
//! that writes them. Mode 0777 like kubelet's. Idempotent.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nix::mount::{mount, MsFlags};

use super::host_mounts::is_mount_point;
use super::VolumeError;
use crate::spec::EmptyDirVolumeSource;

pub(super) fn set_up(
    dir: &Path,
    source: &EmptyDirVolumeSource,
    pod_memory_limit: Option<u64>,
) -> Result<(), VolumeError> {
    std::fs::create_dir_all(dir).map_err(|e| VolumeError::io("mkdir", dir, e))?;
    if source.is_memory() && !is_mount_point(dir)? {
        let size = match &source.size_limit {
            Some(q) => Some(q.bytes().map_err(|e| VolumeError::SetUp {
                volume: String::new(),
                message: format!("sizeLimit: {e}"),
            })?),
            None => pod_memory_limit,
        };
        mount_tmpfs(dir, size, 0o777)?;
    }
    let mode = std::fs::Permissions::from_mode(0o777);
    std::fs::set_permissions(dir, mode).map_err(|e| VolumeError::io("chmod", dir, e))
}

/// Room for a pod's /etc files (hosts with its hostAliases, hostname, resolv.conf).
const POD_FILES_BYTES: u64 = 1 << 20;

/// Makes `dir` a small tmpfs of its own, unless it is one already, for the pod's /etc files.
/// Each container bind-mounts them, and the kernel's bind of a file scans every mount on the
/// filesystem holding it (`has_locked_children`): on the agent's disk those are the mounts of
/// every pod of the node — the binds of a thousand-pod burst grew quadratically — on this
/// tmpfs there are none. The pod's teardown unmounts it with its volumes.
pub fn mount_pod_files_dir(dir: &Path) -> Result<(), VolumeError> {
    std::fs::create_dir_all(dir).map_err(|e| VolumeError::io("mkdir", dir, e))?;
    if super::host_mounts::is_mount_point(dir)? {
        return Ok(());
    }
    mount_tmpfs(dir, Some(POD_FILES_BYTES), 0o755)
}

/// Mounts a tmpfs of `size` bytes (the kernel's default, half the RAM, when `None`) on `dir`.
pub(super) fn mount_tmpfs(dir: &Path, size: Option<u64>, mode: u32) -> Result<(), VolumeError> {
    let mut opts = format!("mode={mode:o}");
    if let Some(size) = size {
        opts.push_str(&format!(",size={size}"));
    }
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        flags,
        Some(opts.as_str()),
    )
    .map_err(|source| VolumeError::Mount {
        call: "mount tmpfs on",
        path: dir.to_path_buf(),
        source,
    })
}
