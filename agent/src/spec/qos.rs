//! Quality-of-service class of a pod, by Kubernetes' rules (`GetPodQOS`): it decides cgroup
//! placement and OOM score. Pure computation over the spec; it never reads cgroups.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::pod::PodSpec;
use super::quantity::Quantity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

const QOS_RESOURCES: [&str; 2] = ["cpu", "memory"];

/// The pod's QoS class. A resource's limit stands in for an unset request (API defaulting).
/// Guaranteed: every container, init containers included, has cpu and memory limits equal to
/// its requests. BestEffort: no container requests or limits any cpu or memory. Otherwise
/// Burstable. Quantities that do not parse count as unset (validated pods have none).
pub fn qos_class(spec: &PodSpec) -> QosClass {
    let mut requests: BTreeMap<&str, u128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, u128> = BTreeMap::new();
    let mut guaranteed = true;
    for container in spec.init_containers.iter().chain(&spec.containers) {
        let resources = &container.resources;
        let mut limited = 0;
        for name in QOS_RESOURCES {
            let positive =
                |q: Option<&Quantity>| q.and_then(|q| q.milli_value().ok()).filter(|&v| v > 0);
            if let Some(request) = positive(resources.effective_request(name)) {
                *requests.entry(name).or_default() += request;
            }
            if let Some(limit) = positive(resources.limits.get(name)) {
                *limits.entry(name).or_default() += limit;
                limited += 1;
            }
        }
        if limited < QOS_RESOURCES.len() {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return QosClass::BestEffort;
    }
    if guaranteed && requests == limits {
        return QosClass::Guaranteed;
    }
    QosClass::Burstable
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::pod::{Container, ResourceRequirements};

    /// `"cpu=1,memory=1Gi"` → a resource map.
    fn map(spec: &str) -> BTreeMap<String, Quantity> {
        let pairs = spec.split(',').filter(|s| !s.is_empty());
        pairs
            .map(|kv| kv.split_once('=').unwrap())
            .map(|(k, v)| (k.to_string(), Quantity::from(v)))
            .collect()
    }

    fn container(requests: &str, limits: &str) -> Container {
        Container {
            name: "c".into(),
            image: "i".into(),
            resources: ResourceRequirements {
                requests: map(requests),
                limits: map(limits),
            },
            ..Container::default()
        }
    }

    fn spec(init: Vec<Container>, app: Vec<Container>) -> PodSpec {
        PodSpec {
            init_containers: init,
            containers: app,
            ..PodSpec::default()
        }
    }

    #[test]
    fn qos_classes_follow_kubernetes_rules() {
        use QosClass::*;
        let full = "cpu=1,memory=1Gi";
        let table = [
            (
                "nothing set",
                spec(vec![], vec![container("", "")]),
                BestEffort,
            ),
            (
                "zero quantities",
                spec(vec![], vec![container("cpu=0", "memory=0")]),
                BestEffort,
            ),
            (
                "other resources only",
                spec(vec![], vec![container("", "nvidia.com/gpu=1")]),
                BestEffort,
            ),
            (
                "limits equal requests",
                spec(vec![], vec![container(full, full)]),
                Guaranteed,
            ),
            (
                "limits imply requests",
                spec(vec![], vec![container("", full)]),
                Guaranteed,
            ),
            (
                "same value, other units",
                spec(vec![], vec![container("cpu=1000m,memory=1024Mi", full)]),
                Guaranteed,
            ),
            (
                "request below limit",
                spec(vec![], vec![container("cpu=500m,memory=1Gi", full)]),
                Burstable,
            ),
            (
                "memory limit missing",
                spec(vec![], vec![container("cpu=1", "cpu=1")]),
                Burstable,
            ),
            (
                "requests only",
                spec(vec![], vec![container("cpu=100m", "")]),
                Burstable,
            ),
            (
                "one container best effort",
                spec(vec![], vec![container(full, full), container("", "")]),
                Burstable,
            ),
            (
                "init container best effort",
                spec(vec![container("", "")], vec![container(full, full)]),
                Burstable,
            ),
            (
                "init container guaranteed too",
                spec(vec![container(full, full)], vec![container(full, full)]),
                Guaranteed,
            ),
            (
                "init container burstable",
                spec(vec![container("cpu=1", "")], vec![container("", "")]),
                Burstable,
            ),
        ];
        for (name, spec, want) in table {
            assert_eq!(qos_class(&spec), want, "{name}");
        }
    }
}
