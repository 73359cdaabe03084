//! Kernel tests of the node daemon (`bosun-agent --manifests DIR`): static pods, restarts,
//! resource limits, adoption after an agent restart, and cleanup on delete.

mod common;

use std::time::{Duration, Instant};

use common::{pod, Node, BUSYBOX};
use serde_json::Value;

fn container(p: &Value, i: usize) -> &Value {
    &p["containerStatuses"][i]
}

fn terminated_reason(p: &Value) -> Option<String> {
    let c = container(p, 0);
    for s in [&c["state"]["terminated"], &c["lastState"]["terminated"]] {
        if let Some(r) = s["reason"].as_str() {
            return Some(r.to_string());
        }
    }
    None
}

#[test]
fn memory_limit_is_enforced_and_reported_as_oomkilled() {
    let mut node = Node::new("oom");
    node.start_daemon();
    node.apply(
        "hog.yaml",
        &pod("hog", "Never", BUSYBOX, "    command: [sh, -c, 'echo start; x=$(head -c 100m /dev/zero | tr \"\\\\0\" a); echo survived']\n    resources: {limits: {memory: 32Mi}}\n"),
    );
    let p = node.wait_pod("hog", "termination", Duration::from_secs(30), |p| {
        p["phase"] == "Failed" || p["phase"] == "Succeeded"
    });
    let c = container(&p, 0);
    assert_eq!(c["state"]["terminated"]["reason"], "OOMKilled", "{p:#}");
    assert_eq!(c["state"]["terminated"]["exitCode"], 137, "{p:#}");
    assert_eq!(p["phase"], "Failed");
}

#[test]
fn pod_pids_limit_caps_the_processes_of_a_pod() {
    // 40 parallel sleeps; the shell then counts processes with builtins only (a failed fork in
    // PID 1's own shell would be fatal), until it sees 30 or a bounded number of tries.
    let forky = pod(
        "forky",
        "Never",
        BUSYBOX,
        "    command: [sh, -c, 'seq 1 40 | xargs -P 40 -n 1 sleep 10 2>/dev/null & i=0; while [ $i -lt 40000 ]; do set -- /proc/[0-9]*; [ $# -ge 30 ] && break; i=$((i+1)); done; set -- /proc/[0-9]*; echo procs=$#']\n",
    );
    let count = |node: &Node| -> u32 {
        let out = node.run_pod(&forky);
        let text = common::stdout(&out);
        text.trim()
            .trim_start_matches("procs=")
            .parse()
            .unwrap_or_else(|_| panic!("{text} {}", common::stderr(&out)))
    };
    let limited = Node::new("pids").with_flags(&["--pod-pids-limit", "12"]);
    assert!(count(&limited) <= 12, "pids limit 12 is enforced");
    let unlimited = Node::new("nopids");
    assert!(
        count(&unlimited) > 20,
        "without a limit the same pod forks freely"
    );
}

