//! `GET|POST /portForward/{ns}/{pod}`: kubelet's port-forward endpoint. The pod must have a
//! running container (its PID names the pod's netns, `/proc/PID/ns/net`); the upgrade is
//! either a WebSocket with subprotocol `SPDY/3.1+portforward.k8s.io` — SPDY frames carried in
//! binary messages, kubectl ≥ 1.31's first try — or a plain `Upgrade: SPDY/3.1` with
//! `X-Stream-Protocol-Version: portforward.k8s.io`, its fallback. Either way the session
//! (`session.rs`) dials `localhost:PORT` inside the pod's netns for each forwarded connection.

pub mod session;

use std::path::PathBuf;
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::{text, Body, KubeletApi};

/// The WebSocket subprotocol carrying SPDY.
pub const WEBSOCKET_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// The port-forward protocol version of a plain SPDY upgrade.
pub const STREAM_PROTOCOL: &str = "portforward.k8s.io";

/// How the client asked to upgrade.
#[derive(Debug, PartialEq, Eq)]
enum Upgrade {
    /// The Sec-WebSocket-Accept value.
    WebSocket(String),
    Spdy,
}

/// Answers one port-forward request: an error, or 101 with the session in the background.
pub fn respond(
    api: &KubeletApi,
    mut req: Request<Incoming>,
    ns: &str,
    pod: &str,
) -> Response<Body> {
    let error = StatusCode::INTERNAL_SERVER_ERROR;
    let (status, pid) = match super::running_pod(api, ns, pod, error, "forward ports into") {
        Ok(found) => found,
        Err(refusal) => return *refusal,
    };
    let Some(upgrade) = upgrade_kind(req.headers()) else {
        let message = format!(
            "port-forward needs a WebSocket upgrade with subprotocol {WEBSOCKET_PROTOCOL} or an \
             SPDY/3.1 upgrade with X-Stream-Protocol-Version {STREAM_PROTOCOL}"
        );
        return text(StatusCode::BAD_REQUEST, &message);
    };
    let dial = netns_dial(
        PathBuf::from(format!("/proc/{pid}/ns/net")),
        format!("{pod}_{ns}"),
        status.uid.clone(),
    );
    let on_upgrade = hyper::upgrade::on(&mut req);
    let mut resp = Response::new(Empty::new().map_err(|never| match never {}).boxed());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    match upgrade {
        Upgrade::WebSocket(accept) => {
            h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            if let Ok(v) = HeaderValue::from_str(&accept) {
                h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
            }
            h.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(WEBSOCKET_PROTOCOL),
            );
            tokio::spawn(over_websocket(on_upgrade, dial));
        }
        Upgrade::Spdy => {
            h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
            h.insert(
                "x-stream-protocol-version",
                HeaderValue::from_static(STREAM_PROTOCOL),
            );
            tokio::spawn(over_spdy(on_upgrade, dial));
        }
    }
    resp
}

/// Which upgrade the request asks for, if one we serve.
fn upgrade_kind(headers: &HeaderMap) -> Option<Upgrade> {
    let tokens = |name: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_owned())
            .collect::<Vec<_>>()
    };
    let has = |name: &str, token: &str| tokens(name).iter().any(|t| t.eq_ignore_ascii_case(token));
    if !has("connection", "upgrade") {
        return None;
    }
    if has("upgrade", "websocket") {
        let key = headers.get(header::SEC_WEBSOCKET_KEY)?.as_bytes();
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key);
        let offered = tokens("sec-websocket-protocol");
        return offered
            .iter()
            .any(|p| p == WEBSOCKET_PROTOCOL)
            .then_some(Upgrade::WebSocket(accept));
    }
    (has("upgrade", "SPDY/3.1")
        && tokens("x-stream-protocol-version")
            .iter()
            .any(|p| p == STREAM_PROTOCOL))
    .then_some(Upgrade::Spdy)
}

async fn over_spdy(upgrade: OnUpgrade, dial: session::Dial) {
    match upgrade.await {
        Ok(upgraded) => {
            let (read, write) = tokio::io::split(TokioIo::new(upgraded));
            session::serve(read, write, dial).await;
        }
        Err(e) => tracing::debug!(error = %e, "port-forward upgrade"),
    }
}

/// SPDY inside binary WebSocket messages: the messages' payloads are one byte stream each way.
async fn over_websocket(upgrade: OnUpgrade, dial: session::Dial) {
    let upgraded = match upgrade.await {
        Ok(u) => u,
        Err(e) => {
            tracing::debug!(error = %e, "port-forward upgrade");
            return;
        }
    };
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
    let (mut sink, mut stream) = ws.split();
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    let (mut from_session, mut to_session) = tokio::io::split(theirs);
    let inbound = async move {
        while let Some(Ok(message)) = stream.next().await {
            let bytes = match message {
                Message::Binary(bytes) => bytes,
                Message::Close(_) => break,
                _ => continue,
            };
            if to_session.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = to_session.shutdown().await;
    };
    let outbound = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from_session.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let message = Message::Binary(bytes::Bytes::copy_from_slice(&buf[..n]));
                    if sink.send(message).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = sink.send(Message::Close(None)).await;
        let _ = sink.close().await;
    };
    let (read, write) = tokio::io::split(ours);
    tokio::join!(session::serve(read, write, dial), inbound, outbound);
}

/// Dials `localhost:PORT` inside `netns`, IPv4 then IPv6 (containerd's order); the error
/// text is kubelet's with containerd's detail.
fn netns_dial(netns: PathBuf, pod: String, uid: String) -> session::Dial {
    Arc::new(move |port: u16| {
        let (netns, pod, uid) = (netns.clone(), pod.clone(), uid.clone());
        Box::pin(async move {
            let v4 = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let v6 = std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
            let e4 = match dial_in(&netns, v4).await {
                Ok(c) => return Ok(c),
                Err(e) => e,
            };
            let e6 = match dial_in(&netns, v6).await {
                Ok(c) => return Ok(c),
                Err(e) => e,
            };
            Err(format!(
                "error forwarding port {port} to pod {pod}, uid {uid}: failed to connect to \
                 localhost:{port} inside the pod's network namespace, IPv4: dial tcp4 {v4}: \
                 connect: {} IPv6 dial tcp6 {v6}: connect: {}",
                go_text(&e4),
                go_text(&e6),
            ))
        })
    })
}

/// An errno as Go prints it ("connection refused").
fn go_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        _ => e.to_string(),
    }
}

/// A TCP connection to `addr` made inside the network namespace `netns`.
pub(super) async fn dial_in(
    netns: &std::path::Path,
    addr: std::net::SocketAddr,
) -> std::io::Result<tokio::net::TcpStream> {
    let domain = match addr {
        std::net::SocketAddr::V4(_) => socket2::Domain::IPV4,
        std::net::SocketAddr::V6(_) => socket2::Domain::IPV6,
    };
    let sock = crate::sys::netns_socket::tcp_socket_in(netns.to_path_buf(), domain).await?;
    let std_stream: std::net::TcpStream = sock.into();
    tokio::net::TcpSocket::from_std_stream(std_stream)
        .connect(addr)
        .await
}

#[cfg(test)]
mod tests;
