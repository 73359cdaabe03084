//! Tests for `validate`: one valid pod, then one mutation per rule with the field path the
//! error must name.

use super::*;
use crate::spec::pod::{ContainerPort, EnvVar, VolumeMount};
use crate::spec::probe::{ExecAction, GrpcAction, TcpSocketAction};

const VALID: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web.example
  namespace: prod
  labels: {app: web, app.kubernetes.io/part-of: shop}
  annotations: {example.com/owner: me}
spec:
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 5
  hostname: web-0
  volumes: [{name: data, emptyDir: {}}]
  initContainers:
  - name: setup
    image: busybox
    command: [sh, -c, "echo hi"]
  containers:
  - name: nginx
    image: nginx:1.25
    env: [{name: PORT, value: "80"}, {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]
    ports: [{name: http, containerPort: 80}, {containerPort: 53, protocol: UDP, hostPort: 5353}]
    resources:
      requests: {cpu: 100m, memory: 64Mi}
      limits: {cpu: 1, memory: 128Mi, nvidia.com/gpu: 1}
    livenessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 5}
    readinessProbe: {tcpSocket: {port: 80}, successThreshold: 2}
    startupProbe: {exec: {command: [cat, /ready]}, failureThreshold: 30}
    volumeMounts: [{name: data, mountPath: /data}]
  - name: sidecar
    image: busybox
    livenessProbe: {grpc: {port: 9000}}
"#;

/// The reference pod, typed without `parse_pod` (which also refuses the fields the agent does
/// not honour yet, like the volumes here: validation is tested on its own).
fn valid_pod() -> Pod {
    let value: serde_json::Value = serde_yaml::from_str(VALID).expect("yaml");
    serde_json::from_value(value).expect("the reference pod parses")
}

/// Applies `mutate` to the valid pod and returns the field the error names.
fn error_field(mutate: impl FnOnce(&mut Pod)) -> String {
    let mut pod = valid_pod();
    mutate(&mut pod);
    validate(&pod).expect_err("mutation must be rejected").field
}

fn app(pod: &mut Pod, i: usize) -> &mut Container {
    &mut pod.spec.containers[i]
}

#[test]
fn the_reference_pod_is_valid() {
    let pod = valid_pod();
    assert_eq!(validate(&pod), Ok(()));
    assert_eq!(pod.spec.containers.len(), 2);
}

#[test]
fn metadata_names_must_be_dns1123() {
    assert_eq!(
        error_field(|p| p.metadata.name = String::new()),
        "metadata.name"
    );
    assert_eq!(
        error_field(|p| p.metadata.name = "Web".into()),
        "metadata.name"
    );
    assert_eq!(
        error_field(|p| p.metadata.namespace = "a.b".into()),
        "metadata.namespace"
    );
    let bad_label = |p: &mut Pod| {
        p.metadata.labels.insert("app".into(), "-bad".into());
    };
    assert_eq!(error_field(bad_label), "metadata.labels[app]");
    let bad_annotation = |p: &mut Pod| {
        p.metadata.annotations.insert("bad key".into(), "x".into());
    };
    assert_eq!(error_field(bad_annotation), "metadata.annotations[bad key]");
}

#[test]
fn a_pod_needs_at_least_one_container() {
    assert_eq!(
        error_field(|p| p.spec.containers.clear()),
        "spec.containers"
    );
}

#[test]
fn container_names_are_unique_dns1123_labels() {
    assert_eq!(
        error_field(|p| app(p, 1).name = "Side_car".into()),
        "spec.containers[1].name"
    );
    assert_eq!(
        error_field(|p| app(p, 1).name = String::new()),
        "spec.containers[1].name"
    );
    assert_eq!(
        error_field(|p| app(p, 1).name = "nginx".into()),
        "spec.containers[1].name"
    );
    let clash_with_init = |p: &mut Pod| app(p, 0).name = "setup".into();
    assert_eq!(error_field(clash_with_init), "spec.containers[0].name");
    let bad_init = |p: &mut Pod| p.spec.init_containers[0].name = "a.b".into();
    assert_eq!(error_field(bad_init), "spec.initContainers[0].name");
}

#[test]
fn images_must_be_non_empty() {
    assert_eq!(
        error_field(|p| app(p, 0).image = String::new()),
        "spec.containers[0].image"
    );
    assert_eq!(
        error_field(|p| app(p, 0).image = " nginx".into()),
        "spec.containers[0].image"
    );
}

