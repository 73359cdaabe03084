//! The Pod Security Standards' checks, as kube's `pod-security-admission` words them: each
//! finds what a pod spec does that a level forbids, as a reason and a
//! detail (`privileged (container "c" must not set securityContext.privileged=true)`). Each
//! check has the version it applies from; a policy's version runs the checks of that version.
//! At `restricted`, the baseline checks that a restricted one supersedes (host paths,
//! capabilities, seccomp) do not run. Pure.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Level, Version};

/// One forbidden thing: kube's reason and its detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub reason: &'static str,
    pub detail: String,
}

/// What pod spec `spec` does that `level` at `version` forbids, in kube's order (the baseline
/// checks, then the restricted ones, each set by check id).
pub fn evaluate(level: Level, version: Version, spec: &Value) -> Vec<Violation> {
    if level == Level::Privileged {
        return Vec::new();
    }
    let restricted = level == Level::Restricted;
    let pod = Pod { spec };
    let mut found = Vec::new();
    let mut run = |check: Option<Violation>| found.extend(check);
    // Baseline, by id: capabilities_baseline, hostNamespaces, hostPathVolumes, hostPorts,
    // privileged, procMount, seLinuxOptions, seccompProfile_baseline, sysctls.
    if !restricted {
        run(capabilities_baseline(&pod));
    }
    run(host_namespaces(&pod));
    if !restricted {
        run(host_path_volumes(&pod));
    }
    run(host_ports(&pod));
    run(privileged(&pod));
    run(proc_mount(&pod));
    run(se_linux_options(&pod, version));
    if !restricted && version.at_least(19) {
        run(seccomp(&pod, false));
    }
    run(sysctls(&pod, version));
    if restricted {
        // Restricted, by id: allowPrivilegeEscalation, capabilities_restricted,
        // restrictedVolumes, runAsNonRoot, runAsUser, seccompProfile_restricted.
        run(restricted::allow_privilege_escalation(&pod));
        if version.at_least(22) {
            run(restricted::capabilities_restricted(&pod));
        }
        run(restricted::restricted_volumes(&pod));
        run(restricted::run_as_non_root(&pod));
        if version.at_least(23) {
            run(restricted::run_as_user(&pod));
        }
        if version.at_least(19) {
            run(seccomp(&pod, true));
        }
    }
    found
}

/// `reason (detail), reason (detail)`: how kube joins the violations.
pub fn describe(violations: &[Violation]) -> String {
    let parts: Vec<String> = violations
        .iter()
        .map(|v| format!("{} ({})", v.reason, v.detail))
        .collect();
    parts.join(", ")
}

struct Pod<'a> {
    spec: &'a Value,
}

impl<'a> Pod<'a> {
    /// Every container: init, regular and ephemeral.
    fn containers(&self) -> impl Iterator<Item = &'a Value> {
        ["initContainers", "containers", "ephemeralContainers"]
            .into_iter()
            .flat_map(|kind| self.spec[kind].as_array().into_iter().flatten())
    }

    /// The names of the containers `bad` holds for.
    fn names(&self, mut bad: impl FnMut(&Value) -> bool) -> Vec<String> {
        self.containers()
            .filter(|c| bad(c))
            .map(|c| c["name"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    fn pod_context(&self, field: &str) -> &Value {
        &self.spec["securityContext"][field]
    }
}

fn context<'a>(container: &'a Value, field: &str) -> &'a Value {
    &container["securityContext"][field]
}

fn plural<'a>(one: &'a str, many: &'a str, count: usize) -> &'a str {
    if count == 1 {
        one
    } else {
        many
    }
}

/// `"a", "b"`.
fn join_quote<S: AsRef<str>>(items: &[S]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{:?}", s.as_ref())).collect();
    quoted.join(", ")
}

/// `container "a"` / `containers "a", "b"`.
fn containers_named(names: &[String]) -> String {
    format!(
        "{} {}",
        plural("container", "containers", names.len()),
        join_quote(names)
    )
}

fn violation(reason: &'static str, detail: String) -> Option<Violation> {
    Some(Violation { reason, detail })
}

