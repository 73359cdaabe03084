//! kube-apiserver's rules for HorizontalPodAutoscalers (`ValidateHorizontalPodAutoscaler`,
//! on the stored autoscaling/v2 form, so v1 objects are checked after conversion), in its
//! words, plus what bosun's HPA controller does not carry out, refused by field: metric types
//! other than `Resource` (Object, Pods, External, ContainerResource), resources other than
//! cpu and memory, and targets of built-in kinds without a scale subresource here (a custom
//! kind is scaled through its CRD's scale subresource).

use serde_json::Value;

use crate::status::FieldCause;

const KINDS: &[&str] = &[
    "Deployment",
    "StatefulSet",
    "ReplicaSet",
    "ReplicationController",
];

pub fn horizontal_pod_autoscaler(object: &Value, causes: &mut Vec<FieldCause>) {
    let spec = &object["spec"];
    let target = &spec["scaleTargetRef"];
    // A kind of a group a CRD may define is scaled through its scale subresource (the
    // controller reports FailedGetScale while none serves it, as kube's does).
    let api_version = target["apiVersion"].as_str().unwrap_or("");
    let group = api_version.split_once('/').map_or("", |(group, _)| group);
    let builtin_group = crate::kinds::RESOURCES.iter().any(|r| r.group == group);
    match target["kind"].as_str().filter(|k| !k.is_empty()) {
        None => causes.push(FieldCause::required("spec.scaleTargetRef.kind")),
        Some(kind) if !KINDS.contains(&kind) && builtin_group => causes.push(FieldCause::invalid(
            "spec.scaleTargetRef.kind",
            &format!("{kind:?}"),
            "bosun scales Deployments, StatefulSets, ReplicaSets, ReplicationControllers and custom resources with a scale subresource",
        )),
        Some(_) => {}
    }
    if target["name"].as_str().is_none_or(str::is_empty) {
        causes.push(FieldCause::required("spec.scaleTargetRef.name"));
    }
    let min = spec["minReplicas"].as_i64().unwrap_or(1);
    if min < 1 {
        causes.push(FieldCause::invalid(
            "spec.minReplicas",
            &min.to_string(),
            "must be greater than or equal to 1",
        ));
    }
    match spec["maxReplicas"].as_i64() {
        None => causes.push(FieldCause::required("spec.maxReplicas")),
        Some(max) if max < min => causes.push(FieldCause::invalid(
            "spec.maxReplicas",
            &max.to_string(),
            "must be greater than or equal to `minReplicas`",
        )),
        Some(_) => {}
    }
    for (i, m) in spec["metrics"].as_array().into_iter().flatten().enumerate() {
        metric(m, &format!("spec.metrics[{i}]"), causes);
    }
    for dir in ["scaleUp", "scaleDown"] {
        rules(
            &spec["behavior"][dir],
            &format!("spec.behavior.{dir}"),
            causes,
        );
    }
}

fn metric(m: &Value, at: &str, causes: &mut Vec<FieldCause>) {
    let kind = m["type"].as_str().unwrap_or_default();
    if kind != "Resource" {
        causes.push(FieldCause::invalid(
            &format!("{at}.type"),
            &format!("{kind:?}"),
            "bosun's HPA controller supports Resource metrics only",
        ));
        return;
    }
    let name = m["resource"]["name"].as_str().unwrap_or_default();
    if !matches!(name, "cpu" | "memory") {
        causes.push(FieldCause::invalid(
            &format!("{at}.resource.name"),
            &format!("{name:?}"),
            "must be cpu or memory",
        ));
    }
    let t = &m["resource"]["target"];
    match t["type"].as_str().unwrap_or_default() {
        "Utilization" => {
            if t["averageUtilization"].as_i64().is_none_or(|u| u < 1) {
                causes.push(FieldCause::required(&format!(
                    "{at}.resource.target.averageUtilization"
                )));
            }
        }
        "AverageValue" => {
            let ok = t["averageValue"]
                .as_str()
                .and_then(crate::controllers::scheduler::quantity::milli)
                .is_some_and(|v| v > 0);
            if !ok {
                causes.push(FieldCause::invalid(
                    &format!("{at}.resource.target.averageValue"),
                    &t["averageValue"].to_string(),
                    "must be positive",
                ));
            }
        }
        other => causes.push(FieldCause::invalid(
            &format!("{at}.resource.target.type"),
            &format!("{other:?}"),
            "must be either Utilization or AverageValue",
        )),
    }
}

fn rules(r: &Value, at: &str, causes: &mut Vec<FieldCause>) {
    if r.is_null() {
        return;
    }
    if let Some(w) = r["stabilizationWindowSeconds"].as_i64() {
        if !(0..=3600).contains(&w) {
            causes.push(FieldCause::invalid(
                &format!("{at}.stabilizationWindowSeconds"),
                &w.to_string(),
                "must be between 0 and 3600",
            ));
        }
    }
    if let Some(s) = r["selectPolicy"].as_str() {
        if !matches!(s, "Max" | "Min" | "Disabled") {
            causes.push(FieldCause::invalid(
                &format!("{at}.selectPolicy"),
                &format!("{s:?}"),
                "must be Max, Min or Disabled",
            ));
        }
    }
    for (i, p) in r["policies"].as_array().into_iter().flatten().enumerate() {
        let at = format!("{at}.policies[{i}]");
        if !matches!(p["type"].as_str(), Some("Pods" | "Percent")) {
            causes.push(FieldCause::invalid(
                &format!("{at}.type"),
                &p["type"].to_string(),
                "must be Pods or Percent",
            ));
        }
        if p["value"].as_i64().is_none_or(|v| v < 1) {
            causes.push(FieldCause::invalid(
                &format!("{at}.value"),
                &p["value"].to_string(),
                "must be greater than zero",
            ));
        }
        if p["periodSeconds"]
            .as_i64()
            .is_none_or(|v| !(1..=1800).contains(&v))
        {
            causes.push(FieldCause::invalid(
                &format!("{at}.periodSeconds"),
                &p["periodSeconds"].to_string(),
                "must be between 1 and 1800",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn causes(spec: Value) -> Vec<String> {
        let mut out = Vec::new();
        horizontal_pod_autoscaler(&json!({ "spec": spec }), &mut out);
        out.into_iter().map(|c| c.field).collect()
    }

    #[test]
    fn unsupported_metrics_are_refused_by_field() {
        let target = json!({"kind": "Deployment", "name": "web"});
        let ok = json!({"scaleTargetRef": target, "maxReplicas": 3, "metrics": [
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
            {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "64Mi"}}},
        ]});
        assert!(causes(ok).is_empty());
        let bad = json!({"scaleTargetRef": target, "maxReplicas": 3, "metrics": [
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
            {"type": "External", "external": {}},
        ]});
        assert_eq!(causes(bad), ["spec.metrics[1].type"]);
        let bad = json!({"scaleTargetRef": {"kind": "Job", "name": "j"}, "minReplicas": 4, "maxReplicas": 3,
            "behavior": {"scaleDown": {"policies": [{"type": "Pods", "value": 0, "periodSeconds": 15}]}}});
        assert_eq!(
            causes(bad),
            [
                "spec.scaleTargetRef.kind",
                "spec.maxReplicas",
                "spec.behavior.scaleDown.policies[0].value"
            ]
        );
    }
}
