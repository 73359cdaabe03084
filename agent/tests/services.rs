//! Kernel tests of the service dataplane, end to end through the agent: ClusterIP Services in
//! the manifest directory, busybox httpd pods on the CNI network, and clients either in a pod
//! or in a process placed in the pods' cgroup tree and the node netns (the socket hooks
//! translate every connect made there). Each test has its own node netns (no route out),
//! cgroup root, bpffs pin dir and pod CIDR; the harness unpins everything on drop.

mod common;
mod netns;

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{stdout, Node};
use netns::{bosun_cni_dir, node_netns, Netns};

/// A node with its network in its own netns: subnet `n` gives 192.168.n.1 and 10.244.n.0/24.
fn service_node(name: &str, n: u8, extra: &[&str]) -> (Netns, Node) {
    let node_ns = node_netns(&format!("192.168.{n}.1"));
    // Forwarding on before any veth exists so each inherits it (bosun-cni enables it at the
    // first ADD, which can race with concurrent ADDs and leave later veths without it).
    netns::run(
        "ip",
        &[
            "netns",
            "exec",
            &node_ns.name,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ],
    );
    let mut node = Node::new(name);
    let conf = node.base.join("cni");
    let mut flags = vec![
        "--network".to_string(),
        "cni".into(),
        "--node-netns".into(),
        node_ns.path().display().to_string(),
        "--cni-conf-dir".into(),
        conf.display().to_string(),
        "--cni-bin-dir".into(),
        bosun_cni_dir().display().to_string(),
        "--pod-cidr".into(),
        format!("10.244.{n}.0/24"),
    ];
    flags.extend(extra.iter().map(|s| s.to_string()));
    node.extra_flags = flags;
    (node_ns, node)
}

/// A busybox httpd pod serving its own hostname, ready when it answers on 8080 (or on
/// `probe_port`, to make a pod that never gets ready).
fn web_pod(name: &str, probe_port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: web}}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: httpd\n    image: bosun.test/busybox:1\n    command: [sh, -c, 'mkdir -p /tmp/www && hostname > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www']\n    ports: [{{name: http, containerPort: 8080}}]\n    readinessProbe: {{httpGet: {{port: {probe_port}}}, periodSeconds: 1}}\n"
    )
}

fn service(name: &str, vip: &str, selector: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  clusterIP: {vip}\n  selector: {{{selector}}}\n  ports: [{{name: http, port: 80, targetPort: http}}]\n"
    )
}

/// The v2 cgroup of the pods' tree (hybrid hosts: under /sys/fs/cgroup/unified).
fn v2_root(node: &Node) -> PathBuf {
    let hybrid = PathBuf::from("/sys/fs/cgroup/unified");
    let v2 = if hybrid.is_dir() {
        hybrid
    } else {
        PathBuf::from("/sys/fs/cgroup")
    };
    v2.join(&node.cgroup_root)
}

/// Starts a busybox `sh -c script` in the pods' cgroup tree (joined before entering the node
/// netns) and in the node netns, where pod IPs are routed.
fn spawn_client(node: &Node, ns: &Netns, script: &str) -> Child {
    let cg = v2_root(node).join("test-client");
    std::fs::create_dir_all(&cg).expect("client cgroup");
    Command::new("/bin/busybox")
        .args([
            "sh",
            "-c",
            r#"echo $$ > "$1" && exec nsenter --net="$2" /bin/busybox sh -c "$3""#,
            "sh",
        ])
        .arg(cg.join("cgroup.procs"))
        .arg(ns.path())
        .arg(script)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn client")
}

fn run_client(node: &Node, ns: &Netns, script: &str) -> Output {
    spawn_client(node, ns, script)
        .wait_with_output()
        .expect("client output")
}

/// `n` requests to `url`, one line per request: the answer, or FAIL.
fn requests(url: &str, n: u32) -> String {
    format!("for i in $(seq 1 {n}); do timeout 3 wget -q -O - {url} || echo FAIL; done")
}

