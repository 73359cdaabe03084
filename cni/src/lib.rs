//! bosun-cni: a CNI 1.0/1.1 plugin (ADD, DEL, CHECK, VERSION, GC, STATUS) that gives a pod a
//! routed veth — host side a /32 route to the pod IP, pod side a default route via the
//! link-local gateway 169.254.1.1 answered by the host veth (proxy ARP plus a permanent
//! neighbour entry, as Calico does) — and its IPv4 address from a built-in, file-locked IPAM.
//!
//! The library is the whole plugin; `main.rs` only reads stdin and the environment. It must
//! never panic on any input, never touch an interface it did not name (`bsn` prefix), and
//! report every failure as a CNI error object.

#![forbid(unsafe_code)]

pub mod ipam;
pub mod link;
pub mod names;
pub mod netns;
pub mod plugin;
pub mod spec;

pub use plugin::run;
pub use spec::CniError;
