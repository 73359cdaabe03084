//! An agent joins a cluster like a kubelet (`bosun-agent --kubeconfig`, a node kubeconfig held
//! to the node authorization rule): real bosun-control, a real agent in a node netns, the real
//! kubectl. The Node shows Ready with its capacity, its Lease is renewed, a pod bound to it by
//! `spec.nodeName` runs and reports Running/Ready with its IP, so does a pod the scheduler
//! places; neither a control-process outage nor an agent restart restarts a container, a pod
//! deleted while the agent was away is stopped, `kubectl delete pod` removes the pod from the
//! node, and a pod asking for what the agent does not do fails naming the field.

use std::time::Duration;

use bosun_e2e::{wait_until, Control, Node};
use serde_json::Value;

fn web_pod(name: &str, node: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: web}}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: bosun.test/busybox:1
    command: [sh, -c, 'mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www']
    ports: [{{containerPort: 8080}}]
    readinessProbe:
      httpGet: {{path: /, port: 8080}}
      periodSeconds: 1
"#
    )
}

fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

fn lease_renew_time(control: &Control, node: &str) -> Option<String> {
    let lease = control.get_json(&["lease", "-n", "kube-node-lease", node])?;
    lease["spec"]["renewTime"].as_str().map(str::to_owned)
}

fn context(control: &Control, node: &Node) -> String {
    format!(
        "\n--- agent log ---\n{}\n--- control log (tail) ---\n{}",
        node.log(),
        control
            .log()
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .join("\n")
    )
}

