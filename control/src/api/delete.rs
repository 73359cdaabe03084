//! DELETE of an object and of a collection. A pod is deleted gracefully (`pod_grace`): it
//! gets a deletionTimestamp and a deletionGracePeriodSeconds and stays until its kubelet
//! deletes it with grace 0. An object with finalizers gets a deletionTimestamp and stays until
//! they are removed (the update that removes the last one deletes it, once its grace is 0);
//! otherwise the key is deleted, compare-and-swap on the revision just read. The answer is the
//! object (200). DeleteOptions in the body: `gracePeriodSeconds`, `propagationPolicy` (and the
//! older `orphanDependents`), `preconditions`, `dryRun`. Foreground and Orphan propagation add the
//! `foregroundDeletion` / `orphan` finalizer that the garbage collector (`controllers::gc`)
//! works off and removes; Background deletes at once and leaves the dependents to it.
//! Namespaces are deleted by `namespaces`.

use http::{Response, StatusCode};
use serde_json::{json, Value};

use super::get::list_page;
use super::meta::{self, finalizers, name_of};
use super::pod_grace::{self, Grace};
use super::{decode_stored, map_store_error, namespaces, object_response, Call};
use crate::http_util::ResponseBody;
use crate::status::ApiError;
use crate::store::{self, KeyValue, Store};

/// What deleting one object did.
pub enum Outcome {
    /// The key is gone; the object's last state.
    Deleted(Value),
    /// It has finalizers or a grace period: it now carries a deletionTimestamp.
    Marked(Value),
}

/// How one object is to be deleted.
#[derive(Clone, Copy, Debug, Default)]
pub struct Request {
    pub propagation: Propagation,
    /// DeleteOptions' `gracePeriodSeconds` (pods; `None`: the pod's own).
    pub grace: Option<i64>,
}

/// What happens to an object's dependents (those naming it in `ownerReferences`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Propagation {
    /// The object goes now; the garbage collector deletes the dependents afterwards.
    #[default]
    Background,
    /// The object stays (finalizer `foregroundDeletion`) until its blocking dependents are gone.
    Foreground,
    /// The dependents lose their reference to it (finalizer `orphan`) and stay.
    Orphan,
}

/// The finalizer through which the garbage collector deletes dependents first.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// The finalizer through which the garbage collector orphans dependents first.
pub const ORPHAN_FINALIZER: &str = "orphan";

impl Propagation {
    fn finalizer(self) -> Option<&'static str> {
        match self {
            Propagation::Background => None,
            Propagation::Foreground => Some(FOREGROUND_FINALIZER),
            Propagation::Orphan => Some(ORPHAN_FINALIZER),
        }
    }
}

/// A DeleteOptions body, checked.
struct DeleteOptions {
    dry_run: bool,
    preconditions: Value,
    request: Request,
}

/// Checks a DeleteOptions body: JSON, or protobuf (client-go's typed clients, as in
/// `kubectl drain`).
fn options(content_type: &str, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DeleteOptions {
            dry_run: false,
            preconditions: Value::Null,
            request: Request::default(),
        });
    }
    let options: Value = match content_type.split(';').next().map(str::trim) {
        Some("application/vnd.kubernetes.protobuf") => {
            let options = crate::protobuf::decode(body).map_err(|e| {
                ApiError::bad_request(format!("DeleteOptions is not a valid protobuf object: {e}"))
            })?;
            if options["kind"] != "DeleteOptions" {
                return Err(ApiError::bad_request(format!(
                    "the body of a DELETE is a DeleteOptions, not a {}",
                    options["kind"].as_str().unwrap_or("")
                )));
            }
            options
        }
        _ => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("DeleteOptions is not valid JSON: {e}")))?,
    };
    let propagation = match (
        options["propagationPolicy"].as_str(),
        options["orphanDependents"].as_bool(),
    ) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "orphanDependents: Invalid value: true: orphanDependents and propagationPolicy may not both be set",
            ))
        }
        (Some("Background"), None) | (None, Some(false) | None) => Propagation::Background,
        (Some("Foreground"), None) => Propagation::Foreground,
        (Some("Orphan"), None) | (None, Some(true)) => Propagation::Orphan,
        (Some(other), None) => {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
            )))
        }
    };
    let dry_run = options["dryRun"]
        .as_array()
        .is_some_and(|d| d.iter().any(|v| v == "All"));
    if !options["gracePeriodSeconds"].is_null() && !options["gracePeriodSeconds"].is_i64() {
        return Err(ApiError::bad_request(
            "gracePeriodSeconds: Invalid value: must be an integer",
        ));
    }
    Ok(DeleteOptions {
        dry_run,
        preconditions: options["preconditions"].clone(),
        request: Request {
            propagation,
            grace: pod_grace::requested(&options),
        },
    })
}

