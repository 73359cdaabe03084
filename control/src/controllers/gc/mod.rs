//! The garbage collector: deletes objects whose owners (`metadata.ownerReferences`) are gone,
//! and carries out Foreground and Orphan deletion (the `foregroundDeletion` and `orphan`
//! finalizers the API's DELETE adds), as kube-controller-manager's garbage collector does.
//!
//! One task follows the whole registry (a list, then a watch from its revision; a failed or
//! ended watch lists again, and a failed list keeps the last graph) and marks the uids a change
//! concerns; another plans each one (`plan`) and writes through the loopback client, so its
//! writes are validated like any other. A failed step is retried with backoff.

mod graph;
mod plan;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::json;

use super::client::{ClientError, Loopback};
use super::queue::WorkQueue;
use crate::store::{EventKind, ListOptions, Store};
use graph::Graph;
use plan::Step;

/// Every object lives under this prefix.
const REGISTRY: &str = "/registry/";
/// Page size of the (re)list.
const PAGE: usize = 500;

/// State shared by the two tasks: the graph and the queue of uids to look at.
#[derive(Default)]
struct Shared {
    graph: Mutex<Graph>,
    queue: Arc<WorkQueue>,
}

/// Runs the collector until the returned tasks are aborted.
pub fn spawn(store: Arc<dyn Store>, client: Loopback) -> Vec<tokio::task::JoinHandle<()>> {
    let shared = Arc::new(Shared::default());
    vec![
        tokio::spawn(follow(store, Arc::clone(&shared))),
        tokio::spawn(work(client, shared)),
    ]
}

/// Keeps the graph in step with the store.
async fn follow(store: Arc<dyn Store>, shared: Arc<Shared>) {
    loop {
        let revision = match list(store.as_ref()).await {
            Ok((graph, revision)) => {
                let candidates = graph.all_candidates();
                *shared.graph.lock().unwrap_or_else(PoisonError::into_inner) = graph;
                shared.queue.add(candidates);
                revision
            }
            Err(error) => {
                tracing::warn!(%error, "garbage collector: listing the registry; keeping the last view");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut stream = match store.watch(REGISTRY, revision).await {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, "garbage collector: watching the registry");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(event) => event,
                Err(error) => {
                    tracing::info!(%error, "garbage collector: the watch ended; listing again");
                    break;
                }
            };
            let dirty = {
                let mut graph = shared.graph.lock().unwrap_or_else(PoisonError::into_inner);
                match event.kind {
                    EventKind::Put => graph.put(&event.kv.key, &event.kv.value, event.revision()),
                    EventKind::Delete => graph.remove(&event.kv.key),
                }
            };
            shared.queue.add(dirty);
        }
    }
}

/// The whole registry at one revision, as a graph.
async fn list(store: &dyn Store) -> Result<(Graph, i64), crate::store::Error> {
    let mut graph = Graph::default();
    let mut options = ListOptions {
        limit: PAGE,
        ..ListOptions::default()
    };
    loop {
        let page = store.list(REGISTRY, &options).await?;
        for kv in &page.items {
            graph.put(&kv.key, &kv.value, kv.mod_revision);
        }
        if !page.more {
            return Ok((graph, page.revision));
        }
        options.after_key = page.items.last().map(|kv| kv.key.clone());
        options.revision = Some(page.revision);
    }
}

/// Plans and carries out the work on every marked uid.
async fn work(client: Loopback, shared: Arc<Shared>) {
    loop {
        for uid in shared.queue.next_batch().await {
            let steps = plan::plan(
                &shared.graph.lock().unwrap_or_else(PoisonError::into_inner),
                &uid,
            );
            match run(&client, &steps).await {
                Ok(()) => shared.queue.forget(&uid),
                Err(error) => {
                    let tries = shared.queue.retry(&uid);
                    if tries == 1 || !error.is_conflict() {
                        tracing::warn!(%uid, %error, tries, "garbage collector: retrying");
                    }
                }
            }
        }
    }
}

/// Carries out `steps` in order; an object already gone is no error.
async fn run(client: &Loopback, steps: &[Step]) -> Result<(), ClientError> {
    for step in steps {
        let result = match step {
            Step::Delete {
                at,
                uid,
                propagation,
            } => {
                tracing::info!(
                    kind = at.resource.kind, namespace = ?at.namespace, name = %at.name,
                    propagation, "garbage collector: deleting a dependent"
                );
                let options = json!({
                    "kind": "DeleteOptions", "apiVersion": "v1",
                    "propagationPolicy": propagation,
                    "preconditions": {"uid": uid},
                });
                client
                    .delete(at.resource, at.namespace.as_deref(), &at.name, &options)
                    .await
            }
            Step::PatchMeta {
                at,
                revision,
                metadata,
            } => {
                let mut metadata = metadata.clone();
                metadata["resourceVersion"] = json!(revision.to_string());
                client
                    .merge_patch(
                        at.resource,
                        at.namespace.as_deref(),
                        &at.name,
                        &json!({ "metadata": metadata }),
                    )
                    .await
            }
        };
        match result {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
