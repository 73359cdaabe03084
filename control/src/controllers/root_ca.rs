//! The root-CA publisher, as kube-controller-manager's: every active namespace has a ConfigMap
//! `kube-root-ca.crt` whose only key `ca.crt` is the cluster CA's certificate (PEM), which the
//! `kube-api-access-*` volume of every pod shows at
//! `/var/run/secrets/kubernetes.io/serviceaccount/ca.crt`. A deleted one is made again, an
//! edited one put back. Follows the namespaces and ConfigMaps caches; a pass on every change
//! of either, and every 30 s.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::client::Loopback;
use super::informer::Informer;
use super::queue::wait_synced;
use super::service_accounts::missing;
use crate::api::path::object_key;
use crate::api::service_account_admission::ROOT_CA_CONFIG_MAP;

const RESYNC: Duration = Duration::from_secs(30);
/// kube's annotation on the ConfigMap.
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// The caches it reads.
pub struct Caches {
    pub namespaces: Arc<Informer>,
    pub config_maps: Arc<Informer>,
}

/// Starts the controller, publishing `ca_pem`.
pub fn spawn(client: Loopback, caches: Caches, ca_pem: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut namespace_changes = caches.namespaces.subscribe();
        let mut map_changes = caches.config_maps.subscribe();
        wait_synced(&[&caches.namespaces, &caches.config_maps]).await;
        loop {
            pass(&client, &caches, &ca_pem).await;
            tokio::select! {
                _ = namespace_changes.recv() => {}
                _ = map_changes.recv() => {}
                _ = tokio::time::sleep(RESYNC) => {}
            }
            // A burst of changes makes one pass.
            tokio::time::sleep(Duration::from_millis(50)).await;
            while namespace_changes.try_recv().is_ok() || map_changes.try_recv().is_ok() {}
        }
    })
}

/// The ConfigMap as it should be.
pub fn desired(namespace: &str, ca_pem: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": ROOT_CA_CONFIG_MAP, "namespace": namespace,
                     "annotations": {"kubernetes.io/description": DESCRIPTION}},
        "data": {"ca.crt": ca_pem}})
}

/// The merge patch that puts `current` back to holding only `ca.crt` = `ca_pem`; `None` when
/// it already does.
pub fn repair(current: &Value, ca_pem: &str) -> Option<Value> {
    let data = current["data"].as_object();
    let only_ca = data.is_some_and(|d| d.len() == 1 && d.get("ca.crt") == Some(&json!(ca_pem)));
    if only_ca && current["binaryData"].is_null() {
        return None;
    }
    let mut patch_data = Map::new();
    for key in data.into_iter().flat_map(|d| d.keys()) {
        patch_data.insert(key.clone(), Value::Null);
    }
    patch_data.insert("ca.crt".into(), json!(ca_pem));
    Some(json!({"data": patch_data, "binaryData": null}))
}

async fn pass(client: &Loopback, caches: &Caches, ca_pem: &str) {
    let resource = caches.config_maps.resource;
    let namespaces = caches.namespaces.list(|_| true);
    for ns in missing(&namespaces, |_| false) {
        let key = object_key(resource, Some(&ns), ROOT_CA_CONFIG_MAP);
        let result = match caches.config_maps.get(&key) {
            None => match client
                .create(resource, Some(&ns), &desired(&ns, ca_pem))
                .await
            {
                Err(e) if e.is_already_exists() => Ok(()),
                other => other.map(drop),
            },
            Some(current) => match repair(&current, ca_pem) {
                Some(patch) => client
                    .merge_patch(resource, Some(&ns), ROOT_CA_CONFIG_MAP, &patch)
                    .await
                    .map(drop),
                None => Ok(()),
            },
        };
        // A namespace being deleted refuses it; the next pass sees it gone.
        if let Err(error) = result {
            tracing::debug!(%error, namespace = %ns, "publishing kube-root-ca.crt");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_ca_key_with_the_ca_is_left_alone() {
        let pem = "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n";
        assert_eq!(repair(&desired("a", pem), pem), None);
        let edited = json!({"data": {"ca.crt": "other", "extra": "y"}});
        assert_eq!(
            repair(&edited, pem),
            Some(json!({"data": {"ca.crt": pem, "extra": null}, "binaryData": null}))
        );
        let binary = json!({"data": {"ca.crt": pem}, "binaryData": {"b": "AA=="}});
        assert!(repair(&binary, pem).is_some());
        assert!(repair(&json!({}), pem).is_some());
    }
}
