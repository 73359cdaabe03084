//! Pod validation: the API server's checks that matter to a node agent, each failure naming
//! the offending field (`spec.containers[1].ports[0].containerPort`). Validation stops at the
//! first problem. It never mutates or defaults the pod.

use std::collections::{BTreeMap, BTreeSet};

use super::error::SpecError;
use super::lifecycle::validate_lifecycle;
use super::names::{
    dns1123_label_error, dns1123_subdomain_error, iana_svc_name_error, label_key_error,
    label_value_error,
};
use super::pod::{Container, ObjectMeta, Pod, PodSpec, ResourceRequirements};
use super::probe::{IntOrString, Probe, ProbeHandler};
use super::quantity::Quantity;
use super::validate_env::{validate_env_from, validate_env_source};
use super::validate_volume::{validate_volume_mounts, validate_volumes};

/// Checks `pod` as the API server would before it reaches a node.
pub fn validate(pod: &Pod) -> Result<(), SpecError> {
    validate_metadata(&pod.metadata)?;
    validate_spec(&pod.spec)
}

/// Turns a name-format check into a field error.
fn check(field: impl Into<String>, problem: Option<String>) -> Result<(), SpecError> {
    match problem {
        None => Ok(()),
        Some(message) => Err(SpecError::new(field, message)),
    }
}

fn validate_metadata(meta: &ObjectMeta) -> Result<(), SpecError> {
    check("metadata.name", dns1123_subdomain_error(&meta.name))?;
    check("metadata.namespace", dns1123_label_error(&meta.namespace))?;
    for (key, value) in &meta.labels {
        check(format!("metadata.labels[{key}]"), label_key_error(key))?;
        check(format!("metadata.labels[{key}]"), label_value_error(value))?;
    }
    for key in meta.annotations.keys() {
        check(format!("metadata.annotations[{key}]"), label_key_error(key))?;
    }
    Ok(())
}

fn validate_spec(spec: &PodSpec) -> Result<(), SpecError> {
    if spec.containers.is_empty() {
        return Err(SpecError::new(
            "spec.containers",
            "must have at least one container",
        ));
    }
    if spec.termination_grace_period_seconds.is_some_and(|s| s < 0) {
        let field = "spec.terminationGracePeriodSeconds";
        return Err(SpecError::new(field, "must be greater than or equal to 0"));
    }
    if spec.share_process_namespace == Some(true) && spec.host_pid {
        let message = "ShareProcessNamespace and HostPID cannot both be enabled";
        return Err(SpecError::new("spec.shareProcessNamespace", message));
    }
    if spec.active_deadline_seconds.is_some_and(|s| s < 1) {
        let field = "spec.activeDeadlineSeconds";
        return Err(SpecError::new(field, "must be greater than or equal to 1"));
    }
    if let Some(hostname) = &spec.hostname {
        check("spec.hostname", dns1123_label_error(hostname))?;
    }
    if let Some(subdomain) = &spec.subdomain {
        check("spec.subdomain", dns1123_label_error(subdomain))?;
    }
    if let Some(policy) = &spec.dns_policy {
        const POLICIES: [&str; 4] = ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];
        if !POLICIES.contains(&policy.as_str()) {
            let message = format!("{policy:?} must be one of {POLICIES:?}");
            return Err(SpecError::new("spec.dnsPolicy", message));
        }
    }
    validate_dns_config(spec)?;
    for (i, alias) in spec.host_aliases.iter().enumerate() {
        if alias.ip.parse::<std::net::IpAddr>().is_err() {
            let message = format!("{:?} must be a valid IP address", alias.ip);
            return Err(SpecError::new(format!("spec.hostAliases[{i}].ip"), message));
        }
        for (j, name) in alias.hostnames.iter().enumerate() {
            let field = format!("spec.hostAliases[{i}].hostnames[{j}]");
            check(field, dns1123_subdomain_error(name))?;
        }
    }
    validate_seccomp_profiles(spec)?;
    let volumes = validate_volumes(spec)?;
    let mut names = BTreeSet::new();
    for (path, container) in spec.all_containers() {
        validate_container(&path, container, &volumes, spec.host_network)?;
        if let Some(lifecycle) = &container.lifecycle {
            let grace = spec.termination_grace_period_seconds();
            validate_lifecycle(&format!("{path}.lifecycle"), lifecycle, grace)?;
        }
        if !names.insert(container.name.as_str()) {
            let message = format!("duplicate container name {:?}", container.name);
            return Err(SpecError::new(format!("{path}.name"), message));
        }
    }
    Ok(())
}

