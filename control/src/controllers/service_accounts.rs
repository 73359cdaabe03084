//! The service-account controller, as kube-controller-manager's: every active namespace has a
//! ServiceAccount `default` (a deleted one is made again), which pods run as when their spec
//! names none and for which `kubectl create token default` asks. Follows the namespaces and
//! ServiceAccounts caches; a pass on every change of either, and every 30 s.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::client::Loopback;
use super::informer::Informer;
use super::queue::wait_synced;
use crate::api::path::object_key;

/// The account every namespace gets.
pub const DEFAULT: &str = "default";
const RESYNC: Duration = Duration::from_secs(30);

/// The caches it reads.
pub struct Caches {
    pub namespaces: Arc<Informer>,
    pub accounts: Arc<Informer>,
}

/// Starts the controller.
pub fn spawn(client: Loopback, caches: Caches) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut namespace_changes = caches.namespaces.subscribe();
        let mut account_changes = caches.accounts.subscribe();
        wait_synced(&[&caches.namespaces, &caches.accounts]).await;
        loop {
            pass(&client, &caches).await;
            tokio::select! {
                _ = namespace_changes.recv() => {}
                _ = account_changes.recv() => {}
                _ = tokio::time::sleep(RESYNC) => {}
            }
            // A burst of changes makes one pass.
            tokio::time::sleep(Duration::from_millis(50)).await;
            while namespace_changes.try_recv().is_ok() || account_changes.try_recv().is_ok() {}
        }
    })
}

/// The namespaces that need their `default` account made.
pub fn missing(namespaces: &[Arc<Value>], has: impl Fn(&str) -> bool) -> Vec<String> {
    namespaces
        .iter()
        .filter(|ns| {
            ns["metadata"]["deletionTimestamp"].is_null() && ns["status"]["phase"] != "Terminating"
        })
        .filter_map(|ns| ns["metadata"]["name"].as_str())
        .filter(|name| !has(name))
        .map(str::to_owned)
        .collect()
}

async fn pass(client: &Loopback, caches: &Caches) {
    let resource = caches.accounts.resource;
    let namespaces = caches.namespaces.list(|_| true);
    let has = |ns: &str| {
        caches
            .accounts
            .get(&object_key(resource, Some(ns), DEFAULT))
            .is_some()
    };
    for ns in missing(&namespaces, has) {
        let account = json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": DEFAULT, "namespace": ns}});
        match client.create(resource, Some(&ns), &account).await {
            Ok(_) => {}
            Err(e) if e.is_already_exists() => {}
            // A namespace being deleted refuses it; the next pass sees it gone.
            Err(error) => {
                tracing::debug!(%error, namespace = %ns, "making the default ServiceAccount")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_namespaces_without_the_account_get_one() {
        let ns = |name: &str, extra: Value| {
            let mut v = json!({"metadata": {"name": name}, "status": {"phase": "Active"}});
            if let Some(map) = extra.as_object() {
                for (k, val) in map {
                    v["metadata"][k] = val.clone();
                }
            }
            Arc::new(v)
        };
        let mut terminating = ns("going", json!({}));
        Arc::make_mut(&mut terminating)["status"]["phase"] = json!("Terminating");
        let list = vec![
            ns("default", json!({})),
            ns("team", json!({})),
            ns(
                "deleted",
                json!({"deletionTimestamp": "2026-01-01T00:00:00Z"}),
            ),
            terminating,
        ];
        assert_eq!(missing(&list, |n| n == "default"), ["team"]);
    }
}
