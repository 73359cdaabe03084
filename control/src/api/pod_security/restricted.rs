//! The checks of the restricted level only (`checks` runs them after the baseline ones).

use std::collections::BTreeSet;

use super::added_capabilities;
use super::{containers_named, context, join_quote, plural, violation, volumes, Pod, Violation};

pub(super) fn allow_privilege_escalation(pod: &Pod) -> Option<Violation> {
    let bad = pod.names(|c| context(c, "allowPrivilegeEscalation") != false);
    if bad.is_empty() {
        return None;
    }
    violation(
        "allowPrivilegeEscalation != false",
        format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            containers_named(&bad)
        ),
    )
}

pub(super) fn capabilities_restricted(pod: &Pod) -> Option<Violation> {
    let missing_drop = pod.names(|c| {
        !context(c, "capabilities")["drop"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|cap| cap == "ALL")
    });
    let mut forbidden = BTreeSet::new();
    let adding = pod.names(|c| {
        let extra: Vec<&str> = added_capabilities(c)
            .filter(|cap| *cap != "NET_BIND_SERVICE")
            .collect();
        forbidden.extend(extra.iter().map(|s| s.to_string()));
        !extra.is_empty()
    });
    let mut details = Vec::new();
    if !missing_drop.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers_named(&missing_drop)
        ));
    }
    if !adding.is_empty() {
        let forbidden: Vec<String> = forbidden.into_iter().collect();
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_named(&adding),
            join_quote(&forbidden)
        ));
    }
    if details.is_empty() {
        return None;
    }
    violation("unrestricted capabilities", details.join("; "))
}

/// The volume sources the restricted level allows.
const RESTRICTED_VOLUME_SOURCES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

pub(super) fn restricted_volumes(pod: &Pod) -> Option<Violation> {
    let mut names = Vec::new();
    let mut types = BTreeSet::new();
    for volume in volumes(pod) {
        let Some(fields) = volume.as_object() else {
            continue;
        };
        let sources: Vec<&String> = fields
            .iter()
            .filter(|(k, v)| *k != "name" && !v.is_null())
            .map(|(k, _)| k)
            .collect();
        let bad: Vec<&String> = sources
            .iter()
            .copied()
            .filter(|k| !RESTRICTED_VOLUME_SOURCES.contains(&k.as_str()))
            .collect();
        if bad.is_empty() {
            continue;
        }
        names.push(volume["name"].as_str().unwrap_or("").to_owned());
        types.extend(bad.into_iter().cloned());
    }
    if names.is_empty() {
        return None;
    }
    let types: Vec<String> = types.into_iter().collect();
    violation(
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            plural("volume", "volumes", names.len()),
            join_quote(&names),
            plural("uses", "use", names.len()),
            plural(
                "restricted volume type",
                "restricted volume types",
                types.len()
            ),
            join_quote(&types)
        ),
    )
}

pub(super) fn run_as_non_root(pod: &Pod) -> Option<Violation> {
    let mut setters = Vec::new();
    let pod_value = pod.pod_context("runAsNonRoot");
    if *pod_value == false {
        setters.push("pod".to_owned());
    }
    let pod_set = *pod_value == true;
    let explicit = pod.names(|c| context(c, "runAsNonRoot") == false);
    if !explicit.is_empty() {
        setters.push(containers_named(&explicit));
    }
    if !setters.is_empty() {
        return violation(
            "runAsNonRoot != true",
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                setters.join(" and ")
            ),
        );
    }
    let implicit = pod.names(|c| context(c, "runAsNonRoot").is_null() && !pod_set);
    if implicit.is_empty() {
        return None;
    }
    violation(
        "runAsNonRoot != true",
        format!(
            "pod or {} must set securityContext.runAsNonRoot=true",
            containers_named(&implicit)
        ),
    )
}

pub(super) fn run_as_user(pod: &Pod) -> Option<Violation> {
    let mut setters = Vec::new();
    if pod.pod_context("runAsUser") == 0 {
        setters.push("pod".to_owned());
    }
    let bad = pod.names(|c| context(c, "runAsUser") == 0);
    if !bad.is_empty() {
        setters.push(containers_named(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    violation(
        "runAsUser=0",
        format!("{} must not set runAsUser=0", setters.join(" and ")),
    )
}
