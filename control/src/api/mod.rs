//! The generic resource handler: one handler serves get, list, watch, create, update, patch and
//! delete for every resource of the kinds table (STYLE.md "a registry per kind, one generic
//! handler"). This module owns the dispatch by verb, the query parameters, request bodies and
//! the mapping of store errors to `Status` answers; each verb lives in its own module. What
//! differs per kind is read from `kinds` and `validate`, never branched on here.

pub(crate) mod access_review;
pub mod admission_policy;
pub mod admission_webhook;
mod apply;
mod approval;
mod binding;
mod call_versions;
pub mod component_status;
mod convert;
mod crd_conversion;
mod create;
mod default_tolerations;
pub mod defaults;
pub mod delegated_review;
pub(crate) mod delete;
mod duplicates;
mod eviction;
mod get;
pub mod impersonation;
pub(crate) mod limit_range;
pub(crate) mod meta;
pub mod metrics_scrape;
mod namespace_cache;
mod namespaces;
mod node_proxy;
mod omit_empty;
pub(crate) mod patch;
pub mod path;
mod pod_ephemeral;
mod pod_exec;
mod pod_grace;
mod pod_log;
mod pod_proxy;
mod pod_qos;
mod pod_security;
mod pod_spec_update;
mod pod_update;
pub(crate) mod priority;
pub(crate) mod query;
pub(crate) mod quota;
mod rbac_cache;
mod rbac_defaults;
mod rbac_escalation;
mod scale;
pub mod selector;
pub mod self_subject_review;
pub(crate) mod service_account_admission;
pub mod service_alloc;
pub(crate) mod store_mirror;
pub mod table_default;
mod token_request;
mod update;
pub(crate) mod validate;
mod validate_ephemeral;
mod validate_hpa;
pub(crate) mod validate_rbac;
mod validate_replication;
mod validate_statefulset;
mod validate_storage;
mod validate_workload;
pub(crate) mod volume_claims;
mod watch;
mod watch_renderings;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;

use crate::authn::{Identity, ServiceAccountTokens, TokenFile};
use crate::authz;
use crate::http_util::{json_response, ResponseBody};
use crate::kinds::Resource;
use crate::limits::{Limits, LimitsConfig};
use crate::pki::Ca;
use crate::router::ServerInfo;
use crate::status::ApiError;
use crate::store::{self, KeyValue, Store};

/// What exists from the start: the built-in namespaces (with their accounts), kube's
/// system PriorityClasses and its bootstrap RBAC roles and bindings.
pub async fn bootstrap(state: &Arc<ApiState>) -> Result<(), store::Error> {
    namespaces::bootstrap(state).await?;
    priority::bootstrap(state).await?;
    rbac_defaults::bootstrap(state).await
}
pub(crate) use patch::merge_tags;
use path::{PathError, ResourcePath};
use query::Query;
pub use rbac_cache::RbacCache;

