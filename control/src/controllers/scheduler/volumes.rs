//! kube-scheduler's VolumeBinding plugin, without I/O: a pod's PersistentVolumeClaims decide
//! where it may go. PreFilter: every claim must exist and not be leaving, and an unbound one
//! must be of a WaitForFirstConsumer class (else `pod has unbound immediate
//! PersistentVolumeClaims`). Filter, per node: a bound claim's volume must allow the node by
//! its `spec.nodeAffinity`; a waiting claim needs an Available volume that fits it on the node,
//! or a class with a provisioner. Once placed, the waiting claims get
//! `volume.kubernetes.io/selected-node` (the PV controller then binds a static volume of the
//! node, or the node's provisioner creates one).

use std::sync::Arc;

use serde_json::Value;

use crate::controllers::informer::Informer;
use crate::controllers::persistentvolume::matching::{best_match, class_of, node_allows};
pub use crate::controllers::persistentvolume::SELECTED_NODE;

const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";

/// The caches the plugin reads.
pub struct VolumeCaches {
    pub claims: Arc<Informer>,
    pub volumes: Arc<Informer>,
    pub classes: Arc<Informer>,
}

/// What a pod's claims ask of a node.
#[derive(Default)]
pub struct PodVolumes {
    /// The volumes of its bound claims.
    bound: Vec<Arc<Value>>,
    /// Bound claims whose volume does not exist.
    dangling: bool,
    /// Unbound claims of WaitForFirstConsumer classes, and whether their class provisions.
    waiting: Vec<(Arc<Value>, bool)>,
    /// Every volume, for matching the waiting claims (empty when none wait).
    all_volumes: Vec<Arc<Value>>,
}

fn get(informer: &Informer, namespace: Option<&str>, name: &str) -> Option<Arc<Value>> {
    let prefix = informer.resource.key_prefix();
    match namespace {
        Some(ns) => informer.get(&format!("{prefix}{ns}/{name}")),
        None => informer.get(&format!("{prefix}{name}")),
    }
}

impl VolumeCaches {
    /// PreFilter: the pod's claims, or why no node can take it.
    pub fn of_pod(&self, pod: &Value) -> Result<PodVolumes, String> {
        let namespace = pod["metadata"]["namespace"].as_str().unwrap_or("default");
        let mut out = PodVolumes::default();
        let names = pod["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["persistentVolumeClaim"]["claimName"].as_str());
        for name in names {
            let Some(claim) = get(&self.claims, Some(namespace), name) else {
                return Err(format!("persistentvolumeclaim \"{name}\" not found"));
            };
            if !claim["metadata"]["deletionTimestamp"].is_null() {
                return Err(format!("persistentvolumeclaim \"{name}\" is being deleted"));
            }
            match claim["spec"]["volumeName"]
                .as_str()
                .filter(|v| !v.is_empty())
            {
                Some(volume) => match get(&self.volumes, None, volume) {
                    Some(v) => out.bound.push(v),
                    None => out.dangling = true,
                },
                None => {
                    let class = get(&self.classes, None, class_of(&claim));
                    let delayed = class
                        .as_ref()
                        .is_some_and(|c| c["volumeBindingMode"] == "WaitForFirstConsumer");
                    if !delayed {
                        return Err("pod has unbound immediate PersistentVolumeClaims".to_owned());
                    }
                    let provisions = class.is_some_and(|c| {
                        c["provisioner"]
                            .as_str()
                            .is_some_and(|p| !p.is_empty() && p != NO_PROVISIONER)
                    });
                    out.waiting.push((claim, provisions));
                }
            }
        }
        if !out.waiting.is_empty() {
            out.all_volumes = self.volumes.list(|_| true);
        }
        Ok(out)
    }
}

impl PodVolumes {
    /// Filter: why `node` cannot take the pod's volumes, if it cannot.
    pub fn reject(&self, node: &Value) -> Option<&'static str> {
        if self.dangling {
            return Some(
                "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)",
            );
        }
        if self.bound.iter().any(|v| !node_allows(v, node)) {
            return Some("node(s) had volume node affinity conflict");
        }
        let name = node["metadata"]["name"].as_str().unwrap_or("");
        let fits = |(claim, provisions): &(Arc<Value>, bool)| {
            let selected = claim["metadata"]["annotations"][SELECTED_NODE].as_str();
            selected.is_none_or(|s| s == name)
                && (*provisions || best_match(claim, &self.all_volumes, true, Some(node)).is_some())
        };
        if !self.waiting.iter().all(fits) {
            return Some("node(s) didn't find available persistent volumes to bind");
        }
        None
    }

    /// The waiting claims that do not name a node yet (to be given the chosen one).
    pub fn to_select(&self) -> impl Iterator<Item = &Value> {
        self.waiting
            .iter()
            .map(|(c, _)| c.as_ref())
            .filter(|c| c["metadata"]["annotations"][SELECTED_NODE].is_null())
    }
}
