//! Routes one request to its handler: public endpoints (`/version`, `health`), discovery, the
//! OpenAPI documents (`openapi`), and the resources of the kinds table (`api`). Every other
//! path is a 404 `Status`; every non-public path needs an identity (`authn`; 401 otherwise).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use serde_json::json;

use crate::api::{self, ApiState};
use crate::audit;
use crate::authn::{self, Authenticated, Identity};
use crate::discovery;
use crate::http_util::{ok_json, typed_response, ResponseBody};
use crate::kinds;
use crate::server_metrics::RequestInfo;
use crate::status::ApiError;

/// The Kubernetes minor version we report: kubectl's dispatcher picks its 1.32 client by it.
pub const KUBERNETES_MINOR: &str = "32";

/// What every request needs to know about the server.
pub struct ServerInfo {
    /// `host:port` clients reach us at, for `/api`'s serverAddressByClientCIDRs.
    pub address: String,
}

/// Answers one request; `certificate` is the identity of the connection's client certificate.
/// Counted and timed in the request metrics.
pub async fn route<B>(
    state: &Arc<ApiState>,
    certificate: Option<&Identity>,
    request: Request<B>,
) -> Response<ResponseBody>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let started = Instant::now();
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let info = RequestInfo::of(
        request.method(),
        request.uri().path(),
        request.uri().query().unwrap_or(""),
        content_type,
    );
    let inflight = state.server_metrics.start(request.method());
    let response = answer(state, certificate, request).await;
    drop(inflight);
    state
        .server_metrics
        .observe(info, response.status().as_u16(), started.elapsed());
    response
}

async fn answer<B>(
    state: &Arc<ApiState>,
    certificate: Option<&Identity>,
    mut request: Request<B>,
) -> Response<ResponseBody>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = request.uri().path().to_owned();
    let answered = match crate::health::parse(&path) {
        Some((endpoint, None)) => {
            let query = request.uri().query().unwrap_or("");
            Some(crate::health::endpoint(state.store.as_ref(), endpoint, query).await)
        }
        _ => public(&path),
    };
    if let Some(response) = answered {
        return audit_public(state, certificate, &request, response).await;
    }
    let identity = match authenticate(state, certificate, &request).await {
        Authenticated::Yes(identity) => identity,
        Authenticated::No => {
            let refused = ApiError::unauthorized().into_response();
            return audit::unauthenticated(state.auditor.as_deref(), &request, refused).await;
        }
    };
    let Some(auditor) = &state.auditor else {
        return authenticated(state, identity, request).await;
    };
    let Some(context) = auditor.begin(Some(&identity), &request) else {
        return authenticated(state, identity, request).await;
    };
    request.extensions_mut().insert(Arc::clone(&context));
    let long_running =
        audit::long_running(request.method(), &path, request.uri().query().unwrap_or(""));
    let response = authenticated(state, identity, request).await;
    audit::finish(context, long_running, response).await
}

/// Who sent `request` (its client certificate, else its bearer token).
async fn authenticate<B>(
    state: &ApiState,
    certificate: Option<&Identity>,
    request: &Request<B>,
) -> Authenticated {
    authn::authenticate(
        certificate,
        request.headers(),
        &state.tokens,
        state.service_accounts.as_deref(),
        state.store.as_ref(),
    )
    .await
}

/// The answer of a public endpoint, audited (when auditing is on) as the caller's if its
/// credentials are good, else as kube's anonymous user: anyone may read these, so bad or no
/// credentials change nothing else.
async fn audit_public<B>(
    state: &Arc<ApiState>,
    certificate: Option<&Identity>,
    request: &Request<B>,
    response: Response<ResponseBody>,
) -> Response<ResponseBody> {
    let Some(auditor) = &state.auditor else {
        return response;
    };
    let identity = match authenticate(state, certificate, request).await {
        Authenticated::Yes(identity) => identity,
        Authenticated::No => Identity {
            user: "system:anonymous".to_owned(),
            uid: String::new(),
            groups: vec!["system:unauthenticated".to_owned()],
            extra: std::collections::BTreeMap::new(),
        },
    };
    match auditor.begin(Some(&identity), request) {
        Some(context) => audit::finish(context, false, response).await,
        None => response,
    }
}

