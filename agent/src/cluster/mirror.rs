//! Mirror pods, like kubelet's: every static pod the daemon runs from the manifest directory is
//! shown in the API by a pod named `<pod name>-<node name>` in its namespace, bound to this
//! node, annotated `kubernetes.io/config.mirror` (the static pod's hash, which the agent
//! recognises: the pod watch never runs a mirror pod as an API pod), `config.source: file` and
//! `config.hash`, and owned by this Node (so controllers leave it alone and the garbage
//! collector deletes it with the Node). Its status is reported like an API pod's
//! (`status.rs`, through [`targets`]). Each tick [`plan`] compares the static pods with the
//! mirror pods of the watch: a missing one is created, one whose static pod changed (another
//! hash), went away, or that a user deletes (deletionTimestamp) is deleted with grace 0 and its
//! uid as precondition, then created again — the static pod itself never stops for that.
//! Nothing is decided before the pod watch listed and the manifest directory was read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod as ApiPod};
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use serde_json::{json, Value};

pub use super::mirror_pod::{MirrorPod, MIRROR_ANNOTATION};
use super::pods::ApiPods;
use crate::spec::{canonical_hash, Pod};

/// Where the static pod comes from (`file`: the manifest directory).
pub const SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";
/// The static pod's hash.
pub const HASH_ANNOTATION: &str = "kubernetes.io/config.hash";

/// How often the mirror pods are compared with the static pods.
pub const TICK: Duration = Duration::from_millis(500);

/// A static pod of the manifest directory.
#[derive(Debug, Clone)]
pub struct StaticPod {
    pub pod: Pod,
    /// Whether the daemon runs this version of it (not an older one still stopping): only
    /// then is its status the mirror pod's.
    pub live: bool,
}

/// The static pods by uid; `None` until the manifest directory was listed.
pub type StaticPods = Arc<Mutex<Option<BTreeMap<String, StaticPod>>>>;

/// The name of the mirror pod of `pod` on `node`.
pub fn mirror_name(pod: &Pod, node: &str) -> String {
    format!("{}-{}", pod.metadata.name, node.to_lowercase())
}

/// The hash of what a mirror pod shows of its static pod (labels, annotations, spec): any
/// change to the manifest's pod replaces the mirror pod.
pub fn mirror_hash(pod: &Pod) -> String {
    let shown = json!({
        "labels": pod.metadata.labels,
        "annotations": pod.metadata.annotations,
        "spec": pod.spec,
    });
    canonical_hash(&shown)
}

/// The mirror pod to create for `pod` on the node named `node` with uid `node_uid`.
pub fn mirror_body(pod: &Pod, node: &str, node_uid: &str) -> Value {
    let hash = mirror_hash(pod);
    let mut annotations = pod.metadata.annotations.clone();
    annotations.insert(MIRROR_ANNOTATION.into(), hash.clone());
    annotations.insert(SOURCE_ANNOTATION.into(), "file".into());
    annotations.insert(HASH_ANNOTATION.into(), hash);
    let mut spec = serde_json::to_value(&pod.spec).unwrap_or_default();
    spec["nodeName"] = json!(node);
    let mut metadata = json!({
        "name": mirror_name(pod, node),
        "namespace": pod.metadata.namespace,
        "annotations": annotations,
        "ownerReferences": [{
            "apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid,
            "controller": true,
        }],
    });
    if !pod.metadata.labels.is_empty() {
        metadata["labels"] = json!(pod.metadata.labels);
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}

/// One write to the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create the mirror pod of the static pod with this uid.
    Create { static_uid: String },
    /// Delete this mirror pod (grace 0, uid precondition).
    Delete {
        namespace: String,
        name: String,
        uid: String,
    },
}

/// The mirror pod each static pod should have: (namespace, name) → (static uid, hash).
fn wanted(
    static_pods: &BTreeMap<String, StaticPod>,
    node: &str,
) -> BTreeMap<(String, String), (String, String)> {
    static_pods
        .iter()
        .map(|(uid, StaticPod { pod, .. })| {
            let key = (pod.metadata.namespace.clone(), mirror_name(pod, node));
            (key, (uid.clone(), mirror_hash(pod)))
        })
        .collect()
}

/// What to write so that each static pod has exactly its current mirror pod: mirror pods
/// (by uid) that are outdated, orphaned or being deleted go first; a static pod gets its
/// mirror pod once its name is free.
pub fn plan(
    static_pods: &BTreeMap<String, StaticPod>,
    mirrors: &BTreeMap<String, MirrorPod>,
    node: &str,
) -> Vec<Action> {
    let wanted = wanted(static_pods, node);
    let mut taken = BTreeSet::new();
    let mut actions = Vec::new();
    for (uid, m) in mirrors {
        let key = (m.namespace.clone(), m.name.clone());
        let current = wanted.get(&key).is_some_and(|(_, hash)| *hash == m.hash);
        if !current || m.deleting {
            actions.push(Action::Delete {
                namespace: m.namespace.clone(),
                name: m.name.clone(),
                uid: uid.clone(),
            });
        }
        taken.insert(key);
    }
    for (key, (static_uid, _)) in &wanted {
        if !taken.contains(key) {
            actions.push(Action::Create {
                static_uid: static_uid.clone(),
            });
        }
    }
    actions
}

