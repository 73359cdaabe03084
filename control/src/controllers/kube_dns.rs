//! The `kube-dns` Service in `kube-system`, as a kubeadm cluster has it: ClusterIP the tenth
//! address of the service range, ports `dns` 53/UDP, `dns-tcp` 53/TCP and `metrics` 9153/TCP,
//! selector and labels of CoreDNS (`k8s-app: kube-dns`, `kubernetes.io/cluster-service`,
//! `kubernetes.io/name: CoreDNS`, which `kubectl cluster-info` lists). No pod backs it: every
//! node's agent answers the address itself (node-local DNS, see ARCHITECTURE.md). Created at
//! start and checked every 10 s; one deleted is put back, a changed one is left as it is.

use std::time::Duration;

use serde_json::json;

use super::client::{ClientError, Loopback};
use crate::kinds;

const INTERVAL: Duration = Duration::from_secs(10);
pub const NAMESPACE: &str = "kube-system";
pub const NAME: &str = "kube-dns";

/// The Service for `cluster_ip`.
pub fn service(cluster_ip: &str) -> serde_json::Value {
    let labels = json!({"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
        "kubernetes.io/name": "CoreDNS"});
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels,
            "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}},
        "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "sessionAffinity": "None",
            "selector": {"k8s-app": "kube-dns"},
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]}})
}

/// Keeps the Service until aborted.
pub fn spawn(client: Loopback, cluster_ip: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(error) = ensure(&client, &cluster_ip).await {
                tracing::warn!(%error, "keeping the kube-dns Service");
            }
            tokio::time::sleep(INTERVAL).await;
        }
    })
}

async fn ensure(client: &Loopback, cluster_ip: &str) -> Result<(), ClientError> {
    let Some(services) = kinds::find("", "v1", "services") else {
        return Ok(());
    };
    match client.get(services, Some(NAMESPACE), NAME).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => {
            let created = client
                .create(services, Some(NAMESPACE), &service(cluster_ip))
                .await;
            match created {
                Err(e) if e.is_already_exists() => Ok(()),
                other => other.map(drop),
            }
        }
        Err(e) => Err(e),
    }
}
