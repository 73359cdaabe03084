//! What one cgroup should limit, already translated from Kubernetes quantities: the data the
//! pod module computes and both cgroup writers (`cgroup.rs` for v2 through libcgroups,
//! `cgroup_v1.rs` for v1 files) apply. Pure data; never touches a cgroup.

/// CFS period used for CPU limits, as kubelet does.
pub const CPU_PERIOD_US: u64 = 100_000;

/// Resource settings of one cgroup, already translated from Kubernetes quantities.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupResources {
    pub cpu_shares: Option<u64>,
    pub cpu_quota_us: Option<i64>,
    pub memory_limit_bytes: Option<i64>,
    pub pids_limit: Option<i64>,
    /// Apply the default device allow list (containers yes, pods no).
    pub restrict_devices: bool,
}
