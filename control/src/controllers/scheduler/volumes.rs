//! kube-scheduler's VolumeBinding plugin, without I/O: a pod's PersistentVolumeClaims decide
//! where it may go. PreFilter: every claim must exist and not be leaving, and an unbound one
//! must be of a WaitForFirstConsumer class (else `pod has unbound immediate
//! PersistentVolumeClaims`). Filter, per node: a bound claim's volume must allow the node by
//! its `spec.nodeAffinity`; a waiting claim needs an Available volume that fits it on the node,
//! or a class with a provisioner whose `allowedTopologies` admit the node. Once placed, the waiting claims get
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
    /// Unbound claims of WaitForFirstConsumer classes, and their class if it provisions.
    waiting: Vec<(Arc<Value>, Option<Arc<Value>>)>,
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
                    let provisions = class.filter(|c| {
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

/// Whether the class's `allowedTopologies` admit `node` (none: every node); each term's
/// label expressions must all hold, one term must.
fn topology_allows(class: &Value, node: &Value) -> bool {
    let Some(terms) = class["allowedTopologies"]
        .as_array()
        .filter(|t| !t.is_empty())
    else {
        return true;
    };
    let labels = &node["metadata"]["labels"];
    terms.iter().any(|term| {
        term["matchLabelExpressions"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|e| {
                let have = labels[e["key"].as_str().unwrap_or("")].as_str();
                e["values"]
                    .as_array()
                    .is_some_and(|vs| vs.iter().any(|v| v.as_str() == have && have.is_some()))
            })
    })
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
        let fits = |(claim, provisions): &(Arc<Value>, Option<Arc<Value>>)| {
            let selected = claim["metadata"]["annotations"][SELECTED_NODE].as_str();
            selected.is_none_or(|s| s == name)
                && (provisions
                    .as_ref()
                    .is_some_and(|c| topology_allows(c, node))
                    || best_match(claim, &self.all_volumes, true, Some(node)).is_some())
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, zone: &str) -> Value {
        json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "zone": zone}}})
    }

    fn affinity(host: &str) -> Value {
        json!({"nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [host]}]}]}}})
    }

    #[test]
    fn bound_volumes_pin_and_waiting_claims_need_a_volume_or_a_provisioner_there() {
        let (a, b) = (node("a", "z1"), node("b", "z2"));
        let pinned = PodVolumes {
            bound: vec![Arc::new(json!({"spec": affinity("b")}))],
            ..PodVolumes::default()
        };
        assert_eq!(
            pinned.reject(&a),
            Some("node(s) had volume node affinity conflict")
        );
        assert_eq!(pinned.reject(&b), None);

        let claim = Arc::new(
            json!({"metadata": {"name": "c", "namespace": "d", "uid": "u"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
        );
        let mut local = json!({"spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]},
            "status": {"phase": "Available"}});
        local["spec"]["nodeAffinity"] = affinity("a")["nodeAffinity"].clone();
        let static_only = PodVolumes {
            waiting: vec![(Arc::clone(&claim), None)],
            all_volumes: vec![Arc::new(local)],
            ..PodVolumes::default()
        };
        assert_eq!(static_only.reject(&a), None);
        assert_eq!(
            static_only.reject(&b),
            Some("node(s) didn't find available persistent volumes to bind")
        );
        let class = json!({"provisioner": "p", "allowedTopologies": [
            {"matchLabelExpressions": [{"key": "zone", "values": ["z2"]}]}]});
        let provisioned = PodVolumes {
            waiting: vec![(claim, Some(Arc::new(class)))],
            ..PodVolumes::default()
        };
        assert_eq!(provisioned.reject(&b), None);
        assert!(
            provisioned.reject(&a).is_some(),
            "z1 is not an allowed topology"
        );
    }
}
