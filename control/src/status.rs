//! Kubernetes `Status` answers: every error the API returns is one, so kubectl prints it the
//! way users know (`Error from server (NotFound): pods "web" not found`).

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{json, Value};

use crate::http_util::{json_response, ResponseBody};

/// An API error: HTTP code, Kubernetes reason, message, and optional details.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub code: StatusCode,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// 401: no or unknown credentials.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    }

    /// 404 for a path no resource is served at. Its details are empty but present, as
    /// kube-apiserver's: `kubectl debug` reads them to tell a missing subresource from a
    /// missing pod.
    pub fn no_route(path: &str) -> Self {
        let mut e = Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("the server could not find the requested resource (path {path})"),
        );
        e.details = Some(json!({}));
        e
    }

    /// 405 for a verb a path does not serve.
    pub fn method_not_allowed(method: &http::Method, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!(
                "the server does not allow this method on the requested resource ({method} {path})"
            ),
        )
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    /// 415 for a body encoding we do not decode.
    pub fn unsupported_media(content_type: &str, why: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format ({content_type}): {why}"),
        )
    }

    /// 413 for a body over the limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    }

    /// 404 `pods "x" not found`, with details naming the object.
    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        Self::about(
            StatusCode::NOT_FOUND,
            "NotFound",
            group,
            plural,
            name,
            "not found",
        )
    }

    /// 409 `pods "x" already exists`.
    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        Self::about(
            StatusCode::CONFLICT,
            "AlreadyExists",
            group,
            plural,
            name,
            "already exists",
        )
    }

    /// 409 Conflict on a stale resourceVersion, in Kubernetes' words.
    pub fn conflict(group: &str, plural: &str, name: &str) -> Self {
        let mut e = Self::about(StatusCode::CONFLICT, "Conflict", group, plural, name, "");
        e.message = format!(
            "Operation cannot be fulfilled on {} {name:?}: the object has been modified; please apply your changes to the latest version and try again",
            group_resource(group, plural)
        );
        e
    }

    /// 410 Gone: the resourceVersion asked for is compacted.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, "Expired", message)
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    /// 422 Invalid with one cause per `(field, reason, message)`, in Kubernetes' form
    /// `Deployment.apps "web" is invalid: spec.selector: Required value`.
    pub fn invalid(group_kind: &str, kind: &str, name: &str, causes: &[FieldCause]) -> Self {
        let texts: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let joined = match texts.len() {
            1 => texts[0].clone(),
            _ => format!("[{}]", texts.join(", ")),
        };
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{group_kind} {name:?} is invalid: {joined}"),
        );
        let group = group_kind.split_once('.').map_or("", |(_, g)| g);
        e.details = Some(json!({
            "name": name,
            "group": group,
            "kind": kind,
            "causes": causes.iter().map(|c| json!({
                "reason": c.reason, "message": c.message, "field": c.field,
            })).collect::<Vec<_>>(),
        }));
        e
    }

    fn about(
        code: StatusCode,
        reason: &'static str,
        group: &str,
        plural: &str,
        name: &str,
        what: &str,
    ) -> Self {
        let mut e = Self::new(
            code,
            reason,
            format!("{} {name:?} {what}", group_resource(group, plural)),
        );
        e.details = Some(json!({"name": name, "group": group, "kind": plural}));
        e
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }

    /// The answer; a `details.retryAfterSeconds` also goes out as `Retry-After`.
    pub fn into_response(self) -> Response<ResponseBody> {
        let retry_after = self
            .details
            .as_ref()
            .and_then(|d| d["retryAfterSeconds"].as_u64());
        let mut response = json_response(self.code, Bytes::from(self.to_status().to_string()));
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
        }
        response
    }
}

/// One field error of a 422 Invalid answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldCause {
    /// `spec.selector`.
    pub field: String,
    /// `FieldValueRequired`, `FieldValueInvalid`, …
    pub reason: &'static str,
    /// `Required value`, `Invalid value: "x": …`.
    pub message: String,
}

impl FieldCause {
    pub fn required(field: &str) -> Self {
        FieldCause {
            field: field.to_owned(),
            reason: "FieldValueRequired",
            message: "Required value".to_owned(),
        }
    }

    /// `Forbidden: <detail>`.
    pub fn forbidden(field: &str, detail: &str) -> Self {
        FieldCause {
            field: field.to_owned(),
            reason: "FieldValueForbidden",
            message: format!("Forbidden: {detail}"),
        }
    }

    /// `Unsupported value: "x": supported values: "a", "b"`.
    pub fn not_supported(field: &str, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        FieldCause {
            field: field.to_owned(),
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {value:?}: supported values: {}",
                list.join(", ")
            ),
        }
    }

    /// `Duplicate value: "x"` (a string value, quoted as Go prints it).
    pub fn duplicate(field: &str, value: &str) -> Self {
        FieldCause {
            field: field.to_owned(),
            reason: "FieldValueDuplicate",
            message: format!("Duplicate value: {value:?}"),
        }
    }

    /// `Not found: "x"`: a reference to something that does not exist.
    pub fn not_found(field: &str, value: &str) -> Self {
        FieldCause {
            field: field.to_owned(),
            reason: "FieldValueNotFound",
            message: format!("Not found: {value:?}"),
        }
    }

    pub fn invalid(field: &str, value: &str, why: &str) -> Self {
        FieldCause {
            field: field.to_owned(),
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {value}: {why}"),
        }
    }
}

fn group_resource(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_owned()
    } else {
        format!("{plural}.{group}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_objects_carry_code_reason_and_message() {
        let status = ApiError::no_route("/apis/nope").to_status();
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["code"], 404);
        assert_eq!(status["reason"], "NotFound");
        assert!(status["message"].as_str().unwrap().contains("/apis/nope"));
    }

    #[test]
    fn object_errors_read_as_kubernetes_writes_them() {
        assert_eq!(
            ApiError::not_found("", "pods", "x").message,
            "pods \"x\" not found"
        );
        assert_eq!(
            ApiError::conflict("apps", "deployments", "web").message,
            "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again"
        );
        let e = ApiError::invalid(
            "Deployment.apps",
            "Deployment",
            "web",
            &[FieldCause::required("spec.selector")],
        );
        assert_eq!(
            e.message,
            "Deployment.apps \"web\" is invalid: spec.selector: Required value"
        );
        assert_eq!(
            e.to_status()["details"]["causes"][0]["field"],
            "spec.selector"
        );
    }
}