/// Waits until a request through the VIP succeeds (the dataplane syncs once per second).
fn wait_routed(node: &Node, ns: &Netns, url: &str) {
    let script = format!("for i in $(seq 1 60); do timeout 2 wget -q -O /dev/null {url} && exit 0; sleep 0.2; done; exit 1");
    let out = run_client(node, ns, &script);
    assert!(
        out.status.success(),
        "{url} never answered\nagent log:\n{}",
        node.daemon_log()
    );
}

fn count_lines(text: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        *counts.entry(line.to_string()).or_default() += 1;
    }
    counts
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn scrape(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics connect");
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .expect("metrics write");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("metrics read");
    body
}

/// The value of `name{namespace="default",name="<service>"}` in a metrics scrape.
fn metric(text: &str, name: &str, service: &str) -> Option<f64> {
    let service_label = format!("name=\"{service}\"");
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| l.contains("namespace=\"default\"") && l.contains(&service_label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A client's stdout lines, collected by a thread as they arrive.
struct ClientLines {
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    reader: std::thread::JoinHandle<()>,
}

impl ClientLines {
    fn follow(child: &mut Child) -> ClientLines {
        let out = child.stdout.take().expect("client stdout");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().expect("lines").push(line);
            }
        });
        ClientLines { lines, reader }
    }

    fn count(&self) -> usize {
        self.lines.lock().expect("lines").len()
    }

    /// Every line, once the client closed its stdout.
    fn finish(self) -> Vec<String> {
        self.reader.join().expect("reader thread");
        let lines = self.lines.lock().expect("lines");
        lines.clone()
    }

    fn wait_for(&self, count: usize, what: &str) {
        common::wait_until(what, Duration::from_secs(60), || self.count() >= count);
    }
}

fn wait_ready(node: &Node, names: &[&str]) {
    for name in names {
        node.wait_pod(name, "ready", Duration::from_secs(60), |p| {
            p["ready"] == true
        });
    }
}

