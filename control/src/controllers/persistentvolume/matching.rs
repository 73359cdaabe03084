//! Which PersistentVolume a claim gets, decided without I/O as kube-controller-manager's PV
//! binder decides it (`pkg/controller/volume/persistentvolume/index.go`): a volume pre-bound to
//! the claim (`spec.claimRef`) wins if it is big enough; otherwise, among the Available,
//! unclaimed volumes of the claim's class and volume mode whose labels satisfy the claim's
//! selector, whose access modes include the claim's and whose capacity covers its request,
//! the one with the fewest access modes and then the smallest capacity. With a node (a
//! WaitForFirstConsumer claim's selected node) the volume's node affinity must allow it.

use serde_json::Value;

use crate::api::selector::LabelSelector;
use crate::controllers::scheduler::placement::term_matches;
use crate::controllers::scheduler::quantity::units;

/// The beta annotation that named the class before `spec.storageClassName`; it still wins.
pub const BETA_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

/// The class of a claim or a volume ("" for none).
pub fn class_of(object: &Value) -> &str {
    match object["metadata"]["annotations"][BETA_CLASS].as_str() {
        Some(class) => class,
        None => object["spec"]["storageClassName"].as_str().unwrap_or(""),
    }
}

/// `Filesystem` unless set.
fn mode_of(object: &Value) -> &str {
    object["spec"]["volumeMode"]
        .as_str()
        .unwrap_or("Filesystem")
}

fn access_modes(list: &Value) -> Vec<&str> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// The bytes a claim asks for (0 if unset).
pub fn requested(claim: &Value) -> i128 {
    claim["spec"]["resources"]["requests"]["storage"]
        .as_str()
        .and_then(units)
        .unwrap_or(0)
}

/// A volume's capacity in bytes (0 if unset).
pub fn capacity(volume: &Value) -> i128 {
    volume["spec"]["capacity"]["storage"]
        .as_str()
        .and_then(units)
        .unwrap_or(0)
}

/// Whether the volume's `claimRef` names `claim` (a claimRef without uid names any claim of
/// that namespace and name: a pre-binding by the administrator).
pub fn names_claim(volume: &Value, claim: &Value) -> bool {
    let reference = &volume["spec"]["claimRef"];
    let meta = &claim["metadata"];
    reference["name"] == meta["name"]
        && reference["namespace"] == meta["namespace"]
        && reference["uid"]
            .as_str()
            .filter(|u| !u.is_empty())
            .is_none_or(|uid| meta["uid"].as_str() == Some(uid))
}

/// Whether `node` satisfies the volume's `spec.nodeAffinity` (no affinity: every node).
pub fn node_allows(volume: &Value, node: &Value) -> bool {
    match volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"].as_array() {
        Some(terms) => terms.iter().any(|term| term_matches(term, node)),
        None => true,
    }
}

/// Why `volume` cannot serve `claim` (kube's checkVolumeSatisfyClaim), if it cannot.
pub fn mismatch(volume: &Value, claim: &Value) -> Option<String> {
    if capacity(volume) < requested(claim) {
        return Some("requested PV is too small".to_owned());
    }
    if class_of(volume) != class_of(claim) {
        return Some("storageClassName does not match".to_owned());
    }
    if mode_of(volume) != mode_of(claim) {
        return Some("incompatible volumeMode".to_owned());
    }
    let has = access_modes(&volume["spec"]["accessModes"]);
    if !access_modes(&claim["spec"]["accessModes"])
        .iter()
        .all(|m| has.contains(m))
    {
        return Some("incompatible accessMode".to_owned());
    }
    None
}

