//! Delegated authentication and authorization, as kube-apiserver serves them to other
//! servers (metrics-server, kube-rbac-proxy, Vault's Kubernetes auth): a TokenReview
//! (`authentication.k8s.io/v1`) says who a bearer token is — for a service-account token, for
//! the audiences asked (else the API's) —, a SubjectAccessReview (`authorization.k8s.io/v1`,
//! or a LocalSubjectAccessReview in a namespace) whether a given user and groups may do
//! something, as the authorizer decides for their own requests. The caller needs `create` on
//! the review (administrators, or RBAC: kube's `system:auth-delegator` role). Nothing is
//! stored.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use serde_json::{json, Value};

use super::access_review::{access, invalid};
use super::{read_body, validate, ApiState};
use crate::authn::{self, Authenticated, Identity};
use crate::authz::rbac::Request;
use crate::http_util::{json_response, ResponseBody};
use crate::status::{ApiError, FieldCause};

pub const AUTHENTICATION: &str = "authentication.k8s.io";
pub const AUTHORIZATION: &str = "authorization.k8s.io";
pub const VERSION: &str = "v1";
/// (kind, plural) of each.
pub const TOKEN: (&str, &str) = ("TokenReview", "tokenreviews");
pub const SUBJECT: (&str, &str) = ("SubjectAccessReview", "subjectaccessreviews");
pub const LOCAL: (&str, &str) = ("LocalSubjectAccessReview", "localsubjectaccessreviews");

/// Which review a path asks for: (group, kind, plural, namespace of a local review).
/// (Asked of every request's path by the router: it allocates nothing.)
fn review_of(path: &str) -> Option<(&'static str, (&'static str, &'static str), Option<&str>)> {
    let group_version = |group: &str| {
        path.strip_prefix("/apis/")?
            .strip_prefix(group)?
            .strip_prefix('/')?
            .strip_prefix(VERSION)?
            .strip_prefix('/')
    };
    if group_version(AUTHENTICATION) == Some(TOKEN.1) {
        return Some((AUTHENTICATION, TOKEN, None));
    }
    let rest = group_version(AUTHORIZATION)?;
    if rest == SUBJECT.1 {
        return Some((AUTHORIZATION, SUBJECT, None));
    }
    let (namespace, plural) = rest.strip_prefix("namespaces/")?.split_once('/')?;
    (plural == LOCAL.1 && !namespace.is_empty()).then_some((AUTHORIZATION, LOCAL, Some(namespace)))
}

/// Whether `path` is one of these reviews.
pub fn handles(path: &str) -> bool {
    review_of(path.trim_end_matches('/')).is_some()
}

/// Answers a review `POST`.
pub async fn handle<B>(
    state: &Arc<ApiState>,
    caller: &Identity,
    request: http::Request<B>,
) -> Response<ResponseBody>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let Some((group, (kind, plural), namespace)) = review_of(&path) else {
        return ApiError::no_route(&path).into_response();
    };
    if request.method() != Method::POST {
        return ApiError::method_not_allowed(request.method(), &path).into_response();
    }
    let content_type = crate::http_util::content_type_of(request.headers());
    let answered = async {
        may_create(state, caller, group, plural, namespace).await?;
        let body = read_body(request.into_body()).await?;
        let review = validate::decode_body(&content_type, &body)?.object;
        let spec = &review["spec"];
        let status = match kind {
            "TokenReview" => token(state, spec).await,
            _ => subject(state, kind, spec, namespace).await?,
        };
        Ok::<_, ApiError>(
            json!({"kind": kind, "apiVersion": format!("{group}/{VERSION}"),
            "metadata": {"creationTimestamp": null}, "spec": spec, "status": status}),
        )
    };
    match answered.await {
        Ok(review) => json_response(
            StatusCode::CREATED,
            serde_json::to_vec(&review).unwrap_or_default().into(),
        ),
        Err(e) => e.into_response(),
    }
}

/// The caller may create the review: an administrator, or as RBAC grants.
async fn may_create(
    state: &ApiState,
    caller: &Identity,
    group: &str,
    plural: &str,
    namespace: Option<&str>,
) -> Result<(), ApiError> {
    if caller.is_admin() {
        return Ok(());
    }
    let policy = state.rbac.policy(&state.store).await?;
    let request = Request::Resource {
        verb: "create",
        group,
        resource: plural,
        subresource: None,
        namespace,
        name: None,
    };
    if policy.allows(caller, &request) {
        return Ok(());
    }
    let scope = match namespace {
        Some(ns) => format!("in the namespace {ns:?}"),
        None => "at the cluster scope".to_owned(),
    };
    Err(ApiError::forbidden(format!(
        "{plural}.{group} is forbidden: User {:?} cannot create resource {plural:?} in API group {group:?} {scope}",
        caller.user
    )))
}

