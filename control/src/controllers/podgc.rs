//! The pod garbage collector, as kube-controller-manager's PodGC: force-deletes (grace 0,
//! conditional on the pod's uid) the pods no kubelet will ever finish —
//! - pods bound to a node that does not exist, once the node has been missing for the
//!   quarantine (`orphan_quarantine`, kube's 40 s) and a fresh read of the node still finds
//!   nothing (the cache may lag a node just registered);
//! - terminating pods on a node that is not Ready and carries the
//!   `node.kubernetes.io/out-of-service` taint (the administrator says it is gone for good);
//! - terminating pods that were never bound to a node.
//!
//! It never touches a pod of a node that exists and is not out of service: those are the
//! kubelet's to finish. Checked every second from the informer caches.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::client::{ClientError, Loopback};
use super::events::{record, EventType};
use super::informer::Informer;

/// The taint that marks a node shut down for good.
pub const OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";
const COMPONENT: &str = "pod-garbage-collector";

/// The caches it reads.
pub struct Caches {
    pub pods: Arc<Informer>,
    pub nodes: Arc<Informer>,
}

/// Why a pod is force-deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    /// Its node is missing (past the quarantine).
    Orphaned,
    /// Terminating on an out-of-service node.
    OutOfService,
    /// Terminating and never bound.
    Unscheduled,
}

/// Starts the collector.
pub fn spawn(
    client: Loopback,
    caches: Caches,
    orphan_quarantine: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // Node name → when it was first seen missing.
        let mut missing: BTreeMap<String, Instant> = BTreeMap::new();
        caches.pods.wait_for(1, Duration::MAX).await;
        caches.nodes.wait_for(1, Duration::MAX).await;
        loop {
            pass(&client, &caches, orphan_quarantine, &mut missing).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

async fn pass(
    client: &Loopback,
    caches: &Caches,
    quarantine: Duration,
    missing: &mut BTreeMap<String, Instant>,
) {
    let nodes: BTreeMap<String, Arc<Value>> = caches
        .nodes
        .list(|_| true)
        .into_iter()
        .map(|n| (n["metadata"]["name"].as_str().unwrap_or("").to_owned(), n))
        .collect();
    let pods = caches.pods.list(|_| true);
    let now = Instant::now();
    let mut still_missing = BTreeMap::new();
    for pod in pods {
        let node = pod["spec"]["nodeName"].as_str().unwrap_or("");
        let reason = match (node, nodes.get(node)) {
            ("", _) => terminating(&pod).then_some(Reason::Unscheduled),
            (node, None) => {
                let since = *missing.get(node).unwrap_or(&now);
                still_missing.insert(node.to_owned(), since);
                let over = now.duration_since(since) >= quarantine;
                (over && !node_exists(client, caches, node).await).then_some(Reason::Orphaned)
            }
            (_, Some(n)) => {
                (terminating(&pod) && out_of_service(n)).then_some(Reason::OutOfService)
            }
        };
        if let Some(reason) = reason {
            if let Err(error) = force_delete(client, caches, &pod, reason).await {
                tracing::warn!(pod = pod["metadata"]["name"].as_str(), %error, "pod garbage collection");
            }
        }
    }
    *missing = still_missing;
}

fn terminating(pod: &Value) -> bool {
    !pod["metadata"]["deletionTimestamp"].is_null()
}

/// Not Ready, and tainted out-of-service with NoExecute.
fn out_of_service(node: &Value) -> bool {
    let ready = node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    let tainted = node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| t["key"] == OUT_OF_SERVICE && t["effect"] == "NoExecute");
    !ready && tainted
}

/// Whether the node exists, read from the store (not the cache); an error counts as existing.
async fn node_exists(client: &Loopback, caches: &Caches, name: &str) -> bool {
    match client.get(caches.nodes.resource, None, name).await {
        Ok(_) => true,
        Err(e) => !e.is_not_found(),
    }
}

async fn force_delete(
    client: &Loopback,
    caches: &Caches,
    pod: &Value,
    reason: Reason,
) -> Result<(), ClientError> {
    let namespace = pod["metadata"]["namespace"].as_str();
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    let options =
        json!({"gracePeriodSeconds": 0, "preconditions": {"uid": pod["metadata"]["uid"]}});
    match client
        .delete(caches.pods.resource, namespace, name, &options)
        .await
    {
        Ok(_) => {}
        Err(e) if e.is_transient() => return Ok(()),
        Err(e) => return Err(e),
    }
    let node = pod["spec"]["nodeName"].as_str().unwrap_or("");
    let why = match reason {
        Reason::Orphaned => format!("its node {node:?} does not exist"),
        Reason::OutOfService => format!("its node {node:?} is out of service"),
        Reason::Unscheduled => "it is terminating and was never scheduled".to_owned(),
    };
    tracing::info!(pod = name, namespace, reason = %why, "force-deleted a pod");
    record(
        client,
        COMPONENT,
        pod,
        EventType::Normal,
        "PodGC",
        &format!("Force-deleted: {why}"),
    )
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_service_needs_the_taint_and_a_node_that_is_not_ready() {
        let taint =
            json!([{"key": OUT_OF_SERVICE, "value": "nodeshutdown", "effect": "NoExecute"}]);
        let ready = json!([{"type": "Ready", "status": "True"}]);
        let down = json!([{"type": "Ready", "status": "Unknown"}]);
        let node = |taints: &Value, conditions: &Value| json!({"spec": {"taints": taints}, "status": {"conditions": conditions}});
        assert!(out_of_service(&node(&taint, &down)));
        assert!(out_of_service(&node(&taint, &json!([]))));
        assert!(!out_of_service(&node(&taint, &ready)));
        assert!(!out_of_service(&node(&json!([]), &down)));
        let no_schedule = json!([{"key": OUT_OF_SERVICE, "effect": "NoSchedule"}]);
        assert!(!out_of_service(&node(&no_schedule, &down)));
    }
}
