//! The Deployment controller, as kube-controller-manager's: a Deployment owns ReplicaSets, one
//! per pod template (named `<deployment>-<pod-template-hash>`, the hash label added to its
//! selector and template). The ReplicaSet whose template equals the Deployment's is the new one;
//! RollingUpdate grows it within maxSurge and shrinks the old ones within maxUnavailable
//! (`rollout`), Recreate empties the old ones before the new one starts. Revisions live in the
//! `deployment.kubernetes.io/revision` annotation (an old template coming back — `kubectl
//! rollout undo` — gets the next revision), old empty ReplicaSets beyond
//! `revisionHistoryLimit` are deleted, a paused Deployment only scales, and the status with its
//! conditions comes from `status`. Scaling is recorded as `ScalingReplicaSet` events.

mod hash;
mod proportion;
mod rollout;
mod status;
mod sync;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::client::{ClientError, Loopback};
use super::informer::Informer;
use super::queue::{follow_owned, wait_synced, work, WorkQueue};
use crate::api::selector::LabelSelector;
use hash::same_template;
pub(crate) use hash::template_hash;
use rollout::Counts;
use sync::Pass;

const COMPONENT: &str = "deployment-controller";
const REVISION: &str = "deployment.kubernetes.io/revision";
const DESIRED: &str = "deployment.kubernetes.io/desired-replicas";
const MAX: &str = "deployment.kubernetes.io/max-replicas";
/// Annotations of the Deployment that are not copied to its ReplicaSets.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    DESIRED,
    MAX,
];

/// Starts the controller over the two caches.
pub fn spawn(
    client: Loopback,
    deployments: Arc<Informer>,
    replicasets: Arc<Informer>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let controller = Arc::new(Controller {
        client,
        deployments,
        replicasets,
        queue: WorkQueue::new(),
    });
    vec![
        tokio::spawn(Arc::clone(&controller).feed()),
        tokio::spawn(controller.work()),
    ]
}

struct Controller {
    client: Loopback,
    deployments: Arc<Informer>,
    replicasets: Arc<Informer>,
    queue: Arc<WorkQueue>,
}

impl Controller {
    async fn feed(self: Arc<Self>) {
        follow_owned(&self.deployments, &self.replicasets, &self.queue).await
    }

    async fn work(self: Arc<Self>) {
        let queue = Arc::clone(&self.queue);
        let caches = [&self.deployments, &self.replicasets];
        wait_synced(&caches).await;
        work(queue, "deployment", |key| {
            let this = Arc::clone(&self);
            async move { this.reconcile(&key).await }
        })
        .await
    }

    async fn reconcile(&self, key: &str) -> Result<Option<Duration>, ClientError> {
        let Some(d) = self.deployments.get(key) else {
            return Ok(None);
        };
        if !d["metadata"]["deletionTimestamp"].is_null() {
            return Ok(None);
        }
        let Ok(selector) = LabelSelector::from_object(&d["spec"]["selector"]) else {
            return Ok(None);
        };
        if selector.is_empty() {
            return Ok(None);
        }
        let mut pass = Pass {
            c: self,
            d: &d,
            written: 0,
            created: None,
        };
        let mut all = pass.owned_replicasets(&selector).await?;
        all.sort_by(|a, b| {
            let created = |rs: &Value| {
                rs["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned()
            };
            created(a)
                .cmp(&created(b))
                .then_with(|| rs_name(a).cmp(rs_name(b)))
        });
        let desired = d["spec"]["replicas"].as_i64().unwrap_or(1).max(0);
        let template = &d["spec"]["template"];
        let new_index = all
            .iter()
            .position(|rs| same_template(&rs["spec"]["template"], template));
        let recreate = d["spec"]["strategy"]["type"] == "Recreate";
        let (surge, unavailable) = if recreate {
            (0, desired)
        } else {
            rollout::surge_and_unavailable(&d["spec"]["strategy"]["rollingUpdate"], desired)
        };
        let paused = d["spec"]["paused"] == true;
        let mut new = new_index.map(|i| all.remove(i));
        let olds = all;
        let status_replicas = d["status"]["replicas"].as_i64().unwrap_or(0);
        if !recreate && scaling_event(new.as_ref(), &olds, desired) {
            // Scaled mid-rollout: spread the change over the sets; the rollout goes on at the
            // next pass, as kube-controller-manager does.
            pass.proportional(new.as_ref(), &olds, desired, surge, status_replicas)
                .await?;
        } else if !paused {
            if recreate {
                new = pass.recreate(new, &olds, desired).await?;
            } else {
                new = pass
                    .rolling(new, &olds, desired, surge, unavailable)
                    .await?;
            }
        } else if let Some(rs) = &new {
            if olds
                .iter()
                .all(|o| o["spec"]["replicas"].as_i64().unwrap_or(0) == 0)
            {
                pass.scale(rs, desired, desired + surge).await?;
            }
        }
        if let Some(rs) = &new {
            pass.keep_revision(rs, &olds).await?;
        }
        pass.cleanup(&olds).await?;
        if pass.written > 0 {
            self.replicasets
                .wait_for(pass.written, Duration::from_secs(5))
                .await;
        }
        // The status reads the ReplicaSets as the cache has them now.
        let fresh = |rs: &Value| {
            let key = format!(
                "{}{}/{}",
                self.replicasets.resource.key_prefix(),
                rs["metadata"]["namespace"].as_str().unwrap_or(""),
                rs_name(rs)
            );
            self.replicasets.get(&key)
        };
        let new = new.and_then(|rs| fresh(&rs));
        let mut current: Vec<Arc<Value>> = olds.iter().filter_map(|rs| fresh(rs)).collect();
        current.extend(new.clone());
        let (status, recheck) = status::compute(&status::Pass {
            deployment: &d,
            new: new.as_deref(),
            all: &current,
            max_unavailable: unavailable,
            created: pass.created.clone(),
            now: time::OffsetDateTime::now_utc(),
        });
        if status::differs(&d["status"], &status) {
            self.client
                .merge_patch_status(
                    self.deployments.resource,
                    d["metadata"]["namespace"].as_str(),
                    rs_name(&d),
                    &json!({ "status": status }),
                )
                .await?;
        }
        Ok(recheck)
    }
}

fn rs_name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or("")
}

/// Whether several ReplicaSets have replicas and one of them was sized for another desired
/// count than the Deployment's now (`isScalingEvent` with more than one active set).
fn scaling_event(new: Option<&Arc<Value>>, olds: &[Arc<Value>], desired: i64) -> bool {
    let active: Vec<&Arc<Value>> = new
        .into_iter()
        .chain(olds)
        .filter(|rs| replicas(rs) > 0)
        .collect();
    active.len() > 1
        && active.iter().any(|rs| {
            rs["metadata"]["annotations"][DESIRED]
                .as_str()
                .and_then(|s| s.parse::<i64>().ok())
                .is_some_and(|n| n != desired)
        })
}

fn replicas(rs: &Value) -> i64 {
    rs["spec"]["replicas"].as_i64().unwrap_or(0)
}

fn counts(rs: &Value) -> Counts {
    Counts {
        replicas: replicas(rs),
        available: rs["status"]["availableReplicas"].as_i64().unwrap_or(0),
    }
}

fn revision(rs: &Value) -> i64 {
    rs["metadata"]["annotations"][REVISION]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}
