//! bosun-control's side of the kubelet API (kube-apiserver's `pkg/kubelet/client`): which
//! address of a Node to dial (`address.rs`, `--kubelet-preferred-address-types`) and the
//! HTTPS client presenting the `kube-apiserver-kubelet-client` certificate our CA issued
//! (`client.rs`). Used by the pod subresources that proxy to the node (`pods/log`).

pub mod address;
pub mod client;

pub use address::{kubelet_location, AddressTypes};
pub use client::{KubeletClient, KubeletError};