const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

fn added_capabilities(container: &Value) -> impl Iterator<Item = &str> {
    context(container, "capabilities")["add"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

fn capabilities_baseline(pod: &Pod) -> Option<Violation> {
    let mut forbidden = BTreeSet::new();
    let bad = pod.names(|c| {
        let extra: Vec<&str> = added_capabilities(c)
            .filter(|cap| !BASELINE_CAPABILITIES.contains(cap))
            .collect();
        forbidden.extend(extra.iter().map(|s| s.to_string()));
        !extra.is_empty()
    });
    if bad.is_empty() {
        return None;
    }
    let forbidden: Vec<String> = forbidden.into_iter().collect();
    violation(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_named(&bad),
            join_quote(&forbidden)
        ),
    )
}

fn host_namespaces(pod: &Pod) -> Option<Violation> {
    let set: Vec<String> = ["hostIPC", "hostNetwork", "hostPID"]
        .into_iter()
        .filter(|field| pod.spec[*field] == true)
        .map(|field| format!("{field}=true"))
        .collect();
    if set.is_empty() {
        return None;
    }
    violation("host namespaces", set.join(", "))
}

fn volumes<'a>(pod: &Pod<'a>) -> impl Iterator<Item = &'a Value> {
    pod.spec["volumes"].as_array().into_iter().flatten()
}

fn host_path_volumes(pod: &Pod) -> Option<Violation> {
    let names: Vec<&str> = volumes(pod)
        .filter(|v| !v["hostPath"].is_null())
        .map(|v| v["name"].as_str().unwrap_or(""))
        .collect();
    if names.is_empty() {
        return None;
    }
    violation(
        "hostPath volumes",
        format!(
            "{} {}",
            plural("volume", "volumes", names.len()),
            join_quote(&names)
        ),
    )
}

fn host_ports(pod: &Pod) -> Option<Violation> {
    let mut ports = BTreeSet::new();
    let bad = pod.names(|c| {
        let used: Vec<i64> = c["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["hostPort"].as_i64().filter(|port| *port != 0))
            .collect();
        ports.extend(used.iter().map(|p| p.to_string()));
        !used.is_empty()
    });
    if bad.is_empty() {
        return None;
    }
    let ports: Vec<String> = ports.into_iter().collect();
    violation(
        "hostPort",
        format!(
            "{} {} {} {}",
            containers_named(&bad),
            plural("uses", "use", bad.len()),
            plural("hostPort", "hostPorts", ports.len()),
            ports.join(", ")
        ),
    )
}

fn privileged(pod: &Pod) -> Option<Violation> {
    let bad = pod.names(|c| context(c, "privileged") == true);
    if bad.is_empty() {
        return None;
    }
    violation(
        "privileged",
        format!(
            "{} must not set securityContext.privileged=true",
            containers_named(&bad)
        ),
    )
}

fn proc_mount(pod: &Pod) -> Option<Violation> {
    let mut values = BTreeSet::new();
    let bad = pod.names(|c| match context(c, "procMount").as_str() {
        Some(mount) if mount != "Default" => {
            values.insert(mount.to_owned());
            true
        }
        _ => false,
    });
    if bad.is_empty() {
        return None;
    }
    let values: Vec<String> = values.into_iter().collect();
    violation(
        "procMount",
        format!(
            "{} must not set securityContext.procMount to {}",
            containers_named(&bad),
            join_quote(&values)
        ),
    )
}

/// The SELinux types a pod may name at `version` (besides none).
fn se_linux_types(version: Version) -> &'static [&'static str] {
    if version.at_least(31) {
        &[
            "container_t",
            "container_init_t",
            "container_kvm_t",
            "container_engine_t",
        ]
    } else {
        &["container_t", "container_init_t", "container_kvm_t"]
    }
}

