//! A StatefulSet pod's stable identity, as kube's `newStatefulSetPod`: the name
//! `<set>-<ordinal>`, the labels `statefulset.kubernetes.io/pod-name`,
//! `apps.kubernetes.io/pod-index` and `controller-revision-hash` (the revision's name),
//! hostname = pod name, subdomain = `spec.serviceName`, the set as controller; and its storage:
//! one claim per `volumeClaimTemplates` entry, named `<template>-<set>-<ordinal>`, labelled
//! with the set's `matchLabels`, which the pod's volume of the template's name references.

use serde_json::{json, Value};

pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// The ordinal of `pod` if its name is `<set>-<ordinal>`.
pub fn ordinal_of(set_name: &str, pod: &Value) -> Option<usize> {
    let name = pod["metadata"]["name"].as_str()?;
    let digits = name.strip_prefix(set_name)?.strip_prefix('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // No leading zeros: `web-01` is not web's pod 1.
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    digits.parse().ok()
}

/// The revision (name) a pod was made from.
pub fn revision_of_pod(pod: &Value) -> &str {
    pod["metadata"]["labels"][REVISION_LABEL]
        .as_str()
        .unwrap_or("")
}

/// The controller reference the set puts on its pods.
pub fn owner_reference(set: &Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": set["metadata"]["name"],
        "uid": set["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The name of the claim `template` gives the pod of `ordinal`.
pub fn claim_name(template: &Value, set_name: &str, ordinal: usize) -> String {
    let claim = template["metadata"]["name"].as_str().unwrap_or("");
    format!("{claim}-{set_name}-{ordinal}")
}

/// The claims the pod of `ordinal` uses, as the set's `volumeClaimTemplates` make them.
pub fn claims(set: &Value, ordinal: usize) -> Vec<Value> {
    let set_name = set["metadata"]["name"].as_str().unwrap_or("");
    let selector_labels = &set["spec"]["selector"]["matchLabels"];
    set["spec"]["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|template| {
            let mut labels = template["metadata"]["labels"].clone();
            if !labels.is_object() {
                labels = json!({});
            }
            for (k, v) in selector_labels.as_object().into_iter().flatten() {
                labels[k] = v.clone();
            }
            let mut metadata = json!({
                "name": claim_name(template, set_name, ordinal),
                "namespace": set["metadata"]["namespace"],
                "labels": labels,
            });
            if !template["metadata"]["annotations"].is_null() {
                metadata["annotations"] = template["metadata"]["annotations"].clone();
            }
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": metadata, "spec": template["spec"]})
        })
        .collect()
}

/// The pod of `ordinal` made from `template` (the set's, or an older revision's), labelled
/// with `revision`.
pub fn pod(set: &Value, template: &Value, revision: &str, ordinal: usize) -> Value {
    let set_name = set["metadata"]["name"].as_str().unwrap_or("");
    let name = format!("{set_name}-{ordinal}");
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    labels[POD_NAME_LABEL] = json!(name);
    labels[POD_INDEX_LABEL] = json!(ordinal.to_string());
    labels[REVISION_LABEL] = json!(revision);
    let mut metadata = json!({
        "name": name,
        "namespace": set["metadata"]["namespace"],
        "labels": labels,
        "ownerReferences": [owner_reference(set)],
    });
    for field in ["annotations", "finalizers"] {
        if !template["metadata"][field].is_null() {
            metadata[field] = template["metadata"][field].clone();
        }
    }
    let mut spec = template["spec"].clone();
    spec["hostname"] = json!(name);
    if let Some(service) = set["spec"]["serviceName"]
        .as_str()
        .filter(|s| !s.is_empty())
    {
        spec["subdomain"] = json!(service);
    }
    let templates = set["spec"]["volumeClaimTemplates"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !templates.is_empty() {
        let mut volumes: Vec<Value> = spec["volumes"].as_array().cloned().unwrap_or_default();
        for claim in &templates {
            let volume = claim["metadata"]["name"].clone();
            volumes.retain(|v| v["name"] != volume);
            volumes.push(json!({"name": volume, "persistentVolumeClaim": {
                "claimName": claim_name(claim, set_name, ordinal)}}));
        }
        spec["volumes"] = json!(volumes);
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> Value {
        json!({"metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": {"serviceName": "nginx", "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "i",
                        "volumeMounts": [{"name": "data", "mountPath": "/d"}]}],
                        "volumes": [{"name": "data", "emptyDir": {}}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"],
                             "resources": {"requests": {"storage": "1Gi"}}}}]}})
    }

    #[test]
    fn a_pod_has_its_ordinal_identity_and_its_own_claim() {
        let set = set();
        let pod = pod(&set, &set["spec"]["template"], "web-abc", 2);
        assert_eq!(pod["metadata"]["name"], "web-2");
        let labels = &pod["metadata"]["labels"];
        assert_eq!(labels[POD_NAME_LABEL], "web-2");
        assert_eq!(labels[POD_INDEX_LABEL], "2");
        assert_eq!(labels[REVISION_LABEL], "web-abc");
        assert_eq!(labels["app"], "web");
        assert_eq!(pod["spec"]["hostname"], "web-2");
        assert_eq!(pod["spec"]["subdomain"], "nginx");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["controller"], true);
        // The template's volume of the claim's name is replaced by the claim.
        let volumes = pod["spec"]["volumes"].as_array().unwrap();
        assert_eq!(volumes.len(), 1);
        assert_eq!(
            volumes[0]["persistentVolumeClaim"]["claimName"],
            "data-web-2"
        );
        let claims = claims(&set, 2);
        assert_eq!(claims[0]["metadata"]["name"], "data-web-2");
        assert_eq!(claims[0]["metadata"]["labels"]["app"], "web");
        assert_eq!(claims[0]["spec"]["accessModes"][0], "ReadWriteOnce");
    }

    #[test]
    fn only_names_of_the_form_set_dash_ordinal_are_members() {
        let named = |n: &str| json!({"metadata": {"name": n}});
        assert_eq!(ordinal_of("web", &named("web-0")), Some(0));
        assert_eq!(ordinal_of("web", &named("web-12")), Some(12));
        for other in ["web-", "web-01", "web-x", "webx-1", "web-1-2", "web"] {
            assert_eq!(ordinal_of("web", &named(other)), None, "{other}");
        }
    }
}
