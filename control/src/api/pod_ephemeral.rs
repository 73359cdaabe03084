//! A pod's ephemeral containers (`kubectl debug`), as kube-apiserver's pod strategies keep
//! them: only a write of the `pods/ephemeralcontainers` subresource changes
//! `spec.ephemeralContainers`, and it changes nothing else (`prepare_update`, kube's
//! `dropNonEphemeralContainerUpdates`: the rest of the written object, status included, is
//! ignored); it may add containers but neither remove nor change one (`check_subresource`,
//! kube's `ValidatePodEphemeralContainersUpdate`), and a static pod's mirror takes none. A pod
//! is not created with them (`check`), and an update of the pod itself may not change them
//! (kube's `ValidatePodUpdate`). The containers' own rules are `validate_ephemeral`'s. Pure.

use serde_json::Value;

use crate::status::FieldCause;

/// The subresource's name in the path (`/api/v1/namespaces/NS/pods/NAME/ephemeralcontainers`).
pub const SUBRESOURCE: &str = "ephemeralcontainers";

const FIELD: &str = "spec.ephemeralContainers";

/// What kube's `ValidatePodUpdate` lets an update of a pod change (its refusal lists them).
const UPDATABLE: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// The pod a write of the subresource stores: `old` with `new`'s `spec.ephemeralContainers`.
pub fn prepare_update(old: &Value, new: &Value) -> Value {
    let mut out = old.clone();
    let containers = new["spec"]
        .get("ephemeralContainers")
        .filter(|c| !c.is_null())
        .cloned();
    if !out["spec"].is_object() {
        out["spec"] = Value::Object(serde_json::Map::new());
    }
    if let Some(spec) = out["spec"].as_object_mut() {
        match containers {
            Some(c) => spec.insert("ephemeralContainers".to_owned(), c),
            None => spec.remove("ephemeralContainers"),
        };
    }
    out
}

/// The ephemeral-container rules of a pod's validation (`old`: the stored pod of an
/// update): the containers' own, and none at create.
pub(super) fn check(pod: &Value, old: Option<&Value>, causes: &mut Vec<FieldCause>) {
    super::validate_ephemeral::containers(&pod["spec"], "spec", causes);
    if old.is_none() && !list(pod).is_empty() {
        causes.push(FieldCause::forbidden(FIELD, "cannot be set on create"));
    }
}

/// kube's `ValidatePodUpdate` for the ephemeral containers: an update of the pod itself
/// leaves them as they are.
pub(super) fn check_pod_update(old: &Value, new: &Value, causes: &mut Vec<FieldCause>) {
    let (was, is) = (list(old), list(new));
    if was != is {
        let why = format!(
            "pod updates may not change fields other than {UPDATABLE}\n{}",
            diff("ephemeralContainers", &Value::from(was), &Value::from(is))
        );
        causes.push(FieldCause::forbidden("spec", &why));
    }
}

/// kube's `ValidatePodEphemeralContainersUpdate`: the new containers' rules, then every
/// existing ephemeral container still there, unchanged (looked up by name: a patch may
/// reorder them). A mirror pod refuses any such write, with that refusal alone.
pub(super) fn check_subresource(old: &Value, new: &Value, causes: &mut Vec<FieldCause>) {
    let mirror = &old["metadata"]["annotations"][super::pod_update::MIRROR_ANNOTATION];
    if !mirror.is_null() {
        causes.clear();
        causes.push(FieldCause::forbidden(
            "",
            "static pods do not support ephemeral containers",
        ));
        return;
    }
    super::validate_ephemeral::containers(&new["spec"], "spec", causes);
    let now = list(new);
    for before in list(old) {
        let name = before["name"].as_str().unwrap_or("");
        match now.iter().find(|c| c["name"].as_str() == Some(name)) {
            None => causes.push(FieldCause::forbidden(
                FIELD,
                &format!("existing ephemeral containers {name:?} may not be removed\n"),
            )),
            Some(after) if *after != before => causes.push(FieldCause::forbidden(
                FIELD,
                &format!(
                    "existing ephemeral containers {name:?} may not be changed\n{}",
                    fields_diff(&before, after)
                ),
            )),
            Some(_) => {}
        }
    }
}

