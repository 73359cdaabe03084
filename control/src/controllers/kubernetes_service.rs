//! The `kubernetes` Service in `default`, as kube-apiserver keeps it: ClusterIP the first
//! address of the service range, port 443 (`https`) to this server's secure port, and an
//! EndpointSlice and Endpoints object naming the address clients reach the server at, so pods
//! find the API at `kubernetes.default.svc`. Checked at start and every 10 s; a missing or
//! changed piece is put back.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};

use super::client::{ClientError, Loopback};
use crate::kinds;

const INTERVAL: Duration = Duration::from_secs(10);

fn find(group: &str, plural: &str) -> Option<&'static kinds::Resource> {
    kinds::find(group, "v1", plural)
}

/// Keeps the Service and its endpoints until aborted.
pub fn spawn(
    client: Loopback,
    cluster_ip: String,
    server: SocketAddr,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(error) = ensure(&client, &cluster_ip, server).await {
                tracing::warn!(%error, "keeping the kubernetes Service");
            }
            tokio::time::sleep(INTERVAL).await;
        }
    })
}

async fn ensure(
    client: &Loopback,
    cluster_ip: &str,
    server: SocketAddr,
) -> Result<(), ClientError> {
    let (Some(services), Some(slices), Some(endpoints)) = (
        find("", "services"),
        find("discovery.k8s.io", "endpointslices"),
        find("", "endpoints"),
    ) else {
        return Ok(());
    };
    let labels = json!({"component": "apiserver", "provider": "kubernetes"});
    let service = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": labels},
        "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "sessionAffinity": "None",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": server.port()}]}});
    create_or_fix(client, services, &service, &["spec", "ports"]).await?;
    let port = json!({"name": "https", "port": server.port(), "protocol": "TCP"});
    let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "kubernetes",
                                "endpointslice.kubernetes.io/managed-by": "endpointslice-mirroring-controller.k8s.io"}},
        "addressType": if server.is_ipv4() { "IPv4" } else { "IPv6" },
        "endpoints": [{"addresses": [server.ip().to_string()], "conditions": {"ready": true}}],
        "ports": [port]});
    create_or_fix(client, slices, &slice, &["endpoints"]).await?;
    let legacy = json!({"apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": server.ip().to_string()}], "ports": [port]}]});
    create_or_fix(client, endpoints, &legacy, &["subsets"]).await
}

/// Creates `object` when missing; when the field at `path` differs, puts it back.
async fn create_or_fix(
    client: &Loopback,
    resource: &'static kinds::Resource,
    object: &Value,
    path: &[&str],
) -> Result<(), ClientError> {
    let name = object["metadata"]["name"].as_str().unwrap_or("");
    let at = |v: &Value| path.iter().fold(v.clone(), |v, p| v[*p].clone());
    match client.get(resource, Some("default"), name).await {
        Ok(current) if at(&current) == at(object) => Ok(()),
        Ok(_) => {
            let mut patch = json!({});
            let mut slot = &mut patch;
            for p in path {
                slot = &mut slot[*p];
            }
            *slot = at(object);
            client
                .merge_patch(resource, Some("default"), name, &patch)
                .await
                .map(drop)
        }
        Err(e) if e.is_not_found() => {
            match client.create(resource, Some("default"), object).await {
                Err(e) if e.is_already_exists() => Ok(()),
                other => other.map(drop),
            }
        }
        Err(e) => Err(e),
    }
}
