//! `serviceaccounts/<name>/token`: a POST of an authentication.k8s.io/v1 `TokenRequest`
//! (JSON or protobuf — `kubectl create token` sends protobuf) answers the request with
//! `status.token`, a JWT signed by the server's service-account key (`authn::service_account`),
//! and `status.expirationTimestamp`, as kube-apiserver's TokenRequest REST does:
//! - `spec.audiences` empty → the API server's audiences; `spec.expirationSeconds` defaults to
//!   3600 and may not be under 600 or above 2^32 (kube's texts);
//! - the ServiceAccount must exist (404 `serviceaccounts "x" not found`);
//! - `spec.boundObjectRef` may name a Pod (of the request's namespace) running as this
//!   ServiceAccount, whose uid, when given, matches (409 otherwise); the token then carries the
//!   pod's name and uid and stops authenticating once the pod is gone. Other kinds (Secret,
//!   Node) are refused by name.

use http::{Response, StatusCode};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;

use super::validate::decode_body;
use super::{decode_stored, object_response, Call};
use crate::api::path::object_key;
use crate::authn::service_account::{pod_service_account, user_name, Claims, Private, Ref};
use crate::http_util::ResponseBody;
use crate::kinds;
use crate::status::{ApiError, FieldCause};

/// kube's default token lifetime.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// kube's shortest token lifetime (10 minutes).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// kube's longest token lifetime (2^32 s).
pub const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

const GROUP_KIND: &str = "TokenRequest.authentication.k8s.io";

/// What a TokenRequest asks for, checked.
#[derive(Debug, PartialEq, Eq)]
pub struct Spec {
    pub audiences: Vec<String>,
    pub expiration_seconds: i64,
    /// The bound pod's name and uid (empty: any).
    pub pod: Option<(String, String)>,
}

/// Reads and validates the request's spec (`api_audiences` fill empty audiences).
pub fn parse_spec(request: &Value, name: &str, api_audiences: &[String]) -> Result<Spec, ApiError> {
    let api_version = request["apiVersion"].as_str().unwrap_or("");
    let kind = request["kind"].as_str().unwrap_or("");
    if !matches!(api_version, "" | "authentication.k8s.io/v1")
        || !matches!(kind, "" | "TokenRequest")
    {
        return Err(ApiError::bad_request(format!(
            "the body is a {api_version} {kind}, not an authentication.k8s.io/v1 TokenRequest"
        )));
    }
    let spec = &request["spec"];
    let invalid = |cause: FieldCause| ApiError::invalid(GROUP_KIND, "TokenRequest", name, &[cause]);
    let mut audiences = Vec::new();
    for (i, a) in spec["audiences"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        match a.as_str() {
            Some(a) => audiences.push(a.to_owned()),
            None => {
                return Err(invalid(FieldCause::invalid(
                    &format!("spec.audiences[{i}]"),
                    &a.to_string(),
                    "must be a string",
                )))
            }
        }
    }
    if audiences.is_empty() {
        audiences = api_audiences.to_vec();
    }
    let seconds = match &spec["expirationSeconds"] {
        Value::Null => DEFAULT_EXPIRATION_SECONDS,
        v => v.as_i64().ok_or_else(|| {
            invalid(FieldCause::invalid(
                "spec.expirationSeconds",
                &v.to_string(),
                "must be an integer",
            ))
        })?,
    };
    if seconds < MIN_EXPIRATION_SECONDS {
        return Err(invalid(FieldCause::invalid(
            "spec.expirationSeconds",
            &seconds.to_string(),
            "may not specify a duration less than 10 minutes",
        )));
    }
    if seconds > MAX_EXPIRATION_SECONDS {
        return Err(invalid(FieldCause::invalid(
            "spec.expirationSeconds",
            &seconds.to_string(),
            "may not specify a duration larger than 2^32 seconds",
        )));
    }
    let pod = match &spec["boundObjectRef"] {
        Value::Null => None,
        r => {
            let kind = r["kind"].as_str().unwrap_or("");
            let api_version = r["apiVersion"].as_str().unwrap_or("");
            if kind != "Pod" || !matches!(api_version, "" | "v1") {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token to object of type {api_version}, Kind={kind}: bosun binds tokens to Pods only"
                )));
            }
            let pod_name = r["name"].as_str().unwrap_or("");
            if pod_name.is_empty() {
                return Err(invalid(FieldCause::required("spec.boundObjectRef.name")));
            }
            let uid = r["uid"].as_str().unwrap_or("").to_owned();
            Some((pod_name.to_owned(), uid))
        }
    };
    Ok(Spec {
        audiences,
        expiration_seconds: seconds,
        pod,
    })
}

