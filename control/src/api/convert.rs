//! Version conversion for kinds served at more than one version: the store holds one version
//! (the group's preferred, first in the kinds table); a request at another version has its
//! body converted to it on the way in and every object it gets converted back on the way out.
//! events.k8s.io/v1 Events are core v1 Events with renamed fields (`note` is `message`,
//! `regarding` is `involvedObject`, …). autoscaling/v1 HorizontalPodAutoscaler (what `kubectl
//! autoscale` writes) is converted with
//! Kubernetes' conversion (`pkg/apis/autoscaling/v1/conversion.go`): v1's
//! `targetCPUUtilizationPercentage` is a Resource `cpu` Utilization metric, its status'
//! `currentCPUUtilizationPercentage` the matching current metric, and what v1 cannot express
//! (behavior, conditions) travels in the `autoscaling.alpha.kubernetes.io/*` annotations. The
//! other metrics, which v1 does not show, are kept from the stored object on a v1 write. Pure
//! functions on JSON.

use serde_json::{json, Map, Value};

use crate::kinds::Resource;
use crate::status::ApiError;

const BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";
const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";

fn is_hpa_v1(resource: &Resource) -> bool {
    (resource.group, resource.version, resource.kind)
        == ("autoscaling", "v1", "HorizontalPodAutoscaler")
}

fn is_events_v1(resource: &Resource) -> bool {
    (resource.group, resource.kind) == ("events.k8s.io", "Event")
}

/// core/v1 Event field ↔ events.k8s.io/v1 Event field, where they differ (Kubernetes'
/// `pkg/apis/events/v1/conversion.go`); every other field has the same name.
const EVENT_RENAMES: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

/// An Event with its fields renamed (`forward`: core → events.k8s.io) and its apiVersion set.
fn rename_event(object: Value, forward: bool, api_version: &str) -> Value {
    let Value::Object(mut map) = object else {
        return object;
    };
    let mut out = Map::new();
    for (core, v1) in EVENT_RENAMES {
        let (from, to) = if forward { (core, v1) } else { (v1, core) };
        if let Some(value) = map.remove(*from) {
            out.insert((*to).to_owned(), value);
        }
    }
    for (key, value) in map {
        out.entry(key).or_insert(value);
    }
    out.insert("apiVersion".into(), json!(api_version));
    Value::Object(out)
}

/// A stored object as `resource`'s version shows it.
pub fn to_served(object: Value, resource: &Resource) -> Value {
    if resource.custom {
        crate::crd::custom::to_served(object, resource)
    } else if is_hpa_v1(resource) {
        hpa_to_v1(object)
    } else if is_events_v1(resource) {
        rename_event(object, true, "events.k8s.io/v1")
    } else {
        object
    }
}

/// An object written at `resource`'s version, in the stored version; `old` is what is stored
/// (for the fields the written version cannot express).
pub fn to_storage(
    object: Value,
    resource: &Resource,
    old: Option<&Value>,
) -> Result<Value, ApiError> {
    if resource.custom {
        Ok(crate::crd::custom::to_storage(object, resource))
    } else if is_hpa_v1(resource) {
        hpa_to_v2(object, old)
    } else if is_events_v1(resource) {
        Ok(rename_event(object, false, "v1"))
    } else {
        Ok(object)
    }
}

/// The resources kube's `matchPolicy: Equivalent` takes for `resource`: its other served
/// versions (HorizontalPodAutoscalers, a CRD's versions) and the other group's Events
/// (core v1 and events.k8s.io/v1 hold the same objects).
pub fn equivalents(resource: &Resource) -> Vec<&'static Resource> {
    let events = |r: &Resource| matches!(r.group, "" | "events.k8s.io") && r.plural == "events";
    crate::kinds::all()
        .filter(|r| r.served() && r.plural == resource.plural)
        .filter(|r| (r.group, r.version) != (resource.group, resource.version))
        .filter(|r| r.group == resource.group || (events(r) && events(resource)))
        .collect()
}

