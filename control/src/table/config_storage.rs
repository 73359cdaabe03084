//! Printers of configuration and storage kinds: configmaps, secrets, serviceaccounts,
//! persistent volumes and claims, storage classes (`(default)` marked), CSI drivers and nodes.

use serde_json::Value;

use super::cells::{age, arr, at, col, map_len, name, s, wide, AGE, NAME};
use super::Printer;

pub static CONFIG_MAP: Printer = Printer {
    columns: &[
        NAME,
        col("Data", "string", "Data contains the configuration data."),
        AGE,
    ],
    cells: |o, now| {
        vec![
            name(o),
            Value::from(map_len(o, &["data"]) + map_len(o, &["binaryData"])),
            age(o, now),
        ]
    },
};

pub static SECRET: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Type",
            "string",
            "Used to facilitate programmatic handling of secret data.",
        ),
        col("Data", "string", "Data contains the secret data."),
        AGE,
    ],
    cells: |o, now| {
        // The API defaults the type to Opaque.
        let kind = match s(o, &["type"]) {
            "" => "Opaque",
            t => t,
        };
        // stringData is folded into data on write; count both for objects not yet normalised.
        let data = map_len(o, &["data"]).max(map_len(o, &["stringData"]));
        vec![name(o), Value::from(kind), Value::from(data), age(o, now)]
    },
};

pub static SERVICE_ACCOUNT: Printer = Printer {
    columns: &[
        NAME,
        col("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
        AGE,
    ],
    cells: |o, now| {
        vec![
            name(o),
            Value::from(arr(o, &["secrets"]).len()),
            age(o, now),
        ]
    },
};

/// `GetAccessModesAsString`: RWO, ROX, RWX, RWOP in that order, each once.
fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(mode, _)| has(mode))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// The storage class of a PV or PVC: the beta annotation wins over `spec.storageClassName`.
fn storage_class(o: &Value) -> String {
    let annotation = at(
        o,
        &[
            "metadata",
            "annotations",
            "volume.beta.kubernetes.io/storage-class",
        ],
    );
    match annotation.as_str() {
        Some(class) => class.to_owned(),
        None => s(o, &["spec", "storageClassName"]).to_owned(),
    }
}

fn or_unset(v: &Value) -> Value {
    Value::from(v.as_str().unwrap_or("<unset>"))
}

fn phase(o: &Value) -> Value {
    if at(o, &["metadata", "deletionTimestamp"]).is_string() {
        Value::from("Terminating")
    } else {
        Value::from(s(o, &["status", "phase"]))
    }
}

pub static PERSISTENT_VOLUME: Printer = Printer {
    columns: &[
        NAME,
        col("Capacity", "string", "capacity is the description of the persistent volume's resources and capacity."),
        col("Access Modes", "string", "accessModes contains all ways the volume can be mounted."),
        col("Reclaim Policy", "string", "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim."),
        col("Status", "string", "phase indicates if a volume is available, bound to a claim, or released by a claim."),
        col("Claim", "string", "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim."),
        col("StorageClass", "string", "StorageClass of the pv"),
        col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv"),
        col("Reason", "string", "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI."),
        AGE,
        wide("VolumeMode", "string", "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state."),
    ],
    cells: |o, now| {
        let claim = at(o, &["spec", "claimRef"]);
        let claim = if claim.is_object() {
            format!("{}/{}", s(claim, &["namespace"]), s(claim, &["name"]))
        } else {
            String::new()
        };
        vec![
            name(o),
            Value::from(s(o, &["spec", "capacity", "storage"])),
            Value::from(access_modes(arr(o, &["spec", "accessModes"]))),
            Value::from(s(o, &["spec", "persistentVolumeReclaimPolicy"])),
            phase(o),
            Value::from(claim),
            Value::from(storage_class(o)),
            or_unset(at(o, &["spec", "volumeAttributesClassName"])),
            Value::from(s(o, &["status", "reason"])),
            age(o, now),
            or_unset(at(o, &["spec", "volumeMode"])),
        ]
    },
};

pub static PERSISTENT_VOLUME_CLAIM: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Status",
            "string",
            "phase represents the current phase of PersistentVolumeClaim.",
        ),
        col(
            "Volume",
            "string",
            "volumeName is the binding reference to the PersistentVolume backing this claim.",
        ),
        col(
            "Capacity",
            "string",
            "capacity represents the actual resources of the underlying volume.",
        ),
        col(
            "Access Modes",
            "string",
            "accessModes contains the actual access modes the volume backing the PVC has.",
        ),
        col("StorageClass", "string", "StorageClass of the pvc"),
        col(
            "VolumeAttributesClass",
            "string",
            "VolumeAttributesClass of the pvc",
        ),
        AGE,
        wide(
            "VolumeMode",
            "string",
            "volumeMode defines what type of volume is required by the claim.",
        ),
    ],
    cells: |o, now| {
        let volume = s(o, &["spec", "volumeName"]);
        let (capacity, modes) = if volume.is_empty() {
            (String::new(), String::new())
        } else {
            (
                s(o, &["status", "capacity", "storage"]).to_owned(),
                access_modes(arr(o, &["status", "accessModes"])),
            )
        };
        vec![
            name(o),
            phase(o),
            Value::from(volume),
            Value::from(capacity),
            Value::from(modes),
            Value::from(storage_class(o)),
            or_unset(at(o, &["spec", "volumeAttributesClassName"])),
            age(o, now),
            or_unset(at(o, &["spec", "volumeMode"])),
        ]
    },
};

