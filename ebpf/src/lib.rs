//! bosun-ebpf: ClusterIP load balancing at socket level.
//!
//! The eBPF programs are C (`src/bpf/sock_lb.c`, built by `build.rs` with clang and embedded);
//! their map layouts are defined once in `include/bosun_lb.h` and mirrored in [`layout`]
//! (checked against the header by a test). [`SockLb`] loads or adopts the pinned programs and
//! maps, attaches them to cgroups with pinned links, and programs services through a typed
//! table API. This crate never decides *which* services exist: the agent's dataplane module
//! computes desired state and diffs it against [`SockLb::services`].
//!
//! `unsafe` lives only in the private `sys` module (the crate denies it everywhere else).

#![deny(unsafe_code)]

pub mod layout;

mod error;
mod loader;
mod maglev;
mod maps;
mod service;
#[allow(unsafe_code)]
mod sys;
mod table;

pub use error::DataplaneError;
pub use loader::{unpin_all, SockLb, SOCK_LB_OBJECT};
pub use maglev::{is_prime, maglev_table};
pub use maps::MapSizes;
pub use service::{Backend, InstalledService, Protocol, ServiceCounters, ServiceKey, ServiceSpec};
