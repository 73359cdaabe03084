//! A two-node cluster driven by the real kubectl: bosun-control, two agents in netns plugged
//! into one fabric (no route out), each running the eBPF dataplane. A Deployment behind a
//! Service is spread over both nodes; a client pod on one node reaches pods on the other
//! through the ClusterIP (the agent programs the API's Services and EndpointSlices, and routes
//! to the other node's pod CIDR from its Node object); scaling up and down is followed by
//! the pods on the nodes and the backends in every node's maps; deleting the Deployment and
//! the Service removes every pod, pod cgroup and map entry on both nodes.

use std::collections::BTreeMap;
use std::time::Duration;

use bosun_e2e::{wait_until, Control, Fabric, Node, NodeOptions};
use serde_json::Value;

const WEB: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 4
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: bosun.test/busybox:1
        command: [sh, -c, 'mkdir -p /tmp/www && hostname > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www']
        ports: [{name: http, containerPort: 8080}]
        readinessProbe:
          httpGet: {port: http}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
"#;

/// A client pod on `node` running `script` (after waiting, bounded, for `vip` to answer at
/// all).
fn client_pod(name: &str, node: &str, vip: &str, script: &str) -> String {
    let script: String = script.lines().map(|l| format!("      {l}\n")).collect();
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {node}
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: client
    image: bosun.test/busybox:1
    command:
    - sh
    - -c
    - |
      for i in $(seq 1 100); do timeout 3 wget -q -O /dev/null http://{vip}/ 2>/dev/null && break; sleep 0.2; done
{script}"#
    )
}

/// A pod on `node` making `count` requests to `vip`, one connection each, printing who
/// answered.
fn client(name: &str, node: &str, vip: &str, count: u32) -> String {
    let script = format!(
        "for i in $(seq 1 {count}); do echo \"answered by $(timeout 3 wget -q -O - http://{vip}/ 2>&1)\"; done"
    );
    client_pod(name, node, vip, &script)
}

/// Nodes `n` and `n + 1` on `fabric`, running the eBPF dataplane, both Ready and schedulable.
fn two_nodes(control: &Control, fabric: &Fabric, n: u8) -> (Node, Node) {
    let options = || NodeOptions {
        fabric: Some(fabric),
        dataplane: true,
        static_pods: false,
    };
    let mut a = Node::with(n, control, options());
    let mut b = Node::with(n + 1, control, options());
    a.start_agent();
    b.start_agent();
    // Nothing is placed before both nodes can take it (else the scheduler's only choice is
    // the node that came first).
    or_debug(control, &[&a, &b], || {
        wait_until(
            "both nodes Ready and schedulable",
            Duration::from_secs(30),
            || {
                let out = control.kubectl(&["get", "nodes", "--no-headers"]);
                let text = String::from_utf8_lossy(&out.stdout);
                let list = control.get_json(&["nodes"]).unwrap_or_default();
                let items = list["items"].as_array().cloned().unwrap_or_default();
                text.lines().filter(|l| l.contains(" Ready ")).count() == 2
                    && items.len() == 2
                    && items.iter().all(|n| {
                        n["spec"]["taints"].is_null()
                            && n["status"]["allocatable"]["cpu"].is_string()
                    })
            },
        )
    });
    (a, b)
}

/// Waits for the web Deployment's rollout and for `backends` of it in both nodes' maps.
fn rolled_out(control: &Control, a: &Node, b: &Node, backends_wanted: u64) {
    or_debug(control, &[a, b], || {
        control.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
        wait_until(
            &format!("{backends_wanted} backends on both nodes"),
            Duration::from_secs(20),
            || {
                [a, b]
                    .iter()
                    .all(|n| backends(&n.metrics()) == Some(backends_wanted))
            },
        )
    });
}

/// Starts [`steady_client`] on node `a` against the web Service for `seconds`, and waits
/// until it is answered.
fn start_steady_client(control: &Control, a: &Node, b: &Node, seconds: u32) {
    let svc = control.get_json(&["service", "web"]).expect("service web");
    let vip = svc["spec"]["clusterIP"].as_str().expect("clusterIP");
    control.apply(&steady_client("steady", &a.name, vip, seconds));
    or_debug(control, &[a, b], || {
        wait_until("the client answered", Duration::from_secs(30), || {
            a.logs("default", "steady").contains("ok ")
        })
    });
}

