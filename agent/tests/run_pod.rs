//! Kernel tests of `bosun-agent run`: one pod in the foreground, real containers.

mod common;

use std::time::{Duration, Instant};

use common::{pod, stderr, stdout, ForegroundRun, Node, BUSYBOX};

#[test]
fn exit_code_of_the_container_is_the_exit_code_of_run() {
    let node = Node::new("exitcode");
    let out = node.run_pod(&pod(
        "ex",
        "Never",
        BUSYBOX,
        "    command: [sh, -c, 'echo out; echo err >&2; exit 3']\n",
    ));
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "out\n");
    assert!(stderr(&out).contains("err\n"));
    assert!(
        stderr(&out).contains("terminated: Error, exit code 3"),
        "{}",
        stderr(&out)
    );
    let ok = node.run_pod(&pod("ok", "Never", BUSYBOX, "    command: ['true']\n"));
    assert_eq!(ok.status.code(), Some(0));
    assert!(stderr(&ok).contains("terminated: Completed, exit code 0"));
}

#[test]
fn image_entrypoint_cmd_env_workdir_and_user_follow_kubernetes_rules() {
    let node = Node::new("semantics");
    let img = "bosun.test/busybox-entry:1";
    // Neither command nor args: Entrypoint + Cmd of the image.
    let out = node.run_pod(&pod("e1", "Never", img, ""));
    assert_eq!(stdout(&out), "entry default-cmd\n", "{}", stderr(&out));
    // args replace Cmd only, with $(VAR) expansion from the container env.
    let out = node.run_pod(&pod(
        "e2",
        "Never",
        img,
        "    args: ['$(WHO)', b]\n    env: [{name: WHO, value: world}]\n",
    ));
    assert_eq!(stdout(&out), "entry world b\n", "{}", stderr(&out));
    // command replaces Entrypoint and drops Cmd; image env, workingDir and User apply;
    // pod env overrides the image's.
    let out = node.run_pod(&pod(
        "e3",
        "Never",
        img,
        "    command: [sh, -c, 'echo $GREETING $EXTRA; pwd; id -u; id -g']\n    env: [{name: EXTRA, value: there}]\n",
    ));
    assert_eq!(
        stdout(&out),
        "hello there\n/tmp\n1000\n1000\n",
        "{}",
        stderr(&out)
    );
    // runAsUser/runAsGroup and workingDir from the pod win over the image.
    let out = node.run_pod(&pod(
        "e4",
        "Never",
        img,
        "    command: [sh, -c, 'pwd; id -u; id -g']\n    workingDir: /var\n    securityContext: {runAsUser: 4242, runAsGroup: 4343}\n",
    ));
    assert_eq!(stdout(&out), "/var\n4242\n4343\n", "{}", stderr(&out));
}

#[test]
fn container_is_pid_1_with_the_pod_hostname_and_a_private_root() {
    let node = Node::new("pid1");
    let out = node.run_pod(&pod(
        "pidhost",
        "Never",
        BUSYBOX,
        // $$$$ is Kubernetes' escape for a literal $$.
        "    command: [sh, -c, 'echo pid=$$$$; hostname; cat /etc/hostname; ls /proc | grep -c \"^[0-9]\"; cat /proc/1/cmdline | tr \"\\0\" \" \"; echo; wc -c < /proc/timer_list; touch /proc/sys/x 2>/dev/null || echo ro']\n",
    ));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "pid=1", "{text}\n{}", stderr(&out));
    assert_eq!(lines[1], "pidhost");
    assert_eq!(lines[2], "pidhost");
    let procs: u32 = lines[3].parse().expect("process count");
    assert!(
        procs <= 4,
        "only the container's processes are visible, saw {procs}"
    );
    assert!(
        lines[4].starts_with("sh -c"),
        "PID 1 is the workload: {}",
        lines[4]
    );
    assert_eq!(
        lines[5].trim(),
        "0",
        "/proc/timer_list is masked (the host's is not empty)"
    );
    assert_eq!(lines[6], "ro", "/proc/sys is read-only");
}

#[test]
fn capabilities_are_runcs_default_set_and_no_new_privs_only_when_asked() {
    let node = Node::new("caps");
    let command =
        "    command: [sh, -c, 'grep -E \"^(CapBnd|CapEff|NoNewPrivs)\" /proc/self/status']\n";
    let out = node.run_pod(&pod("caps", "Never", BUSYBOX, command));
    let text = stdout(&out);
    // runc's default set: chown dac_override fowner fsetid kill setgid setuid setpcap
    // net_bind_service net_raw sys_chroot mknod audit_write setfcap = 0x00000000a80425fb.
    assert!(text.contains("CapBnd:\t00000000a80425fb"), "{text}");
    assert!(text.contains("CapEff:\t00000000a80425fb"), "{text}");
    // As with kubelet, a container that says nothing may gain privileges (setuid).
    assert!(text.contains("NoNewPrivs:\t0"), "{text}");

    let denied = format!("{command}    securityContext: {{allowPrivilegeEscalation: false}}\n");
    let out = node.run_pod(&pod("nnp", "Never", BUSYBOX, &denied));
    let text = stdout(&out);
    assert!(text.contains("NoNewPrivs:\t1"), "{text}");
}

