//! The scheduler (`default-scheduler`): assigns every pending pod that names it (or no
//! scheduler) to a node through the pods' `binding` subresource, as kube-scheduler does.
//! `placement` decides; this module keeps the queue and the writes. A pod that fits nowhere
//! stays Pending with `PodScheduled=False` (reason Unschedulable) and a `FailedScheduling`
//! event carrying kube-scheduler's message; it is tried again whenever a node or a placed pod
//! changes, and every 10 s. What each node holds comes from `usage`, kept from the pod cache's
//! changes. Bindings run in the background beside the next placements (kube-scheduler's
//! binding cycle); a pod being bound, or bound but not yet counted, counts as placed
//! ("assumed"), so a burst never overcommits a node.

mod nominate;
pub(crate) mod placement;
mod preemption;
pub(crate) mod quantity;
mod usage;
mod volumes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{json, Value};

use super::client::{resource_path, ClientError, Loopback};
use super::events::{record, EventType};
use super::informer::Informer;
use super::pods::is_active;
use super::queue::{forward, wait_synced, work_in_order, WorkQueue};
use placement::{requests_of, Candidate, Requests};
use preemption::priority_of;
use usage::{owner_uid, Usage};
pub use volumes::VolumeCaches;

pub const SCHEDULER_NAME: &str = "default-scheduler";
const RETRY_EVERY: Duration = Duration::from_secs(10);
/// Bindings in flight at once: they run beside the placing of the next pods (kube-scheduler's
/// asynchronous binding cycle), and the store commits concurrent writes together.
const BINDS_IN_FLIGHT: usize = 32;

/// Starts the scheduler over the node and pod caches.
pub fn spawn(
    client: Loopback,
    nodes: Arc<Informer>,
    pods: Arc<Informer>,
    volumes: VolumeCaches,
    budgets: Arc<Informer>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let scheduler = Arc::new(Scheduler {
        client,
        nodes,
        pods,
        volumes,
        budgets,
        nominated: Mutex::default(),
        queue: WorkQueue::new(),
        assumed: Mutex::default(),
        usage: Usage::default(),
        binds: Arc::new(tokio::sync::Semaphore::new(BINDS_IN_FLIGHT)),
    });
    vec![
        tokio::spawn(Arc::clone(&scheduler).feed()),
        tokio::spawn(Arc::clone(&scheduler).retry_pending()),
        tokio::spawn(scheduler.work()),
    ]
}

/// The pod's `metadata.uid`.
fn uid_of(pod: &Value) -> &str {
    pod["metadata"]["uid"].as_str().unwrap_or("")
}

struct Scheduler {
    client: Loopback,
    nodes: Arc<Informer>,
    pods: Arc<Informer>,
    /// Claims, volumes and classes (the VolumeBinding plugin's view).
    volumes: VolumeCaches,
    /// PodDisruptionBudgets, which preemption spares where it can.
    budgets: Arc<Informer>,
    /// Pods nominated to a node by preemption, by key.
    nominated: Mutex<HashMap<String, nominate::Nomination>>,
    queue: Arc<WorkQueue>,
    /// Pod key → (node, pod uid), for pods bound (or being bound) but not yet counted in
    /// `usage`. The uid tells a pod made again under the same name (a StatefulSet's `web-0`)
    /// from the one assumed, which must not hold the new one back.
    assumed: Mutex<HashMap<String, (String, String)>>,
    /// What the pod cache shows placed on each node.
    usage: Usage,
    binds: Arc<tokio::sync::Semaphore>,
}

/// Whether the scheduler is to place this pod.
fn pending(pod: &Value) -> bool {
    pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty)
        && matches!(
            pod["spec"]["schedulerName"].as_str(),
            None | Some(SCHEDULER_NAME)
        )
        && is_active(pod)
}

/// Which pods a change of one pod sends back to the scheduler.
#[derive(Debug, PartialEq, Eq)]
enum Requeue {
    /// The pod itself: it waits for a node.
    This,
    /// None: a placed pod that still runs (its kubelet reporting status) takes what it took
    /// already, so nothing waiting fits now that did not before. (Requeueing every waiting pod
    /// on each status report made a burst of n pods cost O(n²) placements.)
    Nothing,
    /// Every waiting pod: a placed pod went or finished, room may have freed up.
    AllPending,
}

fn requeue_for(pod: Option<&Value>) -> Requeue {
    match pod {
        Some(pod) if pending(pod) => Requeue::This,
        Some(pod) if is_active(pod) => Requeue::Nothing,
        _ => Requeue::AllPending,
    }
}

