//! Cluster DNS from a pod, with the real kubectl: one node on a fabric (the eBPF dataplane
//! steers the kube-dns ClusterIP to the node's own DNS server), a busybox client resolving
//! `web.default.svc.cluster.local` and the short name `web` (search domains of ClusterFirst)
//! to the ClusterIP, a headless Service to every ready pod (a pod with hostname + subdomain:
//! its name, its PTR, its FQDN in its /etc/hosts), an ExternalName to its CNAME, a
//! name outside the cluster through the test's own upstream resolver (a tiny DNS server in the
//! node's netns on 127.0.0.1:53, the only `nameserver` of the node's `--resolv-conf`), a pod
//! leaving a headless Service dropped from the answers within two seconds, and `kubectl
//! cluster-info` listing CoreDNS.

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bosun_e2e::{stdout, wait_until, Control, Fabric, Node, NodeOptions};
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// The only name the test's upstream knows.
const OUTSIDE: &str = "outside.example.";
const OUTSIDE_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);

const APPS: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: bosun.test/busybox:1, command: [sleep, "3600"]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, labels: {app: db}}
spec:
  nodeName: NODE
  hostname: db-0
  subdomain: db
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: bosun.test/busybox:1, command: [sleep, "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: db-1, labels: {app: db}}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: bosun.test/busybox:1, command: [sleep, "3600"]}
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec:
  type: ExternalName
  externalName: outside.example
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: bosun.test/busybox:1, command: [sleep, "3600"]}
"#;

/// A DNS server on 127.0.0.1:53 in `node`'s netns answering [`OUTSIDE`] and NXDOMAIN for
/// everything else; counts the queries it answered. Ends with the process.
fn upstream(node: &Node) -> Arc<AtomicUsize> {
    let socket = node
        .netns
        .run_in(|| UdpSocket::bind("127.0.0.1:53"))
        .expect("bind the test's upstream resolver in the node's netns");
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut reply = Message::new();
            reply
                .set_id(query.id())
                .set_message_type(MessageType::Response)
                .set_recursion_available(true)
                .add_queries(query.queries().to_vec());
            match query.queries().first() {
                Some(q) if q.name().to_ascii().eq_ignore_ascii_case(OUTSIDE) => {
                    if q.query_type() == RecordType::A {
                        let name = Name::from_ascii(OUTSIDE).expect("name");
                        reply.add_answer(Record::from_rdata(name, 60, RData::A(A(OUTSIDE_IP))));
                    }
                }
                _ => {
                    reply.set_response_code(ResponseCode::NXDomain);
                }
            }
            seen.fetch_add(1, Ordering::SeqCst);
            if let Ok(bytes) = reply.to_vec() {
                let _ = socket.send_to(&bytes, from);
            }
        }
    });
    count
}

/// Polls `condition` until it holds or `timeout` passes; whether it held.
fn wait_for(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `nslookup ARGS` (space-separated) in the client pod: its stdout and stderr.
fn nslookup(control: &Control, args: &str) -> String {
    let mut argv = vec!["exec", "client", "--", "nslookup"];
    argv.extend(args.split(' '));
    let out = control.kubectl(&argv);
    format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr))
}

