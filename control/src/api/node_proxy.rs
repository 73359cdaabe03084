//! `/api/v1/nodes/{name}/proxy/{path}` (kube-apiserver's `ProxyREST` of nodes): the request
//! passed on to the node's kubelet API at `/{path}`, with its method, query, body and content
//! headers, and the kubelet's answer passed back as it streams — `kubectl get --raw
//! /api/v1/nodes/n1/proxy/metrics/resource`, what monitoring scrapes through the API server.
//!
//! The name may carry a port (`n1:10250`) and the scheme `https` (`https:n1:10250`), as in
//! kube; the kubelet API speaks only HTTPS, so `http:` is refused. Without a port, the node's
//! `status.daemonEndpoints.kubeletEndpoint.Port` is dialled. Connection upgrades (WebSocket)
//! are not passed on through this proxy: such a request is refused with a 400 saying so.

use bytes::Bytes;
use futures::StreamExt;
use http::{header, HeaderMap, HeaderValue, Method, Response};
use http_body_util::{BodyExt, BodyStream, StreamBody};

use super::pod_exec::pick;
use super::Call;
use crate::http_util::ResponseBody;
use crate::status::ApiError;

/// The request headers passed on to the kubelet: what says what the body is and what answer
/// is wanted. Credentials are never passed on: the API server presents its own certificate.
const FORWARDED_REQUEST: &[&str] = &[
    "accept",
    "accept-encoding",
    "content-encoding",
    "content-type",
    "user-agent",
];

/// The kubelet's answer headers passed back (hop-by-hop ones never are).
const FORWARDED_ANSWER: &[&str] = &[
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-type",
    "date",
    "etag",
    "last-modified",
    "location",
];

/// Where a node proxy request goes: the node, the port if the name gives one.
#[derive(Debug, PartialEq, Eq)]
struct Target<'a> {
    node: &'a str,
    port: Option<u16>,
}

/// `n1`, `n1:10250`, `https:n1:10250` (kube's `[scheme:]name[:port]`).
fn target(name: &str) -> Result<Target<'_>, ApiError> {
    let (scheme, rest) = match name.split_once(':') {
        Some((scheme @ ("http" | "https"), rest)) => (Some(scheme), rest),
        _ => (None, name),
    };
    if scheme == Some("http") {
        return Err(ApiError::bad_request(format!(
            "the kubelet API of node {rest:?} is served over https only"
        )));
    }
    let (node, port) = match rest.rsplit_once(':') {
        Some((node, port)) => {
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| {
                    ApiError::bad_request(format!("invalid port {port:?} in node name {name:?}"))
                })?;
            (node, Some(port))
        }
        None => (rest, None),
    };
    if node.is_empty() {
        return Err(ApiError::bad_request(format!("no node name in {name:?}")));
    }
    Ok(Target { node, port })
}

/// The path after `.../{name}/proxy`, `/` if there is none.
pub(super) fn proxied_path(uri_path: &str, name: &str) -> String {
    let marker = format!("/{name}/proxy");
    match uri_path.find(&marker) {
        Some(at) => {
            let rest = &uri_path[at + marker.len()..];
            match rest.is_empty() {
                true => "/".to_owned(),
                false => rest.to_owned(),
            }
        }
        None => "/".to_owned(),
    }
}

/// One request to a `proxy` subresource (`nodes/`, `pods/`, `services/{name}/proxy/...`).
pub struct ProxyRequest<'a> {
    pub method: Method,
    pub uri_path: &'a str,
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
}

/// Passes `request` on to the node's kubelet and its answer back.
pub async fn forward(
    call: &Call,
    request: ProxyRequest<'_>,
) -> Result<Response<ResponseBody>, ApiError> {
    let name = call.path.name.clone().unwrap_or_default();
    if request.headers.contains_key(header::UPGRADE) {
        return Err(ApiError::bad_request(
            "connection upgrades are not passed on by the node proxy",
        ));
    }
    let target = target(&name)?;
    let node = super::pod_log::read_node(call, target.node).await?;
    let types = &call.state.kubelet_address_types;
    let mut location =
        crate::kubelet::kubelet_location(&node, types).map_err(ApiError::internal)?;
    if let Some(port) = target.port {
        let host = location
            .rsplit_once(':')
            .map_or(location.as_str(), |(host, _)| host);
        location = format!("{host}:{port}");
    }
    let mut path_and_query = proxied_path(request.uri_path, &name);
    if !request.raw_query.is_empty() {
        path_and_query = format!("{path_and_query}?{}", request.raw_query);
    }
    relay(call, &location, request, &path_and_query).await
}

/// Sends `request` (its method, content headers and body) to the kubelet API at `location`
/// as `path_and_query`, and passes its answer back as it streams.
pub(super) async fn relay(
    call: &Call,
    location: &str,
    request: ProxyRequest<'_>,
    path_and_query: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let Some(client) = call.state.kubelet.as_ref() else {
        return Err(ApiError::internal("this server has no kubelet client"));
    };
    let answer = client
        .request(
            location,
            request.method,
            path_and_query,
            pick(request.headers, FORWARDED_REQUEST),
            request.body,
        )
        .await
        .map_err(|e| {
            ApiError::new(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                format!("error trying to reach service: {e}"),
            )
        })?;
    let status = answer.status();
    let headers = pick(answer.headers(), FORWARDED_ANSWER);
    // A broken kubelet connection ends the answer where it broke.
    let frames = BodyStream::new(answer.into_body())
        .scan((), |_, frame| std::future::ready(frame.ok()))
        .map(Ok);
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(frames)));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    if !response.headers().contains_key(header::CONTENT_TYPE) {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_an_optional_https_scheme_and_port() {
        let t = |node, port| Target { node, port };
        assert_eq!(target("n1").unwrap(), t("n1", None));
        assert_eq!(target("n1:10250").unwrap(), t("n1", Some(10250)));
        assert_eq!(target("https:n1:10250").unwrap(), t("n1", Some(10250)));
        assert_eq!(target("https:n1").unwrap(), t("n1", None));
        for (bad, says) in [
            ("http:n1:10250", "https only"),
            ("n1:x", "invalid port \"x\""),
            ("n1:0", "invalid port \"0\""),
            ("n1:70000", "invalid port \"70000\""),
            (":10250", "no node name"),
        ] {
            let error = target(bad).unwrap_err();
            assert!(error.message.contains(says), "{bad}: {}", error.message);
        }
    }

    #[test]
    fn the_proxied_path_is_what_follows_proxy() {
        let p = |path| proxied_path(path, "n1");
        assert_eq!(p("/api/v1/nodes/n1/proxy"), "/");
        assert_eq!(p("/api/v1/nodes/n1/proxy/"), "/");
        assert_eq!(
            p("/api/v1/nodes/n1/proxy/metrics/resource"),
            "/metrics/resource"
        );
        assert_eq!(
            proxied_path("/api/v1/nodes/n1:10250/proxy/healthz", "n1:10250"),
            "/healthz"
        );
    }

    #[test]
    fn credentials_are_never_passed_on() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        headers.insert(header::COOKIE, HeaderValue::from_static("a=b"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("text/plain"));
        let passed = pick(&headers, FORWARDED_REQUEST);
        assert_eq!(passed.len(), 1);
        assert_eq!(passed[header::ACCEPT], "text/plain");
    }
}
