//! The Job controller through the real kubectl: `kubectl create job` runs to Complete
//! (`kubectl wait --for=condition=complete`), completions/parallelism bound the pods, a failure
//! past `backoffLimit` fails the Job, `activeDeadlineSeconds` stops one that runs too long,
//! `ttlSecondsAfterFinished` deletes a finished Job, and the features the controller does not
//! carry out are refused by name.
//!
//! No agent runs here: a thread stands in for the kubelets and ends every pod of a Job whose
//! name starts with `ok` as Succeeded and `bad` as Failed, and leaves `slow` running.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{kubectl_with, ok, stderr, Control};
use serde_json::{json, Value};

struct FinishingKubelets {
    stop: Arc<AtomicBool>,
    most_active: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FinishingKubelets {
    fn start(control: &Control) -> FinishingKubelets {
        let stop = Arc::new(AtomicBool::new(false));
        let most_active = Arc::new(AtomicUsize::new(0));
        let (flag, most) = (Arc::clone(&stop), Arc::clone(&most_active));
        let kubeconfig = control.kubeconfig();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let out = kubectl_with(&kubeconfig, &["get", "pods", "-o", "json"]);
                let list: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
                let pods = list["items"].as_array().cloned().unwrap_or_default();
                let running = |p: &&Value| {
                    !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
                };
                let active_of_many = pods
                    .iter()
                    .filter(running)
                    .filter(|p| p["metadata"]["labels"]["job-name"] == "ok-many")
                    .count();
                most.fetch_max(active_of_many, Ordering::Relaxed);
                for pod in pods.iter().filter(running) {
                    let job = pod["metadata"]["labels"]["job-name"].as_str().unwrap_or("");
                    let (phase, code) = if job.starts_with("ok") {
                        ("Succeeded", 0)
                    } else if job.starts_with("bad") {
                        ("Failed", 1)
                    } else {
                        continue;
                    };
                    let now = time::OffsetDateTime::now_utc()
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default();
                    let patch = json!({"status": {"phase": phase, "containerStatuses": [{"name": "c", "image": "busybox",
                        "imageID": "", "ready": false, "restartCount": 0,
                        "state": {"terminated": {"exitCode": code, "startedAt": now, "finishedAt": now}}}]}});
                    let name = pod["metadata"]["name"].as_str().unwrap_or("");
                    let _ = kubectl_with(
                        &kubeconfig,
                        &[
                            "patch",
                            "pod",
                            name,
                            "--subresource=status",
                            "--type=merge",
                            "-p",
                            &patch.to_string(),
                        ],
                    );
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        FinishingKubelets {
            stop,
            most_active,
            thread: Some(thread),
        }
    }
}

impl Drop for FinishingKubelets {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn apply(control: &Control, name: &str, object: &Value) -> std::process::Output {
    let file = control.dir.path().join(format!("{name}.json"));
    std::fs::write(&file, object.to_string()).expect("write");
    control.kubectl(&["apply", "-f", file.to_str().expect("utf-8")])
}

fn job(name: &str, spec: Value) -> Value {
    let mut j = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}});
    if let (Some(s), Some(add)) = (j["spec"].as_object_mut(), spec.as_object()) {
        s.extend(add.clone());
    }
    j
}

fn condition(control: &Control, job: &str, kind: &str) -> Value {
    let out = control.kubectl(&["get", "job", job, "-o", "json"]);
    let j: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    j["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == kind)
        .cloned()
        .unwrap_or(Value::Null)
}

fn wait_until(what: &str, control: &Control, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "not within 30 s: {what}\nserver log:\n{}",
            control.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn jobs_complete_fail_time_out_and_expire() {
    let control = Control::start();
    let kubelets = FinishingKubelets::start(&control);

    ok(control.kubectl(&["create", "job", "ok-one", "--image=busybox", "--", "true"]));
    ok(control.kubectl(&[
        "wait",
        "--for=condition=complete",
        "job/ok-one",
        "--timeout=30s",
    ]));
    let table = ok(control.kubectl(&["get", "job", "ok-one"]));
    assert!(
        table.contains("Complete") && table.contains("1/1"),
        "{table}"
    );
    let j: Value =
        serde_json::from_str(&ok(control.kubectl(&["get", "job", "ok-one", "-o", "json"])))
            .expect("JSON");
    assert_eq!(j["status"]["succeeded"], 1);
    assert!(
        j["status"]["completionTime"].is_string() && j["status"]["startTime"].is_string(),
        "{j:#}"
    );
    let uid = j["metadata"]["uid"].as_str().unwrap_or("");
    assert_eq!(
        j["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
        uid
    );

    ok(apply(
        &control,
        "many",
        &job("ok-many", json!({"completions": 4, "parallelism": 2})),
    ));
    ok(control.kubectl(&[
        "wait",
        "--for=condition=complete",
        "job/ok-many",
        "--timeout=30s",
    ]));
    let pods = ok(control.kubectl(&["get", "pods", "-l", "job-name=ok-many", "-o", "name"]));
    assert_eq!(pods.lines().count(), 4, "{pods}");
    assert!(
        kubelets.most_active.load(Ordering::Relaxed) <= 2,
        "parallelism 2 was exceeded"
    );

    ok(apply(
        &control,
        "bad",
        &job("bad", json!({"backoffLimit": 0})),
    ));
    wait_until("the failing Job is Failed", &control, || {
        let c = condition(&control, "bad", "Failed");
        c["status"] == "True" && c["reason"] == "BackoffLimitExceeded"
    });

    ok(apply(
        &control,
        "slow",
        &job("slow", json!({"activeDeadlineSeconds": 2})),
    ));
    wait_until(
        "the slow Job hits its deadline and its pod goes",
        &control,
        || {
            condition(&control, "slow", "Failed")["reason"] == "DeadlineExceeded"
                && ok(control.kubectl(&["get", "pods", "-l", "job-name=slow", "-o", "name"]))
                    .is_empty()
        },
    );

    ok(apply(
        &control,
        "ttl",
        &job("ok-ttl", json!({"ttlSecondsAfterFinished": 1})),
    ));
    wait_until(
        "the finished Job is deleted after its TTL",
        &control,
        || stderr(&control.kubectl(&["get", "job", "ok-ttl"])).contains("NotFound"),
    );

    let indexed = apply(
        &control,
        "indexed",
        &job(
            "indexed",
            json!({"completionMode": "Indexed", "completions": 2}),
        ),
    );
    assert!(
        stderr(&indexed).contains("spec.completionMode"),
        "{}",
        stderr(&indexed)
    );
    let always = apply(
        &control,
        "always",
        &json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "always"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}),
    );
    assert!(
        stderr(&always).contains("spec.template.spec.restartPolicy"),
        "{}",
        stderr(&always)
    );
}