fn pod_ip(control: &Control, pod: &str) -> String {
    let p = control.get_json(&["pod", pod]).expect("pod");
    p["status"]["podIP"]
        .as_str()
        .unwrap_or_default()
        .to_string()
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
fn pods_resolve_services_by_name_and_the_rest_through_the_nodes_resolvers() {
    let control = Control::start();
    let fabric = Fabric::with_host_link();
    let options = NodeOptions {
        fabric: Some(&fabric),
        dataplane: true,
        static_pods: false,
    };
    let mut node = Node::with(1, &control, options);
    let queries = upstream(&node);
    std::fs::write(
        node.resolv_conf(),
        "nameserver 127.0.0.1\nsearch corp.test\n",
    )
    .expect("write the node's resolv.conf");
    node.start_agent();
    wait_until("the node is Ready", Duration::from_secs(30), || {
        control.node_ready(&node.name)
    });
    control.apply(&APPS.replace("NODE", &node.name));
    wait_until("the pods run", Duration::from_secs(60), || {
        ["web", "db-0", "db-1", "client"].iter().all(|p| {
            control.get_json(&["pod", p]).is_some_and(|p| {
                p["status"]["containerStatuses"][0]["state"]["running"].is_object()
            })
        })
    });
    let resolv = control.kubectl_ok(&["exec", "client", "--", "cat", "/etc/resolv.conf"]);
    assert_eq!(
        resolv,
        "search default.svc.cluster.local svc.cluster.local cluster.local corp.test\nnameserver 10.96.0.10\noptions ndots:5\n"
    );
    let info = control.kubectl_ok(&["cluster-info"]);
    assert!(info.contains("CoreDNS is running at"), "{info}");
    let web_ip = control.kubectl_ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);

    // busybox's nslookup prints each answer as `Address: IP` (the server's line has a tab).
    let mut last = String::new();
    let answers = |args: &str, last: &mut String| {
        *last = nslookup(&control, args);
        let mut ips: Vec<String> = last
            .lines()
            .filter_map(|l| l.strip_prefix("Address: "))
            .map(str::to_string)
            .collect();
        ips.sort();
        ips.dedup();
        ips
    };
    let ok = wait_for(Duration::from_secs(20), || {
        answers("web.default.svc.cluster.local", &mut last) == [web_ip.clone()]
    });
    assert!(ok, "web by FQDN: {last}{}", debug(&control, &node));
    let short = answers("web", &mut last);
    assert_eq!(
        short,
        std::slice::from_ref(&web_ip),
        "web by short name: {last}"
    );
    let srv = nslookup(
        &control,
        "-type=srv _http._tcp.web.default.svc.cluster.local",
    );
    assert!(
        srv.contains("service = 0 100 80 web.default.svc.cluster.local"),
        "SRV: {srv}"
    );
    let ptr = nslookup(&control, &web_ip);
    assert!(
        ptr.contains("name = web.default.svc.cluster.local"),
        "PTR: {ptr}"
    );
    let (db0, db1) = (pod_ip(&control, "db-0"), pod_ip(&control, "db-1"));
    let mut both = vec![db0.clone(), db1.clone()];
    both.sort();
    let ok = wait_for(Duration::from_secs(20), || {
        answers("db.default.svc.cluster.local", &mut last) == both
    });
    assert!(ok, "headless db: every ready pod ({db0}, {db1}): {last}");
    let by_hostname = answers("db-0.db.default.svc.cluster.local", &mut last);
    assert_eq!(
        by_hostname,
        std::slice::from_ref(&db0),
        "db-0 by hostname: {last}"
    );
    // kubelet's /etc/hosts for a pod with hostname + subdomain, and its PTR.
    let hosts = control.kubectl_ok(&["exec", "db-0", "--", "cat", "/etc/hosts"]);
    assert!(
        hosts.contains(&format!(
            "\n{db0}\tdb-0.db.default.svc.cluster.local\tdb-0\n"
        )),
        "db-0's /etc/hosts: {hosts}"
    );
    let ptr = nslookup(&control, &db0);
    assert!(
        ptr.contains("name = db-0.db.default.svc.cluster.local"),
        "PTR of db-0: {ptr}"
    );
    let ext = nslookup(&control, "-type=cname ext.default.svc.cluster.local");
    assert!(
        ext.contains("canonical name = outside.example"),
        "ExternalName: {ext}"
    );
    let before = queries.load(Ordering::SeqCst);
    let outside = answers("outside.example", &mut last);
    assert_eq!(outside, [OUTSIDE_IP.to_string()], "forwarded: {last}");
    assert!(
        queries.load(Ordering::SeqCst) > before,
        "the test's upstream answered"
    );
    let missing = nslookup(&control, "nope.default.svc.cluster.local");
    assert!(missing.contains("NXDOMAIN"), "{missing}");

    // db-1 leaves the Service: gone from the answers within two seconds of its slice change.
    control.kubectl_ok(&["label", "pod", "db-1", "app=gone", "--overwrite"]);
    wait_until(
        "db-1 leaves the EndpointSlice",
        Duration::from_secs(20),
        || {
            let slices = control.kubectl_ok(&[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=db",
                "-o",
                "json",
            ]);
            !slices.contains(&format!("\"{db1}\""))
        },
    );
    let changed = Instant::now();
    let ok = wait_for(Duration::from_secs(5), || {
        answers("db.default.svc.cluster.local", &mut last) == [db0.clone()]
    });
    let took = changed.elapsed();
    assert!(ok, "db-1 still answered: {last}");
    assert!(
        took < Duration::from_secs(2) + Duration::from_millis(800),
        "took {took:?}"
    );
}