/// The largest request body accepted (kube-apiserver's limit is 3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// What every API request shares: the store and the server's facts.
pub struct ApiState {
    pub store: Arc<dyn Store>,
    pub info: ServerInfo,
    /// How often a watch asking for bookmarks gets one.
    pub bookmark_interval: Duration,
    /// Static bearer tokens (`--token-auth-file`).
    pub tokens: TokenFile,
    /// Per-client request rate and watch limits.
    pub limits: Limits,
    /// The cluster CA, which signs approved CertificateSigningRequests (`None`: nothing is
    /// signed).
    pub ca: Option<Arc<Ca>>,
    /// Namespaces whose deletion task runs (one task per namespace).
    finalizing: Mutex<HashSet<String>>,
    /// Where Services get their ClusterIPs and node ports.
    pub service_network: service_alloc::ServiceNetwork,
    /// The namespaces, for the create path's existence check without a store read.
    namespace_cache: Arc<namespace_cache::NamespaceCache>,
    /// The PriorityClasses, for a pod's Priority admission without a store read.
    priority_classes: Arc<priority::PriorityClassCache>,
    /// The LimitRanges, for LimitRanger admission without a store read.
    limit_ranges: Arc<store_mirror::ObjectCopy>,
    /// Which namespaces have ResourceQuotas, for quota admission without a store read.
    quotas: Arc<store_mirror::ObjectCopy>,
    /// The RBAC roles and bindings, for the authorizer without a store read.
    rbac: RbacCache,
    /// The ValidatingAdmissionPolicies and their bindings, compiled.
    admission_policies: admission_policy::PolicyCache,
    /// The admission webhooks, compiled.
    admission_webhooks: admission_webhook::WebhookCache,
    /// The pods bound to each node, for the node authorizer.
    pod_index: Arc<authz::PodIndex>,
    /// The client of the nodes' kubelet APIs (`pods/log`); `None`: those requests fail.
    pub kubelet: Option<Arc<crate::kubelet::KubeletClient>>,
    /// `--kubelet-preferred-address-types`.
    pub kubelet_address_types: crate::kubelet::AddressTypes,
    /// The nodes' scraped resource usage (`metrics.k8s.io`, the HPA controller).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The service-account token issuer (`serviceaccounts/token`, JWT authentication);
    /// `None`: token requests fail and no JWT authenticates.
    pub service_accounts: Option<Arc<ServiceAccountTokens>>,
    /// The request metrics of `/metrics`.
    pub server_metrics: crate::server_metrics::ServerMetrics,
    /// The audit policy and log (`--audit-policy-file`, `--audit-log-path`); `None`: no
    /// auditing.
    pub auditor: Option<Arc<crate::audit::Auditor>>,
    /// Watch events' objects rendered once for all the watches showing them alike.
    watch_renderings: watch_renderings::WatchRenderings,
    /// How long a pod tolerates a lost node by default (`default_tolerations`).
    pub default_toleration_seconds: u64,
}

impl ApiState {
    pub fn new(store: Arc<dyn Store>, info: ServerInfo) -> ApiState {
        ApiState {
            store,
            info,
            bookmark_interval: Duration::from_secs(10),
            default_toleration_seconds: 300,
            tokens: TokenFile::default(),
            ca: None,
            limits: Limits::new(LimitsConfig::default()),
            finalizing: Mutex::default(),
            service_network: service_alloc::ServiceNetwork::default(),
            namespace_cache: Arc::default(),
            priority_classes: Arc::default(),
            rbac: RbacCache::default(),
            admission_policies: admission_policy::PolicyCache::default(),
            admission_webhooks: admission_webhook::WebhookCache::default(),
            quotas: Arc::default(),
            limit_ranges: Arc::default(),
            pod_index: Arc::default(),
            kubelet: None,
            kubelet_address_types: crate::kubelet::AddressTypes::default(),
            metrics: Arc::default(),
            server_metrics: Default::default(),
            service_accounts: None,
            auditor: None,
            watch_renderings: Default::default(),
        }
    }
}

/// One request to a resource path, parsed.
pub(crate) struct Call {
    pub state: Arc<ApiState>,
    /// Who is asking.
    pub identity: Identity,
    pub path: ResourcePath,
    pub query: Query,
    pub accept: String,
    pub content_type: String,
    /// The client's `User-Agent` (a write's field manager when it names none).
    pub user_agent: String,
    /// Warnings for the answer's `Warning` headers (admission policies' `Warn` actions).
    pub warnings: std::sync::Mutex<Vec<String>>,
    /// The request's audit, when it is audited.
    pub audit: Option<Arc<crate::audit::AuditContext>>,
}

impl Call {
    pub fn resource(&self) -> &'static Resource {
        self.path.resource
    }

    /// Adds a `Warning` to the answer.
    /// Adds an annotation to the request's audit event, when it is audited.
    pub fn audit_annotate(&self, key: &str, value: &str) {
        if let Some(audit) = &self.audit {
            audit.annotate(key, value);
        }
    }

    pub fn warn(&self, text: String) {
        self.warnings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(text);
    }

    /// Records this write (not an apply) of `old` as `new` in `new`'s managedFields, when the
    /// object has them (`apply::managed::track_update`). The manager is the request's
    /// `fieldManager`, else its User-Agent up to the first `/`, as kube-apiserver names it.
    pub fn track_update(&self, old: &Value, new: &mut Value) {
        if old["metadata"]["managedFields"].is_null() {
            return;
        }
        let manager = match self.query.field_manager.as_deref() {
            Some(m) if !m.is_empty() => m.to_owned(),
            _ => match self.user_agent.split('/').next().unwrap_or("").trim() {
                "" => "unknown".to_owned(),
                agent => agent.chars().take(128).collect(),
            },
        };
        let subresource = self.path.subresource.as_deref().unwrap_or("");
        apply::managed::track_update(old, new, &manager, subresource, self.resource());
    }

    /// 404 for the named object.
    pub fn not_found(&self, name: &str) -> ApiError {
        let r = self.resource();
        ApiError::not_found(r.group, r.plural, name)
    }

    /// Maps a store error on the named object to its `Status`.
    pub fn store_error(&self, name: &str, error: store::Error) -> ApiError {
        let r = self.resource();
        match error {
            store::Error::NotFound { .. } => ApiError::not_found(r.group, r.plural, name),
            store::Error::AlreadyExists { .. } => ApiError::already_exists(r.group, r.plural, name),
            store::Error::Conflict { .. } => ApiError::conflict(r.group, r.plural, name),
            other => map_store_error(other),
        }
    }
}

