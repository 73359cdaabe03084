//! Response bodies and helpers shared by every handler.

use std::convert::Infallible;

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};

/// Every response body: a full buffer now, a stream for watches.
pub type ResponseBody = BoxBody<Bytes, Infallible>;

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into()).boxed()
}

/// A JSON response with `code`.
pub fn json_response(code: StatusCode, body: Bytes) -> Response<ResponseBody> {
    typed_response(code, "application/json", body)
}

/// A response with `code`, `content_type` and `body`.
pub fn typed_response(code: StatusCode, content_type: &str, body: Bytes) -> Response<ResponseBody> {
    let mut response = Response::new(full(body));
    *response.status_mut() = code;
    if let Ok(value) = header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

/// 200 with `value` serialised as JSON.
pub fn ok_json(value: &impl serde::Serialize) -> Response<ResponseBody> {
    match serde_json::to_vec(value) {
        Ok(bytes) => json_response(StatusCode::OK, Bytes::from(bytes)),
        Err(e) => crate::status::ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("encoding the response: {e}"),
        )
        .into_response(),
    }
}

/// A request's `Content-Type` (empty when missing or not text).
pub fn content_type_of(headers: &http::HeaderMap) -> String {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}
