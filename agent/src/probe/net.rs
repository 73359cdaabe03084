//! Network probes: tcpSocket (connect), httpGet (HTTP/1.1 GET through hyper's client, 200–399
//! passes) and the dialing they share — to the pod IP from the node, or from inside the pod's
//! network namespace to 127.0.0.1 when the pod has no IP routable from the node. Never follows
//! a redirect and never reads a response body: the status is the verdict. The request is built
//! from typed `http` values checked at validation time, so nothing is spliced by hand.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::pin::pin;

use http::header::{ACCEPT, CONNECTION, HOST, USER_AGENT};
use http::uri::PathAndQuery;
use http::{HeaderName, HeaderValue, Request};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpSocket, TcpStream};

use crate::sys::netns_socket::tcp_socket_in;

/// Where a pod's network probes go.
#[derive(Debug, Clone)]
pub struct NetTarget {
    pub pod_ip: Option<IpAddr>,
    /// The pod's netns (used when it has no IP).
    pub netns: PathBuf,
    /// The node's netns when it is not the agent's own: pod IPs are dialed from there.
    pub node_netns: Option<PathBuf>,
}

/// Connects to `port` on the probe host: `host` if given, else the pod IP, else 127.0.0.1
/// inside the pod's netns.
pub async fn dial(target: &NetTarget, host: Option<&str>, port: u16) -> io::Result<TcpStream> {
    if let Some(h) = host.filter(|h| !h.is_empty()) {
        let addr = tokio::net::lookup_host((h, port))
            .await?
            .next()
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("host {h} has no address"))
            })?;
        return TcpStream::connect(addr).await;
    }
    let (netns, addr) = match (target.pod_ip, &target.node_netns) {
        (Some(ip), None) => return TcpStream::connect(SocketAddr::new(ip, port)).await,
        (Some(ip), Some(node)) => (node.clone(), SocketAddr::new(ip, port)),
        (None, _) => (
            target.netns.clone(),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
        ),
    };
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let sock = tcp_socket_in(netns, domain).await?;
    let std_stream: std::net::TcpStream = sock.into();
    TcpSocket::from_std_stream(std_stream).connect(addr).await
}

/// tcpSocket: passes when the connection is established.
pub async fn tcp_probe(target: &NetTarget, host: Option<&str>, port: u16) -> Result<(), String> {
    dial(target, host, port)
        .await
        .map(drop)
        .map_err(|e| dial_error(target, host, port, &e))
}

/// A failed dial in Go's words, as kubelet reports it: `dial tcp 10.244.1.5:8080: connect:
/// connection refused`.
pub(super) fn dial_error(
    target: &NetTarget,
    host: Option<&str>,
    port: u16,
    e: &io::Error,
) -> String {
    let ip = target.pod_ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let address = match host.filter(|h| !h.is_empty()) {
        Some(h) => format!("{h}:{port}"),
        None => SocketAddr::new(ip, port).to_string(),
    };
    let why = match e.kind() {
        io::ErrorKind::ConnectionRefused => "connect: connection refused".to_string(),
        io::ErrorKind::TimedOut => "i/o timeout".to_string(),
        _ => e.to_string(),
    };
    format!("dial tcp {address}: {why}")
}

/// The request of an httpGet probe, from fields checked at validation time
/// ([`crate::spec::HttpGetAction::validate_request`]).
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub host: Option<String>,
    pub port: u16,
    pub target: PathAndQuery,
    /// The manifest's `httpHeaders`, in order (a `Host` among them replaces the default).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub https: bool,
}

/// httpGet: passes on a 2xx/3xx status.
pub async fn http_probe(target: &NetTarget, req: &HttpRequest) -> Result<(), String> {
    let request = build_request(target, req)?;
    let stream = dial(target, req.host.as_deref(), req.port)
        .await
        .map_err(|e| {
            let dial = dial_error(target, req.host.as_deref(), req.port, &e);
            format!("Get \"{}\": {dial}", probe_url(target, req))
        })?;
    if req.https {
        let name = rustls::pki_types::ServerName::try_from(
            req.host.clone().unwrap_or_else(|| "localhost".into()),
        )
        .map_err(|e| format!("TLS server name: {e}"))?;
        let tls = super::tls::connector()?
            .connect(name, stream)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        return http_exchange(tls, request).await;
    }
    http_exchange(stream, request).await
}

/// The GET with kubelet's default headers (`User-Agent: kube-probe/…`, `Accept: */*`) unless
/// the manifest sets them, and `Connection: close`: one request per connection.
fn build_request(
    target: &NetTarget,
    req: &HttpRequest,
) -> Result<Request<Empty<&'static [u8]>>, String> {
    let mut builder = Request::get(req.target.clone());
    let headers = builder
        .headers_mut()
        .ok_or("building the request: bad request target")?;
    for (name, value) in &req.headers {
        headers.append(name.clone(), value.clone());
    }
    if !headers.contains_key(HOST) {
        let host = match (&req.host, target.pod_ip) {
            (Some(h), _) => host_port(h, req.port),
            (None, Some(ip)) => SocketAddr::new(ip, req.port).to_string(),
            (None, None) => format!("127.0.0.1:{}", req.port),
        };
        let value = HeaderValue::try_from(host).map_err(|e| format!("Host header: {e}"))?;
        headers.insert(HOST, value);
    }
    if !headers.contains_key(USER_AGENT) {
        headers.insert(USER_AGENT, HeaderValue::from_static("kube-probe/bosun"));
    }
    if !headers.contains_key(ACCEPT) {
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
    }
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    builder
        .body(Empty::new())
        .map_err(|e| format!("building the request: {e}"))
}

