//! `GET|POST /exec/{ns}/{pod}/{container}?command=…&input=1&output=1&error=1&tty=1`: kubelet's
//! exec endpoint. The options (`options.rs`) and the container (running, with its PID 1) are
//! checked before the upgrade, with kubelet's texts; then the WebSocket handshake is answered
//! (subprotocol `v5.channel.k8s.io` or `v4.channel.k8s.io`, the client's first we speak) and
//! the session (`session.rs`) relays the command's stdio as channel frames. SPDY is refused.

pub mod options;
pub mod session;

use std::sync::Arc;

use http::{header, HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;

use super::{text, Body, KubeletApi};
use crate::pod::{ContainerState, PodStatus};
use crate::probe::exec::ExecTarget;
use crate::runtime::exec::ExecSpec;
use crate::runtime::exec_stream::StreamSpec;
use crate::runtime::ProcessSpec;

/// The exec target of a running container: (pod uid, container name, PID 1).
pub type ExecTargets = Arc<dyn Fn(&str, &str, i32) -> Option<ExecTarget> + Send + Sync>;

/// The channel protocols spoken, best first.
pub const PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// Answers one exec request: an error, or 101 with the session started in the background.
pub fn respond(
    api: &KubeletApi,
    mut req: Request<Incoming>,
    ns: &str,
    pod: &str,
    container: &str,
) -> Response<Body> {
    let opts = match options::parse(req.uri().query().unwrap_or("")) {
        Ok(o) => o,
        Err(e) => return text(StatusCode::BAD_REQUEST, &e),
    };
    let statuses = (api.statuses)();
    let Some(status) = statuses.iter().find(|p| p.namespace == ns && p.name == pod) else {
        return text(StatusCode::NOT_FOUND, "pod does not exist");
    };
    let Some(target) = running_target(api, status, container) else {
        let message = format!("container not found ({container:?})");
        return text(StatusCode::INTERNAL_SERVER_ERROR, &message);
    };
    let Some((key, protocol)) = websocket(req.headers()) else {
        let message = format!(
            "exec needs a WebSocket upgrade with one of the subprotocols {PROTOCOLS:?} (SPDY is not served)"
        );
        return text(StatusCode::BAD_REQUEST, &message);
    };
    let mut env = target.process.env.clone();
    if opts.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".to_owned());
    }
    let spec = StreamSpec {
        exec: ExecSpec {
            pid: target.pid,
            cgroup_tasks: target.cgroup_tasks,
            cgroup_v2_dir: target.cgroup_v2_dir,
            process: ProcessSpec {
                argv: opts.command.clone(),
                env,
                ..target.process
            },
        },
        stdin: opts.stdin,
        stdout: opts.stdout,
        stderr: opts.stderr,
        tty: opts.tty,
        tty_size: None, // the session sets the client's first resize
    };
    let upgrade = hyper::upgrade::on(&mut req);
    let session = session::Session {
        init_exe: target.init_exe,
        spec,
        stream_close: protocol == PROTOCOLS[0],
    };
    tokio::spawn(session.run(upgrade));
    switching(&key, protocol)
}

/// The 101 answer of a channel-protocol WebSocket handshake.
pub(super) fn switching(accept: &str, protocol: &'static str) -> Response<Body> {
    let mut resp = Response::new(Empty::new().map_err(|never| match never {}).boxed());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("websocket"),
    );
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(v) = header::HeaderValue::from_str(accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    h.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        header::HeaderValue::from_static(protocol),
    );
    resp
}

/// How to enter `container` of the pod, when it is running.
fn running_target(api: &KubeletApi, status: &PodStatus, container: &str) -> Option<ExecTarget> {
    let c = (status.init_container_statuses.iter())
        .chain(&status.container_statuses)
        .find(|c| c.name == container)?;
    if !matches!(c.state, ContainerState::Running { .. }) {
        return None;
    }
    (api.exec_targets)(&status.uid, container, c.pid?)
}

/// The accept key and the chosen subprotocol of a WebSocket upgrade request.
pub(super) fn websocket(headers: &HeaderMap) -> Option<(String, &'static str)> {
    let has = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has(header::UPGRADE, "websocket") || !has(header::CONNECTION, "upgrade") {
        return None;
    }
    let key = headers.get(header::SEC_WEBSOCKET_KEY)?.as_bytes();
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key);
    let offered = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim);
    let protocol = offered
        .filter_map(|p| PROTOCOLS.iter().find(|ours| **ours == p))
        .next()?;
    Some((accept, protocol))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_first_protocol_we_speak() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, "websocket".parse().expect("value"));
        h.insert(header::CONNECTION, "Upgrade".parse().expect("value"));
        h.insert(
            header::SEC_WEBSOCKET_KEY,
            "dGhlIHNhbXBsZSBub25jZQ==".parse().expect("value"),
        );
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            "v5.channel.k8s.io, v4.channel.k8s.io, channel.k8s.io"
                .parse()
                .expect("value"),
        );
        let (accept, protocol) = websocket(&h).expect("a websocket");
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(protocol, "v5.channel.k8s.io");
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            "channel.k8s.io".parse().expect("value"),
        );
        assert!(websocket(&h).is_none(), "no protocol we speak");
    }
}
