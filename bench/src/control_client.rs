//! The control benchmark's API client: HTTPS/1.1 connections to `bosun-control` with the
//! admin client certificate (rustls, hyper's connection-level client), one connection per
//! concurrent client as kubectl-like clients hold them. Every request is bounded by
//! [`REQUEST_LIMIT`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName};
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

use super::control_procs::Kubeconfig;

pub const REQUEST_LIMIT: Duration = Duration::from_secs(30);

/// How to reach the server: its address and the admin's TLS client configuration.
#[derive(Clone)]
pub struct Tls {
    connector: TlsConnector,
    server: SocketAddr,
}

impl Tls {
    pub fn new(kubeconfig: &Kubeconfig) -> Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(kubeconfig.ca_pem.as_bytes()) {
            roots.add(cert.context("the kubeconfig's CA")?)?;
        }
        let chain = CertificateDer::pem_slice_iter(kubeconfig.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .context("the kubeconfig's client certificate")?;
        let key = PrivateKeyDer::from_pem_slice(kubeconfig.key_pem.as_bytes())
            .context("the kubeconfig's client key")?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            server: kubeconfig.server,
        })
    }

    /// A new TLS connection (bounded).
    pub async fn connect(&self) -> Result<Conn> {
        let connect = async {
            let tcp = tokio::net::TcpStream::connect(self.server).await?;
            tcp.set_nodelay(true)?;
            let name = ServerName::IpAddress(self.server.ip().into());
            let tls = self.connector.connect(name, tcp).await?;
            let (send, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .context("HTTP handshake")?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            anyhow::Ok(send)
        };
        let send = timeout(REQUEST_LIMIT, connect)
            .await
            .context("connecting timed out")?
            .with_context(|| format!("connecting to {}", self.server))?;
        Ok(Conn {
            send,
            host: self.server.to_string(),
        })
    }
}

/// One keep-alive connection: one request at a time.
pub struct Conn {
    send: SendRequest<Full<Bytes>>,
    host: String,
}

impl Conn {
    /// Sends a request and reads the whole answer (bounded).
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes)> {
        let exchange = async {
            let response = self.open(method.clone(), path, body).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, body))
        };
        timeout(REQUEST_LIMIT, exchange)
            .await
            .with_context(|| format!("{method} {path} timed out"))?
            .with_context(|| format!("{method} {path}"))
    }

    /// Like [`Conn::call`], failing unless the answer has status `expect`.
    pub async fn expect(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        expect: StatusCode,
    ) -> Result<Bytes> {
        let (status, body) = self.call(method.clone(), path, body).await?;
        if status != expect {
            bail!(
                "{method} {path}: {status} (wanted {expect}): {}",
                String::from_utf8_lossy(&body[..body.len().min(500)])
            );
        }
        Ok(body)
    }

    /// Sends a request and returns the answer with its body unread (for watches).
    pub async fn open(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<http::Response<Incoming>> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &self.host)
            .header(http::header::ACCEPT, "application/json");
        if body.is_some() {
            request = request.header(http::header::CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(body.unwrap_or_default()))?;
        self.send.ready().await?;
        Ok(self.send.send_request(request).await?)
    }
}