/// The status of a TokenReview.
async fn token(state: &ApiState, spec: &Value) -> Value {
    let token = spec["token"].as_str().unwrap_or("");
    let asked: Vec<String> = spec["audiences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect();
    let refused = |why: &str| json!({"user": {}, "error": why});
    let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) else {
        return refused("invalid bearer token");
    };
    let api_audiences: Vec<String> = state
        .service_accounts
        .as_ref()
        .map(|s| s.api_audiences.clone())
        .unwrap_or_default();
    let wanted = if asked.is_empty() {
        api_audiences.clone()
    } else {
        asked
    };
    let identity = match state.service_accounts.as_deref() {
        Some(issuer) if authn::sa_key::looks_like_jwt(token) => {
            issuer
                .authenticate_for(state.store.as_ref(), token, &wanted)
                .await
        }
        _ => {
            let mut headers = HeaderMap::new();
            headers.insert(http::header::AUTHORIZATION, value);
            let found =
                authn::authenticate(None, &headers, &state.tokens, None, state.store.as_ref())
                    .await;
            match found {
                // Tokens that carry no audience are good for the API's own.
                Authenticated::Yes(id) => {
                    let usable: Vec<String> = wanted
                        .iter()
                        .filter(|a| api_audiences.contains(a))
                        .cloned()
                        .collect();
                    (!usable.is_empty() || api_audiences.is_empty()).then_some((id, usable))
                }
                Authenticated::No => None,
            }
        }
    };
    match identity {
        Some((id, audiences)) => {
            let user = &super::self_subject_review::review(&id)["status"]["userInfo"];
            json!({"authenticated": true, "user": user, "audiences": audiences})
        }
        None => refused("invalid bearer token"),
    }
}

/// The status of a (Local)SubjectAccessReview of the identity its spec names.
async fn subject(
    state: &Arc<ApiState>,
    kind: &str,
    spec: &Value,
    namespace: Option<&str>,
) -> Result<Value, ApiError> {
    let user = spec["user"].as_str().unwrap_or("");
    let groups: Vec<String> = spec["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g.as_str().map(str::to_owned))
        .collect();
    if user.is_empty() && groups.is_empty() {
        return Err(invalid(
            kind,
            FieldCause::invalid(
                "spec.user",
                "\"\"",
                "at least one of user or group must be specified",
            ),
        ));
    }
    if let Some(namespace) = namespace {
        let asked = spec["resourceAttributes"]["namespace"]
            .as_str()
            .unwrap_or("");
        if !spec["nonResourceAttributes"].is_null() {
            return Err(invalid(
                kind,
                FieldCause::invalid(
                    "spec.nonResourceAttributes",
                    "",
                    "disallowed on this kind of request",
                ),
            ));
        }
        if asked != namespace {
            return Err(invalid(
                kind,
                FieldCause::invalid(
                    "spec.resourceAttributes.namespace",
                    &format!("{asked:?}"),
                    "must match metadata.namespace",
                ),
            ));
        }
    }
    let extra = spec["extra"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let values = v
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect();
            (k.clone(), values)
        })
        .collect();
    let subject = Identity {
        user: user.to_owned(),
        uid: spec["uid"].as_str().unwrap_or("").to_owned(),
        groups,
        extra,
    };
    access(state, &subject, spec).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_paths_are_recognised_and_nothing_else() {
        assert_eq!(
            review_of("/apis/authentication.k8s.io/v1/tokenreviews"),
            Some((AUTHENTICATION, TOKEN, None))
        );
        assert_eq!(
            review_of("/apis/authorization.k8s.io/v1/subjectaccessreviews"),
            Some((AUTHORIZATION, SUBJECT, None))
        );
        assert_eq!(
            review_of("/apis/authorization.k8s.io/v1/namespaces/a/localsubjectaccessreviews"),
            Some((AUTHORIZATION, LOCAL, Some("a")))
        );
        for other in [
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            "/apis/authentication.k8s.io/v1beta1/tokenreviews",
            "/apis/authorization.k8s.io/v1/tokenreviews",
            "/apis/authentication.k8s.io/v1/subjectaccessreviews",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            "/apis/authorization.k8s.io/v1/namespaces//localsubjectaccessreviews",
            "/apis/authorization.k8s.io/v1/namespaces/a/subjectaccessreviews",
            "/api/v1/namespaces/default/configmaps",
        ] {
            assert_eq!(review_of(other), None, "{other}");
        }
        assert!(handles("/apis/authentication.k8s.io/v1/tokenreviews/"));
    }
}
