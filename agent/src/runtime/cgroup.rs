//! Pod and container cgroups (layout detection and v2 through `libcgroups`, v1 settings in
//! [`super::cgroup_v1`]), under the agent's `--cgroup-root`:
//! `<root>/pod<uid>` (Guaranteed) or `<root>/<burstable|besteffort>/pod<uid>`, and one child per
//! container. Works on v1, hybrid (v1 controllers + a v2 hierarchy that only serves BPF hooks:
//! containers are placed there too, never with controllers enabled) and unified v2.
//! Must never touch a cgroup outside the agent's root.

use std::path::{Path, PathBuf};

use libcgroups::common::{get_cgroup_setup, CgroupManager, CgroupSetup, ControllerOpt};
use nix::unistd::Pid;
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
};

use super::cgroup_resources::{CgroupResources, CPU_PERIOD_US};
use super::devices::device_rules;
use super::RuntimeError;

const CGROUP_FS: &str = "/sys/fs/cgroup";
const HYBRID_UNIFIED: &str = "/sys/fs/cgroup/unified";
/// The host's cgroup layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupLayout {
    /// Controllers in v1 hierarchies only.
    Legacy,
    /// Controllers in v1, plus a v2 hierarchy at /sys/fs/cgroup/unified (BPF hooks only).
    Hybrid,
    /// Everything in one v2 hierarchy.
    Unified,
}

/// Which cgroup layout this host has, found once at agent start.
#[derive(Debug, Clone)]
pub struct CgroupHost {
    pub setup: CgroupLayout,
    /// Mount points of the v1 hierarchies (empty on unified hosts).
    v1_mounts: Vec<PathBuf>,
    /// The agent's `--cgroup-root` (relative to each hierarchy's root): the only cgroups whose
    /// own settings the agent may change.
    owned_root: PathBuf,
}

impl CgroupHost {
    /// The layout, for an agent whose cgroups all live below `owned_root`.
    pub fn detect(owned_root: &Path) -> Result<Self, RuntimeError> {
        let setup = get_cgroup_setup().map_err(|e| RuntimeError::Cgroup {
            path: CGROUP_FS.into(),
            message: format!("detecting cgroup layout: {e}"),
        })?;
        let setup = match setup {
            CgroupSetup::Legacy => CgroupLayout::Legacy,
            CgroupSetup::Hybrid => CgroupLayout::Hybrid,
            CgroupSetup::Unified => CgroupLayout::Unified,
        };
        let v1_mounts = match setup {
            CgroupLayout::Unified => Vec::new(),
            _ => libcgroups::v1::util::list_supported_mount_points()
                .map(|m| m.into_values().collect())
                .map_err(|e| RuntimeError::Cgroup {
                    path: CGROUP_FS.into(),
                    message: format!("listing v1 hierarchies: {e}"),
                })?,
        };
        Ok(CgroupHost {
            setup,
            v1_mounts,
            owned_root: owned_root.to_path_buf(),
        })
    }

