//! The namespaces the server owns: at start it creates default, kube-system, kube-public and
//! kube-node-lease when missing (each with its `default` ServiceAccount, which a created
//! namespace gets at once too), and resumes any namespace deletion a restart interrupted.
//! Deleting a namespace marks it Terminating (deletionTimestamp, status.phase), then a
//! background task deletes every namespaced object in it, of every kind, and finally the
//! namespace itself; objects with finalizers are waited for, retried every second.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::delete::{delete_kv, Outcome, Request};
use super::path::object_key;
use super::{decode_stored, map_store_error, meta, ApiState};
use crate::kinds::{self, Resource};
use crate::status::ApiError;
use crate::store::{self, KeyValue, ListOptions, Store};

/// The namespaces every cluster has.
pub const BUILT_IN: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// The namespaces Kubernetes refuses to delete.
pub const UNDELETABLE: &[&str] = &["default", "kube-system", "kube-public"];

fn namespaces() -> &'static Resource {
    match kinds::find("", "v1", "namespaces") {
        Some(r) => r,
        None => unreachable!("the kinds table serves namespaces"),
    }
}

/// Creates the built-in namespaces when missing and resumes interrupted deletions.
pub async fn bootstrap(state: &Arc<ApiState>) -> Result<(), store::Error> {
    let resource = namespaces();
    for name in BUILT_IN {
        let key = object_key(resource, None, name);
        if state.store.get(&key).await?.is_some() {
            continue;
        }
        let mut object =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        if meta::prepare_create(&mut object, resource, None).is_err() {
            continue;
        }
        let Ok(bytes) = meta::to_stored(&object) else {
            continue;
        };
        match state.store.create(&key, bytes).await {
            Ok(_) | Err(store::Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    for name in BUILT_IN {
        create_default_account(state.store.as_ref(), name).await?;
    }
    let page = state
        .store
        .list(&resource.key_prefix(), &ListOptions::default())
        .await?;
    for kv in page.items {
        if let Ok(ns) = decode_stored(&kv) {
            if !ns["metadata"]["deletionTimestamp"].is_null() {
                spawn_finalizer(state, meta::name_of(&ns).to_owned());
            }
        }
    }
    Ok(())
}

/// Creates the `default` ServiceAccount of namespace `ns` when missing, as soon as the
/// namespace is: kube leaves it to the service-account controller, and a pod created right
/// after its namespace then fails its ServiceAccount admission until the controller's pass;
/// here the account exists as soon as the namespace does (the controller still makes a deleted
/// one again).
pub async fn create_default_account(store: &dyn Store, ns: &str) -> Result<(), store::Error> {
    let Some(accounts) = kinds::find("", "v1", "serviceaccounts") else {
        return Ok(());
    };
    let key = object_key(accounts, Some(ns), "default");
    let mut account = json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "default", "namespace": ns}});
    if meta::prepare_create(&mut account, accounts, Some(ns)).is_err() {
        return Ok(());
    }
    let Ok(bytes) = meta::to_stored(&account) else {
        return Ok(());
    };
    match store.create(&key, bytes).await {
        Ok(_) | Err(store::Error::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Marks the namespace in `kv` Terminating and starts removing its content.
pub async fn begin_delete(state: &Arc<ApiState>, kv: &KeyValue) -> Result<Value, ApiError> {
    let mut ns = decode_stored(kv)?;
    let name = meta::name_of(&ns).to_owned();
    if ns["metadata"]["deletionTimestamp"].is_null() {
        ns["metadata"]["deletionTimestamp"] = json!(meta::now());
        ns["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        ns["status"]["phase"] = json!("Terminating");
        let updated = state
            .store
            .update(&kv.key, meta::to_stored(&ns)?, kv.mod_revision)
            .await
            .map_err(|e| match e {
                store::Error::Conflict { .. } => ApiError::conflict("", "namespaces", &name),
                other => map_store_error(other),
            })?;
        ns = decode_stored(&updated)?;
    }
    state.namespace_cache.mark_terminating(&name);
    spawn_finalizer(state, name);
    Ok(ns)
}

fn running(state: &ApiState) -> std::sync::MutexGuard<'_, HashSet<String>> {
    state
        .finalizing
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn spawn_finalizer(state: &Arc<ApiState>, name: String) {
    if !running(state).insert(name.clone()) {
        return; // its task runs already
    }
    let state = Arc::clone(state);
    let store = Arc::clone(&state.store);
    tokio::spawn(async move {
        loop {
            match empty_namespace(store.as_ref(), &name).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(namespace = %name, %error.message, "deleting the namespace's objects")
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let key = object_key(namespaces(), None, &name);
        match store.delete(&key, None).await {
            Ok(_) | Err(store::Error::NotFound { .. }) => {
                tracing::info!(namespace = %name, "namespace deleted")
            }
            Err(error) => tracing::warn!(namespace = %name, %error, "deleting the namespace"),
        }
        running(&state).remove(&name);
    });
}

/// Deletes every object in namespace `name`; true when none is left.
async fn empty_namespace(store: &dyn Store, name: &str) -> Result<bool, ApiError> {
    let mut empty = true;
    let mut seen = Vec::new();
    for r in kinds::all().filter(|r| r.namespaced() && r.served()) {
        let prefix = format!("{}{name}/", r.key_prefix());
        if seen.contains(&prefix) {
            continue;
        }
        let page = store
            .list(&prefix, &ListOptions::default())
            .await
            .map_err(map_store_error)?;
        for kv in &page.items {
            match delete_kv(store, kv, Request::default(), map_store_error).await {
                Ok(Outcome::Deleted(_)) => {}
                Ok(Outcome::Marked(_)) => empty = false,
                Err(e) if e.code == http::StatusCode::NOT_FOUND => {}
                Err(_) => empty = false,
            }
        }
        seen.push(prefix);
    }
    Ok(empty)
}
