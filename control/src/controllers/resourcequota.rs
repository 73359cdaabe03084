//! kube-controller-manager's resource quota controller: every ResourceQuota's `status.hard`
//! is its `spec.hard` and its `status.used` what the objects of its namespace use of each
//! (`api::quota::usage`), recounted when a quota's spec or a pod changes (a pod that finishes
//! or goes frees its share at once) and every 10 s for the other kinds — not when only a
//! quota's status changed, as kube's; a scoped quota counts only the pods its scopes match. The write is conditional on
//! the quota's resourceVersion, so a charge the quota admission made meanwhile is not lost.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::client::{resource_path, ClientError, Loopback};
use super::informer::Informer;
use super::queue::wait_synced;
use crate::api::quota::scopes;
use crate::api::quota::usage::{self, counted_kind, parse_list, to_list, Usage};
use crate::kinds::Resource;

const RESYNC: Duration = Duration::from_secs(10);
/// Passes start at least this far apart (a burst of pod changes makes one).
const PASS_GAP: Duration = Duration::from_millis(200);

/// The caches it reads.
pub struct Caches {
    pub quotas: Arc<Informer>,
    pub pods: Arc<Informer>,
}

/// Starts the controller.
pub fn spawn(client: Loopback, caches: Caches) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut quota_changes = caches.quotas.subscribe();
        let mut pod_changes = caches.pods.subscribe();
        wait_synced(&[&caches.quotas, &caches.pods]).await;
        let mut specs = QuotaSpecs::default();
        loop {
            specs.remember(&caches.quotas);
            pass(&client, &caches).await;
            let resync = tokio::time::Instant::now() + RESYNC;
            loop {
                tokio::select! {
                    changed = quota_changes.recv() => match changed {
                        Ok(key) if !specs.changed(&caches.quotas, &key) => continue,
                        _ => break,
                    },
                    _ = pod_changes.recv() => break,
                    _ = tokio::time::sleep_until(resync) => break,
                }
            }
            tokio::time::sleep(PASS_GAP).await;
            while quota_changes.try_recv().is_ok() || pod_changes.try_recv().is_ok() {}
        }
    })
}

/// Each quota's spec as last counted for. Like kube's controller, a change of a quota's
/// status alone (its own writes, the admission's charges) starts no recount: a recount
/// started between a charge and the creation of the object charged for would undo the charge.
#[derive(Default)]
struct QuotaSpecs(BTreeMap<String, Value>);

impl QuotaSpecs {
    fn remember(&mut self, quotas: &Informer) {
        let prefix = quotas.resource.key_prefix();
        self.0 = quotas
            .list(|_| true)
            .iter()
            .map(|q| {
                let key = format!(
                    "{prefix}{}/{}",
                    q["metadata"]["namespace"].as_str().unwrap_or(""),
                    q["metadata"]["name"].as_str().unwrap_or("")
                );
                (key, q["spec"].clone())
            })
            .collect();
    }

    /// Whether the quota at `key` was made, deleted or had its spec changed since counted.
    fn changed(&self, quotas: &Informer, key: &str) -> bool {
        let now = quotas.get(key).map(|q| q["spec"].clone());
        now.as_ref() != self.0.get(key)
    }
}

/// The objects of `resource` in `namespace`: pods from the cache, the rest listed.
async fn objects_of(
    client: &Loopback,
    pods: &Informer,
    resource: &'static Resource,
    namespace: &str,
) -> Result<Vec<Value>, ClientError> {
    if std::ptr::eq(resource, pods.resource) {
        let listed = pods.list(|p| p["metadata"]["namespace"] == namespace);
        return Ok(listed.iter().map(|p| p.as_ref().clone()).collect());
    }
    let path = resource_path(resource, Some(namespace), None);
    let list = client
        .request(http::Method::GET, &path, "application/json", None)
        .await?;
    Ok(list["items"].as_array().cloned().unwrap_or_default())
}

/// What the objects of `namespace` use of each resource of `hard`.
async fn used_in(
    client: &Loopback,
    pods: &Informer,
    quota: &Value,
    hard: &Usage,
) -> Result<Usage, ClientError> {
    let namespace = quota["metadata"]["namespace"].as_str().unwrap_or("");
    let mut kinds: Vec<&'static Resource> = Vec::new();
    for resource in hard.keys().filter_map(|name| counted_kind(name)) {
        if !kinds.iter().any(|k| std::ptr::eq(*k, resource)) {
            kinds.push(resource);
        }
    }
    let mut used: Usage = hard.keys().map(|name| (name.clone(), 0)).collect();
    for resource in kinds {
        for object in objects_of(client, pods, resource, namespace).await? {
            if !scopes::matches(quota, resource, &object) {
                continue;
            }
            for (name, amount) in usage::usage_of(resource, &object) {
                if let Some(total) = used.get_mut(&name) {
                    *total += amount;
                }
            }
        }
    }
    Ok(used)
}

async fn pass(client: &Loopback, caches: &Caches) {
    // Quotas of one namespace tracking the same resources in the same scopes count once.
    let mut cache: BTreeMap<(String, Vec<String>, String), Usage> = BTreeMap::new();
    for quota in caches.quotas.list(|_| true) {
        let namespace = quota["metadata"]["namespace"].as_str().unwrap_or("");
        let name = quota["metadata"]["name"].as_str().unwrap_or("");
        let hard = parse_list(&quota["spec"]["hard"]);
        let scoped = format!(
            "{}{}",
            quota["spec"]["scopes"], quota["spec"]["scopeSelector"]
        );
        let cache_key = (namespace.to_owned(), hard.keys().cloned().collect(), scoped);
        let used = match cache.get(&cache_key) {
            Some(used) => used.clone(),
            None => match used_in(client, &caches.pods, &quota, &hard).await {
                Ok(used) => {
                    cache.insert(cache_key, used.clone());
                    used
                }
                Err(error) => {
                    tracing::debug!(%error, %namespace, quota = %name, "counting quota usage");
                    continue;
                }
            },
        };
        let status = &quota["status"];
        if parse_list(&status["hard"]) == hard && parse_list(&status["used"]) == used {
            continue;
        }
        let patch = json!({"metadata": {"resourceVersion": quota["metadata"]["resourceVersion"]},
            "status": {"hard": quota["spec"]["hard"], "used": to_list(&used)}});
        if let Err(error) = client
            .merge_patch_status(caches.quotas.resource, Some(namespace), name, &patch)
            .await
        {
            // A conflict: the admission charged it meanwhile; the next pass counts again.
            tracing::debug!(%error, %namespace, quota = %name, "writing quota usage");
        }
    }
}
