//! A container's environment from its sources, kubelet's way: the Service variables
//! (`crate::service_env`) under everything, then `envFrom` (keys with an
//! invalid name skipped and reported), then `env` in order (literals expanded, `valueFrom`
//! resolved: the pod's fields, the container's resources with their divisor, ConfigMap and
//! Secret keys). A missing required object or key is an error in kubelet's words
//! (`configmap "x" not found`, `couldn't find key k in ConfigMap ns/x`), which keeps the
//! container Waiting in `CreateContainerConfigError`. Pure: objects come through a closure.

use crate::config_source::{Lookup, ObjectKind};
use crate::spec::{
    resolve_env_with, subscripted_field, Container, DownwardApiVolumeFile, EnvVarSource, Pod,
    Quantity, ResourceFieldSelector,
};

/// What the pod's fields and resources resolve against.
pub struct EnvFacts<'a> {
    pub pod: &'a Pod,
    pub uid: &'a str,
    pub node_name: &'a str,
    pub host_ips: &'a [String],
    pub pod_ips: &'a [String],
    /// The node's allocatable cpu (millicores), memory and ephemeral storage (bytes): what a
    /// `limits.*` reference gives when the container has no limit.
    pub allocatable: Allocatable,
    /// The Service variables (`crate::service_env`), under every other source.
    pub service_env: &'a [(String, String)],
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Allocatable {
    pub cpu_millis: u128,
    pub memory: u128,
    pub ephemeral_storage: u128,
}

/// The node's cpu count, memory and the agent root's filesystem size (kubelet's capacity,
/// without reservations).
pub(super) fn allocatable(root: &std::path::Path) -> Allocatable {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<u128>().ok()
        })
        .map_or(0, |kib| kib * 1024);
    let storage = nix::sys::statvfs::statvfs(root)
        .map(|s| u128::from(s.blocks()) * u128::from(s.fragment_size()))
        .unwrap_or(0);
    Allocatable {
        cpu_millis: cpus as u128 * 1000,
        memory,
        ephemeral_storage: storage,
    }
}

/// A container's resolved environment.
pub struct ContainerEnv {
    pub vars: Vec<(String, String)>,
    /// `envFrom` keys left out for not being valid variable names.
    pub invalid: Vec<String>,
}

/// The environment `container` gets from its `envFrom` and `env`.
pub fn container_env(
    facts: &EnvFacts<'_>,
    container: &Container,
    objects: &dyn Fn(ObjectKind, &str) -> Lookup,
) -> Result<ContainerEnv, String> {
    let ns = facts.pod.metadata.namespace.as_str();
    let mut base = facts.service_env.to_vec();
    let mut invalid = Vec::new();
    for from in &container.env_from {
        let (kind, r) = match (&from.config_map_ref, &from.secret_ref) {
            (Some(r), _) => (ObjectKind::ConfigMap, r),
            (None, Some(r)) => (ObjectKind::Secret, r),
            (None, None) => continue,
        };
        let data = match object(kind, ns, &r.name, objects)? {
            Some(d) => d,
            None if r.optional == Some(true) => continue,
            None => return Err(not_found(kind, &r.name)),
        };
        for (k, v) in data.iter() {
            let name = format!("{}{k}", from.prefix.as_deref().unwrap_or(""));
            if is_env_var_name(&name) {
                base.push((name, String::from_utf8_lossy(v).into_owned()));
            } else {
                invalid.push(name);
            }
        }
    }
    let vars = resolve_env_with(base, &container.env, |source| {
        value_from(facts, container, source, objects)
    })?;
    Ok(ContainerEnv { vars, invalid })
}

fn not_found(kind: ObjectKind, name: &str) -> String {
    format!("{} {name:?} not found", kind.lower())
}

/// The object's data, `None` when it does not exist.
fn object(
    kind: ObjectKind,
    ns: &str,
    name: &str,
    objects: &dyn Fn(ObjectKind, &str) -> Lookup,
) -> Result<Option<crate::config_source::ObjectData>, String> {
    match objects(kind, name) {
        Lookup::Present(d) => Ok(Some(d)),
        Lookup::Absent => Ok(None),
        Lookup::Pending => Err(format!(
            "{} {ns}/{name} not read from the API yet",
            kind.title()
        )),
        Lookup::Failed(e) => Err(format!("reading {} {ns}/{name}: {e}", kind.title())),
    }
}

