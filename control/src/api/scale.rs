//! The `scale` subresource (autoscaling/v1 `Scale`) of Deployments, ReplicaSets and
//! StatefulSets — and of custom resources whose CRD gives it, at the CRD's paths (missing
//! replicas read 0, the selector is the string at `labelSelectorPath`, as in kube): GET shows
//! `spec.replicas`, `status.replicas` and the selector as a string;
//! PUT and PATCH (merge, JSON or strategic merge patch; `kubectl scale` sends a merge patch)
//! change only the parent's `spec.replicas`, compare-and-swap on its resourceVersion, written
//! like any update.

use http::{Response, StatusCode};
use serde_json::{json, Value};

use super::admission_policy::{self, Operation};
use super::admission_webhook;
use super::get::read;
use super::meta;
use super::patch::shape::Shape;
use super::patch::{apply_patch, parse_patch};
use super::update::{current, write};
use super::{decode_stored, object_response, Call};
use crate::crd::definition::ScalePaths;
use crate::http_util::ResponseBody;
use crate::status::ApiError;
use crate::table::selector_string;

/// A workload's pod selector as a LabelSelector: a ReplicationController's is a label map.
fn pod_selector(object: &Value) -> Value {
    let selector = &object["spec"]["selector"];
    if object["kind"] == "ReplicationController" {
        json!({ "matchLabels": selector })
    } else {
        selector.clone()
    }
}

/// Where a resource keeps the Scale's fields: the built-in workloads' `spec.replicas`,
/// `status.replicas` and pod selector, or a custom resource's CRD paths.
fn custom_paths(resource: &crate::kinds::Resource) -> Option<ScalePaths> {
    crate::crd::registry::version_of(resource).and_then(|v| v.scale.clone())
}

fn at<'a>(object: &'a Value, path: &[String]) -> &'a Value {
    path.iter()
        .fold(object, |value, field| &value[field.as_str()])
}

/// Sets `value` at `path`, making the maps on the way.
fn set_at(object: &mut Value, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut target = object;
    for field in parents {
        if !target[field.as_str()].is_object() {
            target[field.as_str()] = json!({});
        }
        target = &mut target[field.as_str()];
    }
    target[last.as_str()] = value;
}

/// The Scale view of an object: a built-in workload's (`paths` None) or a custom object's.
fn to_scale(object: &Value, paths: Option<&ScalePaths>) -> Value {
    let mut scale = builtin_scale(object);
    if let Some(paths) = paths {
        // kube's custom resource scale: missing replicas read as 0, the selector as is.
        scale["spec"]["replicas"] = json!(at(object, &paths.spec_replicas).as_i64().unwrap_or(0));
        scale["status"] = json!({
            "replicas": at(object, &paths.status_replicas).as_i64().unwrap_or(0),
        });
        if let Some(selector) = paths
            .label_selector
            .as_ref()
            .and_then(|p| at(object, p).as_str())
        {
            scale["status"]["selector"] = json!(selector);
        }
    }
    scale
}

/// The Scale view of a workload object.
fn builtin_scale(object: &Value) -> Value {
    let metadata = &object["metadata"];
    let mut scale_meta = json!({});
    for field in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if !metadata[field].is_null() {
            scale_meta[field] = metadata[field].clone();
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_meta,
        "spec": {"replicas": object["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {
            "replicas": object["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": selector_string(&pod_selector(object)),
        },
    })
}

pub async fn get(call: &Call) -> Result<Response<ResponseBody>, ApiError> {
    Ok(object_response(
        StatusCode::OK,
        &to_scale(
            &call.shown(read(call).await?).await?,
            custom_paths(call.resource()).as_ref(),
        ),
        &[],
    ))
}

pub async fn update(call: &Call, body: &[u8]) -> Result<Response<ResponseBody>, ApiError> {
    let scale: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the Scale is not valid JSON: {e}")))?;
    let pinned = scale["metadata"]["resourceVersion"]
        .as_str()
        .filter(|rv| !rv.is_empty())
        .map(|rv| {
            rv.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))
        })
        .transpose()?;
    set_replicas(call, pinned, |_| Ok(scale.clone())).await
}

pub async fn patch(call: &Call, body: &[u8]) -> Result<Response<ResponseBody>, ApiError> {
    let patch = parse_patch(&call.content_type, body)?;
    let shape = Shape::named(crate::openapi::schemas::SCALE);
    set_replicas(call, None, |current| apply_patch(current, &patch, shape)).await
}

