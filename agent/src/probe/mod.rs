//! Liveness, readiness and startup probes for every container of the node, run by one
//! scheduler task ([`scheduler`]). Network probes dial the pod IP (or 127.0.0.1 inside the pod's
//! netns); exec probes run inside the container. Verdicts reach the pod worker as callbacks;
//! this module never restarts or kills anything itself.

pub mod exec;
pub mod grpc;
pub mod net;
pub mod scheduler;
pub mod spawner;
pub mod spec;
pub mod state;
pub mod tls;

pub use scheduler::{
    ContainerProbes, ProbeHandle, ProbeScheduler, ProbeSpec, ProbeTargets, ProbeUpdate,
};
pub use state::ProbeKind;
