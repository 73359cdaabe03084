//! The DaemonSet controller, as kube-controller-manager's: one pod per node that should run it
//! — the template's node selector, required node affinity and tolerations (plus the tolerations
//! Kubernetes adds to daemon pods: not-ready/unreachable NoExecute, the pressure taints,
//! unschedulable) against the node's labels and taints. Each pod is pinned to its node by a
//! required node affinity on `metadata.name` and placed by the scheduler, as in Kubernetes.
//! Extra or failed pods and pods on nodes that should not run one are deleted; a node whose
//! pod is terminating gets its new one once the old is gone (and counts as unavailable). RollingUpdate
//! replaces pods of an old template (the `controller-revision-hash` label) while no more than
//! maxUnavailable are unavailable; OnDelete leaves them. `status` counts desired, current,
//! misscheduled, ready, available, updated and unavailable pods. Each template is kept as a
//! ControllerRevision (`history`) for `kubectl rollout history|undo daemonset`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::client::{revision_of, ClientError, Loopback};
use super::deployment::template_hash;
use super::events::{record, EventType};
use super::history::{self, HistoryError};
use super::informer::Informer;
use super::pods::{controller_of, is_active, ready_since};
use super::queue::{forward, parents_of, resync_when_listed, wait_synced, work, WorkQueue};
use super::scheduler::placement::fits_node;

const COMPONENT: &str = "daemonset-controller";
const HASH_LABEL: &str = "controller-revision-hash";

/// The caches it reads.
pub struct Caches {
    pub daemonsets: Arc<Informer>,
    pub pods: Arc<Informer>,
    pub nodes: Arc<Informer>,
}

/// Starts the controller.
pub fn spawn(client: Loopback, caches: Caches) -> Vec<tokio::task::JoinHandle<()>> {
    let controller = Arc::new(Controller {
        client,
        caches,
        queue: WorkQueue::new(),
    });
    vec![
        tokio::spawn(Arc::clone(&controller).feed()),
        tokio::spawn(controller.work()),
    ]
}

struct Controller {
    client: Loopback,
    caches: Caches,
    queue: Arc<WorkQueue>,
}

/// The tolerations Kubernetes gives every daemon pod.
fn daemon_tolerations() -> Vec<Value> {
    let mut out = vec![
        json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}),
    ];
    for key in [
        "disk-pressure",
        "memory-pressure",
        "pid-pressure",
        "unschedulable",
    ] {
        out.push(json!({"key": format!("node.kubernetes.io/{key}"), "operator": "Exists", "effect": "NoSchedule"}));
    }
    out
}