fn is_cpu_utilization(metric: &Value, target: &str, amount: &str) -> bool {
    metric["type"] == "Resource"
        && metric["resource"]["name"] == "cpu"
        && !metric["resource"][target][amount].is_null()
}

/// Copies `keys` of `from` that are set into `to`.
fn copy(from: &Value, to: &mut Map<String, Value>, keys: &[&str]) {
    for key in keys {
        if let Some(v) = from.get(*key).filter(|v| !v.is_null()) {
            to.insert((*key).to_owned(), v.clone());
        }
    }
}

fn annotate(object: &mut Value, key: &str, value: &Value) {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    if !object["metadata"]["annotations"].is_object() {
        object["metadata"]["annotations"] = json!({});
    }
    object["metadata"]["annotations"][key] = Value::String(value.to_string());
}

fn hpa_to_v1(v2: Value) -> Value {
    let mut out = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler"});
    out["metadata"] = v2["metadata"].clone();
    let mut spec = Map::new();
    copy(
        &v2["spec"],
        &mut spec,
        &["scaleTargetRef", "minReplicas", "maxReplicas"],
    );
    let metrics = v2["spec"]["metrics"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if let Some(cpu) = metrics
        .iter()
        .find(|m| is_cpu_utilization(m, "target", "averageUtilization"))
    {
        spec.insert(
            "targetCPUUtilizationPercentage".into(),
            cpu["resource"]["target"]["averageUtilization"].clone(),
        );
    }
    out["spec"] = Value::Object(spec);
    if !v2["spec"]["behavior"].is_null() {
        annotate(&mut out, BEHAVIOR, &v2["spec"]["behavior"]);
    }
    let status = &v2["status"];
    if status.is_object() {
        let mut s = Map::new();
        copy(
            status,
            &mut s,
            &[
                "observedGeneration",
                "lastScaleTime",
                "currentReplicas",
                "desiredReplicas",
            ],
        );
        if let Some(cpu) = status["currentMetrics"].as_array().and_then(|m| {
            m.iter()
                .find(|m| is_cpu_utilization(m, "current", "averageUtilization"))
        }) {
            s.insert(
                "currentCPUUtilizationPercentage".into(),
                cpu["resource"]["current"]["averageUtilization"].clone(),
            );
        }
        out["status"] = Value::Object(s);
        if status["conditions"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
        {
            annotate(&mut out, CONDITIONS, &status["conditions"]);
        }
    }
    out
}

/// The JSON an annotation holds (removed from `object`), if there is one.
fn take_annotation(object: &mut Value, key: &str) -> Result<Option<Value>, ApiError> {
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return Ok(None);
    };
    let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) else {
        return Ok(None);
    };
    let Some(text) = annotations.remove(key) else {
        return Ok(None);
    };
    if annotations.is_empty() {
        meta.remove("annotations");
    }
    let text = text.as_str().unwrap_or_default();
    serde_json::from_str(text).map(Some).map_err(|e| {
        ApiError::bad_request(format!(
            "metadata.annotations[{key:?}] is not valid JSON: {e}"
        ))
    })
}

