//! What kube-apiserver checks on PersistentVolumeClaims beyond their types: at create, the
//! DefaultStorageClass admission (a claim that names no class — `spec.storageClassName`
//! absent, not "" — gets the class annotated `storageclass.kubernetes.io/is-default-class`,
//! the newest if several); at update, `ValidatePersistentVolumeClaimUpdate` (the spec is
//! immutable but for the volume name once and, on a bound claim, the storage request, which
//! may not shrink) and the PersistentVolumeClaimResize admission (growing needs a class with
//! `allowVolumeExpansion`). PVs and PVCs start in phase Pending, with the
//! StorageObjectInUseProtection finalizers (`kubernetes.io/pv[c]-protection`).

use serde_json::{json, Value};

use super::{decode_stored, Call};
use crate::controllers::scheduler::quantity::units;
use crate::kinds::{self, Resource};
use crate::status::{ApiError, FieldCause};
use crate::store::ListOptions;

const DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
const BETA_DEFAULT_CLASS: &str = "storageclass.beta.kubernetes.io/is-default-class";
const BETA_CLASS: &str = "volume.beta.kubernetes.io/storage-class";
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
pub const PV_PROTECTION: &str = "kubernetes.io/pv-protection";

fn is_claim(resource: &Resource) -> bool {
    (resource.group, resource.kind) == ("", "PersistentVolumeClaim")
}

fn classes() -> Result<&'static Resource, ApiError> {
    kinds::find("storage.k8s.io", "v1", "storageclasses")
        .ok_or_else(|| ApiError::internal("the kinds table has no storageclasses"))
}

/// At create: phase Pending for volumes and claims, and a claim's default class.
pub async fn admit_create(call: &Call, object: &mut Value) -> Result<(), ApiError> {
    let resource = call.resource();
    if resource.group.is_empty() && matches!(resource.kind, "PersistentVolume") {
        object["status"] = json!({"phase": "Pending"});
        protect(object, PV_PROTECTION);
    }
    if !is_claim(resource) {
        return Ok(());
    }
    object["status"] = json!({"phase": "Pending"});
    protect(object, PVC_PROTECTION);
    if object["spec"]["storageClassName"].is_string()
        || object["metadata"]["annotations"][BETA_CLASS].is_string()
    {
        return Ok(());
    }
    let page = call
        .state
        .store
        .list(&classes()?.key_prefix(), &ListOptions::default())
        .await
        .map_err(super::map_store_error)?;
    let classes: Vec<Value> = page
        .items
        .iter()
        .filter_map(|kv| decode_stored(kv).ok())
        .collect();
    if let Some(name) = default_class(&classes) {
        object["spec"]["storageClassName"] = json!(name);
    }
    Ok(())
}

/// The StorageObjectInUseProtection admission: the finalizer the PV controller removes once
/// nothing uses the object.
fn protect(object: &mut Value, finalizer: &str) {
    let meta = &mut object["metadata"];
    if !meta["finalizers"].is_array() {
        meta["finalizers"] = json!([]);
    }
    if let Some(list) = meta["finalizers"].as_array_mut() {
        if !list.iter().any(|f| f == finalizer) {
            list.push(json!(finalizer));
        }
    }
}

/// The default class among `classes`: annotated `is-default-class: "true"` (or the beta
/// annotation); the newest, then the first by name, when several are (as kube picks).
pub fn default_class<'a>(classes: impl IntoIterator<Item = &'a Value>) -> Option<&'a str> {
    classes
        .into_iter()
        .filter(|c| {
            let a = &c["metadata"]["annotations"];
            a[DEFAULT_CLASS] == "true" || a[BETA_DEFAULT_CLASS] == "true"
        })
        .max_by(|a, b| {
            let key = |c: &'a Value| {
                (
                    c["metadata"]["creationTimestamp"].as_str().unwrap_or(""),
                    std::cmp::Reverse(c["metadata"]["name"].as_str().unwrap_or("")),
                )
            };
            key(a).cmp(&key(b))
        })
        .and_then(|c| c["metadata"]["name"].as_str())
}

fn storage(claim: &Value) -> Option<i128> {
    claim["spec"]["resources"]["requests"]["storage"]
        .as_str()
        .and_then(units)
}

