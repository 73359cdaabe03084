//! Registry credentials found the way kubelet's keyring finds them
//! (`pkg/credentialprovider`): docker config documents (a `kubernetes.io/dockerconfigjson`
//! Secret's `.dockerconfigjson`, the older `.dockercfg`, a node's `config.json`) map a
//! registry host, optionally with a path, to a user and password. An image gets every entry
//! whose key matches it, most specific key first: same number of host labels, each label a
//! glob (`*`, `?`), same port, key path a prefix of the image's path; then, for a Docker Hub
//! image, the `index.docker.io` entry. The puller tries them in that order. Pure: it never
//! reads a file or the API.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;

/// A user and password for one registry (HTTP basic, or the bearer-token exchange).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credential {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why a docker config document was refused.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct CredentialError {
    pub what: String,
    pub reason: String,
}

/// Docker Hub's key in docker config files.
const DEFAULT_REGISTRY_KEY: &str = "index.docker.io";

/// Credentials by registry key (`host[:port][/path]`, scheme and `/v1/`, `/v2/` removed).
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    creds: BTreeMap<String, Vec<Credential>>,
}

/// One entry of a docker config: `auth` (base64 `user:password`) wins over the fields.
#[derive(serde::Deserialize)]
struct ConfigEntry {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    auth: String,
}

impl Keyring {
    /// Adds the `auths` of a `.dockerconfigjson` document (or a docker `config.json`).
    /// `credsStore` and `credHelpers` are refused: no credential helper runs on a node.
    pub fn add_docker_config_json(
        &mut self,
        what: &str,
        bytes: &[u8],
    ) -> Result<(), CredentialError> {
        let err = |reason: String| CredentialError {
            what: what.to_owned(),
            reason,
        };
        let doc: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(bytes).map_err(|e| err(e.to_string()))?;
        for field in ["credsStore", "credHelpers"] {
            if doc.contains_key(field) {
                return Err(err(format!(
                    "{field}: credential helpers are not supported; put the credentials in auths"
                )));
            }
        }
        let auths = doc.get("auths").cloned().unwrap_or_default();
        self.add_entries(what, auths)
    }

    /// Adds the entries of a `.dockercfg` document (the registry keys at the top level).
    pub fn add_dockercfg(&mut self, what: &str, bytes: &[u8]) -> Result<(), CredentialError> {
        let doc: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| CredentialError {
                what: what.to_owned(),
                reason: e.to_string(),
            })?;
        self.add_entries(what, doc)
    }

    fn add_entries(
        &mut self,
        what: &str,
        entries: serde_json::Value,
    ) -> Result<(), CredentialError> {
        let entries: BTreeMap<String, ConfigEntry> =
            serde_json::from_value(entries).map_err(|e| CredentialError {
                what: what.to_owned(),
                reason: e.to_string(),
            })?;
        for (location, entry) in entries {
            let credential = entry_credential(entry).map_err(|reason| CredentialError {
                what: format!("{what}: {location}"),
                reason,
            })?;
            self.creds
                .entry(registry_key(&location))
                .or_default()
                .push(credential);
        }
        Ok(())
    }

    /// Adds every entry of `other` after this keyring's own.
    pub fn extend(&mut self, other: &Keyring) {
        for (key, creds) in &other.creds {
            self.creds
                .entry(key.clone())
                .or_default()
                .extend(creds.iter().cloned());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.creds.is_empty()
    }

    /// The credentials for `repository` (`registry/path`, e.g. `127.0.0.1:5000/bosun/app`),
    /// most specific key first; none means an anonymous pull.
    pub fn lookup(&self, repository: &str) -> Vec<Credential> {
        let mut found: Vec<Credential> = Vec::new();
        // Reverse order puts `quay.io/coreos` before `quay.io`.
        for (key, creds) in self.creds.iter().rev() {
            if urls_match(key, repository) {
                found.extend(creds.iter().cloned());
            }
        }
        if found.is_empty() && is_default_registry(repository) {
            if let Some(creds) = self.creds.get(DEFAULT_REGISTRY_KEY) {
                found.extend(creds.iter().cloned());
            }
        }
        found
    }
}

