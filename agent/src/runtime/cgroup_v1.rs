//! Resource settings on cgroup v1 hierarchies, written straight to the controller files.
//! libcgroups' v1 manager re-reads /proc/self/mountinfo once per controller each time it is
//! built (a dozen parses per cgroup), which dominated container start; the agent already knows
//! the mount points, so it writes the handful of files it sets itself, through libcgroups'
//! file helper. Unified (v2) hosts still go through libcgroups' v2 manager.

use std::path::{Path, PathBuf};

use libcgroups::common::write_cgroup_file_str;

use super::cgroup_resources::{CgroupResources, CPU_PERIOD_US};
use super::devices::device_allow_list;
use super::RuntimeError;

fn mount_of<'a>(mounts: &'a [PathBuf], controller: &str) -> Option<&'a PathBuf> {
    mounts.iter().find(|m| {
        m.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.split(',').any(|c| c == controller))
    })
}

fn write(dir: &Path, file: &str, value: &str) -> Result<(), RuntimeError> {
    write_cgroup_file_str(dir.join(file), value).map_err(|e| RuntimeError::Cgroup {
        path: dir.join(file),
        message: format!("writing {value:?}: {e}"),
    })
}

/// Applies `res` to cgroup `rel` in the v1 hierarchies mounted at `mounts`.
pub fn apply(mounts: &[PathBuf], rel: &Path, res: &CgroupResources) -> Result<(), RuntimeError> {
    if let Some(cpu) = mount_of(mounts, "cpu") {
        let dir = cpu.join(rel);
        if let Some(shares) = res.cpu_shares {
            write(&dir, "cpu.shares", &shares.to_string())?;
        }
        if let Some(quota) = res.cpu_quota_us {
            write(&dir, "cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
            write(&dir, "cpu.cfs_quota_us", &quota.to_string())?;
        }
    }
    if let (Some(mem), Some(limit)) = (mount_of(mounts, "memory"), res.memory_limit_bytes) {
        write(&mem.join(rel), "memory.limit_in_bytes", &limit.to_string())?;
    }
    if let (Some(pids), Some(limit)) = (mount_of(mounts, "pids"), res.pids_limit) {
        let value = if limit > 0 {
            limit.to_string()
        } else {
            "max".to_string()
        };
        write(&pids.join(rel), "pids.max", &value)?;
    }
    if res.restrict_devices {
        if let Some(devices) = mount_of(mounts, "devices") {
            let dir = devices.join(rel);
            write(&dir, "devices.deny", "a")?;
            for rule in device_allow_list() {
                write(&dir, "devices.allow", &rule)?;
            }
        }
    }
    Ok(())
}
