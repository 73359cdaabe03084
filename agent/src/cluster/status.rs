//! Pod status reports: each tick, the status of every API pod the daemon runs (terminating
//! ones included, until they are gone) is mapped by [`api_status`] and, when it differs from
//! the last one the API accepted, patched onto the pod's `status` subresource — a merge patch
//! conditional on the pod's uid (a pod deleted and recreated under the same name is never
//! written with the old one's status) — or when the API's conditions (from the watch) say
//! otherwise, as after the node lifecycle controller marked the pods of a silent node not
//! ready. A failed patch keeps the last accepted state, so the next tick retries. Pods the
//! agent refuses are failed once with the refusal, like kubelet's admission rejections.
//! A static pod's status goes to its current mirror pod (`mirror::targets`), under the mirror
//! pod's name and uid; `sent` is kept by API uid, so a replaced mirror pod gets it anew.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod as ApiPod;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{json, Value};

use super::events::{self, PodRef};
use super::mirror::{self, StaticPods, Target};
use super::pod_events;
use super::pod_status::{api_status, ConditionTimes};
use super::pods::ApiPods;
use super::PodStatuses;
use super::{now_rfc3339, NodeIdentity};
use crate::pod::{NodeContext, PodStatus};

/// How often pod statuses are compared with what was reported.
pub const TICK: Duration = Duration::from_millis(500);

/// Status patches sent at once: a node starting hundreds of pods reports them in parallel,
/// not one round trip after another.
const PATCHES_IN_FLIGHT: usize = 32;

/// The reason a refused pod fails with.
pub const REFUSED_REASON: &str = "UnsupportedPodSpec";

struct Report {
    namespace: String,
    name: String,
    uid: String,
    status: Value,
}

pub async fn run(
    client: kube::Client,
    node: NodeIdentity,
    ctx: Arc<NodeContext>,
    api_pods: Arc<Mutex<ApiPods>>,
    statuses: PodStatuses,
    static_pods: StaticPods,
) {
    let host_ip = node.ip.to_string();
    let mut sent: BTreeMap<String, Value> = BTreeMap::new();
    let mut times: BTreeMap<String, ConditionTimes> = BTreeMap::new();
    let mut image_ids: BTreeMap<String, String> = BTreeMap::new();
    // Each pod's status as of the last tick and whether it was terminating, for its events.
    let mut seen: BTreeMap<String, (PodStatus, bool)> = BTreeMap::new();
    let agent_start = std::time::SystemTime::now();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let statuses = statuses();
        let now = now_rfc3339();
        let mut reports = Vec::new();
        {
            let api = api_pods.lock().unwrap_or_else(|p| p.into_inner());
            let mirrors = match static_pods
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
            {
                Some(statics) => mirror::targets(statics, &api.mirrors, &node.name),
                None => BTreeMap::new(),
            };
            // Terminating pods too: their containers' ends are reported until they are gone.
            let target = |st: &PodStatus| -> Option<Target> {
                if api.pods.contains_key(&st.uid) || api.terminating.contains_key(&st.uid) {
                    return Some(Target {
                        namespace: st.namespace.clone(),
                        name: st.name.clone(),
                        uid: st.uid.clone(),
                    });
                }
                mirrors.get(&st.uid).cloned()
            };
            // API uids reported on.
            let mut reported = BTreeSet::new();
            for (st, to) in statuses.iter().filter_map(|s| Some((s, target(s)?))) {
                reported.insert(to.uid.clone());
                for c in st
                    .container_statuses
                    .iter()
                    .chain(&st.init_container_statuses)
                {
                    if !image_ids.contains_key(&c.image) {
                        if let Some(id) = image_id(&ctx, &c.image) {
                            image_ids.insert(c.image.clone(), id);
                        }
                    }
                }
                let lookup = |image: &str| image_ids.get(image).cloned().unwrap_or_default();
                let held = api.api_status.get(&to.uid).cloned().unwrap_or_default();
                let t = times
                    .entry(to.uid.clone())
                    .or_insert_with(|| ConditionTimes::from_api(&held));
                let mut status = api_status(st, &host_ip, t, &now, &lookup);
                // Someone else changed the conditions since our last report (the node
                // lifecycle controller marks the pods of a silent node not ready): take their
                // view as the last transition, so ours is reported again as a new one.
                let ours_reported = sent.get(&to.uid) == Some(&status);
                if ours_reported && overridden(&held, &status) {
                    *t = ConditionTimes::from_api(&held);
                    status = api_status(st, &host_ip, t, &now, &lookup);
                    sent.remove(&to.uid);
                }
                reports.push(Report {
                    namespace: to.namespace.clone(),
                    name: to.name.clone(),
                    uid: to.uid.clone(),
                    status,
                });
                let terminating = api.terminating.contains_key(&st.uid);
                let before = seen.get(&st.uid);
                let became = terminating && before.is_some_and(|(_, t)| !t);
                let events = pod_events::diff(before.map(|(s, _)| s), st, became, agent_start);
                if !events.is_empty() {
                    let pod = PodRef {
                        namespace: to.namespace.clone(),
                        name: to.name.clone(),
                        uid: to.uid.clone(),
                    };
                    tokio::spawn(events::post(client.clone(), node.name.clone(), pod, events));
                }
                seen.insert(st.uid.clone(), (st.clone(), terminating));
            }
            for (uid, r) in &api.refused {
                reports.push(Report {
                    namespace: r.namespace.clone(),
                    name: r.name.clone(),
                    uid: uid.clone(),
                    status: json!({
                        "phase": "Failed",
                        "reason": REFUSED_REASON,
                        "message": r.message,
                        "hostIP": host_ip,
                        "hostIPs": [{"ip": host_ip}],
                    }),
                });
            }
            let known = |uid: &String| reported.contains(uid) || api.refused.contains_key(uid);
            sent.retain(|uid, _| known(uid));
            // Kept while the pod runs here, so a static pod whose mirror pod is being
            // replaced does not announce its containers again.
            let running: BTreeSet<&String> = statuses.iter().map(|s| &s.uid).collect();
            seen.retain(|uid, _| running.contains(uid));
            times.retain(|uid, _| known(uid));
        }
        let patches = reports
            .into_iter()
            .filter(|r| sent.get(&r.uid) != Some(&r.status))
            .map(|r| {
                let patch = merge_patch(&r.uid, sent.get(&r.uid), &r.status);
                let pods: Api<ApiPod> = Api::namespaced(client.clone(), &r.namespace);
                async move {
                    let result = pods
                        .patch_status(&r.name, &PatchParams::default(), &Patch::Merge(patch))
                        .await;
                    (r, result)
                }
            })
            .collect::<Vec<_>>();
        let mut done = futures::stream::iter(patches).buffer_unordered(PATCHES_IN_FLIGHT);
        while let Some((r, result)) = done.next().await {
            match result {
                Ok(_) => {
                    sent.insert(r.uid, r.status);
                }
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
                    tracing::debug!(pod = %r.name, error = %e, "pod gone or replaced; status not posted");
                }
                Err(e) => {
                    tracing::warn!(pod = %r.name, namespace = %r.namespace, error = %e, "posting pod status; retrying");
                }
            }
        }
    }
}