fn entry_credential(entry: ConfigEntry) -> Result<Credential, String> {
    if entry.auth.is_empty() {
        return Ok(Credential {
            username: entry.username,
            password: entry.password,
        });
    }
    let bad = || "auth must be formatted as base64(username:password)".to_owned();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(entry.auth.trim())
        .map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (username, password) = decoded.split_once(':').ok_or_else(bad)?;
    Ok(Credential {
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

/// A config key as kubelet keys it: no scheme, `/v1/` and `/v2/` mean the host itself.
fn registry_key(location: &str) -> String {
    let rest = location
        .strip_prefix("https://")
        .or_else(|| location.strip_prefix("http://"))
        .unwrap_or(location);
    let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
    let path = path
        .strip_prefix("v1/")
        .or_else(|| path.strip_prefix("v2/"))
        .unwrap_or(path);
    let path = path.trim_end_matches('/');
    if path.is_empty() || path == "v1" || path == "v2" {
        host.to_owned()
    } else {
        format!("{host}/{path}")
    }
}

/// kubelet's `URLsMatch`: same port, same number of host labels each matching as a glob,
/// and the key's path a prefix of the target's.
fn urls_match(key: &str, target: &str) -> bool {
    let (key_host, key_path) = key.split_once('/').unwrap_or((key, ""));
    let (target_host, target_path) = target.split_once('/').unwrap_or((target, ""));
    let split = |h: &str| -> (Vec<String>, String) {
        let (name, port) = h.rsplit_once(':').unwrap_or((h, ""));
        (
            name.split('.').map(str::to_owned).collect(),
            port.to_owned(),
        )
    };
    let (key_labels, key_port) = split(key_host);
    let (target_labels, target_port) = split(target_host);
    key_port == target_port
        && key_labels.len() == target_labels.len()
        && target_path.starts_with(key_path)
        && key_labels
            .iter()
            .zip(&target_labels)
            .all(|(k, t)| glob_match(k.as_bytes(), t.as_bytes()))
}

/// Go's `filepath.Match` for one host label, `*` and `?` only.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob_match(rest, &text[i..])),
        Some((b'?', rest)) => !text.is_empty() && glob_match(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && glob_match(rest, &text[1..]),
    }
}

/// A Docker Hub repository (`docker.io/...`, `index.docker.io/...`).
fn is_default_registry(repository: &str) -> bool {
    let host = repository.split('/').next().unwrap_or("");
    host == "docker.io" || host == DEFAULT_REGISTRY_KEY
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(u: &str, p: &str) -> Credential {
        Credential {
            username: u.into(),
            password: p.into(),
        }
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn dockerconfigjson_auth_wins_over_the_fields_and_keys_lose_their_scheme() {
        let doc = format!(
            r#"{{"auths":{{"https://127.0.0.1:5000/v2/":{{"auth":"{}","username":"x","password":"y"}},
                "reg.example:443":{{"username":"bob","password":"pw"}}}}}}"#,
            b64("alice:se:cret")
        );
        let mut keyring = Keyring::default();
        keyring
            .add_docker_config_json("secret default/regcred", doc.as_bytes())
            .expect("parses");
        assert_eq!(
            keyring.lookup("127.0.0.1:5000/bosun/app"),
            vec![cred("alice", "se:cret")]
        );
        assert_eq!(keyring.lookup("reg.example:443/a"), vec![cred("bob", "pw")]);
        assert!(keyring.lookup("127.0.0.1:5001/bosun/app").is_empty());
        assert!(keyring.lookup("reg.example/a").is_empty());
    }

    #[test]
    fn dockercfg_has_its_registries_at_the_top_level() {
        let doc = format!(
            r#"{{"127.0.0.1:5000":{{"auth":"{}","email":"a@b"}}}}"#,
            b64("u:p")
        );
        let mut keyring = Keyring::default();
        keyring
            .add_dockercfg("cfg", doc.as_bytes())
            .expect("parses");
        assert_eq!(keyring.lookup("127.0.0.1:5000/x"), vec![cred("u", "p")]);
    }

    #[test]
    fn a_bad_auth_field_and_credential_helpers_are_refused_by_name() {
        let mut keyring = Keyring::default();
        let bad = br#"{"auths":{"r.example":{"auth":"bm9jb2xvbg=="}}}"#;
        let err = keyring
            .add_docker_config_json("s", bad)
            .expect_err("no colon");
        assert!(
            err.to_string().contains("base64(username:password)"),
            "{err}"
        );
        let helpers = br#"{"auths":{},"credHelpers":{"r.example":"ecr-login"}}"#;
        let err = keyring
            .add_docker_config_json("s", helpers)
            .expect_err("helpers");
        assert!(err.to_string().contains("credHelpers"), "{err}");
    }

    #[test]
    fn lookup_matches_like_kubelet_most_specific_first() {
        let doc = br#"{"auths":{
            "quay.example":{"username":"host","password":"1"},
            "quay.example/coreos":{"username":"path","password":"2"},
            "*.gcr.example":{"username":"glob","password":"3"},
            "https://index.docker.io/v1/":{"username":"hub","password":"4"}}}"#;
        let mut keyring = Keyring::default();
        keyring.add_docker_config_json("s", doc).expect("parses");
        assert_eq!(
            keyring.lookup("quay.example/coreos/etcd"),
            vec![cred("path", "2"), cred("host", "1")]
        );
        assert_eq!(
            keyring.lookup("quay.example/other"),
            vec![cred("host", "1")]
        );
        assert_eq!(
            keyring.lookup("eu.gcr.example/p/i"),
            vec![cred("glob", "3")]
        );
        // A glob label stands for one label only.
        assert!(keyring.lookup("a.eu.gcr.example/p/i").is_empty());
        assert_eq!(
            keyring.lookup("docker.io/library/busybox"),
            vec![cred("hub", "4")]
        );
        assert!(keyring.lookup("other.example/x").is_empty());
    }

    #[test]
    fn credentials_are_not_printed() {
        let printed = format!("{:?}", cred("alice", "hunter2"));
        assert!(!printed.contains("hunter2"), "{printed}");
    }
}
