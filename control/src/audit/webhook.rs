//! The audit webhook backend (`--audit-webhook-config-file`), as kube-apiserver's in its
//! `batch` mode: events queue in a buffer (`--audit-webhook-batch-buffer-size`; when it is
//! full an event is dropped and counted in `apiserver_audit_error_total{plugin="webhook"}`),
//! and go out as audit.k8s.io/v1 `EventList`s POSTed to the kubeconfig's server — a batch when
//! `--audit-webhook-batch-max-size` events are waiting or `--audit-webhook-batch-max-wait`
//! after its first, at most `--audit-webhook-batch-throttle-qps` batches a second (bursts of
//! `…-burst`). A batch the webhook does not take (no answer, 429, 5xx) is sent again after
//! `--audit-webhook-initial-backoff`, then 1.5 times longer each time, five tries in all; then
//! its events are counted as errors and logged.
//!
//! The kubeconfig is kube's webhook kubeconfig: its current context's (or its only) cluster
//! and user. `server` is an `https://` or `http://` URL; the server is verified against
//! `certificate-authority(-data)` or the system's CAs; the user authenticates with a client
//! certificate (`client-certificate(-data)`, `client-key(-data)`) or a bearer token (`token`,
//! `tokenFile`). Any other field is refused naming it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ClientConfig;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::api::admission_webhook::call::{send, Destination};
use crate::api::admission_webhook::config::{parse_url, root_store, Target};

/// Debian's bundle of the system's trusted CAs.
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";
/// How long one POST of a batch may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Tries of one batch (kube's webhook backoff: 5 steps, factor 1.5).
const TRIES: u32 = 5;
const CLUSTER_FIELDS: &[&str] = &[
    "server",
    "certificate-authority",
    "certificate-authority-data",
];
const USER_FIELDS: &[&str] = &[
    "token",
    "tokenFile",
    "client-certificate",
    "client-certificate-data",
    "client-key",
    "client-key-data",
];

/// How events are batched and sent (kube's `--audit-webhook-*` flags).
#[derive(Clone, Debug)]
pub struct BatchConfig {
    pub buffer_size: usize,
    pub max_size: usize,
    pub max_wait: Duration,
    /// Batches a second and the burst, or none for no throttle.
    pub throttle: Option<(f64, u32)>,
    pub initial_backoff: Duration,
}

/// Why the webhook's kubeconfig cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("audit webhook kubeconfig {path}: {why}")]
pub struct ConfigError {
    path: String,
    why: String,
}

/// Where batches go.
pub struct Endpoint {
    destination: Destination,
    tls: Option<Arc<ClientConfig>>,
}

/// The queue of events for the webhook.
#[derive(Clone)]
pub struct WebhookQueue {
    events: mpsc::Sender<String>,
    /// `apiserver_audit_error_total{plugin="webhook"}`.
    errors: Counter,
}

impl WebhookQueue {
    /// Starts the sending task (on the current Tokio runtime).
    pub fn start(config: BatchConfig, endpoint: Endpoint, errors: Counter) -> WebhookQueue {
        let (events, queue) = mpsc::channel(config.buffer_size.max(1));
        tokio::spawn(run(queue, config, Arc::new(endpoint), errors.clone()));
        WebhookQueue { events, errors }
    }

    /// Queues one event (its JSON text); a full buffer drops it, counted as an error.
    pub fn push(&self, event: String) {
        if self.events.try_send(event).is_err() {
            self.errors.inc();
            tracing::warn!("the audit webhook's buffer is full: an audit event was dropped");
        }
    }
}

/// Reads the kubeconfig at `path`.
pub fn endpoint(path: &str) -> Result<Endpoint, ConfigError> {
    let fail = |why: String| ConfigError {
        path: path.to_owned(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let config: Value = serde_yaml::from_str(&text).map_err(|e| fail(e.to_string()))?;
    let dir = Path::new(path).parent().unwrap_or(Path::new("."));
    read_endpoint(&config, dir).map_err(fail)
}

/// The named entry of a kubeconfig list (`clusters`, `users`, `contexts`), or its only one
/// when no name is given.
fn entry<'a>(config: &'a Value, list: &str, name: Option<&str>) -> Result<&'a Value, String> {
    let items = config[list].as_array().map(Vec::as_slice).unwrap_or(&[]);
    match name {
        Some(name) => items
            .iter()
            .find(|i| i["name"] == name)
            .ok_or_else(|| format!("{list} has no entry named {name:?}")),
        None if items.len() == 1 => Ok(&items[0]),
        None => Err(format!(
            "no current-context, and {} {list} (give current-context)",
            items.len()
        )),
    }
}

