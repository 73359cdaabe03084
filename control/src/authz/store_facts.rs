//! [`Facts`] read from the store: a stored object, and whether a pod bound to a node relates
//! it to an object — from the [`PodIndex`] when it knows, else by a scan of the namespace's
//! pods that reads only each pod's `spec.nodeName` and decodes the node's own pods alone.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::{Facts, PodIndex, PodTest};
use crate::api::path::object_key;
use crate::api::{decode_stored, map_store_error};
use crate::kinds::{self, Resource};
use crate::status::ApiError;
use crate::store::{ListOptions, Store};

pub struct StoreFacts<'a> {
    pub store: &'a Arc<dyn Store>,
    pub pods: &'a Arc<PodIndex>,
    pub rbac: &'a crate::api::RbacCache,
}

#[async_trait::async_trait]
impl Facts for StoreFacts<'_> {
    async fn stored(
        &self,
        resource: &'static Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, ApiError> {
        let key = object_key(resource, namespace, name);
        match self.store.get(&key).await.map_err(map_store_error)? {
            Some(kv) => Ok(Some(decode_stored(&kv)?)),
            None => Ok(None),
        }
    }

    async fn policy(&self) -> Result<Arc<super::rbac::Policy>, ApiError> {
        self.rbac.policy(self.store).await
    }

    async fn any_pod_on_node(
        &self,
        namespace: &str,
        node: &str,
        test: &PodTest<'_>,
    ) -> Result<bool, ApiError> {
        if self.pods.any(self.store, namespace, node, test) {
            return Ok(true);
        }
        let pods = kinds::find("", "v1", "pods")
            .ok_or_else(|| ApiError::internal("the kinds table has no pods"))?;
        let prefix = format!("{}{namespace}/", pods.key_prefix());
        let page = self
            .store
            .list(&prefix, &ListOptions::default())
            .await
            .map_err(map_store_error)?;
        for kv in &page.items {
            // A pod that does not even parse this far is decoded whole, for its error.
            if bound_node(&kv.value).is_none_or(|bound| bound == node) {
                let pod = decode_stored(kv)?;
                if pod["spec"]["nodeName"] == node && test(&pod) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

/// The part of a stored pod the scan reads first: the rest of the document is skipped
/// without being built, so a namespace of thousands of pods costs a pass over its bytes,
/// not thousands of decoded objects per request.
#[derive(Deserialize)]
struct Placement {
    #[serde(default)]
    spec: PlacementSpec,
}

#[derive(Deserialize, Default)]
struct PlacementSpec {
    #[serde(rename = "nodeName", default)]
    node_name: Option<String>,
}

/// The node a stored pod is bound to ("" when it is not bound); `None` when the bytes are not
/// a pod document.
fn bound_node(stored: &[u8]) -> Option<String> {
    let placement: Placement = serde_json::from_slice(stored).ok()?;
    Some(placement.spec.node_name.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::bound_node;

    #[test]
    fn only_the_node_name_is_read() {
        let pod = br#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c"}],"nodeName":"n1"},"status":{}}"#;
        assert_eq!(bound_node(pod).as_deref(), Some("n1"));
        assert_eq!(bound_node(br#"{"spec":{}}"#).as_deref(), Some(""));
        assert_eq!(bound_node(br#"{"metadata":{}}"#).as_deref(), Some(""));
        assert_eq!(bound_node(b"not json"), None);
    }
}
