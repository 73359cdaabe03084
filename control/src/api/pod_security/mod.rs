//! Pod Security admission, kube-apiserver's built-in `PodSecurity` plugin: a namespace's
//! `pod-security.kubernetes.io/{enforce,audit,warn}` labels (with their `-version` labels)
//! choose a Pod Security Standard level per mode (`privileged` when unset).
//!
//! - A pod that breaks its namespace's `enforce` level is refused (403, kube's
//!   `violates PodSecurity "restricted:latest": …`); one that breaks `warn` is admitted with a
//!   warning, one that breaks `audit` with an audit annotation. An update is checked when it
//!   changes the spec (ephemeral containers too), not for labels or status.
//! - A workload's pod template (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob,
//!   ReplicationController) gets the warning and the audit annotation, never a refusal: its
//!   pods are refused when its controller creates them.
//! - A namespace's labels must name a level and a version (`latest` or `v1.x`) — 422 in kube's
//!   words otherwise; a namespace whose enforce level becomes stricter warns of its pods that
//!   break the new level.
//!
//! No exemptions are configured (kube's default). The checks are `checks`.

mod checks;

use serde_json::Value;

use super::meta::name_of;
use super::Call;
use crate::kinds::Resource;
use crate::status::{ApiError, FieldCause};
use crate::store::ListOptions;
use checks::{describe, evaluate};

pub(super) const LABEL_PREFIX: &str = "pod-security.kubernetes.io/";
/// The newest version whose checks differ from an older one's; a later `v1.x` runs these.
const NEWEST_MINOR: u32 = 31;
/// Pods of a namespace checked when its enforce level tightens (kube's limit).
const MAX_PODS_CHECKED: usize = 3000;

/// A Pod Security Standard level, least to most restrictive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    fn parse(text: &str) -> Option<Level> {
        match text {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// A policy version: `v1.x`, or `latest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Minor(u32),
    Latest,
}

impl Version {
    fn parse(text: &str) -> Option<Version> {
        if text == "latest" {
            return Some(Version::Latest);
        }
        let minor = text.strip_prefix("v1.")?;
        let canonical = minor == "0" || (!minor.starts_with('0') && !minor.is_empty());
        if !canonical || !minor.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        minor.parse().ok().map(Version::Minor)
    }

    /// Whether checks introduced in 1.`minor` apply.
    pub fn at_least(self, minor: u32) -> bool {
        match self {
            Version::Latest => true,
            Version::Minor(m) => m >= minor || m > NEWEST_MINOR,
        }
    }

    fn name(self) -> String {
        match self {
            Version::Latest => "latest".to_owned(),
            Version::Minor(m) => format!("v1.{m}"),
        }
    }
}

/// One mode's level and version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ModePolicy {
    level: Level,
    version: Version,
}

impl ModePolicy {
    /// `restricted:latest`.
    fn name(&self) -> String {
        format!("{}:{}", self.level.name(), self.version.name())
    }
}

const MODES: [&str; 3] = ["enforce", "audit", "warn"];

/// The policy of each mode (enforce, audit, warn) that `labels` choose; the labels' errors
/// as 422 causes.
fn policies(labels: &Value) -> ([ModePolicy; 3], Vec<FieldCause>) {
    let mut errors = Vec::new();
    let label = |key: &str| labels[key].as_str().map(str::to_owned);
    let mut out = [ModePolicy {
        level: Level::Privileged,
        version: Version::Latest,
    }; 3];
    for (i, mode) in MODES.iter().enumerate() {
        let level_key = format!("{LABEL_PREFIX}{mode}");
        if let Some(text) = label(&level_key) {
            match Level::parse(&text) {
                Some(level) => out[i].level = level,
                None => {
                    // kube evaluates a bad level as restricted.
                    out[i].level = Level::Restricted;
                    errors.push(FieldCause::invalid(
                        &format!("metadata.labels[{level_key}]"),
                        &format!("{text:?}"),
                        "must be one of privileged, baseline, restricted",
                    ));
                }
            }
        }
        let version_key = format!("{LABEL_PREFIX}{mode}-version");
        if let Some(text) = label(&version_key) {
            match Version::parse(&text) {
                Some(version) => out[i].version = version,
                None => errors.push(FieldCause::invalid(
                    &format!("metadata.labels[{version_key}]"),
                    &format!("{text:?}"),
                    "must be \"latest\" or \"v1.x\"",
                )),
            }
        }
    }
    (out, errors)
}

