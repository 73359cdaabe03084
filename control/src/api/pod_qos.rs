//! A pod's QoS class as kube-apiserver sets it at create (`qos.GetPodQOS`, in
//! `status.qosClass`, which `kubectl describe pod` prints): Guaranteed when every container
//! (init containers too) has cpu and memory limits and the requests equal the limits (an
//! unset request defaults to its limit); BestEffort when no container requests or limits
//! any cpu or memory; Burstable otherwise.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::controllers::scheduler::quantity::milli;

const QOS_RESOURCES: [&str; 2] = ["cpu", "memory"];

pub fn qos_class(pod: &Value) -> &'static str {
    let spec = &pod["spec"];
    let containers = ["initContainers", "containers"]
        .into_iter()
        .flat_map(|list| spec[list].as_array().into_iter().flatten());
    let (mut requests, mut limits) = (BTreeMap::new(), BTreeMap::new());
    let mut guaranteed = true;
    for container in containers {
        let resources = &container["resources"];
        let positive = |kind: &str, name: &str| {
            resources[kind][name]
                .as_str()
                .and_then(milli)
                .filter(|v| *v > 0)
        };
        let mut limited = 0;
        for name in QOS_RESOURCES {
            let limit = positive("limits", name);
            if let Some(request) = positive("requests", name).or(limit) {
                *requests.entry(name).or_insert(0) += request;
            }
            if let Some(limit) = limit {
                *limits.entry(name).or_insert(0) += limit;
                limited += 1;
            }
        }
        guaranteed &= limited == QOS_RESOURCES.len();
    }
    match (
        requests.is_empty() && limits.is_empty(),
        guaranteed && requests == limits,
    ) {
        (true, _) => "BestEffort",
        (false, true) => "Guaranteed",
        (false, false) => "Burstable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(resources: &[Value]) -> Value {
        let containers: Vec<Value> = resources
            .iter()
            .enumerate()
            .map(|(i, r)| json!({"name": format!("c{i}"), "resources": r}))
            .collect();
        json!({"spec": {"containers": containers}})
    }

    #[test]
    fn classes_follow_kubernetes_rules() {
        assert_eq!(qos_class(&pod(&[json!({})])), "BestEffort");
        let both = json!({"limits": {"cpu": "500m", "memory": "64Mi"}});
        assert_eq!(qos_class(&pod(std::slice::from_ref(&both))), "Guaranteed");
        let equal = json!({"limits": {"cpu": "1", "memory": "1Gi"},
            "requests": {"cpu": "1000m", "memory": "1Gi"}});
        assert_eq!(qos_class(&pod(&[equal, both.clone()])), "Guaranteed");
        let less = json!({"limits": {"cpu": "1", "memory": "1Gi"},
            "requests": {"cpu": "100m", "memory": "1Gi"}});
        assert_eq!(qos_class(&pod(&[less])), "Burstable");
        let cpu_only = json!({"requests": {"cpu": "100m"}});
        assert_eq!(qos_class(&pod(&[cpu_only])), "Burstable");
        assert_eq!(qos_class(&pod(&[both, json!({})])), "Burstable");
        let other = json!({"limits": {"ephemeral-storage": "1Gi"}});
        assert_eq!(qos_class(&pod(&[other])), "BestEffort");
    }
}
