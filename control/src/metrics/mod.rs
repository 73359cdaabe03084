//! The resource metrics pipeline (metrics-server's job, in process): every API server scrapes
//! each Node's kubelet `/metrics/resource` (`text`) every `resolution` — a node with a single
//! reading is scraped again a second later so a rate exists soon after start — into the
//! in-memory [`window::Window`], and serves `metrics.k8s.io/v1beta1` PodMetrics and NodeMetrics
//! from it (`api`), which `kubectl top` and the HPA controller read. A node whose scrape fails
//! keeps its last good readings for [`STALE`], then has none.

pub mod api;
pub mod text;
pub mod window;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Limited};

use crate::api::ApiState;
use crate::store::ListOptions;

/// How long a node's last good readings are served after its scrapes start failing.
pub const STALE: Duration = Duration::from_secs(90);
/// How long one scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of a scrape's body read.
const BODY_LIMIT: usize = 8 * 1024 * 1024;

/// The shared window; one per API server.
#[derive(Debug, Default)]
pub struct Metrics {
    pub window: Mutex<window::Window>,
}

impl Metrics {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, window::Window> {
        self.window.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Scrapes every node each `resolution`, for ever.
pub fn spawn(state: Arc<ApiState>, resolution: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let incomplete = scrape_all(&state).await;
            let wait = if incomplete {
                Duration::from_secs(1).min(resolution)
            } else {
                resolution
            };
            tokio::time::sleep(wait).await;
        }
    })
}

/// One round; whether some node still lacks a rate.
async fn scrape_all(state: &Arc<ApiState>) -> bool {
    let Some(client) = state.kubelet.clone() else {
        return false;
    };
    let Some(nodes) = crate::kinds::find("", "v1", "nodes") else {
        return false;
    };
    let page = match state
        .store
        .list(&nodes.key_prefix(), &ListOptions::default())
        .await
    {
        Ok(page) => page,
        Err(e) => {
            tracing::debug!(error = %e, "listing nodes to scrape");
            return false;
        }
    };
    let nodes: Vec<serde_json::Value> = page
        .items
        .iter()
        .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
        .collect();
    let names: Vec<String> = nodes
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    let scrapes = nodes.iter().zip(&names).map(|(node, name)| {
        let client = client.clone();
        let location = crate::kubelet::kubelet_location(node, &state.kubelet_address_types);
        async move {
            let location = location.map_err(|e| e.to_string())?;
            let text = tokio::time::timeout(SCRAPE_TIMEOUT, async {
                let resp = client
                    .get(&location, "/metrics/resource")
                    .await
                    .map_err(|e| e.to_string())?;
                if !resp.status().is_success() {
                    return Err(format!("{location} answered {}", resp.status()));
                }
                let body = Limited::new(resp.into_body(), BODY_LIMIT)
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(String::from_utf8_lossy(&body.to_bytes()).into_owned())
            })
            .await
            .map_err(|_| format!("no answer from {location} within {SCRAPE_TIMEOUT:?}"))??;
            Ok::<_, String>((name.clone(), text::parse(&text, now_ms())))
        }
    });
    let results = futures::future::join_all(scrapes).await;
    let mut window = state.metrics.lock();
    let now = now_ms();
    for result in results {
        match result {
            Ok((name, scrape)) => window.record(&name, scrape, now),
            Err(e) => tracing::debug!(error = %e, "scraping a node's resource metrics"),
        }
    }
    window.expire(now, STALE.as_millis() as i64, &names);
    names.iter().any(|n| !window.complete(n))
}
