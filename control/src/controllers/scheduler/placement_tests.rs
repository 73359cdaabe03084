use super::*;
use serde_json::json;

fn node(name: &str, cpu: &str, extra: Value) -> Value {
    let mut n = json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {"allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True"}]}});
    if let (Some(n), Some(e)) = (n.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            if let (Some(target), Some(add)) =
                (n.get_mut(k).and_then(Value::as_object_mut), v.as_object())
            {
                target.extend(add.clone());
            }
        }
    }
    n
}

fn candidate(node: &Value, cpu_used: i128, pods: usize, siblings: usize) -> Candidate<'_> {
    Candidate {
        node,
        requested: Requests {
            cpu_milli: cpu_used,
            memory: 0,
        },
        pods,
        siblings,
    }
}

fn pod(spec: Value) -> Value {
    let mut p = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i",
        "resources": {"requests": {"cpu": "500m", "memory": "64Mi"}}}]}});
    if let (Some(s), Some(add)) = (p["spec"].as_object_mut(), spec.as_object()) {
        s.extend(add.clone());
    }
    p
}

#[test]
fn requests_sum_containers_and_take_the_largest_init_container() {
    let p = json!({"spec": {
        "containers": [{"resources": {"requests": {"cpu": "100m"}}}, {"resources": {"limits": {"cpu": "200m", "memory": "1Mi"}}}],
        "initContainers": [{"resources": {"requests": {"cpu": "1"}}}]}});
    assert_eq!(
        requests_of(&p),
        Requests {
            cpu_milli: 1000,
            memory: 1 << 20
        }
    );
}

#[test]
fn the_least_allocated_node_wins_and_siblings_spread() {
    let (a, b) = (node("a", "2", json!({})), node("b", "2", json!({})));
    let nodes = [candidate(&a, 1500, 3, 0), candidate(&b, 0, 0, 0)];
    assert_eq!(place(&pod(json!({})), &nodes).unwrap(), "b");
    let nodes = [candidate(&a, 0, 1, 0), candidate(&b, 0, 1, 1)];
    assert_eq!(place(&pod(json!({})), &nodes).unwrap(), "a");
}

#[test]
fn no_nodes_at_all_gives_kube_schedulers_message() {
    assert_eq!(
        place(&pod(json!({})), &[]).unwrap_err(),
        "no nodes available to schedule pods"
    );
}

#[test]
fn nothing_fits_gives_kube_schedulers_message() {
    let small = node("small", "100m", json!({}));
    let tainted = node(
        "tainted",
        "4",
        json!({"spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}}),
    );
    let nodes = [candidate(&small, 0, 0, 0), candidate(&tainted, 0, 0, 0)];
    let message = place(&pod(json!({})), &nodes).unwrap_err();
    assert_eq!(
        message,
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: db}. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    );
    let tolerant = pod(
        json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]}),
    );
    assert_eq!(place(&tolerant, &nodes).unwrap(), "tainted");
    let exists = pod(json!({"tolerations": [{"operator": "Exists"}]}));
    assert_eq!(place(&exists, &nodes).unwrap(), "tainted");
}

#[test]
fn selectors_affinity_readiness_and_cordons_filter() {
    let ssd = node(
        "ssd",
        "4",
        json!({"metadata": {"labels": {"disk": "ssd", "zone": "3"}}}),
    );
    let plain = node("plain", "4", json!({}));
    let nodes = [candidate(&ssd, 0, 0, 0), candidate(&plain, 0, 0, 0)];
    assert_eq!(
        place(&pod(json!({"nodeSelector": {"disk": "ssd"}})), &nodes).unwrap(),
        "ssd"
    );
    let affinity = |op: &str, values: Value| {
        pod(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": op, "values": values}]}]}}}}),
        )
    };
    assert_eq!(place(&affinity("Gt", json!(["2"])), &nodes).unwrap(), "ssd");
    assert_eq!(
        place(&affinity("DoesNotExist", json!([])), &nodes).unwrap(),
        "plain"
    );
    let by_name = pod(
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["plain"]}]}]}}}}),
    );
    assert_eq!(place(&by_name, &nodes).unwrap(), "plain");
    let preferred = pod(
        json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}}}),
    );
    assert_eq!(
        place(
            &preferred,
            &[candidate(&plain, 0, 0, 0), candidate(&ssd, 0, 0, 0)]
        )
        .unwrap(),
        "ssd"
    );

    let mut down = node("down", "4", json!({}));
    down["status"]["conditions"][0]["status"] = json!("False");
    let cordoned = node("cordoned", "4", json!({"spec": {"unschedulable": true}}));
    let message = place(
        &pod(json!({})),
        &[candidate(&down, 0, 0, 0), candidate(&cordoned, 0, 0, 0)],
    )
    .unwrap_err();
    assert!(message.starts_with("0/2 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) were unschedulable."), "{message}");
    let full = node(
        "full",
        "4",
        json!({"status": {"allocatable": {"cpu": "4", "memory": "4Gi", "pods": "1"}}}),
    );
    let message = place(&pod(json!({})), &[candidate(&full, 0, 1, 0)]).unwrap_err();
    assert!(message.contains("1 Too many pods"), "{message}");
}