/// Where a kind keeps its pod template's spec; `None` for kinds without one.
fn template_spec<'a>(resource: &Resource, object: &'a Value) -> Option<&'a Value> {
    match (resource.group, resource.kind) {
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("batch", "Job")
        | ("", "ReplicationController") => Some(&object["spec"]["template"]["spec"]),
        ("batch", "CronJob") => Some(&object["spec"]["jobTemplate"]["spec"]["template"]["spec"]),
        _ => None,
    }
}

fn is_pod(resource: &Resource) -> bool {
    (resource.group, resource.kind) == ("", "Pod")
}

/// The namespace's Pod Security labels (`None`: it has none, or does not exist, which another
/// check reports): from the namespace cache, else from the store.
async fn namespace_labels(call: &Call, namespace: &str) -> Result<Option<Value>, ApiError> {
    let namespaces = crate::kinds::find("", "v1", "namespaces")
        .ok_or_else(|| ApiError::internal("the kinds table has no namespaces"))?;
    let state = &call.state;
    let cached = state
        .namespace_cache
        .pod_security_labels(&state.store, namespaces, namespace);
    if let Some(labels) = cached {
        return Ok(labels.map(|labels| Value::clone(&labels)));
    }
    let key = super::path::object_key(namespaces, None, namespace);
    let Some(kv) = call
        .state
        .store
        .get(&key)
        .await
        .map_err(super::map_store_error)?
    else {
        return Ok(None);
    };
    let object = super::decode_stored(&kv)?;
    Ok(Some(object["metadata"]["labels"].clone()))
}

/// Admits the creation of `object`, or its update from `old` (a pod: by every mode; a
/// workload's template: warnings and audit only; a namespace: its labels).
pub async fn admit(call: &Call, object: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let resource = call.resource();
    if (resource.group, resource.kind) == ("", "Namespace") {
        return admit_namespace(call, object, old).await;
    }
    let spec = match (is_pod(resource), template_spec(resource, object)) {
        (true, _) => &object["spec"],
        (false, Some(spec)) => spec,
        (false, None) => return Ok(()),
    };
    let subresource = call.path.subresource.as_deref();
    let significant = match (old, subresource) {
        (None, _) => true,
        (Some(_), Some(sub)) => sub == super::pod_ephemeral::SUBRESOURCE,
        (Some(old), None) => match is_pod(resource) {
            true => old["spec"] != object["spec"],
            false => template_spec(resource, old) != Some(spec),
        },
    };
    if !significant {
        return Ok(());
    }
    let Some(namespace) = call.path.namespace.as_deref() else {
        return Ok(());
    };
    let labels = match namespace_labels(call, namespace).await? {
        Some(labels) => labels,
        None => return Ok(()),
    };
    let has_policy = labels
        .as_object()
        .is_some_and(|l| l.keys().any(|k| k.starts_with(LABEL_PREFIX)));
    if !has_policy {
        return Ok(());
    }
    let ([enforce, audit, warn], _) = policies(&labels);
    call.audit_annotate("pod-security.kubernetes.io/enforce-policy", &enforce.name());
    if is_pod(resource) {
        let violations = evaluate(enforce.level, enforce.version, spec);
        if !violations.is_empty() {
            return Err(ApiError::forbidden(format!(
                "pods {:?} is forbidden: violates PodSecurity {:?}: {}",
                name_of(object),
                enforce.name(),
                describe(&violations)
            )));
        }
    }
    let audited = evaluate(audit.level, audit.version, spec);
    if !audited.is_empty() {
        call.audit_annotate(
            "pod-security.kubernetes.io/audit-violations",
            &format!(
                "would violate PodSecurity {:?}: {}",
                audit.name(),
                describe(&audited)
            ),
        );
    }
    let warned = evaluate(warn.level, warn.version, spec);
    if !warned.is_empty() {
        call.warn(format!(
            "would violate PodSecurity {:?}: {}",
            warn.name(),
            describe(&warned)
        ));
    }
    Ok(())
}