/// Pod name → node name, of the pods labelled `app=web`.
fn web_pods(control: &Control) -> BTreeMap<String, String> {
    let list = control
        .get_json(&["pods", "-l", "app=web"])
        .unwrap_or_default();
    let items = list["items"].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            let name = p["metadata"]["name"].as_str().unwrap_or_default();
            let node = p["spec"]["nodeName"].as_str().unwrap_or_default();
            (name.to_string(), node.to_string())
        })
        .collect()
}

/// The `bosun_service_backends` of default/web in a metrics scrape.
fn backends(metrics: &str) -> Option<u64> {
    metrics
        .lines()
        .find(|l| {
            l.starts_with("bosun_service_backends{")
                && l.contains("namespace=\"default\",name=\"web\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn debug(control: &Control, nodes: &[&Node]) -> String {
    let mut out = String::new();
    for n in nodes {
        let log = n.log();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        out += &format!("\n--- agent {} (tail) ---\n", n.name);
        out += &tail.into_iter().rev().collect::<Vec<_>>().join("\n");
        let routes = n
            .netns
            .try_ip(&["route"])
            .map(|o| o.stdout)
            .unwrap_or_default();
        out += &format!(
            "\n--- node {} routes ---\n{}",
            n.name,
            String::from_utf8_lossy(&routes)
        );
        out += &format!(
            "\n--- pod steady's log on {} ---\n{}",
            n.name,
            n.logs("default", "steady")
        );
    }
    let log = control.log();
    let tail: Vec<&str> = log.lines().rev().take(30).collect();
    out += "\n--- control (tail) ---\n";
    out += &tail.into_iter().rev().collect::<Vec<_>>().join("\n");
    out += &format!(
        "\n--- pods ---\n{}",
        String::from_utf8_lossy(&control.kubectl(&["get", "pods", "-o", "wide"]).stdout)
    );
    out += &format!(
        "\n--- events ---\n{}",
        String::from_utf8_lossy(
            &control
                .kubectl(&["get", "events", "--sort-by", ".lastTimestamp"])
                .stdout
        )
    );
    out
}

/// Runs `check`, panicking with the cluster's logs when it does.
fn or_debug(control: &Control, nodes: &[&Node], check: impl FnOnce()) {
    let run = std::panic::AssertUnwindSafe(check);
    if let Err(e) = std::panic::catch_unwind(run) {
        let what = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        panic!("{what}{}", debug(control, nodes));
    }
}

#[test]
fn a_service_spans_two_nodes_and_follows_scaling_and_deletion() {
    let control = Control::start();
    let fabric = Fabric::new();
    let (a, b) = two_nodes(&control, &fabric, 71);
    let nodes = [&a, &b];

    // The Deployment rolls out over both nodes.
    control.apply(WEB);
    or_debug(&control, &nodes, || {
        control.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    });
    let placed = web_pods(&control);
    assert_eq!(placed.len(), 4, "{placed:?}");
    // The agents record kubelet's events for the containers they started.
    let first = placed.keys().next().cloned().unwrap_or_default();
    or_debug(&control, &nodes, || {
        wait_until("the kubelet's events", Duration::from_secs(15), || {
            let selector = format!("--field-selector=involvedObject.name={first}");
            let out = control.kubectl(&["get", "events", &selector]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            ["Scheduled", "Pulled", "Created", "Started container httpd"]
                .iter()
                .all(|w| text.contains(w))
        })
    });
    let described = control.kubectl_ok(&["describe", "pod", &first]);
    assert!(
        described.contains("kubelet") && described.contains("Started container httpd"),
        "{described}"
    );
    or_debug(&control, &nodes, || {
        for n in [&a, &b] {
            assert!(
                placed.values().any(|node| *node == n.name),
                "the scheduler spreads the replicas: {placed:?}"
            );
        }
    });
    // Every node's dataplane has the Service with all four backends, those of the other node
    // too (they come from the API's EndpointSlices).
    or_debug(&control, &nodes, || {
        wait_until("4 backends on both nodes", Duration::from_secs(20), || {
            [&a, &b].iter().all(|n| backends(&n.metrics()) == Some(4))
        })
    });

    // A client on node a reaches the pods of node b through the ClusterIP.
    let svc = control.get_json(&["service", "web"]).expect("service web");
    let vip = svc["spec"]["clusterIP"]
        .as_str()
        .expect("clusterIP")
        .to_owned();
    assert!(vip.starts_with("10.9") || vip.starts_with("10.1"), "{vip}");
    control.apply(&client("client", &a.name, &vip, 40));
    or_debug(&control, &nodes, || {
        let done = || {
            wait_until("the client done", Duration::from_secs(60), || {
                control
                    .get_json(&["pod", "client"])
                    .is_some_and(|p| p["status"]["phase"] == "Succeeded")
            })
        };
        // On a timeout, the client's own log says which requests went unanswered.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(done)).is_err() {
            panic!(
                "the client pod did not finish; its log:\n{}",
                a.logs("default", "client")
            );
        }
    });
    let log = a.logs("default", "client");
    let answered: Vec<&str> = log
        .lines()
        .filter_map(|l| l.strip_prefix("answered by "))
        .collect();
    assert_eq!(answered.len(), 40, "{log}");
    let on_b: Vec<&&str> = answered
        .iter()
        .filter(|who| placed.get(**who) == Some(&b.name))
        .collect();
    assert!(
        !on_b.is_empty(),
        "pods on the other node answered: {log}\n{placed:?}"
    );
    assert!(
        answered.iter().all(|who| placed.contains_key(*who)),
        "every answer came from a web pod: {log}"
    );

    // Scaling up and down: the pods on the nodes and the backends in the maps follow.
    for replicas in [6, 2] {
        control.kubectl_ok(&["scale", "deployment/web", &format!("--replicas={replicas}")]);
        or_debug(&control, &nodes, || {
            control.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
            wait_until(
                &format!("{replicas} web pods on the nodes and in the maps"),
                Duration::from_secs(30),
                || {
                    let running: usize = [&a, &b]
                        .iter()
                        .map(|n| {
                            n.ps()
                                .iter()
                                .filter(|p| {
                                    p["name"].as_str().is_some_and(|s| s.starts_with("web-"))
                                })
                                .count()
                        })
                        .sum();
                    running == replicas
                        && [&a, &b]
                            .iter()
                            .all(|n| backends(&n.metrics()) == Some(replicas as u64))
                },
            )
        });
    }

    // Deleting the Deployment and the Service removes every pod, cgroup and map entry.
    control.kubectl_ok(&["delete", "deployment/web", "service/web", "pod/client"]);
    or_debug(&control, &nodes, || {
        wait_until("nothing left on the nodes", Duration::from_secs(60), || {
            [&a, &b].iter().all(|n| {
                n.ps().is_empty() && n.pod_cgroups().is_empty() && backends(&n.metrics()).is_none()
            })
        })
    });
    // Each agent deletes its stopped pods from the API (graceful deletion's last step).
    wait_until("no pod left in the API", Duration::from_secs(20), || {
        let left: Value = control.get_json(&["pods"]).expect("pods");
        left["items"].as_array().map(Vec::len) == Some(0)
    });
    drop(a);
    drop(b);
}

/// A pod on `node` requesting `vip` every 0.2 s for `seconds`, printing `ok <unix time>
/// <who answered>` or `fail <unix time>` per request.
fn steady_client(name: &str, node: &str, vip: &str, seconds: u32) -> String {
    let script = format!(
        r#"end=$(($(date +%s) + {seconds}))
while [ $(date +%s) -lt $end ]; do
  if out=$(timeout 3 wget -q -O - http://{vip}/ 2>/dev/null); then echo "ok $(date +%s) $out"; else echo "fail $(date +%s)"; fi
  sleep 0.2
done"#
    );
    client_pod(name, node, vip, &script)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// (containerID, restartCount) of every web pod, by name.
fn web_containers(control: &Control) -> BTreeMap<String, (String, u64)> {
    let list = control
        .get_json(&["pods", "-l", "app=web"])
        .unwrap_or_default();
    let items = list["items"].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .map(|p| {
            let c = &p["status"]["containerStatuses"][0];
            let id = c["containerID"].as_str().unwrap_or_default().to_string();
            let name = p["metadata"]["name"].as_str().unwrap_or_default();
            (
                name.to_string(),
                (id, c["restartCount"].as_u64().unwrap_or(99)),
            )
        })
        .collect()
}

#[test]
fn pods_and_services_keep_serving_through_a_control_outage() {
    let mut control = Control::start();
    let fabric = Fabric::new();
    let (a, b) = two_nodes(&control, &fabric, 73);
    control.apply(&WEB.replace("replicas: 4", "replicas: 2"));
    rolled_out(&control, &a, &b, 2);
    let before = web_containers(&control);
    start_steady_client(&control, &a, &b, 45);

    // The control process is gone for 30 s: the client keeps being answered by both nodes'
    // pods through the Service.
    control.stop();
    let down_from = unix_now();
    std::thread::sleep(Duration::from_secs(30));
    let down_to = unix_now();
    control.start_again();
    or_debug(&control, &[&a, &b], || {
        wait_until("the client done", Duration::from_secs(60), || {
            control
                .get_json(&["pod", "steady"])
                .is_some_and(|p| p["status"]["phase"] == "Succeeded")
        })
    });
    let log = a.logs("default", "steady");
    assert!(!log.contains("fail"), "no request failed: {log}");
    let during: Vec<&str> = log
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let (ok, at, who) = (f.next()?, f.next()?.parse::<u64>().ok()?, f.next()?);
            (ok == "ok" && at > down_from && at < down_to).then_some(who)
        })
        .collect();
    assert!(during.len() > 50, "answered during the outage: {log}");
    for pod in before.keys() {
        assert!(
            during.contains(&pod.as_str()),
            "{pod} answered during the outage: {log}"
        );
    }
    // Nothing was lost, restarted or made again.
    or_debug(&control, &[&a, &b], || {
        assert_eq!(web_containers(&control), before);
    });
}

/// The template hash label of the live web pods.
fn web_hashes(control: &Control) -> std::collections::BTreeSet<String> {
    let list = control
        .get_json(&["pods", "-l", "app=web"])
        .unwrap_or_default();
    let items = list["items"].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|p| {
            let hash = p["metadata"]["labels"]["pod-template-hash"].as_str()?;
            Some(hash.to_string())
        })
        .collect()
}

#[test]
fn a_rolling_update_and_its_undo_under_load_fail_no_request() {
    let control = Control::start();
    let fabric = Fabric::new();
    let (a, b) = two_nodes(&control, &fabric, 75);
    // Draining like production: the preStop sleep keeps a replica serving while every node
    // stops sending it new connections.
    let web = WEB.replace(
        "        readinessProbe:",
        "        lifecycle:\n          preStop: {sleep: {seconds: 2}}\n        readinessProbe:",
    );
    let web = web.replace(
        "terminationGracePeriodSeconds: 1",
        "terminationGracePeriodSeconds: 5",
    );
    control.apply(&web);
    rolled_out(&control, &a, &b, 4);
    let first = web_hashes(&control);
    start_steady_client(&control, &a, &b, 40);

    // A rolling update, then its undo, while the client keeps requesting.
    control.kubectl_ok(&["set", "env", "deployment/web", "VERSION=2"]);
    or_debug(&control, &[&a, &b], || {
        control.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    });
    let second = web_hashes(&control);
    assert_eq!(second.len(), 1, "{second:?}");
    assert!(first.is_disjoint(&second), "{first:?} → {second:?}");
    control.kubectl_ok(&["rollout", "undo", "deployment/web"]);
    or_debug(&control, &[&a, &b], || {
        control.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
        wait_until(
            "only the first template's pods",
            Duration::from_secs(30),
            || web_hashes(&control) == first,
        );
    });
    let history = control.kubectl_ok(&["rollout", "history", "deployment/web"]);
    assert!(history.contains('3'), "the undo is revision 3: {history}");

    or_debug(&control, &[&a, &b], || {
        wait_until("the client done", Duration::from_secs(60), || {
            control
                .get_json(&["pod", "steady"])
                .is_some_and(|p| p["status"]["phase"] == "Succeeded")
        })
    });
    let log = a.logs("default", "steady");
    let total = log.lines().filter(|l| l.starts_with("ok ")).count();
    let failed = log.lines().filter(|l| l.starts_with("fail")).count();
    eprintln!("{total} requests answered, {failed} failed");
    assert_eq!(failed, 0, "no request failed during the rollouts: {log}");
    assert!(total > 100, "{log}");
}
