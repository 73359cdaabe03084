//! The pods bound to this node, from a list+watch of `spec.nodeName=<node>` (kube-runtime's
//! watcher, like client-go's reflector: after a broken watch or an outage it watches again from
//! the last resourceVersion, with backoff, so every change it missed is replayed; it relists
//! when the server no longer has that revision, 410 Gone), turned into the agent's own [`Pod`]
//! by [`pod_from_api`] and kept as the daemon's API-sourced desired set. Until the first list
//! completes the set is unknown (`synced` false) and the daemon leaves the API pods a previous
//! agent started alone; a relist replaces the set whole, so a pod deleted meanwhile is stopped,
//! and an unchanged one keeps running (same uid and spec hash).
//! A pod being deleted (deletionTimestamp) is not desired: it is kept in `terminating` with its
//! deletionGracePeriodSeconds, for the daemon to stop it with that grace and for `finalize` to
//! delete it from the API once it no longer runs here. A pod the agent cannot run is kept in
//! `refused` with the error, for the status reporter to fail it by name. A mirror pod (the
//! `kubernetes.io/config.mirror` annotation: a static pod's reflection, see `mirror.rs`) is
//! never run: it is kept in `mirrors` for the mirror loop.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod as ApiPod;
use kube::api::Api;
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;

use super::mirror_pod::MirrorPod;
use crate::spec::{manifest_hash, pod_from_api, pod_uid, Pod};

/// A pod bound to this node that the agent runs, with its spec hash.
#[derive(Debug, Clone)]
pub struct BoundPod {
    pub pod: Pod,
    pub hash: String,
}

/// A pod bound to this node that the agent refuses to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedPod {
    pub namespace: String,
    pub name: String,
    pub message: String,
}

/// A pod bound to this node that is being deleted (it has a deletionTimestamp).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminatingPod {
    pub namespace: String,
    pub name: String,
    /// `metadata.deletionGracePeriodSeconds`: how long its containers get after SIGTERM.
    pub grace_seconds: i64,
}

/// The API's pods for this node, by uid.
#[derive(Debug, Default)]
pub struct ApiPods {
    /// Whether a list has completed since the agent started.
    pub synced: bool,
    pub pods: BTreeMap<String, BoundPod>,
    pub refused: BTreeMap<String, RefusedPod>,
    pub terminating: BTreeMap<String, TerminatingPod>,
    /// The mirror pods bound to this node (never run as API pods).
    pub mirrors: BTreeMap<String, MirrorPod>,
    /// The status each pod has in the API (mirror pods included), as last received.
    pub api_status: BTreeMap<String, serde_json::Value>,
}

impl ApiPods {
    /// The desired pods, or None until the first list completed.
    pub fn desired(&self) -> Option<BTreeMap<String, BoundPod>> {
        self.synced.then(|| self.pods.clone())
    }
}

/// One pod from the API: desired, refused, being deleted, or a mirror pod.
enum Converted {
    Desired(String, Box<BoundPod>),
    Refused(String, RefusedPod),
    Terminating(String, TerminatingPod),
    Mirror(String, MirrorPod),
}

fn convert(api_pod: &ApiPod, node: &str) -> Option<(Converted, serde_json::Value)> {
    let status = serde_json::to_value(&api_pod.status).unwrap_or_default();
    Some((convert_spec(api_pod, node)?, status))
}

fn convert_spec(api_pod: &ApiPod, node: &str) -> Option<Converted> {
    let uid = api_pod.metadata.uid.clone()?;
    if let Some(mirror) = MirrorPod::of(api_pod) {
        return Some(Converted::Mirror(uid, mirror));
    }
    if api_pod.metadata.deletion_timestamp.is_some() {
        let pod = TerminatingPod {
            namespace: api_pod.metadata.namespace.clone().unwrap_or_default(),
            name: api_pod.metadata.name.clone().unwrap_or_default(),
            grace_seconds: api_pod
                .metadata
                .deletion_grace_period_seconds
                .unwrap_or(0)
                .max(0),
        };
        return Some(Converted::Terminating(uid, pod));
    }
    let value = match serde_json::to_value(api_pod) {
        Ok(v) => v,
        Err(e) => {
            return Some(Converted::Refused(uid, refused(api_pod, e.to_string())));
        }
    };
    Some(match pod_from_api(value, node) {
        Ok(pod) => Converted::Desired(uid, Box::new(desired(pod))),
        Err(e) => Converted::Refused(uid, refused(api_pod, e.to_string())),
    })
}

fn desired(pod: Pod) -> BoundPod {
    let hash = manifest_hash(&pod);
    BoundPod { pod, hash }
}