/// The pod's ephemeral containers (none: empty, as kube compares a nil and an empty list).
fn list(pod: &Value) -> Vec<Value> {
    pod["spec"]["ephemeralContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// `- field: old` / `+ field: new` lines for each field of two containers that differs.
fn fields_diff(old: &Value, new: &Value) -> String {
    let mut keys: Vec<&String> = old
        .as_object()
        .into_iter()
        .chain(new.as_object())
        .flat_map(|m| m.keys())
        .collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| old.get(k.as_str()) != new.get(k.as_str()))
        .map(|k| diff(k, &old[k.as_str()], &new[k.as_str()]))
        .collect()
}

fn diff(field: &str, old: &Value, new: &Value) -> String {
    let mut out = String::new();
    if !old.is_null() {
        out.push_str(&format!("- {field}: {old}\n"));
    }
    if !new.is_null() {
        out.push_str(&format!("+ {field}: {new}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(ephemeral: Value) -> Value {
        json!({
            "metadata": {"name": "p", "labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}], "ephemeralContainers": ephemeral},
            "status": {"phase": "Pending"},
        })
    }

    fn debugger(image: &str) -> Value {
        json!({"name": "debugger", "image": image, "targetContainerName": "c",
            "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"})
    }

    fn texts(causes: &[FieldCause]) -> Vec<String> {
        causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn a_subresource_write_changes_only_the_ephemeral_containers() {
        let old = pod(Value::Null);
        let mut new = pod(json!([debugger("busybox:1.36")]));
        new["metadata"]["labels"] = json!({"x": "y"});
        new["spec"]["containers"][0]["image"] = json!("other");
        new["status"] = json!({"phase": "Running"});
        let out = prepare_update(&old, &new);
        assert_eq!(out["spec"]["ephemeralContainers"][0]["name"], "debugger");
        assert_eq!(out["metadata"], old["metadata"]);
        assert_eq!(out["spec"]["containers"], old["spec"]["containers"]);
        assert_eq!(out["status"], old["status"]);
        let cleared = prepare_update(&new, &pod(Value::Null));
        assert!(cleared["spec"].get("ephemeralContainers").is_none());
    }

    #[test]
    fn existing_containers_are_neither_removed_nor_changed() {
        let old = pod(json!([debugger("busybox:1.36")]));
        let mut causes = Vec::new();
        let added = pod(
            json!([debugger("busybox:1.36"), {"name": "two", "image": "b",
            "terminationMessagePolicy": "File", "imagePullPolicy": "Always"}]),
        );
        check_subresource(&old, &added, &mut causes);
        assert!(causes.is_empty(), "{:?}", texts(&causes));
        check_subresource(&old, &pod(json!([])), &mut causes);
        assert_eq!(
            texts(&causes),
            ["spec.ephemeralContainers: Forbidden: existing ephemeral containers \"debugger\" may not be removed\n"]
        );
        causes.clear();
        check_subresource(&old, &pod(json!([debugger("busybox:1.37")])), &mut causes);
        assert_eq!(
            texts(&causes),
            ["spec.ephemeralContainers: Forbidden: existing ephemeral containers \"debugger\" may not be changed\n- image: \"busybox:1.36\"\n+ image: \"busybox:1.37\"\n"]
        );
    }

    #[test]
    fn a_mirror_pod_takes_no_ephemeral_container() {
        let mut old = pod(Value::Null);
        old["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "h"});
        let mut causes = vec![FieldCause::required("x")];
        check_subresource(&old, &pod(json!([debugger("b")])), &mut causes);
        assert_eq!(
            texts(&causes),
            [": Forbidden: static pods do not support ephemeral containers"]
        );
    }

    #[test]
    fn a_pod_is_created_without_and_updated_keeping_them() {
        let mut causes = Vec::new();
        let with = pod(json!([debugger("busybox:1.36")]));
        check(&with, None, &mut causes);
        assert_eq!(
            texts(&causes),
            ["spec.ephemeralContainers: Forbidden: cannot be set on create"]
        );
        causes.clear();
        check(&with, Some(&with), &mut causes);
        check(&pod(json!([])), None, &mut causes);
        check_pod_update(&pod(Value::Null), &pod(json!([])), &mut causes);
        check_pod_update(&with, &with, &mut causes);
        assert!(causes.is_empty(), "{:?}", texts(&causes));
        check_pod_update(&with, &pod(Value::Null), &mut causes);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec");
        assert!(causes[0].message.starts_with(
            "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
        ));
    }
}
