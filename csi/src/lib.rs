//! CSI for bosun.
//!
//! - [`proto`]: the CSI v1 messages and the Identity/Controller/Node clients and servers,
//!   generated at build time from `proto/csi.proto` (a transcription of the CSI spec's wire
//!   format) with tonic and prost.
//! - [`client`]: what the agent (a CSI node plugin client) and the control process (the
//!   external-provisioner's and external-resizer's job) call on a driver's unix socket.
//! - [`local`]: `bosun-csi-local`, bosun's own driver: file-backed ext4 volumes on loop devices.

pub mod client;
pub mod local;

/// The generated CSI v1 types (`csi.v1`), clients and servers.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("csi.v1");
}

/// The topology key of `bosun-csi-local`: a volume is accessible from the one node whose id
/// (the driver's `--node-id`) is the value.
pub const TOPOLOGY_NODE_KEY: &str = "topology.bosun.dev/node";
