//! The facts a Node reports about its machine: cpu and memory (the machine's, bounded by the
//! limits of the agent's cgroup root, v2 or v1), ephemeral storage (the filesystem of the
//! agent's root), kernel, OS image and architecture. Read once at start; a fact that cannot be
//! read is logged and reported as zero or "unknown" rather than invented.

use std::path::Path;

use crate::pod::NodeContext;
use crate::runtime::cgroup::CgroupLayout;

/// Pods per node by default (kubelet's `maxPods` default; `--max-pods`).
pub const MAX_PODS: u32 = 110;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub cpus: u64,
    pub memory_bytes: u64,
    pub ephemeral_storage_bytes: u64,
    pub kernel_version: String,
    pub os_image: String,
    pub architecture: String,
    pub machine_id: String,
    pub boot_id: String,
}

impl Machine {
    pub fn detect(ctx: &NodeContext) -> Machine {
        let fs = Path::new("/sys/fs/cgroup");
        let root = &ctx.config.cgroup_root;
        let (cpu_limit, memory_limit) = match ctx.cgroups.setup {
            CgroupLayout::Unified => {
                let dir = fs.join(root);
                (
                    read(&dir.join("cpu.max")).and_then(|s| cpu_max(&s)),
                    read(&dir.join("memory.max")).and_then(|s| s.trim().parse().ok()),
                )
            }
            _ => {
                let quota = read(&fs.join("cpu").join(root).join("cpu.cfs_quota_us"));
                let period = read(&fs.join("cpu").join(root).join("cpu.cfs_period_us"));
                let memory = fs.join("memory").join(root).join("memory.limit_in_bytes");
                (
                    quota
                        .zip(period)
                        .and_then(|(q, p)| cpu_max(&format!("{} {}", q.trim(), p.trim()))),
                    read(&memory).and_then(|s| s.trim().parse().ok()),
                )
            }
        };
        let mut cpus = std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(0);
        if let Some(limit) = cpu_limit {
            cpus = cpus.min(limit.max(1));
        }
        let mut memory_bytes = read(Path::new("/proc/meminfo"))
            .and_then(|s| mem_total(&s))
            .unwrap_or(0);
        if let Some(limit) = memory_limit {
            memory_bytes = memory_bytes.min(limit);
        }
        // fsblkcnt_t and c_ulong are u64 here but not on every target.
        #[allow(clippy::unnecessary_cast)]
        let ephemeral_storage_bytes = match nix::sys::statvfs::statvfs(&ctx.config.root) {
            Ok(s) => s.blocks() as u64 * s.fragment_size() as u64,
            Err(e) => {
                tracing::warn!(root = %ctx.config.root.display(), error = %e, "cannot size the root filesystem");
                0
            }
        };
        let kernel_version = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unknown".into());
        let os_image = read(Path::new("/etc/os-release"))
            .and_then(|s| pretty_name(&s))
            .unwrap_or_else(|| "Linux".into());
        Machine {
            cpus,
            memory_bytes,
            ephemeral_storage_bytes,
            kernel_version,
            os_image,
            architecture: go_arch(std::env::consts::ARCH).to_string(),
            machine_id: read(Path::new("/etc/machine-id"))
                .unwrap_or_default()
                .trim()
                .to_string(),
            boot_id: read(Path::new("/proc/sys/kernel/random/boot_id"))
                .unwrap_or_default()
                .trim()
                .to_string(),
        }
    }
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Whole cpus allowed by a cgroup v2 `cpu.max` (`max 100000` = unlimited; v1's quota and
/// period read the same, with -1 for unlimited), rounded up.
fn cpu_max(text: &str) -> Option<u64> {
    let mut parts = text.split_whitespace();
    let quota: u64 = parts.next()?.parse().ok()?;
    let period: u64 = parts.next()?.parse().ok()?;
    (period > 0).then(|| quota.div_ceil(period))
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn pretty_name(os_release: &str) -> Option<String> {
    let line = os_release.lines().find(|l| l.starts_with("PRETTY_NAME="))?;
    Some(line["PRETTY_NAME=".len()..].trim_matches('"').to_string())
}

/// Go's GOARCH names, which Kubernetes reports.
fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_and_proc_files_are_read_as_kubernetes_reports_them() {
        assert_eq!(cpu_max("max 100000\n"), None);
        assert_eq!(cpu_max("150000 100000\n"), Some(2));
        assert_eq!(cpu_max("-1 100000"), None);
        assert_eq!(
            mem_total("MemTotal:  2048 kB\nMemFree: 1 kB\n"),
            Some(2048 * 1024)
        );
        let os = "NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            pretty_name(os).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(go_arch("x86_64"), "amd64");
    }
}
