//! The disruption controller, as kube-controller-manager's: each PodDisruptionBudget's status
//! from the pods its selector picks in its namespace — `expectedPods` (the number of those
//! pods for an integer `minAvailable`; else the replicas of their controllers: a ReplicaSet's
//! Deployment or the ReplicaSet, a StatefulSet), `desiredHealthy` (`minAvailable`, or the
//! expected pods less `maxUnavailable`; percentages rounded up), `currentHealthy` (Ready
//! pods not being deleted and not just evicted), `disruptionsAllowed` and the
//! `DisruptionAllowed` condition. An eviction (`api::eviction`) takes one allowed disruption
//! and records the pod in `disruptedPods` until the pod is gone (or 2 minutes passed). A pass
//! on every change of budgets or pods, and every 30 s.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::client::Loopback;
use super::informer::Informer;
use super::queue::wait_synced;
use crate::api::path::object_key;
use crate::api::selector::LabelSelector;

const RESYNC: Duration = Duration::from_secs(30);
/// How long an evicted pod not yet deleted stays out of `currentHealthy` (kube's
/// DeletionTimeout).
const DISRUPTED_FOR: time::Duration = time::Duration::minutes(2);

/// The caches it reads.
pub struct Caches {
    pub budgets: Arc<Informer>,
    pub pods: Arc<Informer>,
    pub replicasets: Arc<Informer>,
    pub replication_controllers: Arc<Informer>,
    pub deployments: Arc<Informer>,
    pub statefulsets: Arc<Informer>,
}

pub fn spawn(client: Loopback, caches: Caches) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut budget_changes = caches.budgets.subscribe();
        let mut pod_changes = caches.pods.subscribe();
        wait_synced(&[
            &caches.budgets,
            &caches.pods,
            &caches.replicasets,
            &caches.deployments,
            &caches.statefulsets,
            &caches.replication_controllers,
        ])
        .await;
        loop {
            pass(&client, &caches).await;
            tokio::select! {
                _ = budget_changes.recv() => {}
                _ = pod_changes.recv() => {}
                _ = tokio::time::sleep(RESYNC) => {}
            }
            // A burst of changes makes one pass.
            tokio::time::sleep(Duration::from_millis(50)).await;
            while budget_changes.try_recv().is_ok() || pod_changes.try_recv().is_ok() {}
        }
    })
}

async fn pass(client: &Loopback, caches: &Caches) {
    let now = time::OffsetDateTime::now_utc();
    for budget in caches.budgets.list(|_| true) {
        let ns = budget["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = budget["metadata"]["name"].as_str().unwrap_or_default();
        let pods = caches
            .pods
            .list(|p| p["metadata"]["namespace"].as_str() == Some(ns));
        let scale = |kind: &str, owner: &str| controller_scale(caches, ns, kind, owner);
        let status = status(&budget, &pods, &scale, now);
        if same_status(&budget["status"], &status) {
            continue;
        }
        let mut patch = json!({ "status": status });
        // A merge patch removes a key only by naming it null.
        if status["disruptedPods"].is_null() && !budget["status"]["disruptedPods"].is_null() {
            patch["status"]["disruptedPods"] = Value::Null;
        }
        if let Err(error) = client
            .merge_patch_status(caches.budgets.resource, Some(ns), name, &patch)
            .await
        {
            tracing::debug!(%error, namespace = ns, budget = name, "PodDisruptionBudget status");
        }
    }
}

/// Whether `current` already says what `desired` says (the condition's transition time
/// aside).
fn same_status(current: &Value, desired: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(cs) = v["conditions"].as_array_mut() {
            for c in cs {
                if let Some(c) = c.as_object_mut() {
                    c.remove("lastTransitionTime");
                }
            }
        }
        v
    };
    strip(current) == strip(desired)
}

/// The replicas of the controller `kind`/`name` in `ns` that manages pods: a ReplicaSet's own
/// Deployment's, else the ReplicaSet's; a StatefulSet's, a ReplicationController's. `None`
/// for any other.
fn controller_scale(caches: &Caches, ns: &str, kind: &str, name: &str) -> Option<(String, i64)> {
    let replicas = |o: &Value| o["spec"]["replicas"].as_i64().unwrap_or(1);
    let uid = |o: &Value| o["metadata"]["uid"].as_str().unwrap_or_default().to_owned();
    let cached = |informer: &Informer, name: &str| {
        informer.get(&object_key(informer.resource, Some(ns), name))
    };
    let own = |informer: &Informer| cached(informer, name).map(|o| (uid(&o), replicas(&o)));
    match kind {
        "ReplicaSet" => {
            let rs = cached(&caches.replicasets, name)?;
            let deployment = owner(&rs)
                .filter(|(k, _)| k == "Deployment")
                .and_then(|(_, d)| cached(&caches.deployments, &d));
            match deployment {
                Some(d) => Some((uid(&d), replicas(&d))),
                None => Some((uid(&rs), replicas(&rs))),
            }
        }
        "StatefulSet" => own(&caches.statefulsets),
        "ReplicationController" => own(&caches.replication_controllers),
        _ => None,
    }
}

/// The kind and name of `object`'s controller.
fn owner(object: &Value) -> Option<(String, String)> {
    object["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (s("kind"), s("name"))
        })
}

