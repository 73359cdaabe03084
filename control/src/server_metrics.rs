//! The API server's own Prometheus metrics, in kube-apiserver's names and labels so its
//! dashboards and alerts read them unchanged: `apiserver_request_total` (by verb, group,
//! version, resource, subresource, scope, component and code) and
//! `apiserver_request_duration_seconds` (also by dry run; until the response starts: a watch's until it is
//! established), and `apiserver_current_inflight_requests` (readOnly / mutating). Every
//! request is counted, the in-process controllers' too, as kube-controller-manager's requests
//! reach kube-apiserver. `api::metrics_scrape` serves them at `/metrics` with the per-scrape
//! ones (stored objects, the process's `process_*`).
//!
//! Admission webhooks and auditing have kube's metrics too:
//! `apiserver_admission_webhook_admission_duration_seconds` and
//! `apiserver_admission_webhook_request_total` (by webhook name, operation, type —
//! `admit` for mutating, `validating` — and whether it rejected; the latter also by the
//! webhook's HTTP code, 0 when it could not be called), and `apiserver_audit_event_total`.
//!
//! Verbs as kube reports them: GET of one object, LIST, WATCH, POST, PUT, PATCH, APPLY (a
//! server-side apply patch), DELETE, DELETECOLLECTION, CONNECT (exec, attach, port-forward);
//! non-resource requests by method, their path in `subresource` when it is one of a fixed set,
//! else `other`, so no label takes unbounded values.

use std::time::Duration;

use http::Method;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::api::path;

