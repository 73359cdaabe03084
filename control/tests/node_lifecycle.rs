//! The node lifecycle controller through the real kubectl, with short timings
//! (`--node-monitor-grace-period 5s --pod-eviction-timeout 3s`): two nodes renew their Leases
//! (a thread stands in for their kubelets); one stops. It turns Unknown with the unreachable
//! taints, its pod turns not ready, and after the eviction timeout the pod is marked for deletion
//! (Terminating: no kubelet finishes it) and its ReplicaSet's replacement lands on the node that
//! is still alive; the out-of-service taint has the pod garbage collector force-delete it. When
//! the lost node renews again, the taints go. The grace is 5 s, not less: the stand-in kubelets
//! renew through kubectl processes, which a loaded machine can slow past 2 s.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{kubectl_with, ok, Control};
use serde_json::{json, Value};

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn apply(control: &Control, name: &str, object: &Value) {
    let file = control.dir.path().join(format!("{name}.json"));
    std::fs::write(&file, object.to_string()).expect("write");
    ok(control.kubectl(&["apply", "-f", file.to_str().expect("utf-8")]));
}

fn register(control: &Control, name: &str) {
    apply(
        control,
        name,
        &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}),
    );
    let status = json!({"status": {
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "lastHeartbeatTime": now(), "lastTransitionTime": now()}]}});
    ok(control.kubectl(&[
        "patch",
        "node",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &status.to_string(),
    ]));
}

/// Renews the Leases of the nodes whose flag is set, every 500 ms, until dropped.
struct Heartbeats {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Heartbeats {
    fn start(control: &Control, nodes: Vec<(String, Arc<AtomicBool>)>) -> Heartbeats {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let kubeconfig = control.kubeconfig();
        let dir = control.dir.path().to_owned();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                for (node, alive) in &nodes {
                    if !alive.load(Ordering::Relaxed) {
                        continue;
                    }
                    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                        "metadata": {"name": node, "namespace": "kube-node-lease"},
                        "spec": {"holderIdentity": node, "leaseDurationSeconds": 40,
                                 "renewTime": time::OffsetDateTime::now_utc()
                                     .format(&time::format_description::well_known::Rfc3339).unwrap_or_default()}});
                    let file = dir.join(format!("lease-{node}.json"));
                    let _ = std::fs::write(&file, lease.to_string());
                    let _ =
                        kubectl_with(&kubeconfig, &["apply", "-f", file.to_str().unwrap_or("")]);
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        Heartbeats {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Heartbeats {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn get(control: &Control, what: &str) -> Value {
    serde_json::from_str(&ok(control.kubectl(&["get", what, "-o", "json"]))).expect("JSON")
}

fn wait_until(what: &str, control: &Control, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(40);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "not within 40 s: {what}\nserver log:\n{}",
            control.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn taint_keys(node: &Value) -> Vec<String> {
    node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            format!(
                "{}:{}",
                t["key"].as_str().unwrap_or(""),
                t["effect"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[test]
fn a_lost_node_goes_unknown_and_its_pods_are_replaced_elsewhere() {
    let control = Control::start_with(&[
        "--node-monitor-grace-period",
        "5s",
        "--pod-eviction-timeout",
        "3s",
    ]);
    let (alive_a, alive_b) = (
        Arc::new(AtomicBool::new(true)),
        Arc::new(AtomicBool::new(true)),
    );
    let _beats = Heartbeats::start(
        &control,
        vec![
            ("a".into(), Arc::clone(&alive_a)),
            ("b".into(), Arc::clone(&alive_b)),
        ],
    );
    register(&control, "a");
    register(&control, "b");
    // A node is tainted not-ready until the lifecycle controller sees its Ready condition (as
    // kube's is): only once both are clear can the ReplicaSet spread over them.
    wait_until("both nodes without taints", &control, || {
        ["node/a", "node/b"]
            .iter()
            .all(|n| taint_keys(&get(&control, n)).is_empty())
    });
    let labels = json!({"app": "web"});
    apply(
        &control,
        "rs",
        &json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}),
    );
    let on = |node: &str| -> Vec<Value> {
        get(&control, "pods")["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p["spec"]["nodeName"] == node)
            .collect()
    };
    wait_until("one pod on each node", &control, || {
        on("a").len() == 1 && on("b").len() == 1
    });
    let lost_pod = on("b")[0]["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_owned();

    alive_b.store(false, Ordering::Relaxed);
    wait_until("b is Unknown with the unreachable taints", &control, || {
        let b = get(&control, "node/b");
        let ready = b["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Ready")
            .cloned()
            .unwrap_or_default();
        ready["status"] == "Unknown"
            && ready["message"] == "Kubelet stopped posting node status."
            && taint_keys(&b)
                == [
                    "node.kubernetes.io/unreachable:NoSchedule",
                    "node.kubernetes.io/unreachable:NoExecute",
                ]
    });
    let table = ok(control.kubectl(&["get", "node", "b"]));
    assert!(table.contains("NotReady"), "{table}");
    // Its kubelet being gone, the evicted pod stays Terminating (as in Kubernetes) until the
    // node comes back or is removed; the ReplicaSet no longer counts it.
    wait_until(
        "the lost pod is marked for deletion and replaced on a",
        &control,
        || {
            let pods = get(&control, "pods")["items"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            pods.iter()
                .filter(|p| p["metadata"]["name"] == lost_pod.as_str())
                .all(|p| !p["metadata"]["deletionTimestamp"].is_null())
                && on("a").len() == 2
        },
    );
    let events = ok(control.kubectl(&[
        "get",
        "events",
        "-A",
        "-o",
        "jsonpath={range .items[*]}{.reason}{\"\\n\"}{end}",
    ]));
    assert!(
        events.contains("TaintManagerEviction") && events.contains("NodeNotReady"),
        "{events}"
    );

    // The administrator declares b shut down for good (the out-of-service taint): the pod
    // garbage collector force-deletes its terminating pod.
    ok(control.kubectl(&[
        "taint",
        "node",
        "b",
        "node.kubernetes.io/out-of-service=nodeshutdown:NoExecute",
    ]));
    wait_until(
        "the terminating pod of the out-of-service node is force-deleted",
        &control,
        || {
            !get(&control, "pods")["items"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["metadata"]["name"] == lost_pod.as_str())
        },
    );
    ok(control.kubectl(&["taint", "node", "b", "node.kubernetes.io/out-of-service-"]));

    // b comes back: its kubelet posts Ready again and renews; the taints go.
    alive_b.store(true, Ordering::Relaxed);
    register(&control, "b");
    wait_until("b's taints are gone", &control, || {
        taint_keys(&get(&control, "node/b")).is_empty()
    });
}
