//! `* /podProxy/{ns}/{pod}/{port}[/{path…}]`: an HTTP request to a pod's port, for the API
//! server's `pods/proxy` and `services/proxy` (kube-apiserver dials pod IPs itself; bosun's
//! control process has no route into the nodes' pod networks, so the node's agent makes the
//! last hop). The pod must have a running container, whose netns the connection is made in,
//! to the pod's IP and `port` — as a client on the pod network would reach it. The request
//! (method, path after the port, query, headers but hop-by-hop ones, body) is sent over
//! HTTP/1.1 and the pod's answer streamed back as it comes.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use bytes::Bytes;
use futures::channel::mpsc;
use futures::SinkExt;
use http::{header, HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;

use super::{text, Body, KubeletApi};

/// Headers that belong to one connection, not to the request (RFC 9110 §7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Answers one proxied request: the pod's answer, or kubelet-style plain-text errors.
pub async fn respond(
    api: &KubeletApi,
    req: Request<Incoming>,
    ns: &str,
    pod: &str,
    port: &str,
    path: &str,
) -> Response<Body> {
    let Ok(port) = port.parse::<u16>() else {
        return text(StatusCode::BAD_REQUEST, &format!("invalid port {port:?}"));
    };
    let unavailable = StatusCode::SERVICE_UNAVAILABLE;
    let (status, pid) = match super::running_pod(api, ns, pod, unavailable, "proxy to") {
        Ok(found) => found,
        Err(refusal) => return *refusal,
    };
    let ip = status
        .pod_ip
        .as_deref()
        .and_then(|ip| ip.parse::<IpAddr>().ok());
    let Some(ip) = ip else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("pod {pod} has no IP"),
        );
    };
    let netns = format!("/proc/{pid}/ns/net");
    let target = SocketAddr::new(ip, port);
    match forward(Path::new(&netns), target, req, path).await {
        Ok(resp) => resp,
        Err(why) => text(
            StatusCode::BAD_GATEWAY,
            &format!("error trying to reach pod {pod} at {target}: {why}"),
        ),
    }
}

/// Sends `req` to `target` inside `netns` with `path` (what followed the port in the URL,
/// `/` when nothing did) and the query as its target.
async fn forward(
    netns: &Path,
    target: SocketAddr,
    req: Request<Incoming>,
    path: &str,
) -> Result<Response<Body>, String> {
    let stream = super::port_forward::dial_in(netns, target)
        .await
        .map_err(|e| format!("dial tcp {target}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "pod proxy connection");
        }
    });
    let (parts, body) = req.into_parts();
    let path = if path.is_empty() { "/" } else { path };
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let mut out = Request::builder()
        .method(parts.method)
        .uri(path_and_query)
        .body(body)
        .map_err(|e| e.to_string())?;
    *out.headers_mut() = end_to_end(&parts.headers);
    let host = header::HeaderValue::from_str(&target.to_string()).map_err(|e| e.to_string())?;
    // The pod is the server now (the agent's own address came with the request).
    out.headers_mut().insert(header::HOST, host);
    let answer = sender.send_request(out).await.map_err(|e| e.to_string())?;
    let (mut parts, body) = answer.into_parts();
    parts.headers = end_to_end(&parts.headers);
    Ok(Response::from_parts(parts, stream_body(body)))
}

/// `headers` without the hop-by-hop ones and those the `Connection` header names.
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    let mut out = headers.clone();
    for name in HOP_BY_HOP
        .iter()
        .copied()
        .chain(named.iter().map(String::as_str))
    {
        out.remove(name);
    }
    out
}

/// The pod's answer as it arrives; a broken pod connection ends it early.
fn stream_body(mut body: Incoming) -> Body {
    let (mut tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(8);
    tokio::spawn(async move {
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if tx.send(Ok(frame)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "pod proxy answer");
                    return;
                }
            }
        }
    });
    StreamBody::new(rx).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "connection",
            "keep-alive, x-private".parse().expect("value"),
        );
        headers.insert("keep-alive", "timeout=5".parse().expect("value"));
        headers.insert("x-private", "1".parse().expect("value"));
        headers.insert("accept", "text/html".parse().expect("value"));
        headers.insert("transfer-encoding", "chunked".parse().expect("value"));
        let out = end_to_end(&headers);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out["accept"], "text/html");
    }
}