/// A namespace's labels must parse; a stricter enforce policy warns of the pods it breaks.
async fn admit_namespace(call: &Call, object: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let ([enforce, ..], errors) = policies(&object["metadata"]["labels"]);
    let name = name_of(object);
    if !errors.is_empty() {
        return Err(ApiError::invalid("Namespace", "Namespace", name, &errors));
    }
    let Some(old) = old else {
        return Ok(());
    };
    let ([was, ..], _) = policies(&old["metadata"]["labels"]);
    if enforce == was || enforce.level == Level::Privileged {
        return Ok(());
    }
    let pods = crate::kinds::find("", "v1", "pods")
        .ok_or_else(|| ApiError::internal("the kinds table has no pods"))?;
    let options = ListOptions {
        limit: MAX_PODS_CHECKED,
        ..ListOptions::default()
    };
    let page = call
        .state
        .store
        .list(&format!("{}{name}/", pods.key_prefix()), &options)
        .await
        .map_err(super::map_store_error)?;
    // Pods breaking the level the same way are named once: `a (and 2 other pods): …`.
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for kv in &page.items {
        let pod = super::decode_stored(kv)?;
        let violations = evaluate(enforce.level, enforce.version, &pod["spec"]);
        if violations.is_empty() {
            continue;
        }
        let reasons: Vec<&str> = violations.iter().map(|v| v.reason).collect();
        let reasons = reasons.join(", ");
        let pod_name = name_of(&pod).to_owned();
        match groups.iter_mut().find(|(r, _)| *r == reasons) {
            Some((_, names)) => names.push(pod_name),
            None => groups.push((reasons, vec![pod_name])),
        }
    }
    if groups.is_empty() {
        return Ok(());
    }
    call.warn(format!(
        "existing pods in namespace {name:?} violate the new PodSecurity enforce level {:?}",
        enforce.name()
    ));
    for (reasons, names) in groups {
        let who = match names.len() {
            1 => names[0].clone(),
            2 => format!("{} (and 1 other pod)", names[0]),
            n => format!("{} (and {} other pods)", names[0], n - 1),
        };
        call.warn(format!("{who}: {reasons}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_choose_a_level_and_version_per_mode() {
        let labels = json!({
            "pod-security.kubernetes.io/enforce": "baseline",
            "pod-security.kubernetes.io/warn": "restricted",
            "pod-security.kubernetes.io/warn-version": "v1.24",
        });
        let ([enforce, audit, warn], errors) = policies(&labels);
        assert!(errors.is_empty());
        assert_eq!(enforce.name(), "baseline:latest");
        assert_eq!(audit.name(), "privileged:latest");
        assert_eq!(warn.name(), "restricted:v1.24");
    }

    #[test]
    fn bad_labels_are_refused_in_kubes_words() {
        let labels = json!({
            "pod-security.kubernetes.io/enforce": "strict",
            "pod-security.kubernetes.io/audit-version": "1.24",
        });
        let ([enforce, ..], errors) = policies(&labels);
        assert_eq!(enforce.level, Level::Restricted);
        let e = ApiError::invalid("Namespace", "Namespace", "typo", &errors);
        assert_eq!(
            e.message,
            "Namespace \"typo\" is invalid: [metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"strict\": must be one of privileged, baseline, restricted, metadata.labels[pod-security.kubernetes.io/audit-version]: Invalid value: \"1.24\": must be \"latest\" or \"v1.x\"]"
        );
    }

    #[test]
    fn versions_are_latest_or_v1_x() {
        assert_eq!(Version::parse("latest"), Some(Version::Latest));
        assert_eq!(Version::parse("v1.0"), Some(Version::Minor(0)));
        assert_eq!(Version::parse("v1.32"), Some(Version::Minor(32)));
        for bad in ["v1.", "v1.01", "v2.1", "1.2", "v1.x", ""] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
        assert!(!Version::Minor(22).at_least(23));
        assert!(Version::Minor(99).at_least(23));
    }
}
