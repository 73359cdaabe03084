//! PATCH of an object or of a subresource that is the object (`status`, a pod's
//! `ephemeralcontainers`): JSON merge patch (RFC 7386) and JSON patch (RFC 6902),
//! both applied by the `json-patch` crate, and strategic merge patch (`strategic`, driven by
//! the types' patch-merge keys in `merge_keys` through `shape`), applied to the stored object,
//! then written like an update. A patch that names a resourceVersion is conditional on it;
//! otherwise a concurrent write makes it re-read and re-apply (up to five times), as
//! kube-apiserver does. Server-side apply is `api::apply`'s.

#[cfg(test)]
pub(crate) mod generate;
mod merge_keys;
pub(super) mod shape;
pub(super) mod strategic;

use http::{Response, StatusCode};
use serde_json::Value;

use super::meta;
use super::update::{current, write};
use super::{decode_stored, object_response, validate, Call};
use crate::http_util::ResponseBody;
use crate::status::ApiError;
use shape::Shape;

/// The (OpenAPI definition, JSON field, `patchStrategy`, `patchMergeKey`) of every field that
/// has a patch strategy, for the OpenAPI documents' `x-kubernetes-patch-*` extensions.
pub(crate) fn merge_tags() -> &'static [(&'static str, &'static str, &'static str, &'static str)] {
    merge_keys::FIELDS
}

pub(super) enum PatchKind {
    Merge(Value),
    Json(json_patch::Patch),
    Strategic(Value),
}

pub(super) fn parse_patch(content_type: &str, body: &[u8]) -> Result<PatchKind, ApiError> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    let json = |what: &str| -> Result<Value, ApiError> {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the {what} is not valid JSON: {e}")))
    };
    match media {
        "application/merge-patch+json" => Ok(PatchKind::Merge(json("merge patch")?)),
        "application/json-patch+json" => {
            let value = json("JSON patch")?;
            serde_json::from_value(value)
                .map(PatchKind::Json)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))
        }
        "application/strategic-merge-patch+json" => {
            Ok(PatchKind::Strategic(json("strategic merge patch")?))
        }
        other => Err(ApiError::unsupported_media(
            other,
            "PATCH takes application/strategic-merge-patch+json, application/merge-patch+json or application/json-patch+json",
        )),
    }
}

/// `object` (whose schema is `shape`) with `patch` applied.
pub(super) fn apply_patch(
    mut object: Value,
    patch: &PatchKind,
    shape: Shape,
) -> Result<Value, ApiError> {
    match patch {
        PatchKind::Strategic(p) => {
            object = strategic::apply(object, p, shape)
                .map_err(|e| ApiError::bad_request(e.to_string()))?
        }
        PatchKind::Merge(p) => json_patch::merge(&mut object, p),
        PatchKind::Json(p) => json_patch::patch(&mut object, p).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                format!("the JSON patch does not apply: {e}"),
            )
        })?,
    }
    if !object.is_object() {
        return Err(ApiError::bad_request(
            "the patched object is not a JSON object",
        ));
    }
    Ok(object)
}

pub async fn patch(call: &Call, body: &[u8]) -> Result<Response<ResponseBody>, ApiError> {
    let resource = call.resource();
    let name = call.path.name.clone().unwrap_or_default();
    let key = call.path.key().unwrap_or_default();
    let patch = parse_patch(&call.content_type, body)?;
    if resource.custom && matches!(patch, PatchKind::Strategic(_)) {
        return Err(ApiError::unsupported_media(
            "application/strategic-merge-patch+json",
            "custom resources take application/json-patch+json or application/merge-patch+json",
        ));
    }
    let mut tries = 0;
    loop {
        tries += 1;
        let kv = current(call, &key, &name).await?;
        let old = decode_stored(&kv)?;
        let shape = Shape::of_resource(resource);
        let mut patched = apply_patch(call.shown(old.clone()).await?, &patch, shape)?;
        let pinned = patched["metadata"]["resourceVersion"] != old["metadata"]["resourceVersion"];
        let expected = match patched["metadata"]["resourceVersion"].as_str() {
            Some(rv) if pinned => rv
                .parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
            _ => kv.mod_revision,
        };
        if expected != kv.mod_revision {
            return Err(ApiError::conflict(resource.group, resource.plural, &name));
        }
        if patched["metadata"]["name"] != old["metadata"]["name"]
            || patched["metadata"]["namespace"] != old["metadata"]["namespace"]
        {
            return Err(ApiError::bad_request(
                "a patch may not change metadata.name or metadata.namespace",
            ));
        }
        let warnings =
            validate::check_typed(&mut patched, &[], resource, call.query.field_validation)?;
        let patched = call.to_storage(patched, Some(&old)).await?;
        let subresource = call.path.subresource.as_deref();
        let mut new = meta::prepare_update(&old, patched, resource, subresource);
        call.track_update(&old, &mut new);
        crate::api::update::admit_update(call, &old, &new).await?;
        match write(call, &key, &name, expected, &old, new).await {
            Ok(stored) => {
                return Ok(object_response(
                    StatusCode::OK,
                    &call.shown(stored).await?,
                    &warnings,
                ))
            }
            Err(e) if e.reason == "Conflict" && !pinned && tries < 5 => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patches_follow_rfc_7386() {
        let patch = parse_patch(
            "application/merge-patch+json",
            br#"{"data":{"a":null,"b":"2"},"metadata":{"labels":{"x":"y"}}}"#,
        )
        .unwrap();
        let out = apply_patch(
            json!({"metadata": {"name": "c"}, "data": {"a": "1", "c": "3"}}),
            &patch,
            Shape::unknown(),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"name": "c", "labels": {"x": "y"}}, "data": {"b": "2", "c": "3"}})
        );
    }

    #[test]
    fn json_patches_follow_rfc_6902_and_fail_whole() {
        let patch = parse_patch("application/json-patch+json", br#"[{"op":"replace","path":"/data/a","value":"9"},{"op":"add","path":"/data/b","value":"2"}]"#).unwrap();
        let out = apply_patch(json!({"data": {"a": "1"}}), &patch, Shape::unknown()).unwrap();
        assert_eq!(out, json!({"data": {"a": "9", "b": "2"}}));
        let patch = parse_patch(
            "application/json-patch+json",
            br#"[{"op":"test","path":"/data/a","value":"0"}]"#,
        )
        .unwrap();
        assert_eq!(
            apply_patch(json!({"data": {"a": "1"}}), &patch, Shape::unknown())
                .unwrap_err()
                .code,
            422
        );
    }

    #[test]
    fn other_media_types_are_unsupported() {
        for media in ["application/apply-patch+yaml", "text/plain"] {
            let e = parse_patch(media, b"{}").err().unwrap();
            assert_eq!(e.code, 415);
            assert!(e.message.contains(media), "{}", e.message);
        }
    }
}