/// The pod the DaemonSet runs on `node` (`None`: not pinned yet, to ask which nodes fit).
fn pod_for(ds: &Value, node: Option<&str>, hash: &str) -> Value {
    let template = &ds["spec"]["template"];
    let mut spec = template["spec"].clone();
    let mut tolerations = spec["tolerations"].as_array().cloned().unwrap_or_default();
    for t in daemon_tolerations() {
        if !tolerations
            .iter()
            .any(|have| have["key"] == t["key"] && have["effect"] == t["effect"])
        {
            tolerations.push(t);
        }
    }
    spec["tolerations"] = json!(tolerations);
    if let Some(node) = node {
        spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] = json!({
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]});
    }
    let mut labels = template["metadata"]["labels"].clone();
    labels[HASH_LABEL] = json!(hash);
    let mut metadata = json!({"generateName": format!("{}-", ds["metadata"]["name"].as_str().unwrap_or("")),
        "labels": labels,
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": ds["metadata"]["name"],
            "uid": ds["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]});
    if !template["metadata"]["annotations"].is_null() {
        metadata["annotations"] = template["metadata"]["annotations"].clone();
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}

/// The node a daemon pod is on, or is pinned to while unscheduled.
fn node_of(pod: &Value) -> Option<String> {
    if let Some(n) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
        return Some(n.to_owned());
    }
    pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"][0]["matchFields"][0]["values"][0]
        .as_str()
        .map(str::to_owned)
}

impl Controller {
    async fn feed(self: Arc<Self>) {
        let c = &self.caches;
        let all = || c.daemonsets.keys();
        tokio::join!(
            forward(&c.daemonsets, &self.queue, |key| vec![key], all),
            forward(
                &c.pods,
                &self.queue,
                |key| parents_of(&c.pods, &c.daemonsets, &key),
                all
            ),
            forward(&c.nodes, &self.queue, |_| all(), all),
            resync_when_listed(&c.daemonsets, &self.queue),
        );
    }

    async fn work(self: Arc<Self>) {
        let queue = Arc::clone(&self.queue);
        let caches = [
            &self.caches.daemonsets,
            &self.caches.pods,
            &self.caches.nodes,
        ];
        wait_synced(&caches).await;
        work(queue, "daemonset", |key| {
            let this = Arc::clone(&self);
            async move { this.reconcile(&key).await }
        })
        .await
    }

    async fn reconcile(&self, key: &str) -> Result<Option<Duration>, ClientError> {
        let Some(ds) = self.caches.daemonsets.get(key) else {
            return Ok(None);
        };
        if !ds["metadata"]["deletionTimestamp"].is_null() {
            return Ok(None);
        }
        let namespace = ds["metadata"]["namespace"].as_str().unwrap_or("default");
        let uid = &ds["metadata"]["uid"];
        let hash = template_hash(
            &ds["spec"]["template"],
            ds["status"]["collisionCount"].as_i64().unwrap_or(0),
        );
        match history::sync(&self.client, &ds, &hash).await {
            Ok(_) => {}
            Err(HistoryError::Client(e)) => return Err(e),
            Err(HistoryError::Collision(_)) => {
                let count = ds["status"]["collisionCount"].as_i64().unwrap_or(0) + 1;
                self.client
                    .merge_patch_status(
                        self.caches.daemonsets.resource,
                        Some(namespace),
                        ds["metadata"]["name"].as_str().unwrap_or(""),
                        &json!({"status": {"collisionCount": count}}),
                    )
                    .await?;
                return Ok(None);
            }
        }
        let probe = pod_for(&ds, None, &hash);
        let nodes = self.caches.nodes.list(|_| true);
        let wanted: Vec<String> = nodes
            .iter()
            .filter(|n| fits_node(&probe, n))
            .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_owned))
            .collect();
        let mut by_node: HashMap<String, Vec<Arc<Value>>> = HashMap::new();
        for pod in self.caches.pods.list(|p| {
            p["metadata"]["namespace"] == namespace
                && controller_of(p).is_some_and(|o| o["uid"] == *uid)
        }) {
            if let Some(node) = node_of(&pod) {
                by_node.entry(node).or_default().push(pod);
            }
        }
        let mut written = 0;
        let mut to_delete: Vec<Arc<Value>> = Vec::new();
        let mut to_create: Vec<String> = Vec::new();
        for (node, pods) in &by_node {
            if !wanted.contains(node) {
                to_delete.extend(
                    pods.iter()
                        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
                        .cloned(),
                );
            }
        }
        let min_ready = ds["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
        let now = time::OffsetDateTime::now_utc();
        let available = |p: &Value| {
            ready_since(p).is_some_and(|since| (now - since).whole_seconds() >= min_ready)
        };
        let mut old_on_wanted: Vec<Arc<Value>> = Vec::new();
        let mut unavailable = 0;
        for node in &wanted {
            let pods = by_node.get(node).cloned().unwrap_or_default();
            // As kube's DaemonSet controller: a node whose daemon pod is still terminating gets
            // its new one once the old is gone (one daemon pod per node, host ports included).
            let terminating = pods
                .iter()
                .any(|p| !p["metadata"]["deletionTimestamp"].is_null());
            let (failed, live): (Vec<_>, Vec<_>) = pods
                .into_iter()
                .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
                .partition(|p| p["status"]["phase"] == "Failed");
            to_delete.extend(failed);
            match live.len() {
                // A node without a live daemon pod counts against maxUnavailable.
                0 if terminating => unavailable += 1,
                0 => {
                    to_create.push(node.clone());
                    unavailable += 1;
                }
                _ => {
                    let mut live = live;
                    live.sort_by_key(|p| {
                        p["metadata"]["creationTimestamp"]
                            .as_str()
                            .unwrap_or("")
                            .to_owned()
                    });
                    to_delete.extend(live.split_off(1));
                    let pod = &live[0];
                    if !available(pod) {
                        unavailable += 1;
                    }
                    if pod["metadata"]["labels"][HASH_LABEL] != hash.as_str() {
                        old_on_wanted.push(Arc::clone(pod));
                    }
                }
            }
        }
        // RollingUpdate: replace old pods while at most maxUnavailable are unavailable
        // (unavailable old ones first).
        let strategy = &ds["spec"]["updateStrategy"];
        if strategy["type"] != "OnDelete" {
            let max = match &strategy["rollingUpdate"]["maxUnavailable"] {
                Value::Number(n) => n.as_i64().unwrap_or(1),
                Value::String(p) => p
                    .trim_end_matches('%')
                    .parse::<i64>()
                    .map_or(1, |pct| (pct * wanted.len() as i64) / 100),
                _ => 1,
            }
            .max(1);
            old_on_wanted.sort_by_key(|p| available(p));
            let mut budget = max - unavailable;
            for pod in old_on_wanted {
                if !available(&pod) {
                    to_delete.push(pod);
                } else if budget > 0 {
                    budget -= 1;
                    to_delete.push(pod);
                }
            }
        }
        for pod in &to_delete {
            let name = pod["metadata"]["name"].as_str().unwrap_or("");
            let options = json!({"preconditions": {"uid": pod["metadata"]["uid"]}});
            match self
                .client
                .delete(self.caches.pods.resource, Some(namespace), name, &options)
                .await
            {
                Ok(out) => {
                    written = written.max(revision_of(&out));
                    record(
                        &self.client,
                        COMPONENT,
                        &ds,
                        EventType::Normal,
                        "SuccessfulDelete",
                        &format!("Deleted pod: {name}"),
                    )
                    .await;
                }
                Err(e) if e.is_transient() => {}
                Err(e) => return Err(e),
            }
        }
        for node in &to_create {
            let created = self
                .client
                .create(
                    self.caches.pods.resource,
                    Some(namespace),
                    &pod_for(&ds, Some(node), &hash),
                )
                .await?;
            written = written.max(revision_of(&created));
            let message = format!(
                "Created pod: {}",
                created["metadata"]["name"].as_str().unwrap_or("")
            );
            record(
                &self.client,
                COMPONENT,
                &ds,
                EventType::Normal,
                "SuccessfulCreate",
                &message,
            )
            .await;
        }
        if written > 0 {
            self.caches
                .pods
                .wait_for(written, Duration::from_secs(5))
                .await;
        }
        self.update_status(&ds, &wanted, &hash, min_ready).await
    }

    async fn update_status(
        &self,
        ds: &Value,
        wanted: &[String],
        hash: &str,
        min_ready: i64,
    ) -> Result<Option<Duration>, ClientError> {
        let uid = &ds["metadata"]["uid"];
        let namespace = ds["metadata"]["namespace"].as_str().unwrap_or("default");
        let pods = self.caches.pods.list(|p| {
            p["metadata"]["namespace"] == namespace
                && controller_of(p).is_some_and(|o| o["uid"] == *uid)
                && is_active(p)
        });
        let now = time::OffsetDateTime::now_utc();
        let (mut current, mut misscheduled, mut ready, mut available, mut updated) =
            (0, 0, 0, 0, 0);
        let mut again = None;
        for pod in &pods {
            let Some(node) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) else {
                continue;
            };
            if !wanted.iter().any(|w| w == node) {
                misscheduled += 1;
                continue;
            }
            current += 1;
            if pod["metadata"]["labels"][HASH_LABEL] == hash {
                updated += 1;
            }
            if let Some(since) = ready_since(pod) {
                ready += 1;
                let left = min_ready - (now - since).whole_seconds();
                if left <= 0 {
                    available += 1;
                } else {
                    again = Some(Duration::from_secs(left as u64));
                }
            }
        }
        let desired = wanted.len() as i64;
        let status = json!({
            "desiredNumberScheduled": desired, "currentNumberScheduled": current,
            "numberMisscheduled": misscheduled, "numberReady": ready,
            "numberAvailable": if available == 0 { Value::Null } else { json!(available) },
            "updatedNumberScheduled": if updated == 0 { Value::Null } else { json!(updated) },
            "numberUnavailable": if desired - available <= 0 { Value::Null } else { json!(desired - available) },
            "observedGeneration": ds["metadata"]["generation"],
        });
        if status
            .as_object()
            .into_iter()
            .flatten()
            .any(|(k, v)| ds["status"].get(k).unwrap_or(&Value::Null) != v)
        {
            self.client
                .merge_patch_status(
                    self.caches.daemonsets.resource,
                    Some(namespace),
                    ds["metadata"]["name"].as_str().unwrap_or(""),
                    &json!({"status": status}),
                )
                .await?;
        }
        Ok(again)
    }
}