#[test]
fn pod_level_numbers_and_names_are_checked() {
    let grace = |p: &mut Pod| p.spec.termination_grace_period_seconds = Some(-1);
    assert_eq!(error_field(grace), "spec.terminationGracePeriodSeconds");
    let deadline = |p: &mut Pod| p.spec.active_deadline_seconds = Some(0);
    assert_eq!(error_field(deadline), "spec.activeDeadlineSeconds");
    assert_eq!(
        error_field(|p| p.spec.hostname = Some("a.b".into())),
        "spec.hostname"
    );
    assert_eq!(
        error_field(|p| p.spec.subdomain = Some("-x".into())),
        "spec.subdomain"
    );
    assert_eq!(
        error_field(|p| p.spec.dns_policy = Some("Cluster".into())),
        "spec.dnsPolicy"
    );
    let alias = |ip: &str, name: &str| crate::spec::pod::HostAlias {
        ip: ip.into(),
        hostnames: vec![name.into()],
    };
    assert_eq!(
        error_field(|p| p.spec.host_aliases = vec![alias("10.0.0.300", "db")]),
        "spec.hostAliases[0].ip"
    );
    assert_eq!(
        error_field(|p| p.spec.host_aliases = vec![alias("10.0.0.3", "Db_1")]),
        "spec.hostAliases[0].hostnames[0]"
    );
}

#[test]
fn with_host_network_a_host_port_must_equal_the_container_port() {
    // The reference pod maps host port 5353 to container port 53.
    assert_eq!(
        error_field(|p| p.spec.host_network = true),
        "spec.containers[0].ports[1].hostPort"
    );
    let mut pod = valid_pod();
    pod.spec.host_network = true;
    pod.spec.containers[0].ports[1].host_port = Some(53);
    assert_eq!(validate(&pod), Ok(()));
}

#[test]
fn unparseable_quantities_name_the_resource() {
    let bad = |p: &mut Pod| {
        app(p, 0)
            .resources
            .limits
            .insert("memory".into(), "12 Gi".into());
    };
    let mut pod = valid_pod();
    bad(&mut pod);
    let err = validate(&pod).unwrap_err();
    assert_eq!(err.field, "spec.containers[0].resources.limits.memory");
    assert!(err.message.contains("\"12 Gi\""), "{err}");
    let negative = |p: &mut Pod| {
        app(p, 0)
            .resources
            .requests
            .insert("cpu".into(), "-1".into());
    };
    assert_eq!(
        error_field(negative),
        "spec.containers[0].resources.requests.cpu"
    );
    let bad_extended = |p: &mut Pod| {
        app(p, 0)
            .resources
            .limits
            .insert("nvidia.com/gpu".into(), "x".into());
    };
    assert_eq!(
        error_field(bad_extended),
        "spec.containers[0].resources.limits.nvidia.com/gpu"
    );
}

#[test]
fn requests_must_not_exceed_limits() {
    let over = |p: &mut Pod| {
        app(p, 0)
            .resources
            .requests
            .insert("memory".into(), "129Mi".into());
    };
    let mut pod = valid_pod();
    over(&mut pod);
    let err = validate(&pod).unwrap_err();
    assert_eq!(err.field, "spec.containers[0].resources.requests.memory");
    assert_eq!(
        err.message,
        "129Mi must be less than or equal to memory limit of 128Mi"
    );
    let equal_in_other_units = |p: &mut Pod| {
        app(p, 0)
            .resources
            .requests
            .insert("cpu".into(), "1000m".into());
    };
    let mut pod = valid_pod();
    equal_in_other_units(&mut pod);
    assert_eq!(validate(&pod), Ok(()));
}

#[test]
fn port_numbers_must_be_in_range() {
    let port = |p: &mut Pod| app(p, 0).ports[1].container_port = 0;
    assert_eq!(
        error_field(port),
        "spec.containers[0].ports[1].containerPort"
    );
    let port = |p: &mut Pod| app(p, 0).ports[0].container_port = 65536;
    assert_eq!(
        error_field(port),
        "spec.containers[0].ports[0].containerPort"
    );
    let host = |p: &mut Pod| app(p, 0).ports[1].host_port = Some(70000);
    assert_eq!(error_field(host), "spec.containers[0].ports[1].hostPort");
    let unset_host = |p: &mut Pod| app(p, 0).ports[1].host_port = Some(0);
    let mut pod = valid_pod();
    unset_host(&mut pod);
    assert_eq!(validate(&pod), Ok(()));
}

#[test]
fn port_names_are_unique_iana_names() {
    let bad = |p: &mut Pod| app(p, 0).ports[0].name = Some("HTTP".into());
    assert_eq!(error_field(bad), "spec.containers[0].ports[0].name");
    let dup = |p: &mut Pod| {
        app(p, 0).ports.push(ContainerPort {
            name: Some("http".into()),
            container_port: 81,
            ..ContainerPort::default()
        })
    };
    assert_eq!(error_field(dup), "spec.containers[0].ports[2].name");
}

#[test]
fn probes_need_exactly_one_handler() {
    let none = |p: &mut Pod| app(p, 1).liveness_probe = Some(Probe::default());
    assert_eq!(error_field(none), "spec.containers[1].livenessProbe");
    let two = |p: &mut Pod| {
        let probe = app(p, 0).readiness_probe.as_mut().unwrap();
        probe.exec = Some(ExecAction {
            command: vec!["true".into()],
        });
    };
    assert_eq!(error_field(two), "spec.containers[0].readinessProbe");
}

