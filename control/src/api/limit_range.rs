//! kube's LimitRanger: a namespace's LimitRanges give its pods' containers the `default`
//! limits and `defaultRequest` requests they leave out (recorded in the pod's
//! `kubernetes.io/limit-ranger` annotation) and bound what containers, pods and claims ask
//! for (`min`, `max`, `maxLimitRequestRatio`), refused in kube's words (`maximum cpu usage
//! per Container is 1, but limit is 2`). LimitRanges get kube's defaults (a container item's
//! default limit is its max, its default request its default limit or min) and validation.
//! The ranges come from a watch of the store (an `ObjectCopy`): a create in a namespace
//! without one pays no store read.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::quota::usage::format;
use super::{decode_stored, map_store_error, meta, Call};
use crate::authz::admission::admission_forbidden;
use crate::controllers::scheduler::quantity::milli;
use crate::kinds::{self, Resource};
use crate::status::{ApiError, FieldCause};
use crate::store::ListOptions;

const TYPES: [&str; 3] = ["Pod", "Container", "PersistentVolumeClaim"];
pub const ANNOTATION: &str = "kubernetes.io/limit-ranger";

fn ranges() -> Result<&'static Resource, ApiError> {
    kinds::find("", "v1", "limitranges")
        .ok_or_else(|| ApiError::internal("the kinds table has no limitranges"))
}

/// kube's LimitRangeItem defaults, for Container items.
pub fn defaults(object: &mut Value) {
    for item in object["spec"]["limits"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        if item["type"] != "Container" {
            continue;
        }
        for field in ["default", "defaultRequest"] {
            if !item[field].is_object() {
                item[field] = json!({});
            }
        }
        let fill = |item: &mut Value, from: &str, to: &str| {
            let source = item[from].as_object().cloned().unwrap_or_default();
            for (name, value) in source {
                if item[to].get(&name).is_none() {
                    item[to][name] = value;
                }
            }
        };
        fill(item, "max", "default");
        fill(item, "default", "defaultRequest");
        fill(item, "min", "defaultRequest");
    }
}

fn list(value: &Value) -> BTreeMap<String, i128> {
    value
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, v)| Some((name.clone(), milli(v.as_str()?)?)))
        .collect()
}

fn shown(value: &Value, name: &str) -> String {
    value[name].as_str().unwrap_or("").to_owned()
}

/// kube's rules for a LimitRange.
pub fn validate(object: &Value, causes: &mut Vec<FieldCause>) {
    for (i, item) in object["spec"]["limits"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let path = format!("spec.limits[{i}]");
        let kind = item["type"].as_str().unwrap_or("");
        if !TYPES.contains(&kind) {
            causes.push(super::validate_storage::not_supported(
                &format!("{path}.type"),
                kind,
                &TYPES,
            ));
            continue;
        }
        if kind == "Pod" {
            for field in ["default", "defaultRequest"] {
                if item[field].as_object().is_some_and(|m| !m.is_empty()) {
                    causes.push(FieldCause {
                        field: format!("{path}.{field}"),
                        reason: "FieldValueForbidden",
                        message: "Forbidden: may not be specified when `type` is 'Pod'".to_owned(),
                    });
                }
            }
        }
        let (min, max) = (list(&item["min"]), list(&item["max"]));
        let (default, request) = (list(&item["default"]), list(&item["defaultRequest"]));
        let bad = |field: &str, name: &str, value: &Value, why: String| {
            FieldCause::invalid(
                &format!("{path}.{field}[{name}]"),
                &format!("{:?}", shown(value, name)),
                &why,
            )
        };
        for (name, low) in &min {
            if max.get(name).is_some_and(|high| low > high) {
                causes.push(bad(
                    "min",
                    name,
                    &item["min"],
                    format!(
                        "min value {} is greater than max value {}",
                        shown(&item["min"], name),
                        shown(&item["max"], name)
                    ),
                ));
            }
            if request.get(name).is_some_and(|r| low > r) {
                causes.push(bad(
                    "defaultRequest",
                    name,
                    &item["defaultRequest"],
                    format!(
                        "min value {} is greater than default request value {}",
                        shown(&item["min"], name),
                        shown(&item["defaultRequest"], name)
                    ),
                ));
            }
        }
        for (name, value) in &request {
            if default.get(name).is_some_and(|d| value > d) {
                causes.push(bad(
                    "defaultRequest",
                    name,
                    &item["defaultRequest"],
                    format!(
                        "default request value {} is greater than default limit value {}",
                        shown(&item["defaultRequest"], name),
                        shown(&item["default"], name)
                    ),
                ));
            }
        }
        for (name, value) in &default {
            if max.get(name).is_some_and(|m| value > m) {
                causes.push(bad(
                    "default",
                    name,
                    &item["default"],
                    format!(
                        "default value {} is greater than max value {}",
                        shown(&item["default"], name),
                        shown(&item["max"], name)
                    ),
                ));
            }
        }
    }
}

