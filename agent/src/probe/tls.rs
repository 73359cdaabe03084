//! TLS for HTTPS probes: like kubelet, the prober does not verify the server's certificate
//! (pods serve self-signed ones); it only wants the TLS handshake and an HTTP status. One client
//! config, built once, serves every probe.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

/// Accepts any certificate; signatures in the handshake are still checked, so the session is
/// really with whoever holds the certificate's key.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
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
        rustls::crypto::verify_tls12_signature(
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
        rustls::crypto::verify_tls13_signature(
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

/// The probes' TLS connector.
pub fn connector() -> Result<tokio_rustls::TlsConnector, String> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS config: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth();
        Ok(Arc::new(config))
    });
    config.clone().map(tokio_rustls::TlsConnector::from)
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::path::PathBuf;
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::probe::net::{http_probe, HttpRequest, NetTarget};

    /// A self-signed certificate made for this test (openssl req -x509, P-256).
    const CERT: &[u8] = include_bytes!("testdata/cert.pem");
    const KEY: &[u8] = include_bytes!("testdata/key.pem");

    #[tokio::test(flavor = "current_thread")]
    async fn https_probe_accepts_a_self_signed_certificate() {
        let cert = CertificateDer::from_pem_slice(CERT).expect("cert");
        let key = PrivateKeyDer::from_pem_slice(KEY).expect("key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let (sock, _) = listener.accept().await.expect("accept");
            let mut tls = acceptor.accept(sock).await.expect("tls accept");
            let mut buf = [0u8; 1024];
            let n = tls.read(&mut buf).await.expect("read");
            assert!(buf[..n].starts_with(b"GET /secure HTTP/1.1\r\n"));
            let _ = tls.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await;
            let _ = tls.shutdown().await;
        });
        let target = NetTarget {
            pod_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            netns: PathBuf::new(),
            node_netns: None,
        };
        let req = HttpRequest {
            host: None,
            port,
            target: http::uri::PathAndQuery::from_static("/secure"),
            headers: Vec::new(),
            https: true,
        };
        assert_eq!(http_probe(&target, &req).await, Ok(()));
        // Plain HTTP against nothing listening fails.
        assert!(http_probe(&target, &req).await.is_err());
    }
}
