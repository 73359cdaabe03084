//! Auditing, as kube-apiserver audits (`--audit-policy-file`, `--audit-log-path`): each
//! authenticated request (and each failed authentication) is matched against the policy
//! (`policy`); at a level above `None` it gets an audit ID and its events are written to the
//! log (`sink`) as audit.k8s.io/v1 `Event`s, one JSON object per line:
//!
//! - `RequestReceived` when the request arrives (policies usually omit this stage);
//! - `ResponseStarted` for long-running requests (watches, logs, exec, attach,
//!   port-forward) when their headers go out, then `ResponseComplete` when they end;
//! - `ResponseComplete` with the response's status (the `Status` of a failure).
//!
//! Metadata level records who (user, groups, impersonated user, source IPs, user agent), what
//! (verb, URI, object reference) and the outcome; `Request` adds the request body as an
//! object, `RequestResponse` the response's. Annotations come from the authorizer
//! (`authorization.k8s.io/decision`), the ValidatingAdmissionPolicies (their
//! `auditAnnotations` and `Audit` actions) and the admission webhooks (their
//! `auditAnnotations`). The per-request `AuditContext` travels in the request's extensions.

pub mod policy;
pub mod sink;
pub mod webhook;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, Method, Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use serde_json::{json, Map, Value};

use self::policy::{Attributes, Decision, ResourceAttributes};
pub use self::policy::{Level, Policy, Stage};
pub use self::sink::{LogConfig, Sink};
pub use self::webhook::{BatchConfig, WebhookQueue};
use crate::authn::Identity;
use crate::http_util::{full, ResponseBody};

/// The policy and the log.
pub struct Auditor {
    policy: Policy,
    sink: Sink,
}

/// The audit of one request.
pub struct AuditContext {
    sink: Sink,
    decision: Decision,
    /// The event so far (everything but the stage and its time).
    event: Mutex<Value>,
}

