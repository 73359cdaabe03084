//! Joining a cluster (`bosun-agent --kubeconfig FILE`), like a kubelet, through the Kubernetes
//! API with the `kube` client: registers this node's Node and keeps its status posted
//! (`node.rs`, facts from `machine.rs`), renews its Lease (`lease.rs`), watches the pods bound
//! to it into the desired set the daemon runs (`pods.rs`), reports their status through the
//! `status` subresource (`status.rs`, pure mapping in `pod_status.rs`), and deletes a pod being
//! deleted once the daemon has stopped it (`finalize.rs`), and shows each static pod of the
//! manifest directory as a mirror pod (`mirror.rs`). With a pod network it
//! routes to the other nodes' pod CIDRs (`peers.rs`); with a dataplane it watches the
//! Services and EndpointSlices the dataplane programs (`services.rs`). The pods themselves run
//! on the daemon's pod workers, beside the static pods of the manifest directory. With a
//! bootstrap kubeconfig the node first gets its own client certificate (`bootstrap.rs`).
//! Pods' PersistentVolumeClaims are read through `claims.rs`; the CSI drivers of the node are
//! found and recorded on its CSINode (`csi_drivers.rs`), and their volumes provisioned,
//! deleted and expanded (`provisioner.rs`); pods' service-account tokens requested and cached
//! in `tokens.rs`; the Services of containers' environments followed in `service_env.rs`. While
//! the API is unreachable every loop retries and nothing on the node changes.

pub mod api_client;
pub mod bootstrap;
pub mod claims;
pub mod config_objects;
pub mod csi_drivers;
pub mod events;
pub mod finalize;
pub mod lease;
pub mod machine;
pub mod mirror;
pub mod mirror_pod;
pub mod node;
pub mod peers;
pub mod pod_events;
pub mod pod_status;
pub mod pods;
pub mod provisioner;
pub mod service_env;
pub mod services;
pub mod status;
pub mod tokens;

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::pod::{NodeContext, PodStatus};

pub use finalize::NodePods;
pub use mirror::{StaticPod, StaticPods};
pub use pods::{ApiPods, BoundPod};
pub use services::{ServiceWatch, ServicesSnapshot};

/// The statuses of the pods the node runs (the daemon's pod table).
pub type PodStatuses = Arc<dyn Fn() -> Vec<PodStatus> + Send + Sync>;

/// How often the node's status is checked and posted when changed (kubelet's
/// nodeStatusUpdateFrequency).
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// kubelet's `nodeStatusReportFrequency`: an unchanged status is still posted this often.
pub const STATUS_REPORT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("reading the kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        source: kube::config::KubeconfigError,
    },
    #[error("building the API client from {path}: {source}")]
    Client {
        path: String,
        source: api_client::ClientError,
    },
}

/// What the node tells the cluster about itself.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    pub name: String,
    pub ip: IpAddr,
    pub pod_cidr: ipnet::IpNet,
    /// The pods the node takes (`--max-pods`), reported as its `pods` capacity.
    pub max_pods: u32,
    /// The kubelet API's port, reported as `daemonEndpoints.kubeletEndpoint.Port` (0: none).
    pub kubelet_port: u16,
    /// The node Lease's `leaseDurationSeconds`; it is renewed every quarter of it.
    pub lease_duration_seconds: i32,
}

/// A client for the cluster of `kubeconfig` (its current context), and the cluster's CA
/// certificates (DER) from it, which the kubelet API verifies the API server's client
/// certificate with.
pub async fn client(kubeconfig: &Path) -> Result<(kube::Client, Vec<Vec<u8>>), JoinError> {
    // rustls picks the process-wide provider; the workspace builds only ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let path = kubeconfig.display().to_string();
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).map_err(|source| {
        JoinError::Kubeconfig {
            path: path.clone(),
            source,
        }
    })?;
    let options = kube::config::KubeConfigOptions::default();
    let config = kube::Config::from_custom_kubeconfig(kc, &options)
        .await
        .map_err(|source| JoinError::Kubeconfig {
            path: path.clone(),
            source,
        })?;
    let ca = config.root_cert.clone().unwrap_or_default();
    let client =
        api_client::http2_client(config).map_err(|source| JoinError::Client { path, source })?;
    Ok((client, ca))
}

/// Starts the node's loops on the current runtime: Node registration and status, Lease,
/// the pod watch (into `api_pods`), pod status reports (from `statuses`) and the final delete
/// of terminating pods no longer `on_node`, and the mirror pods of `static_pods`.
pub fn spawn(
    client: kube::Client,
    node: NodeIdentity,
    ctx: Arc<NodeContext>,
    api_pods: Arc<Mutex<ApiPods>>,
    statuses: PodStatuses,
    on_node: NodePods,
    static_pods: StaticPods,
) {
    let facts = machine::Machine::detect(&ctx);
    tokio::spawn(node::run(client.clone(), node.clone(), facts));
    tokio::spawn(lease::run(client.clone(), node.clone()));
    let drivers: csi_drivers::Drivers = Arc::default();
    tokio::spawn(csi_drivers::run(
        client.clone(),
        node.name.clone(),
        ctx.config.csi_plugin_dir(),
        drivers.clone(),
    ));
    tokio::spawn(provisioner::run(
        client.clone(),
        node.name.clone(),
        drivers,
        ctx.clone(),
    ));
    if ctx.network.is_some() {
        let netns = ctx.config.node_netns.clone();
        tokio::spawn(peers::run(
            client.clone(),
            node.name.clone(),
            node.pod_cidr,
            netns,
        ));
    }
    tokio::spawn(pods::run(
        client.clone(),
        node.name.clone(),
        api_pods.clone(),
    ));
    tokio::spawn(finalize::run(client.clone(), api_pods.clone(), on_node));
    tokio::spawn(mirror::run(
        client.clone(),
        node.name.clone(),
        api_pods.clone(),
        static_pods.clone(),
    ));
    tokio::spawn(status::run(
        client,
        node,
        ctx,
        api_pods,
        statuses,
        static_pods,
    ));
}

/// Now as RFC 3339 with seconds (`metav1.Time`).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Now as RFC 3339 with microseconds (`metav1.MicroTime`).
pub fn now_micro() -> String {
    humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string()
}
