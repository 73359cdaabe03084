//! kube-apiserver's semantic rules for PersistentVolumes, PersistentVolumeClaims and
//! StorageClasses (`ValidatePersistentVolume*`, `ValidateStorageClass`), in its words; plus the
//! fields nothing in bosun carries out, refused by name rather than stored and ignored:
//! reclaimPolicy `Recycle`, a claim's `dataSource`/`dataSourceRef` (cloning, snapshots) and
//! `volumeAttributesClassName`.

use serde_json::Value;

use crate::controllers::scheduler::quantity::units;
use crate::status::FieldCause;

const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

pub(super) fn not_supported(field: &str, value: &str, supported: &[&str]) -> FieldCause {
    FieldCause::not_supported(field, value, supported)
}

fn access_modes(spec: &Value, causes: &mut Vec<FieldCause>, required_why: &str) {
    let modes = spec["accessModes"].as_array().filter(|m| !m.is_empty());
    let Some(modes) = modes else {
        let mut cause = FieldCause::required("spec.accessModes");
        if !required_why.is_empty() {
            cause.message = format!("Required value: {required_why}");
        }
        causes.push(cause);
        return;
    };
    for mode in modes.iter().filter_map(Value::as_str) {
        if !ACCESS_MODES.contains(&mode) {
            causes.push(not_supported("spec.accessModes", mode, ACCESS_MODES));
        }
    }
}

fn reclaim_policy(value: &Value, field: &str, causes: &mut Vec<FieldCause>) {
    if let Some(policy) = value
        .as_str()
        .filter(|p| !matches!(*p, "Delete" | "Retain"))
    {
        causes.push(not_supported(field, policy, &["Delete", "Retain"]));
    }
}

/// The volume sources a PV may have (one of them).
const SOURCES: &[&str] = &[
    "hostPath",
    "local",
    "csi",
    "nfs",
    "iscsi",
    "fc",
    "rbd",
    "cephfs",
    "glusterfs",
    "awsElasticBlockStore",
    "gcePersistentDisk",
    "azureDisk",
    "azureFile",
    "cinder",
    "flexVolume",
    "flocker",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "scaleIO",
    "storageos",
    "vsphereVolume",
];

pub fn persistent_volume(object: &Value, causes: &mut Vec<FieldCause>) {
    let spec = &object["spec"];
    if spec["capacity"].as_object().is_none_or(|c| c.is_empty()) {
        causes.push(FieldCause::required("spec.capacity"));
    } else if spec["capacity"]["storage"].is_null() {
        causes.push(FieldCause::required("spec.capacity[storage]"));
    }
    access_modes(spec, causes, "");
    reclaim_policy(
        &spec["persistentVolumeReclaimPolicy"],
        "spec.persistentVolumeReclaimPolicy",
        causes,
    );
    let sources = SOURCES.iter().filter(|s| !spec[**s].is_null()).count();
    if sources == 0 {
        let mut cause = FieldCause::required("spec");
        cause.message = "Required value: must specify a volume type".to_owned();
        causes.push(cause);
    } else if sources > 1 {
        causes.push(FieldCause {
            field: "spec".to_owned(),
            reason: "FieldValueForbidden",
            message: "Forbidden: may not specify more than 1 volume type".to_owned(),
        });
    }
}

pub fn persistent_volume_claim(object: &Value, causes: &mut Vec<FieldCause>) {
    let spec = &object["spec"];
    access_modes(spec, causes, "at least 1 access mode is required");
    match spec["resources"]["requests"]["storage"].as_str() {
        None => causes.push(FieldCause::required("spec.resources[storage]")),
        Some(size) if units(size).is_none_or(|s| s <= 0) => causes.push(FieldCause::invalid(
            "spec.resources[storage]",
            size,
            "must be greater than zero",
        )),
        Some(_) => {}
    }
    for field in ["dataSource", "dataSourceRef", "volumeAttributesClassName"] {
        if !spec[field].is_null() {
            causes.push(FieldCause::invalid(
                &format!("spec.{field}"),
                &spec[field].to_string(),
                "not supported by bosun: no provisioner here populates or modifies volumes",
            ));
        }
    }
}

pub fn storage_class(object: &Value, causes: &mut Vec<FieldCause>) {
    if object["provisioner"].as_str().is_none_or(str::is_empty) {
        causes.push(FieldCause::required("provisioner"));
    }
    reclaim_policy(&object["reclaimPolicy"], "reclaimPolicy", causes);
    if let Some(mode) = object["volumeBindingMode"]
        .as_str()
        .filter(|m| !matches!(*m, "Immediate" | "WaitForFirstConsumer"))
    {
        let supported = ["Immediate", "WaitForFirstConsumer"];
        causes.push(not_supported("volumeBindingMode", mode, &supported));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn texts(causes: &[FieldCause]) -> Vec<String> {
        causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn volumes_claims_and_classes_are_checked_in_kubes_words() {
        let mut c = Vec::new();
        persistent_volume(
            &json!({"spec": {"persistentVolumeReclaimPolicy": "Recycle"}}),
            &mut c,
        );
        assert_eq!(
            texts(&c),
            [
                "spec.capacity: Required value",
                "spec.accessModes: Required value",
                "spec.persistentVolumeReclaimPolicy: Unsupported value: \"Recycle\": supported values: \"Delete\", \"Retain\"",
                "spec: Required value: must specify a volume type",
            ]
        );
        let mut c = Vec::new();
        persistent_volume_claim(
            &json!({"spec": {"accessModes": ["ReadWriteSometimes"], "dataSource": {"kind": "PersistentVolumeClaim", "name": "x"}}}),
            &mut c,
        );
        let t = texts(&c);
        assert!(
            t[0].starts_with("spec.accessModes: Unsupported value: \"ReadWriteSometimes\""),
            "{t:?}"
        );
        assert_eq!(t[1], "spec.resources[storage]: Required value");
        assert!(t[2].starts_with("spec.dataSource: Invalid value"), "{t:?}");
        let mut c = Vec::new();
        let ok = json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
        persistent_volume_claim(&ok, &mut c);
        storage_class(
            &json!({"provisioner": "p", "volumeBindingMode": "WaitForFirstConsumer"}),
            &mut c,
        );
        assert!(c.is_empty(), "{c:?}");
        storage_class(
            &json!({"provisioner": "p", "volumeBindingMode": "Later"}),
            &mut c,
        );
        assert_eq!(c.len(), 1);
    }
}