fn value_from(
    facts: &EnvFacts<'_>,
    container: &Container,
    source: &EnvVarSource,
    objects: &dyn Fn(ObjectKind, &str) -> Lookup,
) -> Result<Option<String>, String> {
    let ns = facts.pod.metadata.namespace.as_str();
    let refs = [
        (ObjectKind::ConfigMap, &source.config_map_key_ref),
        (ObjectKind::Secret, &source.secret_key_ref),
    ];
    for (kind, sel) in refs {
        let Some(sel) = sel else { continue };
        let optional = sel.optional == Some(true);
        let Some(data) = object(kind, ns, &sel.name, objects)? else {
            return if optional {
                Ok(None)
            } else {
                Err(not_found(kind, &sel.name))
            };
        };
        return match data.get(&sel.key) {
            Some(v) => Ok(Some(String::from_utf8_lossy(v).into_owned())),
            None if optional => Ok(None),
            None => Err(format!(
                "couldn't find key {} in {} {ns}/{}",
                sel.key,
                kind.title(),
                sel.name
            )),
        };
    }
    if let Some(f) = &source.field_ref {
        return Ok(Some(field_value(facts, &f.field_path)));
    }
    if let Some(r) = &source.resource_field_ref {
        return resource_value(facts, container, r).map(Some);
    }
    Ok(None)
}

/// kubelet's podFieldSelectorRuntimeValue / ExtractFieldPathAsString.
fn field_value(facts: &EnvFacts<'_>, path: &str) -> String {
    let md = &facts.pod.metadata;
    if let Some((map, key)) = subscripted_field(path) {
        let map = if map == "labels" {
            &md.labels
        } else {
            &md.annotations
        };
        return map.get(key).cloned().unwrap_or_default();
    }
    match path {
        "metadata.name" => md.name.clone(),
        "metadata.namespace" => md.namespace.clone(),
        "metadata.uid" => md.uid.clone().unwrap_or_else(|| facts.uid.to_string()),
        "spec.nodeName" => facts.node_name.to_string(),
        "spec.serviceAccountName" => facts
            .pod
            .spec
            .service_account_name
            .clone()
            .unwrap_or_default(),
        "status.hostIP" => facts.host_ips.first().cloned().unwrap_or_default(),
        "status.hostIPs" => facts.host_ips.join(","),
        "status.podIP" => facts.pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => facts.pod_ips.join(","),
        _ => String::new(),
    }
}

/// A downwardAPI file's content, kubelet's way: the field's value (`metadata.labels` and
/// `metadata.annotations` as sorted `key="value"` lines), or the named container's resource
/// divided by the divisor.
pub fn downward_file(
    facts: &EnvFacts<'_>,
    item: &DownwardApiVolumeFile,
) -> Result<Vec<u8>, String> {
    let md = &facts.pod.metadata;
    if let Some(f) = &item.field_ref {
        let text = match f.field_path.as_str() {
            "metadata.labels" => format_map(&md.labels),
            "metadata.annotations" => format_map(&md.annotations),
            path => field_value(facts, path),
        };
        return Ok(text.into_bytes());
    }
    let Some(r) = &item.resource_field_ref else {
        return Err(format!("{:?}: no fieldRef or resourceFieldRef", item.path));
    };
    let name = r.container_name.as_deref().unwrap_or("");
    let container = facts
        .pod
        .spec
        .all_containers()
        .find(|(_, c)| c.name == name)
        .map(|(_, c)| c)
        .ok_or_else(|| format!("cannot find container {name:?} in pod {:?}", md.name))?;
    resource_value(facts, container, r).map(String::into_bytes)
}

/// kubelet's FormatMap: `key="value"` lines sorted by key, the value quoted (Go's `%q`), no
/// final newline.
fn format_map(map: &std::collections::BTreeMap<String, String>) -> String {
    let lines: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    lines.join("\n")
}

