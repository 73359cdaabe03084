//! The apiextensions controllers of kube-apiserver, in one pass per CRD change: names
//! (`acceptedNames`, `NamesAccepted` — no other CRD of the group claims the same plural,
//! singular, short names or kind), establishing (`Established`, after which the registry
//! serves the resource: `crate::crd::follow`), `storedVersions`, and the cleanup of a CRD being
//! deleted: every object of it is deleted (their own finalizers honoured), then the CRD's
//! `customresourcecleanup.apiextensions.k8s.io` finalizer is removed. `status_for` decides
//! without I/O.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::client::Loopback;
use super::informer::Informer;
use super::queue::wait_synced;
use crate::crd::definition::{self, CLEANUP_FINALIZER};
use crate::kinds::Resource;

const RESYNC: Duration = Duration::from_secs(30);

/// Starts the controller over the CRDs cache.
pub fn spawn(client: Loopback, crds: Arc<Informer>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut changes = crds.subscribe();
        wait_synced(&[&crds]).await;
        loop {
            let mut again = false;
            let all = crds.list(|_| true);
            for crd in &all {
                again |= reconcile(&client, crds.resource, crd, &all).await;
            }
            let wait = if again {
                Duration::from_millis(200)
            } else {
                RESYNC
            };
            tokio::select! {
                _ = changes.recv() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            while changes.try_recv().is_ok() {}
        }
    })
}

/// One CRD's pass; whether it needs another soon (objects still being deleted).
async fn reconcile(client: &Loopback, crds: &Resource, crd: &Value, all: &[Arc<Value>]) -> bool {
    let name = crd["metadata"]["name"].as_str().unwrap_or("");
    if !crd["metadata"]["deletionTimestamp"].is_null() {
        return clean_up(client, crds, crd).await;
    }
    if let Some(status) = status_for(crd, all, &crate::api::meta::now()) {
        if let Err(error) = client
            .merge_patch_status(crds, None, name, &json!({ "status": status }))
            .await
        {
            tracing::debug!(%error, crd = %name, "writing a CRD's status");
        }
    }
    false
}

