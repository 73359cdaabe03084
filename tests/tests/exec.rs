//! `kubectl exec` with the real kubectl through bosun-control to the node's kubelet API and
//! into the container: stdout and stderr apart, the command's exit code as kubectl's, stdin
//! piped through (`-i`, closed at EOF), `-c` picking a container of two (its own env), a
//! command that does not exist, kube-apiserver's texts for an unknown container and a pod on
//! no node, a node's
//! credentials refused, and `-it` through a pty (`tty` names /dev/pts/N, `stty size` is the
//! terminal kubectl runs in).

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use bosun_e2e::{reachable_node, stderr, stdout, wait_until, Control, Fabric, Node};

const DUO: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: duo}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  containers:
  - name: a
    image: bosun.test/busybox:1
    command: [sleep, "3600"]
    env: [{name: WHO, value: first}]
  - name: b
    image: bosun.test/busybox:1
    command: [sleep, "3600"]
    env: [{name: WHO, value: second}]
"#;

/// Control and one node on a fabric the host is plugged into, the pod `duo` running.
fn cluster() -> (Control, Fabric, Node) {
    let (control, fabric, node) = reachable_node(1);
    control.apply(&DUO.replace("NODE", &node.name));
    wait_until("duo runs", Duration::from_secs(60), || {
        control.get_json(&["pod", "duo"]).is_some_and(|p| {
            let running =
                |i: usize| p["status"]["containerStatuses"][i]["state"]["running"].is_object();
            running(0) && running(1)
        })
    });
    (control, fabric, node)
}

/// kubectl with `kubeconfig`, `input` on its stdin.
fn kubectl(
    kubeconfig: &std::path::Path,
    home: &std::path::Path,
    args: &[&str],
    input: &[u8],
) -> Output {
    let mut child = Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .arg("--request-timeout=20s")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input).expect("write kubectl's stdin");
    drop(stdin);
    child.wait_with_output().expect("kubectl")
}

fn debug(control: &Control, node: &Node) -> String {
    let tail = |t: String| {
        let lines: Vec<&str> = t.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    format!(
        "\n--- control log ---\n{}\n--- agent log ---\n{}",
        tail(control.log()),
        tail(node.log())
    )
}

#[test]
fn kubectl_exec_streams_exit_codes_stdin_and_a_tty() {
    let (control, _fabric, node) = cluster();
    let home = tempfile::tempdir().expect("tempdir");
    let admin = control.kubeconfig();
    let exec = |args: &[&str], input: &[u8]| {
        let mut all = vec!["exec", "duo"];
        all.extend_from_slice(args);
        kubectl(&admin, home.path(), &all, input)
    };

    // stdout and stderr apart; the exit code is kubectl's.
    let out = exec(
        &[
            "-c",
            "a",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
        b"",
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}{}",
        stderr(&out),
        debug(&control, &node)
    );
    assert_eq!(stdout(&out), "out\n");
    assert!(stderr(&out).starts_with("err\n"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("command terminated with exit code 3"),
        "{}",
        stderr(&out)
    );

    // stdin through, closed at its end (cat exits).
    let out = exec(&["-i", "-c", "a", "--", "cat"], b"hi\nthere\n");
    assert!(
        out.status.success(),
        "{}{}",
        stderr(&out),
        debug(&control, &node)
    );
    assert_eq!(stdout(&out), "hi\nthere\n");

    // -c: the other container, with its own environment.
    let out = exec(&["-c", "b", "--", "sh", "-c", "echo $WHO"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "second\n");

    // A command that does not exist.
    let out = exec(&["-c", "a", "--", "no-such-command"], b"");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no-such-command: executable file not found in $PATH"),
        "{}",
        stderr(&out)
    );

    // kube-apiserver's text for a container the pod does not have.
    let out = exec(&["-c", "nope", "--", "true"], b"");
    assert!(
        stderr(&out).contains("container nope is not valid for pod duo"),
        "{}",
        stderr(&out)
    );

    // A pod no node runs yet (its nodeSelector matches none).
    control.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: nowhere}\nspec:\n  nodeSelector: {absent: label}\n  containers: [{name: c, image: bosun.test/busybox:1}]\n",
    );
    let out = kubectl(&admin, home.path(), &["exec", "nowhere", "--", "true"], b"");
    assert!(
        stderr(&out).contains("pod nowhere does not have a host assigned"),
        "{}",
        stderr(&out)
    );

    // A node may not exec into pods, even its own.
    let node_config = control.node_kubeconfig(&node.name);
    let out = kubectl(
        &node_config,
        home.path(),
        &["exec", "duo", "-c", "a", "--", "true"],
        b"",
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot create resource \"pods/exec\""),
        "{}",
        stderr(&out)
    );

    // -it: a pty in the container, sized like kubectl's terminal (script gives it one).
    let inner = "stty rows 33 cols 111; kubectl --request-timeout=20s exec -it duo -c a -- sh -c 'tty; stty size'";
    let out = Command::new("script")
        .args(["-qec", inner, "/dev/null"])
        .env("KUBECONFIG", &admin)
        .env("HOME", home.path())
        .stdin(Stdio::null())
        .output()
        .expect("run script");
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}{}{}",
        stderr(&out),
        debug(&control, &node)
    );
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(text.contains("33 111"), "{text}");
}
