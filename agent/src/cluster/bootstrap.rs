//! TLS bootstrap, as kubelet does it (`--bootstrap-kubeconfig B --kubeconfig K`): when K
//! holds no valid client certificate, the node makes an ECDSA P-256 key, asks the cluster for a
//! node client certificate (a CertificateSigningRequest for `CN=system:node:<name>,
//! O=system:nodes`, signer `kubernetes.io/kube-apiserver-client-kubelet`) with B's bootstrap
//! token, waits (bounded) for the signed certificate, and writes K (mode 0600, atomic rename)
//! with it, its key and B's cluster. From then on the node speaks as itself; a later start with
//! a still valid K sends no new request. Never writes anything but K.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use base64::{engine::general_purpose::STANDARD, Engine};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use kube::config::Kubeconfig;
use serde_json::json;

/// The signer of node client certificates.
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";

/// How long the node keeps asking (creating the request while the API is unreachable, then
/// waiting for its certificate) before giving up.
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(120);

/// A certificate this close to its end is not used: a new one is asked for.
const RENEW_BEFORE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("reading the bootstrap kubeconfig {path}: {source}")]
    ReadBootstrap {
        path: PathBuf,
        source: kube::config::KubeconfigError,
    },
    #[error("the bootstrap kubeconfig {path} has no cluster for its current context")]
    NoCluster { path: PathBuf },
    #[error("building the bootstrap client: {0}")]
    Client(#[from] super::JoinError),
    #[error("making the node's key and certificate request: {0}")]
    Key(#[from] rcgen::Error),
    #[error("no certificate for {node} after {waited:?}: {last}")]
    Timeout {
        node: String,
        waited: Duration,
        last: String,
    },
    #[error("the certificate request {name} was {reason}: {message}")]
    Refused {
        name: String,
        reason: String,
        message: String,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Makes sure `kubeconfig` holds a valid client certificate for node `node`, asking the
/// cluster of `bootstrap` for one if it does not. Returns true if a new one was written.
pub async fn ensure_kubeconfig(
    bootstrap: &Path,
    kubeconfig: &Path,
    node: &str,
) -> Result<bool, BootstrapError> {
    match valid_until(kubeconfig) {
        Ok(until) => {
            tracing::info!(kubeconfig = %kubeconfig.display(), valid_until = %humantime::format_rfc3339_seconds(until), "using the node's client certificate");
            return Ok(false);
        }
        Err(why) => {
            tracing::info!(kubeconfig = %kubeconfig.display(), why = %why, "asking the cluster for a node client certificate");
        }
    }
    let boot =
        Kubeconfig::read_from(bootstrap).map_err(|source| BootstrapError::ReadBootstrap {
            path: bootstrap.to_owned(),
            source,
        })?;
    let cluster = current_cluster(&boot).ok_or_else(|| BootstrapError::NoCluster {
        path: bootstrap.to_owned(),
    })?;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let request = certificate_request(node, &key)?;
    let (client, _) = super::client(bootstrap).await?;
    let cert_pem = request_certificate(client, node, request).await?;
    let text = node_kubeconfig(&cluster, &cert_pem, &key.serialize_pem());
    write_private(kubeconfig, text.as_bytes()).map_err(|source| BootstrapError::Write {
        path: kubeconfig.to_owned(),
        source,
    })?;
    tracing::info!(kubeconfig = %kubeconfig.display(), "wrote the node's kubeconfig");
    Ok(true)
}

/// When the client certificate of `kubeconfig`'s current user ends, or why it cannot be used.
pub fn valid_until(kubeconfig: &Path) -> Result<SystemTime, String> {
    if !kubeconfig.exists() {
        return Err("no kubeconfig yet".into());
    }
    let kc = Kubeconfig::read_from(kubeconfig).map_err(|e| e.to_string())?;
    let user = kc
        .current_context
        .as_ref()
        .and_then(|name| kc.contexts.iter().find(|c| &c.name == name))
        .and_then(|c| c.context.as_ref())
        .and_then(|c| {
            kc.auth_infos
                .iter()
                .find(|a| Some(&a.name) == c.user.as_ref())
        })
        .and_then(|a| a.auth_info.as_ref())
        .ok_or("its current context names no user")?;
    if user.client_key_data.is_none() && user.client_key.is_none() {
        return Err("its user has no client key".into());
    }
    let pem = match (&user.client_certificate_data, &user.client_certificate) {
        (Some(data), _) => STANDARD
            .decode(data.trim())
            .map_err(|e| format!("client-certificate-data is not base64: {e}"))?,
        (None, Some(file)) => std::fs::read(file).map_err(|e| format!("reading {file}: {e}"))?,
        (None, None) => return Err("its user has no client certificate".into()),
    };
    let not_after = not_after(&pem)?;
    if not_after < SystemTime::now() + RENEW_BEFORE {
        return Err(format!(
            "its client certificate expires at {}",
            humantime::format_rfc3339_seconds(not_after)
        ));
    }
    Ok(not_after)
}

/// The end of validity of the first certificate of `pem`.
fn not_after(pem: &[u8]) -> Result<SystemTime, String> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem)
        .map_err(|e| format!("client certificate is not PEM: {e}"))?;
    let cert = block
        .parse_x509()
        .map_err(|e| format!("client certificate does not parse: {e}"))?;
    let secs = cert.validity().not_after.timestamp();
    let secs = u64::try_from(secs).map_err(|_| "client certificate ended before 1970")?;
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// The cluster of `kc`'s current context, as a kubeconfig `clusters` entry.
fn current_cluster(kc: &Kubeconfig) -> Option<serde_json::Value> {
    let context = kc
        .current_context
        .as_ref()
        .and_then(|name| kc.contexts.iter().find(|c| &c.name == name))
        .or_else(|| kc.contexts.first())?;
    let cluster_name = &context.context.as_ref()?.cluster;
    let cluster = kc.clusters.iter().find(|c| &c.name == cluster_name)?;
    serde_json::to_value(cluster.cluster.as_ref()?).ok()
}

/// A PEM PKCS#10 request for node `node`'s client certificate, signed by `key`.
fn certificate_request(node: &str, key: &rcgen::KeyPair) -> Result<String, rcgen::Error> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::OrganizationName, "system:nodes");
    name.push(rcgen::DnType::CommonName, format!("system:node:{node}"));
    params.distinguished_name = name;
    params.serialize_request(key)?.pem()
}

