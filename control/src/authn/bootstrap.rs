//! Bootstrap tokens as Kubernetes keeps them: `<id>.<secret>` (`[a-z0-9]{6}.[a-z0-9]{16}`),
//! stored as the Secret `kube-system/bootstrap-token-<id>` of type
//! `bootstrap.kubernetes.io/token` with `token-id`, `token-secret`, `expiration` (RFC 3339)
//! and `usage-bootstrap-authentication: "true"`. A valid one authenticates as
//! `system:bootstrap:<id>` in `system:bootstrappers` (plus its `auth-extra-groups`).
//! On first start the server makes one and writes `<data-dir>/bootstrap.kubeconfig`.

use base64::{engine::general_purpose::STANDARD, Engine};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::identity::{Identity, BOOTSTRAPPERS_GROUP};
use crate::api::decode_stored;
use crate::api::meta;
use crate::api::path::object_key;
use crate::kinds;
use crate::store::{self, Store};

/// The namespace bootstrap tokens live in.
pub const NAMESPACE: &str = "kube-system";
/// The Secret type of a bootstrap token.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";

/// A bootstrap token: a public id and a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub id: String,
    pub secret: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({}.<redacted>)", self.id)
    }
}

impl Token {
    /// Parses `[a-z0-9]{6}.[a-z0-9]{16}`.
    pub fn parse(text: &str) -> Option<Token> {
        let (id, secret) = text.split_once('.')?;
        let valid = |s: &str, len| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        };
        (valid(id, 6) && valid(secret, 16)).then(|| Token {
            id: id.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// A new random token (from the OS's random source, through uuid v4).
    pub fn generate() -> Token {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut chars = Vec::with_capacity(22);
        while chars.len() < 22 {
            for b in uuid::Uuid::new_v4().into_bytes() {
                // 252 = 7 × 36: rejecting the rest keeps every character equally likely.
                if b < 252 && chars.len() < 22 {
                    chars.push(ALPHABET[usize::from(b % 36)]);
                }
            }
        }
        let text = String::from_utf8_lossy(&chars).into_owned();
        Token {
            id: text[..6].to_owned(),
            secret: text[6..].to_owned(),
        }
    }

    /// `<id>.<secret>`, what a kubeconfig carries.
    pub fn text(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }

    /// The name of the Secret holding the token.
    pub fn secret_name(&self) -> String {
        format!("bootstrap-token-{}", self.id)
    }

    /// The Secret (as the API stores it: `data` base64) for this token, expiring at
    /// `expiration` if given.
    pub fn secret_object(&self, expiration: Option<OffsetDateTime>) -> Value {
        let mut data = json!({
            "token-id": STANDARD.encode(&self.id),
            "token-secret": STANDARD.encode(&self.secret),
            "usage-bootstrap-authentication": STANDARD.encode("true"),
            "description": STANDARD.encode("made by bosun-control for nodes joining"),
        });
        if let Some(at) = expiration.and_then(|t| t.format(&Rfc3339).ok()) {
            data["expiration"] = json!(STANDARD.encode(at));
        }
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "type": SECRET_TYPE,
            "metadata": {"name": self.secret_name(), "namespace": NAMESPACE},
            "data": data,
        })
    }
}

fn secret_key(id: &str) -> Option<String> {
    let secrets = kinds::find("", "v1", "secrets")?;
    Some(object_key(
        secrets,
        Some(NAMESPACE),
        &format!("bootstrap-token-{id}"),
    ))
}

/// The identity of bootstrap token `text`, when it is well formed, its Secret exists, matches,
/// allows authentication and has not expired.
pub async fn authenticate(store: &dyn Store, text: &str) -> Option<Identity> {
    let token = Token::parse(text)?;
    let kv = store.get(&secret_key(&token.id)?).await.ok()??;
    let secret = decode_stored(&kv).ok()?;
    check(&secret, &token, OffsetDateTime::now_utc())
}

