//! The StatefulSet controller, as kube-controller-manager's: pods with a stable identity
//! (`identity`: `<set>-<ordinal>`, hostname and subdomain, their own claims from
//! `volumeClaimTemplates`, made before the pod and never deleted by this controller — the
//! retention policy is Retain, validation refuses the others), made and removed in the order
//! `plan` decides (OrderedReady or Parallel; RollingUpdate down to `partition`, or OnDelete).
//! Each template is a ControllerRevision (`history`); a pod carries its revision's name in
//! `controller-revision-hash`, and a pod below the partition is made again from the current
//! revision's template. Orphan pods named like members and matching the selector are adopted
//! (and given their identity labels), owned pods that stop matching are released. `status` counts replicas, ready, available,
//! current and updated pods and names the current and update revisions, as `kubectl rollout
//! status statefulset` reads them. Writes are recorded as kube's events
//! (`create Pod web-0 in StatefulSet web successful`).

mod identity;
mod plan;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::client::{revision_of, ClientError, Loopback};
use super::deployment::template_hash;
use super::events::{record, EventType};
use super::history::{self, HistoryError};
use super::informer::Informer;
use super::pods::{self, controller_of, ready_since};
use super::queue::{forward, parents_of, resync_when_listed, wait_synced, work, WorkQueue};
use crate::api::selector::LabelSelector;
use identity::{ordinal_of, revision_of_pod};
use plan::{Member, Spec, Step};

const COMPONENT: &str = "statefulset-controller";

/// The caches it reads.
pub struct Caches {
    pub sets: Arc<Informer>,
    pub pods: Arc<Informer>,
    pub claims: Arc<Informer>,
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

/// The set's revisions: which one pods below the partition are made from, and the newest.
struct Revisions {
    current: String,
    current_template: Value,
    update: String,
}

impl Controller {
    async fn feed(self: Arc<Self>) {
        let c = &self.caches;
        let all = || c.sets.keys();
        tokio::join!(
            forward(&c.sets, &self.queue, |key| vec![key], all),
            forward(
                &c.pods,
                &self.queue,
                |key| parents_of(&c.pods, &c.sets, &key),
                all
            ),
            resync_when_listed(&c.sets, &self.queue),
        );
    }

    async fn work(self: Arc<Self>) {
        let queue = Arc::clone(&self.queue);
        let caches = [&self.caches.sets, &self.caches.pods, &self.caches.claims];
        wait_synced(&caches).await;
        work(queue, "statefulset", |key| {
            let this = Arc::clone(&self);
            async move { this.reconcile(&key).await }
        })
        .await
    }

    async fn reconcile(&self, key: &str) -> Result<Option<Duration>, ClientError> {
        let Some(set) = self.caches.sets.get(key) else {
            return Ok(None);
        };
        if !set["metadata"]["deletionTimestamp"].is_null() {
            return Ok(None); // the garbage collector takes its pods
        }
        let selector = match LabelSelector::from_object(&set["spec"]["selector"]) {
            Ok(s) if !s.is_empty() => s,
            _ => return Ok(None), // validation refuses these; nothing safe to do
        };
        let Some(revisions) = self.revisions(&set).await? else {
            return Ok(None); // collisionCount raised: the status change brings the set back
        };
        let owned = self.claim_pods(&set, &selector).await?;
        let name = set["metadata"]["name"].as_str().unwrap_or("");
        let members: Vec<Member> = owned
            .iter()
            .filter_map(|p| {
                Some(Member {
                    ordinal: ordinal_of(name, p)?,
                    terminating: !p["metadata"]["deletionTimestamp"].is_null(),
                    failed: p["status"]["phase"] == "Failed",
                    running_and_ready: running_and_ready(p),
                    revision: revision_of_pod(p).to_owned(),
                })
            })
            .collect();
        let spec = spec_of(&set, &revisions.update);
        let mut written = 0;
        for pod in &owned {
            let Some(ordinal) = ordinal_of(name, pod) else {
                continue;
            };
            if ordinal < spec.replicas && pod["metadata"]["deletionTimestamp"].is_null() {
                self.create_claims(&set, ordinal).await?;
                written = written.max(self.restore_identity(pod, ordinal).await?);
            }
        }
        for step in plan::plan(&spec, &members) {
            let revision = match step {
                Step::Create(ordinal) => {
                    let (template, revision) = match spec.rolling {
                        Some(partition) if ordinal < partition => {
                            (&revisions.current_template, &revisions.current)
                        }
                        _ => (&set["spec"]["template"], &revisions.update),
                    };
                    self.create_pod(&set, template, revision, ordinal).await?
                }
                Step::Delete(ordinal) => {
                    let Some(pod) = owned.iter().find(|p| ordinal_of(name, p) == Some(ordinal))
                    else {
                        continue;
                    };
                    self.delete_pod(&set, pod).await?
                }
            };
            written = written.max(revision);
        }
        if written > 0
            && !self
                .caches
                .pods
                .wait_for(written, Duration::from_secs(5))
                .await
        {
            tracing::debug!(%key, written, "statefulset controller: the pod cache is behind");
        }
        self.update_status(&set, &revisions).await
    }

