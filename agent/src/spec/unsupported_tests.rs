//! The rule, enumerated: a pod with every parsed field set (built with exhaustive struct
//! literals: a field added to the spec types does not compile here until it is classified)
//! is flattened into field paths, and each path must be either honoured (the pod without the
//! refused fields is accepted) or refused (setting it alone is an error naming it).

use serde_json::Value;

use super::*;
use crate::spec::validate::validate;

/// Fields the agent acts on (a path matches an entry equal to it or below it).
const HONOURED: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "metadata.labels",
    "metadata.annotations",
    "spec.containers[0].name",
    "spec.containers[0].image",
    "spec.containers[0].imagePullPolicy",
    "spec.containers[0].command",
    "spec.containers[0].args",
    "spec.containers[0].workingDir",
    "spec.containers[0].env[0]",
    "spec.containers[0].env[1].name",
    "spec.containers[0].env[1].value",
    "spec.containers[0].env[1].valueFrom",
    "spec.containers[0].envFrom",
    "spec.containers[0].ports",
    "spec.containers[0].resources.requests.cpu",
    "spec.containers[0].resources.requests.memory",
    "spec.containers[0].resources.limits.cpu",
    "spec.containers[0].resources.limits.memory",
    "spec.containers[0].securityContext.runAsUser",
    "spec.containers[0].securityContext.runAsGroup",
    "spec.containers[0].securityContext.runAsNonRoot",
    "spec.containers[0].securityContext.allowPrivilegeEscalation",
    "spec.containers[0].securityContext.readOnlyRootFilesystem",
    "spec.containers[0].securityContext.capabilities",
    "spec.containers[0].livenessProbe",
    "spec.containers[0].readinessProbe",
    "spec.containers[0].startupProbe",
    "spec.containers[0].lifecycle.postStart",
    "spec.containers[0].lifecycle.preStop.exec",
    "spec.containers[0].lifecycle.preStop.httpGet",
    "spec.containers[0].lifecycle.preStop.sleep",
    "spec.restartPolicy",
    "spec.terminationGracePeriodSeconds",
    "spec.hostname",
    "spec.activeDeadlineSeconds",
    "spec.hostNetwork",
    "spec.hostPID",
    "spec.hostIPC",
    "spec.securityContext",
    "spec.dnsPolicy",
    "spec.dnsConfig",
    "spec.subdomain",
    "spec.hostAliases",
    "spec.imagePullSecrets",
    "spec.serviceAccountName",
    "spec.enableServiceLinks",
    "spec.volumes[0]",
    "spec.volumes[1]",
    "spec.volumes[2].name",
    "spec.volumes[2].emptyDir.medium",
    "spec.volumes[3]",
    "spec.volumes[4]",
    "spec.volumes[5]",
    "spec.volumes[6]",
    "spec.containers[0].volumeMounts[0].name",
    "spec.containers[0].volumeMounts[0].mountPath",
    "spec.containers[0].volumeMounts[0].readOnly",
    "spec.containers[0].volumeMounts[0].subPath",
    "spec.shareProcessNamespace",
    "spec.securityContext.seccompProfile",
    "spec.containers[0].securityContext.seccompProfile",
    "spec.containers[0].securityContext.privileged",
    "spec.containers[0].stdin",
    "spec.containers[0].stdinOnce",
    "spec.containers[0].tty",
];

/// Fields refused until implemented: the path set in the maximal pod, and the field the error
/// must name.
const REFUSED: &[(&str, &str)] = &[
    (
        "spec.volumes[2].emptyDir.sizeLimit",
        "spec.volumes[2].emptyDir.sizeLimit",
    ),
    ("spec.nodeName", "spec.nodeName"),
    ("spec.nodeSelector", "spec.nodeSelector"),
    (
        "spec.containers[0].volumeMounts[0].mountPropagation",
        "spec.containers[0].volumeMounts[0].mountPropagation",
    ),
    (
        "spec.containers[0].resources.requests.ephemeral-storage",
        "spec.containers[0].resources.requests.ephemeral-storage",
    ),
    (
        "spec.containers[0].resources.limits.nvidia.com/gpu",
        "spec.containers[0].resources.limits.nvidia.com/gpu",
    ),
    (
        "spec.containers[0].lifecycle.preStop.tcpSocket",
        "spec.containers[0].lifecycle.preStop.tcpSocket",
    ),
];

use super::fixture::maximal_pod;

/// Leaf paths of a JSON value, Kubernetes style (`a.b[0].c`); empty objects and arrays set
/// nothing and are skipped.
/// Every container (init or app) is classified as `spec.containers[0]`: they share one type.
fn leaves(value: &Value, at: &str, out: &mut Vec<String>) {
    let join = |key: &str| {
        if at.is_empty() {
            key.to_string()
        } else {
            format!("{at}.{key}")
        }
    };
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                leaves(v, &join(k), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let container = at == "spec.containers" || at == "spec.initContainers";
                let path = match container {
                    true => "spec.containers[0]".to_string(),
                    false => format!("{at}[{i}]"),
                };
                leaves(v, &path, out);
            }
        }
        _ => out.push(at.to_string()),
    }
}

