//! Network probes: tcpSocket (connect), httpGet (HTTP/1.1 GET, 200–399 passes) and the dialing
//! they share — to the pod IP from the node, or from inside the pod's network namespace to
//! 127.0.0.1 when the pod has no IP routable from the node. Never follows a redirect to another
//! host and never reads more than a status line and headers.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
        .map_err(|e| format!("dial tcp port {port}: {e}"))
}

/// The request of an httpGet probe.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub host: Option<String>,
    pub port: u16,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub https: bool,
}

/// httpGet: passes on a 2xx/3xx status.
pub async fn http_probe(target: &NetTarget, req: &HttpRequest) -> Result<(), String> {
    let stream = dial(target, req.host.as_deref(), req.port)
        .await
        .map_err(|e| format!("dial port {}: {e}", req.port))?;
    if req.https {
        let name = rustls::pki_types::ServerName::try_from(
            req.host.clone().unwrap_or_else(|| "localhost".into()),
        )
        .map_err(|e| format!("TLS server name: {e}"))?;
        let tls = super::tls::connector()?
            .connect(name, stream)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        return http_exchange(tls, target, req).await;
    }
    http_exchange(stream, target, req).await
}

/// Sends the GET and reads the status line over any stream (plain TCP or TLS).
async fn http_exchange<S>(
    mut stream: S,
    target: &NetTarget,
    req: &HttpRequest,
) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let host_header = req
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.clone());
    let host = host_header.unwrap_or_else(|| match (&req.host, target.pod_ip) {
        (Some(h), _) => format!("{h}:{}", req.port),
        (None, Some(ip)) => format!("{ip}:{}", req.port),
        (None, None) => format!("127.0.0.1:{}", req.port),
    });
    let mut text = format!("GET {} HTTP/1.1\r\nHost: {host}\r\n", req.path);
    let mut has_ua = false;
    let mut has_accept = false;
    for (k, v) in req
        .headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
    {
        has_ua |= k.eq_ignore_ascii_case("user-agent");
        has_accept |= k.eq_ignore_ascii_case("accept");
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_ua {
        text.push_str("User-Agent: kube-probe/bosun\r\n");
    }
    if !has_accept {
        text.push_str("Accept: */*\r\n");
    }
    text.push_str("Connection: close\r\n\r\n");
    stream
        .write_all(text.as_bytes())
        .await
        .map_err(|e| format!("write request: {e}"))?;
    let status = read_status(&mut stream).await?;
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with statuscode: {status}"))
    }
}

async fn read_status<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Result<u16, String> {
    let mut buf = [0u8; 256];
    let mut got = 0;
    loop {
        let n = stream
            .read(&mut buf[got..])
            .await
            .map_err(|e| format!("read response: {e}"))?;
        if n == 0 {
            break;
        }
        got += n;
        if buf[..got].contains(&b'\n') || got == buf.len() {
            break;
        }
    }
    parse_status_line(&buf[..got])
}

/// The status code of an HTTP/1.x status line.
pub fn parse_status_line(bytes: &[u8]) -> Result<u16, String> {
    let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let text = String::from_utf8_lossy(line);
    let mut parts = text.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => code
            .parse()
            .map_err(|_| format!("bad status line {text:?}")),
        _ => Err(format!("not an HTTP response: {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r\n"), Ok(200));
        assert_eq!(
            parse_status_line(b"HTTP/1.0 503 Service Unavailable\r\nX: y"),
            Ok(503)
        );
        assert!(parse_status_line(b"SSH-2.0-OpenSSH\r\n").is_err());
        assert!(parse_status_line(b"").is_err());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn http_probe_against_a_loopback_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            for code in [200u16, 500] {
                let (mut s, _) = listener.accept().await.expect("accept");
                let mut req = [0u8; 1024];
                let n = s.read(&mut req).await.expect("read");
                let text = String::from_utf8_lossy(&req[..n]).to_string();
                assert!(text.starts_with("GET /healthz HTTP/1.1\r\n"), "{text}");
                assert!(text.contains("X-Probe: yes\r\n"), "{text}");
                let _ = s
                    .write_all(format!("HTTP/1.1 {code} X\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let target = NetTarget {
            pod_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            netns: PathBuf::new(),
            node_netns: None,
        };
        let req = HttpRequest {
            host: None,
            port,
            path: "/healthz".into(),
            headers: vec![("X-Probe".into(), "yes".into())],
            https: false,
        };
        assert_eq!(http_probe(&target, &req).await, Ok(()));
        let err = http_probe(&target, &req).await.expect_err("500 fails");
        assert!(err.contains("500"), "{err}");
        assert!(
            tcp_probe(&target, None, port).await.is_err(),
            "listener is gone"
        );
    }
}
