//! A node joins with nothing but the bootstrap kubeconfig `bosun-control` writes, as a kubelet
//! does with `--bootstrap-kubeconfig`: its agent asks for a node client certificate (a CSR the
//! server approves and signs), writes its own kubeconfig (0600) and registers Ready as
//! `system:node:<name>`, held to the node authorization rule (a Secret none of its pods uses is
//! 403). A second start reuses the written kubeconfig and sends no new request.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use bosun_e2e::{stderr, wait_until, Control, Node};
use serde_json::Value;

/// kubectl as the node (its written kubeconfig).
fn kubectl_as_node(node: &Node, args: &[&str]) -> Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(node.kubeconfig())
        .env("HOME", node.base.as_os_str())
        .arg("--request-timeout=10s")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run kubectl")
}

fn node_ready(control: &Control, name: &str) -> bool {
    let Some(node) = control.get_json(&["node", name]) else {
        return false;
    };
    node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn csrs(control: &Control) -> Vec<Value> {
    let list = control.get_json(&["csr"]).expect("kubectl get csr");
    list["items"].as_array().cloned().unwrap_or_default()
}

fn context(control: &Control, node: &Node) -> String {
    let control_log = control.log();
    let tail: Vec<&str> = control_log.lines().rev().take(30).collect();
    format!(
        "\n--- agent log ---\n{}\n--- control log (tail) ---\n{}",
        node.log(),
        tail.join("\n")
    )
}

#[test]
fn a_node_joins_with_a_bootstrap_token_and_gets_an_identity_of_its_own() {
    let control = Control::start();
    control.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "not-for-nodes",
        "--from-literal=k=v",
    ]);
    let mut node = Node::bootstrapping(63, &control);
    let name = node.name.clone();
    assert!(!node.kubeconfig().exists());
    node.start_agent();

    let ready = std::panic::AssertUnwindSafe(|| {
        wait_until("the node Ready", Duration::from_secs(40), || {
            node_ready(&control, &name)
        })
    });
    if std::panic::catch_unwind(ready).is_err() {
        panic!("the node never went Ready{}", context(&control, &node));
    }

    // One request, from the bootstrap token, for this node, approved and signed.
    let requests = csrs(&control);
    assert_eq!(requests.len(), 1, "{requests:#?}");
    let csr = &requests[0];
    let requester = csr["spec"]["username"].as_str().unwrap_or_default();
    assert!(requester.starts_with("system:bootstrap:"), "{csr:#}");
    assert_eq!(
        csr["spec"]["signerName"],
        "kubernetes.io/kube-apiserver-client-kubelet"
    );
    assert!(csr["status"]["certificate"].is_string(), "{csr:#}");

    // The node wrote its own kubeconfig, for its owner's eyes only.
    assert!(
        node.log().contains("wrote the node's kubeconfig"),
        "{}",
        node.log()
    );
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(node.kubeconfig()).expect("the written kubeconfig");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    // It is system:node:<name>: it reads its own Node, and a Secret none of its pods uses is
    // refused in the node authorizer's words.
    let own = kubectl_as_node(&node, &["get", "node", &name, "-o", "name"]);
    assert!(own.status.success(), "{}", stderr(&own));
    let secret = kubectl_as_node(&node, &["get", "secret", "not-for-nodes", "-n", "default"]);
    assert!(
        !secret.status.success(),
        "a node read a Secret it has no pod for"
    );
    let refusal = stderr(&secret);
    assert!(
        refusal.contains("Forbidden")
            && refusal.contains(&format!(
                "User \"system:node:{name}\" cannot get resource \"secrets\""
            )),
        "{refusal}"
    );

    // A second start reuses the kubeconfig: no new request, and the node renews its Lease as
    // itself again.
    node.stop_agent();
    let renewed_before = lease_renew_time(&control, &name);
    node.start_agent();
    wait_until(
        "the second start to use the written kubeconfig",
        Duration::from_secs(20),
        || {
            node.log()
                .matches("using the node's client certificate")
                .count()
                == 1
        },
    );
    wait_until(
        "the Lease renewed after the restart",
        Duration::from_secs(30),
        || lease_renew_time(&control, &name) != renewed_before,
    );
    assert_eq!(csrs(&control).len(), 1, "a new request was sent");
}

fn lease_renew_time(control: &Control, node: &str) -> Option<String> {
    let lease = control.get_json(&["lease", "-n", "kube-node-lease", node])?;
    lease["spec"]["renewTime"].as_str().map(str::to_owned)
}
