//! Object metadata as the API server owns it: what create sets (uid, creationTimestamp,
//! generation, resourceVersion, generateName), what update keeps (the immutable fields, and
//! `.status` for kinds with a status subresource), how the generation moves, and the name
//! rules. Pure functions on JSON; no store access.

use bytes::Bytes;
use serde_json::{json, Value};
use time::macros::format_description;

use crate::kinds::Resource;
use crate::status::{ApiError, FieldCause};

/// Now, as Kubernetes writes timestamps (`2026-12-02T06:00:00Z`).
pub fn now() -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::now_utc()
        .format(format)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

pub fn set_resource_version(object: &mut Value, revision: i64) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), json!(revision.to_string()));
    }
}

/// The bytes stored for `object`: its JSON without resourceVersion (the key's revision is).
pub fn to_stored(object: &Value) -> Result<Bytes, ApiError> {
    let mut copy = object.clone();
    if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    serde_json::to_vec(&copy)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(format!("encoding the object: {e}")))
}

pub fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or("")
}

pub fn finalizers(object: &Value) -> usize {
    object["metadata"]["finalizers"]
        .as_array()
        .map_or(0, Vec::len)
}

fn metadata_mut(object: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    match object.get_mut("metadata").and_then(Value::as_object_mut) {
        Some(meta) => meta,
        None => unreachable!("metadata was just made an object"),
    }
}

/// Fills in what create owns. `namespace` is the path's. The name comes from the body or
/// from `generateName` plus five random characters.
pub fn prepare_create(
    object: &mut Value,
    resource: &Resource,
    namespace: Option<&str>,
) -> Result<(), ApiError> {
    let meta = metadata_mut(object);
    if let Some(ns) = namespace {
        match meta.get("namespace").and_then(Value::as_str) {
            Some(body_ns) if !body_ns.is_empty() && body_ns != ns => {
                return Err(ApiError::bad_request(format!(
                    "the namespace of the provided object ({body_ns}) does not match the namespace sent on the request ({ns})"
                )))
            }
            _ => {
                meta.insert("namespace".into(), json!(ns));
            }
        }
    } else {
        meta.remove("namespace");
    }
    let name = meta.get("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        let prefix = meta
            .get("generateName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if prefix.is_empty() {
            return Err(ApiError::invalid(
                &resource.group_kind(),
                resource.kind,
                "",
                &[FieldCause::required("metadata.name")
                    .with_message("Required value: name or generateName is required")],
            ));
        }
        let name = crate::names::generate(prefix);
        meta.insert("name".into(), json!(name));
    }
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(now()));
    if resource.tracks_generation() {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    for owned in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        meta.remove(owned);
    }
    if resource.group.is_empty() && resource.kind == "Namespace" {
        let name = name_of(object).to_owned();
        object["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
        object["status"] = json!({"phase": "Active"});
    } else if resource.group.is_empty() && resource.kind == "Pod" {
        // kube's pod PrepareForCreate: Pending, with its QoS class.
        object["status"] =
            json!({"phase": "Pending", "qosClass": super::pod_qos::qos_class(object)});
    } else if resource.has_status() {
        // Kubernetes' PrepareForCreate: status is the controllers' to write.
        if let Some(map) = object.as_object_mut() {
            map.remove("status");
        }
    }
    Ok(())
}

