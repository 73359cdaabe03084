//! This node's Node object: registered at start (created, or its spec and labels brought up
//! to date when it exists), then its status posted every [`HEARTBEAT`] when it changed (here,
//! or on the server: a controller marked it Unknown) and every [`STATUS_REPORT`] when not — capacity and allocatable, addresses, nodeInfo, the
//! Ready/pressure conditions with heartbeat times. A failed post is retried on the next tick.
//! The object shapes are pure functions (`node_object`, `node_status`).

use std::time::Instant;

use k8s_openapi::api::core::v1::{Event, Node};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use super::events::post_node;
use super::machine::Machine;
use super::{now_rfc3339, NodeIdentity, HEARTBEAT, STATUS_REPORT};

/// `nodeInfo.kubeletVersion`: the Kubernetes API version the agent speaks, marked as bosun's.
pub const KUBELET_VERSION: &str = "v1.32.0-bosun";

/// The Node as registered: name, the well-known labels, pod CIDR.
pub fn node_object(node: &NodeIdentity, machine: &Machine) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "labels": {
                "kubernetes.io/hostname": node.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": machine.architecture,
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": machine.architecture,
            },
        },
        "spec": {
            "podCIDR": node.pod_cidr.to_string(),
            "podCIDRs": [node.pod_cidr.to_string()],
        },
    })
}

/// The Node's status. `since` is when the conditions took their current values, `heartbeat`
/// the time of this post.
pub fn node_status(node: &NodeIdentity, machine: &Machine, since: &str, heartbeat: &str) -> Value {
    let resources = json!({
        "cpu": machine.cpus.to_string(),
        "memory": format!("{}Ki", machine.memory_bytes / 1024),
        "ephemeral-storage": format!("{}Ki", machine.ephemeral_storage_bytes / 1024),
        "pods": node.max_pods.to_string(),
    });
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": kind, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": heartbeat, "lastTransitionTime": since,
        })
    };
    json!({
        "capacity": resources,
        "allocatable": resources,
        "addresses": [
            {"type": "InternalIP", "address": node.ip.to_string()},
            {"type": "Hostname", "address": node.name},
        ],
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": node.kubelet_port}},
        "nodeInfo": {
            "machineID": machine.machine_id,
            "systemUUID": machine.machine_id,
            "bootID": machine.boot_id,
            "kernelVersion": machine.kernel_version,
            "osImage": machine.os_image,
            "containerRuntimeVersion": format!("bosun://{}", env!("CARGO_PKG_VERSION")),
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION,
            "operatingSystem": "linux",
            "architecture": machine.architecture,
        },
    })
}

/// `status` without its heartbeat times: what "changed" means for [`STATUS_REPORT`].
fn without_heartbeats(mut status: Value) -> Value {
    if let Some(conditions) = status["conditions"].as_array_mut() {
        for c in conditions {
            if let Some(c) = c.as_object_mut() {
                c.remove("lastHeartbeatTime");
            }
        }
    }
    status
}

/// The (type, status) of each condition of a Node status, sorted.
fn condition_statuses(status: &Value) -> Vec<(String, String)> {
    let mut found = condition_statuses_in_order(status);
    found.sort();
    found
}

/// The (type, status) of each condition of a Node status, in its order.
fn condition_statuses_in_order(status: &Value) -> Vec<(String, String)> {
    status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let field = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (field("type"), field("status"))
        })
        .collect()
}