/// Microseconds, as kube's `MicroTime`.
fn micro_time(at: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

/// kube's verb of a request to `path` by `method`.
fn verb(method: &Method, named: bool, watch: bool, resource: bool) -> String {
    if !resource {
        return method.as_str().to_ascii_lowercase();
    }
    match *method {
        Method::GET if named => "get",
        Method::GET if watch => "watch",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        ref other => return other.as_str().to_ascii_lowercase(),
    }
    .to_owned()
}

fn user_info(identity: &Identity) -> Value {
    let mut user = json!({"username": identity.user});
    if !identity.uid.is_empty() {
        user["uid"] = json!(identity.uid);
    }
    if !identity.groups.is_empty() {
        user["groups"] = json!(identity.groups);
    }
    if !identity.extra.is_empty() {
        user["extra"] = json!(identity.extra);
    }
    user
}

impl Auditor {
    pub fn new(policy: Policy, sink: Sink) -> Auditor {
        Auditor { policy, sink }
    }

    /// Starts the audit of `request` by `identity` (`None`: authentication failed); `None`
    /// when the policy's level for it is `None`.
    pub fn begin<B>(
        &self,
        identity: Option<&Identity>,
        request: &Request<B>,
    ) -> Option<Arc<AuditContext>> {
        let uri = request.uri();
        let query = uri.query().unwrap_or("");
        let watch = query
            .split('&')
            .any(|p| matches!(p, "watch=true" | "watch=1"));
        let parsed = crate::api::path::parse(uri.path()).ok();
        let named = parsed.as_ref().is_some_and(|p| p.name.is_some());
        let verb = verb(request.method(), named, watch, parsed.is_some());
        let no_groups = Vec::new();
        let resource = parsed.as_ref().map(|p| ResourceAttributes {
            group: p.resource.group,
            resource: p.resource.plural,
            subresource: p.subresource.as_deref().unwrap_or(""),
            namespace: p.namespace.as_deref().unwrap_or(""),
            name: p.name.as_deref().unwrap_or(""),
        });
        let decision = self.policy.decide(&Attributes {
            user: identity.map_or("", |i| i.user.as_str()),
            groups: identity.map_or(&no_groups, |i| &i.groups),
            verb: &verb,
            resource,
            path: uri.path(),
        });
        if decision.level == Level::None {
            return None;
        }
        let mut event = json!({
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": format!("{:?}", decision.level),
            "auditID": uuid::Uuid::new_v4().to_string(),
            "requestURI": uri.path_and_query().map_or(uri.path(), |p| p.as_str()),
            "verb": verb,
            "user": identity.map_or(json!({}), user_info),
            "requestReceivedTimestamp": micro_time(time::OffsetDateTime::now_utc()),
        });
        // Requests the server makes to itself (its controllers) have no peer.
        if let Some(peer) = request.extensions().get::<SocketAddr>() {
            event["sourceIPs"] = json!([peer.ip().to_string()]);
        }
        if let Some(agent) = request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
        {
            event["userAgent"] = json!(agent);
        }
        if let Some(path) = &parsed {
            let mut reference = Map::new();
            reference.insert("resource".into(), json!(path.resource.plural));
            let fields = [
                ("namespace", path.namespace.as_deref().unwrap_or("")),
                ("name", path.name.as_deref().unwrap_or("")),
                ("apiGroup", path.resource.group),
                ("apiVersion", path.resource.version),
                ("subresource", path.subresource.as_deref().unwrap_or("")),
            ];
            for (key, value) in fields {
                if !value.is_empty() {
                    reference.insert(key.into(), json!(value));
                }
            }
            event["objectRef"] = Value::Object(reference);
        }
        let context = AuditContext {
            sink: self.sink.clone(),
            decision,
            event: Mutex::new(event),
        };
        context.write(Stage::RequestReceived, None);
        Some(Arc::new(context))
    }
}

/// A request body as an object: JSON, YAML or protobuf (as decoded for the write).
fn body_object(content_type: &str, body: &[u8]) -> Option<Value> {
    serde_json::from_slice(body).ok().or_else(|| {
        crate::api::validate::decode_body(content_type, body)
            .ok()
            .map(|b| b.object)
    })
}

/// `object` without its managedFields (a list's items' too).
fn without_managed_fields(mut object: Value) -> Value {
    if let Some(meta) = object["metadata"].as_object_mut() {
        meta.remove("managedFields");
    }
    if let Some(items) = object["items"].as_array_mut() {
        for item in items {
            if let Some(meta) = item["metadata"].as_object_mut() {
                meta.remove("managedFields");
            }
        }
    }
    object
}

impl AuditContext {
    pub fn level(&self) -> Level {
        self.decision.level
    }

    fn event(&self) -> std::sync::MutexGuard<'_, Value> {
        self.event
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds an annotation (kept at every level above `None`, as kube keeps them).
    pub fn annotate(&self, key: &str, value: &str) {
        let mut event = self.event();
        if !event["annotations"].is_object() {
            event["annotations"] = json!({});
        }
        event["annotations"][key] = json!(value);
    }

    /// The user the request acts as, when it impersonates one.
    pub fn impersonating(&self, identity: &Identity) {
        self.event()["impersonatedUser"] = user_info(identity);
    }

    /// The request's body: it names a created object; at `Request` and above it is logged.
    pub fn request_body(&self, content_type: &str, body: &[u8]) {
        if body.is_empty() {
            return;
        }
        let Some(object) = body_object(content_type, body) else {
            return;
        };
        let mut event = self.event();
        if event["objectRef"].is_object() && event["objectRef"]["name"].is_null() {
            if let Some(name) = object["metadata"]["name"]
                .as_str()
                .filter(|n| !n.is_empty())
            {
                event["objectRef"]["name"] = json!(name);
            }
        }
        if self.decision.level >= Level::Request {
            event["requestObject"] = match self.decision.omit_managed_fields {
                true => without_managed_fields(object),
                false => object,
            };
        }
    }

    /// Writes the event at `stage`, unless the policy omits it.
    fn write(&self, stage: Stage, status: Option<Value>) {
        if self.decision.omit_stages.contains(&stage) {
            return;
        }
        let mut event = self.event().clone();
        event["stage"] = json!(stage.name());
        event["stageTimestamp"] = json!(micro_time(time::OffsetDateTime::now_utc()));
        if let Some(status) = status {
            event["responseStatus"] = status;
        }
        self.sink.write(event.to_string());
    }
}

/// The end of a request's audit: the response's status (and object at `RequestResponse`),
/// written as `ResponseComplete`; a long-running response writes `ResponseStarted` now and
/// `ResponseComplete` when its body ends.
pub async fn finish(
    context: Arc<AuditContext>,
    long_running: bool,
    response: Response<ResponseBody>,
) -> Response<ResponseBody> {
    let code = response.status();
    let bounded = response.body().size_hint().exact().is_some();
    if long_running || !bounded {
        let status = json!({"metadata": {}, "code": code.as_u16()});
        context.write(Stage::ResponseStarted, Some(status.clone()));
        let (parts, body) = response.into_parts();
        let body = Completing {
            inner: body,
            context: Some((context, status)),
        };
        return Response::from_parts(parts, BodyExt::boxed(body));
    }
    let wanted = code.as_u16() >= 400 || context.level() == Level::RequestResponse;
    if !wanted {
        context.write(
            Stage::ResponseComplete,
            Some(json!({"metadata": {}, "code": code.as_u16()})),
        );
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    let object: Option<Value> = serde_json::from_slice(&bytes).ok();
    let status = match object.as_ref().filter(|_| code.as_u16() >= 400) {
        Some(failure) if failure["kind"] == "Status" => {
            let mut status = json!({"metadata": {}, "code": code.as_u16()});
            for key in ["status", "message", "reason", "details"] {
                if !failure[key].is_null() {
                    status[key] = failure[key].clone();
                }
            }
            status
        }
        _ => json!({"metadata": {}, "code": code.as_u16()}),
    };
    if context.level() == Level::RequestResponse {
        if let Some(object) = object {
            context.event()["responseObject"] = match context.decision.omit_managed_fields {
                true => without_managed_fields(object),
                false => object,
            };
        }
    }
    context.write(Stage::ResponseComplete, Some(status));
    Response::from_parts(parts, full(bytes))
}

/// A 401 for a request whose authentication failed, audited when the policy says so.
pub async fn unauthenticated<B>(
    auditor: Option<&Auditor>,
    request: &Request<B>,
    response: Response<ResponseBody>,
) -> Response<ResponseBody> {
    match auditor.and_then(|a| a.begin(None, request)) {
        Some(context) => finish(context, false, response).await,
        None => response,
    }
}

/// A streamed body that writes its request's `ResponseComplete` when it ends (is dropped).
struct Completing {
    inner: ResponseBody,
    context: Option<(Arc<AuditContext>, Value)>,
}

impl Body for Completing {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Completing {
    fn drop(&mut self) {
        if let Some((context, status)) = self.context.take() {
            context.write(Stage::ResponseComplete, Some(status));
        }
    }
}

/// Whether a request is long-running as kube counts them (watches and streams).
pub fn long_running(method: &Method, path: &str, query: &str) -> bool {
    let watch = *method == Method::GET
        && query
            .split('&')
            .any(|p| matches!(p, "watch=true" | "watch=1"));
    let stream = ["/log", "/exec", "/attach", "/portforward", "/proxy"]
        .iter()
        .any(|s| path.ends_with(s));
    watch || stream
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_and_times_are_kubes() {
        assert_eq!(verb(&Method::GET, true, false, true), "get");
        assert_eq!(verb(&Method::GET, false, true, true), "watch");
        assert_eq!(verb(&Method::GET, false, false, true), "list");
        assert_eq!(
            verb(&Method::DELETE, false, false, true),
            "deletecollection"
        );
        assert_eq!(verb(&Method::POST, false, false, false), "post");
        let at = time::macros::datetime!(2026-12-05 04:40:01.250 UTC);
        assert_eq!(micro_time(at), "2026-12-05T04:40:01.250000Z");
        assert!(long_running(&Method::GET, "/api/v1/pods", "watch=true&x=1"));
        assert!(long_running(
            &Method::POST,
            "/api/v1/namespaces/d/pods/p/exec",
            ""
        ));
        assert!(!long_running(&Method::GET, "/api/v1/pods", "limit=500"));
    }

    #[test]
    fn managed_fields_are_left_out_of_objects_and_lists() {
        let object = json!({"metadata": {"name": "a", "managedFields": [{}]},
            "items": [{"metadata": {"managedFields": [{}], "name": "b"}}]});
        assert_eq!(
            without_managed_fields(object),
            json!({"metadata": {"name": "a"}, "items": [{"metadata": {"name": "b"}}]})
        );
    }
}