    /// The v2 hierarchy containers must also join when controllers live in v1 (hybrid).
    fn hybrid_unified(&self) -> Option<&'static Path> {
        match self.setup {
            CgroupLayout::Hybrid => Some(Path::new(HYBRID_UNIFIED)),
            _ => None,
        }
    }

    /// Creates (or reopens) the cgroup at `rel` (relative to the hierarchy roots) in every
    /// hierarchy and applies `res` through libcgroups.
    pub fn create(&self, rel: &Path, res: &CgroupResources) -> Result<CgroupHandle, RuntimeError> {
        self.create_dirs(rel)?;
        let handle = self.open(rel);
        match self.setup {
            CgroupLayout::Unified => apply_v2(rel, res)?,
            _ => super::cgroup_v1::apply(&self.v1_mounts, rel, res)?,
        }
        Ok(handle)
    }

    /// The directories of cgroup `rel` in every hierarchy.
    fn dirs(&self, rel: &Path) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = match self.setup {
            CgroupLayout::Unified => vec![Path::new(CGROUP_FS).join(rel)],
            _ => self.v1_mounts.iter().map(|m| m.join(rel)).collect(),
        };
        if let Some(u) = self.hybrid_unified() {
            dirs.push(u.join(rel));
        }
        dirs
    }

    /// Creates the cgroup directory in every hierarchy (libcgroups' v1 `apply` expects them),
    /// with the v1 cpuset filled from the parent so processes may join. The cpuset parents get
    /// `cgroup.clone_children` first, so the kernel copies the parent's cpus and mems into a
    /// new cgroup: writing `cpuset.cpus` rebuilds the scheduler domains, a cost paid under a
    /// global lock by every pod otherwise.
    fn create_dirs(&self, rel: &Path) -> Result<(), RuntimeError> {
        if let Some(cpuset) = self.v1_mounts.iter().find(|m| m.ends_with("cpuset")) {
            if rel.starts_with(&self.owned_root) {
                clone_children_on_existing(cpuset, &self.owned_root, rel)?;
            }
        }
        for d in self.dirs(rel) {
            std::fs::create_dir_all(&d).map_err(|e| RuntimeError::io("mkdir", &d, e))?;
        }
        if let Some(cpuset) = self.v1_mounts.iter().find(|m| m.ends_with("cpuset")) {
            let mut dir = cpuset.clone();
            for comp in rel.components() {
                let parent = dir.clone();
                dir.push(comp);
                for file in ["cpuset.cpus", "cpuset.mems"] {
                    let current = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
                    if current.trim().is_empty() {
                        let value = std::fs::read_to_string(parent.join(file))
                            .map_err(|e| RuntimeError::io("read", parent.join(file), e))?;
                        std::fs::write(dir.join(file), value.trim())
                            .map_err(|e| RuntimeError::io("write", dir.join(file), e))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// A handle on the cgroup at `rel` (it may or may not exist).
    pub fn open(&self, rel: &Path) -> CgroupHandle {
        let v2_dir = match self.setup {
            CgroupLayout::Unified => Some(Path::new(CGROUP_FS).join(rel)),
            CgroupLayout::Hybrid => Some(Path::new(HYBRID_UNIFIED).join(rel)),
            CgroupLayout::Legacy => None,
        };
        CgroupHandle {
            rel: rel.to_path_buf(),
            dirs: self.dirs(rel),
            v1_dirs: self.v1_mounts.iter().map(|m| m.join(rel)).collect(),
            v2_dir,
            setup: self.setup,
        }
    }
}

/// Sets `cgroup.clone_children` on the deepest existing cgroup between the agent's root
/// `owned` and `rel` in the cpuset hierarchy; new cgroups below it inherit the flag.
fn clone_children_on_existing(cpuset: &Path, owned: &Path, rel: &Path) -> Result<(), RuntimeError> {
    let mut deepest = None;
    let mut dir = cpuset.to_path_buf();
    for (depth, comp) in rel.components().enumerate() {
        dir.push(comp);
        if !dir.is_dir() {
            break;
        }
        if depth + 1 >= owned.components().count() {
            deepest = Some(dir.clone());
        }
    }
    let Some(dir) = deepest else {
        return Ok(());
    };
    let file = dir.join("cgroup.clone_children");
    if std::fs::read_to_string(&file).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(&file, "1").map_err(|e| RuntimeError::io("write", &file, e))
}

/// One cgroup the agent owns, in every hierarchy.
#[derive(Debug, Clone)]
pub struct CgroupHandle {
    pub rel: PathBuf,
    dirs: Vec<PathBuf>,
    v1_dirs: Vec<PathBuf>,
    v2_dir: Option<PathBuf>,
    setup: CgroupLayout,
}

impl CgroupHandle {
    /// Moves `pid` into this cgroup in every hierarchy.
    pub fn add_task(&self, pid: i32) -> Result<(), RuntimeError> {
        for f in self.procs_files() {
            std::fs::write(&f, pid.to_string()).map_err(|e| RuntimeError::io("write", &f, e))?;
        }
        Ok(())
    }

    /// The v1 `tasks` files: a single-threaded process joins by writing "0" to each, which
    /// (unlike cgroup.procs) needs no global lock and no RCU grace period.
    pub fn v1_task_files(&self) -> Vec<PathBuf> {
        self.v1_dirs.iter().map(|d| d.join("tasks")).collect()
    }

    /// The v2 directory children are created in with CLONE_INTO_CGROUP.
    pub fn v2_dir(&self) -> Option<PathBuf> {
        self.v2_dir.clone()
    }

    /// The cgroup.procs file of every hierarchy.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// How many times the kernel's OOM killer fired in this cgroup.
    pub fn oom_kills(&self) -> u64 {
        let file = match self.setup {
            CgroupLayout::Unified => Path::new(CGROUP_FS).join(&self.rel).join("memory.events"),
            _ => Path::new(CGROUP_FS)
                .join("memory")
                .join(&self.rel)
                .join("memory.oom_control"),
        };
        std::fs::read_to_string(file)
            .ok()
            .and_then(|text| {
                text.lines().find_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    (k == "oom_kill").then(|| v.trim().parse().ok()).flatten()
                })
            })
            .unwrap_or(0)
    }

    /// CPU time and memory working set of the cgroup (`cgroup_stats`).
    pub fn usage(&self) -> Result<super::cgroup_stats::Usage, super::cgroup_stats::UsageError> {
        use super::cgroup_stats::{read_v1, read_v2};
        match self.setup {
            CgroupLayout::Unified => read_v2(&Path::new(CGROUP_FS).join(&self.rel)),
            _ => {
                let with = |file: &str| {
                    (self.v1_dirs.iter())
                        .find(|d| d.join(file).exists())
                        .cloned()
                        .unwrap_or_else(|| {
                            let controller = file.split('.').next().unwrap_or(file);
                            Path::new(CGROUP_FS).join(controller).join(&self.rel)
                        })
                };
                read_v1(&with("cpuacct.usage"), &with("memory.usage_in_bytes"))
            }
        }
    }

    /// Pids currently in the cgroup.
    pub fn pids(&self) -> Vec<i32> {
        let mut out: Vec<i32> = Vec::new();
        for f in self.procs_files() {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            for pid in text.lines().filter_map(|l| l.trim().parse().ok()) {
                if !out.contains(&pid) {
                    out.push(pid);
                }
            }
        }
        out
    }

    /// Kills whatever is left inside and removes the cgroup everywhere; idempotent.
    pub fn remove(&self) -> Result<(), RuntimeError> {
        for pid in self.pids() {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
        for d in &self.dirs {
            remove_dir_retrying(d)?;
        }
        Ok(())
    }
}

fn remove_dir_retrying(dir: &Path) -> Result<(), RuntimeError> {
    for attempt in 0..50 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 49 => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Err(e) => return Err(RuntimeError::io("rmdir", dir, e)),
        }
    }
    Ok(())
}

/// Applies `res` through libcgroups' v2 manager (unified hosts).
fn apply_v2(rel: &Path, res: &CgroupResources) -> Result<(), RuntimeError> {
    let err = |message: String| RuntimeError::Cgroup {
        path: rel.to_path_buf(),
        message,
    };
    let resources = to_oci(res)?;
    let opt = ControllerOpt {
        resources: &resources,
        disable_oom_killer: false,
        oom_score_adj: None,
        freezer_state: None,
    };
    libcgroups::v2::manager::Manager::new(CGROUP_FS.into(), rel.to_path_buf())
        .map_err(|e| err(format!("opening: {e}")))?
        .apply(&opt)
        .map_err(|e| err(format!("apply: {e}")))
}

fn to_oci(res: &CgroupResources) -> Result<LinuxResources, RuntimeError> {
    let bad = |what: &str, e: String| RuntimeError::Cgroup {
        path: PathBuf::new(),
        message: format!("building {what} settings: {e}"),
    };
    let mut b = LinuxResourcesBuilder::default();
    if res.cpu_shares.is_some() || res.cpu_quota_us.is_some() {
        let mut cpu = LinuxCpuBuilder::default();
        if let Some(s) = res.cpu_shares {
            cpu = cpu.shares(s);
        }
        if let Some(q) = res.cpu_quota_us {
            cpu = cpu.quota(q).period(CPU_PERIOD_US);
        }
        b = b.cpu(cpu.build().map_err(|e| bad("cpu", e.to_string()))?);
    }
    if let Some(limit) = res.memory_limit_bytes {
        let mem = LinuxMemoryBuilder::default()
            .limit(limit)
            .build()
            .map_err(|e| bad("memory", e.to_string()))?;
        b = b.memory(mem);
    }
    if let Some(limit) = res.pids_limit {
        let pids = LinuxPidsBuilder::default()
            .limit(limit)
            .build()
            .map_err(|e| bad("pids", e.to_string()))?;
        b = b.pids(pids);
    }
    if res.restrict_devices {
        b = b.devices(device_rules());
    }
    b.build().map_err(|e| bad("resources", e.to_string()))
}
