//! The ReplicaSet controller, as kube-controller-manager's (which also runs it, as the
//! replication manager, for core/v1 ReplicationControllers: their selector is a plain label
//! map, their pods' owner `v1` `ReplicationController`): keeps `spec.replicas` active pods
//! made from the template, each owned by the ReplicaSet (controller reference, so the garbage
//! collector removes them with it). Orphan pods matching the selector are adopted, owned pods
//! that no longer match are released. Scale-down deletes the least valuable pods first
//! (unscheduled, pending, not ready, most restarts, newest). `status` counts replicas,
//! fully-labelled, ready and available (ready for `minReadySeconds`) pods and the observed
//! generation. Every create and delete is recorded as an Event; after writing, the controller
//! waits until its pod cache has seen its writes before it decides again (client-go's
//! "expectations").

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::client::{revision_of, ClientError, Loopback};
use super::events::{record, EventType};
use super::informer::Informer;
use super::pods::{self, controller_of};
use super::queue::{follow_owned, wait_synced, work, WorkQueue};
use crate::api::selector::LabelSelector;

/// The most pods one pass creates or deletes (kube-controller-manager's burst).
const BURST: usize = 500;

/// What tells the two kinds this controller keeps apart.
pub struct Flavor {
    api_version: &'static str,
    kind: &'static str,
    /// The Events' source component.
    component: &'static str,
    /// A label map (`ReplicationController`) rather than a LabelSelector.
    map_selector: bool,
}

pub const REPLICA_SET: Flavor = Flavor {
    api_version: "apps/v1",
    kind: "ReplicaSet",
    component: "replicaset-controller",
    map_selector: false,
};

pub const REPLICATION_CONTROLLER: Flavor = Flavor {
    api_version: "v1",
    kind: "ReplicationController",
    component: "replication-controller",
    map_selector: true,
};

impl Flavor {
    /// The owner's pod selector (None: empty or invalid, which validation refuses).
    fn selector(&self, owner: &Value) -> Option<LabelSelector> {
        let selector = &owner["spec"]["selector"];
        let parsed = if self.map_selector {
            LabelSelector::from_object(&json!({ "matchLabels": selector }))
        } else {
            LabelSelector::from_object(selector)
        };
        parsed.ok().filter(|s| !s.is_empty())
    }

    /// The controller reference the owner puts on its pods.
    fn owner_reference(&self, owner: &Value) -> Value {
        json!({
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"],
            "controller": true,
            "blockOwnerDeletion": true,
        })
    }
}

/// Starts the controller of `flavor` over the two caches (`replicasets`: the owners').
pub fn spawn(
    client: Loopback,
    flavor: &'static Flavor,
    replicasets: Arc<Informer>,
    pods: Arc<Informer>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let queue = WorkQueue::new();
    let controller = Arc::new(Controller {
        client,
        flavor,
        replicasets,
        pods,
        queue,
    });
    vec![
        tokio::spawn(Arc::clone(&controller).feed()),
        tokio::spawn(controller.work()),
    ]
}

struct Controller {
    client: Loopback,
    flavor: &'static Flavor,
    replicasets: Arc<Informer>,
    pods: Arc<Informer>,
    queue: Arc<WorkQueue>,
}

impl Controller {
    async fn feed(self: Arc<Self>) {
        follow_owned(&self.replicasets, &self.pods, &self.queue).await
    }

    async fn work(self: Arc<Self>) {
        let queue = Arc::clone(&self.queue);
        let caches = [&self.replicasets, &self.pods];
        wait_synced(&caches).await;
        work(queue, self.flavor.component, |key| {
            let this = Arc::clone(&self);
            async move { this.reconcile(&key).await }
        })
        .await
    }