#[test]
fn an_agent_joins_runs_its_pods_and_survives_a_control_outage() {
    let mut control = Control::start();
    let mut node = Node::new(61, &control);
    let static_pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: static-sleeper}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {name: c, image: bosun.test/busybox:1, command: [sleep, '3600']}\n";
    std::fs::write(node.manifests.join("static.yaml"), static_pod).expect("write static pod");
    node.start_agent();
    let name = node.name.clone();

    // The Node registers Ready, with its capacity, addresses, pod CIDR and versions.
    let ready = || {
        control
            .get_json(&["node", &name])
            .and_then(|n| condition(&n, "Ready").map(|c| c["status"] == "True"))
            .unwrap_or(false)
    };
    let within = Duration::from_secs(20);
    let wait = std::panic::AssertUnwindSafe(|| wait_until("the node Ready", within, ready));
    if std::panic::catch_unwind(wait).is_err() {
        panic!("the node never went Ready{}", context(&control, &node));
    }
    let n = control.get_json(&["node", &name]).expect("the node");
    let capacity = &n["status"]["capacity"];
    assert_eq!(capacity["pods"], "110", "{n:#}");
    assert!(capacity["cpu"].as_str().is_some_and(|c| c != "0"), "{n:#}");
    assert!(
        capacity["memory"]
            .as_str()
            .is_some_and(|m| m.ends_with("Ki")),
        "{n:#}"
    );
    assert!(capacity["ephemeral-storage"].is_string(), "{n:#}");
    assert_eq!(n["status"]["allocatable"], *capacity);
    assert_eq!(n["spec"]["podCIDR"], node.pod_cidr);
    let addresses = n["status"]["addresses"].to_string();
    assert!(
        addresses.contains(&node.ip) && addresses.contains("InternalIP"),
        "{addresses}"
    );
    assert_eq!(n["status"]["nodeInfo"]["kubeletVersion"], "v1.32.0-bosun");
    let runtime = n["status"]["nodeInfo"]["containerRuntimeVersion"].as_str();
    assert!(runtime.is_some_and(|r| r.starts_with("bosun://")), "{n:#}");
    let ready = condition(&n, "Ready").expect("Ready");
    assert_eq!(ready["reason"], "KubeletReady");
    for pressure in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
        assert_eq!(condition(&n, pressure).expect(pressure)["status"], "False");
    }
    let table = control.kubectl_ok(&["get", "nodes"]);
    let row = table.lines().find(|l| l.starts_with(&name)).unwrap_or("");
    assert!(row.contains(" Ready "), "{table}");
    assert!(row.contains("v1.32.0-bosun"), "{table}");

    // The Lease is held by the node and renewed.
    wait_until("the node's Lease", Duration::from_secs(15), || {
        lease_renew_time(&control, &name).is_some()
    });
    let lease = control
        .get_json(&["lease", "-n", "kube-node-lease", &name])
        .expect("lease");
    assert_eq!(lease["spec"]["holderIdentity"], name);
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 40);
    let first = lease_renew_time(&control, &name);
    wait_until("a Lease renewal", Duration::from_secs(15), || {
        lease_renew_time(&control, &name) != first
    });

    // A pod bound to the node runs, becomes Ready through its probe and reports its IPs.
    control.apply(&web_pod("web", &name));
    let running = || {
        control.get_json(&["pod", "web"]).is_some_and(|p| {
            p["status"]["phase"] == "Running"
                && p["status"]["podIP"].is_string()
                && condition(&p, "Ready").is_some_and(|c| c["status"] == "True")
        })
    };
    let wait = std::panic::AssertUnwindSafe(|| {
        wait_until(
            "the pod Running and Ready",
            Duration::from_secs(30),
            running,
        )
    });
    if std::panic::catch_unwind(wait).is_err() {
        let pod = control.get_json(&["pod", "web"]);
        panic!("pod not Ready: {pod:#?}{}", context(&control, &node));
    }
    let pod = control.get_json(&["pod", "web"]).expect("pod");
    let status = &pod["status"];
    let ip = status["podIP"].as_str().expect("podIP").to_owned();
    assert!(ip.starts_with("10.244.61."), "{status:#}");
    assert_eq!(status["hostIP"], node.ip);
    assert_eq!(status["qosClass"], "BestEffort");
    for kind in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        let c = condition(&pod, kind).unwrap_or_else(|| panic!("{kind} in {status:#}"));
        assert_eq!(c["status"], "True", "{kind}");
        assert!(c["lastTransitionTime"].is_string(), "{kind}");
    }
    let container = &status["containerStatuses"][0];
    assert_eq!(container["ready"], true);
    assert_eq!(container["started"], true);
    assert_eq!(container["restartCount"], 0);
    assert!(container["containerID"]
        .as_str()
        .is_some_and(|c| c.starts_with("bosun://")));
    assert!(
        container["imageID"]
            .as_str()
            .is_some_and(|i| i.contains("@sha256:")),
        "{container:#}"
    );
    let started_at = container["state"]["running"]["startedAt"].clone();
    assert!(started_at.is_string(), "{container:#}");
    let wide = control.kubectl_ok(&["get", "pods", "-o", "wide"]);
    let row = wide.lines().find(|l| l.starts_with("web ")).unwrap_or("");
    assert!(
        row.contains(&ip) && row.contains(&name) && row.contains("Running"),
        "{wide}"
    );
    let uid = pod["metadata"]["uid"].as_str().expect("uid");
    let pod_cgroup = format!("pod{uid}");
    let has_cgroup = |node: &Node| node.pod_cgroups().iter().any(|c| c.ends_with(&pod_cgroup));
    assert!(has_cgroup(&node), "{:?}", node.pod_cgroups());

    // The control process goes away for a moment: the pod keeps running; when it is back the
    // agent reconnects (its Lease advances again, its pod watch resumes from the revision it
    // had) and no container was restarted.
    let before = lease_renew_time(&control, &name);
    control.stop();
    std::thread::sleep(Duration::from_secs(2));
    control.start_again();
    wait_until(
        "a Lease renewal after the outage",
        Duration::from_secs(25),
        || {
            let now = lease_renew_time(&control, &name);
            now.is_some() && now != before
        },
    );
    let pod = control
        .get_json(&["pod", "web"])
        .expect("pod after the outage");
    let container = &pod["status"]["containerStatuses"][0];
    assert_eq!(container["restartCount"], 0, "{container:#}");
    assert_eq!(
        container["state"]["running"]["startedAt"], started_at,
        "{container:#}"
    );
    assert_eq!(pod["status"]["podIP"], ip.as_str());

    // The agent restarts: it adopts the running container, and the API pod is neither
    // restarted nor reported differently once the agent has listed the pods again. A pod
    // deleted from the API while the agent was away is stopped once it has listed them.
    let sleeper_pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: sleeper}\nspec:\n  nodeName: NODE\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {name: c, image: bosun.test/busybox:1, command: [sleep, '3600']}\n";
    control.apply(&sleeper_pod.replace("NODE", &name));
    wait_until("the sleeper pod Running", Duration::from_secs(20), || {
        control
            .get_json(&["pod", "sleeper"])
            .is_some_and(|p| p["status"]["phase"] == "Running")
    });
    let sleeper_uid = control.get_json(&["pod", "sleeper"]).expect("sleeper")["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_owned();
    let sleeper_cgroup = format!("pod{sleeper_uid}");
    let sleeper_runs = |node: &Node| {
        node.pod_cgroups()
            .iter()
            .any(|c| c.ends_with(&sleeper_cgroup))
    };
    assert!(sleeper_runs(&node));
    let pid = |node: &Node| {
        node.ps_pod("web")
            .map(|p| p["containerStatuses"][0]["pid"].clone())
    };
    let pid_before = pid(&node);
    assert!(
        pid_before.as_ref().is_some_and(Value::is_number),
        "{:?}",
        node.ps()
    );
    let listed = |node: &Node| node.log().matches("listed this node's pods").count();
    let listings = listed(&node);
    node.stop_agent();
    control.kubectl_ok(&["delete", "pod", "sleeper", "--wait=false"]);
    node.start_agent();
    wait_until(
        "the restarted agent's pod listing",
        Duration::from_secs(20),
        || listed(&node) > listings,
    );
    assert_eq!(
        pid(&node),
        pid_before,
        "the container was adopted, not restarted"
    );
    wait_until(
        "the pod deleted while the agent was away stopped",
        Duration::from_secs(15),
        || !sleeper_runs(&node),
    );
    let pod = control
        .get_json(&["pod", "web"])
        .expect("pod after the agent restart");
    let container = &pod["status"]["containerStatuses"][0];
    assert_eq!(container["restartCount"], 0, "{container:#}");
    assert_eq!(
        container["state"]["running"]["startedAt"], started_at,
        "{container:#}"
    );

    // The static pod of the manifest directory runs beside the API's (its mirror pod shows
    // it in the API: tests/mirror_pods.rs).
    let sleeper = node
        .ps_pod("static-sleeper")
        .expect("the static pod on the node");
    assert_eq!(sleeper["phase"], "Running", "{sleeper:#}");

    // A pod asking for what the agent does not do fails, naming the field (created after the
    // outage: the agent's watch resumed).
    let refused = web_pod("refused", &name).replace(
        "    ports:",
        "    terminationMessagePolicy: FallbackToLogsOnError\n    ports:",
    );
    control.apply(&refused);
    wait_until("the refused pod Failed", Duration::from_secs(15), || {
        control.get_json(&["pod", "refused"]).is_some_and(|p| {
            p["status"]["phase"] == "Failed"
                && p["status"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("spec.containers[0].terminationMessagePolicy"))
        })
    });

    // A pod without a node is placed by bosun-control's scheduler on the Ready node, whose
    // watch sees it arrive when it is bound.
    let unbound = sleeper_pod
        .replace("  nodeName: NODE\n", "")
        .replace("sleeper", "placed");
    control.apply(&unbound);
    let wait = std::panic::AssertUnwindSafe(|| {
        wait_until("the scheduled pod Running", Duration::from_secs(20), || {
            control.get_json(&["pod", "placed"]).is_some_and(|p| {
                p["spec"]["nodeName"] == name.as_str() && p["status"]["phase"] == "Running"
            })
        })
    });
    if std::panic::catch_unwind(wait).is_err() {
        let pod = control.get_json(&["pod", "placed"]);
        panic!(
            "scheduled pod not Running: {pod:#?}{}",
            context(&control, &node)
        );
    }

    // A failing liveness probe: kubelet's Unhealthy and Killing events, then a restart. Each
    // failed attempt is told, and the repeats are counted on one Event, as kubelet's recorder
    // does: (x3 over 4s) in describe.
    let unhealthy = "apiVersion: v1\nkind: Pod\nmetadata: {name: unhealthy}\nspec:\n  nodeName: NODE\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: bosun.test/busybox:1\n    command: [sleep, '3600']\n    livenessProbe: {tcpSocket: {port: 9}, periodSeconds: 1, failureThreshold: 2}\n";
    control.apply(&unhealthy.replace("NODE", &name));
    let wait = std::panic::AssertUnwindSafe(|| {
        wait_until(
            "the probe's events and a restart",
            Duration::from_secs(30),
            || {
                let events = control.kubectl_ok(&[
                    "get",
                    "events",
                    "--field-selector",
                    "involvedObject.name=unhealthy",
                ]);
                let restarted = control
                    .get_json(&["pod", "unhealthy"])
                    .is_some_and(|p| p["status"]["containerStatuses"][0]["restartCount"] != 0);
                let counted = control
                    .get_json(&[
                        "events",
                        "--field-selector",
                        "involvedObject.name=unhealthy",
                    ])
                    .is_some_and(|list| {
                        list["items"].as_array().is_some_and(|items| {
                            items.iter().any(|e| {
                                e["reason"] == "Unhealthy" && e["count"].as_i64() >= Some(3)
                            })
                        })
                    });
                restarted
                    && counted
                    && events.contains("Unhealthy")
                    && events.contains(":9: connect: connection refused")
                    && events.contains("Liveness probe failed: dial tcp ")
                    && events.contains("Container c failed liveness probe, will be restarted")
            },
        )
    });
    if std::panic::catch_unwind(wait).is_err() {
        let events = control.kubectl_ok(&["get", "events"]);
        panic!("no probe events: {events}{}", context(&control, &node));
    }
    let described = control.kubectl_ok(&["describe", "pod", "unhealthy"]);
    assert!(
        described
            .lines()
            .any(|l| l.contains("Unhealthy") && l.contains(" (x") && l.contains(" over ")),
        "the repeats counted in describe: {described}"
    );

    // kubectl delete stops the pod on the node: its cgroup goes.
    control.kubectl_ok(&[
        "delete",
        "pod",
        "web",
        "refused",
        "placed",
        "unhealthy",
        "--wait=false",
    ]);
    let wait = std::panic::AssertUnwindSafe(|| {
        wait_until("the pod's cgroup gone", Duration::from_secs(20), || {
            !has_cgroup(&node)
        })
    });
    if std::panic::catch_unwind(wait).is_err() {
        panic!("pod cgroup still there{}", context(&control, &node));
    }
    wait_until(
        "the pod gone from the node",
        Duration::from_secs(10),
        || node.ps_pod("web").is_none(),
    );
    assert!(
        node.ps_pod("static-sleeper").is_some(),
        "the static pod stays"
    );
}