/// kube's rules for `seccompProfile`, of the pod and of each container.
fn validate_seccomp_profiles(spec: &PodSpec) -> Result<(), SpecError> {
    let pod = spec.security_context.as_ref();
    let profiles = pod
        .and_then(|s| s.seccomp_profile.as_ref())
        .map(|p| ("spec.securityContext".to_owned(), p))
        .into_iter()
        .chain(spec.all_containers().filter_map(|(path, c)| {
            let p = c.security_context.as_ref()?.seccomp_profile.as_ref()?;
            Some((format!("{path}.securityContext"), p))
        }));
    for (at, profile) in profiles {
        let field = format!("{at}.seccompProfile");
        let localhost = profile.type_ == "Localhost";
        if !matches!(
            profile.type_.as_str(),
            "Localhost" | "RuntimeDefault" | "Unconfined"
        ) {
            let message = format!(
                "Unsupported value: {:?}: supported values: \"Localhost\", \"RuntimeDefault\", \"Unconfined\"",
                profile.type_
            );
            return Err(SpecError::new(format!("{field}.type"), message));
        }
        match (&profile.localhost_profile, localhost) {
            (None, true) => {
                let message = "Required value: must be set when seccomp type is Localhost";
                return Err(SpecError::new(format!("{field}.localhostProfile"), message));
            }
            (Some(p), false) => {
                let message =
                    format!("Invalid value: {p:?}: can only be set when seccomp type is Localhost");
                return Err(SpecError::new(format!("{field}.localhostProfile"), message));
            }
            _ => {}
        }
    }
    Ok(())
}

fn validate_container(
    path: &str,
    c: &Container,
    volumes: &BTreeSet<&str>,
    host_network: bool,
) -> Result<(), SpecError> {
    check(format!("{path}.name"), dns1123_label_error(&c.name))?;
    if c.image.is_empty() {
        return Err(SpecError::new(format!("{path}.image"), "must be non-empty"));
    }
    if c.image.trim() != c.image {
        let message = "must not have leading or trailing whitespace";
        return Err(SpecError::new(format!("{path}.image"), message));
    }
    validate_env(path, c)?;
    validate_ports(path, c, host_network)?;
    validate_resources(&format!("{path}.resources"), &c.resources)?;
    for (name, probe) in c.probes() {
        validate_probe(&format!("{path}.{name}"), name, probe)?;
    }
    validate_volume_mounts(path, c, volumes)
}

fn validate_env(path: &str, c: &Container) -> Result<(), SpecError> {
    for (i, var) in c.env.iter().enumerate() {
        let field = format!("{path}.env[{i}]");
        if var.name.is_empty() {
            return Err(SpecError::new(format!("{field}.name"), "must be non-empty"));
        }
        if var.name.contains('=') {
            return Err(SpecError::new(
                format!("{field}.name"),
                "must not contain '='",
            ));
        }
        if var.value.as_deref().is_some_and(|v| !v.is_empty()) && var.value_from.is_some() {
            let message = "may not be specified when `value` is not empty";
            return Err(SpecError::new(format!("{field}.valueFrom"), message));
        }
        if let Some(source) = &var.value_from {
            validate_env_source(&format!("{field}.valueFrom"), source, c)?;
        }
    }
    validate_env_from(path, c)
}

fn validate_ports(path: &str, c: &Container, host_network: bool) -> Result<(), SpecError> {
    let mut names = BTreeSet::new();
    for (i, port) in c.ports.iter().enumerate() {
        let field = format!("{path}.ports[{i}]");
        check_port_number(&format!("{field}.containerPort"), port.container_port)?;
        if let Some(host_port) = port.host_port.filter(|&p| p != 0) {
            check_port_number(&format!("{field}.hostPort"), host_port)?;
            if host_network && host_port != port.container_port {
                let message = "must match containerPort when hostNetwork is true";
                return Err(SpecError::new(format!("{field}.hostPort"), message));
            }
        }
        if let Some(name) = &port.name {
            check(format!("{field}.name"), iana_svc_name_error(name))?;
            if !names.insert(name) {
                let message = format!("duplicate port name {name:?}");
                return Err(SpecError::new(format!("{field}.name"), message));
            }
        }
    }
    Ok(())
}

fn check_port_number(field: &str, port: i32) -> Result<(), SpecError> {
    if !(1..=65535).contains(&port) {
        let message = format!("{port} must be between 1 and 65535, inclusive");
        return Err(SpecError::new(field, message));
    }
    Ok(())
}

fn validate_resources(path: &str, resources: &ResourceRequirements) -> Result<(), SpecError> {
    let requests = parse_quantities(&format!("{path}.requests"), &resources.requests)?;
    let limits = parse_quantities(&format!("{path}.limits"), &resources.limits)?;
    for (name, request) in &requests {
        let Some(limit) = limits.get(name) else {
            continue;
        };
        if request > limit {
            let message = format!(
                "{} must be less than or equal to {name} limit of {}",
                resources.requests[*name], resources.limits[*name]
            );
            return Err(SpecError::new(format!("{path}.requests.{name}"), message));
        }
    }
    Ok(())
}