/// The kubeconfig kubelet writes after its bootstrap: `cluster`, and the node's certificate
/// and key inline.
fn node_kubeconfig(cluster: &serde_json::Value, cert_pem: &str, key_pem: &str) -> String {
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "default-cluster", "cluster": cluster}],
        "users": [{"name": "default-auth", "user": {
            "client-certificate-data": STANDARD.encode(cert_pem),
            "client-key-data": STANDARD.encode(key_pem),
        }}],
        "contexts": [{"name": "default-context", "context": {
            "cluster": "default-cluster",
            "user": "default-auth",
        }}],
        "current-context": "default-context",
    });
    serde_yaml::to_string(&doc).unwrap_or_default()
}

/// Creates the certificate request (retrying while the API is unreachable) and waits for its
/// signed certificate (PEM), both within [`BOOTSTRAP_TIMEOUT`].
async fn request_certificate(
    client: kube::Client,
    node: &str,
    request_pem: String,
) -> Result<String, BootstrapError> {
    let api: Api<CertificateSigningRequest> = Api::all(client);
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta {
            generate_name: Some("node-csr-".into()),
            ..ObjectMeta::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(request_pem.into_bytes()),
            signer_name: KUBELET_CLIENT_SIGNER.into(),
            usages: Some(vec!["digital signature".into(), "client auth".into()]),
            ..CertificateSigningRequestSpec::default()
        },
        status: None,
    };
    let begun = Instant::now();
    let mut delay = Duration::from_millis(250);
    let mut last = String::from("nothing tried yet");
    let mut name: Option<String> = None;
    while begun.elapsed() < BOOTSTRAP_TIMEOUT {
        let seen = match &name {
            None => api.create(&PostParams::default(), &csr).await,
            Some(n) => api.get(n).await,
        };
        match seen {
            Ok(object) => {
                let object_name = object.metadata.name.clone().unwrap_or_default();
                if name.is_none() {
                    tracing::info!(csr = %object_name, "certificate request created");
                    name = Some(object_name.clone());
                }
                match issued(&object) {
                    Issued::Certificate(pem) => return Ok(pem),
                    Issued::Refused { reason, message } => {
                        return Err(BootstrapError::Refused {
                            name: object_name,
                            reason,
                            message,
                        })
                    }
                    Issued::Pending => last = format!("{object_name} is not signed yet"),
                }
            }
            Err(e) => last = e.to_string(),
        }
        tracing::debug!(node, last = %last, "waiting for the node's certificate");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
    Err(BootstrapError::Timeout {
        node: node.to_owned(),
        waited: BOOTSTRAP_TIMEOUT,
        last,
    })
}

