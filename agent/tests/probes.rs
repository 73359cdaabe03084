//! Kernel tests of liveness, readiness and startup probes on real containers (busybox httpd,
//! nc and sh), through the node daemon. What must not happen is asserted only after a positive
//! event shows the probe in question ran: its verdict in the agent's log, or its run/failure
//! counters on the metrics endpoint.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{wait_until, Node};
use serde_json::Value;

/// A node whose daemon serves metrics on a port of its choosing (read back from its log).
fn node_with_metrics(name: &str) -> Node {
    let mut node = Node::new(name).with_flags(&["--metrics-addr", "127.0.0.1:0"]);
    node.start_daemon();
    node
}

/// The port the daemon's metrics endpoint is bound to.
fn metrics_port(node: &Node) -> u16 {
    let mut port = None;
    wait_until(
        "the metrics address in the log",
        Duration::from_secs(10),
        || {
            port = node.daemon_log().lines().find_map(|l| {
                let rest = &l[l.find("serving metrics")?..];
                let addr = rest.split("addr=").nth(1)?.split_whitespace().next()?;
                addr.rsplit_once(':')?.1.parse().ok()
            });
            port.is_some()
        },
    );
    port.unwrap_or_default()
}

/// The value of the series `series` (name and labels, as rendered) on the metrics endpoint.
fn metric(port: u16, series: &str) -> u64 {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics connect");
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .expect("metrics write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("metrics read");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

/// Waits until `series` reaches `at_least`; returns its value.
fn wait_metric(node: &Node, port: u16, series: &str, at_least: u64, timeout: Duration) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        let v = metric(port, series);
        if v >= at_least {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {series} >= {at_least} (at {v}); agent log:\n{}",
            node.daemon_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for the agent to log a verdict of pod `pod`'s probe that `healthy` and whose message
/// holds `message`; returns the log line.
fn wait_verdict(node: &Node, pod: &str, healthy: bool, message: &str) -> String {
    let mut found = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while found.is_none() {
        found = node
            .daemon_log()
            .lines()
            .find(|l| {
                l.contains("probe verdict")
                    && l.contains(&format!("pod={pod} "))
                    && l.contains(&format!("healthy={healthy}"))
                    && l.contains(message)
            })
            .map(str::to_string);
        assert!(
            found.is_some() || Instant::now() < deadline,
            "pod {pod}: no verdict healthy={healthy} with {message:?}; agent log:\n{}",
            node.daemon_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    found.unwrap_or_default()
}

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
    // The probe ran and got its 404 (failureThreshold 3 reached): the pod is not ready.
    wait_verdict(
        &node,
        "missing",
        false,
        "readiness probe failed: HTTP probe failed with statuscode: 404",
    );
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
    let node = node_with_metrics("startup");
    let port = metrics_port(&node);
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
    wait_verdict(&node, "slow", true, "startup probe succeeded");
    // Liveness runs only now, and passes; run before the startup probe passed, it would have
    // failed (no /tmp/started) and killed the container.
    let live_runs = "bosun_probe_runs_total{probe=\"liveness\",probe_type=\"exec\"}";
    wait_metric(&node, port, live_runs, 3, Duration::from_secs(30));
    let live_failures = "bosun_probe_failures_total{probe=\"liveness\",probe_type=\"exec\"}";
    assert_eq!(
        metric(port, live_failures),
        0,
        "liveness ran before startup passed"
    );
    // Nothing listens on port 9: the tcpSocket readiness probe fails.
    wait_verdict(&node, "slow", false, ":9: connect: connection refused");
    let p = node.pod("slow").expect("pod");
    assert_eq!(c(&p)["restartCount"], 0, "{p:#}");
    assert!(c(&p)["state"]["running"].is_object(), "{p:#}");
    assert_eq!(p["ready"], false, "{p:#}");
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
    let node = node_with_metrics("probetimeout");
    let port = metrics_port(&node);
    node.apply(
        "hang.yaml",
        &pod("hang", "exec sleep 1000", "    readinessProbe: {exec: {command: [sleep, '300']}, periodSeconds: 1, timeoutSeconds: 1}\n"),
    );
    node.wait_pod("hang", "running", Duration::from_secs(20), |p| {
        c(p)["state"]["running"].is_object()
    });
    // Four runs have timed out (each a `sleep 300` that would still be alive if leaked)...
    let failures = "bosun_probe_failures_total{probe=\"readiness\",probe_type=\"exec\"}";
    wait_metric(&node, port, failures, 4, Duration::from_secs(30));
    wait_verdict(&node, "hang", false, "command \"sleep 300\" timed out");
    let p = node.pod("hang").expect("pod");
    assert_eq!(p["ready"], false, "{p:#}");
    // ...and were killed: besides the container's own process, at most the current run and one
    // being reaped are in the container cgroup.
    let procs = node
        .pod_cgroups()
        .into_iter()
        .map(|d| d.join("c/cgroup.procs"))
        .find(|f| f.exists())
        .expect("container cgroup");
    let procs = std::fs::read_to_string(procs).expect("procs");
    let n = procs.lines().count();
    assert!(
        n <= 3,
        "probe processes leak: {n} processes in the container cgroup after 4 timeouts"
    );
}