    /// Keeps the history; `None` when the template's revision name collided (the set's
    /// `collisionCount` is raised).
    async fn revisions(&self, set: &Value) -> Result<Option<Revisions>, ClientError> {
        let collisions = set["status"]["collisionCount"].as_i64().unwrap_or(0);
        let hash = template_hash(&set["spec"]["template"], collisions);
        let listed = match history::sync(&self.client, set, &hash).await {
            Ok(listed) => listed,
            Err(HistoryError::Client(e)) => return Err(e),
            Err(HistoryError::Collision(_)) => {
                self.patch_status(set, &json!({"collisionCount": collisions + 1}))
                    .await?;
                return Ok(None);
            }
        };
        let name = set["metadata"]["name"].as_str().unwrap_or("");
        let update = format!("{name}-{hash}");
        let known = set["status"]["currentRevision"]
            .as_str()
            .and_then(|c| listed.iter().find(|r| r["metadata"]["name"] == c));
        let (current, current_template) = match known {
            Some(r) if r["metadata"]["name"] != update.as_str() => {
                let mut template = r["data"]["spec"]["template"].clone();
                if let Some(map) = template.as_object_mut() {
                    map.remove("$patch");
                }
                let current = r["metadata"]["name"].as_str().unwrap_or("").to_owned();
                (current, template)
            }
            _ => (update.clone(), set["spec"]["template"].clone()),
        };
        Ok(Some(Revisions {
            current,
            current_template,
            update,
        }))
    }

    /// The set's pods after adopting orphan members and releasing pods that stopped
    /// matching.
    async fn claim_pods(
        &self,
        set: &Value,
        selector: &LabelSelector,
    ) -> Result<Vec<Arc<Value>>, ClientError> {
        let namespace = &set["metadata"]["namespace"];
        let uid = set["metadata"]["uid"].as_str().unwrap_or("");
        let name = set["metadata"]["name"].as_str().unwrap_or("");
        let mut owned = Vec::new();
        for pod in self
            .caches
            .pods
            .list(|p| p["metadata"]["namespace"] == *namespace)
        {
            let matches = selector.matches(&pod);
            match controller_of(&pod) {
                Some(owner) if owner["uid"] == uid => {
                    if matches {
                        owned.push(pod);
                    } else {
                        pods::release(&self.client, &pod, uid).await?;
                    }
                }
                None if matches && pods::is_active(&pod) && ordinal_of(name, &pod).is_some() => {
                    let owner = identity::owner_reference(set);
                    owned.push(Arc::new(pods::adopt(&self.client, &pod, &owner).await?));
                }
                _ => {}
            }
        }
        Ok(owned)
    }

