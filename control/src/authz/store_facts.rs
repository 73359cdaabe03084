//! [`Facts`] read from the store: a stored object, and the pods of a namespace bound to a
//! node (a scan of the namespace's pods; an index by node is the next step when nodes carry
//! thousands of pods).

use serde_json::Value;

use super::Facts;
use crate::api::path::object_key;
use crate::api::{decode_stored, map_store_error};
use crate::kinds::{self, Resource};
use crate::status::ApiError;
use crate::store::{ListOptions, Store};

pub struct StoreFacts<'a> {
    pub store: &'a dyn Store,
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

    async fn pods_on_node(&self, namespace: &str, node: &str) -> Result<Vec<Value>, ApiError> {
        let pods = kinds::find("", "v1", "pods")
            .ok_or_else(|| ApiError::internal("the kinds table has no pods"))?;
        let prefix = format!("{}{namespace}/", pods.key_prefix());
        let page = self
            .store
            .list(&prefix, &ListOptions::default())
            .await
            .map_err(map_store_error)?;
        let mut out = Vec::new();
        for kv in &page.items {
            let pod = decode_stored(kv)?;
            if pod["spec"]["nodeName"] == node {
                out.push(pod);
            }
        }
        Ok(out)
    }
}
