//! The fixture of `unsupported_tests.rs`: a pod with every parsed field set, built with
//! exhaustive struct literals so that a field added to the spec types does not compile until
//! it is classified.

use std::collections::BTreeMap;

use serde_json::Value;

use super::*;
use crate::spec::env_source::{
    EnvFromSource, EnvVarSource, ObjectFieldSelector, ObjectRef, ResourceFieldSelector,
};
use crate::spec::lifecycle::{Lifecycle, LifecycleHandler, SleepAction};
use crate::spec::pod::{
    Capabilities, ContainerPort, EnvVar, HostAlias, ObjectMeta, PodSecurityContext, Protocol,
    PullPolicy, ResourceRequirements, RestartPolicy, SecurityContext, VolumeMount,
};
use crate::spec::probe::{
    ExecAction, GrpcAction, HttpGetAction, HttpHeader, IntOrString, Probe, TcpSocketAction,
    UriScheme,
};
use crate::spec::quantity::Quantity;
use crate::spec::volume::{
    ConfigMapVolumeSource, DownwardApiProjection, DownwardApiVolumeFile, DownwardApiVolumeSource,
    EmptyDirVolumeSource, HostPathVolumeSource, KeyToPath, ObjectProjection, ProjectedVolumeSource,
    SecretVolumeSource, ServiceAccountTokenProjection, Volume, VolumeProjection,
};

fn q(s: &str) -> Quantity {
    serde_json::from_value(Value::String(s.into())).expect("quantity")
}

fn probe(handler: impl FnOnce(&mut Probe)) -> Option<Probe> {
    let mut p = Probe {
        exec: None,
        http_get: None,
        tcp_socket: None,
        grpc: None,
        initial_delay_seconds: Some(1),
        period_seconds: Some(2),
        timeout_seconds: Some(1),
        success_threshold: Some(1),
        failure_threshold: Some(3),
        termination_grace_period_seconds: None,
    };
    handler(&mut p);
    Some(p)
}