pub async fn delete(call: &Call, body: &[u8]) -> Result<Response<ResponseBody>, ApiError> {
    let DeleteOptions {
        dry_run,
        preconditions,
        request,
    } = options(&call.content_type, body)?;
    let dry_run = dry_run || call.query.dry_run;
    let mut attempt = 1;
    loop {
        match delete_current(call, dry_run, &preconditions, request).await {
            // Written meanwhile (a controller's status update): read again and delete what is
            // there now, as kube's conditional delete does; a client's precondition is
            // checked again each time.
            Err(e) if e.reason == "Conflict" && attempt < DELETE_ATTEMPTS => attempt += 1,
            result => return result,
        }
    }
}

/// Times a delete reads the object again when it changed between the read and the delete.
const DELETE_ATTEMPTS: usize = 5;

/// One attempt at a DELETE of the stored object as it is now.
async fn delete_current(
    call: &Call,
    dry_run: bool,
    preconditions: &Value,
    request: Request,
) -> Result<Response<ResponseBody>, ApiError> {
    let name = call.path.name.clone().unwrap_or_default();
    let key = call.path.key().unwrap_or_default();
    let store = &call.state.store;
    let kv = store
        .get(&key)
        .await
        .map_err(|e| call.store_error(&name, e))?
        .ok_or_else(|| call.not_found(&name))?;
    let object = decode_stored(&kv)?;
    for (field, what) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
        if let Some(want) = preconditions[field].as_str() {
            let have = object["metadata"][field].as_str().unwrap_or("");
            if want != have {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "Conflict",
                    format!("Precondition failed: {what} in precondition: {want}, {what} in object meta: {have}"),
                ));
            }
        }
    }
    let delete = super::admission_policy::Operation::Delete;
    super::admission_policy::admit(call, delete, None, Some(&object)).await?;
    super::admission_webhook::validate(call, delete, None, Some(&object)).await?;
    if dry_run {
        return Ok(object_response(
            StatusCode::OK,
            &call.shown(object).await?,
            &[],
        ));
    }
    let r = call.resource();
    if r.group.is_empty() && r.kind == "Namespace" {
        if namespaces::UNDELETABLE.contains(&name.as_str()) {
            return Err(ApiError::forbidden(format!(
                "namespaces {name:?} is forbidden: this namespace may not be deleted"
            )));
        }
        let marked = namespaces::begin_delete(&call.state, &kv).await?;
        return Ok(object_response(StatusCode::OK, &marked, &[]));
    }
    match delete_kv(store.as_ref(), &kv, request, |e| call.store_error(&name, e)).await? {
        Outcome::Deleted(o) | Outcome::Marked(o) => {
            Ok(object_response(StatusCode::OK, &call.shown(o).await?, &[]))
        }
    }
}