/// The object an update stores: `new` with the metadata the server owns taken from `old`.
/// A `status` write changes only `.status`, a pod's `ephemeralcontainers` write only its
/// `spec.ephemeralContainers`; a main-resource write of a kind with a status subresource
/// keeps the old `.status`. The generation moves when anything but metadata and status
/// changes. `subresource` is the one written (`None`: the object itself).
pub fn prepare_update(
    old: &Value,
    mut new: Value,
    resource: &Resource,
    subresource: Option<&str>,
) -> Value {
    if subresource == Some(super::pod_ephemeral::SUBRESOURCE) {
        return super::pod_ephemeral::prepare_update(old, &new);
    }
    if subresource.is_some() {
        let mut out = old.clone();
        out["status"] = new.get("status").cloned().unwrap_or(Value::Null);
        if out["status"].is_null() {
            if let Some(map) = out.as_object_mut() {
                map.remove("status");
            }
        }
        // kube's Deployment status strategy keeps only spec and labels: its controller writes
        // the revision annotation with the status, which moves no generation.
        if is_deployment(resource) {
            let annotations = new["metadata"].get("annotations").cloned();
            let meta = metadata_mut(&mut out);
            match annotations.filter(|a| !a.is_null()) {
                Some(a) => meta.insert("annotations".into(), a),
                None => meta.remove("annotations"),
            };
        }
        return out;
    }
    if resource.has_status() {
        match old.get("status") {
            Some(status) => new["status"] = status.clone(),
            None => {
                if let Some(map) = new.as_object_mut() {
                    map.remove("status");
                }
            }
        }
    }
    let old_meta = &old["metadata"];
    let meta = metadata_mut(&mut new);
    for owned in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "namespace",
        "generation",
    ] {
        match old_meta.get(owned) {
            Some(v) => meta.insert(owned.into(), v.clone()),
            None => meta.remove(owned),
        };
    }
    if resource.group.is_empty() && resource.kind == "Namespace" {
        new["metadata"]["labels"]["kubernetes.io/metadata.name"] = old_meta["name"].clone();
    }
    // A Deployment's annotations count as its desired state too (kube's deployment strategy).
    let annotations_changed = is_deployment(resource)
        && old_meta.get("annotations") != new["metadata"].get("annotations");
    if resource.tracks_generation() && (annotations_changed || content(old) != content(&new)) {
        let generation = old_meta["generation"].as_i64().unwrap_or(0) + 1;
        new["metadata"]["generation"] = json!(generation);
    }
    new
}

fn is_deployment(resource: &Resource) -> bool {
    resource.group == "apps" && resource.kind == "Deployment"
}

/// A deletion that leaves the object in place (finalizers) marks it: kube bumps its
/// generation then, when it has one, so its controllers see the change.
pub fn bump_generation_on_delete(object: &mut Value) {
    if let Some(generation) = object["metadata"]["generation"].as_i64() {
        if generation > 0 {
            object["metadata"]["generation"] = json!(generation + 1);
        }
    }
}

/// Everything but metadata and status.
fn content(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    copy
}

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Whether `name` is a DNS-1123 subdomain (or, with `label_only`, a DNS-1123 label).
pub fn name_problem(name: &str, label_only: bool) -> Option<FieldCause> {
    let value = format!("{name:?}");
    if label_only {
        return (!is_label(name)).then(|| FieldCause::invalid("metadata.name", &value, LABEL_MSG));
    }
    let ok = name.len() <= 253 && name.split('.').all(is_label);
    (!ok).then(|| FieldCause::invalid("metadata.name", &value, SUBDOMAIN_MSG))
}

/// Why `value` (at `field`) is not a DNS-1123 label, as kube's `ValidateDNS1123Label` says it.
pub fn label_problem(field: &str, value: &str) -> Option<FieldCause> {
    (!is_label(value)).then(|| FieldCause::invalid(field, &format!("{value:?}"), LABEL_MSG))
}

impl FieldCause {
    pub fn with_message(mut self, message: &str) -> Self {
        self.message = message.to_owned();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployments() -> &'static Resource {
        crate::kinds::find("apps", "v1", "deployments").unwrap()
    }

    #[test]
    fn create_fills_server_owned_metadata_and_generates_names() {
        let mut o = json!({"metadata": {"generateName": "web-", "resourceVersion": "9"}, "status": {"replicas": 3}});
        prepare_create(&mut o, deployments(), Some("a")).unwrap();
        let name = name_of(&o);
        assert!(name.starts_with("web-") && name.len() == 9, "{name}");
        assert_eq!(o["metadata"]["namespace"], "a");
        assert_eq!(o["metadata"]["generation"], 1);
        assert!(o["metadata"]["resourceVersion"].is_null() && o["status"].is_null());
        assert_eq!(o["metadata"]["uid"].as_str().unwrap().len(), 36);
        let mut o = json!({"metadata": {"name": "x", "namespace": "b"}});
        assert!(prepare_create(&mut o, deployments(), Some("a")).is_err());
        let mut o = json!({"metadata": {}});
        assert_eq!(
            prepare_create(&mut o, deployments(), Some("a"))
                .unwrap_err()
                .code,
            422
        );
    }