/// The status `crd` should have when it differs from its own; `None` otherwise.
pub fn status_for(crd: &Value, all: &[Arc<Value>], now: &str) -> Option<Value> {
    let spec = &crd["spec"];
    let kind = spec["names"]["kind"].as_str().unwrap_or("");
    let mut names = spec["names"].clone();
    if names["singular"].as_str().unwrap_or("").is_empty() {
        names["singular"] = json!(kind.to_lowercase());
    }
    if names["listKind"].as_str().unwrap_or("").is_empty() {
        names["listKind"] = json!(format!("{kind}List"));
    }
    let conflict = conflict(crd, &names, all);
    let old = &crd["status"];
    let mut status = old.clone();
    if !status.is_object() {
        status = json!({});
    }
    let mut conditions: Vec<Value> = old["conditions"].as_array().cloned().unwrap_or_default();
    match &conflict {
        None => {
            status["acceptedNames"] = names;
            set_condition(
                &mut conditions,
                "NamesAccepted",
                true,
                "NoConflicts",
                "no conflicts found",
                now,
            );
            let established = definition::condition_true(crd, "Established");
            if !established {
                set_condition(
                    &mut conditions,
                    "Established",
                    true,
                    "InitialNamesAccepted",
                    "the initial names have been accepted",
                    now,
                );
            }
        }
        Some(message) => {
            if status["acceptedNames"].is_null() {
                status["acceptedNames"] = json!({"plural": "", "kind": ""});
            }
            set_condition(
                &mut conditions,
                "NamesAccepted",
                false,
                "Conflict",
                message,
                now,
            );
            if !definition::condition_true(crd, "Established") {
                set_condition(
                    &mut conditions,
                    "Established",
                    false,
                    "NotAccepted",
                    "not all names are accepted",
                    now,
                );
            }
        }
    }
    if let Some((conformant, reason, message)) = crate::crd::approval::condition(crd) {
        set_condition(
            &mut conditions,
            crate::crd::approval::CONDITION,
            conformant,
            reason,
            &message,
            now,
        );
    }
    status["conditions"] = Value::Array(conditions);
    let mut stored: Vec<Value> = old["storedVersions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let storage = spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["storage"] == true)
        .map(|v| v["name"].clone());
    if let Some(storage) = storage {
        if !stored.contains(&storage) {
            stored.push(storage);
        }
    }
    status["storedVersions"] = Value::Array(stored);
    (&status != old).then_some(status)
}

/// Why another CRD of the group holds one of `names`, if one does (the older one keeps them).
fn conflict(crd: &Value, names: &Value, all: &[Arc<Value>]) -> Option<String> {
    let group = &crd["spec"]["group"];
    let name = &crd["metadata"]["name"];
    let created = crd["metadata"]["creationTimestamp"].as_str().unwrap_or("");
    let mine = claimed(names);
    for other in all
        .iter()
        .filter(|o| &o["spec"]["group"] == group && &o["metadata"]["name"] != name)
    {
        let accepted = &other["status"]["acceptedNames"];
        let theirs = if definition::condition_true(other, "NamesAccepted") {
            claimed(accepted)
        } else if other["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap_or("")
            < created
        {
            claimed(&other["spec"]["names"])
        } else {
            Vec::new()
        };
        if let Some((what, value)) = mine.iter().find(|m| {
            theirs
                .iter()
                .any(|t| t.1 == m.1 && t.0.is_kind() == m.0.is_kind())
        }) {
            return Some(format!("{} {:?} is already in use", what.label(), value));
        }
    }
    None
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Claim {
    Plural,
    Singular,
    ShortName,
    Kind,
    ListKind,
}

impl Claim {
    fn is_kind(self) -> bool {
        matches!(self, Claim::Kind | Claim::ListKind)
    }

    fn label(self) -> &'static str {
        match self {
            Claim::Plural => "plural",
            Claim::Singular => "singular",
            Claim::ShortName => "shortName",
            Claim::Kind => "kind",
            Claim::ListKind => "listKind",
        }
    }
}

/// The resource names (plural, singular, short names) and kinds (kind, listKind) `names`
/// claims.
fn claimed(names: &Value) -> Vec<(Claim, String)> {
    let mut out = Vec::new();
    for (claim, key) in [
        (Claim::Plural, "plural"),
        (Claim::Singular, "singular"),
        (Claim::Kind, "kind"),
        (Claim::ListKind, "listKind"),
    ] {
        if let Some(value) = names[key].as_str().filter(|v| !v.is_empty()) {
            out.push((claim, value.to_owned()));
        }
    }
    for short in names["shortNames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        out.push((Claim::ShortName, short.to_owned()));
    }
    out
}

fn set_condition(
    conditions: &mut Vec<Value>,
    kind: &str,
    ok: bool,
    reason: &str,
    message: &str,
    now: &str,
) {
    let status = if ok { "True" } else { "False" };
    match conditions.iter_mut().find(|c| c["type"] == kind) {
        Some(c) if c["status"] == status && c["reason"] == reason && c["message"] == message => {}
        Some(c) => {
            if c["status"] != status {
                c["lastTransitionTime"] = json!(now);
            }
            c["status"] = json!(status);
            c["reason"] = json!(reason);
            c["message"] = json!(message);
        }
        None => conditions.push(json!({
            "type": kind, "status": status, "lastTransitionTime": now,
            "reason": reason, "message": message,
        })),
    }
}

/// Deletes the objects of a CRD being deleted, then lets it go; whether objects remain.
async fn clean_up(client: &Loopback, crds: &Resource, crd: &Value) -> bool {
    let name = crd["metadata"]["name"].as_str().unwrap_or("");
    let holds_finalizer = crd["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| f.iter().any(|f| f == CLEANUP_FINALIZER));
    if !holds_finalizer {
        return false;
    }
    let remaining = match delete_objects(client, crd).await {
        Ok(remaining) => remaining,
        Err(error) => {
            tracing::debug!(%error, crd = %name, "deleting a CRD's objects");
            return true;
        }
    };
    let message = match remaining {
        0 => "removed all instances".to_owned(),
        n => format!("CustomResource deletion is in progress: {n} remaining"),
    };
    let reason = if remaining == 0 {
        "InstanceDeletionCompleted"
    } else {
        "InstanceDeletionInProgress"
    };
    let mut conditions: Vec<Value> = crd["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    set_condition(
        &mut conditions,
        "Terminating",
        remaining > 0,
        reason,
        &message,
        &crate::api::meta::now(),
    );
    if conditions.as_slice()
        != crd["status"]["conditions"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
    {
        let patch = json!({"status": {"conditions": conditions}});
        if let Err(error) = client.merge_patch_status(crds, None, name, &patch).await {
            tracing::debug!(%error, crd = %name, "writing a CRD's Terminating condition");
        }
    }
    if remaining > 0 {
        return true;
    }
    let finalizers: Vec<&Value> = crd["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| *f != CLEANUP_FINALIZER)
        .collect();
    let patch = json!({"metadata": {
        "finalizers": finalizers,
        "resourceVersion": crd["metadata"]["resourceVersion"],
    }});
    if let Err(error) = client.merge_patch(crds, None, name, &patch).await {
        tracing::debug!(%error, crd = %name, "removing a CRD's cleanup finalizer");
        return true;
    }
    false
}

/// Asks for the deletion of every stored object of the CRD; how many are still stored.
async fn delete_objects(client: &Loopback, crd: &Value) -> Result<usize, String> {
    let Some(resource) = crate::crd::registry::storage_resource_of(crd) else {
        return Ok(0); // never established: nothing can have been stored
    };
    let store = client.store();
    let page = store
        .list(
            &resource.key_prefix(),
            &crate::store::ListOptions::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
    for kv in &page.items {
        let Some((_, namespace, name)) = crate::kinds::for_key(&kv.key) else {
            continue;
        };
        let marked = crate::api::decode_stored(kv)
            .map(|o| !o["metadata"]["deletionTimestamp"].is_null())
            .unwrap_or(false);
        if marked {
            continue;
        }
        if let Err(error) = client
            .delete(
                resource,
                namespace,
                name,
                &json!({"propagationPolicy": "Background"}),
            )
            .await
        {
            if !error.is_not_found() {
                return Err(error.to_string());
            }
        }
    }
    Ok(page.items.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(name: &str, created: &str, plural: &str, kind: &str) -> Value {
        json!({
            "metadata": {"name": name, "creationTimestamp": created},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": plural, "kind": kind, "shortNames": ["wd"]},
                "versions": [{"name": "v1", "served": true, "storage": true}]},
        })
    }

    #[test]
    fn a_crd_without_conflicts_is_established_with_defaulted_names() {
        let widgets = crd(
            "widgets.example.com",
            "2026-01-01T00:00:00Z",
            "widgets",
            "Widget",
        );
        let status = status_for(&widgets, &[Arc::new(widgets.clone())], "now").unwrap();
        assert_eq!(status["acceptedNames"]["singular"], "widget");
        assert_eq!(status["acceptedNames"]["listKind"], "WidgetList");
        assert_eq!(status["storedVersions"], json!(["v1"]));
        let mut established = widgets.clone();
        established["status"] = status;
        assert!(definition::condition_true(&established, "NamesAccepted"));
        assert!(definition::condition_true(&established, "Established"));
        assert_eq!(status_for(&established, &[], "later"), None, "settled");
    }

    #[test]
    fn the_younger_of_two_crds_claiming_a_name_is_not_accepted() {
        let older = crd(
            "widgets.example.com",
            "2026-01-01T00:00:00Z",
            "widgets",
            "Widget",
        );
        let younger = crd(
            "gadgets.example.com",
            "2026-01-02T00:00:00Z",
            "gadgets",
            "Widget",
        );
        let all = [Arc::new(older.clone()), Arc::new(younger.clone())];
        let status = status_for(&younger, &all, "now").unwrap();
        let mut younger = younger;
        younger["status"] = status;
        assert!(!definition::condition_true(&younger, "NamesAccepted"));
        assert!(!definition::condition_true(&younger, "Established"));
        let message = younger["status"]["conditions"][0]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            message.contains("\"Widget\" is already in use") || message.contains("\"wd\""),
            "{message}"
        );
        assert!(
            status_for(&older, &all, "now").is_some_and(|s| s["conditions"][0]["status"] == "True")
        );
    }
}
