//! The pods bound to each node, by namespace, as a watch of the store shows them — the node
//! authorizer's graph in kube-apiserver is fed by informers the same way. Every pod asks for a
//! service-account token and the `kube-root-ca.crt` ConfigMap when it starts, so a scan of the
//! namespace's pods per request cost a thousand-pod namespace a pass over every pod's bytes,
//! hundreds of times at once.
//!
//! Each pod is kept as the little the node rules read (its name, service account, and the
//! parts of its spec that name Secrets, ConfigMaps and claims). The index only ever allows:
//! when it finds no pod that relates the node to the object — not synced yet, or the watch a
//! few milliseconds behind a pod just bound — the rule asks the store.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::PodTest;
use crate::api::store_mirror::{Follower, Mirror};
use crate::kinds;
use crate::store::{Event, EventKind, KeyValue, Store};

/// (namespace, node) → pod key → the pod as the node rules read it.
type ByNode = HashMap<(String, String), HashMap<String, Arc<Value>>>;

#[derive(Default)]
struct Index {
    by_node: ByNode,
    /// Pod key → its (namespace, node), to move or drop it on a change.
    placement: HashMap<String, (String, String)>,
}

/// The index, unknown (`None`) until the first list and whenever the watch breaks.
#[derive(Default)]
pub struct PodIndex {
    index: RwLock<Option<Index>>,
    follower: Follower,
    prefix: OnceLock<String>,
}

impl PodIndex {
    /// Whether a pod of `namespace` bound to `node` passes `test`, as far as the index
    /// knows (`false` also when it does not know); the first call starts following the store.
    pub fn any(
        self: &Arc<Self>,
        store: &Arc<dyn Store>,
        namespace: &str,
        node: &str,
        test: &PodTest<'_>,
    ) -> bool {
        if let Some(pods) = kinds::find("", "v1", "pods") {
            let prefix = self.prefix.get_or_init(|| pods.key_prefix()).clone();
            self.follower.start(Arc::downgrade(self), store, prefix);
        }
        let guard = self.index.read().unwrap_or_else(|e| e.into_inner());
        guard
            .as_ref()
            .and_then(|index| index.by_node.get(&(namespace.to_owned(), node.to_owned())))
            .is_some_and(|pods| pods.values().any(|pod| test(pod)))
    }
}

impl Index {
    fn remove(&mut self, key: &str) {
        if let Some(place) = self.placement.remove(key) {
            if let Some(pods) = self.by_node.get_mut(&place) {
                pods.remove(key);
                if pods.is_empty() {
                    self.by_node.remove(&place);
                }
            }
        }
    }

    fn put(&mut self, key: &str, stored: &[u8]) {
        self.remove(key);
        let Ok(pod) = serde_json::from_slice::<RuleView>(stored) else {
            return; // not a pod document: the store scan decides (and reports it)
        };
        if pod.spec.node_name.is_empty() {
            return;
        }
        let place = (pod.metadata.namespace.clone(), pod.spec.node_name.clone());
        let Ok(view) = serde_json::to_value(&pod) else {
            return;
        };
        self.by_node
            .entry(place.clone())
            .or_default()
            .insert(key.to_owned(), Arc::new(view));
        self.placement.insert(key.to_owned(), place);
    }
}

impl Mirror for PodIndex {
    fn reset(&self, items: Option<&[KeyValue]>) {
        let index = items.map(|items| {
            let mut index = Index::default();
            for kv in items {
                index.put(&kv.key, &kv.value);
            }
            index
        });
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = index;
    }

    fn apply(&self, event: &Event) {
        let mut guard = self.index.write().unwrap_or_else(|e| e.into_inner());
        let index = guard.get_or_insert_with(Index::default);
        match event.kind {
            EventKind::Put => index.put(&event.kv.key, &event.kv.value),
            EventKind::Delete => index.remove(&event.kv.key),
        }
    }
}

/// The parts of a pod the node rules read (`node::references`, the pod's service account);
/// everything else in the stored document is skipped unbuilt.
#[derive(Deserialize, Serialize)]
struct RuleView {
    metadata: ViewMeta,
    #[serde(default)]
    spec: ViewSpec,
}

#[derive(Deserialize, Serialize)]
struct ViewMeta {
    #[serde(default, deserialize_with = "null_as_default")]
    name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    namespace: String,
}

