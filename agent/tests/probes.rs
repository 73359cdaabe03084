//! Kernel tests of liveness, readiness and startup probes on real containers (busybox httpd,
//! nc and sh), through the node daemon.

mod common;

use std::time::{Duration, Instant};

use common::Node;
use serde_json::Value;

fn pod(name: &str, command: &str, probes: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: bosun.test/busybox:1\n    command: [sh, -c, '{command}']\n    ports: [{{name: web, containerPort: 8080}}]\n{probes}"
    )
}

fn c(p: &Value) -> &Value {
    &p["containerStatuses"][0]
}

#[test]
fn http_readiness_probe_makes_the_pod_ready_once_the_server_answers() {
    let mut node = Node::new("httpready");
    node.start_daemon();
    node.apply(
        "web.yaml",
        &pod(
            "web",
            "sleep 2; exec httpd -f -p 8080 -h /var/www",
            "    readinessProbe: {httpGet: {port: web, path: /index.html}, periodSeconds: 1}\n",
        ),
    );
    let running = node.wait_pod("web", "running", Duration::from_secs(20), |p| {
        c(p)["state"]["running"].is_object()
    });
    assert_eq!(
        c(&running)["ready"],
        false,
        "not ready before the first passing probe"
    );
    let t = Instant::now();
    let ready = node.wait_pod("web", "ready", Duration::from_secs(20), |p| {
        p["ready"] == true
    });
    assert_eq!(c(&ready)["ready"], true);
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "ready only after httpd started"
    );
    // A path that 404s never makes it ready.
    node.apply(
        "missing.yaml",
        &pod(
            "missing",
            "exec httpd -f -p 8080 -h /var/www",
            "    readinessProbe: {httpGet: {port: 8080, path: /nope}, periodSeconds: 1}\n",
        ),
    );
    node.wait_pod("missing", "running", Duration::from_secs(20), |p| {
        c(p)["state"]["running"].is_object()
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(node.pod("missing").expect("pod")["ready"], false);
}

#[test]
fn readiness_flips_both_ways_with_the_exec_result() {
    let mut node = Node::new("execready");
    node.start_daemon();
    node.apply(
        "flip.yaml",
        &pod("flip", "touch /tmp/ready; sleep 3; rm /tmp/ready; exec sleep 1000", "    readinessProbe: {exec: {command: [test, -f, /tmp/ready]}, periodSeconds: 1, failureThreshold: 1}\n"),
    );
    node.wait_pod("flip", "ready", Duration::from_secs(20), |p| {
        p["ready"] == true
    });
    let p = node.wait_pod("flip", "unready", Duration::from_secs(20), |p| {
        p["ready"] == false
    });
    assert!(
        c(&p)["state"]["running"].is_object(),
        "readiness never restarts: {p:#}"
    );
    assert_eq!(c(&p)["restartCount"], 0);
}

#[test]
fn failed_liveness_probe_restarts_the_container_with_the_reason() {
    let mut node = Node::new("liveness");
    node.start_daemon();
    node.apply(
        "live.yaml",
        &pod("live", "touch /tmp/alive; sleep 2; rm /tmp/alive; exec sleep 1000", "    livenessProbe: {exec: {command: [test, -f, /tmp/alive]}, periodSeconds: 1, failureThreshold: 2}\n"),
    );
    let p = node.wait_pod("live", "restart", Duration::from_secs(30), |p| {
        c(p)["restartCount"].as_u64() >= Some(1)
    });
    let last = &c(&p)["lastState"]["terminated"];
    assert!(
        last["message"]
            .as_str()
            .unwrap_or("")
            .contains("liveness probe failed"),
        "{p:#}"
    );
    assert_eq!(
        last["exitCode"], 137,
        "sleep ignores nothing, but PID 1 sh... killed: {p:#}"
    );
}

#[test]
fn startup_probe_holds_liveness_off_until_it_passes() {
    let mut node = Node::new("startup");
    node.start_daemon();
    // Liveness would kill at the first failure, but it only starts after the startup probe
    // passes (after ~3 s).
    node.apply(
        "slow.yaml",
        &pod(
            "slow",
            "sleep 3; touch /tmp/started; exec sleep 1000",
            "    startupProbe: {exec: {command: [test, -f, /tmp/started]}, periodSeconds: 1, failureThreshold: 20}\n    livenessProbe: {exec: {command: [test, -f, /tmp/started]}, periodSeconds: 1, failureThreshold: 1}\n    readinessProbe: {tcpSocket: {port: 9}, periodSeconds: 1}\n",
        ),
    );
    std::thread::sleep(Duration::from_secs(6));
    let p = node.pod("slow").expect("pod");
    assert_eq!(c(&p)["restartCount"], 0, "{p:#}");
    assert!(c(&p)["state"]["running"].is_object());
    assert_eq!(
        p["ready"], false,
        "nothing listens on port 9: tcpSocket readiness fails"
    );
    // And a startup probe that never passes kills the container.
    node.apply(
        "never.yaml",
        &pod("never", "exec sleep 1000", "    startupProbe: {exec: {command: ['false']}, periodSeconds: 1, failureThreshold: 2}\n"),
    );
    let p = node.wait_pod("never", "restart", Duration::from_secs(30), |p| {
        c(p)["restartCount"].as_u64() >= Some(1)
    });
    assert!(
        c(&p)["lastState"]["terminated"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("startup probe failed"),
        "{p:#}"
    );
}

#[test]
fn tcp_probe_and_success_threshold() {
    let mut node = Node::new("tcpprobe");
    node.start_daemon();
    let start = Instant::now();
    node.apply(
        "nc.yaml",
        &pod("nc", "exec httpd -f -p 8080 -h /var/www", "    readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1, successThreshold: 3}\n"),
    );
    node.wait_pod("nc", "ready", Duration::from_secs(20), |p| {
        p["ready"] == true
    });
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "three passes at a 1 s period take ≥2 s, took {:?}",
        start.elapsed()
    );
}

#[test]
fn a_hanging_exec_probe_is_killed_at_its_timeout() {
    let mut node = Node::new("probetimeout");
    node.start_daemon();
    node.apply(
        "hang.yaml",
        &pod("hang", "exec sleep 1000", "    readinessProbe: {exec: {command: [sleep, '300']}, periodSeconds: 1, timeoutSeconds: 1}\n"),
    );
    node.wait_pod("hang", "running", Duration::from_secs(20), |p| {
        c(p)["state"]["running"].is_object()
    });
    std::thread::sleep(Duration::from_secs(4));
    let p = node.pod("hang").expect("pod");
    assert_eq!(p["ready"], false);
    // Each timed-out probe process was killed: at most one (the current run) is alive.
    let cgroup = node
        .pod_cgroups()
        .into_iter()
        .find(|d| d.starts_with("/sys/fs/cgroup/pids"))
        .expect("pids cgroup");
    let procs = std::fs::read_to_string(cgroup.join("c/cgroup.procs")).expect("procs");
    let n = procs.lines().count();
    assert!(
        n <= 3,
        "probe processes leak: {n} processes in the container cgroup"
    );
}
