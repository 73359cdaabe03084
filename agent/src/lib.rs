//! bosun-agent: the node agent. It turns Kubernetes Pod manifests into real containers made
//! directly with namespaces and cgroups (no containerd, no shim per pod), supervises them from
//! one event loop and keeps their logs. It never touches the host outside its `--root`,
//! `--run-dir` and `--cgroup-root`.

pub mod daemon;
pub mod foreground;
pub mod image;
pub mod metrics;
pub mod network;
pub mod pod;
pub mod probe;
pub mod runtime;
pub mod spec;
pub mod sys;