fn hpa_to_v2(mut v1: Value, old: Option<&Value>) -> Result<Value, ApiError> {
    let behavior = take_annotation(&mut v1, BEHAVIOR)?;
    let conditions = take_annotation(&mut v1, CONDITIONS)?;
    let old = old.unwrap_or(&Value::Null);
    let mut out = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler"});
    out["metadata"] = v1["metadata"].clone();
    let mut spec = Map::new();
    copy(
        &v1["spec"],
        &mut spec,
        &["scaleTargetRef", "minReplicas", "maxReplicas"],
    );
    let mut metrics: Vec<Value> = Vec::new();
    if let Some(percent) = v1["spec"]
        .get("targetCPUUtilizationPercentage")
        .filter(|p| !p.is_null())
    {
        metrics.push(json!({"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": percent}}}));
    }
    let kept = |list: &Value, target: &str| -> Vec<Value> {
        list.as_array()
            .into_iter()
            .flatten()
            .filter(|m| !is_cpu_utilization(m, target, "averageUtilization"))
            .cloned()
            .collect()
    };
    metrics.extend(kept(&old["spec"]["metrics"], "target"));
    if !metrics.is_empty() {
        spec.insert("metrics".into(), Value::Array(metrics));
    }
    if let Some(b) =
        behavior.or_else(|| Some(old["spec"]["behavior"].clone()).filter(|b| !b.is_null()))
    {
        spec.insert("behavior".into(), b);
    }
    out["spec"] = Value::Object(spec);
    let status = &v1["status"];
    if status.is_object() || conditions.is_some() {
        let mut s = Map::new();
        copy(
            status,
            &mut s,
            &[
                "observedGeneration",
                "lastScaleTime",
                "currentReplicas",
                "desiredReplicas",
            ],
        );
        let mut current: Vec<Value> = Vec::new();
        if let Some(percent) = status
            .get("currentCPUUtilizationPercentage")
            .filter(|p| !p.is_null())
        {
            current.push(json!({"type": "Resource", "resource": {"name": "cpu",
                "current": {"averageUtilization": percent}}}));
        }
        current.extend(kept(&old["status"]["currentMetrics"], "current"));
        if !current.is_empty() {
            s.insert("currentMetrics".into(), Value::Array(current));
        }
        if let Some(c) = conditions {
            s.insert("conditions".into(), c);
        }
        out["status"] = Value::Object(s);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1() -> &'static Resource {
        crate::kinds::find("autoscaling", "v1", "horizontalpodautoscalers").unwrap()
    }

    #[test]
    fn v1_and_v2_hpas_convert_both_ways() {
        let sent = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 2, "maxReplicas": 5, "targetCPUUtilizationPercentage": 80}});
        let stored = to_storage(sent.clone(), v1(), None).unwrap();
        assert_eq!(
            stored,
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "web"},
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                    "minReplicas": 2, "maxReplicas": 5,
                    "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 80}}}]}})
        );
        let mut with_status = stored.clone();
        with_status["status"] = json!({"currentReplicas": 2, "desiredReplicas": 3,
            "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu",
                "current": {"averageUtilization": 91, "averageValue": "450m"}}}],
            "conditions": [{"type": "AbleToScale", "status": "True"}]});
        let shown = to_served(with_status, v1());
        assert_eq!(shown["spec"], sent["spec"]);
        assert_eq!(
            shown["status"],
            json!({"currentReplicas": 2, "desiredReplicas": 3, "currentCPUUtilizationPercentage": 91})
        );
        let annotation = shown["metadata"]["annotations"][CONDITIONS]
            .as_str()
            .unwrap();
        assert!(annotation.contains("AbleToScale"), "{annotation}");
    }

    #[test]
    fn what_v1_cannot_express_survives_a_v1_write() {
        let old = json!({"metadata": {"name": "web"},
            "spec": {"maxReplicas": 5, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}},
                "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                    {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}}]}});
        let shown = to_served(old.clone(), v1());
        assert_eq!(shown["spec"]["targetCPUUtilizationPercentage"], 50);
        let mut edited = shown.clone();
        edited["spec"]["targetCPUUtilizationPercentage"] = json!(70);
        let stored = to_storage(edited, v1(), Some(&old)).unwrap();
        assert_eq!(stored["spec"]["behavior"], old["spec"]["behavior"]);
        assert_eq!(
            stored["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            70
        );
        assert_eq!(stored["spec"]["metrics"][1], old["spec"]["metrics"][1]);
        assert!(stored["metadata"].get("annotations").is_none(), "{stored}");
        let mut bad = shown;
        bad["metadata"]["annotations"][BEHAVIOR] = json!("{");
        assert_eq!(to_storage(bad, v1(), Some(&old)).unwrap_err().code, 400);
    }
}