impl Scheduler {
    fn pending_keys(&self) -> Vec<String> {
        let prefix = self.pods.resource.key_prefix();
        self.pods
            .list(pending)
            .iter()
            .map(|p| {
                format!(
                    "{prefix}{}/{}",
                    p["metadata"]["namespace"].as_str().unwrap_or(""),
                    p["metadata"]["name"].as_str().unwrap_or("")
                )
            })
            .collect()
    }

    async fn feed(self: Arc<Self>) {
        let all = || self.pending_keys();
        let pod_changed = |key: String| {
            self.usage.observe(&self.pods, &key);
            match requeue_for(self.pods.get(&key).as_deref()) {
                Requeue::This => vec![key],
                Requeue::Nothing => Vec::new(),
                Requeue::AllPending => self.pending_keys(),
            }
        };
        let missed_pod_changes = || {
            self.usage.rebuild(&self.pods);
            self.pending_keys()
        };
        tokio::join!(
            forward(&self.pods, &self.queue, pod_changed, missed_pod_changes),
            forward(&self.nodes, &self.queue, |_| all(), all),
            forward(&self.volumes.claims, &self.queue, |_| all(), all),
            forward(&self.volumes.volumes, &self.queue, |_| all(), all),
            async {
                self.pods.wait_for(1, Duration::MAX).await;
                self.usage.rebuild(&self.pods);
                self.queue.add(self.pending_keys());
            },
        );
    }

    async fn retry_pending(self: Arc<Self>) {
        loop {
            tokio::time::sleep(RETRY_EVERY).await;
            self.queue.add(self.pending_keys());
        }
    }

    async fn work(self: Arc<Self>) {
        let queue = Arc::clone(&self.queue);
        let caches = [
            &self.nodes,
            &self.pods,
            &self.volumes.claims,
            &self.volumes.volumes,
            &self.volumes.classes,
        ];
        wait_synced(&caches).await;
        // kube-scheduler's queue order: higher `spec.priority` first.
        let pods = Arc::clone(&self.pods);
        let priority = move |key: &str| {
            pods.get(key)
                .and_then(|p| p["spec"]["priority"].as_i64())
                .unwrap_or(0)
        };
        work_in_order(queue, "scheduler", priority, |key| {
            let this = Arc::clone(&self);
            async move { this.schedule(&key).await.map(|()| None) }
        })
        .await
    }

