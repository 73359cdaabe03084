//! A DaemonSet's or StatefulSet's rollout history, as kube-controller-manager keeps it: one
//! ControllerRevision per template (`<owner>-<template hash>`, the template's labels plus
//! `controller-revision-hash`, controlled by the owner), whose `data` is the strategic merge
//! patch that puts that template back (`{"spec": {"template": {…, "$patch": "replace"}}}`,
//! what `kubectl rollout undo` applies) and whose `revision` orders them: the current
//! template's revision is always the highest (a template seen before gets its revision
//! bumped, as after an undo). Revisions beyond `revisionHistoryLimit` (10) that are not
//! current are deleted, oldest first. `kubectl rollout history` reads them. A name taken by a
//! revision of another template or owner is a hash collision: the owner's
//! `status.collisionCount` is raised and the hash computed again.

use serde_json::{json, Value};

use super::client::{resource_path, ClientError, Loopback};
use crate::kinds;

const HASH_LABEL: &str = "controller-revision-hash";
const DEFAULT_HISTORY_LIMIT: usize = 10;

fn revisions_resource() -> Option<&'static kinds::Resource> {
    kinds::find("apps", "v1", "controllerrevisions")
}

/// The name of a revision taken by another template or owner: the caller raises
/// `status.collisionCount` and hashes again.
#[derive(Debug)]
pub struct Collision;

/// What went wrong keeping the history.
#[derive(Debug)]
pub enum HistoryError {
    Collision(Collision),
    Client(ClientError),
}

impl From<ClientError> for HistoryError {
    fn from(e: ClientError) -> Self {
        HistoryError::Client(e)
    }
}

/// The patch that restores `ds`'s template.
pub fn restore_patch(ds: &Value) -> Value {
    let mut template = ds["spec"]["template"].clone();
    if let Some(map) = template.as_object_mut() {
        map.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": template}})
}

fn revision(r: &Value) -> i64 {
    r["revision"].as_i64().unwrap_or(0)
}

/// The revisions `ds` controls, from a list of its namespace's.
fn owned<'a>(ds: &Value, all: &'a [Value]) -> Vec<&'a Value> {
    let uid = &ds["metadata"]["uid"];
    all.iter()
        .filter(|r| {
            r["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|o| o["controller"] == true && o["uid"] == *uid)
        })
        .collect()
}

/// Makes sure the revision of `ds`'s current template (`hash`) exists and is the newest, and
/// trims the history; the owner's revisions as listed before trimming (the current one
/// included, as created or found).
pub async fn sync(client: &Loopback, ds: &Value, hash: &str) -> Result<Vec<Value>, HistoryError> {
    let Some(resource) = revisions_resource() else {
        return Ok(Vec::new());
    };
    let namespace = ds["metadata"]["namespace"].as_str();
    let ds_name = ds["metadata"]["name"].as_str().unwrap_or("");
    let list = client
        .request(
            http::Method::GET,
            &resource_path(resource, namespace, None),
            "application/json",
            None,
        )
        .await?;
    let all = list["items"].as_array().cloned().unwrap_or_default();
    let mine = owned(ds, &all);
    let name = format!("{ds_name}-{hash}");
    let taken = all.iter().find(|r| r["metadata"]["name"] == name.as_str());
    if let Some(other) = taken {
        let ours = mine
            .iter()
            .any(|m| m["metadata"]["uid"] == other["metadata"]["uid"]);
        if !ours || other["data"] != restore_patch(ds) {
            return Err(HistoryError::Collision(Collision));
        }
    }
    let newest = mine.iter().map(|r| revision(r)).max().unwrap_or(0);
    let mut created = None;
    match mine.iter().find(|r| r["metadata"]["name"] == name.as_str()) {
        Some(current) if revision(current) == newest => {}
        Some(current) => {
            let patch = json!({"revision": newest + 1,
                "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]}});
            client
                .merge_patch(resource, namespace, &name, &patch)
                .await?;
        }
        None => {
            let mut labels = ds["spec"]["template"]["metadata"]["labels"].clone();
            if !labels.is_object() {
                labels = json!({});
            }
            labels[HASH_LABEL] = json!(hash);
            let revision = json!({
                "apiVersion": "apps/v1",
                "kind": "ControllerRevision",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": labels,
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": ds["kind"],
                        "name": ds_name, "uid": ds["metadata"]["uid"],
                        "controller": true, "blockOwnerDeletion": true}],
                },
                "data": restore_patch(ds),
                "revision": newest + 1,
            });
            match client.create(resource, namespace, &revision).await {
                Ok(stored) => created = Some(stored),
                Err(e) if e.is_already_exists() => return Err(HistoryError::Collision(Collision)),
                Err(e) => return Err(e.into()),
            }
        }
    }
    let listed: Vec<Value> = mine.iter().map(|r| (*r).clone()).chain(created).collect();
    let limit = ds["spec"]["revisionHistoryLimit"]
        .as_u64()
        .map_or(DEFAULT_HISTORY_LIMIT, |l| l as usize);
    let mut old: Vec<&Value> = mine
        .into_iter()
        .filter(|r| r["metadata"]["name"] != name.as_str())
        .collect();
    old.sort_by_key(|r| revision(r));
    let excess = old.len().saturating_sub(limit);
    for r in old.into_iter().take(excess) {
        let old_name = r["metadata"]["name"].as_str().unwrap_or("");
        let options = json!({"preconditions": {"uid": r["metadata"]["uid"]}});
        match client.delete(resource, namespace, old_name, &options).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() || e.is_conflict() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(listed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restore_patch_replaces_the_whole_template() {
        let ds = json!({"spec": {"template": {"metadata": {"labels": {"app": "a"}},
            "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}});
        let patch = restore_patch(&ds);
        assert_eq!(patch["spec"]["template"]["$patch"], "replace");
        assert_eq!(
            patch["spec"]["template"]["spec"]["containers"][0]["image"],
            "i:1"
        );
    }

    #[test]
    fn only_the_daemonsets_own_revisions_count() {
        let ds = json!({"metadata": {"uid": "u1"}});
        let all = vec![
            json!({"metadata": {"name": "a", "ownerReferences": [{"uid": "u1", "controller": true}]}}),
            json!({"metadata": {"name": "b", "ownerReferences": [{"uid": "u2", "controller": true}]}}),
            json!({"metadata": {"name": "c"}}),
        ];
        let mine = owned(&ds, &all);
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0]["metadata"]["name"], "a");
    }
}
