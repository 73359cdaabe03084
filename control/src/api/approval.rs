//! PUT of a CertificateSigningRequest's `approval`: the conditions an approver sets
//! (`kubectl certificate approve|deny`), compare-and-swap on the resourceVersion, and the
//! signing that follows an approval (`csr::apply_approval`). Only the conditions change.

use http::{Response, StatusCode};

use super::update::{current, write};
use super::{decode_stored, meta, object_response, validate, Call};
use crate::csr;
use crate::http_util::ResponseBody;
use crate::status::ApiError;

pub async fn update(call: &Call, body: &[u8]) -> Result<Response<ResponseBody>, ApiError> {
    let resource = call.resource();
    let name = call.path.name.clone().unwrap_or_default();
    let key = call.path.key().unwrap_or_default();
    let (object, warnings) = validate::decode_checked(
        &call.content_type,
        body,
        resource,
        call.query.field_validation,
    )?;
    match object["metadata"]["name"].as_str() {
        None | Some("") => {}
        Some(n) if n == name => {}
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )))
        }
    }
    let stored = current(call, &key, &name).await?;
    let expected = match object["metadata"]["resourceVersion"].as_str() {
        None | Some("") => stored.mod_revision,
        Some(rv) => rv
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
    };
    if expected != stored.mod_revision {
        return Err(ApiError::conflict(resource.group, resource.plural, &name));
    }
    let old = decode_stored(&stored)?;
    let new = csr::apply_approval(&old, &object, call.state.ca.as_deref(), &meta::now())?;
    let written = write(call, &key, &name, expected, &old, new).await?;
    Ok(object_response(StatusCode::OK, &written, &warnings))
}