pub static STORAGE_CLASS: Printer = Printer {
    columns: &[
        NAME,
        col("Provisioner", "string", "provisioner indicates the type of the provisioner."),
        col("ReclaimPolicy", "string", "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class. Defaults to Delete."),
        col("VolumeBindingMode", "string", "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound."),
        col("AllowVolumeExpansion", "string", "allowVolumeExpansion shows whether the storage class allow volume expand."),
        AGE,
    ],
    cells: |o, now| {
        let annotations = at(o, &["metadata", "annotations"]);
        let default = [
            "storageclass.kubernetes.io/is-default-class",
            "storageclass.beta.kubernetes.io/is-default-class",
        ]
        .iter()
        .any(|k| s(annotations, &[k]) == "true");
        let mut label = s(o, &["metadata", "name"]).to_owned();
        if default {
            label.push_str(" (default)");
        }
        vec![
            Value::from(label),
            Value::from(s(o, &["provisioner"])),
            Value::from(at(o, &["reclaimPolicy"]).as_str().unwrap_or("Delete")),
            Value::from(at(o, &["volumeBindingMode"]).as_str().unwrap_or("Immediate")),
            Value::from(at(o, &["allowVolumeExpansion"]).as_bool().unwrap_or(false)),
            age(o, now),
        ]
    },
};

pub static CSI_DRIVER: Printer = Printer {
    columns: &[
        NAME,
        col("AttachRequired", "boolean", "attachRequired indicates this CSI volume driver requires an attach operation."),
        col("PodInfoOnMount", "boolean", "podInfoOnMount indicates this CSI volume driver requires additional pod information during mount operations."),
        col("StorageCapacity", "boolean", "storageCapacity indicates that the CSI volume driver wants pod scheduling to consider the storage capacity."),
        col("TokenRequests", "string", "tokenRequests indicates the CSI driver needs pods' service account tokens it is mounting volume for."),
        col("RequiresRepublish", "boolean", "requiresRepublish indicates the CSI driver wants NodePublishVolume being periodically called."),
        col("Modes", "string", "volumeLifecycleModes defines what kind of volumes this CSI volume driver supports."),
        AGE,
    ],
    cells: |o, now| {
        let flag = |k: &str, default: bool| Value::from(at(o, &["spec", k]).as_bool().unwrap_or(default));
        let tokens = at(o, &["spec", "tokenRequests"]);
        let tokens = match tokens.as_array() {
            Some(list) => list
                .iter()
                .map(|t| s(t, &["audience"]))
                .collect::<Vec<_>>()
                .join(","),
            None => "<unset>".to_owned(),
        };
        let modes: Vec<&str> = arr(o, &["spec", "volumeLifecycleModes"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        vec![
            name(o),
            flag("attachRequired", true),
            flag("podInfoOnMount", false),
            flag("storageCapacity", false),
            Value::from(tokens),
            flag("requiresRepublish", false),
            Value::from(if modes.is_empty() {
                "<none>".to_owned()
            } else {
                modes.join(",")
            }),
            age(o, now),
        ]
    },
};

pub static CSI_NODE: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Drivers",
            "integer",
            "Drivers indicates the number of CSI drivers registered on the node",
        ),
        AGE,
    ],
    cells: |o, now| {
        vec![
            name(o),
            Value::from(arr(o, &["spec", "drivers"]).len()),
            age(o, now),
        ]
    },
};

/// kube's ResourceQuota columns: each resource of `status.hard` as `name: used/hard`, the
/// `limits.*` ones under LIMIT, the rest under REQUEST.
pub static RESOURCE_QUOTA: Printer = Printer {
    columns: &[
        NAME,
        AGE,
        col("Request", "string", "Request represents a minimum amount of cpu/memory that a container may consume."),
        col("Limit", "string", "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."),
    ],
    cells: |o, now| {
        let (mut request, mut limit) = (Vec::new(), Vec::new());
        if let Some(hard) = at(o, &["status", "hard"]).as_object() {
            let mut names: Vec<&String> = hard.keys().collect();
            names.sort();
            for resource in names {
                let used = at(o, &["status", "used"])[resource.as_str()].as_str().unwrap_or("0");
                let cell = format!("{resource}: {used}/{}", hard[resource].as_str().unwrap_or(""));
                match resource.split('.').next() == Some("limits") && resource.contains('.') {
                    true => limit.push(cell),
                    false => request.push(cell),
                }
            }
        }
        vec![
            name(o),
            age(o, now),
            Value::from(request.join(", ")),
            Value::from(limit.join(", ")),
        ]
    },
};
