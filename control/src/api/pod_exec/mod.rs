//! `GET|POST /api/v1/namespaces/{ns}/pods/{name}/exec` (kube-apiserver's `ExecREST`): the
//! options (`options.rs`), the container (kube's `streamLocation` texts, shared with
//! `pods/log`), the pod's node (an unbound pod is a 400), then the client's upgrade request is
//! forwarded to the node's kubelet `/exec/{ns}/{pod}/{container}` with the same upgrade
//! headers. `pods/portforward` (`PortForwardREST`) is forwarded the same way to
//! `/portForward/{ns}/{pod}` (the ports travel in SPDY stream headers, not in the query), and
//! `pods/attach` (PodAttachOptions: exec's without `command`) to `/attach/{ns}/{pod}/{c}`. The kubelet's 101 is answered to the client and the two upgraded connections are
//! spliced byte for byte (kube's `UpgradeAwareHandler`: the WebSocket framing is end to end);
//! any other answer of the kubelet is passed through with its code and text, which kubectl
//! prints after "unable to upgrade connection".

mod options;

pub use options::PodExecOptions;

use bytes::Bytes;
use http::{header, HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::pod_log::{choose_container, kubelet_target};
use super::{get, Call};
use crate::http_util::{full, ResponseBody};
use crate::status::ApiError;

/// The most of a kubelet's error body passed on.
const ERROR_BODY_LIMIT: usize = 16 * 1024;

/// The request headers an upgrade needs, forwarded to the kubelet.
const UPGRADE_HEADERS: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "x-stream-protocol-version",
];

/// The kubelet's 101 headers given back to the client.
const SWITCH_HEADERS: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "x-stream-protocol-version",
];

/// Answers an exec request; `upgrade` is the client connection's pending upgrade.
pub async fn connect(
    call: &Call,
    raw_query: &str,
    headers: &HeaderMap,
    upgrade: Option<OnUpgrade>,
) -> Result<Response<ResponseBody>, ApiError> {
    let name = call.path.name.clone().unwrap_or_default();
    let opts = PodExecOptions::parse(raw_query)?;
    admit_connect(
        call,
        opts.object(call.path.subresource.as_deref() == Some("attach")),
    )
    .await?;
    let pod = get::read(call).await?;
    let container = choose_container(&pod, opts.container.as_deref())?;
    let Some(node_name) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) else {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    };
    let Some(upgrade) = upgrade else {
        return Err(ApiError::bad_request(format!(
            "{} needs a connection upgrade",
            call.path.subresource.as_deref().unwrap_or("exec")
        )));
    };
    // `pods/attach` is exec without a command (PodAttachOptions), to the kubelet's `/attach`.
    let endpoint = match call.path.subresource.as_deref() {
        Some("attach") => "attach",
        _ => "exec",
    };
    let target = kubelet_target(
        call,
        node_name,
        endpoint,
        Some(&container),
        &opts.kubelet_query(),
    )
    .await?;
    relay(&target, headers, upgrade).await
}

/// Answers a port-forward request: the pod's node, then the upgrade relayed to its kubelet.
pub async fn port_forward(
    call: &Call,
    raw_query: &str,
    headers: &HeaderMap,
    upgrade: Option<OnUpgrade>,
) -> Result<Response<ResponseBody>, ApiError> {
    let name = call.path.name.clone().unwrap_or_default();
    admit_connect(call, options::port_forward_object(raw_query)).await?;
    let pod = get::read(call).await?;
    let Some(node_name) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) else {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    };
    let Some(upgrade) = upgrade else {
        return Err(ApiError::bad_request(
            "port-forward needs a connection upgrade",
        ));
    };
    let target = kubelet_target(call, node_name, "portForward", None, "").await?;
    relay(&target, headers, upgrade).await
}

/// CONNECT admission (before the pod is read, as kube's connect handler): the
/// ValidatingAdmissionPolicies and the admission webhooks, with the request's options as the
/// object.
async fn admit_connect(call: &Call, options: serde_json::Value) -> Result<(), ApiError> {
    let connect = super::admission_policy::Operation::Connect;
    super::admission_policy::admit(call, connect, Some(&options), None).await?;
    super::admission_webhook::validate(call, connect, Some(&options), None).await
}

/// Sends the client's upgrade to the kubelet; on its 101 the two connections are spliced,
/// any other answer is passed on.
async fn relay(
    target: &super::pod_log::KubeletTarget<'_>,
    headers: &HeaderMap,
    upgrade: OnUpgrade,
) -> Result<Response<ResponseBody>, ApiError> {
    let forwarded = pick(headers, UPGRADE_HEADERS);
    let mut response = target
        .client
        .upgrade(&target.location, &target.path_and_query, forwarded)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let status = response.status();
    if status != StatusCode::SWITCHING_PROTOCOLS {
        let body = Limited::new(response.into_body(), ERROR_BODY_LIMIT)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let mut passed = Response::new(full(body));
        *passed.status_mut() = status;
        passed.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return Ok(passed);
    }
    let kubelet_side = hyper::upgrade::on(&mut response);
    tokio::spawn(splice(upgrade, kubelet_side));
    let mut switched = Response::new(full(Bytes::new()));
    *switched.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *switched.headers_mut() = pick(response.headers(), SWITCH_HEADERS);
    Ok(switched)
}

/// The named headers of `from`.
pub(super) fn pick(from: &HeaderMap, names: &[&str]) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in names {
        for value in from.get_all(*name) {
            if let Ok(name) = header::HeaderName::from_bytes(name.as_bytes()) {
                out.append(name, value.clone());
            }
        }
    }
    out
}

/// Copies bytes both ways between the client's and the kubelet's upgraded connections until
/// both are done.
async fn splice(client: OnUpgrade, kubelet: OnUpgrade) {
    let (client, kubelet) = match (client.await, kubelet.await) {
        (Ok(c), Ok(k)) => (c, k),
        (c, k) => {
            tracing::debug!(
                client = c.is_ok(),
                kubelet = k.is_ok(),
                "exec upgrade failed"
            );
            return;
        }
    };
    let (mut client, mut kubelet) = (TokioIo::new(client), TokioIo::new(kubelet));
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut kubelet).await {
        tracing::debug!(error = %e, "exec stream");
    }
}
