//! A webhook's AdmissionReview answer checked as kube checks it (version, kind, uid, patch
//! type), and a denial turned into kube's error.

use base64::Engine;
use http::StatusCode;
use serde_json::Value;

use super::config::Webhook;
use crate::status::ApiError;

/// A webhook's answer, checked.
pub(super) struct Response {
    pub allowed: bool,
    pub status: Value,
    pub patch: Option<json_patch::Patch>,
    pub warnings: Vec<String>,
    /// `auditAnnotations`, logged as `<webhook name>/<key>`.
    pub audit_annotations: Vec<(String, String)>,
}

pub(super) fn read_response(
    answer: &Value,
    webhook: &Webhook,
    uid: &str,
) -> Result<Response, String> {
    let api_version = answer["apiVersion"].as_str().unwrap_or("");
    let kind = answer["kind"].as_str().unwrap_or("");
    let expected = format!("admission.k8s.io/{}", webhook.review_version);
    if api_version != expected || kind != "AdmissionReview" {
        return Err(format!(
            "expected webhook response of {expected}, Kind=AdmissionReview, got {api_version}, Kind={kind}"
        ));
    }
    let response = &answer["response"];
    if !response.is_object() {
        return Err("webhook response was absent".to_owned());
    }
    let answered = response["uid"].as_str().unwrap_or("");
    if answered != uid {
        return Err(format!("expected response.uid={uid:?}, got {answered:?}"));
    }
    let allowed = response["allowed"].as_bool().unwrap_or(false);
    let patch = match (&response["patch"], response["patchType"].as_str()) {
        (Value::Null, _) => None,
        (Value::String(encoded), Some("JSONPatch")) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| format!("response.patch is not base64: {e}"))?;
            Some(
                serde_json::from_slice::<json_patch::Patch>(&bytes)
                    .map_err(|e| format!("response.patch is not a JSON patch: {e}"))?,
            )
        }
        (Value::String(_), None) => {
            return Err("webhook returned response.patch but not response.patchType".to_owned())
        }
        (_, Some(other)) if other != "JSONPatch" => {
            return Err(format!(
                "webhook returned invalid response.patchType of {other:?}"
            ))
        }
        _ => return Err("response.patch is not a string".to_owned()),
    };
    let warnings = response["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let audit_annotations = response["auditAnnotations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
        .collect();
    Ok(Response {
        allowed,
        status: response["status"].clone(),
        patch,
        warnings,
        audit_annotations,
    })
}

/// kube's refusal from a webhook's `status`: its code (at least 400) and reason, and
/// `admission webhook "<name>" denied the request: <message or reason>`.
pub(super) fn denial(webhook: &Webhook, status: &Value) -> ApiError {
    let denied_by = format!("admission webhook {:?} denied the request", webhook.name);
    let message = status["message"].as_str().unwrap_or("");
    let reason = status["reason"].as_str().unwrap_or("");
    let text = match (message, reason) {
        ("", "") => format!("{denied_by} without explanation"),
        ("", reason) => format!("{denied_by}: {reason}"),
        (message, _) => format!("{denied_by}: {message}"),
    };
    let code = status["code"]
        .as_u64()
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c >= 400)
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::BAD_REQUEST);
    let mut error = ApiError::new(code, known_reason(reason), text);
    if status["details"].is_object() {
        error.details = Some(status["details"].clone());
    }
    error
}

/// A webhook's `status.reason` as one of the reasons kubectl knows, or none.
fn known_reason(reason: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "Unauthorized",
        "Forbidden",
        "NotFound",
        "AlreadyExists",
        "Conflict",
        "Invalid",
        "BadRequest",
        "MethodNotAllowed",
        "RequestEntityTooLarge",
        "TooManyRequests",
        "InternalError",
        "ServiceUnavailable",
    ];
    KNOWN.iter().find(|k| **k == reason).copied().unwrap_or("")
}
