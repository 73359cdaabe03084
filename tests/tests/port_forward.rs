//! `kubectl port-forward` with the real kubectl (1.32: SPDY/3.1 inside a WebSocket) through
//! bosun-control to each node's kubelet API and into the pod's netns, on two nodes: an HTTP
//! request and a 10 MB download (sha256 against the pod's own) through `pod/NAME` and
//! `svc/NAME` (kubectl maps the Service port to the pod's targetPort), an HTTP request through
//! `deploy/NAME`, and a port nobody
//! listens on reported as kubectl reports kubelet's error. kubectl listens on loopback only;
//! the pods' ports are reached inside their netns. Also the API's `pods/NAME:PORT/proxy/PATH`
//! and `services/NAME[:PORT]/proxy/PATH` (`kubectl get --raw`), which the control passes to
//! the pod's agent.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bosun_e2e::control::free_port;
use bosun_e2e::{stderr, stdout, wait_until, Control, Fabric, Node, NodeOptions};

/// A web pod on node NODE serving /www on 8080 (index.html names the node, big is 10 MB of
/// random bytes), and a Service `web-N` whose port 80 targets it.
const WEB: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: web-N, labels: {app: web-N}}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: bosun.test/busybox:1
    command: [sh, -c, 'mkdir -p /www && echo "hello from N" > /www/index.html && dd if=/dev/urandom of=/www/big bs=1024 count=10240 2>/dev/null && sha256sum /www/big > /sum && exec httpd -f -p 8080 -h /www']
    ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-N}
spec:
  selector: {app: web-N}
  ports: [{port: 80, targetPort: 8080}]
"#;

/// A Deployment whose one pod runs on node NODE and serves "hello from deploy" on 8080.
const DEPLOY: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web-d}
spec:
  replicas: 1
  selector: {matchLabels: {app: web-d}}
  template:
    metadata: {labels: {app: web-d}}
    spec:
      nodeName: NODE
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: bosun.test/busybox:1
        command: [sh, -c, 'mkdir -p /www && echo "hello from deploy" > /www/index.html && exec httpd -f -p 8080 -h /www']
"#;

/// Control and nodes 1 and 2 on a fabric with a host link; pod and Service `web-N` on each,
/// the pods Running with their file written.
fn cluster() -> (Control, Fabric, Vec<Node>) {
    let control = Control::start();
    let fabric = Fabric::with_host_link();
    let mut nodes = Vec::new();
    for n in 1..=2u8 {
        let options = NodeOptions {
            fabric: Some(&fabric),
            dataplane: false,
            static_pods: false,
        };
        let mut node = Node::with(n, &control, options);
        node.start_agent();
        nodes.push(node);
    }
    for (i, node) in nodes.iter().enumerate() {
        wait_until("the node is Ready", Duration::from_secs(30), || {
            control.node_ready(&node.name)
        });
        let n = (i + 1).to_string();
        control.apply(
            &WEB.replace("NODE", &node.name)
                .replace("-N", &format!("-{n}"))
                .replace("from N", &format!("from {n}")),
        );
    }
    for n in 1..=2 {
        let pod = format!("web-{n}");
        // Running as the API says (what kubectl port-forward checks; exec only needs the
        // container), and its file written.
        wait_until(&format!("{pod} serves"), Duration::from_secs(90), || {
            let phase = control.kubectl(&["get", "pod", &pod, "-o", "jsonpath={.status.phase}"]);
            stdout(&phase).trim() == "Running"
                && control
                    .kubectl(&["exec", &pod, "--", "cat", "/sum"])
                    .status
                    .success()
        });
    }
    (control, fabric, nodes)
}

