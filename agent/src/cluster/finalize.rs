//! Finishing the graceful deletion of this node's pods, like kubelet's status manager: a pod
//! bound to the node that has a deletionTimestamp (`ApiPods::terminating`) is deleted from the
//! API with `gracePeriodSeconds: 0` and its uid as precondition once it no longer runs here —
//! the daemon stopped its containers (SIGTERM, its deletionGracePeriodSeconds, SIGKILL) and tore
//! it down. A pod that never ran here (refused, or deleted before it started, or gone while the
//! agent was away) is finished at once. Nothing is decided before the pods were listed and the
//! daemon adopted what a previous agent left running ("could not read" is never "nothing
//! runs"): until then [`NodePods`] answers `None`. A failed delete is retried on the next tick;
//! a 404 (already gone) or 409 (another pod now has the name) ends it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod as ApiPod;
use kube::api::{Api, DeleteParams, Preconditions};

use super::pods::{ApiPods, TerminatingPod};

/// The uids of the pods the daemon holds on this node (running or being torn down, or whose
/// record it cannot read); `None` until it has adopted what a previous agent left.
pub type NodePods = Arc<dyn Fn() -> Option<BTreeSet<String>> + Send + Sync>;

/// How often terminating pods are checked.
pub const TICK: Duration = Duration::from_millis(500);

/// The terminating pods that no longer run on the node: ready for their final delete.
pub fn finished(
    terminating: &BTreeMap<String, TerminatingPod>,
    on_node: &BTreeSet<String>,
) -> Vec<(String, TerminatingPod)> {
    terminating
        .iter()
        .filter(|(uid, _)| !on_node.contains(*uid))
        .map(|(uid, p)| (uid.clone(), p.clone()))
        .collect()
}

/// Deletes this node's finished terminating pods for as long as the agent runs.
pub async fn run(client: kube::Client, api_pods: Arc<Mutex<ApiPods>>, on_node: NodePods) {
    // Pods whose final delete was accepted (the watch removes them soon after).
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let terminating = {
            let api = api_pods.lock().unwrap_or_else(|p| p.into_inner());
            if !api.synced {
                continue;
            }
            api.terminating.clone()
        };
        done.retain(|uid| terminating.contains_key(uid));
        let Some(on_node) = on_node() else {
            continue;
        };
        for (uid, pod) in finished(&terminating, &on_node) {
            if done.contains(&uid) {
                continue;
            }
            if delete(&client, &uid, &pod).await {
                done.insert(uid);
            }
        }
    }
}

/// The final delete; whether it is over (deleted, or no longer this pod).
async fn delete(client: &kube::Client, uid: &str, pod: &TerminatingPod) -> bool {
    let api: Api<ApiPod> = Api::namespaced(client.clone(), &pod.namespace);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_owned()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&pod.name, &params).await {
        Ok(_) => {
            tracing::info!(pod = %pod.name, namespace = %pod.namespace, %uid, "pod stopped on this node; deleted from the API");
            true
        }
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
            tracing::debug!(pod = %pod.name, error = %e, "pod already gone or replaced");
            true
        }
        Err(e) => {
            tracing::warn!(pod = %pod.name, namespace = %pod.namespace, error = %e, "deleting a stopped pod from the API; retrying");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terminating(name: &str) -> TerminatingPod {
        TerminatingPod {
            namespace: "default".into(),
            name: name.into(),
            grace_seconds: 30,
        }
    }

    #[test]
    fn only_pods_that_no_longer_run_here_are_finished() {
        let pods: BTreeMap<String, TerminatingPod> = [
            ("u1".to_owned(), terminating("stopping")),
            ("u2".to_owned(), terminating("stopped")),
        ]
        .into();
        let on_node: BTreeSet<String> = ["u1".to_owned(), "u3".to_owned()].into();
        let done = finished(&pods, &on_node);
        assert_eq!(done, vec![("u2".to_owned(), terminating("stopped"))]);
    }
}
