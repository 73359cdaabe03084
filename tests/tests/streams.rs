//! Streams through bosun-control to the node's kubelet API, with the real kubectl: `kubectl
//! logs` (`-c`, `--tail`, `--previous` after a restart, `-f` following new lines and ending
//! when the container exits), kube-apiserver's texts for a missing or unnamed container, and
//! the kubelet API refusing every caller but the API server (no certificate → 401, a node's
//! certificate → 403, a certificate of another CA → no TLS session). The node sits on a
//! fabric with a host link, so control (in the host netns) reaches the node's InternalIP.

use std::process::Command;
use std::time::{Duration, Instant};

use bosun_e2e::{reachable_node, stderr, stdout, wait_until, Control, Node};

const TALKER: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: talker}
spec:
  nodeName: NODE
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: counter
    image: bosun.test/busybox:1
    command: [sh, -c, 'for i in $(seq 1 20); do echo "line $i"; sleep 0.3; done']
  - name: words
    image: bosun.test/busybox:1
    command: [sh, -c, 'echo one; echo two; echo three; exec sleep 3600']
---
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: bosun.test/busybox:1
    command: [sh, -c, 'echo "instance $(cat /proc/sys/kernel/random/uuid)"; sleep 3; exit 1']
"#;

fn debug(control: &Control, node: &Node) -> String {
    format!(
        "\n--- control log ---\n{}\n--- agent log ---\n{}",
        tail(&control.log()),
        tail(&node.log())
    )
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

fn container_running(control: &Control, pod: &str, container: &str) -> bool {
    control.get_json(&["pod", pod]).is_some_and(|p| {
        p["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["name"] == container && c["state"]["running"].is_object())
    })
}

#[test]
fn kubectl_logs_reads_follows_and_explains() {
    let (control, _fabric, node) = reachable_node(1);
    control.apply(&TALKER.replace("NODE", &node.name));
    let logs = |args: &[&str]| {
        let mut all = vec!["logs"];
        all.extend_from_slice(args);
        control.kubectl(&all)
    };
    let ok = |args: &[&str]| {
        let out = logs(args);
        assert!(
            out.status.success(),
            "kubectl logs {args:?}: {}{}",
            stderr(&out),
            debug(&control, &node)
        );
        stdout(&out)
    };
    wait_until("the talker runs", Duration::from_secs(60), || {
        container_running(&control, "talker", "counter")
            && container_running(&control, "talker", "words")
    });

    // -c and --tail.
    wait_until("words wrote its lines", Duration::from_secs(10), || {
        ok(&["talker", "-c", "words"]) == "one\ntwo\nthree\n"
    });
    assert_eq!(ok(&["talker", "-c", "words", "--tail=2"]), "two\nthree\n");
    let stamped = ok(&["talker", "-c", "words", "--timestamps", "--limit-bytes=200"]);
    assert!(
        stamped
            .lines()
            .all(|l| l.contains('T') && l.ends_with(['e', 'o'])),
        "{stamped}"
    );

    // -f: follows lines written after it started and ends when the container exits.
    let before = ok(&["talker", "-c", "counter"]);
    assert!(
        !before.contains("line 20"),
        "the counter already finished: {before}"
    );
    let started = Instant::now();
    let follow = control.spawn_kubectl(&["logs", "-f", "talker", "-c", "counter"]);
    let out = follow.wait_with_output().expect("kubectl logs -f");
    let followed = stdout(&out);
    assert!(out.status.success(), "kubectl logs -f: {}", stderr(&out));
    let expected: String = (1..=20).map(|i| format!("line {i}\n")).collect();
    assert_eq!(followed, expected, "{}", debug(&control, &node));
    assert!(started.elapsed() < Duration::from_secs(30));

    // kube-apiserver's texts.
    let raw = |query: &str| {
        let path = format!("/api/v1/namespaces/default/pods/talker/log{query}");
        control.kubectl(&["get", "--raw", &path])
    };
    let unnamed = raw("");
    assert!(
        stderr(&unnamed).contains(
            "a container name must be specified for pod talker, choose one of: [counter words]"
        ),
        "{}",
        stderr(&unnamed)
    );
    let missing = raw("?container=nope");
    assert!(
        stderr(&missing).contains("container nope is not valid for pod talker"),
        "{}",
        stderr(&missing)
    );
    let no_previous = logs(&["talker", "-c", "words", "--previous"]);
    assert!(
        stderr(&no_previous)
            .contains("previous terminated container \"words\" in pod \"talker\" not found"),
        "{}",
        stderr(&no_previous)
    );

    // --previous after a restart: the instance before the running one.
    wait_until(
        "the crasher restarted and runs",
        Duration::from_secs(60),
        || {
            control.get_json(&["pod", "crasher"]).is_some_and(|p| {
                let c = &p["status"]["containerStatuses"][0];
                c["restartCount"].as_u64().unwrap_or(0) >= 1 && c["state"]["running"].is_object()
            })
        },
    );
    let previous = ok(&["crasher", "--previous"]);
    assert!(previous.starts_with("instance "), "{previous}");
    // The new instance may not have written its line the moment its status says running.
    wait_until(
        "the running instance's own log",
        Duration::from_secs(20),
        || {
            let current = ok(&["crasher"]);
            current.starts_with("instance ") && current != previous
        },
    );
}

/// `client-certificate-data`/`client-key-data` of a kubeconfig written to PEM files.
fn client_pem(kubeconfig: &std::path::Path, dir: &std::path::Path) -> (String, String) {
    let text = std::fs::read_to_string(kubeconfig).expect("read the node kubeconfig");
    let field = |name: &str| {
        let line = text
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("{name} in {}", kubeconfig.display()));
        let out = Command::new("base64")
            .arg("-d")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().expect("stdin").write_all(line.as_bytes())?;
                c.wait_with_output()
            })
            .expect("base64 -d");
        let path = dir.join(name);
        std::fs::write(&path, &out.stdout).expect("write pem");
        path.display().to_string()
    };
    (field("client-certificate-data"), field("client-key-data"))
}

