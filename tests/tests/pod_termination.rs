//! Graceful pod deletion end to end, like Kubernetes: real bosun-control, a real agent in a
//! node netns, the real kubectl. `kubectl delete pod --grace-period=10` marks the pod
//! (Terminating); the agent sends its container SIGTERM — the container traps it, writes a
//! line and keeps running — and SIGKILL once the deletion's grace (not the spec's 300 s) is
//! over, tears the pod down and deletes it from the API with grace 0, so the waiting
//! `kubectl delete` returns and the pod is gone from the API and from the node. A pod deleted
//! while the agent was away, before it ever ran, is finished as soon as the agent is back.

use std::path::Path;
use std::time::{Duration, Instant};

use bosun_e2e::{stderr, wait_until, Control, Node};

const TRAPPER: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: trapper}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 300
  containers:
  - name: c
    image: bosun.test/busybox:1
    command: [sh, -c, 'trap "echo got TERM, ignoring it" TERM; echo started; while true; do sleep 0.2; done']
"#;

/// Whether some file under `dir` contains `text`.
fn logged(dir: &Path, text: &str) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            let path = e.path();
            if path.is_dir() {
                logged(&path, text)
            } else {
                std::fs::read_to_string(&path).is_ok_and(|s| s.contains(text))
            }
        })
}

fn context(control: &Control, node: &Node) -> String {
    let tail = |log: String| {
        let lines: Vec<String> = log.lines().rev().take(40).map(str::to_owned).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join("\n")
    };
    format!(
        "\n--- agent log (tail) ---\n{}\n--- control log (tail) ---\n{}",
        tail(node.log()),
        tail(control.log())
    )
}

fn checked(what: &str, control: &Control, node: &Node, within: Duration, f: impl FnMut() -> bool) {
    let wait = std::panic::AssertUnwindSafe(|| wait_until(what, within, f));
    if std::panic::catch_unwind(wait).is_err() {
        panic!("not within {within:?}: {what}{}", context(control, node));
    }
}

#[test]
fn a_deleted_pod_gets_sigterm_its_deletion_grace_and_is_then_removed() {
    let control = Control::start();
    let mut node = Node::new(73, &control);
    node.start_agent();
    let name = node.name.clone();
    checked(
        "the node Ready",
        &control,
        &node,
        Duration::from_secs(20),
        || control.node_ready(&name),
    );
    control.apply(&TRAPPER.replace("NODE", &name));
    let logs = node.base.join("root").join("logs");
    checked(
        "the container running",
        &control,
        &node,
        Duration::from_secs(20),
        || logged(&logs, "started"),
    );

    // kubectl delete waits; meanwhile the pod is Terminating with the deletion's grace.
    let started = Instant::now();
    let mut deleting = control.spawn_kubectl(&[
        "delete",
        "pod",
        "trapper",
        "--grace-period=10",
        "--timeout=60s",
    ]);
    checked(
        "the pod Terminating",
        &control,
        &node,
        Duration::from_secs(10),
        || {
            let table = control.kubectl_ok(&["get", "pod", "trapper"]);
            table.contains("Terminating")
        },
    );
    let pod = control.get_json(&["pod", "trapper"]).expect("the pod");
    assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 10, "{pod:#}");

    // The agent sends SIGTERM: the container's trap writes its line (and keeps running).
    checked(
        "the container's TERM line",
        &control,
        &node,
        Duration::from_secs(10),
        || logged(&logs, "got TERM, ignoring it"),
    );
    assert!(
        node.ps_pod("trapper").is_some(),
        "the pod runs on during its grace"
    );

    // SIGKILL after the deletion's 10 s, teardown, the final delete: kubectl delete returns.
    let deadline = Instant::now() + Duration::from_secs(30);
    while deleting.try_wait().expect("kubectl delete").is_none() {
        assert!(
            Instant::now() < deadline,
            "kubectl delete still waiting{}",
            context(&control, &node)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = deleting.wait_with_output().expect("kubectl delete");
    assert!(out.status.success(), "{}", stderr(&out));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_secs(60),
        "the deletion's grace, not the spec's 300 s: {took:?}"
    );
    let gone = control.kubectl(&["get", "pod", "trapper"]);
    assert!(stderr(&gone).contains("NotFound"), "{}", stderr(&gone));
    assert!(node.ps_pod("trapper").is_none(), "{:?}", node.ps());

    // A pod deleted while the agent was away, before it ever ran here, has nothing to stop:
    // the agent finishes its deletion as soon as it has listed its pods.
    node.stop_agent();
    control.apply(
        &TRAPPER
            .replace("NODE", &name)
            .replace("trapper", "never-ran"),
    );
    control.kubectl_ok(&["delete", "pod", "never-ran", "--wait=false"]);
    let pod = control
        .get_json(&["pod", "never-ran"])
        .expect("terminating");
    assert!(pod["metadata"]["deletionTimestamp"].is_string(), "{pod:#}");
    node.start_agent();
    checked(
        "the pod that never ran deleted by the agent",
        &control,
        &node,
        Duration::from_secs(20),
        || control.get_json(&["pod", "never-ran"]).is_none(),
    );
    assert!(node.ps_pod("never-ran").is_none(), "{:?}", node.ps());
}
