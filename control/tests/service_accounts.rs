//! Service-account tokens with the real kubectl: the `default` ServiceAccount of every
//! namespace, `kubectl create token` (a protobuf TokenRequest) with its duration, audiences and
//! pod binding, the tokens authenticating as `system:serviceaccount:<ns>:<name>` (and refused
//! what an account may not do, in kube's words), revoked with their pod, and a node asking
//! only for tokens bound to its own pods.

mod common;

use std::time::{Duration, Instant};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use common::{kubectl_with, ok, stderr, stdout, Control};
use serde_json::{json, Value};

/// The claims of a JWT (not verified: the server does that).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON")
}

fn create(control: &Control, name: &str, objects: &[Value]) {
    let docs: Vec<String> = objects
        .iter()
        .map(|o| serde_yaml::to_string(o).expect("YAML"))
        .collect();
    let file = control.dir.path().join(format!("{name}.yaml"));
    std::fs::write(&file, docs.join("\n---\n")).expect("write");
    ok(control.kubectl(&["create", "-f", file.to_str().expect("utf-8")]));
}

fn refused(out: std::process::Output, message: &str) {
    assert!(!out.status.success(), "kubectl succeeded: {}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains(message), "wanted {message:?} in {err}");
}

/// Waits (bounded) until `kubectl get sa default -n <ns>` finds the account.
fn wait_default_account(control: &Control, ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if control
            .kubectl(&["get", "serviceaccount", "default", "-n", ns])
            .status
            .success()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no default ServiceAccount in {ns}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn kubectl_create_token_issues_tokens_that_authenticate_as_the_account() {
    let control = Control::start();
    wait_default_account(&control, "default");
    // A new namespace gets its own; a deleted account comes back.
    ok(control.kubectl(&["create", "namespace", "team"]));
    wait_default_account(&control, "team");
    ok(control.kubectl(&["delete", "serviceaccount", "default", "-n", "team"]));
    wait_default_account(&control, "team");

    let token = ok(control.kubectl(&["create", "token", "default"]));
    let token = token.trim();
    let c = claims(token);
    assert_eq!(c["sub"], "system:serviceaccount:default:default", "{c}");
    assert_eq!(c["iss"], "https://kubernetes.default.svc.cluster.local");
    assert_eq!(
        c["aud"],
        json!(["https://kubernetes.default.svc.cluster.local"])
    );
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        3600
    );
    assert_eq!(c["kubernetes.io"]["namespace"], "default");
    assert_eq!(c["kubernetes.io"]["serviceaccount"]["name"], "default");
    let uid = ok(control.kubectl(&["get", "sa", "default", "-o", "jsonpath={.metadata.uid}"]));
    assert_eq!(c["kubernetes.io"]["serviceaccount"]["uid"], uid.trim());

    // It authenticates; a service account may do nothing, in kube's words.
    let as_sa = control.token_kubeconfig("sa", token);
    refused(
        kubectl_with(&as_sa, &["get", "pods"]),
        "Error from server (Forbidden): pods is forbidden: User \"system:serviceaccount:default:default\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"",
    );
    // A token for another audience, or a forged one, does not.
    let vault = ok(control.kubectl(&[
        "create",
        "token",
        "default",
        "--audience=vault",
        "--duration=20m",
    ]));
    let vault = vault.trim();
    let c = claims(vault);
    assert_eq!(c["aud"], json!(["vault"]));
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        1200
    );
    let unauthorized = "You must be logged in to the server";
    refused(
        kubectl_with(&control.token_kubeconfig("vault", vault), &["get", "pods"]),
        unauthorized,
    );
    let parts: Vec<&str> = token.split('.').collect();
    let mut forged = claims(token);
    forged["sub"] = json!("system:serviceaccount:kube-system:default");
    forged["kubernetes.io"]["namespace"] = json!("kube-system");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(forged.to_string()),
        parts[2]
    );
    refused(
        kubectl_with(
            &control.token_kubeconfig("forged", &forged),
            &["get", "pods"],
        ),
        unauthorized,
    );

    // kube's refusals.
    refused(
        control.kubectl(&["create", "token", "missing"]),
        "serviceaccounts \"missing\" not found",
    );
    refused(
        control.kubectl(&["create", "token", "default", "--duration=5m"]),
        "TokenRequest.authentication.k8s.io \"default\" is invalid: spec.expirationSeconds: Invalid value: 300: may not specify a duration less than 10 minutes",
    );

    // Deleting the account revokes its tokens.
    let team_token = ok(control.kubectl(&["create", "token", "default", "-n", "team"]));
    let as_team = control.token_kubeconfig("team", team_token.trim());
    refused(
        kubectl_with(&as_team, &["get", "pods", "-n", "team"]),
        "User \"system:serviceaccount:team:default\" cannot list resource \"pods\"",
    );
    ok(control.kubectl(&["delete", "serviceaccount", "default", "-n", "team"]));
    refused(
        kubectl_with(&as_team, &["get", "pods", "-n", "team"]),
        unauthorized,
    );
}