/// Answers a request whose caller is known: rate limits, impersonation, then the endpoint.
async fn authenticated<B>(
    state: &Arc<ApiState>,
    identity: Identity,
    request: Request<B>,
) -> Response<ResponseBody>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = request.uri().path().to_owned();
    let health = crate::health::parse(&path);
    if !identity.is_admin() {
        if let Err(e) = state.limits.request(&identity.user) {
            return e.into_response();
        }
    }
    let requester = identity.user.clone();
    let identity = match api::impersonation::apply(state, identity, request.headers()).await {
        Ok(identity) => identity,
        Err(e) => return e.into_response(),
    };
    if identity.user != requester {
        if let Some(context) = request.extensions().get::<Arc<audit::AuditContext>>() {
            context.impersonating(&identity);
        }
    }
    if let Some((endpoint, Some(check))) = health {
        if let Err(e) = api::authorize_path(state, &identity, &path).await {
            return e.into_response();
        }
        return crate::health::single(state.store.as_ref(), endpoint, check).await;
    }
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if request.method() == Method::GET {
        if let Some(response) = discovery_route(&state.info, &path, accept)
            .or_else(|| crate::openapi::respond(&path, accept))
        {
            return response;
        }
    }
    if api::delegated_review::handles(&path) {
        return api::delegated_review::handle(state, &identity, request).await;
    }
    if let Some(response) = api::self_subject_review::handle(&identity, request.method(), &path) {
        return response;
    }
    if path.starts_with(&format!("/apis/{}/", api::access_review::GROUP)) {
        if let Some(response) = api::access_review::handle(state, &identity, request).await {
            return response;
        }
        return ApiError::no_route(&path).into_response();
    }
    let query = request.uri().query().unwrap_or("").to_owned();
    if let Some(response) =
        api::component_status::handle(state, &identity, request.method(), &path, &query, accept)
            .await
    {
        return response;
    }
    if let Some(response) =
        crate::metrics::api::handle(state, &identity, request.method(), &path, &query).await
    {
        return response;
    }
    if let Some(response) =
        api::metrics_scrape::handle(state, &identity, request.method(), &path).await
    {
        return response;
    }
    api::handle(state, &identity, request)
        .await
        .unwrap_or_else(|| ApiError::no_route(&path).into_response())
}

/// Endpoints anyone may read (Kubernetes' system:public-info-viewer).
fn public(path: &str) -> Option<Response<ResponseBody>> {
    match path {
        "/version" => Some(ok_json(&json!({
            "major": "1",
            "minor": KUBERNETES_MINOR,
            "gitVersion": format!("v1.{KUBERNETES_MINOR}.0"),
            "gitCommit": "bosun",
            "gitTreeState": "clean",
            "buildDate": "1970-01-01T00:00:00Z",
            "goVersion": concat!("bosun-control ", env!("CARGO_PKG_VERSION")),
            "compiler": "rustc",
            "platform": "linux/amd64",
        }))),
        _ => None,
    }
}

fn discovery_route(info: &ServerInfo, path: &str, accept: &str) -> Option<Response<ResponseBody>> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let aggregated = discovery::wants_aggregated(accept);
    match segments[..] {
        ["api"] if aggregated => Some(aggregated_response(true)),
        ["api"] => Some(ok_json(&with_kind(
            discovery::api_versions(&info.address),
            "APIVersions",
            None,
        ))),
        ["apis"] if aggregated => Some(aggregated_response(false)),
        ["apis"] => Some(ok_json(&with_kind(
            discovery::api_group_list(),
            "APIGroupList",
            Some("v1"),
        ))),
        ["api", "v1"] => resource_list("", "v1"),
        ["apis", crate::metrics::api::GROUP] => Some(ok_json(&with_kind(
            discovery::metrics_group(),
            "APIGroup",
            Some("v1"),
        ))),
        ["apis", group] if discovery::review_group(group).is_some() => {
            discovery::review_group(group).map(|g| ok_json(&with_kind(g, "APIGroup", Some("v1"))))
        }
        ["apis", group] => kinds::groups()
            .iter()
            .find(|g| g.name == group)
            .map(|g| ok_json(&with_kind(discovery::api_group(g), "APIGroup", Some("v1")))),
        ["apis", group, version] => resource_list(group, version),
        _ => None,
    }
}

fn resource_list(group: &str, version: &str) -> Option<Response<ResponseBody>> {
    discovery::api_resource_list(group, version)
        .map(|list| ok_json(&with_kind(list, "APIResourceList", Some("v1"))))
}

fn aggregated_response(core: bool) -> Response<ResponseBody> {
    typed_response(
        StatusCode::OK,
        discovery::AGGREGATED_V2,
        Bytes::from(discovery::aggregated(core).to_string()),
    )
}

/// Discovery documents carry `kind` (and `apiVersion` except `APIVersions`).
fn with_kind(
    value: impl serde::Serialize,
    kind: &str,
    api_version: Option<&str>,
) -> serde_json::Value {
    let mut out = serde_json::to_value(value).unwrap_or_default();
    out["kind"] = json!(kind);
    if let Some(v) = api_version {
        out["apiVersion"] = json!(v);
    }
    out
}
