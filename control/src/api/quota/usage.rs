//! What an object counts against a ResourceQuota, as kube's quota evaluators count it, in
//! milli-units: `count/<resource>[.<group>]` for every object; `pods`, `requests.*`/`limits.*`
//! (and `cpu`/`memory`, the same as their requests) for a pod that has not finished;
//! `services`, `services.loadbalancers`, `services.nodeports`; `configmaps`, `secrets`,
//! `resourcequotas`; `persistentvolumeclaims` and `requests.storage`, also per storage class
//! (`<class>.storageclass.storage.k8s.io/…`). Quantities print back in kube's canonical form.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::controllers::scheduler::quantity::milli;
use crate::kinds::{self, Resource};

/// Usage in milli-units by quota resource name.
pub type Usage = BTreeMap<String, i128>;

const ONE: i128 = 1000;

/// The resource names whose usage is the sum of the pod's containers' requests or limits.
const COMPUTE: [(&str, &str, &str); 6] = [
    ("requests", "cpu", "requests.cpu"),
    ("requests", "cpu", "cpu"),
    ("requests", "memory", "requests.memory"),
    ("requests", "memory", "memory"),
    ("limits", "cpu", "limits.cpu"),
    ("limits", "memory", "limits.memory"),
];

/// The `count/…` name of a resource.
pub fn count_name(resource: &Resource) -> String {
    match resource.group {
        "" => format!("count/{}", resource.plural),
        group => format!("count/{}.{group}", resource.plural),
    }
}

/// Whether a pod still counts (not Succeeded or Failed).
pub fn pod_counts(pod: &Value) -> bool {
    !matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

/// A container's amount of `kind` (requests or limits) of `name`; a request left out where a
/// limit is set is the limit, as API defaulting makes it.
fn container_amount(container: &Value, kind: &str, name: &str) -> Option<i128> {
    let resources = &container["resources"];
    let text = resources[kind][name].as_str().or_else(|| {
        (kind == "requests")
            .then(|| resources["limits"][name].as_str())
            .flatten()
    })?;
    milli(text)
}

/// The pod's amount of (`kind`, `name`): its containers' sum, or its largest init container's
/// when more; `None` when no container states it.
fn pod_amount(pod: &Value, kind: &str, name: &str) -> Option<i128> {
    let spec = &pod["spec"];
    let sum = spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| container_amount(c, kind, name))
        .reduce(|a, b| a + b);
    let init = spec["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| container_amount(c, kind, name))
        .max();
    match (sum, init) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// What `object` of `resource` counts.
pub fn usage_of(resource: &Resource, object: &Value) -> Usage {
    let mut usage = Usage::new();
    usage.insert(count_name(resource), ONE);
    let spec = &object["spec"];
    match (resource.group, resource.kind) {
        ("", "Pod") if pod_counts(object) => {
            usage.insert("pods".to_owned(), ONE);
            for (kind, name, quota) in COMPUTE {
                if let Some(amount) = pod_amount(object, kind, name) {
                    usage.insert(quota.to_owned(), amount);
                }
            }
        }
        ("", "Service") => {
            usage.insert("services".to_owned(), ONE);
            let kind = spec["type"].as_str().unwrap_or("ClusterIP");
            let ports = spec["ports"].as_array().map_or(0, Vec::len) as i128;
            if kind == "LoadBalancer" {
                usage.insert("services.loadbalancers".to_owned(), ONE);
            }
            let node_ports = kind == "NodePort"
                || (kind == "LoadBalancer" && spec["allocateLoadBalancerNodePorts"] != false);
            if node_ports {
                usage.insert("services.nodeports".to_owned(), ports * ONE);
            }
        }
        ("", "ConfigMap") => {
            usage.insert("configmaps".to_owned(), ONE);
        }
        ("", "Secret") => {
            usage.insert("secrets".to_owned(), ONE);
        }
        ("", "ResourceQuota") => {
            usage.insert("resourcequotas".to_owned(), ONE);
        }
        ("", "PersistentVolumeClaim") => {
            let storage = spec["resources"]["requests"]["storage"]
                .as_str()
                .and_then(milli)
                .unwrap_or(0);
            usage.insert("persistentvolumeclaims".to_owned(), ONE);
            usage.insert("requests.storage".to_owned(), storage);
            if let Some(class) = spec["storageClassName"].as_str().filter(|c| !c.is_empty()) {
                let prefix = format!("{class}.storageclass.storage.k8s.io/");
                usage.insert(format!("{prefix}persistentvolumeclaims"), ONE);
                usage.insert(format!("{prefix}requests.storage"), storage);
            }
        }
        _ => {}
    }
    usage
}

/// The kind whose objects the quota resource `name` counts.
pub fn counted_kind(name: &str) -> Option<&'static Resource> {
    let core = |plural| kinds::find("", "v1", plural);
    if let Some(rest) = name.strip_prefix("count/") {
        let (plural, group) = rest.split_once('.').unwrap_or((rest, ""));
        return kinds::RESOURCES
            .iter()
            .find(|r| r.plural == plural && r.group == group && r.namespaced());
    }
    let per_class = name
        .split_once(".storageclass.storage.k8s.io/")
        .is_some_and(|(_, what)| matches!(what, "requests.storage" | "persistentvolumeclaims"));
    if per_class || name == "requests.storage" {
        return core("persistentvolumeclaims");
    }
    match name {
        "pods" | "cpu" | "memory" | "requests.cpu" | "requests.memory" | "limits.cpu"
        | "limits.memory" => core("pods"),
        "services" | "services.loadbalancers" | "services.nodeports" => core("services"),
        "configmaps" => core("configmaps"),
        "secrets" => core("secrets"),
        "persistentvolumeclaims" => core("persistentvolumeclaims"),
        "resourcequotas" => core("resourcequotas"),
        _ => None,
    }
}

/// `a + b` for every name of either.
pub fn add(a: &mut Usage, b: &Usage) {
    for (name, amount) in b {
        *a.entry(name.clone()).or_default() += amount;
    }
}

/// A quantity in kube's canonical form: `500m`, `2`, `1k`, `128Mi` (memory and storage in
/// binary units when they divide evenly).
pub fn format(name: &str, milli_units: i128) -> String {
    if milli_units % 1000 != 0 {
        return format!("{milli_units}m");
    }
    let value = milli_units / 1000;
    if value == 0 {
        return "0".to_owned();
    }
    let bytes = name.contains("memory") || name.contains("storage");
    if bytes && value % 1024 == 0 {
        let mut n = value;
        let mut suffix = "";
        for next in ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"] {
            if n % 1024 != 0 {
                break;
            }
            n /= 1024;
            suffix = next;
        }
        return format!("{n}{suffix}");
    }
    let mut n = value;
    let mut suffix = "";
    for next in ["k", "M", "G", "T", "P", "E"] {
        if n % 1000 != 0 {
            break;
        }
        n /= 1000;
        suffix = next;
    }
    format!("{n}{suffix}")
}