/// curl's HTTP status for the kubelet's log URL (`000` when no HTTP exchange happened).
fn kubelet_status(url: &str, cert: Option<(&str, &str)>) -> String {
    let mut c = Command::new("curl");
    c.args([
        "-sk",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "10",
        url,
    ]);
    if let Some((cert, key)) = cert {
        c.args(["--cert", cert, "--key", key]);
    }
    let out = c.output().expect("run curl");
    stdout(&out)
}

#[test]
fn the_kubelet_api_admits_only_the_api_server() {
    let (control, _fabric, node) = reachable_node(2);
    let url = format!("https://{}:10250/containerLogs/default/x/y", node.ip);
    let node_json = control.get_json(&["node", &node.name]).expect("node");
    assert_eq!(
        node_json["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"],
        10250
    );
    let dir = tempfile::tempdir().expect("tempdir");

    wait_until("the kubelet API answers", Duration::from_secs(10), || {
        kubelet_status(&url, None) != "000"
    });
    assert_eq!(
        kubelet_status(&url, None),
        "401",
        "{}",
        debug(&control, &node)
    );

    // The API server reaches it for its clients: `nodes/proxy` passes a request on to the
    // kubelet API and its answer back, and the kubelet's own refusals pass back too.
    let proxied = format!("/api/v1/nodes/{}/proxy/metrics/resource", node.name);
    let metrics = control.kubectl_ok(&["get", "--raw", &proxied]);
    assert!(
        metrics.contains("node_cpu_usage_seconds_total"),
        "{metrics}"
    );
    let with_port = format!("/api/v1/nodes/{}:10250/proxy/metrics/resource", node.name);
    assert!(control
        .kubectl_ok(&["get", "--raw", &with_port])
        .contains("node_memory_working_set_bytes"));
    let health = format!("/api/v1/nodes/{}/proxy/healthz", node.name);
    assert_eq!(control.kubectl_ok(&["get", "--raw", &health]).trim(), "ok");
    let own = format!("/api/v1/nodes/{}/proxy/metrics", node.name);
    let own = control.kubectl_ok(&["get", "--raw", &own]);
    assert!(own.contains("bosun_probe_runs"), "{own}");
    let missing = format!("/api/v1/nodes/{}/proxy/no-such-path", node.name);
    let out = control.kubectl(&["get", "--raw", &missing]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(stderr(&out).contains("NotFound"), "{}", stderr(&out));

    let (cert, key) = client_pem(node.kubeconfig(), dir.path());
    assert_eq!(kubelet_status(&url, Some((&cert, &key))), "403");

    let (other_cert, other_key) = (dir.path().join("other.crt"), dir.path().join("other.key"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args([
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=kube-apiserver-kubelet-client",
        ])
        .arg("-keyout")
        .arg(&other_key)
        .arg("-out")
        .arg(&other_cert)
        .output()
        .expect("run openssl");
    assert!(made.status.success(), "openssl: {}", stderr(&made));
    let other = (
        other_cert.display().to_string(),
        other_key.display().to_string(),
    );
    assert_eq!(kubelet_status(&url, Some((&other.0, &other.1))), "000");
}