#[test]
fn probe_actions_and_numbers_are_checked() {
    let empty_exec = |p: &mut Pod| {
        app(p, 0).startup_probe.as_mut().unwrap().exec = Some(ExecAction::default());
    };
    assert_eq!(
        error_field(empty_exec),
        "spec.containers[0].startupProbe.exec.command"
    );
    let tcp = |p: &mut Pod| {
        app(p, 0).readiness_probe.as_mut().unwrap().tcp_socket = Some(TcpSocketAction {
            port: IntOrString::Int(0),
            host: None,
        });
    };
    assert_eq!(
        error_field(tcp),
        "spec.containers[0].readinessProbe.tcpSocket.port"
    );
    let named = |p: &mut Pod| {
        let get = app(p, 0)
            .liveness_probe
            .as_mut()
            .unwrap()
            .http_get
            .as_mut()
            .unwrap();
        get.port = IntOrString::String("Not A Name".into());
    };
    assert_eq!(
        error_field(named),
        "spec.containers[0].livenessProbe.httpGet.port"
    );
    let grpc = |p: &mut Pod| {
        app(p, 1).liveness_probe.as_mut().unwrap().grpc = Some(GrpcAction {
            port: -1,
            service: None,
        });
    };
    assert_eq!(
        error_field(grpc),
        "spec.containers[1].livenessProbe.grpc.port"
    );
    let period = |p: &mut Pod| app(p, 0).liveness_probe.as_mut().unwrap().period_seconds = Some(-1);
    assert_eq!(
        error_field(period),
        "spec.containers[0].livenessProbe.periodSeconds"
    );
    let success = |p: &mut Pod| {
        app(p, 0).liveness_probe.as_mut().unwrap().success_threshold = Some(2);
    };
    assert_eq!(
        error_field(success),
        "spec.containers[0].livenessProbe.successThreshold"
    );
    let grace = |p: &mut Pod| {
        app(p, 0)
            .readiness_probe
            .as_mut()
            .unwrap()
            .termination_grace_period_seconds = Some(5);
    };
    let field = "spec.containers[0].readinessProbe.terminationGracePeriodSeconds";
    assert_eq!(error_field(grace), field);
}

#[test]
fn env_var_names_must_be_non_empty() {
    let empty = |p: &mut Pod| app(p, 0).env[1].name = String::new();
    assert_eq!(error_field(empty), "spec.containers[0].env[1].name");
    let equals = |p: &mut Pod| app(p, 0).env[0].name = "A=B".into();
    assert_eq!(error_field(equals), "spec.containers[0].env[0].name");
    let both = |p: &mut Pod| {
        app(p, 0).env.push(EnvVar {
            name: "X".into(),
            value: Some("v".into()),
            value_from: Some(crate::spec::EnvVarSource::default()),
        })
    };
    assert_eq!(error_field(both), "spec.containers[0].env[2].valueFrom");
}

#[test]
fn volume_mounts_must_name_a_volume() {
    let unknown = |p: &mut Pod| app(p, 0).volume_mounts[0].name = "nope".into();
    assert_eq!(
        error_field(unknown),
        "spec.containers[0].volumeMounts[0].name"
    );
    let path = |p: &mut Pod| app(p, 0).volume_mounts[0].mount_path = String::new();
    assert_eq!(
        error_field(path),
        "spec.containers[0].volumeMounts[0].mountPath"
    );
    let twice = |p: &mut Pod| {
        app(p, 0).volume_mounts.push(VolumeMount {
            name: "data".into(),
            mount_path: "/data".into(),
            ..VolumeMount::default()
        })
    };
    assert_eq!(
        error_field(twice),
        "spec.containers[0].volumeMounts[1].mountPath"
    );
    let dup_volume = |p: &mut Pod| {
        let mut v = p.spec.volumes[0].clone();
        v.name = "data".into();
        p.spec.volumes.push(v)
    };
    assert_eq!(error_field(dup_volume), "spec.volumes[1].name");
    let nameless = |p: &mut Pod| {
        let mut v = p.spec.volumes[0].clone();
        v.name = String::new();
        p.spec.volumes.push(v)
    };
    assert_eq!(error_field(nameless), "spec.volumes[1].name");
    let sourceless = |p: &mut Pod| {
        p.spec.volumes[0].empty_dir = None;
    };
    assert_eq!(error_field(sourceless), "spec.volumes[0]");
    let relative = |p: &mut Pod| app(p, 0).volume_mounts[0].mount_path = "data".into();
    assert_eq!(
        error_field(relative),
        "spec.containers[0].volumeMounts[0].mountPath"
    );
    for bad in ["/abs", "a/../../b"] {
        let sub = |p: &mut Pod| app(p, 0).volume_mounts[0].sub_path = Some(bad.into());
        assert_eq!(
            error_field(sub),
            "spec.containers[0].volumeMounts[0].subPath"
        );
    }
    let bad_type = |p: &mut Pod| {
        p.spec.volumes[0].empty_dir = None;
        p.spec.volumes[0].host_path = Some(crate::spec::HostPathVolumeSource {
            path: "/x".into(),
            kind: Some("Fifo".into()),
        });
    };
    assert_eq!(error_field(bad_type), "spec.volumes[0].hostPath.type");
}