enum Issued {
    Certificate(String),
    Refused { reason: String, message: String },
    Pending,
}

/// What the cluster made of a certificate request so far.
fn issued(csr: &CertificateSigningRequest) -> Issued {
    let Some(status) = &csr.status else {
        return Issued::Pending;
    };
    for c in status.conditions.iter().flatten() {
        if (c.type_ == "Denied" || c.type_ == "Failed") && c.status == "True" {
            return Issued::Refused {
                reason: c.type_.to_lowercase(),
                message: c.message.clone().unwrap_or_default(),
            };
        }
    }
    match &status.certificate {
        Some(cert) if !cert.0.is_empty() => {
            Issued::Certificate(String::from_utf8_lossy(&cert.0).into_owned())
        }
        _ => Issued::Pending,
    }
}

/// Writes `bytes` to `path` readable by its owner only, through a temporary file renamed over
/// it (a reader sees the old file or the new one, never a part).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(not_after_days: i64) -> (String, String) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(not_after_days);
        let cert = params.self_signed(&key).expect("cert");
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_written_kubeconfig_is_private_and_valid_until_its_certificate_ends() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("kubelet.kubeconfig");
        assert!(valid_until(&path).is_err(), "none yet");
        let cluster =
            json!({"server": "https://127.0.0.1:6443", "certificate-authority-data": "Y2E="});
        let (cert, key) = self_signed(30);
        write_private(&path, node_kubeconfig(&cluster, &cert, &key).as_bytes()).expect("write");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let until = valid_until(&path).expect("valid");
        assert!(until > SystemTime::now() + Duration::from_secs(29 * 24 * 3600));
        let kc = Kubeconfig::read_from(&path).expect("kube reads it");
        assert_eq!(
            kc.clusters[0]
                .cluster
                .as_ref()
                .and_then(|c| c.server.clone()),
            Some("https://127.0.0.1:6443".into())
        );
        // An expired certificate is not used.
        let (cert, key) = self_signed(-1);
        write_private(&path, node_kubeconfig(&cluster, &cert, &key).as_bytes()).expect("write");
        let why = valid_until(&path).expect_err("expired");
        assert!(why.contains("expires"), "{why}");
    }

    #[test]
    fn the_request_names_the_node_in_system_nodes() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let pem = certificate_request("n1", &key).expect("csr");
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("pem");
        assert_eq!(block.label, "CERTIFICATE REQUEST");
        use x509_parser::prelude::FromDer;
        let (_, req) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&block.contents)
                .expect("der");
        let subject = req.certification_request_info.subject.to_string();
        assert!(subject.contains("CN=system:node:n1"), "{subject}");
        assert!(subject.contains("O=system:nodes"), "{subject}");
    }
}
