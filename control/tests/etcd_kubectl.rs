//! The real kubectl against bosun-control over a real 3-member etcd (Debian's etcd-server on
//! loopback): the etcd leader is killed in the middle of a run of `kubectl create`, later
//! started again. A write kubectl saw succeed is never lost; a write that failed while etcd
//! elected a new leader failed with an error and succeeds when retried, as a user would; the
//! restarted member catches up and the API answers from the whole cluster. `kubectl get cs`
//! shows the killed member Unhealthy, and every member Healthy again once it is back; then
//! watches and the controllers work again.

mod etcd_cluster;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const CONTROL: &str = env!("CARGO_BIN_EXE_bosun-control");

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path, endpoints: &str) -> (Process, PathBuf) {
    let log = std::fs::File::create(dir.join("control.log")).expect("log");
    let child = Command::new(CONTROL)
        .arg("--data-dir")
        .arg(dir)
        .args(["--secure-port", "0", "--etcd-endpoints", endpoints])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn bosun-control");
    let kubeconfig = dir.join("admin.kubeconfig");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !kubeconfig.exists() {
        assert!(Instant::now() < deadline, "no kubeconfig within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Process(child), kubeconfig)
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", kubeconfig.parent().unwrap_or(Path::new("/tmp")))
        .arg("--request-timeout=10s")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("kubectl")
}

#[test]
fn kubectl_writes_survive_the_etcd_leader_killed_and_restarted() {
    let mut etcd = etcd_cluster::Cluster::start(3);
    let endpoints = etcd.endpoints().join(",");
    let dir = tempfile::tempdir().expect("temp dir");
    let (_control, kubeconfig) = start(dir.path(), &endpoints);
    let ready = Instant::now() + Duration::from_secs(20);
    while !kubectl(&kubeconfig, &["get", "--raw", "/readyz"])
        .status
        .success()
    {
        assert!(Instant::now() < ready, "not ready within 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }

    const WRITES: usize = 40;
    let mut killed = None;
    let mut failures = Vec::new();
    for i in 0..WRITES {
        if i == 15 {
            let leader = etcd.leader().expect("a leader");
            etcd.kill(leader);
            killed = Some(leader);
            // `kubectl get cs` asks each member on its own: the killed one answers nothing.
            let name = format!("etcd-{leader}");
            let cs = kubectl(&kubeconfig, &["get", "cs", &name]);
            let row = String::from_utf8_lossy(&cs.stdout).into_owned();
            assert!(
                row.lines()
                    .any(|l| l.starts_with(&name) && l.contains("Unhealthy")),
                "{row}{}",
                String::from_utf8_lossy(&cs.stderr)
            );
        }
        if i == 30 {
            if let Some(n) = killed {
                etcd.restart(n);
            }
        }
        let name = format!("cm-{i}");
        let value = format!("k=v{i}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = kubectl(
                &kubeconfig,
                &["create", "configmap", &name, "--from-literal", &value],
            );
            if out.status.success() {
                break;
            }
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            // A retry of a create whose first attempt did land finds it there.
            if err.contains("AlreadyExists") || err.contains("already exists") {
                break;
            }
            assert!(!err.is_empty(), "a failed write says why");
            failures.push(format!("{name}: {err}"));
            assert!(
                Instant::now() < deadline,
                "{name} not written within 30 s: {failures:#?}\ncontrol log:\n{}",
                std::fs::read_to_string(dir.path().join("control.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    eprintln!(
        "{} failed attempts while etcd changed leader",
        failures.len()
    );

    // Every write is there, with its value, and nothing else.
    let list = kubectl(&kubeconfig, &["get", "configmaps", "-o", "json"]);
    assert!(list.status.success());
    let list: Value = serde_json::from_slice(&list.stdout).expect("json");
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let ours: Vec<&Value> = items
        .iter()
        .filter(|c| {
            c["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("cm-"))
        })
        .collect();
    assert_eq!(ours.len(), WRITES, "{list:#}");
    for i in 0..WRITES {
        let cm = ours
            .iter()
            .find(|c| c["metadata"]["name"] == format!("cm-{i}").as_str())
            .unwrap_or_else(|| panic!("cm-{i} lost"));
        assert_eq!(cm["data"]["k"], format!("v{i}"));
    }
    // The restarted member is healthy again and the API keeps serving.
    if let Some(n) = killed {
        etcd.wait_healthy(n);
    }
    let healthy = Instant::now() + Duration::from_secs(20);
    loop {
        let cs = kubectl(&kubeconfig, &["get", "cs"]);
        let table = String::from_utf8_lossy(&cs.stdout).into_owned();
        let members: Vec<&str> = table.lines().filter(|l| l.starts_with("etcd-")).collect();
        if members.len() == 3 && members.iter().all(|l| l.contains(" Healthy ")) {
            break;
        }
        assert!(
            Instant::now() < healthy,
            "the etcd members not all healthy in `kubectl get cs`:\n{table}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = kubectl(&kubeconfig, &["delete", "configmap", "cm-0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    watches_and_controllers_work_after_the_leader_change(&kubeconfig, dir.path());
}

/// After the leader change: `kubectl get --watch` sees a new ConfigMap, and the controllers
/// (their caches fed by the store's watches, which the leader change ended) make a new
/// Deployment's ReplicaSet and pods.
fn watches_and_controllers_work_after_the_leader_change(kubeconfig: &Path, dir: &Path) {
    let output = dir.join("watch.out");
    let mut watch = Process(
        Command::new("kubectl")
            .env("KUBECONFIG", kubeconfig)
            .env("HOME", dir)
            .args(["get", "configmaps", "--watch", "-o", "name"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&output).expect("watch output"))
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl --watch"),
    );
    let seen = |name: &str| {
        std::fs::read_to_string(&output)
            .unwrap_or_default()
            .lines()
            .any(|line| line == format!("configmap/{name}"))
    };
    wait_for("the watch's initial list", dir, || seen("cm-1"));
    let out = kubectl(kubeconfig, &["create", "configmap", "watched"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("configmap/watched from kubectl --watch", dir, || {
        seen("watched")
    });
    let _ = watch.0.kill();

    let out = kubectl(
        kubeconfig,
        &[
            "create",
            "deployment",
            "web",
            "--image=busybox:1",
            "--replicas=2",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the Deployment's ReplicaSet and its 2 pods", dir, || {
        let pods = kubectl(kubeconfig, &["get", "pods", "-l", "app=web", "-o", "name"]);
        let sets = kubectl(kubeconfig, &["get", "rs", "-l", "app=web", "-o", "name"]);
        String::from_utf8_lossy(&pods.stdout).lines().count() == 2
            && String::from_utf8_lossy(&sets.stdout).lines().count() == 1
    });
}

fn wait_for(what: &str, dir: &Path, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "not within 30 s: {what}\ncontrol log:\n{}",
            std::fs::read_to_string(dir.join("control.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
