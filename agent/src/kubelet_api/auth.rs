//! Who may call the kubelet API: only a client certificate signed by the cluster CA (the TLS
//! layer verifies the chain against the CA of the agent's kubeconfig) whose CN is
//! [`API_SERVER_USER`], the identity bosun-control (like kube-apiserver with kubeadm's
//! `apiserver-kubelet-client` certificate) presents. No certificate → 401; any other identity
//! (a node, an admin, a user) → 403. Pure: the caller passes the verified certificate.

use http::StatusCode;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The CN of the client certificate bosun-control uses towards kubelets.
pub const API_SERVER_USER: &str = "kube-apiserver-kubelet-client";

/// A refusal: status and plain-text reason.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

/// The CN of a DER certificate, if it has one.
fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// Checks the (already verified) client certificate of a connection.
pub fn check(client_cert: Option<&[u8]>) -> Result<(), Refusal> {
    let Some(der) = client_cert else {
        return Err(Refusal {
            status: StatusCode::UNAUTHORIZED,
            message: "Unauthorized".to_owned(),
        });
    };
    match common_name(der) {
        Some(user) if user == API_SERVER_USER => Ok(()),
        Some(user) => Err(Refusal {
            status: StatusCode::FORBIDDEN,
            message: format!(
                "Forbidden (user={user}): only {API_SERVER_USER} may use the kubelet API"
            ),
        }),
        None => Err(Refusal {
            status: StatusCode::FORBIDDEN,
            message: "Forbidden: the client certificate names no user".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(cn: &str) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn only_the_api_server_identity_passes() {
        assert_eq!(
            check(None).expect_err("anonymous").status,
            StatusCode::UNAUTHORIZED
        );
        let node = check(Some(&cert("system:node:n1"))).expect_err("a node");
        assert_eq!(node.status, StatusCode::FORBIDDEN);
        assert!(node.message.contains("system:node:n1"), "{}", node.message);
        check(Some(&cert(API_SERVER_USER))).expect("the API server");
    }
}