/// Deletes the object stored in `kv`, or marks it when it has a grace period (pods) or
/// finalizers (including the one `request.propagation` adds).
pub async fn delete_kv(
    store: &dyn Store,
    kv: &KeyValue,
    request: Request,
    map: impl Fn(store::Error) -> ApiError,
) -> Result<Outcome, ApiError> {
    let mut object = decode_stored(kv)?;
    let grace = if pod_grace::applies(&object) {
        pod_grace::before_delete(&mut object, request.grace, time::OffsetDateTime::now_utc())
    } else {
        Grace::None
    };
    let (mut changed, period) = match grace {
        // A graceful deletion under way is not changed, finalizers included.
        Grace::Pending => return Ok(Outcome::Marked(object)),
        Grace::Marked(period) => (true, period),
        Grace::None => (false, 0),
    };
    if let Some(finalizer) = request.propagation.finalizer() {
        changed |= set_gc_finalizer(&mut object, finalizer);
    }
    // A CRD goes once its objects are gone (`controllers::crd`), as kube's CRD storage keeps it.
    if crate::crd::definition::is_crd(&object) && object["metadata"]["deletionTimestamp"].is_null()
    {
        changed |= add_finalizer(&mut object, crate::crd::definition::CLEANUP_FINALIZER);
    }
    if finalizers(&object) > 0 || period > 0 {
        if object["metadata"]["deletionTimestamp"].is_null() {
            meta::bump_generation_on_delete(&mut object);
            object["metadata"]["deletionTimestamp"] = json!(meta::now());
            object["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            changed = true;
        }
        if changed {
            let updated = store
                .update(&kv.key, meta::to_stored(&object)?, kv.mod_revision)
                .await
                .map_err(&map)?;
            object = decode_stored(&updated)?;
        }
        return Ok(Outcome::Marked(object));
    }
    let deleted = store
        .delete(&kv.key, Some(kv.mod_revision))
        .await
        .map_err(&map)?;
    meta::set_resource_version(&mut object, deleted.revision);
    if super::service_alloc::is_service(&object) {
        super::service_alloc::release(store, &object, None).await;
    }
    Ok(Outcome::Deleted(object))
}

/// Adds `finalizer` to the object's finalizers unless it holds it; whether it was added.
fn add_finalizer(object: &mut Value, finalizer: &str) -> bool {
    let list = &mut object["metadata"]["finalizers"];
    if !list.is_array() {
        *list = json!([]);
    }
    match list.as_array_mut() {
        Some(items) if !items.iter().any(|f| f == finalizer) => {
            items.push(json!(finalizer));
            true
        }
        _ => false,
    }
}

/// Gives the object the garbage collector's `finalizer` and drops the other one of the two
/// (a later delete may change its mind, as in Kubernetes); whether anything changed.
fn set_gc_finalizer(object: &mut Value, finalizer: &str) -> bool {
    let list = &mut object["metadata"]["finalizers"];
    if !list.is_array() {
        *list = json!([]);
    }
    let Some(items) = list.as_array_mut() else {
        return false;
    };
    let before = items.len();
    items.retain(|f| f == finalizer || (f != FOREGROUND_FINALIZER && f != ORPHAN_FINALIZER));
    let mut changed = items.len() != before;
    if !items.iter().any(|f| f == finalizer) {
        items.push(json!(finalizer));
        changed = true;
    }
    changed
}

/// DELETE of a collection: every object matching the selectors, answered as a list.
pub async fn delete_collection(
    call: &Call,
    body: &[u8],
) -> Result<Response<ResponseBody>, ApiError> {
    let options = options(&call.content_type, body)?;
    let page = list_page(call).await?;
    let mut items = Vec::new();
    for object in page.objects {
        let name = name_of(&object).to_owned();
        let key = super::path::object_key(
            call.resource(),
            object["metadata"]["namespace"].as_str(),
            &name,
        );
        if call.query.dry_run || options.dry_run {
            items.push(object);
            continue;
        }
        let mut attempt = 1;
        loop {
            let Some(kv) = call.state.store.get(&key).await.map_err(map_store_error)? else {
                break; // deleted meanwhile
            };
            match delete_kv(call.state.store.as_ref(), &kv, options.request, |e| {
                call.store_error(&name, e)
            })
            .await
            {
                Ok(Outcome::Deleted(o) | Outcome::Marked(o)) => items.push(o),
                Err(e) if e.code == StatusCode::NOT_FOUND => {}
                // Written meanwhile: read it again.
                Err(e) if e.reason == "Conflict" && attempt < DELETE_ATTEMPTS => {
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(e),
            }
            break;
        }
    }
    let items = call.shown_all(items).await?;
    let r = call.resource();
    let list = json!({
        "kind": format!("{}List", r.kind),
        "apiVersion": r.group_version(),
        "metadata": {"resourceVersion": page.revision.to_string()},
        "items": items,
    });
    Ok(object_response(StatusCode::OK, &list, &[]))
}