    /// One pass over the ReplicaSet at `key`; `Some(delay)` to look again after it.
    async fn reconcile(&self, key: &str) -> Result<Option<Duration>, ClientError> {
        let Some(rs) = self.replicasets.get(key) else {
            return Ok(None);
        };
        if !rs["metadata"]["deletionTimestamp"].is_null() {
            return Ok(None); // the garbage collector takes its pods
        }
        let namespace = rs["metadata"]["namespace"].as_str().unwrap_or("default");
        let uid = rs["metadata"]["uid"].as_str().unwrap_or("");
        let Some(selector) = self.flavor.selector(&rs) else {
            return Ok(None); // validation refuses these; nothing safe to do
        };
        let mut written = 0;
        let mut owned = Vec::new();
        for pod in self.pods.list(|p| p["metadata"]["namespace"] == namespace) {
            let matches = selector.matches(&pod);
            match controller_of(&pod) {
                Some(owner) if owner["uid"] == uid => {
                    if matches {
                        owned.push(pod);
                    } else {
                        written = written.max(pods::release(&self.client, &pod, uid).await?);
                    }
                }
                Some(_) => {}
                None if matches && pods::is_active(&pod) => {
                    let adopted =
                        pods::adopt(&self.client, &pod, &self.flavor.owner_reference(&rs)).await?;
                    written = written.max(revision_of(&adopted));
                    owned.push(Arc::new(adopted));
                }
                None => {}
            }
        }
        let mut active: Vec<Arc<Value>> =
            owned.into_iter().filter(|p| pods::is_active(p)).collect();
        let want = rs["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
        // kube's manageReplicas error: reported in the ReplicaFailure condition, then retried.
        let mut failure = None;
        if active.len() < want {
            let missing = (want - active.len()).min(BURST);
            let create = || async {
                self.create_pod(&rs, namespace)
                    .await
                    .map(|p| revision_of(&p))
            };
            match slow_start(missing, create).await {
                Ok(revision) => written = written.max(revision),
                Err(e) => failure = Some(("FailedCreate", e)),
            }
        } else if active.len() > want {
            active.sort_by_key(|p| pods::deletion_rank(p));
            let doomed = active.iter().take((active.len() - want).min(BURST));
            let deleted = futures::future::join_all(doomed.map(|pod| self.delete_pod(&rs, pod)));
            for revision in deleted.await {
                match revision {
                    Ok(revision) => written = written.max(revision),
                    Err(e) => failure = Some(("FailedDelete", e)),
                }
            }
        }
        if written > 0 && !self.pods.wait_for(written, Duration::from_secs(5)).await {
            tracing::debug!(%key, written, "replicaset controller: the pod cache is behind");
        }
        let reported = failure
            .as_ref()
            .map(|(reason, e)| (*reason, e.message.as_str()));
        let again = self.update_status(&rs, &selector, reported).await?;
        match failure {
            Some((_, e)) => Err(e),
            None => Ok(again),
        }
    }

    async fn create_pod(&self, rs: &Value, namespace: &str) -> Result<Value, ClientError> {
        let name = rs["metadata"]["name"].as_str().unwrap_or("");
        let template = &rs["spec"]["template"];
        let mut metadata = json!({
            "generateName": format!("{}-", truncate(name, 57)),
            "namespace": namespace,
            "ownerReferences": [self.flavor.owner_reference(rs)],
        });
        for field in ["labels", "annotations", "finalizers"] {
            if !template["metadata"][field].is_null() {
                metadata[field] = template["metadata"][field].clone();
            }
        }
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
                         "spec": template["spec"]});
        match self
            .client
            .create(self.pods.resource, Some(namespace), &pod)
            .await
        {
            Ok(created) => {
                let message = format!(
                    "Created pod: {}",
                    created["metadata"]["name"].as_str().unwrap_or("")
                );
                record(
                    &self.client,
                    self.flavor.component,
                    rs,
                    EventType::Normal,
                    "SuccessfulCreate",
                    &message,
                )
                .await;
                Ok(created)
            }
            Err(error) => {
                let message = format!("Error creating: {}", error.message);
                record(
                    &self.client,
                    self.flavor.component,
                    rs,
                    EventType::Warning,
                    "FailedCreate",
                    &message,
                )
                .await;
                Err(error)
            }
        }
    }

    /// Deletes `pod`; the revision of the delete (0 if it was gone already).
    async fn delete_pod(&self, rs: &Value, pod: &Value) -> Result<i64, ClientError> {
        let name = pod["metadata"]["name"].as_str().unwrap_or("");
        let namespace = pod["metadata"]["namespace"].as_str();
        let options = json!({"preconditions": {"uid": pod["metadata"]["uid"]}});
        match self
            .client
            .delete(self.pods.resource, namespace, name, &options)
            .await
        {
            Ok(deleted) => {
                let message = format!("Deleted pod: {name}");
                record(
                    &self.client,
                    self.flavor.component,
                    rs,
                    EventType::Normal,
                    "SuccessfulDelete",
                    &message,
                )
                .await;
                Ok(revision_of(&deleted))
            }
            Err(e) if e.is_not_found() => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Writes the status the pods show, with the `ReplicaFailure` condition of `failure`
    /// (its reason and message) or without one.
    async fn update_status(
        &self,
        rs: &Value,
        selector: &LabelSelector,
        failure: Option<(&str, &str)>,
    ) -> Result<Option<Duration>, ClientError> {
        let uid = &rs["metadata"]["uid"];
        let min_ready = rs["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
        let template_labels = &rs["spec"]["template"]["metadata"]["labels"];
        let mine: Vec<Arc<Value>> = self.pods.list(|p| {
            p["metadata"]["namespace"] == rs["metadata"]["namespace"]
                && controller_of(p).is_some_and(|o| o["uid"] == *uid)
                && selector.matches(p)
                && pods::is_active(p)
        });
        let now = time::OffsetDateTime::now_utc();
        let mut again: Option<Duration> = None;
        let (mut labelled, mut ready, mut available) = (0, 0, 0);
        for pod in &mine {
            if labels_include(&pod["metadata"]["labels"], template_labels) {
                labelled += 1;
            }
            if let Some(since) = pods::ready_since(pod) {
                ready += 1;
                let left = min_ready - (now - since).whole_seconds();
                if left <= 0 {
                    available += 1;
                } else {
                    let wait = Duration::from_secs(left as u64);
                    again = Some(again.map_or(wait, |a| a.min(wait)));
                }
            }
        }
        let omit_zero = |n: usize| if n == 0 { Value::Null } else { json!(n) };
        let conditions = failure_conditions(&rs["status"]["conditions"], failure, now);
        let status = json!({
            "replicas": mine.len(),
            "fullyLabeledReplicas": omit_zero(labelled),
            "readyReplicas": omit_zero(ready),
            "availableReplicas": omit_zero(available),
            "observedGeneration": rs["metadata"]["generation"],
            "conditions": conditions,
        });
        let current = &rs["status"];
        let same = status
            .as_object()
            .into_iter()
            .flatten()
            .all(|(k, v)| current.get(k).unwrap_or(&Value::Null) == v);
        if !same {
            let name = rs["metadata"]["name"].as_str().unwrap_or("");
            self.client
                .merge_patch_status(
                    self.replicasets.resource,
                    rs["metadata"]["namespace"].as_str(),
                    name,
                    &json!({"status": status}),
                )
                .await?;
        }
        Ok(again)
    }
}

/// `conditions` with kube's `ReplicaFailure` condition set to `failure` (kept as it is when
/// its reason is unchanged), or removed without one; `null` when none is left.
fn failure_conditions(
    conditions: &Value,
    failure: Option<(&str, &str)>,
    now: time::OffsetDateTime,
) -> Value {
    let mut kept: Vec<Value> = conditions
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["type"] != "ReplicaFailure")
        .cloned()
        .collect();
    let current = conditions
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "ReplicaFailure");
    if let Some((reason, message)) = failure {
        let condition = match current {
            Some(c) if c["status"] == "True" && c["reason"] == reason => c.clone(),
            _ => json!({
                "type": "ReplicaFailure", "status": "True", "reason": reason,
                "message": message,
                "lastTransitionTime": now
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
            }),
        };
        kept.push(condition);
    }
    match kept.is_empty() {
        true => Value::Null,
        false => Value::Array(kept),
    }
}