/// Parses each quantity in its resource's unit and returns them all in milli-units.
fn parse_quantities<'a>(
    path: &str,
    quantities: &'a BTreeMap<String, Quantity>,
) -> Result<BTreeMap<&'a str, u128>, SpecError> {
    let mut parsed = BTreeMap::new();
    for (name, quantity) in quantities {
        let at = |e: SpecError| e.at(&format!("{path}.{name}"));
        match name.as_str() {
            "cpu" => quantity.millicores().map(drop).map_err(at)?,
            "memory" | "ephemeral-storage" => quantity.bytes().map(drop).map_err(at)?,
            n if n.starts_with("hugepages-") => quantity.bytes().map(drop).map_err(at)?,
            _ => {}
        }
        parsed.insert(name.as_str(), quantity.milli_value().map_err(at)?);
    }
    Ok(parsed)
}

fn validate_probe(path: &str, kind: &str, probe: &Probe) -> Result<(), SpecError> {
    let handlers = probe.handlers();
    let [handler] = handlers.as_slice() else {
        let message = format!(
            "must specify exactly one handler (exec, httpGet, tcpSocket or grpc), found {}",
            handlers.len()
        );
        return Err(SpecError::new(path, message));
    };
    match handler {
        ProbeHandler::Exec(exec) if exec.command.is_empty() => {
            return Err(SpecError::new(
                format!("{path}.exec.command"),
                "must be non-empty",
            ));
        }
        ProbeHandler::Exec(_) => {}
        ProbeHandler::HttpGet(get) => {
            check_probe_port(&format!("{path}.httpGet.port"), &get.port)?;
            get.validate_request()
                .map_err(|e| e.at(&format!("{path}.httpGet")))?;
        }
        ProbeHandler::TcpSocket(tcp) => {
            check_probe_port(&format!("{path}.tcpSocket.port"), &tcp.port)?
        }
        ProbeHandler::Grpc(grpc) => check_port_number(&format!("{path}.grpc.port"), grpc.port)?,
    }
    let counters = [
        ("initialDelaySeconds", probe.initial_delay_seconds),
        ("periodSeconds", probe.period_seconds),
        ("timeoutSeconds", probe.timeout_seconds),
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ];
    for (name, value) in counters {
        if value.is_some_and(|v| v < 0) {
            let message = "must be greater than or equal to 0";
            return Err(SpecError::new(format!("{path}.{name}"), message));
        }
    }
    if kind != "readinessProbe" && probe.success_threshold() != 1 {
        let message = format!("must be 1 for a {kind}");
        return Err(SpecError::new(format!("{path}.successThreshold"), message));
    }
    match probe.termination_grace_period_seconds {
        Some(_) if kind == "readinessProbe" => {
            let message = "must not be set for a readinessProbe";
            Err(SpecError::new(
                format!("{path}.terminationGracePeriodSeconds"),
                message,
            ))
        }
        Some(s) if s < 1 => {
            let message = "must be greater than 0";
            Err(SpecError::new(
                format!("{path}.terminationGracePeriodSeconds"),
                message,
            ))
        }
        _ => Ok(()),
    }
}

fn check_probe_port(field: &str, port: &IntOrString) -> Result<(), SpecError> {
    match port {
        IntOrString::Int(n) => check_port_number(field, *n),
        IntOrString::String(name) => check(field, iana_svc_name_error(name)),
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;

/// kube-apiserver's checks of `dnsConfig`: `None` needs a nameserver; at most 3 nameservers
/// (IP addresses), 32 searches, option names set.
fn validate_dns_config(spec: &super::PodSpec) -> Result<(), SpecError> {
    let config = spec.dns_config.as_ref();
    let nameservers = config.map(|c| c.nameservers.as_slice()).unwrap_or_default();
    if spec.dns_policy.as_deref() == Some("None") && nameservers.is_empty() {
        let message = "must provide at least one DNS nameserver when `dnsPolicy` is None";
        return Err(SpecError::new("spec.dnsConfig.nameservers", message));
    }
    let Some(config) = config else { return Ok(()) };
    if nameservers.len() > 3 {
        let message = format!(
            "{} nameservers: must not have more than 3",
            nameservers.len()
        );
        return Err(SpecError::new("spec.dnsConfig.nameservers", message));
    }
    for (i, ns) in nameservers.iter().enumerate() {
        if ns.parse::<std::net::IpAddr>().is_err() {
            let message = format!("{ns:?} must be a valid IP address");
            return Err(SpecError::new(
                format!("spec.dnsConfig.nameservers[{i}]"),
                message,
            ));
        }
    }
    if config.searches.len() > 32 {
        let message = format!(
            "{} search paths: must not have more than 32",
            config.searches.len()
        );
        return Err(SpecError::new("spec.dnsConfig.searches", message));
    }
    for (i, search) in config.searches.iter().enumerate() {
        let field = format!("spec.dnsConfig.searches[{i}]");
        check(field, dns1123_subdomain_error(search.trim_end_matches('.')))?;
    }
    for (i, option) in config.options.iter().enumerate() {
        if option.name.is_empty() {
            let field = format!("spec.dnsConfig.options[{i}].name");
            return Err(SpecError::new(field, "Required value"));
        }
    }
    Ok(())
}