/// kube-apiserver's buckets of `apiserver_request_duration_seconds`.
const BUCKETS: [f64; 23] = [
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

/// kube-apiserver's buckets of `apiserver_admission_webhook_admission_duration_seconds`.
const WEBHOOK_BUCKETS: [f64; 8] = [0.005, 0.025, 0.1, 0.5, 1.0, 2.5, 10.0, 25.0];

/// One admission webhook call, as kube's webhook metrics label it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookCall {
    pub name: String,
    pub operation: &'static str,
    /// `admit` (mutating) or `validating`.
    pub r#type: &'static str,
    pub rejected: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookRequest {
    #[prometheus(flatten)]
    call: WebhookCall,
    code: u16,
}

/// Non-resource paths reported by name (the rest as `other`).
const NAMED_PATHS: &[&str] = &[
    "/api",
    "/apis",
    "/version",
    "/healthz",
    "/livez",
    "/readyz",
    "/metrics",
    "/openapi/v2",
    "/openapi/v3",
];

/// What kube-apiserver's request metrics say of one request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestInfo {
    verb: &'static str,
    dry_run: &'static str,
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    subresource: &'static str,
    scope: &'static str,
    component: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestTotal {
    #[prometheus(flatten)]
    info: RequestInfo,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InflightKind {
    request_kind: &'static str,
}

impl RequestInfo {
    /// The request `method path?query` with body type `content_type`.
    pub fn of(method: &Method, path: &str, query: &str, content_type: &str) -> RequestInfo {
        let watch = query
            .split('&')
            .any(|p| matches!(p, "watch=true" | "watch=1" | "watch"));
        let dry_run = match query.split('&').any(|p| p == "dryRun=All") {
            true => "All",
            false => "",
        };
        let Ok(parsed) = path::parse(path) else {
            let named = NAMED_PATHS
                .iter()
                .find(|p| path == **p || path.starts_with(&format!("{p}/")));
            return RequestInfo {
                verb: method_name(method),
                dry_run,
                group: "",
                version: "",
                resource: "",
                subresource: named.copied().unwrap_or("other"),
                scope: "",
                component: "apiserver",
            };
        };
        let r = parsed.resource;
        let named = parsed.name.is_some();
        let subresource = parsed
            .subresource
            .as_deref()
            .and_then(|s| r.subresources.iter().find(|known| known.name == s))
            .map_or("", |known| known.name);
        let verb = match *method {
            Method::GET if watch => "WATCH",
            Method::GET if matches!(subresource, "exec" | "attach" | "portforward") => "CONNECT",
            Method::POST if matches!(subresource, "exec" | "attach" | "portforward") => "CONNECT",
            Method::GET if named => "GET",
            Method::GET => "LIST",
            Method::PATCH if content_type.starts_with("application/apply-patch") => "APPLY",
            Method::DELETE if !named => "DELETECOLLECTION",
            ref other => method_name(other),
        };
        let scope = if named || *method == Method::POST {
            "resource"
        } else if parsed.namespace.is_some() {
            "namespace"
        } else {
            "cluster"
        };
        RequestInfo {
            verb,
            dry_run,
            group: r.group,
            version: r.version,
            resource: r.plural,
            subresource,
            scope,
            component: "apiserver",
        }
    }
}

fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The request metrics, kept for the process's life.
pub struct ServerMetrics {
    registry: Registry,
    requests: Family<RequestTotal, Counter>,
    durations: Family<RequestInfo, Histogram, fn() -> Histogram>,
    inflight: Family<InflightKind, Gauge>,
    webhook_durations: Family<WebhookCall, Histogram, fn() -> Histogram>,
    webhook_requests: Family<WebhookRequest, Counter>,
    audit_events: Counter,
    audit_errors: Family<AuditPlugin, Counter>,
}

/// The audit backend an `apiserver_audit_error_total` sample is about.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuditPlugin {
    plugin: &'static str,
}

impl Default for ServerMetrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestTotal, Counter>::default();
        let durations =
            Family::<RequestInfo, Histogram, fn() -> Histogram>::new_with_constructor(|| {
                Histogram::new(BUCKETS)
            });
        let inflight = Family::<InflightKind, Gauge>::default();
        registry.register(
            "apiserver_request",
            "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code",
            requests.clone(),
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component",
            durations.clone(),
        );
        registry.register(
            "apiserver_current_inflight_requests",
            "Maximal number of currently used inflight request limit of this apiserver per request kind in last second",
            inflight.clone(),
        );
        let webhook_durations =
            Family::<WebhookCall, Histogram, fn() -> Histogram>::new_with_constructor(|| {
                Histogram::new(WEBHOOK_BUCKETS)
            });
        let webhook_requests = Family::<WebhookRequest, Counter>::default();
        let audit_events = Counter::default();
        registry.register(
            "apiserver_admission_webhook_admission_duration_seconds",
            "Admission webhook latency histogram in seconds, identified by name and broken out for each operation and API resource and type (validate or admit)",
            webhook_durations.clone(),
        );
        registry.register(
            "apiserver_admission_webhook_request",
            "Admission webhook request total, identified by name and broken out for each admission type (validating or mutating) and operation. Additional labels specify whether the request was rejected or not and an HTTP status code. Codes greater than 600 are truncated to 600, to keep the metrics cardinality bounded",
            webhook_requests.clone(),
        );
        registry.register(
            "apiserver_audit_event",
            "Counter of audit events generated and sent to the audit backend",
            audit_events.clone(),
        );
        let audit_errors = Family::<AuditPlugin, Counter>::default();
        registry.register(
            "apiserver_audit_error",
            "Counter of audit events that failed to be audited properly. Plugin identifies the plugin affected by the error.",
            audit_errors.clone(),
        );
        for kind in ["readOnly", "mutating"] {
            drop(inflight.get_or_create(&InflightKind { request_kind: kind }));
        }
        ServerMetrics {
            registry,
            requests,
            durations,
            inflight,
            webhook_durations,
            webhook_requests,
            audit_events,
            audit_errors,
        }
    }
}

/// A request in flight: counted in `apiserver_current_inflight_requests` until dropped.
pub struct Inflight {
    gauge: Gauge,
}

impl Drop for Inflight {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

impl ServerMetrics {
    /// Marks a request of `method` in flight until the guard is dropped.
    pub fn start(&self, method: &Method) -> Inflight {
        let request_kind = match *method {
            Method::GET | Method::HEAD | Method::OPTIONS => "readOnly",
            _ => "mutating",
        };
        let gauge = self
            .inflight
            .get_or_create(&InflightKind { request_kind })
            .clone();
        gauge.inc();
        Inflight { gauge }
    }

    /// Records one answered request.
    pub fn observe(&self, info: RequestInfo, code: u16, took: Duration) {
        self.durations
            .get_or_create(&info)
            .observe(took.as_secs_f64());
        self.requests
            .get_or_create(&RequestTotal { info, code })
            .inc();
    }

    /// Records one admission webhook call; `code` is its HTTP answer's (0: not called).
    pub fn observe_webhook(&self, call: WebhookCall, code: u16, took: Duration) {
        self.webhook_durations
            .get_or_create(&call)
            .observe(took.as_secs_f64());
        self.webhook_requests
            .get_or_create(&WebhookRequest {
                call,
                code: code.min(600),
            })
            .inc();
    }

