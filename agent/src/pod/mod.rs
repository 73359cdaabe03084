//! Pods on this node: the per-pod worker (lifecycle, hooks, restarts, teardown), status, logs, and
//! the records that let a restarted agent adopt its containers. Translates Kubernetes specs into
//! runtime calls; never calls the kernel directly.

mod adopt;
pub mod backoff;
mod config_refs;
pub mod container_spec;
pub mod container_stdin;
mod deadline;
mod env;
mod ephemeral;
mod event;
mod hooks;
mod image_pull;
pub mod logs;
mod network;
pub mod node;
pub mod persist;
mod phase;
mod probes;
mod running;
mod start;
pub mod status;
mod stop;
mod usage;
mod volumes;
pub mod worker;

pub use container_stdin::{ContainerStdin, Stdins};
pub use node::{NodeConfig, NodeContext, PodDnsSettings};
pub use probes::{exec_target, exec_target_by_name};
pub use status::{ContainerState, ContainerStatus, PodPhase, PodStatus, PodWarning};
pub use usage::resource_source;
pub use worker::{PodCommand, PodWorker};

/// The node's IPs: `--node-ip`, else the node netns's first global address (blocking).
pub fn node_ips(ctx: &NodeContext) -> Result<Vec<std::net::IpAddr>, String> {
    network::node_ips(ctx)
}
