//! gRPC probes: `grpc.health.v1.Health/Check` over HTTP/2 (h2c, no TLS, as Kubernetes does);
//! passes when the call returns grpc-status 0 with status SERVING (1). The protobuf request and
//! response are one field each, so they are encoded by hand.

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

/// grpc: passes when the server reports SERVING.
pub async fn grpc_probe(target: &NetTarget, port: u16, service: &str) -> Result<(), String> {
    let stream = dial(target, None, port)
        .await
        .map_err(|e| format!("dial port {port}: {e}"))?;
    let (client, conn) = h2::client::handshake(stream)
        .await
        .map_err(|e| format!("http2 handshake: {e}"))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let result = check(client, port, service).await;
    driver.abort();
    result
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
    let mut recv = resp.into_body();
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
    let code = trailers
        .as_ref()
        .and_then(|t| t.get("grpc-status"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if code != "0" {
        return Err(format!("gRPC probe: grpc-status {code:?}"));
    }
    match decode_status(&data)? {
        1 => Ok(()),
        s => Err(format!(
            "service unhealthy (responded with {})",
            status_name(s)
        )),
    }
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
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};
    use std::path::PathBuf;

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

    /// A minimal h2c health server answering `status` to every Check.
    async fn serve(listener: tokio::net::TcpListener, status: u8) {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(sock).await else {
                    return;
                };
                while let Some(Ok((req, mut respond))) = conn.accept().await {
                    let mut body = req.into_body();
                    while let Some(Ok(_)) = body.data().await {}
                    let resp = http::Response::builder()
                        .header("content-type", "application/grpc")
                        .body(())
                        .expect("response");
                    let Ok(mut send) = respond.send_response(resp, false) else {
                        return;
                    };
                    let _ = send.send_data(Bytes::from(vec![0, 0, 0, 0, 2, 0x08, status]), false);
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                    let _ = send.send_trailers(trailers);
                }
            });
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn serving_passes_and_not_serving_fails() {
        let target = NetTarget {
            pod_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            netns: PathBuf::new(),
            node_netns: None,
        };
        for (status, ok) in [(1u8, true), (2, false)] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let port = listener.local_addr().expect("addr").port();
            tokio::spawn(serve(listener, status));
            let r = grpc_probe(&target, port, "").await;
            assert_eq!(r.is_ok(), ok, "{r:?}");
            if let Err(e) = r {
                assert!(e.contains("NOT_SERVING"), "{e}");
            }
        }
    }
}
