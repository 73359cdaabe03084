//! `seccompProfile: RuntimeDefault` with real agents: the container runs under a seccomp filter
//! (`Seccomp: 2` in its /proc status, for `kubectl exec` too) that refuses what containerd's
//! default profile refuses — here `unshare` of a user namespace, which needs no capability —
//! while a pod without a profile (Unconfined, kube's default) has no filter and makes one.

use std::time::Duration;

use bosun_e2e::{reachable_node, wait_logged};

const PODS: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: confined}
spec:
  terminationGracePeriodSeconds: 1
  securityContext:
    seccompProfile: {type: RuntimeDefault}
  containers:
  - name: c
    image: bosun.test/busybox:1
    command: [sh, -c, 'grep Seccomp: /proc/self/status; unshare -U true && echo userns-made || echo userns-refused; sleep 3600']
---
apiVersion: v1
kind: Pod
metadata: {name: unconfined}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: bosun.test/busybox:1
    command: [sh, -c, 'grep Seccomp: /proc/self/status; unshare -U true && echo userns-made || echo userns-refused; sleep 3600']
"#;

#[test]
fn runtime_default_filters_the_containers_system_calls() {
    let (control, _fabric, node) = reachable_node(1);
    control.apply(PODS);
    let logs = |pod: &str| {
        let out = control.kubectl(&["logs", pod]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mode = |text: &str| -> Option<String> {
        text.lines()
            .find_map(|l| l.strip_prefix("Seccomp:"))
            .map(|m| m.trim().to_owned())
    };
    wait_logged(
        "both pods report their seccomp mode",
        &control,
        &node,
        Duration::from_secs(60),
        || logs("confined").contains("userns-") && logs("unconfined").contains("userns-"),
    );
    let confined = logs("confined");
    assert_eq!(mode(&confined).as_deref(), Some("2"), "{confined}");
    assert!(confined.contains("userns-refused"), "{confined}");
    let unconfined = logs("unconfined");
    assert_eq!(mode(&unconfined).as_deref(), Some("0"), "{unconfined}");
    assert!(
        unconfined.contains("userns-made"),
        "without the filter: {unconfined}"
    );
    // What `kubectl exec` runs in the container is filtered as the container is.
    let exec = control.kubectl_ok(&[
        "exec",
        "confined",
        "--",
        "grep",
        "Seccomp:",
        "/proc/self/status",
    ]);
    assert_eq!(mode(&exec).as_deref(), Some("2"), "{exec}");
}
