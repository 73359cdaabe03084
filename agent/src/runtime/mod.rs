//! The container runtime: pod sandboxes (held namespaces), container cgroups, and the
//! two-step process creation (an intermediate that joins the pod and forks PID 1, then exits).
//! Knows nothing of Kubernetes objects: the pod module translates specs into [`InitSpec`]s.

pub mod cgroup;
pub mod cgroup_resources;
pub mod cgroup_stats;
mod cgroup_v1;
pub mod devices;
pub mod error;
pub mod exec;
pub mod exec_spawner;
pub mod exec_stream;
pub mod init;
pub mod init_mounts;
pub mod init_spec;
pub mod leftovers;
pub mod mount_template;
pub mod pod_init;
pub mod sandbox;
pub mod seccomp;
pub mod spawn;
pub mod trash;

pub use error::RuntimeError;
pub use init_spec::{BindMount, ContainerInput, InitSpec, ProcessSpec};