    /// The counter of audit events written (`apiserver_audit_event_total`).
    pub fn audit_events(&self) -> Counter {
        self.audit_events.clone()
    }

    /// The counter of audit events a backend failed to take
    /// (`apiserver_audit_error_total{plugin}`: `webhook`).
    pub fn audit_errors(&self, plugin: &'static str) -> Counter {
        self.audit_errors
            .get_or_create(&AuditPlugin { plugin })
            .clone()
    }

    /// The metrics in the Prometheus text format (version 0.0.4), into `out`.
    pub fn encode(&self, out: &mut String) {
        if let Err(error) =
            prometheus_client::encoding::prometheus_text::encode(out, &self.registry)
        {
            tracing::warn!(%error, "encoding the request metrics");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: Method, path: &str, query: &str, content_type: &str) -> (String, String) {
        let i = RequestInfo::of(&method, path, query, content_type);
        (
            format!("{} {}/{} {}", i.verb, i.group, i.resource, i.subresource),
            i.scope.to_owned(),
        )
    }

    #[test]
    fn requests_are_labelled_as_kube_apiserver_labels_them() {
        let pods = "/api/v1/namespaces/default/pods";
        let case = |m, p: &str, q, ct| info(m, p, q, ct);
        assert_eq!(
            case(Method::GET, pods, "", ""),
            ("LIST /pods ".into(), "namespace".into())
        );
        assert_eq!(
            case(Method::GET, "/api/v1/pods", "watch=true", ""),
            ("WATCH /pods ".into(), "cluster".into())
        );
        assert_eq!(
            case(Method::POST, pods, "", ""),
            ("POST /pods ".into(), "resource".into())
        );
        assert_eq!(
            case(Method::GET, &format!("{pods}/web/log"), "", ""),
            ("GET /pods log".into(), "resource".into())
        );
        assert_eq!(
            case(Method::POST, &format!("{pods}/web/exec"), "", ""),
            ("CONNECT /pods exec".into(), "resource".into())
        );
        assert_eq!(
            case(
                Method::PATCH,
                "/apis/apps/v1/namespaces/d/deployments/web",
                "",
                "application/apply-patch+yaml"
            ),
            ("APPLY apps/deployments ".into(), "resource".into())
        );
        assert_eq!(
            case(Method::DELETE, pods, "", ""),
            ("DELETECOLLECTION /pods ".into(), "namespace".into())
        );
        assert_eq!(
            case(Method::GET, "/openapi/v3/apis/apps/v1", "", ""),
            ("GET / /openapi/v3".into(), String::new())
        );
        assert_eq!(
            case(Method::GET, "/some/secret/name", "", ""),
            ("GET / other".into(), String::new())
        );
    }

    #[test]
    fn a_dry_run_is_labelled_all() {
        let pods = "/api/v1/namespaces/default/pods";
        assert_eq!(
            RequestInfo::of(&Method::POST, pods, "dryRun=All", "").dry_run,
            "All"
        );
        assert_eq!(RequestInfo::of(&Method::POST, pods, "", "").dry_run, "");
    }

    #[test]
    fn answered_requests_are_counted_timed_and_encoded() {
        let metrics = ServerMetrics::default();
        let guard = metrics.start(&Method::POST);
        let mut out = String::new();
        metrics.encode(&mut out);
        assert!(
            out.contains("apiserver_current_inflight_requests{request_kind=\"mutating\"} 1"),
            "{out}"
        );
        drop(guard);
        let i = RequestInfo::of(&Method::POST, "/api/v1/namespaces/d/configmaps", "", "");
        metrics.observe(i, 201, Duration::from_millis(3));
        let mut out = String::new();
        metrics.encode(&mut out);
        assert!(out.contains(r#"apiserver_request_total{verb="POST",dry_run="",group="",version="v1",resource="configmaps",subresource="",scope="resource",component="apiserver",code="201"} 1"#), "{out}");
        assert!(
            out.contains(r#"component="apiserver",le="0.005"} 1"#),
            "{out}"
        );
        assert!(!out.contains(".."), "help texts end with one period: {out}");
        assert!(
            out.contains("apiserver_current_inflight_requests{request_kind=\"mutating\"} 0"),
            "{out}"
        );
    }
}