/// Registers the Node, then posts its status for as long as the agent runs. Each tick reads
/// the Node back: when someone else changed its conditions (the node lifecycle controller
/// marks a node whose Lease expired `Unknown`) it is posted again at once, with a new
/// transition time; when the Node was deleted it is registered again.
pub async fn run(client: kube::Client, node: NodeIdentity, machine: Machine) {
    let events = super::events::node_events_api(&client);
    let api: Api<Node> = Api::all(client);
    let mut announced = false;
    let mut unschedulable: Option<bool> = None;
    let mut since = now_rfc3339();
    let mut registered = false;
    let mut last: Option<(Value, Instant)> = None;
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !registered {
            match register(&api, &node, &machine).await {
                Ok(()) => {
                    tracing::info!(node = %node.name, "node registered");
                    registered = true;
                    last = None;
                }
                Err(e) => {
                    tracing::warn!(node = %node.name, error = %e, "registering the node; retrying");
                    continue;
                }
            }
        }
        let held = match api.get_opt(&node.name).await {
            Ok(Some(n)) => {
                let now = n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true);
                if unschedulable.is_some_and(|was| was != now) {
                    let reason = schedulable_reason(now);
                    let message = status_now(&node.name, reason);
                    post_node(&events, &node.name, "Normal", reason, &message).await;
                }
                unschedulable = Some(now);
                serde_json::to_value(&n.status).unwrap_or_default()
            }
            Ok(None) => {
                tracing::warn!(node = %node.name, "the Node was deleted; registering it again");
                registered = false;
                continue;
            }
            Err(e) => {
                tracing::warn!(node = %node.name, error = %e, "reading the node; retrying");
                continue;
            }
        };
        let status = node_status(&node, &machine, &since, &now_rfc3339());
        let overridden = last.is_some() && condition_statuses(&held) != condition_statuses(&status);
        if overridden {
            tracing::info!(node = %node.name, "node conditions changed by someone else; posting ours");
            since = now_rfc3339();
        }
        let status = node_status(&node, &machine, &since, &now_rfc3339());
        let compared = without_heartbeats(status.clone());
        // Like kubelet with node leases: liveness is the Lease's renewals; the status is posted
        // when it changed (here or on the server), and otherwise only every STATUS_REPORT.
        let due = match &last {
            Some((sent, at)) => overridden || *sent != compared || at.elapsed() >= STATUS_REPORT,
            None => true,
        };
        if !due {
            continue;
        }
        let patch = Patch::Merge(json!({ "status": status }));
        match api
            .patch_status(&node.name, &PatchParams::default(), &patch)
            .await
        {
            Ok(_) => {
                last = Some((compared, Instant::now()));
                announce(&events, &node.name, &held, &status, !announced).await;
                announced = true;
            }
            Err(kube::Error::Api(e)) if e.code == 404 => registered = false,
            Err(e) => {
                tracing::warn!(node = %node.name, error = %e, "posting node status; retrying")
            }
        }
    }
}

/// kubelet's events for a status it posted over `held`: `Starting kubelet.` when it is the
/// first of this start, then `Node X status is now: <reason>` for each condition that changed,
/// with `NodeAllocatableEnforced` (pods' cgroups are limited) before the Ready one.
async fn announce(events: &Api<Event>, node: &str, held: &Value, ours: &Value, first: bool) {
    let mut told: Vec<(&str, String)> = Vec::new();
    let enforced = (
        "NodeAllocatableEnforced",
        "Updated Node Allocatable limit across pods".to_string(),
    );
    if first {
        told.push(("Starting", "Starting kubelet.".into()));
    }
    let (ready, pressure): (Vec<&str>, Vec<&str>) = condition_events(held, ours)
        .into_iter()
        .partition(|r| matches!(*r, "NodeReady" | "NodeNotReady"));
    told.extend(pressure.into_iter().map(|r| (r, status_now(node, r))));
    if first {
        told.push(enforced);
    }
    told.extend(ready.into_iter().map(|r| (r, status_now(node, r))));
    for (reason, message) in told {
        post_node(events, node, "Normal", reason, &message).await;
    }
}

/// kubelet's reason for a node's condition now `status`, when it changed.
fn condition_reason(kind: &str, status: &str) -> Option<&'static str> {
    Some(match (kind, status) {
        ("MemoryPressure", "False") => "NodeHasSufficientMemory",
        ("MemoryPressure", "True") => "NodeHasInsufficientMemory",
        ("DiskPressure", "False") => "NodeHasNoDiskPressure",
        ("DiskPressure", "True") => "NodeHasDiskPressure",
        ("PIDPressure", "False") => "NodeHasSufficientPID",
        ("PIDPressure", "True") => "NodeHasInsufficientPID",
        ("Ready", "True") => "NodeReady",
        ("Ready", _) => "NodeNotReady",
        _ => return None,
    })
}

