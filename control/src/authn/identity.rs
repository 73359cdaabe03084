//! Who is calling: a user and its groups, as Kubernetes names them — from a verified client
//! certificate (CN = user, O = groups) or a token. Nodes are `system:node:<name>` in
//! `system:nodes`, bootstrap tokens `system:bootstrap:<id>` in `system:bootstrappers`.

use std::collections::BTreeMap;

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

/// An authenticated caller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    /// Unique across time for the user, when the authenticator knows one (a service account's
    /// uid, the static token file's third column); empty otherwise.
    pub uid: String,
    pub groups: Vec<String>,
    /// What else the authenticator knows (kube's `user.Info` extra: a service-account token's
    /// credential id and the pod it is bound to).
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The group of every node.
pub const NODES_GROUP: &str = "system:nodes";
/// The user-name prefix of nodes.
pub const NODE_PREFIX: &str = "system:node:";
/// The group of every bootstrap token.
pub const BOOTSTRAPPERS_GROUP: &str = "system:bootstrappers";
/// The administrators' group.
pub const MASTERS_GROUP: &str = "system:masters";

impl Identity {
    /// Whether the caller is a cluster administrator (`system:masters`).
    pub fn is_admin(&self) -> bool {
        self.in_group(MASTERS_GROUP)
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// The node's name when the caller is a node (`system:node:<name>` in `system:nodes`,
    /// as Kubernetes' Node authorizer requires both).
    pub fn node_name(&self) -> Option<&str> {
        let name = self.user.strip_prefix(NODE_PREFIX)?;
        (!name.is_empty() && self.in_group(NODES_GROUP)).then_some(name)
    }

    /// Whether the caller holds a bootstrap token.
    pub fn is_bootstrapper(&self) -> bool {
        self.in_group(BOOTSTRAPPERS_GROUP)
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
    Some(Identity {
        user,
        groups,
        ..Default::default()
    })
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
        assert_eq!(id.node_name(), Some("n1"));
        let not_in_group = Identity {
            user: "system:node:n1".into(),
            groups: vec![],
            ..Default::default()
        };
        assert_eq!(not_in_group.node_name(), None);
        let admin =
            CertificateDer::from_pem_slice(ca.admin().unwrap().cert_pem.as_bytes()).unwrap();
        assert!(from_client_certificate(&admin).unwrap().is_admin());
    }
}