#[test]
fn crashing_container_restarts_with_doubling_backoff() {
    let mut node =
        Node::new("backoff").with_flags(&["--backoff-base-ms", "400", "--backoff-max-ms", "1600"]);
    node.start_daemon();
    node.apply(
        "crash.yaml",
        &pod(
            "crash",
            "Always",
            BUSYBOX,
            "    command: [sh, -c, 'echo attempt; exit 2']\n",
        ),
    );
    let p = node.wait_pod("crash", "CrashLoopBackOff", Duration::from_secs(20), |p| {
        container(p, 0)["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    });
    assert_eq!(
        container(&p, 0)["lastState"]["terminated"]["exitCode"],
        2,
        "{p:#}"
    );
    // Starts at ~0, 0, 0.4, 1.2, 2.8, 4.4 s (0.4 doubling, capped at 1.6): three more
    // restarts from here include at least two whole backoffs (≥ 0.4 + 0.8 s), where an
    // unthrottled loop would restart hundreds of times in that time.
    let seen = Instant::now();
    let before = container(&p, 0)["restartCount"].as_u64().unwrap_or(0);
    let later = node.wait_pod(
        "crash",
        "three more restarts",
        Duration::from_secs(30),
        |p| container(p, 0)["restartCount"].as_u64() >= Some(before + 3),
    );
    let waited = seen.elapsed();
    assert!(
        waited >= Duration::from_millis(1000),
        "three restarts in {waited:?}: no backoff\n{later:#}"
    );
    assert!(node.logs(&["crash", "--previous"]).contains("attempt"));
    assert_eq!(
        terminated_reason(&node.pod("crash").expect("pod")).as_deref(),
        Some("Error")
    );
}

#[test]
fn on_failure_restarts_until_success_then_the_pod_succeeds() {
    let mut node = Node::new("onfailure").with_flags(&["--backoff-base-ms", "100"]);
    node.start_daemon();
    // A container that always fails is restarted under OnFailure ...
    node.apply(
        "flaky.yaml",
        &pod(
            "flaky",
            "OnFailure",
            BUSYBOX,
            "    command: [sh, -c, 'exit 1']\n",
        ),
    );
    node.wait_pod("flaky", "two restarts", Duration::from_secs(20), |p| {
        container(p, 0)["restartCount"].as_u64() >= Some(2)
    });
    // ... one that succeeds is not, and its pod completes.
    node.apply(
        "ok.yaml",
        &pod("ok", "OnFailure", BUSYBOX, "    command: ['true']\n"),
    );
    let p = node.wait_pod("ok", "Succeeded", Duration::from_secs(20), |p| {
        p["phase"] == "Succeeded"
    });
    assert_eq!(
        container(&p, 0)["restartCount"],
        0,
        "exit 0 is not restarted under OnFailure"
    );
    assert_eq!(
        container(&p, 0)["state"]["terminated"]["reason"],
        "Completed"
    );
}

#[test]
fn a_restarted_agent_adopts_running_containers_without_restarting_them() {
    let mut node = Node::new("adopt");
    node.start_daemon();
    node.apply("web.yaml", &pod("web", "Always", BUSYBOX, "    command: [sh, -c, 'i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done']\n"));
    let before = node.wait_pod("web", "running", Duration::from_secs(20), |p| {
        container(p, 0)["state"]["running"].is_object()
    });
    let pid = container(&before, 0)["pid"].as_i64().expect("pid");
    node.stop_daemon();
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "container survives the agent"
    );
    node.start_daemon();
    let after = node.wait_pod("web", "adopted", Duration::from_secs(10), |p| {
        container(p, 0)["state"]["running"].is_object()
    });
    assert_eq!(
        container(&after, 0)["pid"].as_i64(),
        Some(pid),
        "same process"
    );
    assert_eq!(container(&after, 0)["restartCount"], 0, "{after:#}");
    // Logs written while the agent was down are not lost (the FIFO held them).
    let ticks_before = node.logs(&["web"]).lines().count();
    common::wait_until(
        "logging continues after adoption",
        Duration::from_secs(10),
        || node.logs(&["web"]).lines().count() > ticks_before,
    );
    let text = node.logs(&["web"]);
    let nums: Vec<u32> = text
        .lines()
        .filter_map(|l| l.strip_prefix("tick ")?.parse().ok())
        .collect();
    assert!(
        nums.windows(2).all(|w| w[1] == w[0] + 1),
        "no log line lost across the restart: {nums:?}"
    );
}

#[test]
fn deleting_a_pod_removes_its_cgroups_mounts_namespaces_and_processes() {
    let mut node = Node::new("cleanup");
    node.start_daemon();
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: tidy}\nspec:\n  terminationGracePeriodSeconds: 1\n  initContainers:\n  - {name: init, image: bosun.test/busybox:1, command: ['true']}\n  containers:\n  - {name: a, image: bosun.test/busybox:1, command: [sleep, '3600'], resources: {limits: {memory: 64Mi, cpu: 250m}}}\n  - {name: b, image: bosun.test/busybox:1, command: [sleep, '3600']}\n";
    node.apply("tidy.yaml", yaml);
    let p = node.wait_pod("tidy", "running", Duration::from_secs(20), |p| {
        p["phase"] == "Running" && p["ready"] == true
    });
    let pids: Vec<i64> = p["containerStatuses"]
        .as_array()
        .expect("statuses")
        .iter()
        .filter_map(|c| c["pid"].as_i64())
        .collect();
    assert_eq!(pids.len(), 2);
    assert_eq!(p["qosClass"], "Burstable", "{p:#}");
    let cgroups = node.pod_cgroups();
    let mem = cgroups
        .iter()
        .find(|d| d.starts_with("/sys/fs/cgroup/memory"))
        .expect("memory cgroup of the pod");
    assert!(mem.to_string_lossy().contains("/burstable/pod"), "{mem:?}");
    let read = |p: std::path::PathBuf| {
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{p:?}: {e}"))
            .trim()
            .to_string()
    };
    assert_eq!(
        read(mem.join("a/memory.limit_in_bytes")),
        (64u64 << 20).to_string()
    );
    let cpu = cgroups
        .iter()
        .find(|d| d.starts_with("/sys/fs/cgroup/cpu/"))
        .expect("cpu cgroup of the pod");
    assert_eq!(read(cpu.join("a/cpu.cfs_quota_us")), "25000");
    assert_eq!(read(cpu.join("a/cpu.shares")), "256");
    assert_eq!(read(cpu.join("b/cpu.shares")), "2");
    assert_eq!(
        node.mounts().len(),
        4,
        "net/ipc/uts held by bind mounts, the /etc files' tmpfs: {:?}",
        node.mounts()
    );
    node.remove("tidy.yaml");
    node.wait_gone("tidy", Duration::from_secs(20));
    assert!(
        node.pod_cgroups().is_empty(),
        "leftover cgroups: {:?}",
        node.pod_cgroups()
    );
    assert!(
        node.mounts().is_empty(),
        "leftover mounts: {:?}",
        node.mounts()
    );
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} still alive"
        );
    }
    let pods_dir = node.run_dir.join("pods");
    let left: Vec<_> = std::fs::read_dir(&pods_dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "leftover run dirs: {left:?}");
}