fn refused(api_pod: &ApiPod, message: String) -> RefusedPod {
    RefusedPod {
        namespace: api_pod.metadata.namespace.clone().unwrap_or_default(),
        name: api_pod.metadata.name.clone().unwrap_or_default(),
        message,
    }
}

impl ApiPods {
    fn apply(&mut self, (converted, status): (Converted, serde_json::Value)) {
        match converted {
            Converted::Desired(uid, d) => {
                self.api_status.insert(uid.clone(), status);
                self.refused.remove(&uid);
                debug_assert_eq!(pod_uid(&d.pod), uid);
                self.pods.insert(uid, *d);
            }
            Converted::Refused(uid, r) => {
                if !self.refused.contains_key(&uid) {
                    tracing::warn!(pod = %r.name, namespace = %r.namespace, error = %r.message, "refusing a pod bound to this node");
                }
                self.pods.remove(&uid);
                self.refused.insert(uid, r);
            }
            Converted::Terminating(uid, t) => {
                self.api_status.insert(uid.clone(), status);
                self.pods.remove(&uid);
                self.refused.remove(&uid);
                self.terminating.insert(uid, t);
            }
            Converted::Mirror(uid, m) => {
                self.api_status.insert(uid.clone(), status);
                self.pods.remove(&uid);
                self.refused.remove(&uid);
                self.terminating.remove(&uid);
                self.mirrors.insert(uid, m);
            }
        }
    }

    fn remove(&mut self, uid: &str) {
        self.pods.remove(uid);
        self.refused.remove(uid);
        self.terminating.remove(uid);
        self.mirrors.remove(uid);
        self.api_status.remove(uid);
    }
}

/// Watches the pods bound to `node` into `state` for as long as the agent runs.
pub async fn run(client: kube::Client, node: String, state: Arc<Mutex<ApiPods>>) {
    let api: Api<ApiPod> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut stream = watcher(api, config).default_backoff().boxed();
    // The list in progress: replaces the state whole when done.
    let mut listing: Option<ApiPods> = None;
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(%node, error = %e, "watching this node's pods; relisting");
                continue;
            }
        };
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            Event::Init => listing = Some(ApiPods::default()),
            Event::InitApply(p) => {
                if let (Some(l), Some(c)) = (listing.as_mut(), convert(&p, &node)) {
                    l.apply(c);
                }
            }
            Event::InitDone => {
                if let Some(mut l) = listing.take() {
                    l.synced = true;
                    tracing::info!(%node, pods = l.pods.len(), "listed this node's pods");
                    *s = l;
                }
            }
            Event::Apply(p) => {
                if let Some(c) = convert(&p, &node) {
                    s.apply(c);
                }
            }
            Event::Delete(p) => {
                if let Some(uid) = p.metadata.uid.as_deref() {
                    s.remove(uid);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::mirror_pod::MIRROR_ANNOTATION;
    use super::*;

    fn api_pod(deleting: bool) -> ApiPod {
        let mut pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 30,
                     "containers": [{"name": "c", "image": "busybox"}]}});
        if deleting {
            pod["metadata"]["deletionTimestamp"] = serde_json::json!("2026-12-02T12:00:10Z");
            pod["metadata"]["deletionGracePeriodSeconds"] = serde_json::json!(10);
        }
        serde_json::from_value(pod).expect("a Pod")
    }

    #[test]
    fn a_pod_being_deleted_is_terminating_with_its_deletion_grace() {
        let mut pods = ApiPods::default();
        pods.apply(convert(&api_pod(false), "n1").expect("converted"));
        assert!(pods.pods.contains_key("u1"));
        pods.apply(convert(&api_pod(true), "n1").expect("converted"));
        assert!(pods.pods.is_empty() && pods.refused.is_empty());
        let expected = TerminatingPod {
            namespace: "default".into(),
            name: "web".into(),
            grace_seconds: 10,
        };
        assert_eq!(pods.terminating.get("u1"), Some(&expected));
        pods.remove("u1");
        assert!(pods.terminating.is_empty() && pods.api_status.is_empty());
    }

    #[test]
    fn a_mirror_pod_is_never_run_even_while_deleted() {
        for deleting in [false, true] {
            let mut pod = api_pod(deleting);
            let annotations = [(MIRROR_ANNOTATION.to_owned(), "h1".to_owned())];
            pod.metadata.annotations = Some(annotations.into());
            let mut pods = ApiPods::default();
            pods.apply(convert(&pod, "n1").expect("converted"));
            assert!(pods.pods.is_empty() && pods.terminating.is_empty() && pods.refused.is_empty());
            let expected = MirrorPod {
                namespace: "default".into(),
                name: "web".into(),
                hash: "h1".into(),
                deleting,
            };
            assert_eq!(pods.mirrors.get("u1"), Some(&expected));
            pods.remove("u1");
            assert!(pods.mirrors.is_empty());
        }
    }
}