/// Maps a store error that names no object.
pub(crate) fn map_store_error(error: store::Error) -> ApiError {
    match error {
        store::Error::Compacted { .. } => {
            ApiError::gone(format!("too old resource version: {error}"))
        }
        store::Error::FutureRevision { requested, .. } => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "Timeout",
            format!("Too large resource version: {requested}"),
        ),
        store::Error::InvalidKey { .. } => ApiError::bad_request(error.to_string()),
        store::Error::ValueTooLarge { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            error.to_string(),
        ),
        other => ApiError::internal(other.to_string()),
    }
}

/// Answers a request to a resource path, or `None` when the path addresses no resource (the
/// router then answers 404).
pub async fn handle<B>(
    state: &Arc<ApiState>,
    identity: &Identity,
    mut request: Request<B>,
) -> Option<Response<ResponseBody>>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = match path::parse(request.uri().path()) {
        Ok(path) => path,
        Err(PathError::NoRoute) => return None,
        Err(PathError::NotServed(r)) => return Some(not_served(r).into_response()),
    };
    let header_text = |name| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let query = match Query::parse(request.uri().query().unwrap_or(""), path.resource) {
        Ok(q) => q,
        Err(e) => return Some(e.into_response()),
    };
    let call = Call {
        state: Arc::clone(state),
        identity: identity.clone(),
        accept: header_text(header::ACCEPT),
        content_type: header_text(header::CONTENT_TYPE),
        user_agent: header_text(header::USER_AGENT),
        path,
        query,
        warnings: std::sync::Mutex::default(),
        audit: request
            .extensions()
            .get::<Arc<crate::audit::AuditContext>>()
            .cloned(),
    };
    // Every answer at a deprecated custom version carries its warning, as kube's does.
    let deprecation =
        crate::crd::registry::version_of(call.resource()).and_then(|v| v.deprecation.clone());
    let method = request.method().clone();
    let uri_path = request.uri().path().to_owned();
    let raw_query = request.uri().query().unwrap_or("").to_owned();
    let exec = matches!(call.path.subresource.as_deref(), Some("exec" | "attach"));
    let port_forward = call.path.subresource.as_deref() == Some("portforward");
    let upgrade = match exec || port_forward {
        true => request
            .extensions_mut()
            .remove::<hyper::upgrade::OnUpgrade>(),
        false => None,
    };
    let headers = request.headers().clone();
    let body = match read_body(request.into_body()).await {
        Ok(body) => body,
        Err(e) => return Some(e.into_response()),
    };
    let named = call.path.name.is_some();
    if let Some(audit) = &call.audit {
        audit.request_body(&call.content_type, &body);
    }
    let authorized = authorize(&call, &method, &body).await;
    call.audit_annotate(
        "authorization.k8s.io/decision",
        if authorized.is_ok() {
            "allow"
        } else {
            "forbid"
        },
    );
    if let Err(e) = authorized {
        return Some(e.into_response());
    }
    let status = call.path.subresource.is_some();
    let scale = call.path.subresource.as_deref() == Some("scale");
    let binding = call.path.subresource.as_deref() == Some("binding");
    let approval = call.path.subresource.as_deref() == Some("approval");
    let log = call.path.subresource.as_deref() == Some("log");
    let token = call.path.subresource.as_deref() == Some("token");
    let evict = call.path.subresource.as_deref() == Some("eviction");
    let proxy = call.path.subresource.as_deref() == Some("proxy");
    let result = match (method, named) {
        (
            method @ (Method::GET | Method::POST | Method::PUT | Method::PATCH | Method::DELETE),
            true,
        ) if proxy => {
            let request = node_proxy::ProxyRequest {
                method,
                uri_path: &uri_path,
                raw_query: &raw_query,
                headers: &headers,
                body,
            };
            match call.resource().kind {
                "Node" => node_proxy::forward(&call, request).await,
                _ => pod_proxy::forward(&call, request).await,
            }
        }
        (other, true) if proxy => Err(ApiError::method_not_allowed(&other, &uri_path)),
        (Method::GET, true) if log => pod_log::get(&call, &raw_query).await,
        (other, true) if log => Err(ApiError::method_not_allowed(&other, &uri_path)),
        (Method::GET | Method::POST, true) if exec => {
            pod_exec::connect(&call, &raw_query, &headers, upgrade).await
        }
        (other, true) if exec => Err(ApiError::method_not_allowed(&other, &uri_path)),
        (Method::GET | Method::POST, true) if port_forward => {
            pod_exec::port_forward(&call, &raw_query, &headers, upgrade).await
        }
        (other, true) if port_forward => Err(ApiError::method_not_allowed(&other, &uri_path)),
        (Method::POST, true) if binding => binding::create(&call, &body).await,
        (other, true) if binding => Err(ApiError::method_not_allowed(&other, &uri_path)),
        (Method::POST, true) if token => token_request::create(&call, &body).await,
        (Method::POST, true) if evict => eviction::create(&call, &body).await,
        (other, true) if evict => Err(ApiError::method_not_allowed(&other, &uri_path)),
        (other, true) if token => Err(ApiError::method_not_allowed(&other, &uri_path)),
        (Method::GET, true) if scale => scale::get(&call).await,
        (Method::PUT, true) if scale => scale::update(&call, &body).await,
        (Method::PATCH, true) if is_apply(&call.content_type) => apply::apply(&call, &body).await,
        (Method::PATCH, true) if scale => scale::patch(&call, &body).await,
        (Method::PUT, true) if approval => approval::update(&call, &body).await,
        (Method::GET, true) => get::get(&call).await,
        (Method::GET, false) if call.query.watch => {
            let slot = match call.identity.is_admin() {
                true => None,
                false => match state.limits.watch(&call.identity.user) {
                    Ok(slot) => slot,
                    Err(e) => return Some(e.into_response()),
                },
            };
            return Some(warned(watch::watch(call, slot).await, deprecation));
        }
        (Method::GET, false) => get::list(&call).await,
        (Method::POST, false) if !call.resource().namespaced() || call.path.namespace.is_some() => {
            create::create(&call, &body).await
        }
        (Method::PUT, true) => update::update(&call, &body).await,
        (Method::PATCH, true) if !approval => patch::patch(&call, &body).await,
        (Method::DELETE, true) if !status => delete::delete(&call, &body).await,
        (Method::DELETE, false) if call.resource().verbs().contains(&"deletecollection") => {
            delete::delete_collection(&call, &body).await
        }
        (method, _) => Err(ApiError::method_not_allowed(&method, &uri_path)),
    };
    let mut response = warned(result.unwrap_or_else(ApiError::into_response), deprecation);
    let admitted = std::mem::take(
        &mut *call
            .warnings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    for text in admitted {
        add_warning(&mut response, &text);
    }
    Some(response)
}