/// The LimitRanges of `namespace`: the cache's, or the store's while it does not know them.
async fn of_namespace(call: &Call, namespace: &str) -> Result<Vec<Value>, ApiError> {
    let resource = ranges()?;
    let prefix = format!("{}{namespace}/", resource.key_prefix());
    let cache = &call.state.limit_ranges;
    cache.follow(&call.state.store, resource.key_prefix());
    let known = cache.read(|ranges| {
        ranges
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v.clone())
            .collect()
    });
    if let Some(known) = known {
        return Ok(known);
    }
    let page = call
        .state
        .store
        .list(&prefix, &ListOptions::default())
        .await
        .map_err(map_store_error)?;
    page.items.iter().map(decode_stored).collect()
}

/// Applies the namespace's LimitRanges to a pod or claim being created.
pub async fn admit_create(call: &Call, object: &mut Value) -> Result<(), ApiError> {
    let resource = call.resource();
    let kind = match (resource.group, resource.kind) {
        ("", "Pod") => "Pod",
        ("", "PersistentVolumeClaim") => "PersistentVolumeClaim",
        _ => return Ok(()),
    };
    let Some(namespace) = call.path.namespace.as_deref() else {
        return Ok(());
    };
    let ranges = of_namespace(call, namespace).await?;
    if ranges.is_empty() {
        return Ok(());
    }
    let items: Vec<&Value> = ranges
        .iter()
        .flat_map(|r| r["spec"]["limits"].as_array().into_iter().flatten())
        .collect();
    let problems = match kind {
        "Pod" => {
            set_defaults(object, &items);
            pod_problems(object, &items)
        }
        _ => claim_problems(object, &items),
    };
    match problems.len() {
        0 => Ok(()),
        1 => Err(admission_forbidden(
            resource,
            meta::name_of(object),
            &problems[0],
        )),
        _ => Err(admission_forbidden(
            resource,
            meta::name_of(object),
            &format!("[{}]", problems.join(", ")),
        )),
    }
}

/// The Container items' defaults on every container leaving them out, and the annotation.
fn set_defaults(pod: &mut Value, items: &[&Value]) {
    let mut limits = Map::new();
    let mut requests = Map::new();
    for item in items.iter().filter(|i| i["type"] == "Container") {
        for (into, field) in [(&mut limits, "default"), (&mut requests, "defaultRequest")] {
            for (name, value) in item[field].as_object().into_iter().flatten() {
                into.entry(name.clone()).or_insert_with(|| value.clone());
            }
        }
    }
    if limits.is_empty() && requests.is_empty() {
        return;
    }
    let mut notes = Vec::new();
    for (list, what) in [
        ("containers", "container"),
        ("initContainers", "init container"),
    ] {
        for c in pod["spec"][list].as_array_mut().into_iter().flatten() {
            let name = c["name"].as_str().unwrap_or("").to_owned();
            let resources = &mut c["resources"];
            for (field, defaults, word) in [
                ("requests", &requests, "request"),
                ("limits", &limits, "limit"),
            ] {
                let mut set: Vec<&str> = Vec::new();
                for (resource, value) in defaults {
                    if resources[field].get(resource).is_none() {
                        resources[field][resource.as_str()] = value.clone();
                        set.push(resource);
                    }
                }
                if !set.is_empty() {
                    set.sort_unstable();
                    notes.push(format!("{} {word} for {what} {name}", set.join(", ")));
                }
            }
        }
    }
    if !notes.is_empty() {
        pod["metadata"]["annotations"][ANNOTATION] =
            json!(format!("LimitRanger plugin set: {}", notes.join("; ")));
    }
}

/// kube's min/max/ratio checks of one (request, limit) pair against an item.
fn check(
    item: &Value,
    scope: &str,
    requests: &BTreeMap<String, i128>,
    limits: &BTreeMap<String, i128>,
    out: &mut Vec<String>,
) {
    let show = |name: &str, amount: i128| format(name, amount);
    for (name, min) in list(&item["min"]) {
        let enforced = shown(&item["min"], &name);
        match (requests.get(&name), limits.get(&name)) {
            (None, _) => out.push(format!(
                "minimum {name} usage per {scope} is {enforced}.  No request is specified"
            )),
            (Some(r), _) if *r < min => out.push(format!(
                "minimum {name} usage per {scope} is {enforced}, but request is {}",
                show(&name, *r)
            )),
            (_, Some(l)) if *l < min => out.push(format!(
                "minimum {name} usage per {scope} is {enforced}, but limit is {}",
                show(&name, *l)
            )),
            _ => {}
        }
    }
    for (name, max) in list(&item["max"]) {
        let enforced = shown(&item["max"], &name);
        match (requests.get(&name), limits.get(&name)) {
            (_, None) => out.push(format!(
                "maximum {name} usage per {scope} is {enforced}.  No limit is specified"
            )),
            (_, Some(l)) if *l > max => out.push(format!(
                "maximum {name} usage per {scope} is {enforced}, but limit is {}",
                show(&name, *l)
            )),
            (Some(r), _) if *r > max => out.push(format!(
                "maximum {name} usage per {scope} is {enforced}, but request is {}",
                show(&name, *r)
            )),
            _ => {}
        }
    }
    for (name, ratio) in list(&item["maxLimitRequestRatio"]) {
        let enforced = shown(&item["maxLimitRequestRatio"], &name);
        match (requests.get(&name).copied(), limits.get(&name).copied()) {
            (None | Some(0), _) => out.push(format!("{name} max limit to request ratio per {scope} is {enforced}, but no request is specified or request is 0")),
            (_, None | Some(0)) => out.push(format!("{name} max limit to request ratio per {scope} is {enforced}, but no limit is specified or limit is 0")),
            (Some(r), Some(l)) => {
                // ratio is in milli-units: l / r > ratio / 1000
                if l * 1000 > ratio * r {
                    out.push(format!(
                        "{name} max limit to request ratio per {scope} is {enforced}, but provided ratio is {:.6}",
                        l as f64 / r as f64
                    ));
                }
            }
        }
    }
}