/// Reads the parent, computes the wanted Scale from its current one with `wanted`, and writes
/// the parent with the new `spec.replicas`; retried on a concurrent write unless `pinned`.
async fn set_replicas(
    call: &Call,
    pinned: Option<i64>,
    wanted: impl Fn(Value) -> Result<Value, ApiError>,
) -> Result<Response<ResponseBody>, ApiError> {
    let resource = call.resource();
    let paths = custom_paths(resource);
    let name = call.path.name.clone().unwrap_or_default();
    let key = call.path.key().unwrap_or_default();
    for _ in 0..5 {
        let kv = current(call, &key, &name).await?;
        let old = decode_stored(&kv)?;
        // The paths are the request version's: the object is changed as that version shows it.
        let mut object = call.shown(old.clone()).await?;
        let old_scale = to_scale(&object, paths.as_ref());
        let mut scale = wanted(old_scale.clone())?;
        // Admitted as kube admits a scale: the autoscaling/v1 Scale, mutated, validated, then
        // checked by the policies and the validating webhooks; the parent's write is not
        // admitted again.
        let update = Operation::Update;
        admission_webhook::mutate(call, update, &mut scale, Some(&old_scale)).await?;
        let replicas = replicas_of(&scale)?;
        admission_policy::admit(call, update, Some(&scale), Some(&old_scale)).await?;
        admission_webhook::validate(call, update, Some(&scale), Some(&old_scale)).await?;
        let expected = pinned.unwrap_or(kv.mod_revision);
        if expected != kv.mod_revision {
            return Err(ApiError::conflict(resource.group, resource.plural, &name));
        }
        match &paths {
            Some(paths) => set_at(&mut object, &paths.spec_replicas, json!(replicas)),
            None => object["spec"]["replicas"] = json!(replicas),
        }
        let object = call.to_storage(object, Some(&old)).await?;
        let mut new = meta::prepare_update(&old, object, resource, None);
        call.track_update(&old, &mut new);
        match write(call, &key, &name, expected, &old, new).await {
            Ok(stored) => {
                let scale = to_scale(&call.shown(stored).await?, paths.as_ref());
                return Ok(object_response(StatusCode::OK, &scale, &[]));
            }
            Err(e) if e.reason == "Conflict" && pinned.is_none() => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict(resource.group, resource.plural, &name))
}

/// `spec.replicas` of a Scale: a whole number ≥ 0, or a 422 naming the field.
fn replicas_of(scale: &Value) -> Result<i64, ApiError> {
    match scale["spec"]["replicas"].as_i64() {
        Some(n) if (0..=i64::from(i32::MAX)).contains(&n) => Ok(n),
        _ => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!(
                "Scale.autoscaling \"{}\" is invalid: spec.replicas: Invalid value: {}: must be greater than or equal to 0",
                scale["metadata"]["name"].as_str().unwrap_or(""),
                scale["spec"]["replicas"]
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_shows_replicas_and_the_selector_string() {
        let deployment = json!({
            "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "7", "labels": {"x": "y"}},
            "spec": {"replicas": 3, "selector": {
                "matchLabels": {"tier": "front", "app": "web"},
                "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]},
                                     {"key": "canary", "operator": "DoesNotExist"}]}},
            "status": {"replicas": 2},
        });
        let scale = builtin_scale(&deployment);
        assert_eq!(scale["kind"], "Scale");
        assert_eq!(
            scale["metadata"],
            json!({"name": "web", "namespace": "shop", "resourceVersion": "7"})
        );
        assert_eq!(scale["spec"]["replicas"], 3);
        assert_eq!(scale["status"]["replicas"], 2);
        assert_eq!(
            scale["status"]["selector"],
            "app=web,!canary,env in (dev,prod),tier=front"
        );
    }

    #[test]
    fn replicas_must_be_a_non_negative_whole_number() {
        assert_eq!(replicas_of(&json!({"spec": {"replicas": 0}})).unwrap(), 0);
        for bad in [json!(-1), json!("3"), json!(null), json!(1.5)] {
            let err = replicas_of(&json!({"metadata": {"name": "web"}, "spec": {"replicas": bad}}))
                .unwrap_err();
            assert_eq!(err.code, StatusCode::UNPROCESSABLE_ENTITY);
            assert!(err.message.contains("spec.replicas"), "{}", err.message);
        }
    }
}
