//! kube-apiserver's semantic rules for a StatefulSet's own fields (`ValidateStatefulSetSpec`),
//! in its words, on top of the rules every workload shares; plus the fields bosun's
//! StatefulSet controller does not carry out, refused by name rather than stored and ignored:
//! `updateStrategy.rollingUpdate.maxUnavailable`, a `persistentVolumeClaimRetentionPolicy`
//! other than Retain, and `ordinals.start` other than 0. At update, `ValidateStatefulSetUpdate`:
//! only replicas, ordinals, template, updateStrategy, persistentVolumeClaimRetentionPolicy and
//! minReadySeconds may change.

use serde_json::Value;

use super::validate_storage::not_supported;
use crate::kinds::Resource;
use crate::status::{ApiError, FieldCause};

/// The spec fields an update may change.
const MUTABLE: &[&str] = &[
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

/// 422 when an update of StatefulSet `old` into `new` changes a field that may not change
/// (kube's text).
pub fn check_update(old: &Value, new: &Value, resource: &Resource) -> Result<(), ApiError> {
    if (resource.group, resource.kind) != ("apps", "StatefulSet") {
        return Ok(());
    }
    let fixed = |object: &Value| {
        let mut spec = object["spec"].clone();
        if let Some(map) = spec.as_object_mut() {
            map.retain(|k, v| !MUTABLE.contains(&k.as_str()) && !v.is_null());
        }
        spec
    };
    if fixed(old) == fixed(new) {
        return Ok(());
    }
    let cause = FieldCause {
        field: "spec".to_owned(),
        reason: "FieldValueForbidden",
        message: "Forbidden: updates to statefulset spec for fields other than 'replicas', \
                  'ordinals', 'template', 'updateStrategy', \
                  'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
            .to_owned(),
    };
    let name = new["metadata"]["name"].as_str().unwrap_or("");
    Err(ApiError::invalid(
        "StatefulSet.apps",
        "StatefulSet",
        name,
        &[cause],
    ))
}

/// The StatefulSet-specific causes of `object`.
pub fn stateful_set(object: &Value, causes: &mut Vec<FieldCause>) {
    let spec = &object["spec"];
    if let Some(policy) = spec["podManagementPolicy"]
        .as_str()
        .filter(|p| !matches!(*p, "OrderedReady" | "Parallel"))
    {
        causes.push(not_supported(
            "spec.podManagementPolicy",
            policy,
            &["OrderedReady", "Parallel"],
        ));
    }
    let strategy = &spec["updateStrategy"];
    match strategy["type"].as_str() {
        None | Some("RollingUpdate") => {}
        Some("OnDelete") if !strategy["rollingUpdate"].is_null() => {
            causes.push(FieldCause::invalid(
                "spec.updateStrategy.rollingUpdate",
                "",
                "only allowed for updateStrategy 'RollingUpdate'",
            ));
        }
        Some("OnDelete") => {}
        Some(other) => causes.push(not_supported(
            "spec.updateStrategy.type",
            other,
            &["OnDelete", "RollingUpdate"],
        )),
    }
    let rolling = &strategy["rollingUpdate"];
    if let Some(partition) = rolling["partition"].as_i64().filter(|p| *p < 0) {
        causes.push(FieldCause::invalid(
            "spec.updateStrategy.rollingUpdate.partition",
            &partition.to_string(),
            "must be greater than or equal to 0",
        ));
    }
    if !rolling["maxUnavailable"].is_null() {
        causes.push(FieldCause::invalid(
            "spec.updateStrategy.rollingUpdate.maxUnavailable",
            &value_text(&rolling["maxUnavailable"]),
            "bosun updates StatefulSet pods one at a time; maxUnavailable is not supported",
        ));
    }
    let retention = &spec["persistentVolumeClaimRetentionPolicy"];
    for field in ["whenDeleted", "whenScaled"] {
        let at = format!("spec.persistentVolumeClaimRetentionPolicy.{field}");
        match retention[field].as_str() {
            None | Some("Retain") => {}
            Some("Delete") => causes.push(FieldCause::invalid(
                &at,
                "Delete",
                "bosun keeps StatefulSet claims; only Retain is supported",
            )),
            Some(other) => causes.push(not_supported(&at, other, &["Retain", "Delete"])),
        }
    }
    if let Some(start) = spec["ordinals"]["start"].as_i64().filter(|s| *s != 0) {
        causes.push(FieldCause::invalid(
            "spec.ordinals.start",
            &start.to_string(),
            "bosun numbers StatefulSet pods from 0; a start ordinal is not supported",
        ));
    }
    if let Some(policy) = spec["template"]["spec"]["restartPolicy"]
        .as_str()
        .filter(|p| *p != "Always")
    {
        causes.push(not_supported(
            "spec.template.spec.restartPolicy",
            policy,
            &["Always"],
        ));
    }
    for (i, template) in spec["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if template["metadata"]["name"]
            .as_str()
            .is_none_or(str::is_empty)
        {
            causes.push(FieldCause::required(&format!(
                "spec.volumeClaimTemplates[{i}].metadata.name"
            )));
        }
    }
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(spec: Value) -> Vec<String> {
        let mut causes = Vec::new();
        stateful_set(&json!({"spec": spec}), &mut causes);
        causes.into_iter().map(|c| c.field).collect()
    }

    #[test]
    fn what_bosun_does_not_carry_out_is_refused_by_name() {
        assert_eq!(
            fields(json!({"updateStrategy": {"type": "RollingUpdate",
                "rollingUpdate": {"partition": 0, "maxUnavailable": 2}}})),
            ["spec.updateStrategy.rollingUpdate.maxUnavailable"]
        );
        assert_eq!(
            fields(json!({"persistentVolumeClaimRetentionPolicy":
                {"whenDeleted": "Retain", "whenScaled": "Delete"}})),
            ["spec.persistentVolumeClaimRetentionPolicy.whenScaled"]
        );
        assert_eq!(
            fields(json!({"ordinals": {"start": 1}})),
            ["spec.ordinals.start"]
        );
        assert!(fields(
            json!({"ordinals": {"start": 0}, "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "OnDelete"}})
        )
        .is_empty());
    }

    #[test]
    fn an_update_may_change_only_what_kube_lets_change() {
        let Some(sets) = crate::kinds::find("apps", "v1", "statefulsets") else {
            panic!("the kinds table serves statefulsets");
        };
        let old = json!({"metadata": {"name": "web"}, "spec": {"replicas": 1,
            "serviceName": "a", "template": {"spec": {}}}});
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(3);
        new["spec"]["template"]["spec"]["hostNetwork"] = json!(true);
        assert!(check_update(&old, &new, sets).is_ok());
        new["spec"]["serviceName"] = json!("b");
        let error = check_update(&old, &new, sets).expect_err("serviceName is fixed");
        assert!(
            error.message.contains("updates to statefulset spec"),
            "{}",
            error.message
        );
    }

    #[test]
    fn kubes_own_rules() {
        assert_eq!(
            fields(json!({"podManagementPolicy": "Random",
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": -1}},
                "template": {"spec": {"restartPolicy": "Never"}},
                "volumeClaimTemplates": [{"metadata": {}}]})),
            [
                "spec.podManagementPolicy",
                "spec.updateStrategy.rollingUpdate.partition",
                "spec.template.spec.restartPolicy",
                "spec.volumeClaimTemplates[0].metadata.name",
            ]
        );
    }
}