/// Where a static pod's status is reported: its current mirror pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// The current (up to date, not being deleted) mirror pod of each static pod the daemon runs
/// (`live`), by static uid.
pub fn targets(
    static_pods: &BTreeMap<String, StaticPod>,
    mirrors: &BTreeMap<String, MirrorPod>,
    node: &str,
) -> BTreeMap<String, Target> {
    let wanted = wanted(static_pods, node);
    mirrors
        .iter()
        .filter(|(_, m)| !m.deleting)
        .filter_map(|(uid, m)| {
            let (static_uid, hash) = wanted.get(&(m.namespace.clone(), m.name.clone()))?;
            let live = static_pods.get(static_uid).is_some_and(|s| s.live);
            (*hash == m.hash && live).then(|| {
                let target = Target {
                    namespace: m.namespace.clone(),
                    name: m.name.clone(),
                    uid: uid.clone(),
                };
                (static_uid.clone(), target)
            })
        })
        .collect()
}

/// Keeps the mirror pods of `node` in step with its static pods for as long as the agent runs.
pub async fn run(
    client: kube::Client,
    node: String,
    api_pods: Arc<Mutex<ApiPods>>,
    static_pods: StaticPods,
) {
    let mut node_uid: Option<String> = None;
    // The last error of each failing write, logged once.
    let mut failing: BTreeMap<String, String> = BTreeMap::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (statics, mirrors) = {
            let api = api_pods.lock().unwrap_or_else(|p| p.into_inner());
            let statics = static_pods.lock().unwrap_or_else(|p| p.into_inner());
            match (api.synced, statics.as_ref()) {
                (true, Some(statics)) => (statics.clone(), api.mirrors.clone()),
                _ => continue,
            }
        };
        for action in plan(&statics, &mirrors, &node) {
            let (key, result) = match &action {
                Action::Delete {
                    namespace,
                    name,
                    uid,
                } => (
                    format!("{namespace}/{name}"),
                    delete(&client, namespace, name, uid).await,
                ),
                Action::Create { static_uid } => {
                    let Some(StaticPod { pod, .. }) = statics.get(static_uid) else {
                        continue;
                    };
                    let key = format!("{}/{}", pod.metadata.namespace, mirror_name(pod, &node));
                    let result = create(&client, &node, &mut node_uid, pod).await;
                    (key, result)
                }
            };
            match result {
                Ok(()) => {
                    failing.remove(&key);
                }
                Err(error) => {
                    if failing.get(&key) != Some(&error) {
                        tracing::warn!(pod = %key, %error, "mirror pod; retrying");
                    }
                    failing.insert(key, error);
                }
            }
        }
    }
}

/// Creates the mirror pod of `pod`. The Node's uid is read once and again after a refusal
/// (the Node may have been registered anew).
async fn create(
    client: &kube::Client,
    node: &str,
    node_uid: &mut Option<String>,
    pod: &Pod,
) -> Result<(), String> {
    let uid = match node_uid.clone() {
        Some(uid) => uid,
        None => {
            let nodes: Api<Node> = Api::all(client.clone());
            let found = nodes
                .get(node)
                .await
                .map_err(|e| format!("reading the Node: {e}"))?;
            let uid = found.metadata.uid.ok_or("the Node has no uid")?;
            *node_uid = Some(uid.clone());
            uid
        }
    };
    let body = mirror_body(pod, node, &uid);
    let api_pod: ApiPod = serde_json::from_value(body).map_err(|e| e.to_string())?;
    let api: Api<ApiPod> = Api::namespaced(client.clone(), &pod.metadata.namespace);
    match api.create(&PostParams::default(), &api_pod).await {
        Ok(created) => {
            tracing::info!(pod = %pod.metadata.name, mirror = ?created.metadata.name, "created the mirror pod of a static pod");
            Ok(())
        }
        // The watch has not shown it yet (or a pod that is not its mirror holds the name).
        Err(kube::Error::Api(e)) if e.code == 409 => {
            tracing::debug!(pod = %pod.metadata.name, error = %e, "mirror pod exists");
            Ok(())
        }
        Err(kube::Error::Api(e)) => {
            if e.code == 403 {
                *node_uid = None;
            }
            Err(e.message)
        }
        Err(e) => Err(e.to_string()),
    }
}

async fn delete(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    uid: &str,
) -> Result<(), String> {
    let api: Api<ApiPod> = Api::namespaced(client.clone(), namespace);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_owned()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => {
            tracing::info!(%namespace, %name, %uid, "deleted a mirror pod (outdated, orphaned or deleted by a user)");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
#[path = "mirror_tests.rs"]
mod tests;
