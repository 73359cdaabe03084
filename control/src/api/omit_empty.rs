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
