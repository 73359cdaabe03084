//! TLS of the kubelet API: a self-signed serving certificate made at start for the node's
//! name and address (like kubelet's default when no serving certificate is configured), and
//! client certificates verified against the cluster CA of the agent's kubeconfig. A client
//! without a certificate still completes the handshake, so it gets an HTTP 401 rather than a
//! TLS alert; one with a certificate the CA did not sign fails the handshake.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "the kubeconfig names no cluster CA to verify the API server's client certificate with"
    )]
    NoCa,
    #[error("the cluster CA of the kubeconfig: {0}")]
    Ca(rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(rustls::server::VerifierBuilderError),
    #[error("making the self-signed serving certificate: {0}")]
    Serving(rcgen::Error),
    #[error("TLS configuration: {0}")]
    Config(rustls::Error),
}

/// The server configuration: `ca_der` the cluster CA certificates (DER), the serving
/// certificate self-signed for `node_name` and `ip`.
pub fn server_config(
    ca_der: &[Vec<u8>],
    node_name: &str,
    ip: IpAddr,
) -> Result<Arc<ServerConfig>, TlsError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if ca_der.is_empty() {
        return Err(TlsError::NoCa);
    }
    let mut roots = RootCertStore::empty();
    for der in ca_der {
        roots
            .add(CertificateDer::from(der.clone()))
            .map_err(TlsError::Ca)?;
    }
    let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
        .allow_unauthenticated()
        .build()
        .map_err(TlsError::Verifier)?;
    let names = vec![node_name.to_owned(), ip.to_string()];
    let serving = rcgen::generate_simple_self_signed(names).map_err(TlsError::Serving)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        serving.signing_key.serialize_der(),
    ));
    let mut config = ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![serving.cert.der().clone()], key)
        .map_err(TlsError::Config)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
