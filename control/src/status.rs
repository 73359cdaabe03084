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

    /// 404 for a path no resource is served at.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("the server could not find the requested resource (path {path})"),
        )
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

    pub fn into_response(self) -> Response<ResponseBody> {
        json_response(self.code, Bytes::from(self.to_status().to_string()))
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
}
