//! `GET /api/v1/namespaces/{ns}/pods/{name}/log` (kube-apiserver's `LogREST`): the options
//! checked and the container chosen (`options.rs`), then the node from `spec.nodeName`, its
//! kubelet from the Node's addresses and daemonEndpoints (`kubelet::address`), and the
//! kubelet's `/containerLogs` streamed through as chunked text. A pod not bound to a node yet
//! has an empty log, as in Kubernetes; a kubelet's refusal keeps its code and text.

mod options;

pub use options::{choose_container, PodLogOptions};

use bytes::Bytes;
use futures::StreamExt;
use http::{header, Response, StatusCode};
use http_body_util::{BodyExt, BodyStream, Limited, StreamBody};

use super::{get, Call};
use crate::http_util::{full, ResponseBody};
use crate::status::ApiError;

/// The most of a kubelet's error body we read into the Status.
const ERROR_BODY_LIMIT: usize = 16 * 1024;

/// Answers a log request; `raw_query` is the URL's query string.
pub async fn get(call: &Call, raw_query: &str) -> Result<Response<ResponseBody>, ApiError> {
    let name = call.path.name.clone().unwrap_or_default();
    let opts = PodLogOptions::parse(raw_query, &name)?;
    let pod = get::read(call).await?;
    let container = choose_container(&pod, opts.container.as_deref())?;
    let Some(node_name) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) else {
        return Ok(text_response(StatusCode::OK, full(Bytes::new())));
    };
    let target = kubelet_target(
        call,
        node_name,
        "containerLogs",
        Some(&container),
        &opts.kubelet_query(),
    )
    .await?;
    let response = target
        .client
        .get(&target.location, &target.path_and_query)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let status = response.status();
    if !status.is_success() {
        let body = Limited::new(response.into_body(), ERROR_BODY_LIMIT)
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_owned())
            .unwrap_or_default();
        return Err(kubelet_refusal(status, body));
    }
    // A broken kubelet connection ends the stream (the client sees the log end).
    let frames = BodyStream::new(response.into_body())
        .scan((), |_, frame| std::future::ready(frame.ok()))
        .map(Ok);
    Ok(text_response(
        StatusCode::OK,
        BodyExt::boxed(StreamBody::new(frames)),
    ))
}

/// Where a pod's container is served: the node's kubelet location, the client that reaches it,
/// and the kubelet path `/{endpoint}/{ns}/{pod}/{container}?{query}`.
pub(super) struct KubeletTarget<'a> {
    pub location: String,
    pub client: &'a crate::kubelet::KubeletClient,
    pub path_and_query: String,
}

/// The kubelet endpoint of `container` of the pod at `call` on `node_name`.
pub(super) async fn kubelet_target<'a>(
    call: &'a Call,
    node_name: &str,
    endpoint: &str,
    container: Option<&str>,
    query: &str,
) -> Result<KubeletTarget<'a>, ApiError> {
    let node = read_node(call, node_name).await?;
    let types = &call.state.kubelet_address_types;
    let location = crate::kubelet::kubelet_location(&node, types).map_err(ApiError::internal)?;
    let Some(client) = call.state.kubelet.as_ref() else {
        return Err(ApiError::internal("this server has no kubelet client"));
    };
    let ns = call.path.namespace.as_deref().unwrap_or("default");
    let name = call.path.name.as_deref().unwrap_or_default();
    let container = container
        .map(|c| format!("/{}", escape(c)))
        .unwrap_or_default();
    let path_and_query = format!(
        "/{endpoint}/{}/{}{container}?{query}",
        escape(ns),
        escape(name),
    );
    Ok(KubeletTarget {
        location,
        client,
        path_and_query,
    })
}

pub(super) async fn read_node(call: &Call, node_name: &str) -> Result<serde_json::Value, ApiError> {
    super::get::read_core(call, "nodes", None, node_name).await
}

fn text_response(code: StatusCode, body: ResponseBody) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    response
}

/// A kubelet's non-2xx answer as a Status (kube's `NewGenericServerResponse`: the code kept,
/// the kubelet's text as the message).
fn kubelet_refusal(code: StatusCode, body: String) -> ApiError {
    let reason = match code {
        StatusCode::BAD_REQUEST => "BadRequest",
        StatusCode::UNAUTHORIZED => "Unauthorized",
        StatusCode::FORBIDDEN => "Forbidden",
        StatusCode::NOT_FOUND => "NotFound",
        _ => "InternalError",
    };
    let message = match body.is_empty() {
        true => format!("the kubelet answered {code} without a message"),
        false => body,
    };
    ApiError::new(code, reason, message)
}

/// Percent-encodes a path segment (names are DNS labels, but never trust that here).
pub(super) fn escape(segment: &str) -> String {
    form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}
