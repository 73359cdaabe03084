//! High availability: two bosun-control processes over one real etcd (Debian's etcd-server on
//! loopback) share a data directory's CA and encryption key; both serve the API, one holds the
//! `kube-system/kube-controller-manager` Lease and runs the controllers. Killing the holder
//! hands the Lease over within 15 s, and the survivor's controllers act on a change made after
//! the kill, with nothing lost.

mod etcd_cluster;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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

/// Starts a control process on `dir` over `endpoints`; returns it and its own kubeconfig.
fn start(dir: &Path, endpoints: &str, name: &str) -> (Process, PathBuf) {
    let admin = dir.join("admin.kubeconfig");
    let _ = std::fs::remove_file(&admin);
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("log");
    let child = Command::new(CONTROL)
        .arg("--data-dir")
        .arg(dir)
        .args([
            "--secure-port",
            "0",
            "--etcd-endpoints",
            endpoints,
            "--leader-elect-lease-duration",
            "8s",
            "--leader-elect-retry-period",
            "1s",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn bosun-control");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !admin.exists() {
        assert!(
            Instant::now() < deadline,
            "{name}: no kubeconfig within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let own = dir.join(format!("{name}.kubeconfig"));
    std::fs::copy(&admin, &own).expect("copy the kubeconfig");
    (Process(child), own)
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> std::process::Output {
    Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", kubeconfig.parent().unwrap_or(Path::new("/tmp")))
        .arg("--request-timeout=5s")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("kubectl")
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "kubectl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn holder(kubeconfig: &Path) -> String {
    let out = kubectl(
        kubeconfig,
        &[
            "get",
            "lease",
            "-n",
            "kube-system",
            "kube-controller-manager",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn replicas_of_pods(kubeconfig: &Path) -> usize {
    let out = kubectl(kubeconfig, &["get", "pods", "-l", "app=web", "-o", "json"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    list["items"].as_array().map_or(0, Vec::len)
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "not within {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
    start.elapsed()
}

#[test]
fn killing_the_leader_hands_the_controllers_over() {
    let etcd = etcd_cluster::Cluster::start(1);
    etcd.wait_healthy(0);
    let endpoints = etcd.endpoints().join(",");
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, a_config) = start(dir.path(), &endpoints, "a");
    let (b, b_config) = start(dir.path(), &endpoints, "b");
    let pids = [a.0.id(), b.0.id()];

    wait_until(
        "one of them holds the Lease",
        Duration::from_secs(20),
        || {
            let h = holder(&a_config);
            pids.iter().any(|p| h.ends_with(&format!("_{p}")))
        },
    );
    let first = holder(&b_config);
    ok(kubectl(
        &a_config,
        &[
            "create",
            "deployment",
            "web",
            "--image=busybox",
            "--replicas=2",
        ],
    ));
    wait_until(
        "the leader's controllers make two pods",
        Duration::from_secs(20),
        || replicas_of_pods(&b_config) == 2,
    );

    // Kill the leader; the other serves on and takes the Lease over.
    let (leader, survivor, survivor_config) = if first.ends_with(&format!("_{}", pids[0])) {
        (a, b, b_config)
    } else {
        (b, a, a_config)
    };
    drop(leader);
    let handover = wait_until(
        "the survivor holds the Lease",
        Duration::from_secs(15),
        || holder(&survivor_config).ends_with(&format!("_{}", survivor.0.id())),
    );
    ok(kubectl(
        &survivor_config,
        &["scale", "deployment", "web", "--replicas=4"],
    ));
    wait_until(
        "the survivor's controllers scale up",
        Duration::from_secs(20),
        || replicas_of_pods(&survivor_config) == 4,
    );
    eprintln!("leader handover took {handover:?}");
    drop(survivor);
}

/// The HA case: two control processes over a 3-member etcd; the leader is killed
/// (SIGKILL) right after a scale-up was accepted, while its ReplicaSet controller is still
/// creating pods; the survivor takes the Lease over and finishes the scale-up, with no pod
/// lost or made twice.
#[test]
fn killing_the_leader_mid_scale_up_over_three_etcd_members_loses_nothing() {
    let etcd = etcd_cluster::Cluster::start(3);
    (0..3).for_each(|n| etcd.wait_healthy(n));
    let endpoints = etcd.endpoints().join(",");
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, a_config) = start(dir.path(), &endpoints, "a");
    let (b, b_config) = start(dir.path(), &endpoints, "b");
    let pids = [a.0.id(), b.0.id()];
    wait_until("one holds the Lease", Duration::from_secs(20), || {
        let h = holder(&a_config);
        pids.iter().any(|p| h.ends_with(&format!("_{p}")))
    });
    let first = holder(&a_config);
    let (leader, survivor, survivor_config) = if first.ends_with(&format!("_{}", pids[0])) {
        (a, b, b_config)
    } else {
        (b, a, a_config)
    };
    ok(kubectl(
        &survivor_config,
        &[
            "create",
            "deployment",
            "web",
            "--image=busybox",
            "--replicas=1",
        ],
    ));
    wait_until("the first pod", Duration::from_secs(20), || {
        replicas_of_pods(&survivor_config) == 1
    });

    const WANTED: usize = 300;
    ok(kubectl(
        &survivor_config,
        &[
            "scale",
            "deployment",
            "web",
            &format!("--replicas={WANTED}"),
        ],
    ));
    drop(leader);
    let at_kill = replicas_of_pods(&survivor_config);
    eprintln!("pods when the leader was killed: {at_kill} of {WANTED}");
    assert!(
        at_kill < WANTED,
        "the leader was killed before it finished the scale-up ({at_kill} pods)"
    );
    wait_until(
        "the survivor's controllers finish the scale-up",
        Duration::from_secs(60),
        || replicas_of_pods(&survivor_config) == WANTED,
    );
    let rs = kubectl(
        &survivor_config,
        &["get", "rs", "-l", "app=web", "-o", "json"],
    );
    let list: Value = serde_json::from_slice(&rs.stdout).unwrap_or(Value::Null);
    assert_eq!(
        list["items"].as_array().map(Vec::len),
        Some(1),
        "one ReplicaSet"
    );
    assert_eq!(list["items"][0]["spec"]["replicas"], WANTED);
    // Nothing more is made afterwards either: the count stays exact while status settles.
    wait_until("the Deployment's status", Duration::from_secs(20), || {
        let d = kubectl(
            &survivor_config,
            &["get", "deployment", "web", "-o", "json"],
        );
        let d: Value = serde_json::from_slice(&d.stdout).unwrap_or(Value::Null);
        d["status"]["replicas"] == WANTED
    });
    assert_eq!(replicas_of_pods(&survivor_config), WANTED);
    drop(survivor);
}
