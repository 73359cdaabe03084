//! kube's ResourceQuota admission: a create (or an update of a claim or Service that asks
//! for more) in a namespace with quotas is charged against each quota tracking what it uses
//! (`usage`): it is refused (403) when it would take a quota past its `status.hard` —
//! `exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2` —, when the quota's
//! usage is not known yet, or when a pod leaves out a request or limit a quota tracks
//! (`failed quota: q: must specify limits.cpu for: app`); else the quotas' `status.used` grow
//! with a compare-and-swap before the object is written, so concurrent creates cannot both
//! take the last unit. The resource quota controller recounts `used` from what exists (what
//! was freed, and what a failed write charged). Which namespaces have quotas comes from a
//! watch (an `ObjectCopy`), so a namespace without one pays no extra store read.

pub mod scopes;
pub mod usage;
pub mod validate;

use std::collections::BTreeMap;

use serde_json::Value;

use super::{decode_stored, map_store_error, meta, Call};
use crate::authz::admission::admission_forbidden;
use crate::kinds::{self, Resource};
use crate::status::ApiError;
use crate::store::{self, ListOptions};
use usage::{parse_list, to_list, usage_of, Usage};

/// The pod resources a quota makes every container state.
const CONSTRAINED: [(&str, &str, &str); 6] = [
    ("requests.cpu", "requests", "cpu"),
    ("cpu", "requests", "cpu"),
    ("requests.memory", "requests", "memory"),
    ("memory", "requests", "memory"),
    ("limits.cpu", "limits", "cpu"),
    ("limits.memory", "limits", "memory"),
];
/// Attempts at charging the quotas when another write changed them in between.
const ATTEMPTS: usize = 5;

fn quotas() -> Result<&'static Resource, ApiError> {
    kinds::find("", "v1", "resourcequotas")
        .ok_or_else(|| ApiError::internal("the kinds table has no resourcequotas"))
}

/// Whether `namespace` may have a quota: `true` unless the watched copy of the quotas knows
/// it has none.
fn may_have(call: &Call, namespace: &str) -> bool {
    let Ok(resource) = quotas() else {
        return true;
    };
    let prefix = resource.key_prefix();
    call.state.quotas.follow(&call.state.store, prefix.clone());
    let within = format!("{prefix}{namespace}/");
    call.state
        .quotas
        .read(|quotas| {
            quotas
                .range(within.clone()..)
                .next()
                .is_some_and(|(key, _)| key.starts_with(&within))
        })
        .unwrap_or(true)
}

/// Whether a write of this kind is charged: every create; of updates, those of claims and
/// Services (whose usage can grow); never a status write.
fn charged(call: &Call, old: Option<&Value>) -> bool {
    let resource = call.resource();
    if call.path.subresource.is_some() {
        return false;
    }
    old.is_none()
        || (resource.group.is_empty()
            && matches!(resource.kind, "PersistentVolumeClaim" | "Service"))
}

/// What a write adds: the new object's usage less the old one's, the increases only.
fn delta(resource: &Resource, old: Option<&Value>, new: &Value) -> Usage {
    let mut grown = usage_of(resource, new);
    if let Some(old) = old {
        let before = usage_of(resource, old);
        for (name, amount) in grown.iter_mut() {
            *amount -= before.get(name).copied().unwrap_or(0);
        }
    }
    grown.retain(|_, amount| *amount > 0);
    grown
}

/// `pods=1,requests.cpu=500m`, names sorted.
fn pretty(usage: &Usage) -> String {
    let parts: Vec<String> = usage
        .iter()
        .map(|(name, amount)| format!("{name}={}", usage::format(name, *amount)))
        .collect();
    parts.join(",")
}