/// kubelet's ExtractContainerResourceValue: the value divided by the divisor (0 or unset = 1),
/// rounded up; a limit the container does not set is the node's allocatable.
fn resource_value(
    facts: &EnvFacts<'_>,
    container: &Container,
    r: &ResourceFieldSelector,
) -> Result<String, String> {
    let (kind, resource) = r.resource.split_once('.').unwrap_or(("", ""));
    let res = &container.resources;
    let set = match kind {
        "limits" => res.limits.get(resource),
        _ => res.effective_request(resource),
    };
    let milli = |q: &Quantity| q.milli_value().map_err(|e| e.to_string());
    let alloc = facts.allocatable;
    let value_milli = match (set, kind, resource) {
        (Some(q), _, _) => milli(q)?,
        (None, "limits", "cpu") => alloc.cpu_millis,
        (None, "limits", "memory") => alloc.memory * 1000,
        (None, "limits", "ephemeral-storage") => alloc.ephemeral_storage * 1000,
        (None, _, _) => 0,
    };
    let one = Quantity::new("1");
    let divisor = r.divisor.as_ref().unwrap_or(&one);
    let mut divisor_milli = milli(divisor)?;
    if divisor_milli == 0 {
        divisor_milli = 1000;
    }
    if resource == "cpu" {
        return Ok(value_milli.div_ceil(divisor_milli).to_string());
    }
    // Memory and storage: whole units (Value(), rounded up), then the division.
    let value = value_milli.div_ceil(1000);
    let divisor = divisor_milli.div_ceil(1000).max(1);
    Ok(value.div_ceil(divisor).to_string())
}

