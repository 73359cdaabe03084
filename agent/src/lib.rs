//! bosun-agent: the node agent. It turns Kubernetes Pod manifests into real containers made
//! directly with namespaces and cgroups (no containerd, no shim per pod), supervises them from
//! one event loop and keeps their logs; its dataplane programs Services into pinned eBPF maps.
//! It never touches the host outside its `--root`, `--run-dir`, `--cgroup-root` and
//! `--bpffs-dir` (plus the node routes its network needs).
//!
//! `unsafe` is denied everywhere but in [`sys`].

#![deny(unsafe_code)]

pub mod accept;
pub mod cluster;
pub mod config_source;
pub mod daemon;
pub mod dataplane;
pub mod dns;
pub mod foreground;
pub mod go_duration;
pub mod image;
pub mod kubelet_api;
pub mod metrics;
pub mod network;
pub mod node_events;
pub mod pod;
pub mod probe;
pub mod runtime;
pub mod service_env;
pub mod spdy;
pub mod spec;
#[allow(unsafe_code)]
pub mod sys;
pub mod token_source;
pub mod volume;
