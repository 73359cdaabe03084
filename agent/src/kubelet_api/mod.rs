//! The node's kubelet API (kubelet's port, `--port`, default 10250): HTTPS for the API server
//! only (`auth.rs`: a client certificate of the cluster CA naming the API server's
//! kubelet-client identity; `tls.rs`), serving `GET /containerLogs/{ns}/{pod}/{container}`
//! from the CRI log files (`container_logs.rs`, parameters in `log_options.rs`, streaming in
//! `log_stream.rs`), and `GET|POST /exec/{ns}/{pod}/{container}` (`exec/`: the command run in
//! the container with its stdio as WebSocket channel frames), `GET|POST
//! /portForward/{ns}/{pod}` (`port_forward/`: SPDY/3.1 streams, `crate::spdy`, relayed to
//! ports inside the pod's netns), `* /podProxy/{ns}/{pod}/{port}/{path}` (`pod_proxy.rs`: an
//! HTTP request to the pod's IP and port, made inside its netns, for the API server's
//! `pods/proxy` and `services/proxy`), `GET|POST /attach/{ns}/{pod}/{container}` (`attach.rs`: the
//! container's new output as channel frames) and `GET /metrics/resource` (CPU and memory of
//! the node, pods and containers from their cgroups, kubelet's names;
//! [`crate::metrics::resource`]), `GET /metrics` (the agent's own metrics) and `GET /healthz`.
//! The listening socket is made in the node's netns on the node's address
//! (`listen.rs`). It reads pods' statuses through a closure and never changes a pod.

pub mod attach;
pub mod auth;
pub mod container_logs;
pub mod exec;
pub mod listen;
pub mod log_options;
pub mod log_stream;
pub mod pod_proxy;
pub mod port_forward;
pub mod tls;

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::accept::AcceptBackoff;
use crate::pod::PodStatus;

/// kubelet's default port.
pub const DEFAULT_PORT: u16 = 10250;

/// How long a client may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The statuses of the pods the node runs.
pub type Statuses = Arc<dyn Fn() -> Vec<PodStatus> + Send + Sync>;

/// Every response body.
pub type Body = BoxBody<Bytes, Infallible>;

/// What the API reads.
pub struct KubeletApi {
    /// The agent's `--root` (logs under `<root>/logs`).
    pub root: PathBuf,
    pub statuses: Statuses,
    /// How `exec` enters a running container.
    pub exec_targets: exec::ExecTargets,
    /// Reads the cgroups for `/metrics/resource`.
    pub resources: crate::metrics::resource::ResourceSource,
    /// The running containers' stdins, for `attach` with input.
    pub stdins: crate::pod::Stdins,
}

/// A bound listener and its TLS configuration, ready for [`serve`].
pub struct KubeletServing {
    pub listener: TcpListener,
    pub tls: Arc<rustls::ServerConfig>,
}

/// Serves the API until the process ends.
pub async fn serve(serving: KubeletServing, api: Arc<KubeletApi>) {
    if let Ok(addr) = serving.listener.local_addr() {
        tracing::info!(%addr, "serving the kubelet API");
    }
    let acceptor = TlsAcceptor::from(serving.tls);
    let mut backoff = AcceptBackoff::new("kubelet API");
    loop {
        let (stream, peer) = backoff.accept(|| serving.listener.accept()).await;
        let (acceptor, api) = (acceptor.clone(), api.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream)).await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "kubelet API handshake");
                    return;
                }
                Err(_) => return,
            };
            let verdict = auth::check(
                tls.get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| c.as_ref()),
            );
            let verdict = Arc::new(verdict);
            let service = service_fn(move |req| {
                let (api, verdict) = (api.clone(), verdict.clone());
                async move {
                    Ok::<_, Infallible>(match verdict.as_ref() {
                        Ok(()) => route(&api, req).await,
                        Err(refusal) => text(refusal.status, &refusal.message),
                    })
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades();
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "kubelet API connection");
            }
        });
    }
}

