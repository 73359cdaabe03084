//! PUT of an object or of a subresource that is the object (`status`, a pod's
//! `ephemeralcontainers`): the body replaces the object, compare-and-swap on its
//! resourceVersion (a stale one is 409 Conflict; an empty one is unconditional), with the
//! server-owned metadata kept (`meta::prepare_update`). An object being deleted whose last
//! finalizer goes is deleted. A Service keeps its allocations (`service_alloc`). Also the
//! shared write path of `patch`.

use http::{Response, StatusCode};
use serde_json::{json, Value};

use super::meta::{self, finalizers};
use super::{decode_stored, object_response, service_alloc, validate, Call};
use crate::http_util::ResponseBody;
use crate::status::ApiError;
use crate::store::{self, KeyValue};

/// Checks `object`'s name and namespace against the request's URL, filling them in where the
/// object leaves them out (an update's and an apply's body).
pub(super) fn named_as_the_url(
    call: &Call,
    object: &mut Value,
    name: &str,
) -> Result<(), ApiError> {
    match object["metadata"]["name"].as_str() {
        None | Some("") => object["metadata"]["name"] = json!(name),
        Some(n) if n == name => {}
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )))
        }
    }
    if let Some(ns) = &call.path.namespace {
        match object["metadata"]["namespace"].as_str() {
            None | Some("") => object["metadata"]["namespace"] = json!(ns),
            Some(n) if n == ns => {}
            Some(n) => {
                return Err(ApiError::bad_request(format!(
                    "the namespace of the provided object ({n}) does not match the namespace sent on the request ({ns})"
                )))
            }
        }
    }
    Ok(())
}

