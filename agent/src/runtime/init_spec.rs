//! What the agent tells the container's intermediate process: a plain, serialisable
//! description of one container process. Built by the pod module, read by [`super::init`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A bind mount into the container's rootfs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BindMount {
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub destination: String,
    pub readonly: bool,
}

/// The process a container (or an exec into it) runs, and with which identity.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ProcessSpec {
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// Capability names ("CAP_CHOWN", ...) kept in the bounding set, and effective for root.
    pub capabilities: Vec<String>,
    pub no_new_privs: bool,
    /// The RuntimeDefault seccomp profile (`super::seccomp`), installed with the identity.
    #[serde(default)]
    pub seccomp_default: bool,
}

/// The container's stdin: `/dev/null`, a FIFO whose write end the agent holds
/// (`stdin: true`), or the slave of a pty whose master the agent holds (`tty: true`), which is
/// then its stdout and stderr too, and its controlling terminal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub enum ContainerInput {
    #[default]
    Null,
    Fifo(PathBuf),
    Terminal(PathBuf),
}

/// Everything needed to create one container process.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InitSpec {
    pub id: String,
    /// Unpacked image layers, bottom first.
    pub lower_dirs: Vec<PathBuf>,
    pub upper_dir: PathBuf,
    pub work_dir: PathBuf,
    /// Where the overlay is mounted (inside the container's own mount namespace only).
    pub rootfs: PathBuf,
    pub readonly_rootfs: bool,
    /// A privileged container: /sys writable, nothing of /proc masked, the node's devices.
    #[serde(default)]
    pub privileged: bool,
    /// The node's device nodes for its /dev (privileged only).
    #[serde(default)]
    pub host_devices: Vec<super::devices::HostDevice>,
    /// Namespace files of the pod sandbox to join: ("net" | "ipc" | "uts", path). A kind not
    /// listed is the agent's own (hostIPC, hostNetwork without `--node-netns`).
    pub namespaces: Vec<(String, PathBuf)>,
    /// Stay in the agent's PID namespace (hostPID) instead of unsharing one: the workload is
    /// then not PID 1, so it is made a child subreaper to keep its orphans as PID 1 would.
    #[serde(default)]
    pub host_pid: bool,
    /// Join this PID namespace (`/proc/PID/ns/pid` of an ephemeral container's target)
    /// instead of making one; the workload is then not PID 1 either.
    #[serde(default)]
    pub pid_namespace: Option<PathBuf>,
    /// cgroup v1 `tasks` files the intermediate writes "0" into (moving just itself, which
    /// needs no global lock).
    pub cgroup_tasks: Vec<PathBuf>,
    /// The cgroup v2 directory PID 1 is created in (CLONE_INTO_CGROUP).
    pub cgroup_v2_dir: Option<PathBuf>,
    pub process: ProcessSpec,
    pub stdout_fifo: PathBuf,
    pub stderr_fifo: PathBuf,
    /// What the container reads on stdin (and, with a terminal, writes to).
    #[serde(default)]
    pub input: ContainerInput,
    pub mounts: Vec<BindMount>,
    /// The mount namespace the container's own is cut from ([`super::mount_template`]): the
    /// intermediate enters it after taking detached copies of the bind-mount sources, so the
    /// container's namespace is a copy of a small table, not of the host's. `None`: the
    /// agent's own namespace is copied.
    #[serde(default)]
    pub mount_template: Option<PathBuf>,
}

/// runc's default capability set (the one Docker and containerd give a container).
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Paths hidden from the container like runc's defaults (files get /dev/null, dirs a ro tmpfs).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths made read-only like runc's defaults.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];
