//! Quota scopes, as kube's pod evaluator matches them: a quota with `spec.scopes` or a
//! `spec.scopeSelector` tracks only the pods every scope matches — `Terminating` (an
//! `activeDeadlineSeconds`), `NotTerminating`, `BestEffort` (no container requests or limits
//! cpu or memory), `NotBestEffort`, `PriorityClass` (`In`/`NotIn` the named classes, or
//! `Exists`) — and no object of another kind. kube's rules: known scopes, no conflicting
//! pair, the resources a scope can track, the operators each scope takes.
//! `CrossNamespacePodAffinity` is refused by name: bosun has no pod affinity.

use serde_json::Value;

use super::validate::forbidden;
use crate::kinds::Resource;
use crate::status::FieldCause;

const SCOPES: [&str; 5] = [
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
];
/// What a scope other than BestEffort may track (kube's pod compute resources).
const COMPUTE: [&str; 7] = [
    "pods",
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

/// One requirement: a scope, an operator, values.
struct Requirement<'a> {
    scope: &'a str,
    operator: &'a str,
    values: Vec<&'a str>,
}

fn requirements(spec: &Value) -> Vec<Requirement<'_>> {
    let mut out: Vec<Requirement<'_>> = spec["scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|scope| Requirement {
            scope,
            operator: "Exists",
            values: Vec::new(),
        })
        .collect();
    for expression in spec["scopeSelector"]["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        out.push(Requirement {
            scope: expression["scopeName"].as_str().unwrap_or(""),
            operator: expression["operator"].as_str().unwrap_or(""),
            values: expression["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect(),
        });
    }
    out
}

/// A pod without requests or limits of cpu or memory (QoS BestEffort).
fn best_effort(pod: &Value) -> bool {
    let spec = &pod["spec"];
    ["containers", "initContainers"]
        .iter()
        .flat_map(|l| spec[*l].as_array().into_iter().flatten())
        .all(|c| {
            ["requests", "limits"].iter().all(|field| {
                let list = &c["resources"][*field];
                list.get("cpu").is_none() && list.get("memory").is_none()
            })
        })
}

fn pod_matches(requirement: &Requirement<'_>, pod: &Value) -> bool {
    let spec = &pod["spec"];
    let deadline = spec["activeDeadlineSeconds"]
        .as_i64()
        .is_some_and(|d| d >= 0);
    let class = spec["priorityClassName"].as_str().unwrap_or("");
    let holds = match requirement.scope {
        "Terminating" => deadline,
        "NotTerminating" => spec["activeDeadlineSeconds"].is_null(),
        "BestEffort" => best_effort(pod),
        "NotBestEffort" => !best_effort(pod),
        "PriorityClass" => {
            return match requirement.operator {
                "Exists" => !class.is_empty(),
                "In" => requirement.values.contains(&class),
                "NotIn" => !requirement.values.contains(&class),
                _ => false,
            }
        }
        _ => false,
    };
    match requirement.operator {
        "DoesNotExist" => !holds,
        _ => holds,
    }
}

/// Whether the quota tracks `object` of `resource`: always without scopes; with them, only a
/// pod every scope matches.
pub fn matches(quota: &Value, resource: &Resource, object: &Value) -> bool {
    let required = requirements(&quota["spec"]);
    if required.is_empty() {
        return true;
    }
    (resource.group, resource.kind) == ("", "Pod")
        && required.iter().all(|r| pod_matches(r, object))
}

/// kube's rules for a quota's scopes.
pub fn validate(spec: &Value, causes: &mut Vec<FieldCause>) {
    let required = requirements(spec);
    let names: Vec<&str> = required.iter().map(|r| r.scope).collect();
    for (i, r) in required.iter().enumerate() {
        let field = match spec["scopes"].as_array().map_or(0, Vec::len) {
            n if i < n => "spec.scopes".to_owned(),
            n => format!("spec.scopeSelector.matchExpressions[{}]", i - n),
        };
        if r.scope == "CrossNamespacePodAffinity" {
            causes.push(forbidden(
                &field,
                "bosun has no pod affinity, so no CrossNamespacePodAffinity scope",
            ));
            continue;
        }
        if !SCOPES.contains(&r.scope) {
            causes.push(FieldCause::invalid(
                &field,
                &format!("{:?}", r.scope),
                "unsupported scope",
            ));
            continue;
        }
        let operator_ok = match (r.scope, r.operator) {
            ("PriorityClass", "In" | "NotIn") => !r.values.is_empty(),
            (_, "Exists" | "DoesNotExist") => r.values.is_empty(),
            _ => false,
        };
        if !operator_ok {
            causes.push(FieldCause::invalid(
                &format!("{field}.operator"),
                &format!("{:?}", r.operator),
                "must be 'In' or 'NotIn' with values, or 'Exists' or 'DoesNotExist' without, and only 'Exists' or 'DoesNotExist' for a scope other than PriorityClass",
            ));
        }
    }
    for (a, b) in [
        ("Terminating", "NotTerminating"),
        ("BestEffort", "NotBestEffort"),
    ] {
        if names.contains(&a) && names.contains(&b) {
            causes.push(FieldCause::invalid(
                "spec.scopes",
                &format!("{names:?}"),
                "conflicting scopes",
            ));
        }
    }
    for name in spec["hard"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k.as_str())
    {
        let fits = names
            .iter()
            .filter(|s| SCOPES.contains(*s))
            .all(|scope| match *scope {
                "BestEffort" => name == "pods",
                _ => COMPUTE.contains(&name),
            });
        if !fits {
            causes.push(FieldCause::invalid(
                &format!("spec.hard[{name}]"),
                &format!("{name:?}"),
                "unsupported scope applied to resource",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::kinds;

    #[test]
    fn scoped_quotas_track_only_the_pods_they_match() {
        let pods = kinds::find("", "v1", "pods").unwrap();
        let secrets = kinds::find("", "v1", "secrets").unwrap();
        let best = json!({"spec": {"containers": [{"name": "a"}]}});
        let sized = json!({"spec": {"priorityClassName": "high", "activeDeadlineSeconds": 30,
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}]}});
        let quota = |spec: Value| json!({"spec": spec});
        let be = quota(json!({"scopes": ["BestEffort"]}));
        assert!(matches(&be, pods, &best) && !matches(&be, pods, &sized));
        assert!(!matches(&be, secrets, &json!({})), "scopes are for pods");
        let high = quota(
            json!({"scopeSelector": {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}),
        );
        assert!(matches(&high, pods, &sized) && !matches(&high, pods, &best));
        let terminating = quota(json!({"scopes": ["Terminating", "NotBestEffort"]}));
        assert!(matches(&terminating, pods, &sized));
        assert!(matches(&quota(json!({})), secrets, &json!({})));
    }

    #[test]
    fn kubes_scope_rules() {
        let mut causes = Vec::new();
        validate(
            &json!({"scopes": ["BestEffort", "NotBestEffort"], "hard": {"requests.cpu": "1"}}),
            &mut causes,
        );
        let messages: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert!(
            messages.iter().any(|m| m.contains("conflicting scopes")),
            "{messages:?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.starts_with("spec.hard[requests.cpu]")
                    && m.contains("unsupported scope applied to resource")),
            "{messages:?}"
        );
        let mut causes = Vec::new();
        validate(
            &json!({"scopeSelector": {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "In"}]}}),
            &mut causes,
        );
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(
            causes[0].field,
            "spec.scopeSelector.matchExpressions[0].operator"
        );
    }
}
