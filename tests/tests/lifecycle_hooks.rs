//! Lifecycle hooks of an API pod, end to end: `kubectl delete pod --grace-period=5` of a pod
//! with `preStop: {sleep: {seconds: 2}}` — what a rolling update needs so endpoints drain
//! before the server stops. The container gets its SIGTERM only after the hook's 2 s, the
//! deletion's grace (not the spec's 300 s) covers hook and SIGTERM together, and the pod is gone
//! from the API once the agent stopped it. A postStart hook's side effect is in the container's
//! log before the API reports the container started.

use std::time::{Duration, Instant};

use bosun_e2e::{stderr, wait_until, Control, Node};

const DRAINER: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: drainer}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 300
  containers:
  - name: c
    image: bosun.test/busybox:1
    command: [sh, -c, 'trap "echo got TERM" TERM; echo started; while true; do sleep 0.1; done']
    lifecycle:
      postStart: {exec: {command: [sh, -c, 'echo postStart ran > /proc/1/fd/1']}}
      preStop: {sleep: {seconds: 2}}
"#;

fn checked(what: &str, control: &Control, node: &Node, within: Duration, f: impl FnMut() -> bool) {
    let wait = std::panic::AssertUnwindSafe(|| wait_until(what, within, f));
    if std::panic::catch_unwind(wait).is_err() {
        let tail = |log: String| {
            let lines: Vec<String> = log.lines().rev().take(40).map(str::to_owned).collect();
            lines.into_iter().rev().collect::<Vec<_>>().join("\n")
        };
        panic!(
            "not within {within:?}: {what}\n--- agent log (tail) ---\n{}\n--- control log (tail) ---\n{}",
            tail(node.log()),
            tail(control.log())
        );
    }
}

#[test]
fn a_pre_stop_sleep_holds_the_sigterm_of_a_deleted_pod_within_its_deletion_grace() {
    let control = Control::start();
    let mut node = Node::new(74, &control);
    node.start_agent();
    let name = node.name.clone();
    checked(
        "the node Ready",
        &control,
        &node,
        Duration::from_secs(20),
        || control.node_ready(&name),
    );
    control.apply(&DRAINER.replace("NODE", &name));
    checked(
        "the container started in the API",
        &control,
        &node,
        Duration::from_secs(30),
        || {
            control
                .get_json(&["pod", "drainer"])
                .is_some_and(|p| p["status"]["containerStatuses"][0]["started"] == true)
        },
    );
    // postStart ran inside the container before it was reported started.
    checked(
        "the postStart line in the log",
        &control,
        &node,
        Duration::from_secs(15),
        || node.logs("default", "drainer") == "started\npostStart ran\n",
    );

    let begun = Instant::now();
    let mut deleting = control.spawn_kubectl(&[
        "delete",
        "pod",
        "drainer",
        "--grace-period=5",
        "--timeout=60s",
    ]);
    checked(
        "the container's TERM line",
        &control,
        &node,
        Duration::from_secs(10),
        || node.logs("default", "drainer").contains("got TERM"),
    );
    let term_after = begun.elapsed();
    assert!(
        term_after >= Duration::from_millis(1900),
        "SIGTERM came {term_after:?} after the delete, before the preStop sleep's 2 s"
    );
    // SIGKILL when the deletion's 5 s are over (hook included), then the final delete.
    let deadline = Instant::now() + Duration::from_secs(40);
    while deleting.try_wait().expect("kubectl delete").is_none() {
        assert!(Instant::now() < deadline, "kubectl delete still waiting");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = deleting.wait_with_output().expect("kubectl delete");
    assert!(out.status.success(), "{}", stderr(&out));
    let took = begun.elapsed();
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(40),
        "the deletion's grace covers hook and SIGTERM, not the spec's 300 s: {took:?}"
    );
    assert!(node.ps_pod("drainer").is_none(), "{:?}", node.ps());
}