/// The URL kubelet names in an httpGet probe's errors: `http://10.244.1.5:8080/healthz`.
pub(super) fn probe_url(target: &NetTarget, req: &HttpRequest) -> String {
    let scheme = if req.https { "https" } else { "http" };
    let host = match (&req.host, target.pod_ip) {
        (Some(h), _) if !h.is_empty() => host_port(h, req.port),
        (_, Some(ip)) => SocketAddr::new(ip, req.port).to_string(),
        _ => format!("127.0.0.1:{}", req.port),
    };
    format!("{scheme}://{host}{}", req.target)
}

/// `host:port`, with brackets around an IPv6 address.
fn host_port(host: &str, port: u16) -> String {
    match host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port).to_string(),
        Err(_) => format!("{host}:{port}"),
    }
}

/// Sends `request` over `stream` (plain TCP or TLS) with hyper's HTTP/1 client and judges the
/// response status. The connection is driven in this task (no task spawned per probe) until
/// the response head has arrived; then both are dropped, closing the socket.
async fn http_exchange<S>(stream: S, request: Request<Empty<&'static [u8]>>) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .title_case_headers(true)
        .handshake::<_, Empty<&'static [u8]>>(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    let mut response = pin!(sender.send_request(request));
    let mut conn = pin!(conn);
    let response = tokio::select! {
        biased;
        r = &mut response => r,
        c = &mut conn => match c {
            // The connection ended: the response (or why there is none) is in the channel.
            Ok(()) => response.await,
            Err(e) => return Err(format!("HTTP request: {e}")),
        },
    }
    .map_err(|e| format!("HTTP request: {e}"))?;
    let status = response.status().as_u16();
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with statuscode: {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn loopback() -> NetTarget {
        NetTarget {
            pod_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            netns: PathBuf::new(),
            node_netns: None,
        }
    }

    /// Serves one connection per entry of `replies` with that raw response; returns the
    /// requests it read.
    async fn serve_raw(
        listener: tokio::net::TcpListener,
        replies: Vec<&'static str>,
    ) -> Vec<String> {
        let mut seen = Vec::new();
        for reply in replies {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).await.expect("read");
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            seen.push(String::from_utf8_lossy(&req).into_owned());
            let _ = s.write_all(reply.as_bytes()).await;
        }
        seen
    }

    fn request(port: u16, headers: &[(&'static str, &'static str)]) -> HttpRequest {
        HttpRequest {
            host: None,
            port,
            target: PathAndQuery::from_static("/healthz?x=1"),
            headers: headers
                .iter()
                .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
                .collect(),
            https: false,
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_refused_http_probe_reads_as_gos_client_error() {
        // A port nothing listens on: bound, then closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let error = http_probe(&loopback(), &request(port, &[]))
            .await
            .expect_err("refused");
        assert_eq!(
            error,
            format!(
                "Get \"http://127.0.0.1:{port}/healthz?x=1\": dial tcp 127.0.0.1:{port}: \
                 connect: connection refused"
            )
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn http_probe_judges_the_status_and_sends_kubelets_headers() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(serve_raw(
            listener,
            vec![
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                "HTTP/1.1 302 Found\r\nLocation: http://elsewhere/\r\n\r\n",
                "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n",
                "HTTP/1.0 404 Not Found\r\n\r\n",
                "SSH-2.0-OpenSSH_9.2\r\n",
            ],
        ));
        let req = request(port, &[("x-probe", "yes")]);
        assert_eq!(http_probe(&loopback(), &req).await, Ok(()));
        assert_eq!(http_probe(&loopback(), &req).await, Ok(()), "3xx passes");
        let err = http_probe(&loopback(), &req).await.expect_err("500");
        assert_eq!(err, "HTTP probe failed with statuscode: 500");
        let err = http_probe(&loopback(), &req).await.expect_err("404");
        assert_eq!(err, "HTTP probe failed with statuscode: 404");
        let err = http_probe(&loopback(), &req).await.expect_err("not HTTP");
        assert!(err.starts_with("HTTP request:"), "{err}");
        let seen = server.await.expect("server");
        let first = &seen[0];
        assert!(
            first.starts_with("GET /healthz?x=1 HTTP/1.1\r\n"),
            "{first}"
        );
        for line in [
            format!("Host: 127.0.0.1:{port}\r\n"),
            "X-Probe: yes\r\n".into(),
            "User-Agent: kube-probe/bosun\r\n".into(),
            "Accept: */*\r\n".into(),
            "Connection: close\r\n".into(),
        ] {
            assert!(first.contains(&line), "{line:?} missing from {first}");
        }
        assert!(
            tcp_probe(&loopback(), None, port).await.is_err(),
            "listener is gone"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn manifest_host_and_user_agent_headers_replace_the_defaults() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(serve_raw(listener, vec!["HTTP/1.1 204 No Content\r\n\r\n"]));
        let req = request(port, &[("host", "app.test"), ("user-agent", "mine/1")]);
        assert_eq!(http_probe(&loopback(), &req).await, Ok(()));
        let seen = &server.await.expect("server")[0];
        assert!(seen.contains("Host: app.test\r\n"), "{seen}");
        assert!(seen.contains("User-Agent: mine/1\r\n"), "{seen}");
        assert!(!seen.contains("kube-probe"), "{seen}");
        assert_eq!(seen.matches("Host:").count(), 1, "{seen}");
    }

    #[test]
    fn ipv6_hosts_get_brackets() {
        assert_eq!(host_port("::1", 80), "[::1]:80");
        assert_eq!(host_port("db.test", 5432), "db.test:5432");
    }
}