/// Whether the API's `held` status has conditions (type and status) other than `ours`: what
/// the watch last delivered, so it may lag our own last patch by a moment (then the same
/// status is patched once more).
fn overridden(held: &Value, ours: &Value) -> bool {
    let conditions = |status: &Value| {
        let mut found: Vec<(String, String)> = status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let field = |k: &str| c[k].as_str().unwrap_or_default().to_string();
                (field("type"), field("status"))
            })
            .collect();
        found.sort();
        found
    };
    !held.is_null() && conditions(held) != conditions(ours)
}

/// A merge patch from `old` (last accepted) to `new`: top-level status fields that went away
/// are nulled; `metadata.uid` makes it conditional on the pod being the one reported on.
fn merge_patch(uid: &str, old: Option<&Value>, new: &Value) -> Value {
    let mut status = new.clone();
    if let (Some(Value::Object(old)), Some(status)) = (old, status.as_object_mut()) {
        for key in old.keys() {
            status.entry(key.clone()).or_insert(Value::Null);
        }
    }
    json!({"metadata": {"uid": uid}, "status": status})
}

/// `repo@sha256:…` of an image in the store.
fn image_id(ctx: &NodeContext, image: &str) -> Option<String> {
    let resolved = ctx.images.resolve(image).ok()?;
    let (repo, last) = image.rsplit_once('/').unwrap_or(("", image));
    let name = last.split(['@', ':']).next().unwrap_or(last);
    let repo = if repo.is_empty() {
        name.to_string()
    } else {
        format!("{repo}/{name}")
    };
    Some(format!("{repo}@{}", resolved.digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_changed_by_others_are_noticed() {
        let ours = json!({"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "T1"}]});
        let same = json!({"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "T0"}]});
        let marked =
            json!({"conditions": [{"type": "Ready", "status": "False", "reason": "NodeNotReady"}]});
        assert!(!overridden(&same, &ours));
        assert!(overridden(&marked, &ours));
        assert!(!overridden(&Value::Null, &ours), "nothing received yet");
    }

    #[test]
    fn patches_null_what_went_away_and_name_the_uid() {
        let old = json!({"phase": "Running", "podIP": "10.0.0.1"});
        let new = json!({"phase": "Succeeded"});
        let patch = merge_patch("u1", Some(&old), &new);
        assert_eq!(
            patch,
            json!({"metadata": {"uid": "u1"}, "status": {"phase": "Succeeded", "podIP": null}})
        );
    }
}