#[test]
fn cluster_ip_spreads_over_ready_pods_skips_unready_and_deleted_ones_and_refuses_when_empty() {
    let port = free_port();
    let port_flag = format!("127.0.0.1:{port}");
    let (ns, mut node) = service_node("svc", 81, &["--metrics-addr", &port_flag]);
    node.start_daemon();
    for i in 1..=3 {
        node.apply(
            &format!("web-{i}.yaml"),
            &web_pod(&format!("web-{i}"), 8080),
        );
    }
    node.apply("web-unready.yaml", &web_pod("web-unready", 9999));
    node.apply("svc.yaml", &service("web", "10.96.81.10", "app: web"));
    node.apply(
        "empty.yaml",
        &service("empty", "10.96.81.11", "app: nobody"),
    );
    wait_ready(&node, &["web-1", "web-2", "web-3"]);
    let url = "http://10.96.81.10/";
    wait_routed(&node, &ns, url);

    // A client pod: 30 requests through the ClusterIP reach all three ready pods.
    node.apply(
        "client.yaml",
        &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: client}}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: c\n    image: bosun.test/busybox:1\n    command: [sh, -c, '{}']\n", requests(url, 30)),
    );
    let client = node.wait_pod("client", "done", Duration::from_secs(60), |p| {
        p["phase"] == "Succeeded" || p["phase"] == "Failed"
    });
    assert_eq!(client["phase"], "Succeeded", "{client:#}");
    let spread = count_lines(&node.logs(&["client"]));
    println!("client pod spread over 30 requests: {spread:?}");
    let keys: Vec<&str> = spread.keys().map(String::as_str).collect();
    assert_eq!(keys, ["web-1", "web-2", "web-3"], "{spread:?}");

    let metrics = scrape(port);
    let connections = metric(&metrics, "bosun_service_connections_total", "web");
    assert!(
        connections.is_some_and(|n| n >= 30.0),
        "{connections:?}\n{metrics}"
    );

    // A deleted pod gets no new connections: wait until it is gone and the dataplane shows
    // the two remaining backends.
    node.remove("web-1.yaml");
    node.wait_gone("web-1", Duration::from_secs(30));
    common::wait_until("two backends for web", Duration::from_secs(10), || {
        metric(&scrape(port), "bosun_service_backends", "web") == Some(2.0)
    });
    let out = run_client(&node, &ns, &requests(url, 20));
    let spread = count_lines(&stdout(&out));
    assert!(
        !spread.contains_key("web-1"),
        "deleted pod answered: {spread:?}"
    );
    assert!(!spread.contains_key("FAIL"), "{spread:?}");

    // No ready endpoint: refused at once, not a timeout.
    let started = Instant::now();
    let out = run_client(
        &node,
        &ns,
        "timeout 5 wget -q -O - http://10.96.81.11/; echo rc=$?",
    );
    let took = started.elapsed();
    let text = format!("{}{}", stdout(&out), common::stderr(&out));
    println!("empty service answered in {took:?}: {text}");
    assert!(text.contains("refused"), "{text}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn agent_restart_during_a_request_loop_fails_no_request() {
    let (ns, mut node) = service_node("svcrestart", 82, &[]);
    node.start_daemon();
    for i in 1..=3 {
        node.apply(
            &format!("web-{i}.yaml"),
            &web_pod(&format!("web-{i}"), 8080),
        );
    }
    node.apply("svc.yaml", &service("web", "10.96.82.10", "app: web"));
    wait_ready(&node, &["web-1", "web-2", "web-3"]);
    let url = "http://10.96.82.10/";
    wait_routed(&node, &ns, url);

    // One line per request, read as it comes: the loop must serve requests before the stop,
    // while no agent runs, and after the new agent adopted the dataplane.
    let n = 400;
    let script = format!(
        "for i in $(seq 1 {n}); do if timeout 3 wget -q -O /dev/null {url}; then echo ok; else echo fail; fi; sleep 0.03; done"
    );
    let mut client = spawn_client(&node, &ns, &script);
    let lines = ClientLines::follow(&mut client);
    lines.wait_for(20, "requests before the stop");
    node.stop_daemon();
    let at_stop = lines.count();
    lines.wait_for(at_stop + 20, "requests while no agent runs");
    node.start_daemon();
    common::wait_until("the new agent to adopt", Duration::from_secs(20), || {
        node.daemon_log().contains("adopted=true")
    });
    let at_adoption = lines.count();
    lines.wait_for(at_adoption + 20, "requests after the adoption");
    assert!(
        at_adoption < n as usize,
        "the loop ended before the new agent adopted the dataplane"
    );
    let status = client.wait().expect("client");
    assert!(status.success(), "{status}");
    let results = lines.finish();
    let failed = results.iter().filter(|l| l.as_str() != "ok").count();
    assert_eq!(
        (results.len(), failed),
        (n as usize, 0),
        "{results:?}\n{}",
        node.daemon_log()
    );
    assert!(
        node.daemon_log().contains("adopted=true"),
        "the new agent adopts the pinned dataplane"
    );
}

