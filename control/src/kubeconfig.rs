//! The admin kubeconfig `bosun-control` writes at start: the CA, the server URL and the admin's
//! client certificate inline, so the real kubectl uses it with no other flag.

use std::path::Path;

use base64::{engine::general_purpose::STANDARD, Engine};
use serde_json::json;

use crate::pki::CertPair;

/// A kubeconfig (YAML) for `server` trusting `ca_pem`, authenticating with `client`.
pub fn render(server: &str, ca_pem: &str, client: &CertPair, user: &str) -> String {
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
            "user": {
                "client-certificate-data": STANDARD.encode(&client.cert_pem),
                "client-key-data": STANDARD.encode(&client.key_pem),
            },
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
        let text = render("https://127.0.0.1:6443", "CA", &pair, "bosun-admin");
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
    }
}