/// Containers that leave out a resource the quota tracks: `must specify …` when any.
fn missing_constraints(pod: &Value, hard: &Usage) -> Option<String> {
    let mut missing: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let spec = &pod["spec"];
    let containers = ["containers", "initContainers"]
        .into_iter()
        .flat_map(|field| spec[field].as_array().into_iter().flatten());
    for container in containers {
        let name = container["name"].as_str().unwrap_or("");
        for (quota, kind, resource) in CONSTRAINED {
            if !hard.contains_key(quota) {
                continue;
            }
            let resources = &container["resources"];
            let stated = resources[kind][resource].is_string()
                || (kind == "requests" && resources["limits"][resource].is_string());
            if !stated {
                missing.entry(quota).or_default().push(name);
            }
        }
    }
    if missing.is_empty() {
        return None;
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|(quota, names)| {
            let mut names = names.clone();
            names.sort_unstable();
            names.dedup();
            format!("{quota} for: {}", names.join(","))
        })
        .collect();
    Some(format!("must specify {}", parts.join("; ")))
}

/// Charges a write of `new` (`old`: the stored object, on update) to the namespace's quotas,
/// or refuses it.
pub async fn admit(call: &Call, old: Option<&Value>, new: &Value) -> Result<(), ApiError> {
    let resource = call.resource();
    let Some(namespace) = call.path.namespace.as_deref() else {
        return Ok(());
    };
    if !charged(call, old) || !may_have(call, namespace) {
        return Ok(());
    }
    let grown = delta(resource, old, new);
    if grown.is_empty() {
        return Ok(());
    }
    let name = meta::name_of(new);
    let forbidden = |why: String| admission_forbidden(resource, name, &why);
    let prefix = format!("{}{namespace}/", quotas()?.key_prefix());
    let store = &call.state.store;
    for _ in 0..ATTEMPTS {
        let page = store
            .list(&prefix, &ListOptions::default())
            .await
            .map_err(map_store_error)?;
        let mut writes = Vec::new();
        for kv in &page.items {
            let mut quota = decode_stored(kv)?;
            if !scopes::matches(&quota, resource, new) {
                continue;
            }
            let quota_name = meta::name_of(&quota).to_owned();
            let hard = parse_list(&quota["status"]["hard"]);
            if resource.group.is_empty() && resource.kind == "Pod" && old.is_none() {
                if let Some(why) = missing_constraints(new, &hard) {
                    return Err(forbidden(format!("failed quota: {quota_name}: {why}")));
                }
            }
            let tracked: Usage = grown
                .iter()
                .filter(|(n, _)| hard.contains_key(*n))
                .map(|(n, a)| (n.clone(), *a))
                .collect();
            if tracked.is_empty() {
                continue;
            }
            let mut used = parse_list(&quota["status"]["used"]);
            let unknown: Vec<&str> = tracked
                .keys()
                .filter(|n| !used.contains_key(*n))
                .map(String::as_str)
                .collect();
            if !unknown.is_empty() {
                return Err(forbidden(format!(
                    "status unknown for quota: {quota_name}, resources: {}",
                    unknown.join(",")
                )));
            }
            let exceeded: Vec<&String> = tracked
                .iter()
                .filter(|(n, a)| used[*n] + **a > hard[*n])
                .map(|(n, _)| n)
                .collect();
            if !exceeded.is_empty() {
                let only = |u: &Usage| -> Usage {
                    exceeded
                        .iter()
                        .map(|n| ((*n).clone(), u.get(*n).copied().unwrap_or(0)))
                        .collect()
                };
                return Err(forbidden(format!(
                    "exceeded quota: {quota_name}, requested: {}, used: {}, limited: {}",
                    pretty(&only(&tracked)),
                    pretty(&only(&used)),
                    pretty(&only(&hard))
                )));
            }
            usage::add(&mut used, &tracked);
            quota["status"]["used"] = to_list(&used);
            writes.push((kv.key.clone(), kv.mod_revision, quota));
        }
        if call.query.dry_run || write_all(call, writes).await? {
            return Ok(());
        }
    }
    Err(forbidden(
        "the quotas of the namespace changed while the request was charged; try again".to_owned(),
    ))
}

/// Writes the charged quotas, each only if unchanged; `false` when one had changed.
async fn write_all(call: &Call, writes: Vec<(String, i64, Value)>) -> Result<bool, ApiError> {
    for (key, revision, quota) in writes {
        match call
            .state
            .store
            .update(&key, meta::to_stored(&quota)?, revision)
            .await
        {
            Ok(_) => {}
            Err(store::Error::Conflict { .. }) => return Ok(false),
            Err(e) => return Err(map_store_error(e)),
        }
    }
    Ok(true)
}
