//! Stands in for the kubelets in tests of the control process alone: no agent runs there
//! (agents join through the cluster issue's node side), so a thread reports every pod Running
//! and Ready with a pod IP through the pods' `status` subresource, with the real kubectl, as a
//! kubelet would — and finishes the graceful deletion of every pod bound to a node, as a
//! kubelet does once the containers stopped: a DELETE with `gracePeriodSeconds: 0` and the
//! pod's uid as precondition (`kubectl delete --raw`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{kubectl_with, Control};

fn items(list: &Value) -> Vec<Value> {
    list["items"].as_array().cloned().unwrap_or_default()
}

/// A stable fake pod IP in 10.244.0.0/16 for a pod name.
pub fn pod_ip(name: &str) -> String {
    let h = name.bytes().fold(2166136261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16777619)
    });
    format!("10.244.{}.{}", (h >> 8) % 250, h % 250 + 2)
}

/// Stands in for the kubelets until dropped: every pod not yet ready is reported Running and
/// Ready, except those whose image names `never-ready`.
pub struct FakeKubelets {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeKubelets {
    pub fn start(control: &Control, namespace: &str) -> FakeKubelets {
        let stop = Arc::new(AtomicBool::new(false));
        let kubeconfig = control.kubeconfig();
        let namespace = namespace.to_owned();
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let out = kubectl_with(
                    &kubeconfig,
                    &["get", "pods", "-n", &namespace, "-o", "json"],
                );
                let list: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
                for pod in items(&list) {
                    let ready = pod["status"]["conditions"].as_array().is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    });
                    let name = pod["metadata"]["name"].as_str().unwrap_or("");
                    if !pod["metadata"]["deletionTimestamp"].is_null() {
                        finalize(&kubeconfig, &namespace, &pod);
                        continue;
                    }
                    // An image named `…never-ready…` stands for a broken release: its pods
                    // are left Pending, never Ready.
                    let broken = pod["spec"]["containers"][0]["image"]
                        .as_str()
                        .is_some_and(|i| i.contains("never-ready"));
                    if ready || broken {
                        continue;
                    }
                    let now = time::OffsetDateTime::now_utc()
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default();
                    let ip = pod_ip(name);
                    let patch = serde_json::json!({"status": {"phase": "Running", "podIP": ip,
                        "podIPs": [{"ip": ip}], "conditions": [
                        {"type": "Ready", "status": "True", "lastTransitionTime": now}]}});
                    let _ = kubectl_with(
                        &kubeconfig,
                        &[
                            "patch",
                            "pod",
                            name,
                            "-n",
                            &namespace,
                            "--subresource=status",
                            "--type=merge",
                            "-p",
                            &patch.to_string(),
                        ],
                    );
                }
                std::thread::sleep(Duration::from_millis(150));
            }
        });
        FakeKubelets {
            stop,
            thread: Some(thread),
        }
    }
}

/// Deletes a terminating pod bound to a node with grace 0, conditional on its uid (once: a pod
/// already at grace 0 waits only for its finalizers).
fn finalize(kubeconfig: &std::path::Path, namespace: &str, pod: &Value) {
    let bound = pod["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    if !bound || pod["metadata"]["deletionGracePeriodSeconds"] == 0 {
        return;
    }
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("");
    let body = serde_json::json!({"gracePeriodSeconds": 0, "preconditions": {"uid": uid}});
    let dir = kubeconfig.parent().unwrap_or(std::path::Path::new("/tmp"));
    let file = dir.join(format!("finalize-{uid}.json"));
    if std::fs::write(&file, body.to_string()).is_err() {
        return;
    }
    let path = format!("/api/v1/namespaces/{namespace}/pods/{name}");
    let _ = kubectl_with(
        kubeconfig,
        &["delete", "--raw", &path, "-f", &file.to_string_lossy()],
    );
    let _ = std::fs::remove_file(&file);
}

impl Drop for FakeKubelets {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
