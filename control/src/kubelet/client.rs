//! HTTPS to a node's kubelet API with the client certificate `kube-apiserver-kubelet-client`
//! (no groups: the certificate gives no right on our own API), issued by our CA at start. The
//! kubelet's serving certificate is self-signed and not verified — kube-apiserver's behaviour
//! without `--kubelet-certificate-authority`; the handshake signatures still are.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio_rustls::TlsConnector;

use crate::pki::{Ca, Subject};

/// The user our kubelet client certificate names (the agent's kubelet API admits only it).
pub const USER: &str = "kube-apiserver-kubelet-client";

/// How long dialling a kubelet (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("issuing the kubelet client certificate: {0}")]
    Certificate(#[from] crate::pki::PkiError),
    #[error("the kubelet client certificate: {0}")]
    Pem(rustls::pki_types::pem::Error),
    #[error("kubelet client TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("dialing the kubelet at {location}: {detail}")]
    Dial { location: String, detail: String },
    #[error("the kubelet at {location}: {source}")]
    Http {
        location: String,
        source: hyper::Error,
    },
}

/// The client, one TLS configuration for every node.
pub struct KubeletClient {
    tls: Arc<ClientConfig>,
}

impl KubeletClient {
    /// Issues the client certificate from `ca` and builds the TLS configuration.
    pub fn new(ca: &Ca) -> Result<KubeletClient, KubeletError> {
        let pair = ca.issue_client(&Subject {
            user: USER.to_owned(),
            groups: Vec::new(),
        })?;
        let chain = CertificateDer::pem_slice_iter(pair.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(KubeletError::Pem)?;
        use rustls::pki_types::pem::PemObject;
        let key =
            PrivateKeyDer::from_pem_slice(pair.key_pem.as_bytes()).map_err(KubeletError::Pem)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SelfSignedKubelet(provider)))
            .with_client_auth_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(KubeletClient {
            tls: Arc::new(config),
        })
    }

    /// `GET https://<location><path_and_query>`; the response streams while the caller reads
    /// its body.
    pub async fn get(
        &self,
        location: &str,
        path_and_query: &str,
    ) -> Result<Response<Incoming>, KubeletError> {
        let request = Outgoing::get(path_and_query, HeaderMap::new());
        self.send(location, request).await
    }

    /// Any request (`nodes/proxy`): `method`, the client's `headers` and `body` to
    /// `https://<location><path_and_query>`; the response streams while the caller reads it.
    pub async fn request(
        &self,
        location: &str,
        method: http::Method,
        path_and_query: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response<Incoming>, KubeletError> {
        let request = Outgoing {
            method,
            path_and_query,
            headers,
            body,
        };
        self.send(location, request).await
    }

    /// `GET` with the client's upgrade `headers` (`pods/exec`); on a 101 the connection is
    /// taken with `hyper::upgrade::on` on the response.
    pub async fn upgrade(
        &self,
        location: &str,
        path_and_query: &str,
        headers: HeaderMap,
    ) -> Result<Response<Incoming>, KubeletError> {
        self.send(location, Outgoing::get(path_and_query, headers))
            .await
    }

    async fn send(
        &self,
        location: &str,
        outgoing: Outgoing<'_>,
    ) -> Result<Response<Incoming>, KubeletError> {
        let dial = |detail: String| KubeletError::Dial {
            location: location.to_owned(),
            detail,
        };
        let host = location
            .rsplit_once(':')
            .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
            .unwrap_or(location);
        let name = ServerName::try_from(host.to_owned()).map_err(|e| dial(e.to_string()))?;
        let connector = TlsConnector::from(self.tls.clone());
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let tcp = tokio::net::TcpStream::connect(location).await?;
            connector.connect(name, tcp).await
        })
        .await
        .map_err(|_| dial(format!("no answer within {CONNECT_TIMEOUT:?}")))?
        .map_err(|e| dial(e.to_string()))?;
        let http = |source| KubeletError::Http {
            location: location.to_owned(),
            source,
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http)?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "kubelet connection");
            }
        });
        let mut request = Request::builder()
            .method(outgoing.method)
            .uri(outgoing.path_and_query)
            .header(http::header::HOST, location)
            .body(Full::new(outgoing.body))
            .map_err(|e| dial(e.to_string()))?;
        request.headers_mut().extend(outgoing.headers);
        sender.send_request(request).await.map_err(http)
    }
}

/// A request to a kubelet.
struct Outgoing<'a> {
    method: http::Method,
    path_and_query: &'a str,
    headers: HeaderMap,
    body: Bytes,
}

impl<'a> Outgoing<'a> {
    fn get(path_and_query: &'a str, headers: HeaderMap) -> Self {
        Outgoing {
            method: http::Method::GET,
            path_and_query,
            headers,
            body: Bytes::new(),
        }
    }
}

/// Accepts the kubelet's self-signed certificate; checks the handshake signatures.
#[derive(Debug)]
struct SelfSignedKubelet(Arc<CryptoProvider>);

impl ServerCertVerifier for SelfSignedKubelet {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
