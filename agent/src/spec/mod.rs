//! Pod, Service and EndpointSlice manifests: Kubernetes `v1.Pod` YAML/JSON as the API server
//! writes it, validated with errors that name the field. A Pod field the agent does not honour
//! is refused, never dropped: parsed ones by `unsupported`, unknown ones by `unknown`. Plus the
//! pure rules the agent derives from a spec: the command a container runs, its QoS class, the
//! pod's stable uid and spec hash.
//! This module never touches the filesystem, the network or the kernel.

mod command;
mod env_source;
mod error;
mod identity;
mod lifecycle;
mod names;
mod parse;
mod pod;
mod probe;
mod qos;
mod quantity;
mod service;
mod unknown;
mod unsupported;
mod validate;
mod validate_env;
mod validate_volume;
mod volume;

pub use command::{
    expand_vars, resolve_command, resolve_command_with_env, resolve_env, resolve_env_with,
};
pub use env_source::{
    subscripted_field, EnvFromSource, EnvVarSource, KeySelector, ObjectFieldSelector, ObjectRef,
    ResourceFieldSelector,
};
pub use error::SpecError;
pub use identity::{canonical_hash, manifest_hash, pod_uid};
pub use lifecycle::{HookAction, Lifecycle, LifecycleHandler, SleepAction};
pub use names::{
    dns1123_label_error, dns1123_subdomain_error, iana_svc_name_error, label_key_error,
    label_value_error,
};
pub use parse::{
    endpoint_slice_from_api, parse_manifests, parse_pod, pod_from_api, service_from_api, Manifest,
};
pub use pod::{
    resolve_port, Capabilities, Container, ContainerPort, EnvVar, HostAlias, LocalObjectReference,
    ObjectMeta, Pod, PodDnsConfig, PodDnsOption, PodSecurityContext, PodSpec, Protocol, PullPolicy,
    ResourceRequirements, RestartPolicy, SecurityContext, VolumeMount,
};
pub use probe::{
    ExecAction, GrpcAction, HttpGetAction, HttpHeader, IntOrString, Probe, ProbeHandler,
    TcpSocketAction, UriScheme,
};
pub use qos::{qos_class, QosClass};
pub use quantity::Quantity;
pub use service::{
    ClientIpConfig, Endpoint, EndpointConditions, EndpointPort, EndpointSlice, Service,
    ServicePort, ServiceSpec, ServiceVips, SessionAffinityConfig, DEFAULT_AFFINITY_TIMEOUT_SECONDS,
    HEADLESS, SERVICE_NAME_LABEL,
};
pub use unsupported::{refuse_unhonoured, HONOURED_RESOURCES};
pub use validate::validate;
pub use validate_env::refuse_api_references;
pub use volume::{
    ConfigMapVolumeSource, DownwardApiProjection, DownwardApiVolumeFile, DownwardApiVolumeSource,
    EmptyDirVolumeSource, HostPathVolumeSource, KeyToPath, ObjectProjection,
    PersistentVolumeClaimVolumeSource, ProjectedVolumeSource, SecretVolumeSource,
    ServiceAccountTokenProjection, Volume, VolumeProjection, DEFAULT_FILE_MODE,
    DEFAULT_TOKEN_EXPIRATION_SECONDS, HOST_PATH_TYPES, VOLUME_FIELD_PATHS,
};