/// 422 when an update of claim `old` into `new` changes what may not change (kube's texts;
/// kube appends a Go diff of the two specs to the immutability message, bosun does not).
pub fn check_update(old: &Value, new: &Value, resource: &Resource) -> Result<(), ApiError> {
    if !is_claim(resource) {
        return Ok(());
    }
    let mut was = old["spec"].clone();
    let mut is = new["spec"].clone();
    if was["volumeName"].as_str().is_none_or(str::is_empty) {
        was["volumeName"] = is["volumeName"].clone();
    }
    if was["storageClassName"].is_null() && old["metadata"]["annotations"][BETA_CLASS].is_null() {
        was["storageClassName"] = is["storageClassName"].clone();
    }
    if old["status"]["phase"] == "Bound" && is["resources"]["requests"].is_object() {
        is["resources"]["requests"]["storage"] = was["resources"]["requests"]["storage"].clone();
    }
    for spec in [&mut was, &mut is] {
        if let Some(map) = spec.as_object_mut() {
            map.retain(|_, v| !v.is_null());
        }
    }
    let mut causes = Vec::new();
    if was != is {
        causes.push(FieldCause {
            field: "spec".to_owned(),
            reason: "FieldValueForbidden",
            message: "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims".to_owned(),
        });
    }
    if storage(new) < storage(old) {
        causes.push(FieldCause {
            field: "spec.resources.requests.storage".to_owned(),
            reason: "FieldValueForbidden",
            message: "Forbidden: field can not be less than previous value".to_owned(),
        });
    }
    if causes.is_empty() {
        return Ok(());
    }
    let name = new["metadata"]["name"].as_str().unwrap_or("");
    Err(ApiError::invalid(
        "PersistentVolumeClaim",
        "PersistentVolumeClaim",
        name,
        &causes,
    ))
}

/// At update (main resource): the 422 checks, then the resize admission — a claim grows only
/// if its class exists and allows volume expansion.
pub async fn admit_update(call: &Call, old: &Value, new: &Value) -> Result<(), ApiError> {
    let resource = call.resource();
    if !is_claim(resource) || call.path.subresource.is_some() {
        return Ok(());
    }
    check_update(old, new, resource)?;
    if storage(new) <= storage(old) {
        return Ok(());
    }
    let class_name = match old["metadata"]["annotations"][BETA_CLASS].as_str() {
        Some(name) => name,
        None => old["spec"]["storageClassName"].as_str().unwrap_or(""),
    };
    let mut allowed = false;
    if !class_name.is_empty() {
        let key = super::path::object_key(classes()?, None, class_name);
        let stored = call
            .state
            .store
            .get(&key)
            .await
            .map_err(super::map_store_error)?;
        if let Some(kv) = stored {
            allowed = decode_stored(&kv)?["allowVolumeExpansion"] == true;
        }
    }
    if allowed {
        return Ok(());
    }
    let name = new["metadata"]["name"].as_str().unwrap_or("");
    Err(ApiError::forbidden(format!(
        "persistentvolumeclaims \"{name}\" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(size: &str, phase: &str, extra: Value) -> Value {
        let mut c = json!({"metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local",
                     "resources": {"requests": {"storage": size}}},
            "status": {"phase": phase}});
        if let Some(spec) = extra.as_object() {
            for (k, v) in spec {
                c["spec"][k] = v.clone();
            }
        }
        c
    }

    #[test]
    fn a_claim_spec_is_immutable_but_for_its_volume_and_a_bound_claims_growth() {
        let pvcs = kinds::find("", "v1", "persistentvolumeclaims").expect("pvcs");
        let pending = claim("1Gi", "Pending", json!({}));
        let named = claim("1Gi", "Pending", json!({"volumeName": "pv1"}));
        assert!(check_update(&pending, &named, pvcs).is_ok());
        let bound = claim("1Gi", "Bound", json!({"volumeName": "pv1"}));
        assert!(check_update(
            &bound,
            &claim("2Gi", "Bound", json!({"volumeName": "pv1"})),
            pvcs
        )
        .is_ok());
        let e = check_update(
            &bound,
            &claim("1Gi", "Bound", json!({"volumeName": "pv2"})),
            pvcs,
        )
        .unwrap_err();
        assert!(
            e.message
                .contains("spec: Forbidden: spec is immutable after creation"),
            "{}",
            e.message
        );
        let e = check_update(
            &bound,
            &claim("500Mi", "Bound", json!({"volumeName": "pv1"})),
            pvcs,
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "PersistentVolumeClaim \"data\" is invalid: spec.resources.requests.storage: Forbidden: field can not be less than previous value"
        );
        let e = check_update(&pending, &claim("2Gi", "Pending", json!({})), pvcs).unwrap_err();
        assert!(e.message.contains("spec is immutable"), "{}", e.message);
    }

    #[test]
    fn the_newest_default_class_wins() {
        let class = |name: &str, at: &str, default: &str| {
            json!({"metadata": {"name": name, "creationTimestamp": at,
                "annotations": {DEFAULT_CLASS: default}}})
        };
        let classes = [
            class("old", "2026-01-01T00:00:00Z", "true"),
            class("new-b", "2026-06-01T00:00:00Z", "true"),
            class("new-a", "2026-06-01T00:00:00Z", "true"),
            class("newest", "2026-12-01T00:00:00Z", "false"),
        ];
        assert_eq!(default_class(&classes), Some("new-a"));
        assert_eq!(default_class(&classes[3..]), None);
    }
}
