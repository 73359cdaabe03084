//! The rule that a pod never silently differs from its manifest: every field the spec types
//! parse is either honoured by the agent or refused here, with an error naming the field and
//! saying why. `unsupported_tests.rs` builds a pod with every parsed field set (an exhaustive
//! struct literal, so a new field does not compile until it is classified) and checks each
//! field is on one list or the other. Runs after `validate`; never touches the system.

use super::error::SpecError;
use super::pod::{Container, Pod, PodSpec};

/// The resources the agent enforces (cgroup cpu and memory); any other is refused.
pub const HONOURED_RESOURCES: [&str; 2] = ["cpu", "memory"];

/// Refuses the first field of `pod` that the agent would not honour.
pub fn refuse_unhonoured(pod: &Pod) -> Result<(), SpecError> {
    refuse_pod_fields(&pod.spec)?;
    for (path, c) in pod.spec.all_containers() {
        if path.starts_with("spec.initContainers") {
            let message = "may not be set for init containers";
            if let Some((name, _)) = c.probes().next() {
                return Err(SpecError::new(format!("{path}.{name}"), message));
            }
            if c.lifecycle.is_some() {
                return Err(SpecError::new(format!("{path}.lifecycle"), message));
            }
        }
        if !path.starts_with("spec.ephemeralContainers") && c.target_container_name.is_some() {
            let message = "only an ephemeral container has a target container";
            return Err(SpecError::new(
                format!("{path}.targetContainerName"),
                message,
            ));
        }
        refuse_container_fields(&path, c)?;
    }
    let pod_profile = pod.spec.security_context.as_ref();
    let profiles = pod_profile
        .and_then(|s| s.seccomp_profile.as_ref())
        .map(|p| ("spec.securityContext".to_owned(), p))
        .into_iter()
        .chain(pod.spec.all_containers().filter_map(|(path, c)| {
            let p = c.security_context.as_ref()?.seccomp_profile.as_ref()?;
            Some((format!("{path}.securityContext"), p))
        }));
    for (at, profile) in profiles {
        if profile.type_ == "Localhost" {
            let why = "no profile files on the node: only RuntimeDefault and Unconfined";
            return refused(format!("{at}.seccompProfile.type"), why);
        }
    }
    Ok(())
}

fn refused(field: impl Into<String>, why: &str) -> Result<(), SpecError> {
    Err(SpecError::new(field, format!("not supported yet ({why})")))
}

fn refuse_pod_fields(spec: &PodSpec) -> Result<(), SpecError> {
    for (i, volume) in spec.volumes.iter().enumerate() {
        let disk = volume.empty_dir.as_ref().filter(|e| !e.is_memory());
        if disk.is_some_and(|e| e.size_limit.is_some()) {
            let why =
                "a disk emptyDir is not measured; use medium: Memory for a size-limited tmpfs";
            return refused(format!("spec.volumes[{i}].emptyDir.sizeLimit"), why);
        }
    }
    if spec.node_name.is_some() {
        let why = "a static pod runs on the node whose manifest directory holds it";
        return refused("spec.nodeName", why);
    }
    if !spec.node_selector.is_empty() {
        return refused(
            "spec.nodeSelector",
            "node labels come with the control plane",
        );
    }
    Ok(())
}

fn refuse_container_fields(path: &str, c: &Container) -> Result<(), SpecError> {
    for (i, mount) in c.volume_mounts.iter().enumerate() {
        if mount
            .mount_propagation
            .as_deref()
            .is_some_and(|p| p != "None")
        {
            let why = "mounts are private to the container (only None)";
            return refused(format!("{path}.volumeMounts[{i}].mountPropagation"), why);
        }
    }
    let resources = [
        ("requests", &c.resources.requests),
        ("limits", &c.resources.limits),
    ];
    for (kind, map) in resources {
        if let Some(name) = map
            .keys()
            .find(|n| !HONOURED_RESOURCES.contains(&n.as_str()))
        {
            let why = "the agent enforces only cpu and memory";
            return refused(format!("{path}.resources.{kind}.{name}"), why);
        }
    }
    for (hook, handler) in c.lifecycle.iter().flat_map(|l| l.hooks()) {
        if handler.tcp_socket.is_some() {
            let why = "deprecated; kubelet never runs a tcpSocket hook: use exec, httpGet or sleep";
            return refused(format!("{path}.lifecycle.{hook}.tcpSocket"), why);
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "unsupported_fixture.rs"]
mod fixture;
#[cfg(test)]
#[path = "unsupported_tests.rs"]
mod tests;
