//! The metrics endpoint: `GET /metrics` over HTTP/1 with hyper's server, one task per
//! connection, the accept loop backing off on errors ([`crate::accept`]). Anything but
//! `GET /metrics` is a 404. It serves what [`super::metrics`] renders and nothing else.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::accept::AcceptBackoff;

/// How long a client may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the metrics address (before anything else starts, so a taken address fails the
/// agent at once). The listener is non-blocking, ready for [`serve`].
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves `GET /metrics` until the process ends.
pub async fn serve(listener: TcpListener) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving metrics");
    }
    let mut backoff = AcceptBackoff::new("metrics");
    loop {
        let (stream, _) = backoff.accept(|| listener.accept()).await;
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service_fn(respond));
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "metrics connection");
            }
        });
    }
}

async fn respond(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, content_type, body) =
        if req.method() == Method::GET && req.uri().path() == "/metrics" {
            (
                StatusCode::OK,
                super::CONTENT_TYPE,
                super::metrics().render(),
            )
        } else {
            (
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "not found\n".to_string(),
            )
        };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    Ok(resp)
}

/// Where the address already in use is named in words rather than an errno.
pub fn describe_bind_error(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::AddrInUse => "address already in use".into(),
        io::ErrorKind::AddrNotAvailable => "address not available on this host".into(),
        _ => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(port: u16, request: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        s.write_all(request.as_bytes()).await.expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        out
    }

    #[tokio::test(flavor = "current_thread")]
    async fn serves_metrics_over_http_1_0_and_1_1_and_404s_the_rest() {
        let listener = bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(serve(TcpListener::from_std(listener).expect("tokio")));
        let old = get(port, "GET /metrics HTTP/1.0\r\n\r\n").await;
        assert!(old.starts_with("HTTP/1.0 200 OK\r\n"), "{old}");
        assert!(old.contains("bosun_probe_runs_total{"), "{old}");
        assert!(old.contains("text/plain; version=0.0.4"), "{old}");
        let new = get(
            port,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(new.starts_with("HTTP/1.1 200 OK\r\n"), "{new}");
        assert!(
            new.contains("bosun_probe_duration_seconds_bucket{"),
            "{new}"
        );
        let missing = get(
            port,
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(
            missing.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{missing}"
        );
    }

    #[test]
    fn a_taken_address_is_described_in_words() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let err = bind(held.local_addr().expect("addr")).expect_err("taken");
        assert_eq!(describe_bind_error(&err), "address already in use");
    }
}
