//! A projected `serviceAccountToken` volume end to end with the real kubectl: the agent asks
//! bosun-control for a token bound to the pod (as its node, held to the node rule), writes it
//! with the volume's other sources and its defaultMode, and the container's token
//! authenticates as the pod's ServiceAccount — `kubectl --token` is refused in kube's words
//! naming `system:serviceaccount:default:default` — while a token for another audience does
//! not authenticate, and neither does the pod's token once the pod is deleted.

use std::time::Duration;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use bosun_e2e::{stderr, wait_until, Control, Node};

const POD: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: token-user}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: bosun.test/busybox:1
    command: [sh, -c, 'cd /var/run/secrets/tokens; echo MODE=$(stat -L -c %a t) NAME=$(cat name); echo TOKEN=$(cat t); echo VAULT=$(cat vault); sleep 1000']
    volumeMounts:
    - {name: tokens, mountPath: /var/run/secrets/tokens, readOnly: true}
  volumes:
  - name: tokens
    projected:
      defaultMode: 0440
      sources:
      - serviceAccountToken: {path: t, expirationSeconds: 600}
      - serviceAccountToken: {path: vault, audience: vault}
      - downwardAPI: {items: [{path: name, fieldRef: {fieldPath: metadata.name}}]}
"#;

fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON")
}

/// The value after `KEY=` in the log.
fn field(log: &str, key: &str) -> Option<String> {
    log.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
}

#[test]
fn a_projected_token_authenticates_as_the_pods_service_account() {
    let control = Control::start();
    let mut node = Node::new(98, &control);
    node.start_agent();
    let name = node.name.clone();
    wait_until("the node Ready", Duration::from_secs(30), || {
        control.node_ready(&name)
    });
    wait_until(
        "the default ServiceAccount",
        Duration::from_secs(20),
        || control.kubectl(&["get", "sa", "default"]).status.success(),
    );
    control.apply(&POD.replace("NODE", &name));
    let mut log = String::new();
    let shown = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(
            "the token in the pod's log",
            Duration::from_secs(60),
            || {
                log = node.logs("default", "token-user");
                log.contains("VAULT=ey")
            },
        )
    }));
    if shown.is_err() {
        panic!(
            "no token: {log}\n--- agent log ---\n{}\n--- control log ---\n{}",
            node.log(),
            control.log()
        );
    }
    assert_eq!(field(&log, "MODE").as_deref(), Some("440"), "{log}");
    assert_eq!(field(&log, "NAME").as_deref(), Some("token-user"), "{log}");
    let token = field(&log, "TOKEN").expect("TOKEN");
    let vault = field(&log, "VAULT").expect("VAULT");
    let c = claims(&token);
    let uid = control
        .get_json(&["pod", "token-user"])
        .and_then(|p| p["metadata"]["uid"].as_str().map(str::to_owned))
        .expect("the pod's uid");
    assert_eq!(c["sub"], "system:serviceaccount:default:default", "{c}");
    assert_eq!(c["kubernetes.io"]["pod"]["name"], "token-user", "{c}");
    assert_eq!(c["kubernetes.io"]["pod"]["uid"], uid.as_str(), "{c}");
    assert_eq!(
        c["exp"].as_i64().unwrap_or(0) - c["iat"].as_i64().unwrap_or(0),
        600
    );
    assert_eq!(claims(&vault)["aud"], serde_json::json!(["vault"]));

    // The token (and only a token: the bootstrap kubeconfig has no certificate) speaks for
    // the pod's account, which may do nothing.
    let bootstrap = control.bootstrap_kubeconfig();
    let as_token = |t: &str| {
        std::process::Command::new("kubectl")
            .arg(format!("--kubeconfig={}", bootstrap.display()))
            .arg(format!("--token={t}"))
            .args(["--request-timeout=10s", "get", "pods"])
            .output()
            .expect("run kubectl")
    };
    let out = as_token(&token);
    assert!(
        stderr(&out).contains("pods is forbidden: User \"system:serviceaccount:default:default\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""),
        "{}",
        stderr(&out)
    );
    let unauthorized = "You must be logged in to the server";
    assert!(stderr(&as_token(&vault)).contains(unauthorized));

    // Deleting the pod revokes its tokens.
    control.kubectl_ok(&["delete", "pod", "token-user", "--wait=true"]);
    let out = as_token(&token);
    assert!(stderr(&out).contains(unauthorized), "{}", stderr(&out));
}