#[test]
fn a_node_marked_unknown_during_a_long_control_outage_is_ready_again() {
    let mut control = Control::start_with(&["--node-monitor-grace-period", "3s"]);
    let mut node = Node::new(62, &control);
    node.start_agent();
    let name = node.name.clone();
    let node_ready = |control: &Control, want: &str| {
        control
            .get_json(&["node", &name])
            .and_then(|n| condition(&n, "Ready").map(|c| c["status"] == want))
            .unwrap_or(false)
    };
    let pod_ready = |control: &Control| {
        control
            .get_json(&["pod", "web"])
            .and_then(|p| condition(&p, "Ready").map(|c| c["status"] == "True"))
            .unwrap_or(false)
    };
    wait_until("the node Ready", Duration::from_secs(20), || {
        node_ready(&control, "True")
    });
    control.apply(&web_pod("web", &name));
    wait_until("the pod Ready", Duration::from_secs(30), || {
        pod_ready(&control)
    });

    // The control process is away for longer than the grace period: when it returns, the
    // node lifecycle controller finds the Lease stale and marks the node Unknown and its pods
    // not ready, while the agent (still running, the container too) reconnects.
    control.stop();
    std::thread::sleep(Duration::from_secs(5));
    control.start_again();
    wait_until("the node marked Unknown", Duration::from_secs(10), || {
        node_ready(&control, "Unknown")
    });

    // The agent notices the conditions it did not post and posts its own again.
    let wait = std::panic::AssertUnwindSafe(|| {
        wait_until("the node Ready again", Duration::from_secs(25), || {
            node_ready(&control, "True")
        });
        wait_until("the pod Ready again", Duration::from_secs(25), || {
            pod_ready(&control)
        });
    });
    if std::panic::catch_unwind(wait).is_err() {
        let pod = control.get_json(&["pod", "web"]);
        panic!("not Ready again: {pod:#?}{}", context(&control, &node));
    }
    let pod = control.get_json(&["pod", "web"]).expect("pod");
    assert_eq!(pod["status"]["containerStatuses"][0]["restartCount"], 0);
    control.kubectl_ok(&["delete", "pod", "web", "--wait=false"]);
    wait_until(
        "the pod gone from the node",
        Duration::from_secs(20),
        || node.ps_pod("web").is_none(),
    );
}