fn under(path: &str, entry: &str) -> bool {
    path == entry
        || path
            .strip_prefix(entry)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

/// The maximal pod with the refused fields taken out (the second container's copies too).
fn without_refused() -> Pod {
    let mut pod = maximal_pod();
    for c in pod.spec.containers.iter_mut() {
        for m in c.volume_mounts.iter_mut() {
            m.mount_propagation = None;
        }
        c.resources
            .requests
            .retain(|k, _| HONOURED_RESOURCES.contains(&k.as_str()));
        c.resources
            .limits
            .retain(|k, _| HONOURED_RESOURCES.contains(&k.as_str()));
        if let Some(l) = c.lifecycle.as_mut() {
            l.pre_stop.take_if(|h| h.tcp_socket.is_some());
        }
    }
    let s = &mut pod.spec;
    if let Some(e) = s.volumes[2].empty_dir.as_mut() {
        e.size_limit = None;
    }
    s.node_name = None;
    s.node_selector.clear();
    pod
}

/// What parsing does: refuse what is not honoured, then validate.
fn check(pod: &Pod) -> Result<(), SpecError> {
    refuse_unhonoured(pod)?;
    validate(pod)
}

#[test]
fn every_parsed_field_is_honoured_or_refused() {
    let json = serde_json::to_value(maximal_pod()).expect("json");
    let mut paths = Vec::new();
    leaves(&json, "", &mut paths);
    let unclassified: Vec<&String> = paths
        .iter()
        .filter(|p| {
            !HONOURED.iter().any(|h| under(p, h)) && !REFUSED.iter().any(|(r, _)| under(p, r))
        })
        .collect();
    assert!(
        unclassified.is_empty(),
        "classify these fields as honoured or refused: {unclassified:?}"
    );
    for (entry, _) in REFUSED {
        assert!(
            paths.iter().any(|p| under(p, entry)),
            "the maximal pod must set {entry}"
        );
    }
}

#[test]
fn the_honoured_fields_together_are_accepted() {
    assert_eq!(check(&without_refused()), Ok(()));
}

#[test]
fn each_refused_field_alone_is_an_error_naming_it() {
    let maximal = serde_json::to_value(maximal_pod()).expect("json");
    let base = serde_json::to_value(without_refused()).expect("json");
    for (entry, field) in REFUSED {
        // Copy the one refused field from the maximal pod into the accepted one.
        let pointer = to_pointer(entry);
        let value = maximal.pointer(&pointer).expect(entry).clone();
        let mut pod = base.clone();
        set(&mut pod, &pointer, value);
        let pod: Pod = serde_json::from_value(pod).expect("pod");
        let err = check(&pod).expect_err(entry);
        assert_eq!(&err.field, field, "{err}");
        assert!(err.message.contains("not supported"), "{err}");
    }
}

#[test]
fn probes_of_init_containers_are_refused() {
    let mut pod = without_refused();
    pod.spec.init_containers[0].readiness_probe = pod.spec.containers[0].readiness_probe.clone();
    let err = check(&pod).expect_err("init probe");
    assert_eq!(err.field, "spec.initContainers[0].readinessProbe");
}

#[test]
fn lifecycle_hooks_of_init_containers_are_refused() {
    let mut pod = without_refused();
    pod.spec.init_containers[0].lifecycle = pod.spec.containers[0].lifecycle.clone();
    let err = check(&pod).expect_err("init hook");
    assert_eq!(err.field, "spec.initContainers[0].lifecycle");
}

#[test]
fn dns_policy_none_needs_a_nameserver() {
    let mut pod = without_refused();
    pod.spec.dns_policy = Some("None".into());
    pod.spec.dns_config = None;
    let field = check(&pod).expect_err("None without dnsConfig").field;
    assert_eq!(field, "spec.dnsConfig.nameservers");
    pod.spec.dns_config = Some(crate::spec::PodDnsConfig {
        nameservers: vec!["192.0.2.1".into()],
        ..Default::default()
    });
    check(&pod).expect("None with a nameserver");
}

/// `spec.containers[0].env[1].valueFrom` → `/spec/containers/0/env/1/valueFrom`; resource
/// names keep their dots (`limits.nvidia.com/gpu`, with `/` escaped).
fn to_pointer(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    for map in ["requests.", "limits."] {
        if let Some((head, name)) = path.split_once(&format!("resources.{map}")) {
            let escaped = name.replace('~', "~0").replace('/', "~1");
            let head = to_pointer(head.trim_end_matches('.'));
            return format!("{head}/resources/{}/{escaped}", map.trim_end_matches('.'));
        }
    }
    while !rest.is_empty() {
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        let (key, tail) = rest.split_at(end);
        if !key.is_empty() {
            out.push('/');
            out.push_str(key);
        }
        rest = tail.trim_start_matches('.');
        if let Some(idx) = rest.strip_prefix('[') {
            let close = idx.find(']').expect("closing bracket");
            out.push('/');
            out.push_str(&idx[..close]);
            rest = idx[close + 1..].trim_start_matches('.');
        }
    }
    out
}

/// Sets `pointer` in `doc`, creating objects and growing arrays on the way.
fn set(doc: &mut Value, pointer: &str, value: Value) {
    let mut cur = doc;
    let parts: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let next = if last { value.clone() } else { Value::Null };
        cur = match cur {
            Value::Array(items) => {
                let idx: usize = part.parse().expect("index");
                while items.len() <= idx {
                    items.push(Value::Object(Default::default()));
                }
                if last {
                    items[idx] = next;
                }
                &mut items[idx]
            }
            other => {
                if !other.is_object() {
                    *other = Value::Object(Default::default());
                }
                let map = other.as_object_mut().expect("object");
                let slot = map.entry(part.clone()).or_insert(Value::Null);
                if last {
                    *slot = next;
                }
                slot
            }
        };
    }
}