    #[test]
    fn update_keeps_owned_fields_and_bumps_generation_on_spec_changes() {
        let old = json!({"metadata": {"name": "web", "uid": "u", "generation": 1}, "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let new = json!({"metadata": {"name": "web", "uid": "other", "labels": {"a": "b"}}, "spec": {"replicas": 1}, "status": {"replicas": 9}});
        let out = prepare_update(&old, new, deployments(), None);
        assert_eq!(out["metadata"]["uid"], "u");
        assert_eq!(out["metadata"]["generation"], 1);
        assert_eq!(out["status"]["replicas"], 1);
        assert_eq!(out["metadata"]["labels"]["a"], "b");
        let new = json!({"metadata": {"name": "web"}, "spec": {"replicas": 2}});
        assert_eq!(
            prepare_update(&old, new, deployments(), None)["metadata"]["generation"],
            2
        );
        let new = json!({"metadata": {"name": "web", "labels": {"x": "y"}}, "spec": {"replicas": 5}, "status": {"replicas": 2}});
        let out = prepare_update(&old, new, deployments(), Some("status"));
        assert_eq!(out["status"]["replicas"], 2);
        assert_eq!(out["spec"]["replicas"], 1);
        assert!(out["metadata"]["labels"].is_null());
    }

    #[test]
    fn a_deployments_annotations_move_its_generation_except_through_its_status() {
        let old = json!({"metadata": {"name": "web", "generation": 1}, "spec": {"replicas": 1}});
        let annotated = json!({"metadata": {"name": "web", "annotations": {"a": "b"}}, "spec": {"replicas": 1}});
        let out = prepare_update(&old, annotated.clone(), deployments(), None);
        assert_eq!(out["metadata"]["generation"], 2);
        // Through the status subresource (the controller's revision annotation): kept, no bump.
        let out = prepare_update(&old, annotated, deployments(), Some("status"));
        assert_eq!(out["metadata"]["annotations"]["a"], "b");
        assert_eq!(out["metadata"]["generation"], 1);
        // Other kinds: annotations are metadata only.
        let replicasets = crate::kinds::find("apps", "v1", "replicasets").unwrap();
        let new = json!({"metadata": {"name": "web", "annotations": {"a": "b"}}, "spec": {"replicas": 1}});
        assert_eq!(
            prepare_update(&old, new, replicasets, None)["metadata"]["generation"],
            1
        );
        let new = json!({"metadata": {"name": "web", "annotations": {"a": "b"}}, "spec": {"replicas": 1}});
        assert!(
            prepare_update(&old, new, replicasets, Some("status"))["metadata"]["annotations"]
                .is_null()
        );
    }

    #[test]
    fn only_the_kinds_kube_tracks_carry_a_generation() {
        let configmaps = crate::kinds::find("", "v1", "configmaps").unwrap();
        let mut o = json!({"metadata": {"name": "c", "generation": 7}, "data": {"a": "b"}});
        prepare_create(&mut o, configmaps, Some("a")).unwrap();
        assert!(o["metadata"]["generation"].is_null(), "{o}");
        let new = json!({"metadata": {"name": "c"}, "data": {"a": "changed"}});
        let out = prepare_update(&o, new, configmaps, None);
        assert!(out["metadata"]["generation"].is_null(), "{out}");
        let old = json!({"metadata": {"name": "web", "generation": 3}, "spec": {"replicas": 1}});
        let mut deleting = old.clone();
        bump_generation_on_delete(&mut deleting);
        assert_eq!(deleting["metadata"]["generation"], 4);
        let mut plain = json!({"metadata": {"name": "c"}});
        bump_generation_on_delete(&mut plain);
        assert!(plain["metadata"]["generation"].is_null());
    }

    #[test]
    fn names_follow_dns_1123() {
        assert!(name_problem("web-1.example", false).is_none());
        assert!(name_problem("Web", false).is_some());
        assert!(name_problem("-web", false).is_some());
        assert!(name_problem("a.b", true).is_some());
        assert!(name_problem(&"a".repeat(64), true).is_some());
        assert!(name_problem("", false).is_some());
    }
}