fn se_linux_options(pod: &Pod, version: Version) -> Option<Violation> {
    let allowed = se_linux_types(version);
    let (mut types, mut users, mut roles) = (BTreeSet::new(), false, false);
    let mut check = |options: &Value| -> bool {
        let mut bad = false;
        if let Some(t) = options["type"].as_str().filter(|t| !t.is_empty()) {
            if !allowed.contains(&t) {
                types.insert(t.to_owned());
                bad = true;
            }
        }
        if options["user"].as_str().is_some_and(|u| !u.is_empty()) {
            users = true;
            bad = true;
        }
        if options["role"].as_str().is_some_and(|r| !r.is_empty()) {
            roles = true;
            bad = true;
        }
        bad
    };
    let mut setters = Vec::new();
    if check(pod.pod_context("seLinuxOptions")) {
        setters.push("pod".to_owned());
    }
    let bad: Vec<String> = pod
        .containers()
        .filter(|c| check(context(c, "seLinuxOptions")))
        .map(|c| c["name"].as_str().unwrap_or("").to_owned())
        .collect();
    if !bad.is_empty() {
        setters.push(containers_named(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    let mut what = Vec::new();
    if !types.is_empty() {
        let types: Vec<String> = types.into_iter().collect();
        what.push(format!(
            "{} {}",
            plural("type", "types", types.len()),
            join_quote(&types)
        ));
    }
    if users {
        what.push("user may not be set".to_owned());
    }
    if roles {
        what.push("role may not be set".to_owned());
    }
    violation(
        "seLinuxOptions",
        format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            setters.join(" and "),
            what.join("; ")
        ),
    )
}

fn valid_seccomp(profile: &Value) -> bool {
    matches!(
        profile["type"].as_str(),
        Some("RuntimeDefault" | "Localhost")
    )
}

/// The seccomp checks: baseline refuses an explicit `Unconfined`; restricted also requires a
/// profile on the pod or every container.
fn seccomp(pod: &Pod, restricted: bool) -> Option<Violation> {
    let mut setters = Vec::new();
    let mut values = BTreeSet::new();
    let pod_profile = pod.pod_context("seccompProfile");
    if pod_profile.is_object() && !valid_seccomp(pod_profile) {
        setters.push("pod".to_owned());
        values.insert(pod_profile["type"].as_str().unwrap_or("").to_owned());
    }
    let pod_set = valid_seccomp(pod_profile);
    let mut implicit = Vec::new();
    let explicit = pod.names(|c| {
        let profile = context(c, "seccompProfile");
        if !profile.is_object() {
            if !pod_set {
                implicit.push(c["name"].as_str().unwrap_or("").to_owned());
            }
            return false;
        }
        let bad = !valid_seccomp(profile);
        if bad {
            values.insert(profile["type"].as_str().unwrap_or("").to_owned());
        }
        bad
    });
    if !explicit.is_empty() {
        setters.push(containers_named(&explicit));
    }
    if !setters.is_empty() {
        let values: Vec<String> = values.into_iter().collect();
        return violation(
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                setters.join(" and "),
                join_quote(&values)
            ),
        );
    }
    if restricted && !implicit.is_empty() {
        return violation(
            "seccompProfile",
            format!(
                "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
                containers_named(&implicit)
            ),
        );
    }
    None
}

fn allowed_sysctl(name: &str, version: Version) -> bool {
    match name {
        "kernel.shm_rmid_forced"
        | "net.ipv4.ip_local_port_range"
        | "net.ipv4.tcp_syncookies"
        | "net.ipv4.ping_group_range"
        | "net.ipv4.ip_unprivileged_port_start" => true,
        "net.ipv4.ip_local_reserved_ports" => version.at_least(27),
        "net.ipv4.tcp_keepalive_time"
        | "net.ipv4.tcp_fin_timeout"
        | "net.ipv4.tcp_keepalive_intvl"
        | "net.ipv4.tcp_keepalive_probes" => version.at_least(29),
        _ => false,
    }
}

fn sysctls(pod: &Pod, version: Version) -> Option<Violation> {
    let forbidden: Vec<&str> = pod
        .pod_context("sysctls")
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str())
        .filter(|name| !allowed_sysctl(name, version))
        .collect();
    if forbidden.is_empty() {
        return None;
    }
    violation("forbidden sysctls", forbidden.join(", "))
}

#[path = "restricted.rs"]
mod restricted;

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;