/// A resource list (`{"pods": "2"}`) in milli-units; names whose value does not parse are left
/// out.
pub fn parse_list(list: &Value) -> Usage {
    list.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, v)| Some((name.clone(), milli(v.as_str()?)?)))
        .collect()
}

/// A usage as a resource list.
pub fn to_list(usage: &Usage) -> Value {
    Value::Object(
        usage
            .iter()
            .map(|(name, amount)| (name.clone(), Value::from(format(name, *amount))))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::kinds;

    #[test]
    fn pods_count_their_containers_and_finished_pods_only_their_object() {
        let pods = kinds::find("", "v1", "pods").unwrap();
        let pod = json!({"spec": {
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "500m"}}},
                {"name": "b", "resources": {"limits": {"cpu": "1", "memory": "64Mi"}}}],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}]},
            "status": {"phase": "Running"}});
        let usage = usage_of(pods, &pod);
        assert_eq!(usage["pods"], 1000);
        assert_eq!(usage["count/pods"], 1000);
        assert_eq!(
            usage["requests.cpu"], 2000,
            "the init container's 2 is more than 1.25"
        );
        assert_eq!(usage["limits.cpu"], 1500);
        assert_eq!(format("requests.memory", usage["requests.memory"]), "128Mi");
        let mut done = pod.clone();
        done["status"]["phase"] = json!("Succeeded");
        assert_eq!(
            usage_of(pods, &done).keys().collect::<Vec<_>>(),
            ["count/pods"]
        );
    }

    #[test]
    fn services_claims_and_counts() {
        let services = kinds::find("", "v1", "services").unwrap();
        let lb = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}});
        let usage = usage_of(services, &lb);
        assert_eq!(
            (
                usage["services"],
                usage["services.loadbalancers"],
                usage["services.nodeports"]
            ),
            (1000, 1000, 2000)
        );
        let claims = kinds::find("", "v1", "persistentvolumeclaims").unwrap();
        let claim = json!({"spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "1Gi"}}}});
        let usage = usage_of(claims, &claim);
        assert_eq!(
            format(
                "requests.storage",
                usage["fast.storageclass.storage.k8s.io/requests.storage"]
            ),
            "1Gi"
        );
        let deployments = kinds::find("apps", "v1", "deployments").unwrap();
        assert_eq!(
            usage_of(deployments, &json!({})).keys().collect::<Vec<_>>(),
            ["count/deployments.apps"]
        );
    }

    #[test]
    fn quota_resources_name_the_kinds_they_count() {
        let plural = |name: &str| counted_kind(name).map(|r| r.plural);
        assert_eq!(plural("requests.cpu"), Some("pods"));
        assert_eq!(plural("limits.memory"), Some("pods"));
        assert_eq!(plural("services.nodeports"), Some("services"));
        assert_eq!(
            plural("fast.storageclass.storage.k8s.io/requests.storage"),
            Some("persistentvolumeclaims")
        );
        assert_eq!(plural("count/deployments.apps"), Some("deployments"));
        assert_eq!(plural("count/widgets.example.com"), None);
        assert_eq!(plural("requests.ephemeral-storage"), None);
    }

    #[test]
    fn quantities_print_canonically() {
        assert_eq!(format("cpu", 500), "500m");
        assert_eq!(format("cpu", 2000), "2");
        assert_eq!(format("pods", 1_000_000), "1k");
        assert_eq!(format("memory", (1 << 30) * 1000), "1Gi");
        assert_eq!(format("memory", 1_000_000_000 * 1000), "1G");
        assert_eq!(format("pods", 0), "0");
    }
}