#[test]
fn pod_bound_tokens_die_with_their_pod_and_nodes_get_only_their_pods_tokens() {
    let control = Control::start();
    wait_default_account(&control, "default");
    let pod = |name: &str, node: &str, account: Option<&str>| {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}});
        if let Some(a) = account {
            p["spec"]["serviceAccountName"] = json!(a);
        }
        p
    };
    create(
        &control,
        "objects",
        &[
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}),
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"}}),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "builder"}}),
            pod("web", "n1", None),
            pod("other", "n2", None),
            pod("build", "n1", Some("builder")),
        ],
    );
    let uid_of = |name: &str| {
        ok(control.kubectl(&["get", "pod", name, "-o", "jsonpath={.metadata.uid}"]))
            .trim()
            .to_owned()
    };
    let (web_uid, other_uid) = (uid_of("web"), uid_of("other"));

    // The administrator binds a token to pod web.
    let bound = ok(control.kubectl(&[
        "create",
        "token",
        "default",
        "--bound-object-kind=Pod",
        "--bound-object-name=web",
    ]));
    let c = claims(bound.trim());
    assert_eq!(
        c["kubernetes.io"]["pod"],
        json!({"name": "web", "uid": web_uid}),
        "{c}"
    );
    assert!(c["kubernetes.io"].get("warnafter").is_none(), "{c}");
    // kubelet's 3607 s request for a pod lives a year, warning after the 3607 s (kube's
    // extended expiration); the status shows what was asked.
    let asked = ok(control.kubectl(&[
        "create",
        "token",
        "default",
        "--bound-object-kind=Pod",
        "--bound-object-name=web",
        "--duration=3607s",
    ]));
    let c = claims(asked.trim());
    let (iat, exp) = (
        c["iat"].as_i64().unwrap_or(0),
        c["exp"].as_i64().unwrap_or(0),
    );
    assert_eq!(exp - iat, 365 * 24 * 3600, "{c}");
    assert_eq!(
        c["kubernetes.io"]["warnafter"].as_i64(),
        Some(iat + 3607),
        "{c}"
    );
    refused(
        control.kubectl(&[
            "create", "token", "default", "--bound-object-kind=Pod", "--bound-object-name=build",
        ]),
        "cannot bind token for serviceaccount \"default\" to pod running with serviceaccount \"builder\"",
    );
    refused(
        control.kubectl(&[
            "create",
            "token",
            "default",
            "--bound-object-kind=Pod",
            "--bound-object-name=web",
            "--bound-object-uid=0000",
        ]),
        "the UID in the bound object reference (0000) does not match the UID in record",
    );
    refused(
        control.kubectl(&[
            "create",
            "token",
            "default",
            "--bound-object-kind=Pod",
            "--bound-object-name=nope",
        ]),
        "pods \"nope\" not found",
    );

    // Node n1 gets tokens bound to its own pods only.
    let n1 = control.node_kubeconfig("n1");
    let node_token = ok(kubectl_with(
        &n1,
        &[
            "create",
            "token",
            "default",
            "--bound-object-kind=Pod",
            "--bound-object-name=web",
            &format!("--bound-object-uid={web_uid}"),
        ],
    ));
    assert_eq!(
        claims(node_token.trim())["sub"],
        "system:serviceaccount:default:default"
    );
    refused(
        kubectl_with(&n1, &["create", "token", "default"]),
        "serviceaccounts \"default\" is forbidden: node requested token not bound to a pod",
    );
    refused(
        kubectl_with(
            &n1,
            &[
                "create",
                "token",
                "default",
                "--bound-object-kind=Pod",
                "--bound-object-name=other",
                &format!("--bound-object-uid={other_uid}"),
            ],
        ),
        "node requested token bound to a pod scheduled on a different node",
    );
    // kube-system's default runs no pod of n1.
    refused(
        kubectl_with(&n1, &["create", "token", "default", "-n", "kube-system"]),
        "User \"system:node:n1\" cannot create resource \"serviceaccounts/token\" in API group \"\" in the namespace \"kube-system\": no relationship found between node 'n1' and this object",
    );

    // Both tokens authenticate while web exists, and neither once it is gone.
    let as_bound = control.token_kubeconfig("bound", bound.trim());
    let as_node_token = control.token_kubeconfig("node-token", node_token.trim());
    let forbidden = "User \"system:serviceaccount:default:default\" cannot list resource \"pods\"";
    refused(kubectl_with(&as_bound, &["get", "pods"]), forbidden);
    refused(kubectl_with(&as_node_token, &["get", "pods"]), forbidden);
    ok(control.kubectl(&["delete", "pod", "web", "--grace-period=0", "--force"]));
    let unauthorized = "You must be logged in to the server";
    refused(kubectl_with(&as_bound, &["get", "pods"]), unauthorized);
    refused(kubectl_with(&as_node_token, &["get", "pods"]), unauthorized);
}
