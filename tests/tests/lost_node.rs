//! Two real agents, the real kubectl: a node's credentials read only the Secrets its own pods
//! use (the node authorization rule), and a node whose agent stops for good goes NotReady,
//! gets the unreachable taints, and its Deployment pods are replaced on the other node (the
//! control process runs with short `--node-monitor-grace-period` and `--pod-eviction-timeout`,
//! the agents with a Lease renewed well inside that grace).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use bosun_e2e::{wait_until, Control, Node};
use serde_json::Value;

const WEB: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: sleeper
        image: bosun.test/busybox:1
        command: [sleep, '3600']
"#;

/// A Secret, and a pod bound to `node` that names it (the agent may refuse to run the pod;
/// the authorization rule looks at the pod's spec).
fn secret_and_user(secret: &str, node: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: {secret}}}
stringData: {{password: s3cret}}
---
apiVersion: v1
kind: Pod
metadata: {{name: uses-{secret}}}
spec:
  nodeName: {node}
  containers:
  - name: c
    image: bosun.test/busybox:1
    command: [sleep, '3600']
    env:
    - name: PASSWORD
      valueFrom: {{secretKeyRef: {{name: {secret}, key: password}}}}
"#
    )
}

/// `kubectl get secret NAME` with a node's kubeconfig: (success, stderr).
fn node_reads_secret(control: &Control, node: &str, secret: &str) -> (bool, String) {
    let kubeconfig = control.dir.path().join(format!("{node}.kubeconfig"));
    let out = Command::new("kubectl")
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", control.dir.path())
        .args(["--request-timeout=10s", "get", "secret", secret])
        .stdin(Stdio::null())
        .output()
        .expect("run kubectl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Live (not terminating) web pods: name → node.
fn live_web_pods(control: &Control) -> BTreeMap<String, (String, String)> {
    let list = control
        .get_json(&["pods", "-l", "app=web"])
        .unwrap_or_default();
    let items = list["items"].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (
                s(&p["metadata"]["name"]),
                (s(&p["spec"]["nodeName"]), s(&p["status"]["phase"])),
            )
        })
        .collect()
}

fn node_ready(control: &Control, name: &str) -> Option<String> {
    let node = control.get_json(&["node", name])?;
    let conditions = node["status"]["conditions"].as_array()?.clone();
    conditions
        .iter()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| c["status"].as_str().map(str::to_owned))
}

#[test]
fn a_lost_nodes_pods_are_recreated_elsewhere_and_nodes_keep_to_their_secrets() {
    let control = Control::start_with(&[
        "--node-monitor-grace-period",
        "4s",
        "--pod-eviction-timeout",
        "3s",
    ]);
    let mut a = Node::new(81, &control);
    let mut b = Node::new(82, &control);
    // Leases renewed every second, well inside the 4 s grace: a live node never goes Unknown
    // (with kubelet's default 10 s renewals it would, between two renewals).
    for node in [&mut a, &mut b] {
        node.add_agent_flags(&["--node-lease-duration-seconds", "4"]);
    }
    a.start_agent();
    b.start_agent();
    wait_until("both nodes Ready", Duration::from_secs(30), || {
        node_ready(&control, &a.name).as_deref() == Some("True")
            && node_ready(&control, &b.name).as_deref() == Some("True")
    });

    // Node credentials: b reads the Secret its pod uses, a does not (403 in the node
    // authorizer's words).
    control.apply(&secret_and_user("b-secret", &b.name));
    let (ok, err) = node_reads_secret(&control, &b.name, "b-secret");
    assert!(ok, "node b reads its pod's Secret: {err}");
    let (ok, err) = node_reads_secret(&control, &a.name, "b-secret");
    assert!(!ok, "node a must not read node b's Secret");
    assert!(
        err.contains("Forbidden") && err.contains("b-secret"),
        "a 403 naming the Secret: {err}"
    );
    control.kubectl_ok(&["delete", "pod/uses-b-secret", "--grace-period=0", "--force"]);

    // Both replicas start on b (a cordoned meanwhile): spreading over nodes is only a score,
    // which a node briefly not Ready on a loaded machine outweighs.
    control.kubectl_ok(&["cordon", &a.name]);
    control.apply(WEB);
    control.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let placed = live_web_pods(&control);
    let on_b: Vec<String> = placed
        .iter()
        .filter(|(_, (node, _))| *node == b.name)
        .map(|(name, _)| name.clone())
        .collect();
    assert_eq!(on_b.len(), 2, "both replicas on b: {placed:?}");
    control.kubectl_ok(&["uncordon", &a.name]);

    // b's agent stops for good: b goes NotReady (Unknown) with the unreachable taints, and
    // its replicas are replaced by Running ones on a.
    b.stop_agent();
    wait_until("node b NotReady", Duration::from_secs(30), || {
        node_ready(&control, &b.name).as_deref() == Some("Unknown")
    });
    let nodes = control.kubectl_ok(&["get", "nodes"]);
    let row = nodes.lines().find(|l| l.starts_with(&b.name)).unwrap_or("");
    assert!(row.contains("NotReady"), "{nodes}");
    wait_until(
        "node b tainted unreachable",
        Duration::from_secs(10),
        || {
            let node = control.get_json(&["node", &b.name]).unwrap_or_default();
            let taints = node["spec"]["taints"].to_string();
            taints.contains("node.kubernetes.io/unreachable") && taints.contains("NoExecute")
        },
    );
    wait_until(
        "b's replicas replaced on a",
        Duration::from_secs(60),
        || {
            let live = live_web_pods(&control);
            live.len() == 2
                && live
                    .values()
                    .all(|(node, phase)| *node == a.name && phase == "Running")
        },
    );
    let old = control
        .get_json(&["pod", &on_b[0]])
        .expect("the lost node's pod stays, Terminating, as in Kubernetes");
    assert!(old["metadata"]["deletionTimestamp"].is_string(), "{old:#}");
    drop(a);
}