    /// Puts back the identity labels of a member pod that lacks them (an adopted orphan, a
    /// user's edit), as kube's `updateStatefulPod`; the revision written, 0 if none.
    async fn restore_identity(&self, pod: &Value, ordinal: usize) -> Result<i64, ClientError> {
        let labels = &pod["metadata"]["labels"];
        let name = &pod["metadata"]["name"];
        let index = ordinal.to_string();
        if labels[identity::POD_NAME_LABEL] == *name
            && labels[identity::POD_INDEX_LABEL] == index.as_str()
        {
            return Ok(0);
        }
        let patch = json!({"metadata": {
            "labels": {identity::POD_NAME_LABEL: name, identity::POD_INDEX_LABEL: index},
            "resourceVersion": pod["metadata"]["resourceVersion"],
        }});
        match self
            .client
            .merge_patch(
                self.caches.pods.resource,
                pod["metadata"]["namespace"].as_str(),
                name.as_str().unwrap_or(""),
                &patch,
            )
            .await
        {
            Ok(stored) => Ok(revision_of(&stored)),
            // Changed or gone meanwhile: the pass that sees the change looks again.
            Err(e) if e.is_conflict() || e.is_not_found() => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Creates the claims of `ordinal` that do not exist yet.
    async fn create_claims(&self, set: &Value, ordinal: usize) -> Result<(), ClientError> {
        let namespace = set["metadata"]["namespace"].as_str();
        let set_name = set["metadata"]["name"].as_str().unwrap_or("");
        let pod_name = format!("{set_name}-{ordinal}");
        for claim in identity::claims(set, ordinal) {
            let claim_name = claim["metadata"]["name"].as_str().unwrap_or("");
            let cached = self.caches.claims.list(|c| {
                c["metadata"]["namespace"].as_str() == namespace
                    && c["metadata"]["name"] == claim_name
            });
            if !cached.is_empty() {
                continue;
            }
            match self
                .client
                .create(self.caches.claims.resource, namespace, &claim)
                .await
            {
                Ok(_) => {
                    let message = format!(
                        "create Claim {claim_name} Pod {pod_name} in StatefulSet {set_name} success"
                    );
                    self.event(set, EventType::Normal, "SuccessfulCreate", &message)
                        .await;
                }
                Err(e) if e.is_already_exists() => {}
                Err(e) => {
                    let message = format!(
                        "create Claim {claim_name} for Pod {pod_name} in StatefulSet {set_name} failed error: {}",
                        e.message
                    );
                    self.event(set, EventType::Warning, "FailedCreate", &message)
                        .await;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Creates the claims, then the pod of `ordinal`; the revision written.
    async fn create_pod(
        &self,
        set: &Value,
        template: &Value,
        revision: &str,
        ordinal: usize,
    ) -> Result<i64, ClientError> {
        self.create_claims(set, ordinal).await?;
        let pod = identity::pod(set, template, revision, ordinal);
        let namespace = set["metadata"]["namespace"].as_str();
        let set_name = set["metadata"]["name"].as_str().unwrap_or("");
        let pod_name = pod["metadata"]["name"].as_str().unwrap_or("").to_owned();
        match self
            .client
            .create(self.caches.pods.resource, namespace, &pod)
            .await
        {
            Ok(created) => {
                let message = format!("create Pod {pod_name} in StatefulSet {set_name} successful");
                self.event(set, EventType::Normal, "SuccessfulCreate", &message)
                    .await;
                Ok(revision_of(&created))
            }
            // The old pod of this name is still going: the next pass sees it.
            Err(e) if e.is_already_exists() => Ok(0),
            Err(e) => {
                let message = format!(
                    "create Pod {pod_name} in StatefulSet {set_name} failed error: {}",
                    e.message
                );
                self.event(set, EventType::Warning, "FailedCreate", &message)
                    .await;
                Err(e)
            }
        }
    }

    /// Deletes `pod` (only that incarnation: its uid is the precondition); the revision of
    /// the delete, 0 if it was gone.
    async fn delete_pod(&self, set: &Value, pod: &Value) -> Result<i64, ClientError> {
        let pod_name = pod["metadata"]["name"].as_str().unwrap_or("");
        let set_name = set["metadata"]["name"].as_str().unwrap_or("");
        let options = json!({"preconditions": {"uid": pod["metadata"]["uid"]}});
        match self
            .client
            .delete(
                self.caches.pods.resource,
                pod["metadata"]["namespace"].as_str(),
                pod_name,
                &options,
            )
            .await
        {
            Ok(deleted) => {
                let message = format!("delete Pod {pod_name} in StatefulSet {set_name} successful");
                self.event(set, EventType::Normal, "SuccessfulDelete", &message)
                    .await;
                Ok(revision_of(&deleted))
            }
            Err(e) if e.is_not_found() || e.is_conflict() => Ok(0),
            Err(e) => {
                let message = format!(
                    "delete Pod {pod_name} in StatefulSet {set_name} failed error: {}",
                    e.message
                );
                self.event(set, EventType::Warning, "FailedDelete", &message)
                    .await;
                Err(e)
            }
        }
    }

    async fn event(&self, set: &Value, kind: EventType, reason: &str, message: &str) {
        record(&self.client, COMPONENT, set, kind, reason, message).await;
    }

    async fn update_status(
        &self,
        set: &Value,
        revisions: &Revisions,
    ) -> Result<Option<Duration>, ClientError> {
        let uid = &set["metadata"]["uid"];
        let name = set["metadata"]["name"].as_str().unwrap_or("");
        let mine = self.caches.pods.list(|p| {
            p["metadata"]["namespace"] == set["metadata"]["namespace"]
                && controller_of(p).is_some_and(|o| o["uid"] == *uid)
                && ordinal_of(name, p).is_some()
        });
        let min_ready = set["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
        let now = time::OffsetDateTime::now_utc();
        let mut again = None;
        let (mut ready, mut available, mut current, mut updated) = (0, 0, 0, 0);
        for pod in &mine {
            if running_and_ready(pod) {
                ready += 1;
                let since = ready_since(pod).unwrap_or(now);
                let left = min_ready - (now - since).whole_seconds();
                if left <= 0 {
                    available += 1;
                } else {
                    let wait = Duration::from_secs(left as u64);
                    again = Some(again.map_or(wait, |a: Duration| a.min(wait)));
                }
            }
            if pod["metadata"]["deletionTimestamp"].is_null() {
                let revision = revision_of_pod(pod);
                current += usize::from(revision == revisions.current);
                updated += usize::from(revision == revisions.update);
            }
        }
        let replicas = mine.len();
        let mut current_revision = revisions.current.as_str();
        // kube's completeRollingUpdate: every pod updated and ready makes the update revision
        // current.
        let rolling = set["spec"]["updateStrategy"]["type"] != "OnDelete";
        if rolling && updated == replicas && ready == replicas {
            current_revision = &revisions.update;
            current = updated;
        }
        let omit_zero = |n: usize| if n == 0 { Value::Null } else { json!(n) };
        let status = json!({
            "observedGeneration": set["metadata"]["generation"],
            "replicas": replicas,
            "readyReplicas": omit_zero(ready),
            "currentReplicas": omit_zero(current),
            "updatedReplicas": omit_zero(updated),
            "availableReplicas": available,
            "currentRevision": current_revision,
            "updateRevision": revisions.update,
            "collisionCount": set["status"]["collisionCount"].as_i64().unwrap_or(0),
        });
        let same = status
            .as_object()
            .into_iter()
            .flatten()
            .all(|(k, v)| set["status"].get(k).unwrap_or(&Value::Null) == v);
        if !same {
            self.patch_status(set, &status).await?;
        }
        Ok(again)
    }

    async fn patch_status(&self, set: &Value, status: &Value) -> Result<(), ClientError> {
        self.client
            .merge_patch_status(
                self.caches.sets.resource,
                set["metadata"]["namespace"].as_str(),
                set["metadata"]["name"].as_str().unwrap_or(""),
                &json!({"status": status}),
            )
            .await
            .map(|_| ())
    }
}

/// Phase Running and condition Ready (kube's `isRunningAndReady`).
fn running_and_ready(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running" && ready_since(pod).is_some()
}

/// What `plan` needs of the set's spec.
fn spec_of(set: &Value, update_revision: &str) -> Spec {
    let spec = &set["spec"];
    let rolling = match spec["updateStrategy"]["type"].as_str() {
        Some("OnDelete") => None,
        _ => Some(
            spec["updateStrategy"]["rollingUpdate"]["partition"]
                .as_u64()
                .unwrap_or(0) as usize,
        ),
    };
    Spec {
        replicas: spec["replicas"].as_u64().unwrap_or(1) as usize,
        ordered: spec["podManagementPolicy"] != "Parallel",
        rolling,
        update_revision: update_revision.to_owned(),
    }
}