fn labels_include(labels: &Value, wanted: &Value) -> bool {
    wanted
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v))
}

fn truncate(name: &str, max: usize) -> &str {
    match name.char_indices().nth(max) {
        Some((at, _)) => &name[..at],
        None => name,
    }
}

/// Runs `count` calls of `call` in growing concurrent batches (1, 2, 4, …), as
/// kube-controller-manager's `slowStartBatch`: a burst goes out at the store's pace, while a
/// call that fails (a quota, a bad template) stops the pass after a few tries instead of
/// hundreds. The highest revision written, or the first error.
pub async fn slow_start<F, Fut>(count: usize, call: F) -> Result<i64, ClientError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<i64, ClientError>>,
{
    let (mut done, mut batch, mut written) = (0, 1, 0);
    while done < count {
        let size = batch.min(count - done);
        let results = futures::future::join_all((0..size).map(|_| call())).await;
        done += size;
        batch *= 2;
        let mut first_error = None;
        for result in results {
            match result {
                Ok(revision) => written = written.max(revision),
                Err(error) => first_error = first_error.or(Some(error)),
            }
        }
        if let Some(error) = first_error {
            return Err(error);
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn the_replica_failure_condition_is_set_kept_and_removed() {
        let now = time::OffsetDateTime::UNIX_EPOCH;
        let set = failure_conditions(&Value::Null, Some(("FailedCreate", "refused")), now);
        assert_eq!(set[0]["type"], "ReplicaFailure");
        assert_eq!(set[0]["reason"], "FailedCreate");
        assert_eq!(set[0]["message"], "refused");
        assert_eq!(set[0]["lastTransitionTime"], "1970-01-01T00:00:00Z");
        // The same reason again leaves it as it was, as kube's SetCondition does.
        let later = now + time::Duration::seconds(5);
        let again = failure_conditions(&set, Some(("FailedCreate", "refused again")), later);
        assert_eq!(again, set);
        assert_eq!(failure_conditions(&set, None, later), Value::Null);
    }

    #[tokio::test]
    async fn slow_start_doubles_its_batches_and_stops_at_a_failing_one() {
        let calls = AtomicUsize::new(0);
        let ok = || async {
            let n = calls.fetch_add(1, Ordering::SeqCst) as i64;
            Ok(n + 1)
        };
        assert_eq!(slow_start(10, ok).await.ok(), Some(10));
        assert_eq!(calls.load(Ordering::SeqCst), 10);

        let calls = AtomicUsize::new(0);
        let third_fails = || async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n == 2 {
                Err(ClientError {
                    code: http::StatusCode::FORBIDDEN,
                    reason: "Forbidden".into(),
                    message: "exceeded quota".into(),
                })
            } else {
                Ok(n as i64)
            }
        };
        assert!(slow_start(100, third_fails).await.is_err());
        // Batches of 1 and 2 ran; the failure in the second batch stopped the pass.
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