/// The volume `claim` should be bound to, from `volumes`; `node` is the claim's selected node
/// when its class waits for the first consumer (`delayed`). A delayed claim without a node
/// gets only a volume pre-bound to it.
pub fn best_match<'a>(
    claim: &Value,
    volumes: &'a [std::sync::Arc<Value>],
    delayed: bool,
    node: Option<&Value>,
) -> Option<&'a Value> {
    let selector = claim["spec"]["selector"]
        .as_object()
        .map(|_| LabelSelector::from_object(&claim["spec"]["selector"]));
    let node_ok = |v: &Value| node.is_none_or(|n| node_allows(v, n));
    let mut best: Option<(&Value, (usize, i128))> = None;
    for volume in volumes.iter().map(|v| v.as_ref()) {
        if !volume["metadata"]["deletionTimestamp"].is_null() || mismatch(volume, claim).is_some() {
            continue;
        }
        let claimed = volume["spec"]["claimRef"].is_object();
        if claimed && names_claim(volume, claim) {
            if node_ok(volume) {
                return Some(volume);
            }
            continue;
        }
        if claimed || (delayed && node.is_none()) || volume["status"]["phase"] != "Available" {
            continue;
        }
        match &selector {
            Some(Ok(s)) if !s.matches(volume) => continue,
            Some(Err(_)) => continue,
            _ => {}
        }
        if !node_ok(volume) {
            continue;
        }
        let rank = (
            access_modes(&volume["spec"]["accessModes"]).len(),
            capacity(volume),
        );
        if best.as_ref().is_none_or(|(_, r)| rank < *r) {
            best = Some((volume, rank));
        }
    }
    best.map(|(v, _)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn merge(into: &mut Value, extra: &Value) {
        match (into.as_object_mut(), extra.as_object()) {
            (Some(a), Some(b)) => {
                for (k, v) in b {
                    merge(a.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
            _ => *into = extra.clone(),
        }
    }

    fn pv(name: &str, size: &str, modes: &[&str], extra: Value) -> Arc<Value> {
        let mut v = json!({"metadata": {"name": name, "labels": {"tier": "fast"}},
            "spec": {"capacity": {"storage": size}, "accessModes": modes},
            "status": {"phase": "Available"}});
        merge(&mut v, &extra);
        Arc::new(v)
    }

    fn claim(size: &str, extra: Value) -> Value {
        let mut c = json!({"metadata": {"name": "data", "namespace": "default", "uid": "u1"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}});
        merge(&mut c, &extra);
        c
    }

    fn name(v: Option<&Value>) -> Option<&str> {
        v.and_then(|v| v["metadata"]["name"].as_str())
    }

    #[test]
    fn the_smallest_fitting_volume_with_the_fewest_modes_wins() {
        let rwo = ["ReadWriteOnce"];
        let volumes = vec![
            pv("big", "10Gi", &rwo, json!({})),
            pv("small", "1Gi", &rwo, json!({})),
            pv("tiny", "500Mi", &rwo, json!({})),
            pv(
                "both",
                "1Gi",
                &["ReadWriteOnce", "ReadWriteMany"],
                json!({}),
            ),
            pv(
                "other-class",
                "1Gi",
                &rwo,
                json!({"spec": {"storageClassName": "x"}}),
            ),
            pv(
                "block",
                "1Gi",
                &rwo,
                json!({"spec": {"volumeMode": "Block"}}),
            ),
            pv(
                "taken",
                "1Gi",
                &rwo,
                json!({"spec": {"claimRef": {"name": "o", "namespace": "default"}}}),
            ),
            pv(
                "pending",
                "1Gi",
                &rwo,
                json!({"status": {"phase": "Released"}}),
            ),
        ];
        assert_eq!(
            name(best_match(&claim("1Gi", json!({})), &volumes, false, None)),
            Some("small")
        );
        assert_eq!(
            name(best_match(&claim("2Gi", json!({})), &volumes, false, None)),
            Some("big")
        );
        assert_eq!(
            name(best_match(&claim("20Gi", json!({})), &volumes, false, None)),
            None
        );
        let rwx = claim("1Gi", json!({"spec": {"accessModes": ["ReadWriteMany"]}}));
        assert_eq!(name(best_match(&rwx, &volumes, false, None)), Some("both"));
        let classed = claim("1Gi", json!({"spec": {"storageClassName": "x"}}));
        assert_eq!(
            name(best_match(&classed, &volumes, false, None)),
            Some("other-class")
        );
        let selected = claim(
            "1Gi",
            json!({"spec": {"selector": {"matchLabels": {"tier": "slow"}}}}),
        );
        assert_eq!(name(best_match(&selected, &volumes, false, None)), None);
    }

    #[test]
    fn prebinding_works_both_ways_and_delayed_claims_wait_for_a_node() {
        let rwo = ["ReadWriteOnce"];
        let pre = json!({"spec": {"claimRef": {"name": "data", "namespace": "default"}}});
        let volumes = vec![
            pv("small", "1Gi", &rwo, json!({})),
            pv("mine", "5Gi", &rwo, pre),
        ];
        let c = claim("1Gi", json!({}));
        assert_eq!(name(best_match(&c, &volumes, false, None)), Some("mine"));
        assert_eq!(name(best_match(&c, &volumes, true, None)), Some("mine"));
        let volumes = vec![pv(
            "local",
            "1Gi",
            &rwo,
            json!({"spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["b"]}]}]}}}}),
        )];
        let node =
            |n: &str| json!({"metadata": {"name": n, "labels": {"kubernetes.io/hostname": n}}});
        assert_eq!(name(best_match(&c, &volumes, true, None)), None);
        assert_eq!(name(best_match(&c, &volumes, true, Some(&node("a")))), None);
        assert_eq!(
            name(best_match(&c, &volumes, true, Some(&node("b")))),
            Some("local")
        );
        assert_eq!(
            mismatch(&volumes[0], &claim("2Gi", json!({}))).as_deref(),
            Some("requested PV is too small")
        );
    }
}
