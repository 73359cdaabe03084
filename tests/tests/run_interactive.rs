//! `kubectl run -i` and `kubectl run -it` with the real kubectl: a container with `stdin`
//! (and `stdinOnce`, as kubectl run sets it) reads what kubectl sends and sees EOF when kubectl's
//! input ends; a container with `tty` gets a terminal for its stdin, stdout and stderr, its
//! output reaches kubectl and its log. `--rm` deletes the pod afterwards. The terminal on the
//! client side is `script`'s pty (kubectl refuses `-t` without one).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bosun_e2e::{reachable_node, wait_until};

const IMAGE: &str = "--image=bosun.test/busybox:1";

#[test]
fn run_i_sends_stdin_and_its_end_to_the_container() {
    let (control, _fabric, node) = reachable_node(1);
    let mut child = Command::new("kubectl")
        .env("KUBECONFIG", control.kubeconfig())
        .env("HOME", control.dir.path())
        .args(["run", "reader", "-i", "--rm", "--restart=Never", IMAGE])
        .args([
            "--",
            "sh",
            "-c",
            "read first; echo \"got $first\"; cat; echo end",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl run");
    // kubectl reads its input once attached; what it read before waits in the pipe.
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(b"hello\nsecond line\n")
        .expect("write kubectl's input");
    drop(input);
    let mut status = None;
    wait_until("kubectl run -i ends", Duration::from_secs(90), || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    let out = child.wait_with_output().expect("kubectl's output");
    let (stdout, stderr) = control.succeeded("run -i", &out, &node);
    // The container's stdin ended when kubectl's did: `cat` returned and `end` was printed.
    for line in ["got hello", "second line", "end"] {
        assert!(
            stdout.lines().any(|l| l == line),
            "{line:?} in {stdout}\n{stderr}{}",
            control.logs_tail(&node)
        );
    }
    // --rm: the pod is deleted.
    wait_until("the pod is gone", Duration::from_secs(30), || {
        control.get_json(&["pod", "reader"]).is_none()
    });
}

#[test]
fn run_it_gives_the_container_a_terminal() {
    let (control, _fabric, node) = reachable_node(2);
    let kubectl = format!(
        "kubectl run term -it --restart=Never {IMAGE} -- sh -c \
         'if [ -t 0 ] && [ -t 1 ]; then echo on-a-terminal; fi; read answer; echo \"got-$answer\"'"
    );
    let mut child = Command::new("script")
        .env("KUBECONFIG", control.kubeconfig())
        .env("HOME", control.dir.path())
        .args(["-qfec", &kubectl, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script");
    let mut input = child.stdin.take().expect("stdin");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // kubectl says so once attached; the container is then waiting for its answer.
    let mut seen = Vec::new();
    let attached = rx_until(
        &rx,
        &mut seen,
        "try pressing enter",
        Duration::from_secs(90),
    );
    assert!(
        attached,
        "kubectl attached: {seen:?}{}",
        control.logs_tail(&node)
    );
    input.write_all(b"forty-two\r").expect("type the answer");
    input.flush().expect("flush");
    let answered = rx_until(&rx, &mut seen, "got-forty-two", Duration::from_secs(30));
    assert!(
        answered,
        "the container's answer through its terminal: {seen:?}{}",
        control.logs_tail(&node)
    );
    wait_until("kubectl run -it ends", Duration::from_secs(30), || {
        child.try_wait().ok().flatten().is_some()
    });
    drop(input);
    // Everything the terminal carried is the container's stdout in its log, the typed answer
    // echoed by the terminal included.
    wait_until("the pod Succeeded", Duration::from_secs(30), || {
        control
            .get_json(&["pod", "term"])
            .is_some_and(|p| p["status"]["phase"] == "Succeeded")
    });
    let logs = control.kubectl_ok(&["logs", "term"]);
    for line in ["on-a-terminal", "forty-two", "got-forty-two"] {
        assert!(
            logs.lines().any(|l| l.trim_end_matches('\r') == line),
            "{line:?} in the log: {logs:?}"
        );
    }
}

#[test]
fn debug_node_runs_a_shell_in_the_nodes_namespaces_with_its_root_at_host() {
    let (control, _fabric, node) = reachable_node(3);
    // kubectl's node debugging pod: hostPID, hostNetwork, hostIPC, the node's / at /host,
    // stdin (not stdinOnce: it stays open for the next attach).
    let target = format!("node/{}", node.name);
    // The container waits for a line, so what it prints comes after kubectl attached.
    let out = control.kubectl_with_input(
        &[
            "debug",
            &target,
            "-i",
            "--profile=general",
            IMAGE,
            "--",
            "sh",
            "-c",
            "read x; echo \"read $x\"; echo \"pid1 $(cat /proc/1/comm)\"; \
             echo \"host pid1 $(cat /host/proc/1/comm)\"",
        ],
        b"go\n",
        Duration::from_secs(90),
    );
    let (stdout, stderr) = control.succeeded("debug node", &out, &node);
    // The node's PID 1, seen through the node's PID namespace and through its root.
    let host_init = std::fs::read_to_string("/proc/1/comm").expect("the host's PID 1");
    let host_init = host_init.trim();
    for line in [
        "read go".to_owned(),
        format!("pid1 {host_init}"),
        format!("host pid1 {host_init}"),
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "{line:?} in {stdout}\n{stderr}{}",
            control.logs_tail(&node)
        );
    }
}

/// Reads lines into `seen` until one contains `want` (true) or `timeout` passes (false).
fn rx_until(
    rx: &mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    want: &str,
    timeout: Duration,
) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(want);
                seen.push(line);
                if found {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
    false
}

#[test]
fn debug_node_with_the_sysadmin_profile_is_privileged() {
    let (control, _fabric, node) = reachable_node(6);
    let target = format!("node/{}", node.name);
    // The sysadmin profile makes the container privileged: every capability the node gives,
    // the node's devices, a writable /sys.
    let out = control.kubectl_with_input(
        &[
            "debug",
            &target,
            "-i",
            "--profile=sysadmin",
            IMAGE,
            "--",
            "sh",
            "-c",
            "read x; grep CapEff /proc/self/status; test -c /dev/kmsg && echo has-kmsg; \
             grep ' /sys ' /proc/mounts",
        ],
        b"go\n",
        Duration::from_secs(90),
    );
    let (stdout, stderr) = control.succeeded("debug --profile=sysadmin", &out, &node);
    let ours = std::fs::read_to_string("/proc/self/status").expect("our status");
    let caps = ours
        .lines()
        .find(|l| l.starts_with("CapEff:"))
        .expect("CapEff");
    let sysfs = stdout.lines().find(|l| l.contains(" /sys "));
    assert!(
        stdout.lines().any(|l| l == caps) && stdout.lines().any(|l| l == "has-kmsg"),
        "the node's capabilities ({caps}) and /dev/kmsg: {stdout}\n{stderr}{}",
        control.logs_tail(&node)
    );
    assert!(
        sysfs.is_some_and(|l| l
            .split_whitespace()
            .nth(3)
            .is_some_and(|o| o.starts_with("rw"))),
        "/sys writable: {sysfs:?}"
    );
}
