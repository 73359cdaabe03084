//! Kernel tests of container lifecycle hooks on real containers: preStop (exec, sleep, httpGet)
//! runs before the container's SIGTERM and within the grace period; postStart runs inside the
//! container before it is reported started, and a failing one restarts the container with
//! FailedPostStartHook. Order is proven by what the container itself prints (its SIGTERM trap
//! shows what the hook left behind), never by sleeping and looking for nothing.

mod common;

use std::time::{Duration, Instant};

use common::{stderr, stdout, wait_until, ForegroundRun, Node, BUSYBOX};
use nix::sys::signal::SIGTERM;
use serde_json::Value;

/// A `restartPolicy: Never` pod of one container running `script` with `lifecycle`.
fn pod(name: &str, grace: u32, script: &str, lifecycle: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: {grace}\n  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sh, -c, \"{script}\"]\n    lifecycle:\n{lifecycle}"
    )
}

/// Prints what the preStop hook left in /tmp/hook (if anything) when SIGTERM arrives.
const TRAP_TERM: &str = "trap 'cat /tmp/hook 2>/dev/null || echo no hook yet; echo got TERM; exit 0' TERM; echo ready; while true; do sleep 0.05; done";

#[test]
fn a_pre_stop_exec_hook_runs_inside_the_container_before_its_sigterm() {
    let node = Node::new("prestopexec");
    let yaml = pod(
        "prestop",
        10,
        TRAP_TERM,
        "      preStop: {exec: {command: [sh, -c, 'echo preStop ran as $(id -u) > /tmp/hook']}}\n",
    );
    let mut run = ForegroundRun::spawn(&node, &yaml);
    run.wait_line("ready");
    let t = Instant::now();
    run.signal(SIGTERM);
    let out = run.wait_output();
    assert_eq!(
        stdout(&out),
        "ready\npreStop ran as 0\ngot TERM\n",
        "{}",
        stderr(&out)
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
fn a_pre_stop_sleep_delays_the_sigterm_by_its_seconds() {
    let node = Node::new("prestopsleep");
    let yaml = pod(
        "sleeper",
        10,
        TRAP_TERM,
        "      preStop: {sleep: {seconds: 2}}\n",
    );
    let mut run = ForegroundRun::spawn(&node, &yaml);
    run.wait_line("ready");
    let t = Instant::now();
    run.signal(SIGTERM);
    run.wait_line("got TERM");
    let delay = t.elapsed();
    assert!(
        delay >= Duration::from_millis(1900) && delay < Duration::from_secs(8),
        "SIGTERM came {delay:?} after the delete"
    );
    let out = run.wait_output();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_pre_stop_hook_longer_than_the_grace_period_is_cut_by_sigkill() {
    let node = Node::new("prestopcut");
    // The container ignores SIGTERM; the hook would take 100 s.
    let yaml = pod(
        "cut",
        2,
        "trap '' TERM; echo ready; while true; do sleep 0.05; done",
        "      preStop: {exec: {command: [sleep, '100']}}\n",
    );
    let mut run = ForegroundRun::spawn(&node, &yaml);
    run.wait_line("ready");
    let t = Instant::now();
    run.signal(SIGTERM);
    let out = run.wait_output();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(8),
        "killed after {took:?}"
    );
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("preStop hook not completed within the grace period"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_pre_stop_http_get_reaches_the_container_before_its_sigterm() {
    let node = Node::new("prestophttp");
    // httpd runs a CGI script for /cgi-bin/drain that leaves its mark in /tmp/hook.
    let script = "mkdir -p /tmp/www/cgi-bin; printf '#!/bin/sh\\\\necho drained > /tmp/hook\\\\necho\\\\n' > /tmp/www/cgi-bin/drain; chmod +x /tmp/www/cgi-bin/drain; httpd -p 8080 -h /tmp/www; ".to_string() + TRAP_TERM;
    let yaml = pod(
        "http",
        10,
        &script,
        "      preStop: {httpGet: {port: 8080, path: /cgi-bin/drain}}\n",
    );
    let mut run = ForegroundRun::spawn(&node, &yaml);
    run.wait_line("ready");
    run.signal(SIGTERM);
    let out = run.wait_output();
    assert_eq!(
        stdout(&out),
        "ready\ndrained\ngot TERM\n",
        "{}",
        stderr(&out)
    );
}

fn container(p: &Value) -> &Value {
    &p["containerStatuses"][0]
}

#[test]
fn post_start_runs_inside_the_container_before_it_is_reported_started() {
    let mut node = Node::new("poststart");
    node.start_daemon();
    let yaml = pod(
        "post",
        1,
        "echo main up; exec sleep 1000",
        "      postStart: {exec: {command: [sh, -c, 'sleep 3; echo postStart ran > /proc/1/fd/1']}}\n",
    )
    .replace("restartPolicy: Never", "restartPolicy: Always");
    node.apply("post.yaml", &yaml);
    wait_until(
        "the container's first line",
        Duration::from_secs(20),
        || {
            node.try_logs(&["post"])
                .is_some_and(|l| l.contains("main up"))
        },
    );
    // The process runs, but its hook does not have finished: not started yet.
    let p = node.pod("post").expect("pod");
    assert_eq!(
        container(&p)["state"]["waiting"]["reason"],
        "ContainerCreating",
        "{p:#}"
    );
    assert_eq!(p["phase"], "Pending", "{p:#}");
    let p = node.wait_pod("post", "started", Duration::from_secs(20), |p| {
        container(p)["state"]["running"].is_object()
    });
    assert_eq!(container(&p)["restartCount"], 0, "{p:#}");
    // The hook ran in the container's PID namespace: its PID 1's stdout is the log.
    wait_until("the hook's line in the log", Duration::from_secs(5), || {
        node.logs(&["post"]) == "main up\npostStart ran\n"
    });
}

#[test]
fn a_failing_post_start_restarts_the_container_with_failed_post_start_hook() {
    let mut node = Node::new("poststartfail");
    node.start_daemon();
    let yaml = pod(
        "postfail",
        1,
        "exec sleep 1000",
        "      postStart: {exec: {command: [sh, -c, 'echo no config >&2; exit 3']}}\n",
    )
    .replace("restartPolicy: Never", "restartPolicy: Always");
    node.apply("postfail.yaml", &yaml);
    let p = node.wait_pod("postfail", "a restart", Duration::from_secs(30), |p| {
        container(p)["restartCount"].as_u64() >= Some(1)
    });
    let last = &container(&p)["lastState"]["terminated"];
    let message = last["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("FailedPostStartHook: Exec lifecycle hook")
            && message.contains("exited with 3")
            && message.contains("no config"),
        "{p:#}"
    );
    assert_eq!(
        last["exitCode"], 137,
        "sleep as PID 1 ignores SIGTERM: {p:#}"
    );
    assert!(
        !container(&p)["state"]["running"].is_object(),
        "never started while its hook fails: {p:#}"
    );
}
