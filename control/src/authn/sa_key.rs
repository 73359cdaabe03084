//! The service-account token signing key, as kube-apiserver's `--service-account-signing-key-file`:
//! an ECDSA P-256 key made on first start and kept as `<data-dir>/pki/sa.key` (0600), which signs
//! ES256 JWTs and verifies them. Its `kid` is kube's: the unpadded base64url SHA-256 of the
//! public key's DER (SubjectPublicKeyInfo). Several API servers over one store must share the
//! file (as they share the CA).

use std::path::Path;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rcgen::{KeyPair, PublicKeyData};
use sha2::{Digest, Sha256};

use super::service_account::Claims;
use crate::pki::{self, PkiError};

/// The file name of the key in the PKI directory (kubeadm's).
pub const KEY_FILE: &str = "sa.key";

/// Why a token was not accepted (never shown to the caller: a bad token is a plain 401).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token does not verify: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
}

/// The signing key.
pub struct SigningKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(kid {})", self.kid)
    }
}

impl SigningKey {
    /// Loads `<dir>/sa.key`, or makes and saves one.
    pub fn load_or_create(dir: &Path) -> Result<SigningKey, PkiError> {
        let path = dir.join(KEY_FILE);
        let key = if path.exists() {
            KeyPair::from_pem(&pki::read(&path)?).map_err(|source| PkiError::Cert {
                what: "parsing sa.key",
                source,
            })?
        } else {
            std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
                action: "creating",
                path: dir.to_owned(),
                source,
            })?;
            let key = KeyPair::generate().map_err(|source| PkiError::Cert {
                what: "generating the service-account key",
                source,
            })?;
            pki::write_private(&path, &key.serialize_pem())?;
            key
        };
        Ok(SigningKey::from_key_pair(&key))
    }

    fn from_key_pair(key: &KeyPair) -> SigningKey {
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(key.subject_public_key_info()));
        SigningKey {
            encoding: EncodingKey::from_ec_der(&key.serialize_der()),
            // ring verifies against the uncompressed point.
            decoding: DecodingKey::from_ec_der(key.public_key_raw()),
            kid,
        }
    }

    /// The key id in every token's header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The signed JWT of `claims`.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = None;
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }

    /// The claims of `token` when its signature verifies, it is issued by `issuer`, within its
    /// `nbf`..`exp` and meant for one of `audiences`.
    pub fn verify(
        &self,
        token: &str,
        issuer: &str,
        audiences: &[String],
    ) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        // kube-apiserver's leeway for clock skew.
        validation.leeway = 60;
        Ok(jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)?.claims)
    }
}

/// Whether `token` has the shape of a JWT (three base64url parts), so other token kinds skip
/// the signature check.
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.split('.').count() == 3
}

#[cfg(test)]
mod tests {
    use super::super::service_account::{Private, Ref};
    use super::*;

    fn claims(aud: &[&str], exp_in: i64) -> Claims {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        Claims {
            iss: "https://issuer".into(),
            sub: "system:serviceaccount:default:default".into(),
            aud: aud.iter().map(|a| a.to_string()).collect(),
            exp: now + exp_in,
            iat: now,
            nbf: now,
            jti: "j".into(),
            kubernetes: Private {
                namespace: "default".into(),
                serviceaccount: Ref {
                    name: "default".into(),
                    uid: "u1".into(),
                },
                pod: None,
                warnafter: None,
            },
        }
    }

    #[test]
    fn a_token_verifies_with_its_key_issuer_audience_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::load_or_create(dir.path()).unwrap();
        let again = SigningKey::load_or_create(dir.path()).unwrap();
        assert_eq!(key.kid(), again.kid());
        let c = claims(&["api", "other"], 600);
        let token = key.sign(&c).unwrap();
        assert!(looks_like_jwt(&token));
        assert!(!looks_like_jwt("abcdef.0123456789abcdef"));
        let api = vec!["api".to_owned()];
        assert_eq!(again.verify(&token, "https://issuer", &api).unwrap(), c);
        assert!(key.verify(&token, "https://other", &api).is_err());
        assert!(key
            .verify(&token, "https://issuer", &["vault".into()])
            .is_err());
        let expired = key.sign(&claims(&["api"], -120)).unwrap();
        assert!(key.verify(&expired, "https://issuer", &api).is_err());
        // Another key's signature does not verify.
        let other_dir = tempfile::tempdir().unwrap();
        let other = SigningKey::load_or_create(other_dir.path()).unwrap();
        assert!(other.verify(&token, "https://issuer", &api).is_err());
        // Neither does a changed payload.
        let parts: Vec<&str> = token.split('.').collect();
        let mut forged = c.clone();
        forged.sub = "system:serviceaccount:kube-system:admin".into();
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert!(key.verify(&tampered, "https://issuer", &api).is_err());
    }
}