pub async fn create(call: &Call, body: &[u8]) -> Result<Response<ResponseBody>, ApiError> {
    let issuer = call
        .state
        .service_accounts
        .clone()
        .ok_or_else(|| ApiError::internal("this server has no service-account signing key"))?;
    let name = call.path.name.clone().unwrap_or_default();
    let namespace = call.path.namespace.clone().unwrap_or_default();
    let request = decode_body(&call.content_type, body)?.object;
    let spec = parse_spec(&request, &name, &issuer.api_audiences)?;
    let stored = |plural: &'static str, object: String| {
        let store = &call.state.store;
        let namespace = &namespace;
        async move {
            let resource = kinds::find("", "v1", plural)
                .ok_or_else(|| ApiError::internal(format!("the kinds table has no {plural}")))?;
            let key = object_key(resource, Some(namespace), &object);
            match store
                .get(&key)
                .await
                .map_err(|e| call.store_error(&object, e))?
            {
                Some(kv) => decode_stored(&kv),
                None => Err(ApiError::not_found("", plural, &object)),
            }
        }
    };
    let account = stored("serviceaccounts", name.clone()).await?;
    let account_uid = account["metadata"]["uid"].as_str().unwrap_or("").to_owned();
    let mut pod_ref = None;
    if let Some((pod_name, uid)) = &spec.pod {
        let pod = stored("pods", pod_name.clone()).await?;
        let runs_as = pod_service_account(&pod);
        if runs_as != name {
            return Err(ApiError::bad_request(format!(
                "cannot bind token for serviceaccount {name:?} to pod running with serviceaccount {runs_as:?}"
            )));
        }
        let pod_uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_owned();
        if !uid.is_empty() && *uid != pod_uid {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "Conflict",
                format!("Operation cannot be fulfilled on Pod {pod_name:?}: the UID in the bound object reference ({uid}) does not match the UID in record. The object might have been deleted and then recreated"),
            ));
        }
        pod_ref = Some(Ref {
            name: pod_name.clone(),
            uid: pod_uid,
        });
    }
    let now = time::OffsetDateTime::now_utc();
    // The status says what was asked; a pod's 3607 s token may live longer (kube's extended
    // expiration), warning after the asked time.
    let exp = now + time::Duration::seconds(spec.expiration_seconds);
    let (lifetime, warn_after) = issuer.lifetime(spec.expiration_seconds, pod_ref.is_some());
    let claims = Claims {
        iss: String::new(),
        sub: user_name(&namespace, &name),
        aud: spec.audiences.clone(),
        exp: (now + time::Duration::seconds(lifetime)).unix_timestamp(),
        iat: now.unix_timestamp(),
        nbf: now.unix_timestamp(),
        jti: uuid::Uuid::new_v4().to_string(),
        kubernetes: Private {
            namespace: namespace.clone(),
            serviceaccount: Ref {
                name: name.clone(),
                uid: account_uid,
            },
            pod: pod_ref.clone(),
            warnafter: warn_after.map(|s| (now + time::Duration::seconds(s)).unix_timestamp()),
        },
    };
    let token = issuer
        .sign(claims)
        .map_err(|e| ApiError::internal(format!("signing the token: {e}")))?;
    let mut spec_out = json!({
        "audiences": spec.audiences,
        "expirationSeconds": spec.expiration_seconds,
    });
    if let Some(pod) = &pod_ref {
        spec_out["boundObjectRef"] =
            json!({"kind": "Pod", "apiVersion": "v1", "name": pod.name, "uid": pod.uid});
    }
    let expiration = exp
        .replace_nanosecond(0)
        .unwrap_or(exp)
        .format(&Rfc3339)
        .map_err(|e| ApiError::internal(format!("formatting the expiration: {e}")))?;
    let answer = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": null},
        "spec": spec_out,
        "status": {"token": token, "expirationTimestamp": expiration},
    });
    Ok(object_response(StatusCode::CREATED, &answer, &[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api() -> Vec<String> {
        vec!["https://kubernetes.default.svc.cluster.local".to_owned()]
    }

    #[test]
    fn specs_get_kubes_defaults_and_limits() {
        let spec = parse_spec(&json!({"spec": {}}), "default", &api()).unwrap();
        assert_eq!(spec.audiences, api());
        assert_eq!(spec.expiration_seconds, 3600);
        assert_eq!(spec.pod, None);
        let spec = parse_spec(
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"audiences": ["a"], "expirationSeconds": 1200,
                "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "u"}}}),
            "default",
            &api(),
        )
        .unwrap();
        assert_eq!(spec.audiences, ["a"]);
        assert_eq!(spec.expiration_seconds, 1200);
        assert_eq!(spec.pod, Some(("p".into(), "u".into())));
        let e = parse_spec(&json!({"spec": {"expirationSeconds": 599}}), "sa", &api()).unwrap_err();
        assert_eq!(e.message, "TokenRequest.authentication.k8s.io \"sa\" is invalid: spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 10 minutes");
        assert!(parse_spec(
            &json!({"spec": {"expirationSeconds": (1i64 << 32) + 1}}),
            "sa",
            &api()
        )
        .is_err());
        let e = parse_spec(
            &json!({"spec": {"boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": "s"}}}),
            "sa",
            &api(),
        )
        .unwrap_err();
        assert!(e.message.contains("Kind=Secret"), "{}", e.message);
        assert!(parse_spec(&json!({"kind": "Pod", "spec": {}}), "sa", &api()).is_err());
    }
}