/// Kubernetes' IsEnvVarName: `[-._a-zA-Z][-._a-zA-Z0-9]*`.
pub fn is_env_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    let ok = |c: char| c.is_ascii_alphabetic() || "-._".contains(c);
    chars.next().is_some_and(ok) && chars.all(|c| ok(c) || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn pod() -> Pod {
        crate::spec::parse_pod(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: ns, labels: {app: web}, annotations: {a: b}}\nspec:\n  containers:\n  - name: c\n    image: x\n    resources: {requests: {cpu: 250m, memory: 64Mi}, limits: {memory: 128Mi}}\n",
        )
        .expect("pod")
    }

    fn facts(pod: &Pod) -> EnvFacts<'_> {
        EnvFacts {
            pod,
            uid: "u-1",
            node_name: "n1",
            host_ips: &[],
            pod_ips: &[],
            allocatable: Allocatable {
                cpu_millis: 4000,
                memory: 8 << 30,
                ephemeral_storage: 0,
            },
            service_env: &[],
        }
    }

    fn env_of(
        yaml_env: &str,
        objects: &dyn Fn(ObjectKind, &str) -> Lookup,
    ) -> Result<Vec<(String, String)>, String> {
        let mut p = pod();
        let c: Container = serde_yaml::from_str(&format!("{{name: c, image: x, resources: {{requests: {{cpu: 250m, memory: 64Mi}}, limits: {{memory: 128Mi}}}}, {yaml_env}}}")).expect("container");
        p.spec.containers[0] = c.clone();
        container_env(&facts(&p), &c, objects).map(|e| e.vars)
    }

    fn cm(kind: ObjectKind, name: &str) -> Lookup {
        match (kind, name) {
            (ObjectKind::ConfigMap, "cfg") => {
                let data = [("color", "blue"), ("1bad", "x"), ("size", "L")];
                let map = data
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()));
                Lookup::Present(Arc::new(map.collect()))
            }
            _ => Lookup::Absent,
        }
    }

    #[test]
    fn service_variables_lie_under_env_from_and_env_and_expand() {
        let mut p = pod();
        let c: Container = serde_yaml::from_str("{name: c, image: x, envFrom: [{configMapRef: {name: cfg}, prefix: S_}], env: [{name: KUBERNETES_SERVICE_PORT, value: '6443'}, {name: URL, value: 'https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)'}]}").expect("container");
        p.spec.containers[0] = c.clone();
        let services = [
            ("KUBERNETES_SERVICE_HOST".to_owned(), "10.96.0.1".to_owned()),
            ("KUBERNETES_SERVICE_PORT".to_owned(), "443".to_owned()),
            ("S_color".to_owned(), "red".to_owned()),
        ];
        let mut f = facts(&p);
        f.service_env = &services;
        let vars = container_env(&f, &c, &cm).expect("env").vars;
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT"), Some("6443"));
        assert_eq!(get("S_color"), Some("blue"));
        assert_eq!(get("URL"), Some("https://10.96.0.1:6443"));
    }

    #[test]
    fn downward_files_format_maps_and_resources_like_kubelet() {
        let mut p = pod();
        p.metadata.labels.insert("tier".into(), "a \"b\"".into());
        let item =
            |yaml: &str| -> DownwardApiVolumeFile { serde_yaml::from_str(yaml).expect("item") };
        let text = |yaml: &str| {
            String::from_utf8(downward_file(&facts(&p), &item(yaml)).expect("file")).expect("utf8")
        };
        assert_eq!(
            text("{path: l, fieldRef: {fieldPath: metadata.labels}}"),
            "app=\"web\"\ntier=\"a \\\"b\\\"\""
        );
        assert_eq!(
            text("{path: a, fieldRef: {fieldPath: metadata.annotations}}"),
            "a=\"b\""
        );
        assert_eq!(
            text("{path: n, fieldRef: {fieldPath: metadata.namespace}}"),
            "ns"
        );
        assert_eq!(
            text("{path: k, fieldRef: {fieldPath: \"metadata.labels['app']\"}}"),
            "web"
        );
        assert_eq!(
            text("{path: m, resourceFieldRef: {containerName: c, resource: limits.memory, divisor: 1Mi}}"),
            "128"
        );
        let missing = item("{path: m, resourceFieldRef: {containerName: x, resource: limits.cpu}}");
        assert!(downward_file(&facts(&p), &missing).is_err());
    }

    #[test]
    fn resources_divide_and_round_up_like_kubelet() {
        let env = env_of(
            "env: [{name: CPU, valueFrom: {resourceFieldRef: {resource: requests.cpu, divisor: 1m}}}, {name: CPU1, valueFrom: {resourceFieldRef: {resource: requests.cpu}}}, {name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}, {name: LCPU, valueFrom: {resourceFieldRef: {resource: limits.cpu}}}, {name: Z, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: '0'}}}]",
            &cm,
        )
        .expect("env");
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CPU"), Some("250"));
        assert_eq!(get("CPU1"), Some("1"));
        assert_eq!(get("MEM"), Some("128"));
        assert_eq!(get("LCPU"), Some("4"), "no limit: the node's allocatable");
        assert_eq!(get("Z"), Some("4"));
    }

    #[test]
    fn fields_config_maps_and_missing_keys_resolve_like_kubelet() {
        let env = env_of(
            "envFrom: [{prefix: CM_, configMapRef: {name: cfg}}, {secretRef: {name: gone, optional: true}}], env: [{name: N, valueFrom: {fieldRef: {fieldPath: metadata.name}}}, {name: L, valueFrom: {fieldRef: {fieldPath: \"metadata.labels['app']\"}}}, {name: NN, valueFrom: {fieldRef: {apiVersion: v1, fieldPath: spec.nodeName}}}, {name: C, valueFrom: {configMapKeyRef: {name: cfg, key: color}}}, {name: X, value: \"$(CM_size)-$(C)\"}, {name: O, valueFrom: {configMapKeyRef: {name: cfg, key: nope, optional: true}}}]",
            &cm,
        )
        .expect("env");
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            ["CM_1bad", "CM_color", "CM_size", "N", "L", "NN", "C", "X"]
        );
        assert_eq!(env[7].1, "L-blue");
        assert_eq!(env[5].1, "n1");
        assert_eq!(env[3].1, "p");
        assert_eq!(env[4].1, "web");
        let err = env_of(
            "env: [{name: C, valueFrom: {configMapKeyRef: {name: cfg, key: k}}}]",
            &cm,
        );
        assert_eq!(err, Err("couldn't find key k in ConfigMap ns/cfg".into()));
        let err = env_of(
            "env: [{name: C, valueFrom: {secretKeyRef: {name: s, key: k}}}]",
            &cm,
        );
        assert_eq!(err, Err("secret \"s\" not found".into()));
        let err = env_of("envFrom: [{configMapRef: {name: x}}]", &cm);
        assert_eq!(err, Err("configmap \"x\" not found".into()));
        assert!(!is_env_var_name("1bad") && is_env_var_name("CM_1bad") && is_env_var_name("a.b-c"));
    }
}
