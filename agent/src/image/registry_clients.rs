//! The registry clients of one node. `oci-client` keeps one credential per registry in a
//! client (the first it is given) and caches tokens per repository, so pulls with different
//! credentials each get a client of their own: one anonymous client, and one per
//! (registry, user, password), kept while the agent runs (a few at most; the cache is cleared
//! past [`MAX_CLIENTS`]). Also reads the registry's own answer to a refused request, which
//! `oci-client` drops. Never logs a password.

use std::collections::HashMap;
use std::sync::Mutex;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::Client;

use super::credentials::Credential;
use super::error::ImageError;

/// Credentialed clients kept at most.
const MAX_CLIENTS: usize = 64;
/// Bytes of a registry's error answer quoted at most.
const MAX_ANSWER: usize = 1024;

const USER_AGENT: &str = concat!("bosun-agent/", env!("CARGO_PKG_VERSION"));

type ClientKey = (String, String, String);

/// The node's registry clients.
pub(super) struct RegistryClients {
    insecure: Vec<String>,
    anonymous: Client,
    with_credentials: Mutex<HashMap<ClientKey, Client>>,
    http: reqwest::Client,
}

impl RegistryClients {
    /// HTTPS (rustls, ring) everywhere except the `insecure` registries (`HOST:PORT` as
    /// written in image references), which get plain HTTP.
    pub(super) fn new(insecure: &[String]) -> Result<Self, ImageError> {
        // reqwest is built without a default crypto provider: use ring, like the rest of bosun.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| client_err(&e))?;
        Ok(RegistryClients {
            insecure: insecure.to_vec(),
            anonymous: new_client(insecure)?,
            with_credentials: Mutex::default(),
            http,
        })
    }

    pub(super) fn anonymous(&self) -> Client {
        self.anonymous.clone()
    }

    /// The client that pulls from `registry` as `cred`.
    pub(super) fn for_credential(
        &self,
        registry: &str,
        cred: &Credential,
    ) -> Result<Client, ImageError> {
        let key = (
            registry.to_owned(),
            cred.username.clone(),
            cred.password.clone(),
        );
        let mut clients = self
            .with_credentials
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        let client = new_client(&self.insecure)?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    pub(super) fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

fn new_client(insecure: &[String]) -> Result<Client, ImageError> {
    let config = ClientConfig {
        protocol: ClientProtocol::HttpsExcept(insecure.to_vec()),
        platform_resolver: Some(Box::new(oci_client::client::linux_amd64_resolver)),
        user_agent: USER_AGENT,
        ..ClientConfig::default()
    };
    Client::try_from(config).map_err(|e| client_err(&e))
}

fn client_err(e: &dyn std::error::Error) -> ImageError {
    ImageError::Registry {
        action: "creating the registry client".to_owned(),
        reference: String::new(),
        message: e.to_string(),
    }
}

/// The registry's own answer to a request it refused with 401 (`url`, as `cred` or
/// anonymously): its distribution error envelope (`UNAUTHORIZED: authentication required`),
/// else the start of its body.
pub(super) async fn unauthorized_answer(
    http: &reqwest::Client,
    url: &str,
    cred: Option<&Credential>,
) -> String {
    let mut request = http.get(url);
    if let Some(c) = cred {
        request = request.basic_auth(&c.username, Some(&c.password));
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return format!("(the registry's answer could not be read again: {e})"),
    };
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    format!("registry answered {status}: {}", answer_text(&body))
}

/// `CODE: message` of each error of a distribution error envelope, else the body's text.
fn answer_text(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(envelope) if !envelope.errors.is_empty() => envelope
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; "),
        _ => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            match text.char_indices().nth(MAX_ANSWER) {
                Some((cut, _)) => format!("{}…", &text[..cut]),
                None => text.to_owned(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::answer_text;

    #[test]
    fn a_distribution_error_envelope_reads_as_code_and_message() {
        let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}"#;
        assert_eq!(answer_text(body), "UNAUTHORIZED: authentication required");
        assert_eq!(answer_text(b"  no such thing\n"), "no such thing");
    }
}
