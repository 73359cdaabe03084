//! `kubectl debug POD -i --target=CONTAINER` with the real kubectl: the ephemeral container is
//! added through `pods/ephemeralcontainers`, started by the node's agent in the running pod
//! without restarting it, in the target container's PID namespace (a debugger sees its
//! processes), attached with stdin, reported in `ephemeralContainerStatuses` and never restarted.

use std::time::Duration;

use bosun_e2e::{reachable_node, wait_until};

const TARGET: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: target}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: bosun.test/busybox:1
    command: [sleep, '3600']
"#;

#[test]
fn debug_adds_an_ephemeral_container_in_the_targets_pid_namespace() {
    let (control, _fabric, node) = reachable_node(4);
    control.apply(TARGET);
    wait_until("the target runs", Duration::from_secs(60), || {
        control.container_running("target")
    });
    let before = control.get_json(&["pod", "target"]).expect("the pod");
    // The debugger waits for a line, so what it prints comes after kubectl attached.
    let out = control.kubectl_with_input(
        &[
            "debug",
            "target",
            "-i",
            "--image=bosun.test/busybox:1",
            "--target=app",
            "-c",
            "debugger",
            "--",
            "sh",
            "-c",
            "read x; echo \"read $x\"; ps -o pid,args",
        ],
        b"go\n",
        Duration::from_secs(90),
    );
    let (stdout, stderr) = control.succeeded("debug", &out, &node);
    assert!(
        stdout.lines().any(|l| l == "read go"),
        "the debugger read kubectl's input: {stdout}\n{stderr}{}",
        control.logs_tail(&node)
    );
    // The target's process, PID 1 of the namespace the debugger joined.
    assert!(
        stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "sleep", "3600"]),
        "the target's sleep as PID 1 in the debugger's ps: {stdout}"
    );

    // Its end is in ephemeralContainerStatuses; it is not restarted, the pod stays as it was.
    let mut pod = serde_json::Value::Null;
    wait_until(
        "the debugger's terminated status",
        Duration::from_secs(30),
        || {
            pod = control.get_json(&["pod", "target"]).unwrap_or_default();
            pod["status"]["ephemeralContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
        },
    );
    let statuses = &pod["status"]["ephemeralContainerStatuses"];
    assert_eq!(statuses[0]["name"], "debugger", "{pod:#}");
    assert_eq!(statuses[0]["restartCount"], 0, "{pod:#}");
    assert_eq!(pod["metadata"]["uid"], before["metadata"]["uid"]);
    let app = &pod["status"]["containerStatuses"][0];
    assert!(app["state"]["running"].is_object(), "{pod:#}");
    assert_eq!(
        app["restartCount"], 0,
        "the target was not restarted: {pod:#}"
    );
    assert_eq!(
        app["state"]["running"]["startedAt"],
        before["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
    );
    let logs = control.kubectl_ok(&["logs", "target", "-c", "debugger"]);
    assert!(logs.lines().any(|l| l == "read go"), "{logs}");
}

/// The host pids of the pod inits (`__pod-init`) running now.
fn pod_inits() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg == b"__pod-init"))
        })
        .collect()
}

#[test]
fn debug_copy_to_runs_a_copy_whose_containers_share_one_pid_namespace() {
    let (control, _fabric, node) = reachable_node(5);
    control.apply(TARGET);
    wait_until("the target runs", Duration::from_secs(60), || {
        control.container_running("target")
    });
    // kubectl's copy shares its process namespace (the general profile sets it).
    let out = control.kubectl_with_input(
        &[
            "debug",
            "target",
            "-i",
            "--copy-to=copy",
            "--image=bosun.test/busybox:1",
            "--profile=general",
            "-c",
            "debugger",
            "--",
            "sh",
            "-c",
            "read x; ps -o pid,args",
        ],
        b"go\n",
        Duration::from_secs(90),
    );
    let (stdout, _) = control.succeeded("debug --copy-to", &out, &node);
    let copy = control.get_json(&["pod", "copy"]).expect("the copy");
    assert_eq!(copy["spec"]["shareProcessNamespace"], true, "{copy:#}");
    // PID 1 is the pod's init; the app container's sleep is another process of the namespace.
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        rows.iter()
            .any(|r| r.first() == Some(&"1") && r.last() == Some(&"__pod-init")),
        "the pod init as PID 1: {stdout}{}",
        control.logs_tail(&node)
    );
    assert!(
        rows.iter()
            .any(|r| r.first() != Some(&"1") && r[1..] == ["sleep", "3600"]),
        "the app container's sleep, not PID 1: {stdout}"
    );

    // The init is the pod's: in a cgroup of its own under the pod's (not the agent's, whose
    // restart must not end it); deleting the copy ends it.
    let before = pod_inits();
    let in_pod_cgroup = before.iter().any(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|c| {
            c.lines()
                .all(|l| l.ends_with("/pod-init") || l.ends_with(":/"))
        })
    });
    assert!(in_pod_cgroup, "a pod init in its pod's cgroup: {before:?}");
    control.kubectl_ok(&["delete", "pod", "copy", "--wait=false"]);
    wait_until("the copy's init ends", Duration::from_secs(60), || {
        let now = pod_inits();
        before.iter().any(|pid| !now.contains(pid))
    });
}
