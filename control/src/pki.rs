//! The control plane's certificates: a CA made on first start and kept under
//! `<data-dir>/pki/`, a serving certificate for the API (re-issued at every start for the
//! addresses it serves), and client certificates (the admin's, nodes' later) signed by the CA.
//!
//! Identity travels in the client certificate as Kubernetes does it: CN = user name,
//! O = groups. Private keys are written 0600 and never logged.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Why the PKI could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Cert {
        what: &'static str,
        source: rcgen::Error,
    },
}

/// A certificate and its private key, PEM-encoded.
#[derive(Clone, Debug)]
pub struct CertPair {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The cluster CA, loaded from or written to `<data-dir>/pki/`.
pub struct Ca {
    dir: PathBuf,
    pub cert_pem: String,
    key: KeyPair,
}

/// Who a client certificate names: CN = user, O = groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    pub user: String,
    pub groups: Vec<String>,
}

impl Ca {
    /// Loads the CA from `dir`, or makes and saves one if there is none.
    pub fn load_or_create(dir: &Path) -> Result<Ca, PkiError> {
        let (cert_path, key_path) = (dir.join("ca.crt"), dir.join("ca.key"));
        if cert_path.exists() && key_path.exists() {
            let cert_pem = read(&cert_path)?;
            let key = KeyPair::from_pem(&read(&key_path)?).map_err(|source| PkiError::Cert {
                what: "parsing ca.key",
                source,
            })?;
            return Ok(Ca {
                dir: dir.to_owned(),
                cert_pem,
                key,
            });
        }
        fs::create_dir_all(dir).map_err(|source| PkiError::Io {
            action: "creating",
            path: dir.to_owned(),
            source,
        })?;
        let key = new_key()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name("bosun-ca", &[]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_after = years_from_now(10);
        let cert = params.self_signed(&key).map_err(|source| PkiError::Cert {
            what: "self-signing the CA",
            source,
        })?;
        write_private(&key_path, &key.serialize_pem())?;
        write_public(&cert_path, &cert.pem())?;
        Ok(Ca {
            dir: dir.to_owned(),
            cert_pem: cert.pem(),
            key,
        })
    }

    /// A serving certificate for `dns_names` and `ips` (re-issued at each start, so a new
    /// address never needs a manual step).
    pub fn issue_server(&self, dns_names: &[String], ips: &[IpAddr]) -> Result<CertPair, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name("bosun-control", &[]);
        params.subject_alt_names = dns_names
            .iter()
            .filter_map(|d| d.clone().try_into().ok().map(SanType::DnsName))
            .chain(ips.iter().copied().map(SanType::IpAddress))
            .collect();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.not_after = years_from_now(1);
        self.sign(params, "the serving certificate")
    }

    /// A client certificate for `subject`.
    pub fn issue_client(&self, subject: &Subject) -> Result<CertPair, PkiError> {
        let groups: Vec<&str> = subject.groups.iter().map(String::as_str).collect();
        let mut params = CertificateParams::default();
        params.distinguished_name = name(&subject.user, &groups);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_after = years_from_now(1);
        self.sign(params, "a client certificate")
    }

    /// The admin's client certificate (user `bosun-admin`, group `system:masters`), made once
    /// and kept in the PKI directory.
    pub fn admin(&self) -> Result<CertPair, PkiError> {
        let (cert_path, key_path) = (self.dir.join("admin.crt"), self.dir.join("admin.key"));
        if cert_path.exists() && key_path.exists() {
            return Ok(CertPair {
                cert_pem: read(&cert_path)?,
                key_pem: read(&key_path)?,
            });
        }
        let pair = self.issue_client(&Subject {
            user: "bosun-admin".to_owned(),
            groups: vec!["system:masters".to_owned()],
        })?;
        write_private(&key_path, &pair.key_pem)?;
        write_public(&cert_path, &pair.cert_pem)?;
        Ok(pair)
    }

    /// Signs the public key of a verified certificate signing request as a client certificate
    /// for `subject`, valid for `lifetime` (at most a year). Nothing else of the request
    /// (extensions, usages) is copied: the caller checked what it asks for. Returns the PEM.
    pub fn sign_client_request(
        &self,
        request: &CertificateSigningRequestParams,
        subject: &Subject,
        lifetime: time::Duration,
    ) -> Result<String, PkiError> {
        let what = "signing a certificate request";
        let groups: Vec<&str> = subject.groups.iter().map(String::as_str).collect();
        let mut params = CertificateParams::default();
        params.distinguished_name = name(&subject.user, &groups);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let mut serial = uuid::Uuid::new_v4().into_bytes().to_vec();
        serial[0] &= 0x7f;
        params.serial_number = Some(serial.into());
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + lifetime.min(time::Duration::days(365));
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &self.key)
            .map_err(|source| PkiError::Cert { what, source })?;
        let to_sign = CertificateSigningRequestParams {
            params,
            public_key: request.public_key.clone(),
        };
        let cert = to_sign
            .signed_by(&issuer)
            .map_err(|source| PkiError::Cert { what, source })?;
        Ok(cert.pem())
    }

    fn sign(&self, params: CertificateParams, what: &'static str) -> Result<CertPair, PkiError> {
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &self.key)
            .map_err(|source| PkiError::Cert { what, source })?;
        let key = new_key()?;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|source| PkiError::Cert { what, source })?;
        Ok(CertPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn new_key() -> Result<KeyPair, PkiError> {
    KeyPair::generate().map_err(|source| PkiError::Cert {
        what: "generating a key",
        source,
    })
}

fn name(common_name: &str, organizations: &[&str]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    for org in organizations {
        dn.push(DnType::OrganizationName, *org);
    }
    dn
}

fn years_from_now(years: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(365 * years)
}

pub(crate) fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| PkiError::Io {
        action: "reading",
        path: path.to_owned(),
        source,
    })
}

/// Writes a private key readable by its owner only, replacing any older file atomically.
pub(crate) fn write_private(path: &Path, text: &str) -> Result<(), PkiError> {
    write_mode(path, text, 0o600)
}

fn write_public(path: &Path, text: &str) -> Result<(), PkiError> {
    write_mode(path, text, 0o644)
}

fn write_mode(path: &Path, text: &str, mode: u32) -> Result<(), PkiError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let io = |action, source| PkiError::Io {
        action,
        path: path.to_owned(),
        source,
    };
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| io("creating", e))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| io("writing", e))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).map_err(|e| io("chmod", e))?;
    fs::rename(&tmp, path).map_err(|e| io("renaming into", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_made_once_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let first = Ca::load_or_create(dir.path()).unwrap();
        let again = Ca::load_or_create(dir.path()).unwrap();
        assert_eq!(first.cert_pem, again.cert_pem);
        let mode = fs::metadata(dir.path().join("ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // The admin certificate is kept too.
        assert_eq!(
            first.admin().unwrap().cert_pem,
            again.admin().unwrap().cert_pem
        );
    }

    #[test]
    fn issued_certificates_are_pem() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::load_or_create(dir.path()).unwrap();
        let server = ca
            .issue_server(&["localhost".into()], &["127.0.0.1".parse().unwrap()])
            .unwrap();
        assert!(server.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(server.key_pem.contains("PRIVATE KEY"));
    }
}