/// A controller's (uid, replicas) by its kind and name (`None`: not a controller whose scale
/// is known).
pub type ScaleOf<'a> = dyn Fn(&str, &str) -> Option<(String, i64)> + 'a;

/// The pods of `pods` that `budget`'s selector picks (a missing selector picks none, an
/// empty one all).
pub fn selected<'a>(budget: &Value, pods: &'a [Arc<Value>]) -> Vec<&'a Arc<Value>> {
    let selector = &budget["spec"]["selector"];
    if selector.is_null() {
        return Vec::new();
    }
    let Ok(selector) = LabelSelector::from_object(selector) else {
        return Vec::new();
    };
    pods.iter().filter(|p| selector.matches(p)).collect()
}

/// Ready and not being deleted: a pod a budget counts as healthy.
pub fn is_healthy(pod: &Value) -> bool {
    pod["metadata"]["deletionTimestamp"].is_null()
        && pod["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// `value` (an integer or "N%") of `total`, percentages rounded up.
fn scaled(value: &Value, total: i64) -> Result<i64, String> {
    match value {
        Value::Number(n) => n.as_i64().ok_or_else(|| format!("invalid value {n}")),
        Value::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            Ok((pct * total + 99) / 100)
        }
        other => Err(format!("invalid value {other}")),
    }
}

/// The status `budget` should have over the pods of its namespace; `scale` answers a
/// controller's (uid, replicas).
pub fn status(
    budget: &Value,
    pods: &[Arc<Value>],
    scale: &ScaleOf<'_>,
    now: time::OffsetDateTime,
) -> Value {
    let picked = selected(budget, pods);
    let spec = &budget["spec"];
    let expected_and_desired = || -> Result<(i64, i64), String> {
        if let Some(min) = spec["minAvailable"].as_i64() {
            return Ok((picked.len() as i64, min));
        }
        let mut controllers: BTreeMap<String, i64> = BTreeMap::new();
        for pod in &picked {
            let name = pod["metadata"]["name"].as_str().unwrap_or_default();
            let (uid, replicas) = owner(pod)
                .and_then(|(kind, owner)| scale(&kind, &owner))
                .ok_or_else(|| format!("found no controllers for pod {name:?}"))?;
            controllers.insert(uid, replicas);
        }
        let expected: i64 = controllers.values().sum();
        if !spec["minAvailable"].is_null() {
            return Ok((expected, scaled(&spec["minAvailable"], expected)?));
        }
        let unavailable = match &spec["maxUnavailable"] {
            Value::Null => 0,
            v => scaled(v, expected)?,
        };
        Ok((expected, (expected - unavailable).max(0)))
    };
    let disrupted = still_disrupted(budget, &picked, now);
    let healthy = picked
        .iter()
        .filter(|p| is_healthy(p))
        .filter(|p| !disrupted.contains_key(p["metadata"]["name"].as_str().unwrap_or_default()))
        .count() as i64;
    let stamp = crate::api::meta::now();
    let generation = budget["metadata"]["generation"].clone();
    let (expected, desired, allowed, condition) = match expected_and_desired() {
        Ok((expected, desired)) => {
            let allowed = (healthy - desired).max(0);
            let condition = match allowed > 0 {
                true => json!({"type": "DisruptionAllowed", "status": "True",
                    "reason": "SufficientPods", "message": ""}),
                false => json!({"type": "DisruptionAllowed", "status": "False",
                    "reason": "InsufficientPods", "message": ""}),
            };
            (expected, desired, allowed, condition)
        }
        Err(why) => (
            0,
            0,
            0,
            json!({"type": "DisruptionAllowed", "status": "False", "reason": "SyncFailed",
                "message": why}),
        ),
    };
    let mut condition = condition;
    condition["observedGeneration"] = generation.clone();
    condition["lastTransitionTime"] = transition(&budget["status"], &condition, &stamp);
    let mut status = json!({
        "observedGeneration": generation,
        "expectedPods": expected,
        "desiredHealthy": desired,
        "currentHealthy": healthy,
        "disruptionsAllowed": allowed,
        "conditions": [condition],
    });
    if !disrupted.is_empty() {
        status["disruptedPods"] = json!(disrupted);
    }
    status
}

/// The condition's transition time: the current one's while its status is unchanged.
fn transition(current: &Value, condition: &Value, now: &str) -> Value {
    current["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == condition["type"]))
        .filter(|c| c["status"] == condition["status"])
        .map(|c| c["lastTransitionTime"].clone())
        .unwrap_or_else(|| json!(now))
}

/// The `disruptedPods` entries still standing: the pod is there, not being deleted, and was
/// evicted less than [`DISRUPTED_FOR`] ago.
fn still_disrupted(
    budget: &Value,
    picked: &[&Arc<Value>],
    now: time::OffsetDateTime,
) -> BTreeMap<String, Value> {
    let present: BTreeSet<&str> = picked
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|p| p["metadata"]["name"].as_str())
        .collect();
    let recent = |at: &Value| {
        at.as_str()
            .and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .is_some_and(|t| now - t < DISRUPTED_FOR)
    };
    budget["status"]["disruptedPods"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(pod, at)| present.contains(pod.as_str()) && recent(at))
        .map(|(pod, at)| (pod.clone(), at.clone()))
        .collect()
}

#[cfg(test)]
mod tests;