/// `response` with a `Warning` header carrying `warning`, if any.
fn warned(mut response: Response<ResponseBody>, warning: Option<String>) -> Response<ResponseBody> {
    if let Some(text) = warning {
        add_warning(&mut response, &text);
    }
    response
}

/// Appends a `Warning: 299 - "text"` header, as kube-apiserver sends warnings.
fn add_warning(response: &mut Response<ResponseBody>, text: &str) {
    let value = format!("299 - {}", serde_json::Value::String(text.to_owned()));
    if let Ok(value) = header::HeaderValue::from_str(&value) {
        response.headers_mut().append(header::WARNING, value);
    }
}

/// Whether a PATCH is a server-side apply.
fn is_apply(content_type: &str) -> bool {
    content_type.split(';').next().unwrap_or("").trim() == apply::CONTENT_TYPE
}

/// Asks `authz` whether the caller may make this request (before anything is read or written
/// for it).
async fn authorize(call: &Call, method: &Method, body: &[u8]) -> Result<(), ApiError> {
    if call.identity.is_admin() {
        return Ok(());
    }
    let named = call.path.name.is_some();
    // Opening a stream into a pod is a create, also by GET (kube's WebSocket upgrade check).
    let connect = matches!(
        call.path.subresource.as_deref(),
        Some("exec" | "attach" | "portforward")
    );
    let verb = match (method, named) {
        (&Method::GET | &Method::POST, true) if connect => "create",
        (&Method::GET, true) => "get",
        (&Method::GET, false) if call.query.watch => "watch",
        (&Method::GET, false) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        // Not a verb of the API: the dispatch answers 405.
        _ => return Ok(()),
    };
    // The object a create names (a body that does not decode is refused by create itself).
    let object = (verb == "create")
        .then(|| validate::decode_body(&call.content_type, body).ok())
        .flatten()
        .map(|b| b.object);
    let name = match verb {
        // A subresource's object is the path's (kube's request info).
        "create" if call.path.subresource.is_some() => call.path.name.clone(),
        "create" => object
            .as_ref()
            .and_then(|o| o["metadata"]["name"].as_str())
            .map(str::to_owned),
        "list" | "watch" => call.query.fields.name().map(str::to_owned),
        _ => call.path.name.clone(),
    };
    let attrs = authz::Attributes {
        verb,
        resource: call.resource(),
        subresource: call.path.subresource.as_deref(),
        namespace: call.path.namespace.as_deref(),
        name: name.as_deref(),
        object: object.as_ref(),
    };
    let facts = authz::StoreFacts {
        store: &call.state.store,
        pods: &call.state.pod_index,
        rbac: &call.state.rbac,
    };
    authz::authorize(&call.identity, &attrs, &facts).await
}

