//! `pods/<name>/binding`: the scheduler's (or anyone's) POST of a `Binding` assigns a pending
//! pod to a node, as kube-apiserver's binding subresource does: `spec.nodeName` is set once (a
//! pod already assigned is 409 Conflict), the `PodScheduled` condition turns True, and the
//! answer is a `Success` Status. Compare-and-swap on the pod just read, read again when another
//! writer came in between.

use http::{Response, StatusCode};
use serde_json::{json, Value};

use super::update::current;
use super::{decode_stored, meta, object_response, Call};
use crate::http_util::ResponseBody;
use crate::status::{ApiError, FieldCause};

pub async fn create(call: &Call, body: &[u8]) -> Result<Response<ResponseBody>, ApiError> {
    let name = call.path.name.clone().unwrap_or_default();
    let binding: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the Binding is not valid JSON: {e}")))?;
    let target = &binding["target"];
    let node = target["name"].as_str().unwrap_or("");
    if node.is_empty() {
        return Err(ApiError::invalid(
            "Binding",
            "Binding",
            &name,
            &[FieldCause::required("target.name")],
        ));
    }
    if !matches!(target["kind"].as_str(), None | Some("" | "Node")) {
        return Err(ApiError::invalid(
            "Binding",
            "Binding",
            &name,
            &[FieldCause::invalid(
                "target.kind",
                target["kind"].as_str().unwrap_or(""),
                "must be empty or 'Node'",
            )],
        ));
    }
    let key = call.path.key().unwrap_or_default();
    let mut attempt = 1;
    // Another writer between the read and the write (a status update): read the pod again,
    // as kube's GuaranteedUpdate does.
    let uid = binding["metadata"]["uid"]
        .as_str()
        .filter(|u| !u.is_empty());
    while !bind_once(call, &key, &name, node, uid).await? {
        attempt += 1;
        if attempt > BIND_ATTEMPTS {
            return Err(ApiError::conflict("", "pods", &name));
        }
    }
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Success", "code": 201});
    Ok(object_response(StatusCode::CREATED, &status, &[]))
}

/// Times a binding reads the pod again when it changed before the write.
const BIND_ATTEMPTS: usize = 5;

/// Binds the pod as it is stored now: false when it changed before the write.
async fn bind_once(
    call: &Call,
    key: &str,
    name: &str,
    node: &str,
    uid: Option<&str>,
) -> Result<bool, ApiError> {
    let kv = current(call, key, name).await?;
    let mut pod = decode_stored(&kv)?;
    if let Some(uid) = uid {
        if pod["metadata"]["uid"] != uid {
            return Err(ApiError::conflict("", "pods", name));
        }
    }
    if !pod["metadata"]["deletionTimestamp"].is_null() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!("pod {name} is being deleted, cannot be assigned to a host"),
        ));
    }
    if let Some(assigned) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!("pod {name} is already assigned to node \"{assigned}\""),
        ));
    }
    pod["spec"]["nodeName"] = json!(node);
    let scheduled = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null,
                           "lastTransitionTime": meta::now()});
    let conditions = &mut pod["status"]["conditions"];
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    if let Some(list) = conditions.as_array_mut() {
        list.retain(|c| c["type"] != "PodScheduled");
        list.push(scheduled);
    }
    if call.query.dry_run {
        return Ok(true);
    }
    match call
        .state
        .store
        .update(key, meta::to_stored(&pod)?, kv.mod_revision)
        .await
    {
        Ok(_) => Ok(true),
        Err(crate::store::Error::Conflict { .. }) => Ok(false),
        Err(e) => Err(call.store_error(name, e)),
    }
}