/// The identity `secret` grants to `token` at `now`, if any.
pub fn check(secret: &Value, token: &Token, now: OffsetDateTime) -> Option<Identity> {
    if secret["type"] != SECRET_TYPE || !secret["metadata"]["deletionTimestamp"].is_null() {
        return None;
    }
    let field = |name: &str| -> Option<String> {
        let encoded = secret["data"][name].as_str()?;
        String::from_utf8(STANDARD.decode(encoded).ok()?).ok()
    };
    if field("token-id").as_deref() != Some(token.id.as_str())
        || !same(field("token-secret")?.as_bytes(), token.secret.as_bytes())
        || field("usage-bootstrap-authentication").as_deref() != Some("true")
    {
        return None;
    }
    if let Some(expiration) = field("expiration") {
        // An unreadable expiration is treated as expired, as Kubernetes does.
        let at = OffsetDateTime::parse(&expiration, &Rfc3339).ok()?;
        if now >= at {
            return None;
        }
    }
    let mut groups = vec![BOOTSTRAPPERS_GROUP.to_owned()];
    for extra in field("auth-extra-groups").unwrap_or_default().split(',') {
        let extra = extra.trim();
        if extra.starts_with("system:bootstrappers:") && !groups.iter().any(|g| g == extra) {
            groups.push(extra.to_owned());
        }
    }
    Some(Identity {
        user: format!("system:bootstrap:{}", token.id),
        groups,
        ..Default::default()
    })
}

/// Whether `secret` is a bootstrap token whose `expiration` has passed at `now` (an unreadable
/// one counts as passed, as in Kubernetes' token cleaner).
pub fn expired(secret: &Value, now: OffsetDateTime) -> bool {
    if secret["type"] != SECRET_TYPE {
        return false;
    }
    let Some(encoded) = secret["data"]["expiration"].as_str() else {
        return false;
    };
    let text = STANDARD
        .decode(encoded)
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    match text.and_then(|t| OffsetDateTime::parse(&t, &Rfc3339).ok()) {
        Some(at) => now >= at,
        None => true,
    }
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why the bootstrap token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("storing the bootstrap token's Secret: {0}")]
    Store(#[from] store::Error),
    #[error("encoding the bootstrap token's Secret: {0}")]
    Encode(String),
}

/// Returns `existing` when it still authenticates, else makes a new token valid for `ttl`
/// (`None`: no expiration) and stores its Secret.
pub async fn ensure(
    store: &dyn Store,
    existing: Option<&str>,
    ttl: Option<time::Duration>,
) -> Result<Token, BootstrapError> {
    if let Some(text) = existing {
        if authenticate(store, text).await.is_some() {
            if let Some(token) = Token::parse(text) {
                return Ok(token);
            }
        }
    }
    let secrets = kinds::find("", "v1", "secrets")
        .ok_or_else(|| BootstrapError::Encode("the kinds table has no secrets".into()))?;
    loop {
        let token = Token::generate();
        let mut object = token.secret_object(ttl.map(|d| OffsetDateTime::now_utc() + d));
        meta::prepare_create(&mut object, secrets, Some(NAMESPACE))
            .map_err(|e| BootstrapError::Encode(e.message))?;
        let bytes = meta::to_stored(&object).map_err(|e| BootstrapError::Encode(e.message))?;
        let key = object_key(secrets, Some(NAMESPACE), &token.secret_name());
        match store.create(&key, bytes).await {
            Ok(_) => return Ok(token),
            // An id already taken: draw another.
            Err(store::Error::AlreadyExists { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_only_in_their_format() {
        let t = Token::generate();
        assert_eq!(Token::parse(&t.text()), Some(t.clone()));
        assert_eq!(t.text().len(), 23);
        for bad in [
            "",
            "abcdef",
            "abcdef.0123456789abcde",
            "ABCDEF.0123456789abcdef",
            "abcdef.0123456789abcdef0",
            "abcde.0123456789abcdefg",
            "abcdef:0123456789abcdef",
        ] {
            assert_eq!(Token::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_secret_grants_its_token_until_it_expires() {
        let t = Token::parse("abcdef.0123456789abcdef").unwrap();
        let now = OffsetDateTime::now_utc();
        let secret = t.secret_object(Some(now + time::Duration::hours(1)));
        let id = check(&secret, &t, now).unwrap();
        assert_eq!(id.user, "system:bootstrap:abcdef");
        assert!(id.is_bootstrapper());
        assert!(!id.is_admin());
        assert_eq!(check(&secret, &t, now + time::Duration::hours(2)), None);
        let wrong = Token::parse("abcdef.0123456789abcdee").unwrap();
        assert_eq!(check(&secret, &wrong, now), None);
        let mut not_for_auth = secret.clone();
        not_for_auth["data"]["usage-bootstrap-authentication"] = json!(STANDARD.encode("false"));
        assert_eq!(check(&not_for_auth, &t, now), None);
        let mut other_type = secret.clone();
        other_type["type"] = json!("Opaque");
        assert_eq!(check(&other_type, &t, now), None);
        let mut bad_expiry = secret;
        bad_expiry["data"]["expiration"] = json!(STANDARD.encode("tomorrow"));
        assert_eq!(check(&bad_expiry, &t, now), None);
        assert!(check(&t.secret_object(None), &t, now).is_some());
    }
}