    /// Nodes with what is placed on each, counting `pod`'s siblings (same controller): the
    /// usage tables plus the pods assumed on a node but not counted there yet.
    fn candidates<'a>(
        &self,
        key: &str,
        nodes: &'a [Arc<Value>],
        pod: &Value,
    ) -> Vec<Candidate<'a>> {
        let owner = owner_uid(pod);
        let mut extra: HashMap<String, (Requests, usize, usize)> = HashMap::new();
        let mut assumed = self.assumed.lock().unwrap_or_else(PoisonError::into_inner);
        assumed.retain(|key, (_, uid)| {
            !self.usage.counts(key)
                && self
                    .pods
                    .get(key)
                    .is_some_and(|p| is_active(&p) && uid_of(&p) == uid.as_str())
        });
        for (key, (node, _)) in assumed.iter() {
            if let Some(p) = self.pods.get(key) {
                let entry = extra.entry(node.clone()).or_default();
                entry.0 += requests_of(&p);
                entry.1 += 1;
                if owner.is_some() && owner_uid(&p) == owner {
                    entry.2 += 1;
                }
            }
        }
        drop(assumed);
        let nominated = self.nominated_room(key, priority_of(pod));
        nodes
            .iter()
            .map(|node| {
                let name = node["metadata"]["name"].as_str().unwrap_or("");
                let (usage, siblings) = self.usage.of_node(name, owner.as_deref());
                let (mut requested, pods, more) = extra.get(name).copied().unwrap_or_default();
                let (given, waiting) = nominated.get(name).copied().unwrap_or_default();
                requested += usage.requested;
                requested += given;
                Candidate {
                    node,
                    requested,
                    pods: usage.pods + pods + waiting,
                    siblings: siblings + more,
                }
            })
            .collect()
    }

    /// Places the pod at `key`; its binding runs in the background (a failed one un-assumes
    /// the pod and retries it).
    async fn schedule(self: &Arc<Self>, key: &str) -> Result<(), ClientError> {
        let Some(pod) = self.pods.get(key) else {
            return Ok(());
        };
        let uid = uid_of(&pod).to_owned();
        if !pending(&pod)
            || self
                .assumed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(key)
                .is_some_and(|(_, assumed)| *assumed == uid)
        {
            return Ok(());
        }
        let nodes = self.nodes.list(|_| true);
        let claims = match self.volumes.of_pod(&pod) {
            Ok(claims) => claims,
            Err(why) => {
                let message = placement::unschedulable_everywhere(nodes.len(), &why);
                return self.unschedulable(&pod, &message).await;
            }
        };
        let candidates = self.candidates(key, &nodes, &pod);
        let placed = placement::place_or_unfit(&pod, &candidates, |node| claims.reject(node));
        match placed {
            Ok(node) => {
                self.assumed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(key.to_owned(), (node.clone(), uid));
                let Ok(permit) = Arc::clone(&self.binds).acquire_owned().await else {
                    return Ok(()); // never closed
                };
                let this = Arc::clone(self);
                let key = key.to_owned();
                let select: Vec<Value> = claims.to_select().cloned().collect();
                tokio::spawn(async move {
                    let bound = match this.select_node(&select, &node).await {
                        Ok(()) => this.bind(&pod, &node).await,
                        Err(error) => Err(error),
                    };
                    if let Err(error) = bound {
                        this.assumed
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .remove(&key);
                        let tries = this.queue.retry(&key);
                        if !error.is_transient() {
                            tracing::warn!(%key, %node, %error, tries, "scheduler: binding");
                        }
                    }
                    drop(permit);
                });
                Ok(())
            }
            Err(unfit) => self.cannot_place(key, &pod, &candidates, unfit).await,
        }
    }

    /// Names `node` on the pod's WaitForFirstConsumer claims (kube's VolumeBinding PreBind),
    /// so their volume is bound or provisioned there. Unlike kube-scheduler it does not wait
    /// for the claims to be bound before binding the pod: the node's agent waits for them.
    async fn select_node(&self, claims: &[Value], node: &str) -> Result<(), ClientError> {
        for claim in claims {
            let patch = json!({"metadata": {
                "resourceVersion": claim["metadata"]["resourceVersion"],
                "annotations": {volumes::SELECTED_NODE: node}}});
            self.client
                .merge_patch(
                    self.volumes.claims.resource,
                    claim["metadata"]["namespace"].as_str(),
                    claim["metadata"]["name"].as_str().unwrap_or(""),
                    &patch,
                )
                .await?;
        }
        Ok(())
    }

    /// Binds `pod` to `node` and records the Scheduled event.
    async fn bind(&self, pod: &Value, node: &str) -> Result<(), ClientError> {
        let namespace = pod["metadata"]["namespace"].as_str();
        let name = pod["metadata"]["name"].as_str().unwrap_or("");
        let binding = json!({"apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace, "uid": pod["metadata"]["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
        let path = format!(
            "{}/binding",
            resource_path(self.pods.resource, namespace, Some(name))
        );
        self.client
            .request(
                http::Method::POST,
                &path,
                "application/json",
                Some(&binding),
            )
            .await?;
        let message = format!(
            "Successfully assigned {}/{name} to {node}",
            namespace.unwrap_or("")
        );
        record(
            &self.client,
            SCHEDULER_NAME,
            pod,
            EventType::Normal,
            "Scheduled",
            &message,
        )
        .await;
        Ok(())
    }

    /// PodScheduled=False with the message, and a FailedScheduling event, when it changed.
    async fn unschedulable(&self, pod: &Value, message: &str) -> Result<(), ClientError> {
        let mut conditions: Vec<Value> = pod["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if conditions.iter().any(|c| {
            c["type"] == "PodScheduled" && c["status"] == "False" && c["message"] == message
        }) {
            return Ok(());
        }
        conditions.retain(|c| c["type"] != "PodScheduled");
        conditions.push(json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": message, "lastProbeTime": null, "lastTransitionTime": crate::api::meta::now()}));
        let patch = json!({"metadata": {"resourceVersion": pod["metadata"]["resourceVersion"]},
                           "status": {"phase": "Pending", "conditions": conditions}});
        self.client
            .merge_patch_status(
                self.pods.resource,
                pod["metadata"]["namespace"].as_str(),
                pod["metadata"]["name"].as_str().unwrap_or(""),
                &patch,
            )
            .await?;
        record(
            &self.client,
            SCHEDULER_NAME,
            pod,
            EventType::Warning,
            "FailedScheduling",
            message,
        )
        .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_a_waiting_pod_or_freed_room_sends_pods_back_to_the_scheduler() {
        let waiting = json!({"spec": {}, "status": {"phase": "Pending"}});
        assert_eq!(requeue_for(Some(&waiting)), Requeue::This);
        let running = json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        assert_eq!(requeue_for(Some(&running)), Requeue::Nothing);
        let done = json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Succeeded"}});
        assert_eq!(requeue_for(Some(&done)), Requeue::AllPending);
        let leaving = json!({"metadata": {"deletionTimestamp": "2026-12-02T00:00:00Z"},
            "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        assert_eq!(requeue_for(Some(&leaving)), Requeue::AllPending);
        assert_eq!(requeue_for(None), Requeue::AllPending, "deleted");
    }
}
