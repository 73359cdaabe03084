//! The node lifecycle controller, as kube-controller-manager's: a node whose kubelet stopped
//! renewing its Lease (and posting status) for `node_monitor_grace` gets every condition set to
//! Unknown ("Kubelet stopped posting node status."), the `node.kubernetes.io/unreachable`
//! NoSchedule and NoExecute taints, and its pods' Ready condition set False so Services stop
//! sending them traffic. A node reporting Ready=False gets the `not-ready` taints instead.
//! Pods on a node with a NoExecute taint they do not tolerate are deleted once their
//! `tolerationSeconds` for it (else `pod_eviction_timeout`, the default tolerations' 300 s)
//! have passed since the taint was added — their controllers then replace them elsewhere. A node
//! that comes back loses the taints. Checked every second. Like kube's, the grace period counts
//! from when this controller saw the node's heartbeat change (a node first seen gets a whole
//! one), not from the heartbeat's own time: a control process back from an outage does not take
//! its own absence for the nodes'.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::client::{ClientError, Loopback};
use super::events::{record, EventType};
use super::informer::Informer;

const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const NOT_READY: &str = "node.kubernetes.io/not-ready";
const COMPONENT: &str = "node-controller";

/// Timing of the controller.
#[derive(Clone, Copy, Debug)]
pub struct LifecycleConfig {
    /// How long a node may go without a heartbeat before it is Unknown (kube's 40 s).
    pub node_monitor_grace: Duration,
    /// How long pods stay on an unreachable or not-ready node without their own toleration
    /// seconds (the default tolerations' 300 s).
    pub pod_eviction_timeout: Duration,
    /// How long a node must be missing before the pod garbage collector (`podgc`)
    /// force-deletes the pods bound to it (kube's 40 s quarantine).
    pub orphan_quarantine: Duration,
    /// How often each HorizontalPodAutoscaler is evaluated (kube's 15 s).
    pub hpa_sync_period: Duration,
    /// The scale-down stabilisation window of HPAs that do not set one (kube's 300 s).
    pub hpa_downscale_stabilization: Duration,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            node_monitor_grace: Duration::from_secs(40),
            pod_eviction_timeout: Duration::from_secs(300),
            orphan_quarantine: Duration::from_secs(40),
            hpa_sync_period: Duration::from_secs(15),
            hpa_downscale_stabilization: Duration::from_secs(300),
        }
    }
}

/// The caches it reads.
pub struct Caches {
    pub nodes: Arc<Informer>,
    pub leases: Arc<Informer>,
    pub pods: Arc<Informer>,
}