fn read_endpoint(config: &Value, dir: &Path) -> Result<Endpoint, String> {
    let context = match config["current-context"].as_str().filter(|c| !c.is_empty()) {
        Some(name) => Some(&entry(config, "contexts", Some(name))?["context"]),
        None => None,
    };
    let named = |key: &str| context.and_then(|c| c[key].as_str());
    let cluster = &entry(config, "clusters", named("cluster"))?["cluster"];
    let user = match config["users"].as_array().map_or(0, Vec::len) {
        0 => Value::Null,
        _ => entry(config, "users", named("user"))?["user"].clone(),
    };
    refuse_others(cluster, CLUSTER_FIELDS, "cluster")?;
    refuse_others(&user, USER_FIELDS, "user")?;
    let server = cluster["server"]
        .as_str()
        .ok_or("cluster.server is missing")?;
    let (tls, rest) = match (
        server.strip_prefix("https://"),
        server.strip_prefix("http://"),
    ) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        _ => {
            return Err(format!(
                "cluster.server {server:?}: not an http or https URL"
            ))
        }
    };
    let explicit_port = rest.split('/').next().is_some_and(|a| a.contains(':'));
    let Ok(Target::Url { host, port, path }) = parse_url(&format!("https://{rest}")) else {
        return Err(format!("cluster.server {server:?}: not a valid URL"));
    };
    let port = if tls || explicit_port { port } else { 80 };
    let bracketed = match host.contains(':') {
        true => format!("[{host}]"),
        false => host.clone(),
    };
    let default_port = if tls { 443 } else { 80 };
    let destination = Destination {
        dial: format!("{bracketed}:{port}"),
        server_name: host,
        host: match port == default_port {
            true => bracketed,
            false => format!("{bracketed}:{port}"),
        },
        path_and_query: path,
        bearer_token: token(&user, dir)?,
        scheme: if tls { "https" } else { "http" },
    };
    let tls = match tls {
        true => Some(client_tls(cluster, &user, dir)?),
        false => None,
    };
    Ok(Endpoint { destination, tls })
}

fn refuse_others(section: &Value, known: &[&str], what: &str) -> Result<(), String> {
    let Some(fields) = section.as_object() else {
        return Ok(());
    };
    match fields.keys().find(|k| !known.contains(&k.as_str())) {
        Some(field) => Err(format!(
            "{what}.{field} is not supported by bosun (it takes {})",
            known.join(", ")
        )),
        None => Ok(()),
    }
}

/// A file named by the kubeconfig (relative to its directory) or its inline base64 data.
fn file_or_data(section: &Value, file: &str, dir: &Path) -> Result<Option<Vec<u8>>, String> {
    let data_key = format!("{file}-data");
    if let Some(data) = section[data_key.as_str()].as_str() {
        return base64::engine::general_purpose::STANDARD
            .decode(data)
            .map(Some)
            .map_err(|e| format!("{data_key} is not base64: {e}"));
    }
    match section[file].as_str() {
        Some(name) => {
            let path: PathBuf = dir.join(name);
            std::fs::read(&path)
                .map(Some)
                .map_err(|e| format!("{file} {}: {e}", path.display()))
        }
        None => Ok(None),
    }
}

fn token(user: &Value, dir: &Path) -> Result<Option<String>, String> {
    if let Some(token) = user["token"].as_str() {
        return Ok(Some(token.to_owned()));
    }
    match user["tokenFile"].as_str() {
        Some(name) => std::fs::read_to_string(dir.join(name))
            .map(|t| Some(t.trim().to_owned()))
            .map_err(|e| format!("tokenFile {name}: {e}")),
        None => Ok(None),
    }
}

