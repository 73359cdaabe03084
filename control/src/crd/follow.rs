//! Keeps the registry of served custom resources in step with the stored CRDs, in every
//! control process (not only the one running the controllers): the CRDs are listed before
//! the server answers its first request, then followed with a watch. A list or watch that
//! fails keeps what is served and starts over after a second — a store outage never stops
//! serving custom resources.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::registry;
use crate::store::{EventKind, ListOptions, Store};

/// Where CRDs are stored.
pub const PREFIX: &str = "/registry/apiextensions.k8s.io/customresourcedefinitions/";

/// The CRDs by key, and the revision they were read at.
async fn list_all(
    store: &dyn Store,
) -> Result<(BTreeMap<String, Value>, i64), crate::store::Error> {
    let mut crds = BTreeMap::new();
    let mut options = ListOptions::default();
    loop {
        let page = store.list(PREFIX, &options).await?;
        for kv in &page.items {
            if let Ok(crd) = crate::api::decode_stored(kv) {
                crds.insert(kv.key.clone(), crd);
            }
        }
        match (page.more, page.items.last()) {
            (true, Some(last)) => {
                options.after_key = Some(last.key.clone());
                options.revision = Some(page.revision);
            }
            _ => return Ok((crds, page.revision)),
        }
    }
}

fn publish(crds: &BTreeMap<String, Value>) {
    let all: Vec<Value> = crds.values().cloned().collect();
    registry::replace(&all);
}

/// Reads the CRDs once (so the first request already finds the custom resources; a failure
/// is logged and left to the follower), then follows them until the task is aborted.
pub async fn start(store: Arc<dyn Store>) -> tokio::task::JoinHandle<()> {
    let first = match list_all(store.as_ref()).await {
        Ok((crds, revision)) => {
            publish(&crds);
            Some((crds, revision))
        }
        Err(error) => {
            tracing::warn!(%error, "listing CustomResourceDefinitions");
            None
        }
    };
    tokio::spawn(follow(store, first))
}

async fn follow(store: Arc<dyn Store>, mut listed: Option<(BTreeMap<String, Value>, i64)>) {
    loop {
        let (mut crds, revision) = match listed.take() {
            Some(listed) => listed,
            None => match list_all(store.as_ref()).await {
                Ok(listed) => listed,
                Err(error) => {
                    tracing::debug!(%error, "listing CustomResourceDefinitions");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        publish(&crds);
        match store.watch(PREFIX, revision).await {
            Ok(mut events) => {
                while let Some(Ok(event)) = events.next().await {
                    match event.kind {
                        EventKind::Delete => {
                            crds.remove(&event.kv.key);
                        }
                        EventKind::Put => {
                            if let Ok(crd) = crate::api::decode_stored(&event.kv) {
                                crds.insert(event.kv.key.clone(), crd);
                            }
                        }
                    }
                    publish(&crds);
                }
            }
            Err(error) => tracing::debug!(%error, "watching CustomResourceDefinitions"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
