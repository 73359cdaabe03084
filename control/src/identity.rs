//! Who is calling: the user and groups of a verified client certificate (CN = user,
//! O = groups, as Kubernetes reads them). No credentials means no identity — never a silent
//! anonymous admin; the router answers 401 for everything but the public endpoints.

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

impl Identity {
    /// Whether the caller is a cluster administrator (`system:masters`).
    pub fn is_admin(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }
}

/// The identity in a client certificate the TLS layer already verified against our CA;
/// `None` when it names no user.
pub fn from_client_certificate(cert: &CertificateDer<'_>) -> Option<Identity> {
    let (_, parsed) = X509Certificate::from_der(cert.as_ref()).ok()?;
    let subject = parsed.subject();
    let user = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())?
        .to_owned();
    if user.is_empty() {
        return None;
    }
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    Some(Identity { user, groups })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{Ca, Subject};
    use rustls::pki_types::pem::PemObject;

    #[test]
    fn user_and_groups_come_from_cn_and_o() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::load_or_create(dir.path()).unwrap();
        let pair = ca
            .issue_client(&Subject {
                user: "system:node:n1".into(),
                groups: vec!["system:nodes".into()],
            })
            .unwrap();
        let der =
            rustls::pki_types::CertificateDer::from_pem_slice(pair.cert_pem.as_bytes()).unwrap();
        let id = from_client_certificate(&der).unwrap();
        assert_eq!(id.user, "system:node:n1");
        assert_eq!(id.groups, ["system:nodes"]);
        assert!(!id.is_admin());
        let admin =
            CertificateDer::from_pem_slice(ca.admin().unwrap().cert_pem.as_bytes()).unwrap();
        assert!(from_client_certificate(&admin).unwrap().is_admin());
    }
}