#[test]
fn ten_thousand_services_full_sync_completes() {
    let (_ns, mut node) = service_node("svc10k", 83, &[]);
    // Selector-less Services with EndpointSlices of 10 endpoints each, one JSON stream.
    let mut text = String::new();
    for i in 0..10_000u32 {
        let vip = format!("10.96.{}.{}", 100 + i / 250, 1 + i % 250);
        text.push_str(&format!(
            r#"{{"apiVersion":"v1","kind":"Service","metadata":{{"name":"s{i}"}},"spec":{{"clusterIP":"{vip}","ports":[{{"port":80}}]}}}}"#
        ));
        let eps: Vec<String> = (0..10)
            .map(|e| format!(r#"{{"addresses":["10.250.{}.{}"]}}"#, i % 250, 1 + e))
            .collect();
        text.push_str(&format!(
            r#"{{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{{"name":"s{i}-1","labels":{{"kubernetes.io/service-name":"s{i}"}}}},"addressType":"IPv4","endpoints":[{}],"ports":[{{"port":8080}}]}}"#,
            eps.join(",")
        ));
        text.push('\n');
    }
    node.apply("10k.json", &text);
    let started = Instant::now();
    node.start_daemon();
    common::wait_until("a 10k-service sync", Duration::from_secs(120), || {
        node.daemon_log().contains("upserted=10000")
    });
    let log = node.daemon_log();
    let line = log
        .lines()
        .find(|l| l.contains("upserted=10000"))
        .unwrap_or_default();
    println!(
        "10k services x 10 endpoints: {line}\n(agent start to synced: {:?})",
        started.elapsed()
    );
    assert!(line.contains("failed=0"), "{line}");
}

const UDP_SERVER: &str = "import socket, sys\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind((sys.argv[1], 5353))\nwhile True:\n    data, peer = s.recvfrom(100)\n    s.sendto(sys.argv[1].encode(), peer)\n";

const UDP_CLIENT: &str = "import collections, socket, sys\nvip, n = sys.argv[1], int(sys.argv[2])\nseen, wrong = collections.Counter(), []\nfor _ in range(n):\n    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n    s.settimeout(2)\n    s.sendto(b'ping', (vip, 53))\n    data, src = s.recvfrom(100)\n    if src != (vip, 53):\n        wrong.append(src)\n    seen[data.decode()] += 1\n    s.close()\nprint(sorted(seen.items()), 'wrong sources:', wrong)\n";

/// Kills the UDP servers (children of this test) on drop.
struct Servers(Vec<Child>);

impl Drop for Servers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn udp_cluster_ip_reaches_every_endpoint_and_replies_come_from_the_vip() {
    // No pods: a selector-less Service whose EndpointSlice names two UDP servers in the node
    // netns; the dataplane runs with --network none (it blackholes the service CIDR itself).
    let node_ns = node_netns("192.168.84.1");
    node_ns.ip(&["addr", "add", "192.168.84.2/32", "dev", "lo"]);
    let mut node = Node::new("svcudp");
    node.extra_flags = vec![
        "--network".into(),
        "none".into(),
        "--dataplane".into(),
        "ebpf".into(),
        "--node-netns".into(),
        node_ns.path().display().to_string(),
    ];
    let server_py = node.base.join("udp_server.py");
    let client_py = node.base.join("udp_client.py");
    std::fs::write(&server_py, UDP_SERVER).expect("write server");
    std::fs::write(&client_py, UDP_CLIENT).expect("write client");
    let mut servers = Servers(Vec::new());
    for ip in ["192.168.84.1", "192.168.84.2"] {
        let child = Command::new("nsenter")
            .arg(format!("--net={}", node_ns.path().display()))
            .arg("python3")
            .arg(&server_py)
            .arg(ip)
            .spawn()
            .expect("udp server");
        servers.0.push(child);
    }
    node.apply(
        "dns.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: dns}\nspec:\n  clusterIP: 10.96.84.53\n  ports: [{name: dns, port: 53, protocol: UDP}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: dns-1\n  labels: {kubernetes.io/service-name: dns}\naddressType: IPv4\nendpoints: [{addresses: [192.168.84.1]}, {addresses: [192.168.84.2]}]\nports: [{name: dns, port: 5353, protocol: UDP}]\n",
    );
    node.start_daemon();
    common::wait_until("the dns service synced", Duration::from_secs(20), || {
        node.daemon_log().contains("dataplane sync upserted=1")
    });
    let routes = stdout(&node_ns.ip(&["route", "show"]));
    assert!(routes.contains("blackhole 10.96.0.0/12"), "{routes}");
    common::wait_until("both UDP servers bound", Duration::from_secs(10), || {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", node_ns.path().display()))
            .args(["ss", "-Hunl"])
            .output()
            .expect("ss");
        let sockets = String::from_utf8_lossy(&out.stdout);
        sockets.contains("192.168.84.1:5353") && sockets.contains("192.168.84.2:5353")
    });
    let script = format!("exec python3 {} 10.96.84.53 20", client_py.display());
    let out = run_client(&node, &node_ns, &script);
    let text = stdout(&out);
    println!("udp through the ClusterIP: {text}");
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(
        text.contains("('192.168.84.1',") && text.contains("('192.168.84.2',"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("wrong sources: []"), "{text}");
    drop(servers);
}
