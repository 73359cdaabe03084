//! Empty optional lists and maps left out of a built-in object, as Kubernetes' Go types
//! encode them: their `omitempty` tags drop `labels: {}`, `finalizers: []` or `data: {}` when
//! an object is stored. Without this, a patch or apply that only adds an empty map would be a
//! change (`kubectl diff` printing `annotations: {}`, `patch` not answering "no change").
//!
//! Walked alongside the object through the kinds' schemas ([`Shape`]): a field is left out
//! when it is empty, its schema is a list or a map of free keys, and the type declares it
//! optional. Structs (`selector: {}`, `securityContext: {}`) are pointers in Go and keep
//! their empty value, as do free-form JSON values (a CRD schema's `default: {}`) and the
//! few optional lists Kubernetes encodes without `omitempty` ([`ENCODED_EMPTY`]).
//!
//! Numbers and booleans are left out at zero only where the Go field is a plain value with
//! `omitempty` ([`PLAIN_SCALARS`]): `hostNetwork: false`, `minReadySeconds: 0`. A pointer's
//! zero (`replicas: 0`, `automountServiceAccountToken: false`) means something and stays;
//! neither JSON, the schemas nor the protobuf wire (which carries every plain field) tell the
//! two apart, so the plain ones are listed.

use serde_json::Value;

use crate::api::patch::shape::Shape;

/// Optional lists whose Go field has no `omitempty`, so Kubernetes writes them empty:
/// (definition, field).
const ENCODED_EMPTY: &[(&str, &str)] = &[
    ("io.k8s.api.core.v1.ContainerImage", "names"),
    ("io.k8s.api.core.v1.ProjectedVolumeSource", "sources"),
    ("io.k8s.api.discovery.v1.EndpointSlice", "ports"),
    ("io.k8s.api.rbac.v1.ClusterRole", "rules"),
    ("io.k8s.api.rbac.v1.Role", "rules"),
    (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionStatus",
        "storedVersions",
    ),
];

/// Plain (non-pointer) numbers and booleans with `omitempty` in Kubernetes' Go types, whose
/// zero Go leaves out: (definition, fields).
#[rustfmt::skip]
const PLAIN_SCALARS: &[(&str, &[&str])] = &[
    ("io.k8s.api.apps.v1.DaemonSetSpec", &["minReadySeconds"]),
    ("io.k8s.api.apps.v1.DaemonSetStatus", &["observedGeneration", "updatedNumberScheduled", "numberAvailable", "numberUnavailable"]),
    ("io.k8s.api.apps.v1.DeploymentSpec", &["minReadySeconds", "paused"]),
    ("io.k8s.api.apps.v1.DeploymentStatus", &["observedGeneration", "replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas"]),
    ("io.k8s.api.apps.v1.ReplicaSetSpec", &["minReadySeconds"]),
    ("io.k8s.api.apps.v1.ReplicaSetStatus", &["fullyLabeledReplicas", "readyReplicas", "availableReplicas", "observedGeneration"]),
    ("io.k8s.api.apps.v1.StatefulSetSpec", &["minReadySeconds"]),
    ("io.k8s.api.apps.v1.StatefulSetStatus", &["observedGeneration", "readyReplicas", "currentReplicas", "updatedReplicas"]),
    ("io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus", &["currentReplicas"]),
    ("io.k8s.api.batch.v1.JobStatus", &["active", "succeeded", "failed"]),
    ("io.k8s.api.core.v1.AWSElasticBlockStoreVolumeSource", &["partition", "readOnly"]),
    ("io.k8s.api.core.v1.AzureFileVolumeSource", &["readOnly"]),
    ("io.k8s.api.core.v1.CSIPersistentVolumeSource", &["readOnly"]),
    ("io.k8s.api.core.v1.CephFSVolumeSource", &["readOnly"]),
    ("io.k8s.api.core.v1.CinderVolumeSource", &["readOnly"]),
    ("io.k8s.api.core.v1.Container", &["stdin", "stdinOnce", "tty"]),
    ("io.k8s.api.core.v1.ContainerImage", &["sizeBytes"]),
    ("io.k8s.api.core.v1.ContainerPort", &["hostPort"]),
    ("io.k8s.api.core.v1.ContainerStateTerminated", &["signal"]),
    ("io.k8s.api.core.v1.EphemeralContainer", &["stdin", "stdinOnce", "tty"]),
    ("io.k8s.api.core.v1.Event", &["count"]),
    ("io.k8s.api.core.v1.FCVolumeSource", &["readOnly"]),
    ("io.k8s.api.core.v1.FlexVolumeSource", &["readOnly"]),
    ("io.k8s.api.core.v1.GCEPersistentDiskVolumeSource", &["partition", "readOnly"]),
    ("io.k8s.api.core.v1.ISCSIVolumeSource", &["readOnly"]),
    ("io.k8s.api.core.v1.NFSVolumeSource", &["readOnly"]),
    ("io.k8s.api.core.v1.NodeSpec", &["unschedulable"]),
    ("io.k8s.api.core.v1.PersistentVolumeClaimVolumeSource", &["readOnly"]),
    ("io.k8s.api.core.v1.PodSpec", &["hostNetwork", "hostPID", "hostIPC"]),
    ("io.k8s.api.core.v1.Probe", &["initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"]),
    ("io.k8s.api.core.v1.RBDVolumeSource", &["readOnly"]),
    ("io.k8s.api.core.v1.ReplicationControllerSpec", &["minReadySeconds"]),
    ("io.k8s.api.core.v1.ReplicationControllerStatus", &["fullyLabeledReplicas", "readyReplicas", "availableReplicas", "observedGeneration"]),
    ("io.k8s.api.core.v1.ServicePort", &["nodePort"]),
    ("io.k8s.api.core.v1.ServiceSpec", &["publishNotReadyAddresses", "healthCheckNodePort"]),
    ("io.k8s.api.core.v1.VolumeMount", &["readOnly"]),
    ("io.k8s.api.events.v1.Event", &["deprecatedCount"]),
    ("io.k8s.api.networking.v1.ServiceBackendPort", &["number"]),
    ("io.k8s.api.policy.v1.PodDisruptionBudgetStatus", &["observedGeneration"]),
    ("io.k8s.api.scheduling.v1.PriorityClass", &["globalDefault"]),
    ("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionSpec", &["preserveUnknownFields"]),
    ("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionVersion", &["deprecated"]),
    ("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps", &["exclusiveMaximum", "exclusiveMinimum", "uniqueItems", "nullable", "x-kubernetes-embedded-resource", "x-kubernetes-int-or-string"]),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", &["generation"]),
];

