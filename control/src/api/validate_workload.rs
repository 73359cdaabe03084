//! The workloads' semantic rules in kube-apiserver's words: a pod spec's containers, a
//! workload's replicas and selector against its template's labels, a Job's restart policy and
//! the Job features bosun's controller does not carry out, a PodDisruptionBudget's spec.

use serde_json::Value;

use crate::status::FieldCause;

/// A PodDisruptionBudget's spec: one of minAvailable and maxUnavailable, each a
/// non-negative integer or a percentage up to 100%.
pub(super) fn disruption_budget(spec: &Value, causes: &mut Vec<FieldCause>) {
    if !spec["minAvailable"].is_null() && !spec["maxUnavailable"].is_null() {
        causes.push(FieldCause::invalid(
            "spec",
            &spec.to_string(),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for field in ["minAvailable", "maxUnavailable"] {
        let path = format!("spec.{field}");
        match &spec[field] {
            Value::Number(n) if n.as_i64().is_some_and(|n| n < 0) => causes.push(
                FieldCause::invalid(&path, &n.to_string(), "must be greater than or equal to 0"),
            ),
            Value::String(s) => match s.strip_suffix('%').map(str::parse::<u32>) {
                Some(Ok(p)) if p > 100 => causes.push(FieldCause::invalid(
                    &path,
                    &format!("{s:?}"),
                    "must not be greater than 100%",
                )),
                Some(Ok(_)) => {}
                _ => causes.push(FieldCause::invalid(
                    &path,
                    &format!("{s:?}"),
                    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                )),
            },
            _ => {}
        }
    }
}

/// A Job's restart policy, and the Job features the controller does not carry out (refused by
/// name rather than ignored).
pub(super) fn job(spec: &Value, at: &str, causes: &mut Vec<FieldCause>) {
    let policy = spec["template"]["spec"]["restartPolicy"]
        .as_str()
        .unwrap_or("Always");
    if !matches!(policy, "OnFailure" | "Never") {
        causes.push(FieldCause::invalid(
            &format!("{at}.template.spec.restartPolicy"),
            policy,
            "supported values: \"OnFailure\", \"Never\"",
        ));
    }
    if let Some(mode) = spec["completionMode"]
        .as_str()
        .filter(|m| *m != "NonIndexed")
    {
        causes.push(FieldCause::invalid(
            &format!("{at}.completionMode"),
            mode,
            "bosun runs NonIndexed Jobs only",
        ));
    }
    match spec["podReplacementPolicy"].as_str() {
        None | Some("TerminatingOrFailed") => {}
        Some("Failed") => causes.push(FieldCause::invalid(
            &format!("{at}.podReplacementPolicy"),
            "Failed",
            "not supported by bosun's Job controller, which replaces a pod as soon as it is terminating (TerminatingOrFailed)",
        )),
        Some(other) => causes.push(FieldCause::not_supported(
            &format!("{at}.podReplacementPolicy"),
            other,
            &["Failed", "TerminatingOrFailed"],
        )),
    }
    for field in [
        "podFailurePolicy",
        "successPolicy",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
        "managedBy",
    ] {
        if !spec[field].is_null() {
            causes.push(FieldCause::invalid(
                &format!("{at}.{field}"),
                &spec[field].to_string(),
                "not supported by bosun's Job controller",
            ));
        }
    }
}

/// `spec.replicas` is not negative.
pub(super) fn replicas(spec: &Value, causes: &mut Vec<FieldCause>) {
    if let Some(replicas) = spec["replicas"].as_i64().filter(|r| *r < 0) {
        causes.push(FieldCause::invalid(
            "spec.replicas",
            &replicas.to_string(),
            "must be greater than or equal to 0",
        ));
    }
}

pub(super) fn workload(object: &Value, causes: &mut Vec<FieldCause>) {
    let spec = &object["spec"];
    replicas(spec, causes);
    let selector = &spec["selector"];
    let match_labels = selector["matchLabels"]
        .as_object()
        .filter(|m| !m.is_empty());
    let expressions = selector["matchExpressions"]
        .as_array()
        .filter(|m| !m.is_empty());
    if match_labels.is_none() && expressions.is_none() {
        causes.push(FieldCause::required("spec.selector"));
    } else if let Some(wanted) = match_labels {
        let labels = &spec["template"]["metadata"]["labels"];
        if wanted.iter().any(|(k, v)| labels.get(k) != Some(v)) {
            causes.push(FieldCause::invalid(
                "spec.template.metadata.labels",
                &go_map(labels),
                "`selector` does not match template `labels`",
            ));
        }
    }
    pod_template_spec(&spec["template"]["spec"], "spec.template.spec", causes);
}

/// A pod template's spec (`at` names it): a pod spec that may not hold ephemeral containers.
pub(super) fn pod_template_spec(spec: &Value, at: &str, causes: &mut Vec<FieldCause>) {
    pod_spec(spec, at, causes);
    if spec["ephemeralContainers"]
        .as_array()
        .is_some_and(|e| !e.is_empty())
    {
        causes.push(FieldCause::forbidden(
            &format!("{at}.ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
}

pub(super) fn pod_spec(spec: &Value, at: &str, causes: &mut Vec<FieldCause>) {
    let Some(containers) = spec["containers"].as_array().filter(|c| !c.is_empty()) else {
        causes.push(FieldCause::required(&format!("{at}.containers")));
        return;
    };
    for (i, c) in containers.iter().enumerate() {
        for field in ["name", "image"] {
            if c[field].as_str().is_none_or(str::is_empty) {
                causes.push(FieldCause::required(&format!(
                    "{at}.containers[{i}].{field}"
                )));
            }
        }
    }
}

/// A label map as Go prints `map[string]string{"app":"web"}`.
pub(super) fn go_map(labels: &Value) -> String {
    let items: Vec<String> = labels
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k:?}:{v}")).collect())
        .unwrap_or_default();
    format!("map[string]string{{{}}}", items.join(", "))
}
