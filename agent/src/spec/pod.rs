//! The Pod manifest as bosun reads it: serde mirrors of the Kubernetes `v1.Pod` fields the
//! agent acts on, with Kubernetes' defaults. Fields these types do not know are refused by
//! `parse` (`unknown`: only bookkeeping, scheduler-only and defaulted ones pass); fields a later
//! issue will interpret are kept as raw JSON values and refused when set (`unsupported`). These
//! types never validate themselves: `validate` does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::env_source::{EnvFromSource, EnvVarSource};
use super::lifecycle::Lifecycle;
use super::probe::{IntOrString, Probe};
use super::quantity::Quantity;
use super::volume::Volume;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Pod {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: PodSpec,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectMeta {
    pub name: String,
    pub namespace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl Default for ObjectMeta {
    fn default() -> Self {
        ObjectMeta {
            name: String::new(),
            namespace: "default".to_string(),
            uid: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodSpec {
    pub containers: Vec<Container>,
    pub init_containers: Vec<Container>,
    /// Added to a running pod through `pods/ephemeralcontainers` (`kubectl debug`); never
    /// restarted, and not part of the pod's identity (`manifest_hash`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ephemeral_containers: Vec<Container>,
    pub restart_policy: RestartPolicy,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subdomain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    pub node_selector: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// `enableServiceLinks`: the variables of the namespace's Services (default true); the
    /// `kubernetes` Service's are there either way (`crate::service_env`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_service_links: Option<bool>,
    pub host_network: bool,
    #[serde(rename = "hostPID")]
    pub host_pid: bool,
    #[serde(rename = "hostIPC")]
    pub host_ipc: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share_process_namespace: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_policy: Option<String>,
    /// `dnsConfig`: merged into the pod's resolv.conf (`crate::dns::resolv`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_config: Option<PodDnsConfig>,
    /// Extra `/etc/hosts` entries.
    pub host_aliases: Vec<HostAlias>,
    /// Volume sources (`emptyDir`, `hostPath`; any other is an unknown field, refused).
    pub volumes: Vec<Volume>,
    /// Secrets (`kubernetes.io/dockerconfigjson` or `kubernetes.io/dockercfg`) whose
    /// registry credentials pull the pod's images; only a cluster pod may have them.
    pub image_pull_secrets: Vec<LocalObjectReference>,
}

/// A reference to an object of the pod's namespace by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LocalObjectReference {
    pub name: String,
}

impl PodSpec {
    /// Seconds between SIGTERM and SIGKILL on pod deletion (Kubernetes default 30).
    pub fn termination_grace_period_seconds(&self) -> i64 {
        self.termination_grace_period_seconds.unwrap_or(30)
    }

    /// Init containers, app containers, then ephemeral containers, with the field path of
    /// each (`spec.initContainers[0]`, `spec.containers[2]`, `spec.ephemeralContainers[0]`).
    pub fn all_containers(&self) -> impl Iterator<Item = (String, &Container)> {
        let init = self.init_containers.iter().enumerate();
        let app = self.containers.iter().enumerate();
        let ephemeral = self.ephemeral_containers.iter().enumerate();
        init.map(|(i, c)| (format!("spec.initContainers[{i}]"), c))
            .chain(app.map(|(i, c)| (format!("spec.containers[{i}]"), c)))
            .chain(ephemeral.map(|(i, c)| (format!("spec.ephemeralContainers[{i}]"), c)))
    }
}

/// `spec.dnsConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodDnsConfig {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<PodDnsOption>,
}

/// One `dnsConfig.options` entry (`ndots:2` is `{name: ndots, value: "2"}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PodDnsOption {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// One `hostAliases` entry: `ip` followed by `hostnames` in the pod's `/etc/hosts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostAlias {
    pub ip: String,
    pub hostnames: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodSecurityContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_non_root: Option<bool>,
    pub supplemental_groups: Vec<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs_group: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<SeccompProfile>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Container {
    pub name: String,
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    pub command: Vec<String>,
    pub args: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    pub env: Vec<EnvVar>,
    pub env_from: Vec<EnvFromSource>,
    pub ports: Vec<ContainerPort>,
    pub resources: ResourceRequirements,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub startup_probe: Option<Probe>,
    /// `postStart`/`preStop` hooks (see `lifecycle`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
    pub stdin: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stdin_once: bool,
    pub tty: bool,
    /// An ephemeral container's: the container whose PID namespace it joins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_container_name: Option<String>,
    pub volume_mounts: Vec<VolumeMount>,
}

impl Container {
    /// The pull policy Kubernetes would default to: `Always` for `:latest` or untagged images,
    /// `IfNotPresent` for any other tag or a digest.
    pub fn pull_policy(&self) -> PullPolicy {
        if let Some(policy) = self.image_pull_policy {
            return policy;
        }
        let last_component = self.image.rsplit('/').next().unwrap_or("");
        if last_component.contains('@') {
            return PullPolicy::IfNotPresent;
        }
        match last_component.split_once(':') {
            Some((_, tag)) if tag != "latest" => PullPolicy::IfNotPresent,
            _ => PullPolicy::Always,
        }
    }

    /// The number of the container port called `name` (for probes with named ports).
    pub fn named_port(&self, name: &str) -> Option<i32> {
        let port = self.ports.iter().find(|p| p.name.as_deref() == Some(name));
        port.map(|p| p.container_port)
    }

    /// The probes that are set, with their field names.
    pub fn probes(&self) -> impl Iterator<Item = (&'static str, &Probe)> {
        [
            ("livenessProbe", &self.liveness_probe),
            ("readinessProbe", &self.readiness_probe),
            ("startupProbe", &self.startup_probe),
        ]
        .into_iter()
        .filter_map(|(name, probe)| probe.as_ref().map(|p| (name, p)))
    }
}

/// Resolves a probe port (number or container port name) to a number.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Option<i32> {
    match port {
        IntOrString::Int(n) => Some(*n),
        IntOrString::String(s) => container.named_port(s).or_else(|| s.parse().ok()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvVar {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `valueFrom` (see `env_source`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerPort {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub container_port: i32,
    pub protocol: Protocol,
    /// `0` and unset both mean "no host port".
    #[serde(rename = "hostIP", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_port: Option<i32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourceRequirements {
    pub requests: BTreeMap<String, Quantity>,
    pub limits: BTreeMap<String, Quantity>,
}

impl ResourceRequirements {
    /// The request for `resource`, falling back to its limit as Kubernetes defaulting does.
    pub fn effective_request(&self, resource: &str) -> Option<&Quantity> {
        self.requests
            .get(resource)
            .or_else(|| self.limits.get(resource))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SecurityContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_non_root: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_privilege_escalation: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only_root_filesystem: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<SeccompProfile>,
}

/// `securityContext.seccompProfile` (of a container, or of the pod for its containers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SeccompProfile {
    /// RuntimeDefault, Unconfined or Localhost.
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub localhost_profile: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Capabilities {
    pub add: Vec<String>,
    pub drop: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VolumeMount {
    pub name: String,
    pub mount_path: String,
    pub read_only: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_path: Option<String>,
    /// Only `None` is honoured (see `unsupported`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount_propagation: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(image: &str) -> Container {
        Container {
            name: "c".into(),
            image: image.into(),
            ..Container::default()
        }
    }

    #[test]
    fn pull_policy_defaults_like_kubernetes() {
        let table = [
            ("nginx", PullPolicy::Always),
            ("nginx:latest", PullPolicy::Always),
            ("nginx:1.25", PullPolicy::IfNotPresent),
            ("localhost:5000/nginx", PullPolicy::Always),
            ("localhost:5000/nginx:1", PullPolicy::IfNotPresent),
            ("nginx@sha256:abcd", PullPolicy::IfNotPresent),
        ];
        for (image, want) in table {
            assert_eq!(container(image).pull_policy(), want, "{image}");
        }
        let mut explicit = container("nginx");
        explicit.image_pull_policy = Some(PullPolicy::Never);
        assert_eq!(explicit.pull_policy(), PullPolicy::Never);
    }

    #[test]
    fn named_probe_ports_resolve_through_container_ports() {
        let mut c = container("nginx");
        c.ports.push(ContainerPort {
            name: Some("http".into()),
            container_port: 8080,
            ..ContainerPort::default()
        });
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &c),
            Some(8080)
        );
        assert_eq!(resolve_port(&IntOrString::Int(81), &c), Some(81));
        assert_eq!(resolve_port(&IntOrString::String("nope".into()), &c), None);
    }

    #[test]
    fn missing_fields_take_kubernetes_defaults() {
        let pod: Pod = serde_yaml::from_str("metadata: {name: a}").unwrap();
        assert_eq!(pod.metadata.namespace, "default");
        assert_eq!(pod.spec.restart_policy, RestartPolicy::Always);
        assert_eq!(pod.spec.termination_grace_period_seconds(), 30);
        let port: ContainerPort = serde_yaml::from_str("containerPort: 80").unwrap();
        assert_eq!(port.protocol, Protocol::Tcp);
    }

    #[test]
    fn pods_round_trip_through_json() {
        let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: a, labels: {x: y}}\nspec:\n  \
                    containers: [{name: c, image: busybox, resources: {limits: {cpu: 1}}}]";
        let pod: Pod = serde_yaml::from_str(yaml).unwrap();
        let json = serde_json::to_string(&pod).unwrap();
        assert_eq!(serde_json::from_str::<Pod>(&json).unwrap(), pod);
    }
}