/// Objects nest no deeper than this in practice; a deeper value is left as it is.
const MAX_DEPTH: usize = 64;

/// Leaves out of `object` (of schema `shape`) its empty optional lists and maps, at any depth.
pub fn omit_empty(object: &mut Value, shape: Shape) {
    walk(object, shape, 0);
}

fn walk(value: &mut Value, shape: Shape, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::Object(map) => {
            if !shape.is_map() {
                map.retain(|name, value| !omitted(shape, name, value));
            }
            for (name, value) in map.iter_mut() {
                walk(value, shape.field(name).shape, depth + 1);
            }
        }
        Value::Array(items) => {
            let item = shape.items();
            for value in items {
                walk(value, item, depth + 1);
            }
        }
        _ => {}
    }
}

/// Whether the field `name` of a struct of schema `shape` is encoded away.
fn omitted(shape: Shape, name: &str, value: &Value) -> bool {
    let zero = *value == Value::Bool(false) || value.as_f64() == Some(0.0);
    if zero {
        return shape.definition().is_some_and(|definition| {
            PLAIN_SCALARS
                .iter()
                .any(|(d, fields)| *d == definition && fields.contains(&name))
        });
    }
    let empty_list = value.as_array().is_some_and(Vec::is_empty);
    let empty_map = value.as_object().is_some_and(|m| m.is_empty());
    if !(empty_list || empty_map) || !shape.is_optional(name) {
        return false;
    }
    if let Some(definition) = shape.definition() {
        if ENCODED_EMPTY.contains(&(definition, name)) {
            return false;
        }
    }
    let field = shape.field(name).shape;
    (empty_list && field.is_list()) || (empty_map && field.is_map())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn omitted_from(group: &str, kind: &str, mut object: Value) -> Value {
        omit_empty(&mut object, Shape::of_kind(group, "v1", kind));
        object
    }

    #[test]
    fn empty_optional_maps_and_lists_are_left_out_at_any_depth() {
        let deployment = json!({
            "metadata": {"name": "web", "labels": {}, "annotations": {}, "finalizers": [],
                         "ownerReferences": []},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}, "matchExpressions": []},
                "template": {
                    "metadata": {"labels": {"app": "web"}, "annotations": {}},
                    "spec": {
                        "nodeSelector": {},
                        "volumes": [],
                        "containers": [{
                            "name": "web", "image": "nginx", "args": [], "env": [],
                            "resources": {"limits": {}, "requests": {"cpu": "1"}},
                        }],
                    },
                },
            },
        });
        let out = omitted_from("apps", "Deployment", deployment);
        assert_eq!(out["metadata"], json!({"name": "web"}));
        assert_eq!(
            out["spec"]["selector"],
            json!({"matchLabels": {"app": "web"}})
        );
        let template = &out["spec"]["template"];
        assert_eq!(template["metadata"], json!({"labels": {"app": "web"}}));
        assert_eq!(
            template["spec"],
            json!({"containers": [{"name": "web", "image": "nginx",
                                   "resources": {"requests": {"cpu": "1"}}}]})
        );
    }

    #[test]
    fn empty_structs_required_fields_and_go_encoded_lists_stay() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {
                "containers": [],
                "securityContext": {},
                "affinity": {"podAffinity": {}},
                "volumes": [{"name": "v", "projected": {"sources": []}}],
            },
        });
        assert_eq!(omitted_from("", "Pod", pod.clone()), pod);
        let role = json!({"metadata": {"name": "r"}, "rules": []});
        assert_eq!(
            omitted_from("rbac.authorization.k8s.io", "Role", role.clone()),
            role
        );
        let slice = json!({"addressType": "IPv4", "endpoints": [], "ports": []});
        assert_eq!(
            omitted_from("discovery.k8s.io", "EndpointSlice", slice.clone()),
            slice
        );
        // A selector that is there and empty selects everything: a struct, kept.
        let pdb = json!({"spec": {"selector": {}}});
        assert_eq!(
            omitted_from("policy", "PodDisruptionBudget", pdb.clone()),
            pdb
        );
    }

    #[test]
    fn every_listed_field_is_in_the_schemas() {
        for (definition, fields) in PLAIN_SCALARS {
            let shape = Shape::named(definition);
            assert_eq!(
                shape.definition(),
                Some(*definition),
                "{definition} is no schema"
            );
            for field in *fields {
                assert!(shape.is_optional(field), "{definition}.{field}");
            }
        }
        for (definition, field) in ENCODED_EMPTY {
            assert!(
                Shape::named(definition).is_optional(field),
                "{definition}.{field}"
            );
        }
    }

    #[test]
    fn zeros_of_plain_fields_go_and_zeros_of_pointers_stay() {
        let deployment = json!({
            "metadata": {"name": "web", "generation": 0},
            "spec": {
                "replicas": 0, "minReadySeconds": 0, "paused": false,
                "revisionHistoryLimit": 0,
                "template": {"metadata": {"generation": 0}, "spec": {
                    "hostNetwork": false, "hostPID": false, "hostIPC": true,
                    "automountServiceAccountToken": false,
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "c", "image": "i", "stdin": false, "tty": false,
                        "stdinOnce": false, "ports": [{"containerPort": 80, "hostPort": 0}],
                        "readinessProbe": {"periodSeconds": 0, "initialDelaySeconds": 5}}],
                }},
            },
        });
        let out = omitted_from("apps", "Deployment", deployment);
        assert_eq!(out["metadata"], json!({"name": "web"}));
        let spec = &out["spec"];
        assert_eq!(spec["replicas"], 0);
        assert_eq!(spec["revisionHistoryLimit"], 0);
        assert!(spec.get("minReadySeconds").is_none() && spec.get("paused").is_none());
        let pod = &spec["template"]["spec"];
        assert_eq!(
            spec["template"]["metadata"],
            json!({}),
            "a struct stays, empty"
        );
        assert_eq!(pod["hostIPC"], true);
        assert!(pod.get("hostNetwork").is_none() && pod.get("hostPID").is_none());
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(pod["terminationGracePeriodSeconds"], 0);
        assert_eq!(
            pod["containers"][0],
            json!({"name": "c", "image": "i", "ports": [{"containerPort": 80}],
                   "readinessProbe": {"initialDelaySeconds": 5}})
        );
    }

    #[test]
    fn free_form_json_and_managed_fields_are_not_touched() {
        let crd = json!({
            "spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {"type": "object", "default": {},
                                        "properties": {}, "required": []}},
            }}}]},
            "status": {"storedVersions": [], "conditions": []},
        });
        let out = omitted_from("apiextensions.k8s.io", "CustomResourceDefinition", crd);
        let spec = &out["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(spec, &json!({"type": "object", "default": {}}));
        assert_eq!(out["status"], json!({"storedVersions": []}));
        let cm = json!({
            "metadata": {"name": "c", "managedFields": [
                {"manager": "m", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {}},
            ]},
            "data": {"empty": ""},
            "binaryData": {},
        });
        let out = omitted_from("", "ConfigMap", cm);
        assert_eq!(out["metadata"]["managedFields"][0]["fieldsV1"], json!({}));
        assert_eq!(out["data"], json!({"empty": ""}));
        assert!(out.get("binaryData").is_none());
    }
}