/// The reasons of `ours`' conditions whose status differs from `held`'s, in `ours`' order.
fn condition_events(held: &Value, ours: &Value) -> Vec<&'static str> {
    let had = condition_statuses(held);
    condition_statuses_in_order(ours)
        .into_iter()
        .filter(|c| !had.contains(c))
        .filter_map(|(kind, status)| condition_reason(&kind, &status))
        .collect()
}

fn schedulable_reason(unschedulable: bool) -> &'static str {
    match unschedulable {
        true => "NodeNotSchedulable",
        false => "NodeSchedulable",
    }
}

/// kubelet's text for a node status event.
fn status_now(node: &str, reason: &str) -> String {
    format!("Node {node} status is now: {reason}")
}

async fn register(api: &Api<Node>, node: &NodeIdentity, machine: &Machine) -> kube::Result<()> {
    let object: Node =
        serde_json::from_value(node_object(node, machine)).map_err(kube::Error::SerdeError)?;
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let patch = Patch::Merge(node_object(node, machine));
            api.patch(&node.name, &PatchParams::default(), &patch)
                .await?;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_and_allocatable_report_max_pods() {
        let node = NodeIdentity {
            name: "n1".into(),
            ip: "192.168.1.1".parse().unwrap(),
            pod_cidr: "10.244.0.0/22".parse().unwrap(),
            max_pods: 600,
            kubelet_port: 10250,
            lease_duration_seconds: 40,
        };
        let machine = Machine {
            cpus: 2,
            memory_bytes: 1 << 30,
            ephemeral_storage_bytes: 1 << 30,
            kernel_version: "6.1".into(),
            os_image: "Linux".into(),
            architecture: "amd64".into(),
            machine_id: String::new(),
            boot_id: String::new(),
        };
        let status = node_status(&node, &machine, "T0", "T1");
        assert_eq!(status["capacity"]["pods"], "600");
        assert_eq!(status["allocatable"]["pods"], "600");
        assert_eq!(status["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
    }

    #[test]
    fn changed_conditions_are_told_with_kubelets_reasons() {
        let ours = json!({"conditions": [
            {"type": "MemoryPressure", "status": "False"},
            {"type": "DiskPressure", "status": "False"},
            {"type": "PIDPressure", "status": "False"},
            {"type": "Ready", "status": "True"},
        ]});
        assert_eq!(
            condition_events(&json!({}), &ours),
            [
                "NodeHasSufficientMemory",
                "NodeHasNoDiskPressure",
                "NodeHasSufficientPID",
                "NodeReady"
            ]
        );
        assert!(condition_events(&ours, &ours).is_empty());
        let unknown = json!({"conditions": [
            {"type": "MemoryPressure", "status": "False"},
            {"type": "DiskPressure", "status": "False"},
            {"type": "PIDPressure", "status": "False"},
            {"type": "Ready", "status": "Unknown"},
        ]});
        assert_eq!(condition_events(&unknown, &ours), ["NodeReady"]);
        assert_eq!(condition_events(&ours, &unknown), ["NodeNotReady"]);
        assert_eq!(
            status_now("node-1", schedulable_reason(true)),
            "Node node-1 status is now: NodeNotSchedulable"
        );
    }

    #[test]
    fn conditions_are_compared_by_type_and_status_only() {
        let ours = json!({"conditions": [
            {"type": "Ready", "status": "True", "lastHeartbeatTime": "T1"},
            {"type": "DiskPressure", "status": "False"},
        ]});
        let theirs = json!({"conditions": [
            {"type": "DiskPressure", "status": "False", "lastHeartbeatTime": "T0"},
            {"type": "Ready", "status": "True", "lastHeartbeatTime": "T0"},
        ]});
        assert_eq!(condition_statuses(&ours), condition_statuses(&theirs));
        let unknown = json!({"conditions": [
            {"type": "DiskPressure", "status": "False"},
            {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown"},
        ]});
        assert_ne!(condition_statuses(&ours), condition_statuses(&unknown));
    }
}