fn debug(control: &Control, nodes: &[Node]) -> String {
    let tail = |t: String| {
        let lines: Vec<&str> = t.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    let mut out = format!("\n--- control log ---\n{}", tail(control.log()));
    for n in nodes {
        out += &format!("\n--- agent {} log ---\n{}", n.name, tail(n.log()));
    }
    out
}

/// `kubectl port-forward TARGET LOCAL:REMOTE` in the background, its stderr in `errors`;
/// returns once it listens.
fn port_forward(control: &Control, target: &str, local: u16, remote: u16, errors: &Path) -> Child {
    let err = std::fs::File::create(errors).expect("stderr file");
    let mut child = Command::new("kubectl")
        .env("KUBECONFIG", control.kubeconfig())
        .env("HOME", errors.parent().expect("a directory"))
        .args(["port-forward", target, &format!("{local}:{remote}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .expect("run kubectl port-forward");
    let mut out = child.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    // "Forwarding from 127.0.0.1:LOCAL -> REMOTE" once it listens.
    while !String::from_utf8_lossy(&seen).contains("Forwarding from 127.0.0.1") {
        match out.read(&mut byte) {
            Ok(1) => seen.push(byte[0]),
            _ => panic!(
                "kubectl port-forward {target} ended: {}{}",
                String::from_utf8_lossy(&seen),
                std::fs::read_to_string(errors).unwrap_or_default()
            ),
        }
    }
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    child
}

/// `GET path` over HTTP/1.0 to 127.0.0.1:`port`; the body.
fn get(port: u16, path: &str) -> Vec<u8> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connect to kubectl");
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    write!(conn, "GET {path} HTTP/1.0\r\nHost: web\r\n\r\n").expect("send the request");
    let mut response = Vec::new();
    conn.read_to_end(&mut response).expect("read the response");
    let at = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(&response)));
    let head = String::from_utf8_lossy(&response[..at]);
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    response[at + 4..].to_vec()
}

fn sha256(data: &[u8], scratch: &Path) -> String {
    std::fs::write(scratch, data).expect("write the download");
    let out = Command::new("sha256sum")
        .arg(scratch)
        .output()
        .expect("sha256sum");
    stdout(&out)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn port_forward_carries_http_and_10mb_to_pods_on_both_nodes() {
    let (control, _fabric, nodes) = cluster();
    let dir = tempfile::tempdir().expect("a scratch dir");
    for n in 1..=2 {
        let pod = format!("web-{n}");
        let sum = control.kubectl(&["exec", &pod, "--", "cat", "/sum"]);
        let want = stdout(&sum)
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        assert_eq!(want.len(), 64, "the pod's sha256: {}", stderr(&sum));
        for (target, remote) in [(format!("pod/{pod}"), 8080), (format!("svc/{pod}"), 80)] {
            let local = free_port();
            let errors = dir.path().join(format!("{n}-{remote}.err"));
            let mut child = port_forward(&control, &target, local, remote, &errors);
            let index = get(local, "/index.html");
            assert_eq!(
                String::from_utf8_lossy(&index),
                format!("hello from {n}\n"),
                "{target}{}",
                debug(&control, &nodes)
            );
            let big = get(local, "/big");
            assert_eq!(big.len(), 10 * 1024 * 1024, "{target}: the download's size");
            assert_eq!(
                sha256(&big, &dir.path().join("big")),
                want,
                "{target}: the download is intact"
            );
            let _ = child.kill();
            let _ = child.wait();
            let errors = std::fs::read_to_string(&errors).unwrap_or_default();
            assert!(!errors.contains("error occurred"), "{target}: {errors}");
        }
    }
    // deploy/NAME: kubectl picks the Deployment's pod.
    control.apply(&DEPLOY.replace("NODE", &nodes[1].name));
    // Running as the API says (what port-forward checks), and serving its file.
    wait_until("web-d runs", Duration::from_secs(90), || {
        let phase = control.kubectl(&[
            "get",
            "pods",
            "-l",
            "app=web-d",
            "-o",
            "jsonpath={.items[*].status.phase}",
        ]);
        stdout(&phase).trim() == "Running"
            && control
                .kubectl(&["exec", "deploy/web-d", "--", "cat", "/www/index.html"])
                .status
                .success()
    });
    let local = free_port();
    let errors = dir.path().join("deploy.err");
    let mut child = port_forward(&control, "deploy/web-d", local, 8080, &errors);
    let index = get(local, "/index.html");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(String::from_utf8_lossy(&index), "hello from deploy\n");
}

/// `kubectl get --raw PATH`: its output, or its error.
fn raw(control: &Control, path: &str) -> Result<String, String> {
    let out = control.kubectl(&["get", "--raw", path]);
    match out.status.success() {
        true => Ok(stdout(&out)),
        false => Err(stderr(&out)),
    }
}

#[test]
fn proxies_reach_pods_and_services_and_a_refused_port_is_kubectls_error() {
    let (control, _fabric, nodes) = cluster();
    let api = "/api/v1/namespaces/default";
    for n in 1..=2 {
        let want = format!("hello from {n}\n");
        for path in [
            format!("{api}/pods/web-{n}:8080/proxy/index.html"),
            // No port: the pod's first container port.
            format!("{api}/pods/web-{n}/proxy/index.html"),
            // The Service's port 80, by number and as its one unnamed port.
            format!("{api}/services/web-{n}:80/proxy/index.html"),
            format!("{api}/services/http:web-{n}:/proxy/"),
        ] {
            assert_eq!(
                raw(&control, &path),
                Ok(want.clone()),
                "{path}{}",
                debug(&control, &nodes)
            );
        }
    }
    let refused = raw(&control, &format!("{api}/pods/web-1:9999/proxy/")).unwrap_err();
    assert!(refused.to_lowercase().contains("refused"), "{refused}");
    let no_port = raw(&control, &format!("{api}/services/web-1:81/proxy/")).unwrap_err();
    assert!(
        no_port.contains("no service port 81 found for service \"web-1\""),
        "{no_port}"
    );

    let dir = tempfile::tempdir().expect("a scratch dir");
    let local = free_port();
    let errors = dir.path().join("refused.err");
    let mut child = port_forward(&control, "pod/web-2", local, 9999, &errors);
    // The connection is accepted by kubectl, then closed once the error comes back.
    let mut conn = TcpStream::connect(("127.0.0.1", local)).expect("connect to kubectl");
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut rest = Vec::new();
    let _ = conn.read_to_end(&mut rest);
    let text = || std::fs::read_to_string(&errors).unwrap_or_default();
    wait_until(
        "kubectl reports the refusal",
        Duration::from_secs(20),
        || text().contains("connection refused"),
    );
    let _ = child.kill();
    let _ = child.wait();
    let text = text();
    assert!(
        text.contains(&format!("an error occurred forwarding {local} -> 9999")),
        "{text}{}",
        debug(&control, &nodes)
    );
    assert!(
        text.contains("error forwarding port 9999 to pod web-2_default"),
        "{text}"
    );
}