#[test]
fn init_containers_run_in_order_before_the_app_container() {
    let node = Node::new("init");
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: ini}\nspec:\n  restartPolicy: Never\n  initContainers:\n  - {name: one, image: bosun.test/busybox:1, command: [sh, -c, 'sleep 0.2; echo one']}\n  - {name: two, image: bosun.test/busybox:1, command: [echo, two]}\n  containers:\n  - {name: main, image: bosun.test/busybox:1, command: [echo, main]}\n";
    let out = node.run_pod(yaml);
    assert_eq!(stdout(&out), "one\ntwo\nmain\n", "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(0));

    let failing = yaml.replace("[echo, two]", "[sh, -c, 'echo two; exit 4']");
    let out = node.run_pod(&failing);
    assert_eq!(
        stdout(&out),
        "one\ntwo\n",
        "main never runs: {}",
        stderr(&out)
    );
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("container main: waiting"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn two_containers_of_a_pod_share_localhost() {
    let node = Node::new("localhost");
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: lh}\nspec:\n  restartPolicy: Never\n  containers:\n  - {name: server, image: bosun.test/busybox:1, command: [sh, -c, 'httpd -p 127.0.0.1:8080 -h /var/www; sleep 3']}\n  - {name: client, image: bosun.test/busybox:1, command: [sh, -c, 'for i in $(seq 1 40); do wget -qO- http://127.0.0.1:8080/ && exit 0; sleep 0.1; done; exit 1']}\n";
    let out = node.run_pod(yaml);
    assert!(
        stdout(&out).contains("hello from bosun"),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn sigterm_then_sigkill_after_the_grace_period() {
    let node = Node::new("grace");
    // A workload that handles SIGTERM exits at once ...
    let polite = pod("polite", "Never", BUSYBOX, "    command: [sh, -c, 'trap \"echo got TERM; exit 0\" TERM; echo ready; while true; do sleep 0.05; done']\n");
    let mut run = ForegroundRun::spawn(&node, &polite);
    run.wait_line("ready");
    let t = Instant::now();
    run.signal(nix::sys::signal::SIGTERM);
    let out = run.wait_output();
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t.elapsed()
    );
    assert!(stdout(&out).contains("got TERM"), "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(0));

    // ... one that ignores it is killed when the grace period ends.
    let stubborn = "apiVersion: v1\nkind: Pod\nmetadata: {name: stubborn}\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 2\n  containers:\n  - {name: c, image: bosun.test/busybox:1, command: [sh, -c, 'trap \"\" TERM; echo ready; while true; do sleep 0.05; done']}\n";
    let mut run = ForegroundRun::spawn(&node, stubborn);
    run.wait_line("ready");
    let t = Instant::now();
    run.signal(nix::sys::signal::SIGTERM);
    let out = run.wait_output();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(6),
        "killed after {took:?}"
    );
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
}

#[test]
fn a_missing_binary_is_a_start_error_and_bad_input_names_the_field() {
    let node = Node::new("badinput");
    let out = node.run_pod(&pod(
        "nobin",
        "Never",
        BUSYBOX,
        "    command: [/no/such/binary]\n",
    ));
    assert_eq!(out.status.code(), Some(128), "{}", stderr(&out));
    assert!(stderr(&out).contains("StartError"), "{}", stderr(&out));
    assert!(stderr(&out).contains("/no/such/binary"), "{}", stderr(&out));

    let out = node.run_pod(&pod(
        "noimg",
        "Never",
        "127.0.0.1:9/bosun/nope:1",
        "    command: ['true']\n",
    ));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("spec.containers[0].image"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("127.0.0.1:9/bosun/nope:1"),
        "{}",
        stderr(&out)
    );

    let out = node.run_pod("apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec:\n  containers: [{name: c, image: x}]\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("metadata.name"), "{}", stderr(&out));
    let out = node.run_pod("apiVersion: v1\nkind: Pod\nmetadata: {name: q}\nspec:\n  containers: [{name: c, image: x, resources: {limits: {memory: lots}}}]\n");
    assert!(
        stderr(&out).contains("spec.containers[0].resources.limits.memory"),
        "{}",
        stderr(&out)
    );
}