fn not_served(r: &Resource) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!(
            "{} {} are not served yet at this version (no conversion yet): use the preferred version of the group",
            r.group_version(),
            r.plural
        ),
    )
}

async fn read_body<B>(body: B) -> Result<Bytes, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::too_large(MAX_BODY_BYTES))
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "reading the request body: {e}"
        ))),
    }
}

/// Stores `object` (cluster-scoped or naming its namespace) unless one of its name exists:
/// what the server makes at its start.
pub(crate) async fn create_missing(
    state: &ApiState,
    resource: &'static Resource,
    mut object: Value,
) -> Result<(), store::Error> {
    let namespace = object["metadata"]["namespace"].as_str().map(str::to_owned);
    let key = path::object_key(resource, namespace.as_deref(), meta::name_of(&object));
    if state.store.get(&key).await?.is_some() {
        return Ok(());
    }
    if meta::prepare_create(&mut object, resource, namespace.as_deref()).is_err() {
        return Ok(());
    }
    let Ok(bytes) = meta::to_stored(&object) else {
        return Ok(());
    };
    match state.store.create(&key, bytes).await {
        Ok(_) | Err(store::Error::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The object stored in `kv`, with its resourceVersion.
pub(crate) fn decode_stored(kv: &KeyValue) -> Result<Value, ApiError> {
    let mut object: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored object {} is not JSON: {e}", kv.key)))?;
    meta::set_resource_version(&mut object, kv.mod_revision);
    Ok(object)
}

/// A JSON answer, with `warnings` as `Warning` headers.
pub(crate) fn object_response(
    code: StatusCode,
    object: &Value,
    warnings: &[String],
) -> Response<ResponseBody> {
    let mut response = json_response(code, Bytes::from(object.to_string()));
    for w in warnings {
        add_warning(&mut response, w);
    }
    response
}

/// 403 unless the identity may `get` the non-resource `path` (admins may).
pub async fn authorize_path(
    state: &ApiState,
    identity: &Identity,
    path: &str,
) -> Result<(), ApiError> {
    if identity.is_admin() {
        return Ok(());
    }
    let request = crate::authz::rbac::Request::NonResource { verb: "get", path };
    if state
        .rbac
        .policy(&state.store)
        .await?
        .allows(identity, &request)
    {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "forbidden: User {:?} cannot get path {path:?}",
        identity.user
    )))
}