fn client_tls(cluster: &Value, user: &Value, dir: &Path) -> Result<Arc<ClientConfig>, String> {
    let pem = match file_or_data(cluster, "certificate-authority", dir)? {
        Some(pem) => pem,
        None => std::fs::read(SYSTEM_ROOTS).map_err(|e| format!("{SYSTEM_ROOTS}: {e}"))?,
    };
    let roots = root_store(&pem, "certificate-authority")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let certificate = file_or_data(user, "client-certificate", dir)?;
    let key = file_or_data(user, "client-key", dir)?;
    let mut config = match (certificate, key) {
        (Some(certificate), Some(key)) => {
            let chain = CertificateDer::pem_slice_iter(&certificate)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("client-certificate: {e}"))?;
            let key =
                PrivateKeyDer::from_pem_slice(&key).map_err(|e| format!("client-key: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("client-certificate and client-key go together".to_owned()),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// kube's token bucket on batches: `qps` a second, up to `burst` at once.
struct Throttle {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Throttle {
    async fn acquire(&mut self) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        self.last = now;
        if self.tokens < 1.0 {
            let wait = (1.0 - self.tokens) / self.qps;
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
            self.last = Instant::now();
            self.tokens = 1.0;
        }
        self.tokens -= 1.0;
    }
}

async fn run(
    mut queue: mpsc::Receiver<String>,
    config: BatchConfig,
    endpoint: Arc<Endpoint>,
    errors: Counter,
) {
    let mut throttle = config.throttle.map(|(qps, burst)| Throttle {
        qps: qps.max(0.001),
        burst: f64::from(burst.max(1)),
        tokens: f64::from(burst.max(1)),
        last: Instant::now(),
    });
    while let Some(first) = queue.recv().await {
        let deadline = Instant::now() + config.max_wait;
        let mut batch = vec![first];
        while batch.len() < config.max_size {
            match tokio::time::timeout_at(deadline, queue.recv()).await {
                Ok(Some(event)) => batch.push(event),
                Ok(None) | Err(_) => break,
            }
        }
        if let Some(throttle) = &mut throttle {
            throttle.acquire().await;
        }
        // Sent on its own task: a batch being retried does not hold up the next.
        let (endpoint, errors) = (Arc::clone(&endpoint), errors.clone());
        let backoff = config.initial_backoff;
        tokio::spawn(async move { deliver(&endpoint, batch, backoff, &errors).await });
    }
}

/// The events as one `EventList`.
fn event_list(batch: &[String]) -> Bytes {
    let mut body = String::from(
        r#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":["#,
    );
    body.push_str(&batch.join(","));
    body.push_str("]}");
    Bytes::from(body)
}

async fn deliver(endpoint: &Endpoint, batch: Vec<String>, backoff: Duration, errors: &Counter) {
    let body = event_list(&batch);
    let mut wait = backoff;
    for attempt in 1..=TRIES {
        let sent = send(
            endpoint.tls.clone(),
            &endpoint.destination,
            body.clone(),
            SEND_TIMEOUT,
        )
        .await;
        let error = match sent {
            Ok(_) => return,
            Err(error) => error,
        };
        let retry = error.code == 0 || error.code == 429 || error.code >= 500;
        if !retry || attempt == TRIES {
            errors.inc_by(batch.len() as u64);
            tracing::error!(
                events = batch.len(),
                error = %error.text,
                "Error in audit plugin 'webhook' affecting {} audit events",
                batch.len()
            );
            return;
        }
        tokio::time::sleep(wait).await;
        wait = wait.mul_f64(1.5);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(config: Value) -> Result<Endpoint, String> {
        read_endpoint(&config, Path::new("/nonexistent"))
    }

    #[test]
    fn the_current_context_names_the_cluster_and_user() {
        let config = json!({
            "current-context": "audit",
            "contexts": [{"name": "audit", "context": {"cluster": "sink", "user": "me"}}],
            "clusters": [{"name": "other", "cluster": {"server": "https://10.0.0.1"}},
                         {"name": "sink", "cluster": {"server": "http://127.0.0.1/k8s-audit"}}],
            "users": [{"name": "me", "user": {"token": "secret"}}],
        });
        let endpoint = read(config).expect("usable");
        let d = &endpoint.destination;
        assert_eq!(d.url(), "http://127.0.0.1/k8s-audit");
        assert_eq!(d.dial, "127.0.0.1:80");
        assert_eq!(d.bearer_token.as_deref(), Some("secret"));
        assert!(endpoint.tls.is_none());
    }

    #[test]
    fn unknown_fields_and_ambiguous_configs_are_refused_by_name() {
        let exec = json!({"clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
            "users": [{"name": "u", "user": {"exec": {"command": "x"}}}]});
        let why = read(exec).err().unwrap_or_default();
        assert!(why.starts_with("user.exec is not supported"), "{why}");
        let skip = json!({"clusters": [{"name": "c", "cluster": {"server": "https://a:1",
            "insecure-skip-tls-verify": true}}]});
        let why = read(skip).err().unwrap_or_default();
        assert!(why.starts_with("cluster.insecure-skip-tls-verify"), "{why}");
        let two = json!({"clusters": [{"name": "a", "cluster": {"server": "http://a"}},
            {"name": "b", "cluster": {"server": "http://b"}}]});
        assert!(read(two)
            .err()
            .unwrap_or_default()
            .contains("no current-context"));
        let ftp = json!({"clusters": [{"name": "a", "cluster": {"server": "ftp://a"}}]});
        assert!(read(ftp)
            .err()
            .unwrap_or_default()
            .contains("not an http or https URL"));
    }

    #[test]
    fn a_batch_is_one_event_list() {
        let body = event_list(&[
            r#"{"auditID":"a"}"#.to_owned(),
            r#"{"auditID":"b"}"#.to_owned(),
        ]);
        let list: Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(list["kind"], "EventList");
        assert_eq!(list["apiVersion"], "audit.k8s.io/v1");
        assert_eq!(list["items"][1]["auditID"], "b");
    }

    #[tokio::test]
    async fn the_throttle_lets_a_burst_through_then_paces() {
        let mut throttle = Throttle {
            qps: 20.0,
            burst: 2.0,
            tokens: 2.0,
            last: Instant::now(),
        };
        let start = Instant::now();
        throttle.acquire().await;
        throttle.acquire().await;
        let burst = start.elapsed();
        for _ in 0..2 {
            throttle.acquire().await;
        }
        // Two at once, then one every 50 ms.
        let paced = start.elapsed();
        assert!(burst < Duration::from_millis(40), "{burst:?}");
        assert!(paced >= Duration::from_millis(95), "{paced:?}");
    }
}