#[test]
fn an_invalid_manifest_is_reported_and_other_pods_keep_running() {
    let mut node = Node::new("invalid");
    node.start_daemon();
    node.apply(
        "good.yaml",
        &pod("good", "Always", BUSYBOX, "    command: [sleep, '3600']\n"),
    );
    node.apply("bad.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec:\n  containers: [{name: c, image: bosun.test/busybox:1, ports: [{containerPort: 70000}]}]\n");
    node.apply(
        "noimage.yaml",
        &pod(
            "noimage",
            "Always",
            "127.0.0.1:9/bosun/missing:1",
            "    command: ['true']\n",
        ),
    );
    node.wait_pod("good", "running", Duration::from_secs(20), |p| {
        container(p, 0)["state"]["running"].is_object()
    });
    let p = node.wait_pod("noimage", "ErrImagePull", Duration::from_secs(20), |p| {
        container(p, 0)["state"]["waiting"]["reason"] == "ErrImagePull"
    });
    assert!(
        container(&p, 0)["state"]["waiting"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("127.0.0.1:9/bosun/missing:1"),
        "{p:#}"
    );
    common::wait_until("error logged", Duration::from_secs(10), || {
        node.daemon_log()
            .contains("spec.containers[0].ports[0].containerPort")
    });
    assert!(node.pod("bad").is_none());
    // Breaking a running pod's file keeps the pod as it was: once the error naming the file
    // and the field is logged, the same process still runs ...
    let before = node.pod("good").expect("good pod");
    let pid = container(&before, 0)["pid"].as_i64().expect("pid");
    node.apply(
        "good.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: good}\nspec: {containers: [{name: c}]}\n",
    );
    common::wait_until("broken edit logged", Duration::from_secs(10), || {
        node.daemon_log()
            .lines()
            .any(|l| l.contains("good.yaml") && l.contains("spec.containers[0].image"))
    });
    let p = node.pod("good").expect("good pod kept");
    assert_eq!(container(&p, 0)["pid"].as_i64(), Some(pid), "{p:#}");
    assert_eq!(container(&p, 0)["restartCount"], 0);
    // ... and scanning goes on: a valid edit replaces the pod.
    node.apply(
        "good.yaml",
        &pod("good", "Always", BUSYBOX, "    command: [sleep, '3601']\n"),
    );
    node.wait_pod("good", "replaced", Duration::from_secs(30), |p| {
        container(p, 0)["state"]["running"].is_object()
            && container(p, 0)["pid"]
                .as_i64()
                .is_some_and(|new| new != pid)
    });
}

#[test]
fn a_manifest_directory_that_cannot_be_listed_keeps_its_pods() {
    let mut node = Node::new("unlisted");
    node.start_daemon();
    node.apply(
        "web.yaml",
        &pod("web", "Always", BUSYBOX, "    command: [sleep, '3600']\n"),
    );
    node.apply(
        "dep.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: dep}\nspec: {}\n",
    );
    let p = node.wait_pod("web", "running", Duration::from_secs(20), |p| {
        container(p, 0)["state"]["running"].is_object()
    });
    let pid = container(&p, 0)["pid"].as_i64().expect("pid");
    // The directory is replaced by a file for a while (as a botched deploy script might).
    let away = node.base.join("manifests.away");
    std::fs::rename(&node.manifests, &away).expect("move the directory away");
    std::fs::write(&node.manifests, "not a directory").expect("file in its place");
    common::wait_until("listing error logged", Duration::from_secs(10), || {
        node.daemon_log()
            .contains("cannot list the manifest directory")
    });
    std::fs::remove_file(&node.manifests).expect("remove the file");
    std::fs::rename(&away, &node.manifests).expect("put the directory back");
    common::wait_until("directory readable again", Duration::from_secs(10), || {
        node.daemon_log()
            .contains("manifest directory readable again")
    });
    let p = node.pod("web").expect("pod kept");
    assert_eq!(container(&p, 0)["pid"].as_i64(), Some(pid), "{p:#}");
    assert_eq!(container(&p, 0)["restartCount"], 0);
    let log = node.daemon_log();
    assert!(!log.contains("deleting"), "nothing was deleted:\n{log}");
    assert_eq!(
        log.matches("cannot list the manifest directory").count(),
        1,
        "logged once:\n{log}"
    );
    assert_eq!(
        log.matches("kind=Deployment").count(),
        1,
        "the ignored kind is reported once per file:\n{log}"
    );
}

#[test]
fn a_pod_whose_record_cannot_be_read_is_left_alone() {
    let mut node = Node::new("badrecord");
    node.start_daemon();
    node.apply(
        "web.yaml",
        &pod("web", "Always", BUSYBOX, "    command: [sleep, '3600']\n"),
    );
    let p = node.wait_pod("web", "running", Duration::from_secs(20), |p| {
        container(p, 0)["state"]["running"].is_object()
    });
    let pid = container(&p, 0)["pid"].as_i64().expect("pid");
    let uid = p["uid"].as_str().expect("uid").to_string();
    node.stop_daemon();
    let record = node.root.join("pods").join(&uid).join("state.json");
    std::fs::write(&record, "{\"pod\": ").expect("corrupt the record");
    node.start_daemon();
    common::wait_until(
        "the pod is reported and skipped",
        Duration::from_secs(10),
        || {
            let log = node.daemon_log();
            log.contains("cannot read the pod record") && log.contains("not starting the pod")
        },
    );
    assert!(node.pod("web").is_none(), "no second instance was started");
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the running container was not touched"
    );
}
