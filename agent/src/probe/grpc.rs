//! gRPC probes: `grpc.health.v1.Health/Check` over HTTP/2 (h2c, no TLS, as Kubernetes does);
//! passes when the call returns grpc-status 0 with status SERVING (1). h2 carries the call; the
//! protobuf request and response are one field each, so they are encoded by hand. The call's
//! status is read from the trailers or, in a trailers-only reply, the response headers; a
//! reply without one fails. Messages follow kubelet's gRPC prober.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::pin;
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::{Method, Request};

use super::net::{dial, NetTarget};

/// The health-check request message: `HealthCheckRequest { service = 1 }`, gRPC-framed.
pub fn encode_request(service: &str) -> Bytes {
    let mut msg = Vec::new();
    if !service.is_empty() {
        msg.push(0x0a);
        put_varint(&mut msg, service.len() as u64);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    frame.extend_from_slice(&msg);
    Bytes::from(frame)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.first()?;
        buf.advance(1);
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The `status` field of a gRPC-framed `HealthCheckResponse` (0 when absent = UNKNOWN).
pub fn decode_status(frame: &[u8]) -> Result<u64, String> {
    if frame.len() < 5 || frame[0] != 0 {
        return Err("malformed gRPC response frame".into());
    }
    let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
    let mut msg = frame.get(5..5 + len).ok_or("truncated gRPC response")?;
    let mut status = 0;
    while !msg.is_empty() {
        let tag = get_varint(&mut msg).ok_or("bad protobuf tag")?;
        match (tag >> 3, tag & 7) {
            (1, 0) => status = get_varint(&mut msg).ok_or("bad status")?,
            (_, 0) => {
                get_varint(&mut msg).ok_or("bad varint")?;
            }
            (_, 2) => {
                let n = get_varint(&mut msg).ok_or("bad length")? as usize;
                if n > msg.len() {
                    return Err("truncated field".into());
                }
                msg.advance(n);
            }
            _ => return Err("unsupported protobuf wire type".into()),
        }
    }
    Ok(status)
}

/// grpc: passes when the server reports SERVING. The connection is driven in this task, no
/// task is spawned per probe. A failed dial reads as kubelet's, whose gRPC dial retries
/// until the probe's `timeout`: `timeout: failed to connect service "10.244.1.5:9000"
/// within 1s`.
pub async fn grpc_probe(
    target: &NetTarget,
    port: u16,
    service: &str,
    timeout: Duration,
) -> Result<(), String> {
    let stream = dial(target, None, port).await.map_err(|e| {
        let ip = target.pod_ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        tracing::debug!(port, error = %e, "gRPC probe dial");
        format!(
            "timeout: failed to connect service \"{}\" within {}",
            SocketAddr::new(ip, port),
            crate::go_duration::go_duration(timeout)
        )
    })?;
    let (client, conn) = h2::client::handshake(stream)
        .await
        .map_err(|e| format!("http2 handshake: {e}"))?;
    let mut conn = pin!(conn);
    let mut result = pin!(check(client, port, service));
    tokio::select! {
        biased;
        r = &mut result => r,
        c = &mut conn => match c {
            // The server closed the connection: the call ends with what it got.
            Ok(()) => result.await,
            Err(e) => Err(format!("http2 connection: {e}")),
        },
    }
}

async fn check(
    client: h2::client::SendRequest<Bytes>,
    port: u16,
    service: &str,
) -> Result<(), String> {
    let mut client = client.ready().await.map_err(|e| format!("http2: {e}"))?;
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!(
            "http://localhost:{port}/grpc.health.v1.Health/Check"
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", "kube-probe/bosun")
        .body(())
        .map_err(|e| format!("building request: {e}"))?;
    let (resp, mut body) = client
        .send_request(req, false)
        .map_err(|e| format!("sending request: {e}"))?;
    body.send_data(encode_request(service), true)
        .map_err(|e| format!("sending request: {e}"))?;
    let resp = resp.await.map_err(|e| format!("response: {e}"))?;
    if resp.status() != http::StatusCode::OK {
        return Err(format!("gRPC probe: HTTP status {}", resp.status()));
    }
    let (head, mut recv) = resp.into_parts();
    let mut data = Vec::new();
    while let Some(chunk) = recv.data().await {
        let chunk = chunk.map_err(|e| format!("reading response: {e}"))?;
        let _ = recv.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
        if data.len() > 64 * 1024 {
            return Err("gRPC response too large".into());
        }
    }
    let trailers = recv
        .trailers()
        .await
        .map_err(|e| format!("reading trailers: {e}"))?;
    // The status is in the trailers, or — a trailers-only reply, how errors such as
    // UNIMPLEMENTED and NOT_FOUND come back — in the response headers.
    let (code, message) = call_status(trailers.as_ref().unwrap_or(&head.headers))?;
    match code {
        0 => {}
        12 => {
            return Err(format!(
                "this server does not implement the grpc health protocol (grpc.health.v1.Health): {message}"
            ))
        }
        c => {
            return Err(format!(
                "error: health rpc probe failed: rpc error: code = {} desc = {message}",
                code_name(c)
            ))
        }
    }
    match decode_status(&data)? {
        1 => Ok(()),
        s => Err(format!(
            "service unhealthy (responded with {:?})",
            status_name(s)
        )),
    }
}

/// `grpc-status` and the percent-decoded `grpc-message` of a reply; a reply without a status
/// is an error, never success.
fn call_status(fields: &http::HeaderMap) -> Result<(u32, String), String> {
    let code = fields
        .get("grpc-status")
        .ok_or("gRPC response carries no grpc-status")?;
    let code = code
        .to_str()
        .ok()
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("gRPC response has a malformed grpc-status {code:?}"))?;
    let message = fields
        .get("grpc-message")
        .map(|m| percent_decode(m.as_bytes()))
        .unwrap_or_default();
    Ok((code, message))
}

/// gRPC percent-encodes `grpc-message` (RFC 3986 style, `%XX`).
fn percent_decode(bytes: &[u8]) -> String {
    percent_encoding::percent_decode(bytes)
        .decode_utf8_lossy()
        .into_owned()
}

/// gRPC status code names, as kubelet prints them.
fn code_name(code: u32) -> String {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    NAMES
        .get(code as usize)
        .map_or_else(|| format!("Code({code})"), |n| n.to_string())
}

fn status_name(s: u64) -> &'static str {
    match s {
        0 => "UNKNOWN",
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "an unknown status",
    }
}

#[cfg(test)]
mod against_servers;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_response_encoding() {
        assert_eq!(&encode_request("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(
            &encode_request("db")[..],
            &[0, 0, 0, 0, 4, 0x0a, 2, b'd', b'b']
        );
        assert_eq!(decode_status(&[0, 0, 0, 0, 2, 0x08, 1]), Ok(1));
        assert_eq!(decode_status(&[0, 0, 0, 0, 0]), Ok(0));
        assert!(decode_status(&[0, 0, 0, 0, 9, 0x08]).is_err());
        assert!(decode_status(&[1]).is_err());
    }

    #[test]
    fn grpc_messages_are_percent_decoded_and_codes_named() {
        assert_eq!(percent_decode(b"no%20such%3Aservice%"), "no such:service%");
        assert_eq!(code_name(5), "NotFound");
        assert_eq!(code_name(99), "Code(99)");
    }
}
