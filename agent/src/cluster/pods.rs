//! The pods bound to this node, from a list+watch of `spec.nodeName=<node>` (kube-runtime's
//! watcher, like client-go's reflector: after a broken watch or an outage it watches again from
//! the last resourceVersion, with backoff, so every change it missed is replayed; it relists
//! when the server no longer has that revision, 410 Gone), turned into the agent's own [`Pod`]
//! by [`pod_from_api`] and kept as the daemon's API-sourced desired set. Until the first list
//! completes the set is unknown (`synced` false) and the daemon leaves the API pods a previous
//! agent started alone; a relist replaces the set whole, so a pod deleted meanwhile is stopped,
//! and an unchanged one keeps running (same uid and spec hash).
//! A pod being deleted (deletionTimestamp) is not desired. A pod the agent cannot run is kept
//! in `refused` with the error, for the status reporter to fail it by name.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod as ApiPod;
use kube::api::Api;
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;

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

/// The API's pods for this node, by uid.
#[derive(Debug, Default)]
pub struct ApiPods {
    /// Whether a list has completed since the agent started.
    pub synced: bool,
    pub pods: BTreeMap<String, BoundPod>,
    pub refused: BTreeMap<String, RefusedPod>,
    /// The status each pod has in the API, as last received.
    pub api_status: BTreeMap<String, serde_json::Value>,
}

impl ApiPods {
    /// The desired pods, or None until the first list completed.
    pub fn desired(&self) -> Option<BTreeMap<String, BoundPod>> {
        self.synced.then(|| self.pods.clone())
    }
}

/// One pod from the API: desired, refused, or neither (being deleted, no uid).
enum Converted {
    Desired(String, Box<BoundPod>),
    Refused(String, RefusedPod),
    Gone(String),
}

fn convert(api_pod: &ApiPod, node: &str) -> Option<(Converted, serde_json::Value)> {
    let status = serde_json::to_value(&api_pod.status).unwrap_or_default();
    Some((convert_spec(api_pod, node)?, status))
}

fn convert_spec(api_pod: &ApiPod, node: &str) -> Option<Converted> {
    let uid = api_pod.metadata.uid.clone()?;
    if api_pod.metadata.deletion_timestamp.is_some() {
        return Some(Converted::Gone(uid));
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
            Converted::Gone(uid) => self.remove(&uid),
        }
    }

    fn remove(&mut self, uid: &str) {
        self.pods.remove(uid);
        self.refused.remove(uid);
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