#[derive(Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct ViewSpec {
    #[serde(default, deserialize_with = "null_as_default")]
    node_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service_account_name: Option<String>,
    #[serde(default)]
    image_pull_secrets: Value,
    #[serde(default)]
    volumes: Value,
    #[serde(default, deserialize_with = "null_as_default")]
    containers: Vec<ViewContainer>,
    #[serde(default, deserialize_with = "null_as_default")]
    init_containers: Vec<ViewContainer>,
    #[serde(default, deserialize_with = "null_as_default")]
    ephemeral_containers: Vec<ViewContainer>,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct ViewContainer {
    #[serde(default, deserialize_with = "null_as_default")]
    env: Vec<ViewEnv>,
    #[serde(default)]
    env_from: Value,
}

/// A null where a list or a name goes reads as absent (JSON written by clients and older
/// versions of this server has `"initContainers": null`); refusing it dropped the whole pod
/// from the index, and every request of its node fell back to a scan of the namespace.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// Only an entry's `valueFrom` names another object.
#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct ViewEnv {
    #[serde(default)]
    value_from: Value,
}

#[cfg(test)]
mod tests {
    use super::Index;
    use crate::authn::service_account::pod_service_account;
    use crate::authz::node::references;

    fn pod(name: &str, node: &str) -> String {
        serde_json::json!({
            "metadata": {"name": name, "namespace": "default", "labels": {"a": "b"}},
            "spec": {
                "nodeName": node,
                "serviceAccountName": "builder",
                "imagePullSecrets": [{"name": "pull"}],
                "volumes": [{"name": "cfg", "configMap": {"name": "app-config"}},
                            {"name": "data", "ephemeral": {"volumeClaimTemplate": {}}}],
                "containers": [{"name": "c", "image": "i",
                    "env": [{"name": "X", "value": "1"},
                            {"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "p"}}}],
                    "envFrom": [{"configMapRef": {"name": "env-cm"}}]}]
            },
            "status": {"phase": "Running"}
        })
        .to_string()
    }

    #[test]
    fn the_view_keeps_what_the_rules_read() {
        let mut index = Index::default();
        index.put("/pods/default/web", pod("web", "n1").as_bytes());
        let place = ("default".to_owned(), "n1".to_owned());
        let view = &index.by_node[&place]["/pods/default/web"];
        assert_eq!(pod_service_account(view), "builder");
        for (plural, name) in [
            ("secrets", "pull"),
            ("secrets", "db"),
            ("configmaps", "app-config"),
            ("configmaps", "env-cm"),
            ("persistentvolumeclaims", "web-data"),
        ] {
            assert!(references(view, plural, name), "{plural}/{name}");
        }
        assert!(!references(view, "secrets", "app-config"));
        assert!(view.get("status").is_none());
    }

    #[test]
    fn a_rebound_or_deleted_pod_moves_or_goes() {
        let mut index = Index::default();
        index.put("k", pod("web", "n1").as_bytes());
        index.put("k", pod("web", "n2").as_bytes());
        assert!(!index.by_node.contains_key(&("default".into(), "n1".into())));
        assert_eq!(index.by_node[&("default".into(), "n2".into())].len(), 1);
        index.put("k", pod("web", "").as_bytes());
        assert!(index.by_node.is_empty() && index.placement.is_empty());
        index.put("k", pod("web", "n1").as_bytes());
        index.remove("k");
        assert!(index.by_node.is_empty() && index.placement.is_empty());
        index.put("k", b"not json");
        assert!(index.by_node.is_empty());
    }
}

#[cfg(test)]
mod store_tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::PodIndex;
    use crate::store::{SqliteConfig, SqliteStore, Store};

    #[tokio::test]
    async fn the_index_follows_pods_bound_after_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(SqliteConfig::new(dir.path())).unwrap());
        let index = Arc::new(PodIndex::default());
        let prefix = crate::kinds::find("", "v1", "pods").unwrap().key_prefix();
        let on_n1 = |index: &Arc<PodIndex>| index.any(&store, "default", "n1", &|_| true);
        assert!(!on_n1(&index));
        let pod = serde_json::json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"nodeName": "n1", "initContainers": null,
                     "containers": [{"name": "c", "image": "i", "env": null}]}});
        store
            .create(&format!("{prefix}default/web"), pod.to_string().into())
            .await
            .unwrap();
        for _ in 0..100 {
            if on_n1(&index) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the index never showed the pod bound to n1");
    }
}
