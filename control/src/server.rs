//! The HTTPS listener: TLS (rustls) with optional client certificates verified against the
//! cluster CA, HTTP/1.1 and HTTP/2 (hyper), one task per connection. An `accept()` error
//! (EMFILE under load) backs off instead of spinning, and is logged once per episode.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::api::ApiState;
use crate::authn::identity::{self, Identity};
use crate::http_util::ResponseBody;
use crate::pki::CertPair;
use crate::repoll::Repoll;
use crate::router;

/// Streams one HTTP/2 connection may have open at once (kube-apiserver's default).
const HTTP2_MAX_STREAMS: u32 = 1000;
/// Receive windows large enough that a client's request bodies never wait for a window
/// update from a busy server.
const HTTP2_STREAM_WINDOW: u32 = 1 << 20;
const HTTP2_CONNECTION_WINDOW: u32 = 16 << 20;

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("parsing {what}: {source}")]
    Pem {
        what: &'static str,
        source: rustls::pki_types::pem::Error,
    },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// A TLS server configuration serving `serving`, accepting (not requiring) client
/// certificates signed by `ca_pem`.
pub fn tls_config(ca_pem: &str, serving: &CertPair) -> Result<Arc<ServerConfig>, TlsError> {
    let pem = |what| move |source| TlsError::Pem { what, source };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.map_err(pem("the CA"))?)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .allow_unauthenticated()
    .build()?;
    let chain = CertificateDer::pem_slice_iter(serving.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem("the serving certificate"))?;
    let key = PrivateKeyDer::from_pem_slice(serving.key_pem.as_bytes())
        .map_err(pem("the serving key"))?;
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, tls: Arc<ServerConfig>, info: Arc<ApiState>) {
    let acceptor = TlsAcceptor::from(tls);
    let mut backoff = AcceptBackoff::default();
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                backoff.reset();
                let (acceptor, info) = (acceptor.clone(), info.clone());
                tokio::spawn(async move { connection(acceptor, tcp, peer, info).await });
            }
            Err(error) => tokio::time::sleep(backoff.failed(&error)).await,
        }
    }
}

async fn connection(
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    info: Arc<ApiState>,
) {
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let identity: Option<Arc<Identity>> = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(identity::from_client_certificate)
        .map(Arc::new);
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        let (info, identity) = (info.clone(), identity.clone());
        // The client's address, for the audit log's sourceIPs.
        request.extensions_mut().insert(peer);
        async move {
            let response: Response<ResponseBody> =
                router::route(&info, identity.as_deref(), request).await;
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // kube-apiserver's --http2-max-streams-per-connection: a node's watches and requests
    // are streams of one connection.
    builder
        .http2()
        .max_concurrent_streams(HTTP2_MAX_STREAMS)
        .initial_stream_window_size(HTTP2_STREAM_WINDOW)
        .initial_connection_window_size(HTTP2_CONNECTION_WINDOW);
    // The handler runs inside the connection's dispatcher: their wake-ups of each other are
    // polled through at once (`Repoll`), not left to tokio to reschedule.
    let serving = Repoll::new(builder.serve_connection_with_upgrades(TokioIo::new(tls), service));
    if let Err(error) = serving.await {
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}

/// Backoff for a failing `accept()`: 10 ms doubling to 1 s, logged once per episode.
#[derive(Default)]
struct AcceptBackoff {
    delay: Option<Duration>,
}

impl AcceptBackoff {
    fn failed(&mut self, error: &std::io::Error) -> Duration {
        let next = match self.delay {
            None => {
                tracing::warn!(%error, "accept failed; backing off until it works again");
                Duration::from_millis(10)
            }
            Some(d) => (d * 2).min(Duration::from_secs(1)),
        };
        self.delay = Some(next);
        next
    }

    fn reset(&mut self) {
        if self.delay.take().is_some() {
            tracing::info!("accept works again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_backoff_doubles_to_a_second_and_resets() {
        let mut b = AcceptBackoff::default();
        let e = std::io::Error::from_raw_os_error(24);
        let delays: Vec<u128> = (0..9).map(|_| b.failed(&e).as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.reset();
        assert_eq!(b.failed(&e).as_millis(), 10);
    }
}