async fn route(api: &KubeletApi, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (req.method(), segments.as_slice()) {
        (&Method::GET, ["containerLogs", ns, pod, container]) => {
            container_logs::respond(api, ns, pod, container, &query)
        }
        (_, ["containerLogs", ..]) => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        (&Method::GET | &Method::POST, ["exec", ns, pod, container]) => {
            let (ns, pod, container) = (ns.to_string(), pod.to_string(), container.to_string());
            exec::respond(api, req, &ns, &pod, &container)
        }
        (_, ["exec", ..]) => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        (&Method::GET, ["metrics", "resource"]) => resource_metrics(api).await,
        (_, ["metrics", "resource"]) => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        // kubelet's own metrics and health, as on its port: what scrapes through the API
        // server's `nodes/NAME/proxy/metrics` read.
        (&Method::GET, ["metrics"]) => agent_metrics(),
        (&Method::GET, ["healthz"]) => Response::new(Full::new(Bytes::from_static(b"ok")).boxed()),
        (_, ["metrics" | "healthz"]) => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        (&Method::GET | &Method::POST, ["attach", ns, pod, container]) => {
            let (ns, pod, container) = (ns.to_string(), pod.to_string(), container.to_string());
            attach::respond(api, req, &ns, &pod, &container)
        }
        (_, ["attach", ..]) => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        (&Method::GET | &Method::POST, ["portForward", ns, pod]) => {
            let (ns, pod) = (ns.to_string(), pod.to_string());
            port_forward::respond(api, req, &ns, &pod)
        }
        (_, ["portForward", ..]) => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        (_, ["podProxy", ns, pod, port, ..]) => {
            let (ns, pod, port) = (ns.to_string(), pod.to_string(), port.to_string());
            // What follows the port, as sent: a trailing `/` matters to the pod's server.
            let prefix = format!("/podProxy/{ns}/{pod}/{port}");
            let rest = path.strip_prefix(&prefix).unwrap_or("").to_owned();
            pod_proxy::respond(api, req, &ns, &pod, &port, &rest).await
        }
        _ => text(StatusCode::NOT_FOUND, "404 page not found"),
    }
}

/// `/metrics/resource`: the cgroups are read off the async workers.
/// The agent's metrics (its `--metrics-address` endpoint's).
fn agent_metrics() -> Response<Body> {
    let body = crate::metrics::metrics().render();
    let mut resp = Response::new(Full::new(Bytes::from(body)).boxed());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    resp
}

async fn resource_metrics(api: &KubeletApi) -> Response<Body> {
    let source = api.resources.clone();
    match tokio::task::spawn_blocking(move || source()).await {
        Ok(sample) => {
            let body = crate::metrics::resource::render(&sample);
            let mut resp = Response::new(Full::new(Bytes::from(body)).boxed());
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(crate::metrics::resource::CONTENT_TYPE),
            );
            resp
        }
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("reading resource metrics: {e}"),
        ),
    }
}

/// The status of pod `ns/pod` and the PID of one of its running containers (whose netns is
/// the pod's); else kubelet's 404, or `status` saying it has no running container `to` do
/// something.
pub fn running_pod(
    api: &KubeletApi,
    ns: &str,
    pod: &str,
    status: StatusCode,
    to: &str,
) -> Result<(PodStatus, i32), Box<Response<Body>>> {
    let statuses = (api.statuses)();
    let Some(found) = statuses
        .into_iter()
        .find(|p| p.namespace == ns && p.name == pod)
    else {
        return Err(Box::new(text(StatusCode::NOT_FOUND, "pod does not exist")));
    };
    let pid = (found.container_statuses.iter())
        .chain(&found.init_container_statuses)
        .filter(|c| matches!(c.state, crate::pod::ContainerState::Running { .. }))
        .find_map(|c| c.pid);
    match pid {
        Some(pid) => Ok((found, pid)),
        None => Err(Box::new(text(
            status,
            &format!("pod {pod} has no running container to {to}"),
        ))),
    }
}

/// A plain-text response (kubelet's errors are plain text).
pub fn text(status: StatusCode, message: &str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(format!("{message}\n"))).boxed());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