pub async fn update(call: &Call, body: &[u8]) -> Result<Response<ResponseBody>, ApiError> {
    let resource = call.resource();
    let name = call.path.name.clone().unwrap_or_default();
    let key = call.path.key().unwrap_or_default();
    let (mut object, warnings) = validate::decode_checked(
        &call.content_type,
        body,
        resource,
        call.query.field_validation,
    )?;
    named_as_the_url(call, &mut object, &name)?;
    let unconditional = object["metadata"]["resourceVersion"]
        .as_str()
        .is_none_or(str::is_empty);
    let mut attempt = 1;
    loop {
        match update_once(call, object.clone(), &warnings, &key, &name).await {
            // An update naming no resourceVersion replaces whatever is stored: written
            // meanwhile, it is tried again on the new object, as kube's unconditional update.
            Err(e) if e.reason == "Conflict" && unconditional && attempt < UPDATE_ATTEMPTS => {
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Times an update without a resourceVersion is tried when the object changed meanwhile.
const UPDATE_ATTEMPTS: usize = 5;

/// One attempt at replacing the stored object with `object`.
async fn update_once(
    call: &Call,
    object: Value,
    warnings: &[String],
    key: &str,
    name: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let resource = call.resource();
    let current = current(call, key, name).await?;
    let expected = match object["metadata"]["resourceVersion"].as_str() {
        None | Some("") => current.mod_revision,
        Some(rv) => rv
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
    };
    if expected != current.mod_revision {
        return Err(ApiError::conflict(resource.group, resource.plural, name));
    }
    let old = decode_stored(&current)?;
    if let Some(uid) = object["metadata"]["uid"].as_str().filter(|u| !u.is_empty()) {
        let have = old["metadata"]["uid"].as_str().unwrap_or("");
        if uid != have {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "Conflict",
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {have}"
                ),
            ));
        }
    }
    let object = call.to_storage(object, Some(&old)).await?;
    let subresource = call.path.subresource.as_deref();
    let mut new = meta::prepare_update(&old, object, resource, subresource);
    call.track_update(&old, &mut new);
    admit_update(call, &old, &new).await?;
    let stored = write(call, key, name, expected, &old, new).await?;
    Ok(object_response(
        StatusCode::OK,
        &call.shown(stored).await?,
        warnings,
    ))
}

/// The stored object, or 404.
pub async fn current(call: &Call, key: &str, name: &str) -> Result<KeyValue, ApiError> {
    call.state
        .store
        .get(key)
        .await
        .map_err(|e| call.store_error(name, e))?
        .ok_or_else(|| call.not_found(name))
}

/// Validates and stores `object` over revision `expected`; an object being deleted with no
/// finalizers left and no grace period running is deleted instead. Returns what is stored (or was, last).
pub async fn write(
    call: &Call,
    key: &str,
    name: &str,
    expected: i64,
    old: &Value,
    object: Value,
) -> Result<Value, ApiError> {
    let mut object = object;
    let update = super::admission_policy::Operation::Update;
    // A scale subresource's write was admitted as its Scale (`scale`).
    let admitted = call.path.subresource.as_deref() == Some("scale");
    if !admitted {
        super::admission_webhook::mutate(call, update, &mut object, Some(old)).await?;
    }
    validate::check_semantics(&object, Some(old), call.resource())?;
    if !admitted {
        super::admission_policy::admit(call, update, Some(&object), Some(old)).await?;
        super::admission_webhook::validate(call, update, Some(&object), Some(old)).await?;
    }
    super::priority::admit_class(call, &object).await?;
    // As kube's GuaranteedUpdate: an update that changes nothing is not written, and the
    // object keeps its resourceVersion (`kubectl patch` prints "patched (no change)").
    if unchanged(old, &object) {
        return Ok(old.clone());
    }
    if call.query.dry_run {
        return Ok(object);
    }
    let store = &call.state.store;
    let service = service_alloc::is_service(&object);
    let (old, reserved) = if service {
        let old = decode_stored(&current(call, key, name).await?)?;
        let reserved = service_alloc::allocate(
            store.as_ref(),
            &call.state.service_network,
            &mut object,
            Some(&old),
        )
        .await?;
        (Some(old), reserved)
    } else {
        (None, service_alloc::Reserved::default())
    };
    let written = match meta::to_stored(&object) {
        Ok(bytes) => store
            .update(key, bytes, expected)
            .await
            .map_err(|e| call.store_error(name, e)),
        Err(e) => Err(e),
    };
    let kv = match written {
        Ok(kv) => kv,
        Err(e) => {
            reserved.release(store.as_ref()).await;
            return Err(e);
        }
    };
    let stored = decode_stored(&kv)?;
    if let Some(old) = &old {
        service_alloc::release(store.as_ref(), old, Some(&stored)).await;
    }
    // A namespace's own deletion is finished by `namespaces`, once it is empty.
    let r = call.resource();
    let namespace = r.group.is_empty() && r.kind == "Namespace";
    if namespace {
        call.state.namespace_cache.saw(&stored, kv.mod_revision);
    }
    if namespace || !finished(&stored) {
        return Ok(stored);
    }
    // Deleted at the revision just written; when another writer came in between (a
    // controller's status update), at the newer one if the object may still go.
    let (mut revision, mut seen) = (kv.mod_revision, stored);
    for _ in 0..5 {
        let deleted = match store.delete(key, Some(revision)).await {
            Ok(deleted) => deleted,
            Err(store::Error::Conflict { .. }) => {
                match store
                    .get(key)
                    .await
                    .map_err(|e| call.store_error(name, e))?
                {
                    None => return Ok(seen),
                    Some(now) => {
                        revision = now.mod_revision;
                        seen = decode_stored(&now)?;
                        if !finished(&seen) {
                            return Ok(seen);
                        }
                        continue;
                    }
                }
            }
            Err(e) => return Err(call.store_error(name, e)),
        };
        let mut last = decode_stored(&deleted.prev)?;
        meta::set_resource_version(&mut last, deleted.revision);
        if service {
            service_alloc::release(store.as_ref(), &last, None).await;
        }
        return Ok(last);
    }
    Err(ApiError::conflict(r.group, r.plural, name))
}

/// Whether `new` is `old` but for the resourceVersion the request named.
fn unchanged(old: &Value, new: &Value) -> bool {
    let (Some(a), Some(b)) = (old.as_object(), new.as_object()) else {
        return false;
    };
    a.len() == b.len()
        && a.iter()
            .all(|(field, value)| match (field.as_str(), b.get(field)) {
                ("metadata", Some(Value::Object(meta))) => {
                    let Some(old_meta) = value.as_object() else {
                        return false;
                    };
                    let others = |m: &serde_json::Map<String, Value>| {
                        m.iter().filter(|(k, _)| *k != "resourceVersion").count()
                    };
                    others(old_meta) == others(meta)
                        && old_meta
                            .iter()
                            .filter(|(k, _)| *k != "resourceVersion")
                            .all(|(k, v)| meta.get(k) == Some(v))
                }
                (_, other) => other == Some(value),
            })
}

/// kube's ShouldDeleteDuringUpdate: being deleted, no finalizer left and no grace period
/// running (a pod in its graceful deletion stays until its kubelet deletes it).
fn finished(object: &Value) -> bool {
    !object["metadata"]["deletionTimestamp"].is_null()
        && object["metadata"]["deletionGracePeriodSeconds"]
            .as_i64()
            .unwrap_or(0)
            == 0
        && finalizers(object) == 0
}

/// What an update of `old` to `new` must pass, whatever wrote it (update, patch, apply): the
/// kinds' fixed fields and the admission rules.
pub(super) async fn admit_update(call: &Call, old: &Value, new: &Value) -> Result<(), ApiError> {
    let resource = call.resource();
    super::pod_update::check(old, new, resource, call.path.subresource.as_deref())?;
    super::validate_statefulset::check_update(old, new, resource)?;
    super::priority::check_update(old, new, resource)?;
    super::pod_security::admit(call, new, Some(old)).await?;
    super::validate_rbac::check_update(old, new, resource)?;
    super::volume_claims::admit_update(call, old, new).await?;
    super::rbac_escalation::admit(call, new).await?;
    super::quota::admit(call, Some(old), new).await?;
    crate::authz::admit(&call.identity, resource, Some(old), new)
}
