//! This node's Lease in `kube-node-lease` (coordination.k8s.io/v1), the node's cheap
//! heartbeat: holderIdentity = the node, leaseDurationSeconds (`--node-lease-duration-seconds`,
//! default 40), renewTime advanced every quarter of that (kubelet's renew interval). Created when missing (owned by the Node, so it goes with it); a failed
//! renewal is retried on the next tick.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use std::time::Duration;

use super::{now_micro, NodeIdentity};

pub const NAMESPACE: &str = "kube-node-lease";
/// kubelet's default `nodeLeaseDurationSeconds`.
pub const DURATION_SECONDS: i32 = 40;

/// kubelet renews its Lease every quarter of the Lease's duration.
pub fn renew_interval(duration_seconds: i32) -> Duration {
    Duration::from_millis(u64::try_from(duration_seconds).unwrap_or(1).max(1) * 250)
}

/// The Lease's spec at `renew_time`.
pub fn lease_spec(node: &str, duration_seconds: i32, renew_time: &str) -> Value {
    json!({
        "holderIdentity": node,
        "leaseDurationSeconds": duration_seconds,
        "renewTime": renew_time,
    })
}

pub async fn run(client: kube::Client, identity: NodeIdentity) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    let nodes: Api<Node> = Api::all(client);
    let duration = identity.lease_duration_seconds;
    let node = identity.name;
    let mut tick = tokio::time::interval(renew_interval(duration));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = renew(&leases, &nodes, &node, duration).await {
            tracing::warn!(%node, error = %e, "renewing the node lease; retrying");
        }
    }
}

async fn renew(
    leases: &Api<Lease>,
    nodes: &Api<Node>,
    node: &str,
    duration_seconds: i32,
) -> kube::Result<()> {
    let spec = lease_spec(node, duration_seconds, &now_micro());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_is_renewed_every_quarter_of_its_duration() {
        assert_eq!(renew_interval(DURATION_SECONDS), Duration::from_secs(10));
        assert_eq!(renew_interval(4), Duration::from_secs(1));
        assert_eq!(renew_interval(0), Duration::from_millis(250));
        let spec = lease_spec("n1", 4, "2026-01-01T00:00:00.000000Z");
        assert_eq!(spec["leaseDurationSeconds"], 4);
    }
}
