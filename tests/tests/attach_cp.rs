//! `kubectl attach` and `kubectl cp` with the real kubectl through bosun-control to the
//! node's kubelet API. attach: the output a running container writes from then on, stdout and
//! stderr apart, and kubectl ending with the container; cp: a file into a pod and back out
//! (kubectl runs `tar` in the container through exec), byte for byte.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use bosun_e2e::{reachable_node, stderr, wait_until, Control, Node};

const PODS: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: ticker}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: bosun.test/busybox:1
    command: [sh, -c, 'i=0; while true; do i=$((i+1)); echo "tick $i"; echo "tock $i" >&2; sleep 0.2; done']
---
apiVersion: v1
kind: Pod
metadata: {name: leaver}
spec:
  nodeName: NODE
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: bosun.test/busybox:1
    command: [sh, -c, 'while [ ! -e /tmp/go ]; do echo waiting; sleep 0.2; done; echo bye; exit 0']
"#;

fn debug(control: &Control, node: &Node) -> String {
    let tail = |t: String| {
        let lines: Vec<&str> = t.lines().collect();
        let lines: Vec<&str> = lines.into_iter().filter(|l| !l.contains("phase")).collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    format!(
        "\n--- control log ---\n{}\n--- agent log ---\n{}",
        tail(control.log()),
        tail(node.log())
    )
}

#[test]
fn attach_streams_a_running_containers_output_until_it_ends() {
    let (control, _fabric, node) = reachable_node(1);
    control.apply(&PODS.replace("NODE", &node.name));
    for pod in ["ticker", "leaver"] {
        wait_until(&format!("{pod} runs"), Duration::from_secs(60), || {
            control.container_running(pod)
        });
    }
    let attach = |pod: &str| {
        Command::new("kubectl")
            .env("KUBECONFIG", control.kubeconfig())
            .args(["attach", pod])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl attach")
    };
    // Output from now on, stdout and stderr apart.
    let mut child = attach("ticker");
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    let err = BufReader::new(child.stderr.take().expect("stderr"));
    let errs = std::thread::spawn(move || err.lines().map_while(Result::ok).collect::<Vec<_>>());
    let ticks: Vec<String> = out.lines().map_while(Result::ok).take(3).collect();
    let _ = child.kill();
    let exit = child.wait();
    let errors = errs.join().expect("stderr reader");
    let tock = errors.iter().find(|l| l.starts_with("tock "));
    assert_eq!(
        ticks.len(),
        3,
        "three lines of output: {ticks:?} {exit:?} {errors:?}{}",
        debug(&control, &node)
    );
    let numbers: Vec<u64> = ticks
        .iter()
        .map(|t| {
            t.strip_prefix("tick ")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("a stdout line {t:?}"))
        })
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive ticks {numbers:?}"
    );
    assert!(tock.is_some(), "a stderr line");

    // kubectl ends with the container, exit status 0.
    let mut child = attach("leaver");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Attached once its output arrives; then the container says bye and ends.
    let first = rx.recv_timeout(Duration::from_secs(30));
    assert_eq!(
        first.as_deref(),
        Ok("waiting"),
        "attached to leaver{}",
        debug(&control, &node)
    );
    control.kubectl_ok(&["exec", "leaver", "--", "touch", "/tmp/go"]);
    let mut status = None;
    wait_until("kubectl attach ends", Duration::from_secs(30), || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    let lines: Vec<String> = rx.try_iter().collect();
    assert_eq!(lines.last().map(String::as_str), Some("bye"), "{lines:?}");
    let status = status.expect("an exit status");
    assert!(status.success(), "kubectl attach's exit: {status:?}");
}

#[test]
fn cp_copies_a_file_into_a_pod_and_back() {
    let (control, _fabric, node) = reachable_node(1);
    control.apply(&PODS.replace("NODE", &node.name));
    wait_until("ticker runs", Duration::from_secs(60), || {
        control.container_running("ticker")
    });
    let dir = tempfile::tempdir().expect("a scratch dir");
    let original = dir.path().join("payload.bin");
    let data: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&original, &data).expect("write the payload");
    let into = control.kubectl(&[
        "cp",
        original.to_str().expect("utf-8 path"),
        "ticker:/tmp/payload.bin",
    ]);
    assert!(
        into.status.success(),
        "kubectl cp into the pod: {}{}",
        stderr(&into),
        debug(&control, &node)
    );
    let back = dir.path().join("back.bin");
    let out = control.kubectl(&[
        "cp",
        "ticker:/tmp/payload.bin",
        back.to_str().expect("utf-8 path"),
    ]);
    assert!(
        out.status.success(),
        "kubectl cp out of the pod: {}{}",
        stderr(&out),
        debug(&control, &node)
    );
    let copied = std::fs::read(&back).expect("read the copy");
    assert_eq!(copied.len(), data.len(), "the copy's size");
    assert!(copied == data, "the copy is identical");
}