fn amounts(resources: &Value, field: &str) -> BTreeMap<String, i128> {
    list(&resources[field])
}

fn pod_problems(pod: &Value, items: &[&Value]) -> Vec<String> {
    let mut out = Vec::new();
    let spec = &pod["spec"];
    let all: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .flat_map(|l| spec[*l].as_array().into_iter().flatten())
        .collect();
    for item in items.iter().filter(|i| i["type"] == "Container") {
        for c in &all {
            let resources = &c["resources"];
            check(
                item,
                "Container",
                &amounts(resources, "requests"),
                &amounts(resources, "limits"),
                &mut out,
            );
        }
    }
    for item in items.iter().filter(|i| i["type"] == "Pod") {
        let mut requests = BTreeMap::new();
        let mut limits = BTreeMap::new();
        for c in spec["containers"].as_array().into_iter().flatten() {
            for (into, field) in [(&mut requests, "requests"), (&mut limits, "limits")] {
                for (name, amount) in amounts(&c["resources"], field) {
                    *into.entry(name).or_insert(0) += amount;
                }
            }
        }
        for c in spec["initContainers"].as_array().into_iter().flatten() {
            for (into, field) in [(&mut requests, "requests"), (&mut limits, "limits")] {
                for (name, amount) in amounts(&c["resources"], field) {
                    let total = into.entry(name).or_insert(0);
                    *total = (*total).max(amount);
                }
            }
        }
        check(item, "Pod", &requests, &limits, &mut out);
    }
    out
}

fn claim_problems(claim: &Value, items: &[&Value]) -> Vec<String> {
    let mut out = Vec::new();
    let resources = &claim["spec"]["resources"];
    for item in items
        .iter()
        .filter(|i| i["type"] == "PersistentVolumeClaim")
    {
        check(
            item,
            "PersistentVolumeClaim",
            &amounts(resources, "requests"),
            &amounts(resources, "limits"),
            &mut out,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_items_default_from_max_default_and_min() {
        let mut range = json!({"spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}, "min": {"memory": "64Mi"}}]}});
        defaults(&mut range);
        let item = &range["spec"]["limits"][0];
        assert_eq!(item["default"], json!({"cpu": "1"}));
        assert_eq!(
            item["defaultRequest"],
            json!({"cpu": "1", "memory": "64Mi"})
        );
    }

    #[test]
    fn defaults_fill_what_containers_leave_out_and_bounds_are_kubes() {
        let item = json!({"type": "Container", "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "250m"},
            "max": {"cpu": "1"}, "maxLimitRequestRatio": {"cpu": "2"}});
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a"}, {"name": "b", "resources": {"limits": {"cpu": "2"}, "requests": {"cpu": "2"}}},
            {"name": "c", "resources": {"limits": {"cpu": "800m"}, "requests": {"cpu": "100m"}}}]}});
        set_defaults(&mut pod, &[&item]);
        assert_eq!(
            pod["spec"]["containers"][0]["resources"],
            json!({"requests": {"cpu": "250m"}, "limits": {"cpu": "500m"}})
        );
        assert_eq!(
            pod["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: cpu request for container a; cpu limit for container a"
        );
        assert_eq!(
            pod_problems(&pod, &[&item]),
            [
                "maximum cpu usage per Container is 1, but limit is 2",
                "cpu max limit to request ratio per Container is 2, but provided ratio is 8.000000",
            ]
        );
        let claim_item = json!({"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}});
        let claim = json!({"spec": {"resources": {"requests": {"storage": "512Mi"}}}});
        assert_eq!(
            claim_problems(&claim, &[&claim_item]),
            ["minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 512Mi"]
        );
    }

    #[test]
    fn kubes_limit_range_rules() {
        let mut causes = Vec::new();
        validate(
            &json!({"spec": {"limits": [
            {"type": "Pod", "default": {"cpu": "1"}},
            {"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}},
            {"type": "Node"}]}}),
            &mut causes,
        );
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.limits[0].default",
                "spec.limits[1].min[cpu]",
                "spec.limits[2].type"
            ]
        );
        assert_eq!(
            causes[1].message,
            "Invalid value: \"2\": min value 2 is greater than max value 1"
        );
    }
}