/// Every field set, to a value that asks for something (true, non-empty).
pub(super) fn maximal_pod() -> Pod {
    let app = Container {
        name: "app".into(),
        image: "bosun.test/busybox:1".into(),
        image_pull_policy: Some(PullPolicy::IfNotPresent),
        command: vec!["sh".into()],
        args: vec!["-c".into(), "true".into()],
        working_dir: Some("/srv".into()),
        env: vec![
            EnvVar {
                name: "A".into(),
                value: Some("b".into()),
                value_from: None,
            },
            EnvVar {
                name: "IP".into(),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        api_version: Some("v1".into()),
                        field_path: "status.podIP".into(),
                    }),
                    ..EnvVarSource::default()
                }),
            },
        ],
        env_from: vec![EnvFromSource {
            prefix: Some("P_".into()),
            config_map_ref: Some(ObjectRef {
                name: "cm".into(),
                optional: Some(true),
            }),
            secret_ref: None,
        }],
        ports: vec![ContainerPort {
            name: Some("http".into()),
            container_port: 8080,
            protocol: Protocol::Tcp,
            host_ip: Some("127.0.0.1".into()),
            host_port: Some(8080),
        }],
        resources: ResourceRequirements {
            requests: BTreeMap::from([
                ("cpu".into(), q("100m")),
                ("memory".into(), q("32Mi")),
                ("ephemeral-storage".into(), q("1Gi")),
            ]),
            limits: BTreeMap::from([
                ("cpu".into(), q("1")),
                ("memory".into(), q("64Mi")),
                ("nvidia.com/gpu".into(), q("1")),
            ]),
        },
        security_context: Some(SecurityContext {
            run_as_user: Some(1000),
            run_as_group: Some(1000),
            run_as_non_root: Some(true),
            privileged: Some(true),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            seccomp_profile: Some(crate::spec::pod::SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            capabilities: Some(Capabilities {
                add: vec!["NET_ADMIN".into()],
                drop: vec!["ALL".into()],
            }),
        }),
        liveness_probe: probe(|p| {
            p.exec = Some(ExecAction {
                command: vec!["true".into()],
            });
            p.termination_grace_period_seconds = Some(2);
        }),
        readiness_probe: probe(|p| {
            p.http_get = Some(HttpGetAction {
                path: Some("/healthz".into()),
                port: IntOrString::String("http".into()),
                host: Some("127.0.0.1".into()),
                scheme: Some(UriScheme::Https),
                http_headers: vec![HttpHeader {
                    name: "X-A".into(),
                    value: "b".into(),
                }],
            })
        }),
        startup_probe: probe(|p| {
            p.tcp_socket = Some(TcpSocketAction {
                port: IntOrString::Int(8080),
                host: Some("127.0.0.1".into()),
            })
        }),
        lifecycle: Some(Lifecycle {
            post_start: Some(LifecycleHandler {
                exec: Some(ExecAction {
                    command: vec!["touch".into(), "/tmp/started".into()],
                }),
                http_get: None,
                tcp_socket: None,
                sleep: None,
            }),
            pre_stop: Some(LifecycleHandler {
                tcp_socket: Some(TcpSocketAction {
                    port: IntOrString::Int(8080),
                    host: None,
                }),
                ..LifecycleHandler::default()
            }),
        }),
        stdin: true,
        stdin_once: true,
        tty: true,
        target_container_name: None,
        volume_mounts: vec![VolumeMount {
            name: "data".into(),
            mount_path: "/data".into(),
            read_only: true,
            sub_path: Some("x".into()),
            mount_propagation: Some("HostToContainer".into()),
        }],
    };
    let sidecar = Container {
        name: "sidecar".into(),
        image: "bosun.test/busybox:1".into(),
        liveness_probe: probe(|p| {
            p.grpc = Some(GrpcAction {
                port: 9000,
                service: Some("health".into()),
            })
        }),
        lifecycle: Some(Lifecycle {
            post_start: Some(LifecycleHandler {
                sleep: Some(SleepAction { seconds: 1 }),
                ..LifecycleHandler::default()
            }),
            pre_stop: Some(LifecycleHandler {
                http_get: Some(HttpGetAction {
                    path: Some("/drain".into()),
                    port: IntOrString::String("http".into()),
                    host: None,
                    scheme: None,
                    http_headers: Vec::new(),
                }),
                ..LifecycleHandler::default()
            }),
        }),
        ..Container::default()
    };
    let init = Container {
        name: "init".into(),
        image: "bosun.test/busybox:1".into(),
        command: vec!["true".into()],
        ..Container::default()
    };
    Pod {
        api_version: "v1".into(),
        kind: "Pod".into(),
        metadata: ObjectMeta {
            name: "everything".into(),
            namespace: "team".into(),
            uid: Some("0b9e5c1e-1111-2222-3333-444455556666".into()),
            labels: BTreeMap::from([("app".into(), "web".into())]),
            annotations: BTreeMap::from([("example.com/owner".into(), "me".into())]),
        },
        spec: PodSpec {
            ephemeral_containers: Vec::new(),
            containers: vec![app, sidecar],
            init_containers: vec![init],
            restart_policy: RestartPolicy::OnFailure,
            termination_grace_period_seconds: Some(5),
            active_deadline_seconds: Some(60),
            hostname: Some("web-0".into()),
            subdomain: Some("web".into()),
            node_name: Some("node-2".into()),
            node_selector: BTreeMap::from([("disk".into(), "ssd".into())]),
            service_account_name: Some("builder".into()),
            enable_service_links: Some(false),
            host_network: true,
            host_pid: true,
            host_ipc: true,
            share_process_namespace: Some(false), // true with hostPID is invalid
            security_context: Some(PodSecurityContext {
                run_as_user: Some(1000),
                run_as_group: Some(1000),
                run_as_non_root: Some(true),
                supplemental_groups: vec![3000],
                fs_group: Some(2000),
                seccomp_profile: Some(crate::spec::pod::SeccompProfile {
                    type_: "Unconfined".into(),
                    localhost_profile: None,
                }),
            }),
            dns_policy: Some("ClusterFirstWithHostNet".into()),
            dns_config: Some(crate::spec::PodDnsConfig {
                nameservers: vec!["10.96.0.10".into()],
                ..Default::default()
            }),
            host_aliases: vec![HostAlias {
                ip: "10.1.2.3".into(),
                hostnames: vec!["db.local".into()],
            }],
            image_pull_secrets: vec![crate::spec::LocalObjectReference {
                name: "regcred".into(),
            }],
            volumes: vec![
                Volume {
                    name: "data".into(),
                    empty_dir: Some(EmptyDirVolumeSource {
                        medium: "Memory".into(),
                        size_limit: Some(q("64Mi")),
                    }),
                    host_path: None,
                    config_map: None,
                    secret: None,
                    persistent_volume_claim: None,
                    downward_api: None,
                    projected: None,
                },
                Volume {
                    name: "host".into(),
                    empty_dir: None,
                    host_path: Some(HostPathVolumeSource {
                        path: "/tmp".into(),
                        kind: Some("Directory".into()),
                    }),
                    config_map: None,
                    secret: None,
                    persistent_volume_claim: None,
                    downward_api: None,
                    projected: None,
                },
                Volume {
                    name: "disk".into(),
                    empty_dir: Some(EmptyDirVolumeSource {
                        medium: String::new(),
                        size_limit: Some(q("1Gi")),
                    }),
                    host_path: None,
                    config_map: None,
                    secret: None,
                    persistent_volume_claim: None,
                    downward_api: None,
                    projected: None,
                },
                Volume {
                    name: "cm".into(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: "cm".into(),
                        items: vec![KeyToPath {
                            key: "k".into(),
                            path: "dir/k".into(),
                            mode: Some(0o600),
                        }],
                        default_mode: Some(0o644),
                        optional: Some(true),
                    }),
                    ..Volume::default()
                },
                Volume {
                    name: "sec".into(),
                    secret: Some(SecretVolumeSource {
                        secret_name: "s".into(),
                        items: Vec::new(),
                        default_mode: Some(0o400),
                        optional: None,
                    }),
                    ..Volume::default()
                },
                Volume {
                    name: "down".into(),
                    downward_api: Some(DownwardApiVolumeSource {
                        items: vec![downward_file()],
                        default_mode: Some(0o600),
                    }),
                    ..Volume::default()
                },
                Volume {
                    name: "proj".into(),
                    projected: Some(ProjectedVolumeSource {
                        sources: vec![
                            VolumeProjection {
                                config_map: Some(ObjectProjection {
                                    name: "cm".into(),
                                    items: vec![KeyToPath {
                                        key: "k".into(),
                                        path: "cm/k".into(),
                                        mode: Some(0o600),
                                    }],
                                    optional: Some(true),
                                }),
                                ..VolumeProjection::default()
                            },
                            VolumeProjection {
                                secret: Some(ObjectProjection {
                                    name: "s".into(),
                                    items: Vec::new(),
                                    optional: Some(true),
                                }),
                                ..VolumeProjection::default()
                            },
                            VolumeProjection {
                                downward_api: Some(DownwardApiProjection {
                                    items: vec![DownwardApiVolumeFile {
                                        path: "labels".into(),
                                        field_ref: Some(ObjectFieldSelector {
                                            api_version: Some("v1".into()),
                                            field_path: "metadata.labels".into(),
                                        }),
                                        resource_field_ref: None,
                                        mode: None,
                                    }],
                                }),
                                ..VolumeProjection::default()
                            },
                            VolumeProjection {
                                service_account_token: Some(ServiceAccountTokenProjection {
                                    audience: "vault".into(),
                                    expiration_seconds: Some(600),
                                    path: "token".into(),
                                }),
                                ..VolumeProjection::default()
                            },
                        ],
                        default_mode: Some(0o440),
                    }),
                    ..Volume::default()
                },
            ],
        },
    }
}

/// A downwardAPI file of the app container's memory limit in MiB.
fn downward_file() -> DownwardApiVolumeFile {
    DownwardApiVolumeFile {
        path: "mem".into(),
        field_ref: None,
        resource_field_ref: Some(ResourceFieldSelector {
            container_name: Some("app".into()),
            resource: "limits.memory".into(),
            divisor: Some(q("1Mi")),
        }),
        mode: Some(0o400),
    }
}
