//! Authentication and authorization with the real kubectl: node identities from client
//! certificates, bootstrap tokens, TLS bootstrapping through CertificateSigningRequests, the
//! node rule (403 in Kubernetes' words) and the per-identity limits (429).

mod common;

use common::{kubectl_with, ok, stderr, Control};

#[test]
fn a_node_kubeconfig_authenticates_as_the_node() {
    let control = Control::start();
    let node = control.node_kubeconfig("n1");
    ok(kubectl_with(&node, &["get", "pods"]));
}

/// A copy of the bootstrap kubeconfig carrying `token` instead.
fn with_token(control: &Control, name: &str, token: &str) -> std::path::PathBuf {
    let text =
        std::fs::read_to_string(control.bootstrap_kubeconfig()).expect("bootstrap kubeconfig");
    let mut config: serde_yaml::Value = serde_yaml::from_str(&text).expect("YAML");
    config["users"][0]["user"]["token"] = token.into();
    let path = control.dir.path().join(format!("{name}.kubeconfig"));
    std::fs::write(&path, serde_yaml::to_string(&config).expect("YAML")).expect("write");
    path
}

fn unauthorized(out: std::process::Output) {
    assert!(
        !out.status.success(),
        "kubectl succeeded: {}",
        common::stdout(&out)
    );
    let err = stderr(&out);
    assert!(err.contains("You must be logged in to the server"), "{err}");
}

#[test]
fn garbage_malformed_and_expired_tokens_are_401() {
    let control = Control::start();
    let bootstrap = control.bootstrap_kubeconfig();
    let text = std::fs::read_to_string(&bootstrap).expect("bootstrap kubeconfig");
    assert!(text.contains("token:"), "{text}");
    ok(kubectl_with(&bootstrap, &["get", "pods"]));
    for (name, token) in [
        ("garbage", "not-a-token-at-all"),
        ("unknown", "zzzzzz.0123456789abcdef"),
    ] {
        unauthorized(kubectl_with(
            &with_token(&control, name, token),
            &["get", "pods"],
        ));
    }
    // A token whose Secret says it expired an hour ago.
    let secret = r#"{"apiVersion":"v1","kind":"Secret","type":"bootstrap.kubernetes.io/token",
      "metadata":{"name":"bootstrap-token-old123","namespace":"kube-system"},
      "stringData":{"token-id":"old123","token-secret":"0123456789abcdef",
        "usage-bootstrap-authentication":"true","expiration":"2020-01-01T00:00:00Z"}}"#;
    let file = control.dir.path().join("expired.json");
    std::fs::write(&file, secret).expect("write");
    ok(control.kubectl(&["create", "-f", file.to_str().expect("utf-8")]));
    unauthorized(kubectl_with(
        &with_token(&control, "expired", "old123.0123456789abcdef"),
        &["get", "pods"],
    ));
}

#[test]
fn the_bootstrap_token_survives_a_restart() {
    let mut control = Control::start();
    let before = std::fs::read_to_string(control.bootstrap_kubeconfig()).expect("kubeconfig");
    control.restart();
    let after = std::fs::read_to_string(control.bootstrap_kubeconfig()).expect("kubeconfig");
    let token = |t: &str| {
        let c: serde_yaml::Value = serde_yaml::from_str(t).expect("YAML");
        c["users"][0]["user"]["token"]
            .as_str()
            .expect("token")
            .to_owned()
    };
    assert_eq!(token(&before), token(&after));
    let out = ok(control.kubectl(&["get", "secrets", "-n", "kube-system", "-o", "name"]));
    assert_eq!(
        out.lines()
            .filter(|l| l.contains("bootstrap-token-"))
            .count(),
        1,
        "{out}"
    );
}
