//! The kubeconfigs `bosun-control` writes: the admin's and the bootstrap one at start, and a
//! node's on demand (`bosun-control kubeconfig --node NAME`): the CA, the server URL and the
//! credentials (a client certificate or a bearer token) inline, so the real kubectl uses them
//! with no other flag.

use std::path::{Path, PathBuf};

use base64::{engine::general_purpose::STANDARD, Engine};
use serde_json::json;

use crate::pki::{Ca, CertPair, PkiError, Subject};

/// How a kubeconfig's user authenticates.
#[derive(Clone, Copy, Debug)]
pub enum Credentials<'a> {
    /// A client certificate (CN = user, O = groups) and its key.
    Certificate(&'a CertPair),
    /// `Authorization: Bearer <token>`.
    Token(&'a str),
}

/// Why a node kubeconfig could not be made.
#[derive(Debug, thiserror::Error)]
pub enum NodeKubeconfigError {
    #[error("{0}")]
    Pki(#[from] PkiError),
    #[error("reading {path} (start bosun-control once, or pass --server): {source}")]
    Admin {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} names no server")]
    NoServer { path: PathBuf },
    #[error("{0:?} is not a valid node name (a DNS subdomain)")]
    BadName(String),
}

/// A kubeconfig (YAML) for `server` trusting `ca_pem`, authenticating as `user` with
/// `credentials`.
pub fn render(server: &str, ca_pem: &str, credentials: Credentials<'_>, user: &str) -> String {
    let auth = match credentials {
        Credentials::Certificate(client) => json!({
            "client-certificate-data": STANDARD.encode(&client.cert_pem),
            "client-key-data": STANDARD.encode(&client.key_pem),
        }),
        Credentials::Token(token) => json!({"token": token}),
    };
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "bosun",
            "cluster": {
                "server": server,
                "certificate-authority-data": STANDARD.encode(ca_pem),
            },
        }],
        "users": [{
            "name": user,
            "user": auth,
        }],
        "contexts": [{
            "name": "bosun",
            "context": {"cluster": "bosun", "user": user, "namespace": "default"},
        }],
        "current-context": "bosun",
        "preferences": {},
    });
    // JSON is YAML; serde_yaml makes it the block style users expect to read.
    serde_yaml::to_string(&config).unwrap_or_else(|_| config.to_string())
}

/// A kubeconfig for node `node` (user `system:node:<node>`, group `system:nodes`) with a
/// client certificate signed by the CA under `<data_dir>/pki`. The server is `server`, or the
/// one the admin kubeconfig names.
pub fn for_node(
    data_dir: &Path,
    node: &str,
    server: Option<&str>,
) -> Result<String, NodeKubeconfigError> {
    let valid = !node.is_empty()
        && node.len() <= 253
        && node
            .split('.')
            .all(|l| !l.is_empty() && l.len() <= 63 && dns_label(l));
    if !valid {
        return Err(NodeKubeconfigError::BadName(node.to_owned()));
    }
    let server = match server {
        Some(s) => s.to_owned(),
        None => admin_server(&data_dir.join("admin.kubeconfig"))?,
    };
    let ca = Ca::load_or_create(&data_dir.join("pki"))?;
    let user = format!("system:node:{node}");
    let pair = ca.issue_client(&Subject {
        user: user.clone(),
        groups: vec!["system:nodes".to_owned()],
    })?;
    Ok(render(
        &server,
        &ca.cert_pem,
        Credentials::Certificate(&pair),
        &user,
    ))
}

fn dns_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

/// The server URL of an existing kubeconfig.
fn admin_server(path: &Path) -> Result<String, NodeKubeconfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| NodeKubeconfigError::Admin {
        path: path.to_owned(),
        source,
    })?;
    let config: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|_| NodeKubeconfigError::NoServer {
            path: path.to_owned(),
        })?;
    config["clusters"][0]["cluster"]["server"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| NodeKubeconfigError::NoServer {
            path: path.to_owned(),
        })
}

/// The bearer token of an existing kubeconfig, if it has one.
pub fn token_of(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let config: serde_yaml::Value = serde_yaml::from_str(&text).ok()?;
    config["users"][0]["user"]["token"]
        .as_str()
        .map(str::to_owned)
}

/// Writes `text` to `path` readable by its owner only (it holds a private key), atomically.
pub fn write(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_names_server_ca_and_user() {
        let pair = CertPair {
            cert_pem: "CERT".into(),
            key_pem: "KEY".into(),
        };
        let text = render(
            "https://127.0.0.1:6443",
            "CA",
            Credentials::Certificate(&pair),
            "bosun-admin",
        );
        let parsed: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(parsed["current-context"], "bosun");
        assert_eq!(
            parsed["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:6443"
        );
        assert_eq!(
            parsed["clusters"][0]["cluster"]["certificate-authority-data"],
            STANDARD.encode("CA")
        );
        assert_eq!(
            parsed["users"][0]["user"]["client-key-data"],
            STANDARD.encode("KEY")
        );
        let text = render(
            "https://x:1",
            "CA",
            Credentials::Token("abcdef.0123456789abcdef"),
            "b",
        );
        let parsed: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(
            parsed["users"][0]["user"]["token"],
            "abcdef.0123456789abcdef"
        );
    }

    #[test]
    fn a_node_kubeconfig_names_the_node_in_its_certificate() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            for_node(dir.path(), "Bad_Name", Some("https://x:1")),
            Err(NodeKubeconfigError::BadName(_))
        ));
        assert!(matches!(
            for_node(dir.path(), "n1", None),
            Err(NodeKubeconfigError::Admin { .. })
        ));
        let text = for_node(dir.path(), "n1", Some("https://127.0.0.1:1")).unwrap();
        let parsed: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let pem = STANDARD
            .decode(
                parsed["users"][0]["user"]["client-certificate-data"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
        use rustls::pki_types::pem::PemObject;
        let der = rustls::pki_types::CertificateDer::from_pem_slice(&pem).unwrap();
        let id = crate::authn::identity::from_client_certificate(&der).unwrap();
        assert_eq!(id.user, "system:node:n1");
        assert_eq!(id.groups, ["system:nodes"]);
    }
}
