//! What an update of a pod may change in its spec, as kube-apiserver's `ValidatePodUpdate`
//! has it: the containers' and init containers' images, `activeDeadlineSeconds` (set, or
//! lowered), tolerations (only added; an existing one may change only its
//! `tolerationSeconds`), `terminationGracePeriodSeconds` from a negative value to 1, and the
//! removal of scheduling gates. Anything else is refused with kube's text and the fields that
//! differ. (Ephemeral containers have their own rule, `pod_ephemeral`.) Pure.

use serde_json::{Map, Value};

use crate::status::FieldCause;

/// kube's list of what a pod update may change, as its message joins it.
const UPDATABLE: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,\
`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),\
`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Differing fields shown under the refusal, at most.
const SHOWN_DIFFERENCES: usize = 12;

/// Adds to `causes` what the update of pod `old` into `new` may not change in `spec`.
pub(super) fn check(old: &Value, new: &Value, causes: &mut Vec<FieldCause>) {
    // Both as kube decodes them, defaulted: the stored pod may predate a default the update
    // has been given.
    let (mut old, mut new) = (old.clone(), new.clone());
    super::defaults::pod(&mut old);
    super::defaults::pod(&mut new);
    let (old_spec, new_spec) = (&old["spec"], &new["spec"]);
    let mut munged = new_spec.clone();
    let Some(fields) = munged.as_object_mut() else {
        return;
    };
    for kind in ["containers", "initContainers"] {
        take_old_images(fields, &old_spec[kind], kind);
    }
    deadline(old_spec, new_spec, causes);
    take_old(fields, old_spec, "activeDeadlineSeconds");
    // Tolerations and gates have their own refusals, and are not in the spec's.
    if !added_tolerations_only(&old_spec["tolerations"], &new_spec["tolerations"]) {
        causes.push(FieldCause::forbidden(
            "spec.tolerations",
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    }
    take_old(fields, old_spec, "tolerations");
    let negative = old_spec["terminationGracePeriodSeconds"]
        .as_i64()
        .is_some_and(|g| g < 0);
    if negative && new_spec["terminationGracePeriodSeconds"].as_i64() == Some(1) {
        take_old(fields, old_spec, "terminationGracePeriodSeconds");
    }
    if let Some(gate) = new_gate(&old_spec["schedulingGates"], &new_spec["schedulingGates"]) {
        causes.push(FieldCause::forbidden(
            "spec.schedulingGates",
            &format!("only deletion is allowed, but found new scheduling gate '{gate}'"),
        ));
    }
    take_old(fields, old_spec, "schedulingGates");
    take_old(fields, old_spec, "ephemeralContainers");
    let (was, is) = (normalized(old_spec), normalized(&munged));
    if was == is {
        return;
    }
    let mut lines = Vec::new();
    differences(&was, &is, "spec", &mut lines);
    let more = lines.len().saturating_sub(SHOWN_DIFFERENCES);
    lines.truncate(SHOWN_DIFFERENCES);
    if more > 0 {
        lines.push(format!("  ... {more} more"));
    }
    causes.push(FieldCause::forbidden(
        "spec",
        &format!(
            "pod updates may not change fields other than {UPDATABLE}\n{}",
            lines.join("\n")
        ),
    ));
}

/// The old images in `fields[kind]`, when it has as many containers as `old`.
fn take_old_images(fields: &mut Map<String, Value>, old: &Value, kind: &str) {
    let (Some(old), Some(new)) = (
        old.as_array(),
        fields.get_mut(kind).and_then(Value::as_array_mut),
    ) else {
        return;
    };
    if old.len() != new.len() {
        return;
    }
    for (old, new) in old.iter().zip(new.iter_mut()) {
        if let Some(new) = new.as_object_mut() {
            match old.get("image") {
                Some(image) => new.insert("image".into(), image.clone()),
                None => new.remove("image"),
            };
        }
    }
}

/// `fields[name]` as `old_spec` has it (absent when it has none).
fn take_old(fields: &mut Map<String, Value>, old_spec: &Value, name: &str) {
    match old_spec.get(name) {
        Some(value) => fields.insert(name.into(), value.clone()),
        None => fields.remove(name),
    };
}

/// `activeDeadlineSeconds` may be set or lowered, never raised or unset.
fn deadline(old_spec: &Value, new_spec: &Value, causes: &mut Vec<FieldCause>) {
    let field = "spec.activeDeadlineSeconds";
    let (Some(was), is) = (
        old_spec["activeDeadlineSeconds"].as_i64(),
        new_spec["activeDeadlineSeconds"].as_i64(),
    ) else {
        return;
    };
    match is {
        None => causes.push(FieldCause::invalid(
            field,
            "\"null\"",
            "must not update from a positive integer to nil value",
        )),
        Some(is) if is > was => causes.push(FieldCause::invalid(
            field,
            &is.to_string(),
            "must be less than or equal to previous value",
        )),
        Some(_) => {}
    }
}

/// Whether every old toleration is still in `new`, but for its `tolerationSeconds`.
fn added_tolerations_only(old: &Value, new: &Value) -> bool {
    let without_seconds = |t: &Value| {
        let mut t = normalized(t);
        if let Some(map) = t.as_object_mut() {
            map.remove("tolerationSeconds");
        }
        t
    };
    let new: Vec<Value> = new
        .as_array()
        .into_iter()
        .flatten()
        .map(without_seconds)
        .collect();
    old.as_array()
        .into_iter()
        .flatten()
        .all(|t| new.contains(&without_seconds(t)))
}

/// The first scheduling gate of `new` that `old` does not have.
fn new_gate(old: &Value, new: &Value) -> Option<String> {
    let names = |gates: &Value| -> Vec<String> {
        let gates = gates.as_array().into_iter().flatten();
        gates
            .filter_map(|g| g["name"].as_str().map(str::to_owned))
            .collect()
    };
    let old = names(old);
    names(new).into_iter().find(|gate| !old.contains(gate))
}

/// `value` without nulls and empty lists or maps, which kube's semantic equality does not tell
/// from absent fields.
fn normalized(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), normalized(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

/// One `-`/`+` pair of lines per field of `at` whose value differs.
fn differences(was: &Value, is: &Value, at: &str, lines: &mut Vec<String>) {
    match (was, is) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let (x, y) = (&a.get(key), &b.get(key));
                if x != y {
                    let (x, y) = (x.unwrap_or(&Value::Null), y.unwrap_or(&Value::Null));
                    differences(x, y, &format!("{at}.{key}"), lines);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                if x != y {
                    differences(x, y, &format!("{at}[{i}]"), lines);
                }
            }
        }
        _ => {
            lines.push(format!("  - {at}: {was}"));
            lines.push(format!("  + {at}: {is}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": spec})
    }

    fn base() -> Value {
        json!({
            "containers": [{"name": "c", "image": "busybox:1", "command": ["sleep", "1"]}],
            "initContainers": [{"name": "i", "image": "busybox:1"}],
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute",
                "tolerationSeconds": 300}],
            "schedulingGates": [{"name": "a"}, {"name": "b"}],
            "terminationGracePeriodSeconds": 30,
            "activeDeadlineSeconds": 100,
        })
    }

    fn causes(old: Value, new: Value) -> Vec<String> {
        let mut causes = Vec::new();
        check(&pod(old), &pod(new), &mut causes);
        causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn images_deadline_tolerations_and_gates_may_change() {
        let mut new = base();
        new["containers"][0]["image"] = json!("busybox:2");
        new["initContainers"][0]["image"] = json!("busybox:2");
        new["activeDeadlineSeconds"] = json!(50);
        new["tolerations"][0]["tolerationSeconds"] = json!(10);
        new["tolerations"]
            .as_array_mut()
            .unwrap()
            .push(json!({"key": "x", "operator": "Exists"}));
        new["schedulingGates"] = json!([{"name": "b"}]);
        assert_eq!(causes(base(), new), Vec::<String>::new());
        // Nulls and empty lists are absent fields.
        let mut padded = base();
        padded["nodeSelector"] = json!({});
        padded["volumes"] = json!([]);
        padded["hostname"] = Value::Null;
        assert_eq!(causes(base(), padded), Vec::<String>::new());
        let mut negative = base();
        negative["terminationGracePeriodSeconds"] = json!(-1);
        let mut one = negative.clone();
        one["terminationGracePeriodSeconds"] = json!(1);
        assert_eq!(causes(negative, one), Vec::<String>::new());
    }

    #[test]
    fn anything_else_is_refused_in_kubes_words_with_the_fields() {
        let mut new = base();
        new["containers"][0]["command"] = json!(["sleep", "2"]);
        new["terminationGracePeriodSeconds"] = json!(1);
        let got = causes(base(), new);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with(
                "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"
            ),
            "{got:?}"
        );
        assert!(got[0].contains("  - spec.containers[0].command[1]: \"1\"\n  + spec.containers[0].command[1]: \"2\""), "{got:?}");
        assert!(
            got[0].contains("  + spec.terminationGracePeriodSeconds: 1"),
            "{got:?}"
        );
        // A container more: the images are not the exception then.
        let mut added = base();
        added["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "d", "image": "busybox:1"}));
        assert_eq!(causes(base(), added).len(), 1);
    }

    #[test]
    fn the_deadline_tolerations_and_gates_have_their_own_refusals() {
        let mut raised = base();
        raised["activeDeadlineSeconds"] = json!(200);
        assert_eq!(
            causes(base(), raised)[0],
            "spec.activeDeadlineSeconds: Invalid value: 200: must be less than or equal to previous value"
        );
        let mut unset = base();
        unset
            .as_object_mut()
            .unwrap()
            .remove("activeDeadlineSeconds");
        assert_eq!(
            causes(base(), unset)[0],
            "spec.activeDeadlineSeconds: Invalid value: \"null\": must not update from a positive integer to nil value"
        );
        let mut changed = base();
        changed["tolerations"][0]["effect"] = json!("NoSchedule");
        assert_eq!(
            causes(base(), changed),
            ["spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"]
        );
        let mut gated = base();
        gated["schedulingGates"] = json!([{"name": "a"}, {"name": "c"}]);
        assert_eq!(
            causes(base(), gated),
            ["spec.schedulingGates: Forbidden: only deletion is allowed, but found new scheduling gate 'c'"]
        );
    }
}