/// Starts the controller.
pub fn spawn(
    client: Loopback,
    caches: Caches,
    config: LifecycleConfig,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        caches.nodes.wait_for(1, Duration::MAX).await;
        caches.leases.wait_for(1, Duration::MAX).await;
        caches.pods.wait_for(1, Duration::MAX).await;
        let mut seen = Heartbeats::default();
        let mut registered: HashMap<String, Arc<Value>> = HashMap::new();
        loop {
            let nodes = caches.nodes.list(|_| true);
            seen.keep_only(&nodes);
            announce(&client, &mut registered, &nodes).await;
            for node in nodes {
                if let Err(error) = check(&client, &caches, &config, &mut seen, &node).await {
                    if !error.is_transient() {
                        tracing::warn!(node = node["metadata"]["name"].as_str(), %error, "node lifecycle");
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

/// kube's node controller events: `RegisteredNode` for each node it starts to watch (all of
/// them when it starts), `RemovingNode` for each one deleted.
async fn announce(
    client: &Loopback,
    registered: &mut HashMap<String, Arc<Value>>,
    nodes: &[Arc<Value>],
) {
    let name = |n: &Value| n["metadata"]["name"].as_str().unwrap_or("").to_owned();
    for node in nodes {
        if let std::collections::hash_map::Entry::Vacant(entry) = registered.entry(name(node)) {
            entry.insert(node.clone());
            let text = format!(
                "Node {0} event: Registered Node {0} in Controller",
                name(node)
            );
            record(
                client,
                COMPONENT,
                node,
                EventType::Normal,
                "RegisteredNode",
                &text,
            )
            .await;
        }
    }
    let gone: Vec<String> = registered
        .keys()
        .filter(|n| !nodes.iter().any(|node| name(node) == **n))
        .cloned()
        .collect();
    for n in gone {
        if let Some(node) = registered.remove(&n) {
            let text = format!("Node {n} event: Removing Node {n} from Controller");
            record(
                client,
                COMPONENT,
                &node,
                EventType::Normal,
                "RemovingNode",
                &text,
            )
            .await;
        }
    }
}

/// When this controller saw each node's newest heartbeat change (kube's `probeTimestamp`).
#[derive(Default)]
struct Heartbeats(HashMap<String, (Option<OffsetDateTime>, Instant)>);

impl Heartbeats {
    /// How long ago the heartbeat `last` of `node` was first seen here.
    fn age(&mut self, node: &str, last: Option<OffsetDateTime>) -> Duration {
        let now = Instant::now();
        let entry = self.0.entry(node.to_owned()).or_insert((last, now));
        if entry.0 != last {
            *entry = (last, now);
        }
        now - entry.1
    }

    fn keep_only(&mut self, nodes: &[Arc<Value>]) {
        self.0
            .retain(|name, _| nodes.iter().any(|n| n["metadata"]["name"] == name.as_str()));
    }
}

fn parse(time: &Value) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(time.as_str()?, &Rfc3339).ok()
}

fn now_text() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// The newest sign of life: the Lease's renewTime or the Ready condition's heartbeat (what
/// this controller writes itself, a transition time, is none).
fn last_heartbeat(node: &Value, lease: Option<&Value>) -> Option<OffsetDateTime> {
    let from_status = node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| parse(&c["lastHeartbeatTime"]));
    let from_lease = lease.and_then(|l| parse(&l["spec"]["renewTime"]));
    from_status.max(from_lease)
}

async fn check(
    client: &Loopback,
    caches: &Caches,
    config: &LifecycleConfig,
    seen: &mut Heartbeats,
    node: &Value,
) -> Result<(), ClientError> {
    let name = node["metadata"]["name"].as_str().unwrap_or("");
    let lease_key = format!(
        "{}kube-node-lease/{name}",
        caches.leases.resource.key_prefix()
    );
    let lease = caches.leases.get(&lease_key);
    let silent = seen.age(name, last_heartbeat(node, lease.as_deref())) > config.node_monitor_grace;
    let ready_status = node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| c["status"].as_str())
        .unwrap_or("Unknown")
        .to_owned();
    if silent && ready_status != "Unknown" {
        mark_unknown(client, caches, node).await?;
        return Ok(()); // the next pass sees the Unknown node
    }
    let wanted = if ready_status == "Unknown" && silent {
        Some(UNREACHABLE)
    } else if ready_status != "True" {
        Some(NOT_READY)
    } else {
        None
    };
    set_taints(client, caches, node, wanted).await?;
    if let Some(taint) = wanted {
        evict(client, caches, config, node, taint).await?;
    }
    Ok(())
}

/// Every condition Unknown, and the node's pods not ready.
async fn mark_unknown(client: &Loopback, caches: &Caches, node: &Value) -> Result<(), ClientError> {
    let name = node["metadata"]["name"].as_str().unwrap_or("");
    let now = now_text();
    let mut conditions: Vec<Value> = node["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !conditions.iter().any(|c| c["type"] == "Ready") {
        conditions.push(json!({"type": "Ready"}));
    }
    for c in &mut conditions {
        if c["status"] != "Unknown" {
            c["lastTransitionTime"] = json!(now);
        }
        c["status"] = json!("Unknown");
        c["reason"] = json!("NodeStatusUnknown");
        c["message"] = json!("Kubelet stopped posting node status.");
    }
    let patch = json!({"metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
                       "status": {"conditions": conditions}});
    client
        .merge_patch_status(caches.nodes.resource, None, name, &patch)
        .await?;
    record(
        client,
        COMPONENT,
        node,
        EventType::Normal,
        "NodeNotReady",
        &format!("Node {name} status is now: NodeNotReady"),
    )
    .await;
    for pod in caches.pods.list(|p| p["spec"]["nodeName"] == name) {
        let mut conditions: Vec<Value> = pod["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut changed = false;
        for c in &mut conditions {
            if c["type"] == "Ready" && c["status"] != "False" {
                c["status"] = json!("False");
                c["lastTransitionTime"] = json!(now);
                changed = true;
            }
        }
        if changed {
            let patch = json!({"metadata": {"resourceVersion": pod["metadata"]["resourceVersion"]},
                               "status": {"conditions": conditions}});
            let result = client
                .merge_patch_status(
                    caches.pods.resource,
                    pod["metadata"]["namespace"].as_str(),
                    pod["metadata"]["name"].as_str().unwrap_or(""),
                    &patch,
                )
                .await;
            match result {
                Err(e) if !e.is_transient() => return Err(e),
                _ => {}
            }
        }
    }
    Ok(())
}

/// Makes the node's lifecycle taints exactly `wanted` (NoSchedule and NoExecute), leaving
/// every other taint alone.
async fn set_taints(
    client: &Loopback,
    caches: &Caches,
    node: &Value,
    wanted: Option<&str>,
) -> Result<(), ClientError> {
    let taints: Vec<Value> = node["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ours = |t: &Value| t["key"] == UNREACHABLE || t["key"] == NOT_READY;
    let have: Vec<&Value> = taints.iter().filter(|t| ours(t)).collect();
    let correct = match wanted {
        None => have.is_empty(),
        Some(key) => have.len() == 2 && have.iter().all(|t| t["key"] == key),
    };
    if correct {
        return Ok(());
    }
    let mut next: Vec<Value> = taints.iter().filter(|t| !ours(t)).cloned().collect();
    if let Some(key) = wanted {
        let added = now_text();
        next.push(json!({"key": key, "effect": "NoSchedule", "timeAdded": added}));
        next.push(json!({"key": key, "effect": "NoExecute", "timeAdded": added}));
    }
    let name = node["metadata"]["name"].as_str().unwrap_or("");
    let patch = json!({"metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
                       "spec": {"taints": if next.is_empty() { Value::Null } else { json!(next) }}});
    client
        .merge_patch(caches.nodes.resource, None, name, &patch)
        .await
        .map(drop)
}

/// Deletes the node's pods whose time under the NoExecute `taint` is up.
async fn evict(
    client: &Loopback,
    caches: &Caches,
    config: &LifecycleConfig,
    node: &Value,
    taint: &str,
) -> Result<(), ClientError> {
    let name = node["metadata"]["name"].as_str().unwrap_or("");
    let Some(added) = node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["key"] == taint && t["effect"] == "NoExecute")
        .and_then(|t| parse(&t["timeAdded"]))
    else {
        return Ok(());
    };
    let tainted_for = (OffsetDateTime::now_utc() - added).unsigned_abs();
    for pod in caches
        .pods
        .list(|p| p["spec"]["nodeName"] == name && p["metadata"]["deletionTimestamp"].is_null())
    {
        let toleration = pod["spec"]["tolerations"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| {
                (t["key"] == taint || (t["key"].is_null() && t["operator"] == "Exists"))
                    && (t["effect"].is_null() || t["effect"] == "NoExecute")
            });
        let allowed = match toleration {
            Some(t) => match t["tolerationSeconds"].as_i64() {
                Some(seconds) => Duration::from_secs(seconds.max(0) as u64),
                None => continue, // tolerated for ever
            },
            None => config.pod_eviction_timeout,
        };
        if tainted_for < allowed {
            continue;
        }
        let pod_name = pod["metadata"]["name"].as_str().unwrap_or("");
        let options = json!({"preconditions": {"uid": pod["metadata"]["uid"]}});
        match client
            .delete(
                caches.pods.resource,
                pod["metadata"]["namespace"].as_str(),
                pod_name,
                &options,
            )
            .await
        {
            Ok(_) => {
                let message = format!(
                    "Marking for deletion Pod {}/{pod_name}",
                    pod["metadata"]["namespace"].as_str().unwrap_or("")
                );
                record(
                    client,
                    "taint-eviction-controller",
                    &pod,
                    EventType::Normal,
                    "TaintManagerEviction",
                    &message,
                )
                .await;
            }
            Err(e) if e.is_transient() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
