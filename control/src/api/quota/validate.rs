//! kube's rules for a ResourceQuota's `spec.hard` (a standard quota resource or a qualified
//! `count/…` name, each a quantity ≥ 0) and scopes (`scopes`), plus what bosun does not carry
//! out, refused by name rather than accepted and ignored: resources it does not count
//! (replication controllers, ephemeral storage, huge pages, objects of kinds it does not
//! serve).

use serde_json::Value;

use super::usage::counted_kind;
use crate::controllers::scheduler::quantity::milli;
use crate::status::FieldCause;

/// kube's standard quota resources (`IsStandardQuotaResourceName`).
const STANDARD: &[&str] = &[
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.storage",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
];

pub(super) fn forbidden(field: &str, why: &str) -> FieldCause {
    FieldCause {
        field: field.to_owned(),
        reason: "FieldValueForbidden",
        message: format!("Forbidden: {why}"),
    }
}

/// The problems of a ResourceQuota.
pub fn quota(object: &Value, causes: &mut Vec<FieldCause>) {
    let spec = &object["spec"];
    for (name, value) in spec["hard"].as_object().into_iter().flatten() {
        let field = format!("spec.hard[{name}]");
        let standard = STANDARD.contains(&name.as_str())
            || name.starts_with("hugepages-")
            || name.starts_with("requests.hugepages-");
        if !name.contains('/') && !standard && !name.contains(".storageclass.") {
            causes.push(FieldCause::invalid(
                &field,
                &format!("{name:?}"),
                "must be a standard resource for quota",
            ));
        } else if counted_kind(name).is_none() {
            causes.push(forbidden(
                &field,
                "bosun does not count this resource in quotas",
            ));
        }
        let text = value.as_str().unwrap_or("");
        match milli(text) {
            None => causes.push(FieldCause::invalid(
                &field,
                &format!("{text:?}"),
                "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            )),
            Some(n) if n < 0 => causes.push(FieldCause::invalid(
                &field,
                &format!("{text:?}"),
                "must be greater than or equal to 0",
            )),
            Some(_) => {}
        }
    }
    super::scopes::validate(spec, causes);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn hard_names_values_and_scopes() {
        let mut causes = Vec::new();
        quota(
            &json!({"spec": {"hard": {"pods": "2", "cpu": "-1", "widgets": "1",
            "requests.ephemeral-storage": "1Gi", "count/deployments.apps": "x"}}}),
            &mut causes,
        );
        let fields: Vec<(&str, &str)> = causes
            .iter()
            .map(|c| (c.field.as_str(), c.message.as_str()))
            .collect();
        assert_eq!(fields.len(), 4, "{fields:?}");
        assert!(fields.contains(&(
            "spec.hard[cpu]",
            "Invalid value: \"-1\": must be greater than or equal to 0"
        )));
        assert!(fields.contains(&(
            "spec.hard[widgets]",
            "Invalid value: \"widgets\": must be a standard resource for quota"
        )));
        assert!(fields
            .iter()
            .any(|(f, _)| *f == "spec.hard[requests.ephemeral-storage]"));
        assert!(fields
            .iter()
            .any(|(f, _)| *f == "spec.hard[count/deployments.apps]"));
    }
}
