//! `pods/<name>/binding`: the scheduler's (or anyone's) POST of a `Binding` assigns a pending
//! pod to a node, as kube-apiserver's binding subresource does: `spec.nodeName` is set once (a
//! pod already assigned is 409 Conflict), the `PodScheduled` condition turns True, and the
//! answer is a `Success` Status. Compare-and-swap on the pod just read.

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
    let kv = current(call, &key, &name).await?;
    let mut pod = decode_stored(&kv)?;
    if let Some(uid) = binding["metadata"]["uid"]
        .as_str()
        .filter(|u| !u.is_empty())
    {
        if pod["metadata"]["uid"] != uid {
            return Err(ApiError::conflict("", "pods", &name));
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
    if !call.query.dry_run {
        call.state
            .store
            .update(&key, meta::to_stored(&pod)?, kv.mod_revision)
            .await
            .map_err(|e| call.store_error(&name, e))?;
    }
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Success", "code": 201});
    Ok(object_response(StatusCode::CREATED, &status, &[]))
}
