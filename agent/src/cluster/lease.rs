//! This node's Lease in `kube-node-lease` (coordination.k8s.io/v1), the node's cheap
//! heartbeat: holderIdentity = the node, leaseDurationSeconds 40, renewTime advanced every
//! [`HEARTBEAT`]. Created when missing (owned by the Node, so it goes with it); a failed
//! renewal is retried on the next tick.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use super::{now_micro, HEARTBEAT};

pub const NAMESPACE: &str = "kube-node-lease";
/// kubelet's default `nodeLeaseDurationSeconds`.
pub const DURATION_SECONDS: i32 = 40;

/// The Lease's spec at `renew_time`.
pub fn lease_spec(node: &str, renew_time: &str) -> Value {
    json!({
        "holderIdentity": node,
        "leaseDurationSeconds": DURATION_SECONDS,
        "renewTime": renew_time,
    })
}

pub async fn run(client: kube::Client, node: String) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    let nodes: Api<Node> = Api::all(client);
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = renew(&leases, &nodes, &node).await {
            tracing::warn!(%node, error = %e, "renewing the node lease; retrying");
        }
    }
}

async fn renew(leases: &Api<Lease>, nodes: &Api<Node>, node: &str) -> kube::Result<()> {
    let spec = lease_spec(node, &now_micro());
    let patch = Patch::Merge(json!({ "spec": spec }));
    match leases.patch(node, &PatchParams::default(), &patch).await {
        Ok(_) => return Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(e),
    }
    // No Lease yet: create it, owned by the Node once that is registered.
    let owner = nodes
        .get_opt(node)
        .await?
        .and_then(|n| n.metadata.uid)
        .map(|uid| json!([{"apiVersion": "v1", "kind": "Node", "name": node, "uid": uid}]));
    let mut lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": node, "namespace": NAMESPACE},
        "spec": spec,
    });
    if let Some(owner) = owner {
        lease["metadata"]["ownerReferences"] = owner;
    }
    let lease: Lease = serde_json::from_value(lease).map_err(kube::Error::SerdeError)?;
    leases.create(&PostParams::default(), &lease).await?;
    Ok(())
}
