//! Authentication and authorization with the real kubectl: node identities from client
//! certificates, bootstrap tokens, TLS bootstrapping through CertificateSigningRequests, the
//! node rule (403 in Kubernetes' words) and the per-identity limits (429).

mod common;

use std::time::{Duration, Instant};

use common::{kubectl_with, ok, stderr, Control, Streaming};

/// Asserts kubectl was refused with 403 and printed `message`.
fn forbidden(out: std::process::Output, message: &str) {
    assert!(
        !out.status.success(),
        "kubectl succeeded: {}",
        common::stdout(&out)
    );
    let err = stderr(&out);
    assert!(err.contains("Error from server (Forbidden)"), "{err}");
    assert!(err.contains(message), "wanted {message:?} in {err}");
}

/// Creates `objects` (JSON) as the administrator.
fn admin_create(control: &Control, name: &str, objects: &[serde_json::Value]) {
    let docs: Vec<String> = objects
        .iter()
        .map(|o| serde_yaml::to_string(o).expect("YAML"))
        .collect();
    let file = control.dir.path().join(format!("{name}.yaml"));
    std::fs::write(&file, docs.join("\n---\n")).expect("write");
    ok(control.kubectl(&["create", "-f", file.to_str().expect("utf-8")]));
}

/// Nodes n1 and other, Secrets used (by pod web on n1) and unused, a Deployment.
fn cluster_objects(control: &Control) {
    use serde_json::json;
    let node = |name: &str| json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}});
    let secret = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name}, "stringData": {"k": "v"}})
    };
    admin_create(
        control,
        "cluster",
        &[
            node("n1"),
            node("other"),
            secret("used"),
            secret("unused"),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox",
                "envFrom": [{"secretRef": {"name": "used"}}]}]}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}),
        ],
    );
}

#[test]
fn a_node_may_do_what_a_kubelet_needs_and_nothing_more() {
    let control = Control::start();
    cluster_objects(&control);
    let node = control.node_kubeconfig("n1");
    let pods = ok(kubectl_with(&node, &["get", "pods"]));
    assert!(pods.contains("web"), "{pods}");
    ok(kubectl_with(
        &node,
        &["label", "node", "n1", "bosun.dev/ready=yes"],
    ));
    let labels = ok(control.kubectl(&["get", "node", "n1", "--show-labels"]));
    assert!(labels.contains("bosun.dev/ready=yes"), "{labels}");
    // ... but not promote itself (NodeRestriction).
    forbidden(
        kubectl_with(&node, &["label", "node", "n1", "node-role.kubernetes.io/control-plane="]),
        "nodes \"n1\" is forbidden: node \"n1\" is not allowed to modify labels: node-role.kubernetes.io/control-plane",
    );
    forbidden(
        kubectl_with(&node, &["label", "node", "other", "bosun.dev/ready=yes"]),
        "nodes \"other\" is forbidden: User \"system:node:n1\" cannot patch resource \"nodes\" in API group \"\" at the cluster scope",
    );
    forbidden(
        kubectl_with(&node, &["get", "secret", "unused"]),
        "secrets \"unused\" is forbidden: User \"system:node:n1\" cannot get resource \"secrets\" in API group \"\" in the namespace \"default\": no relationship found between node 'n1' and this object",
    );
    let secret = ok(kubectl_with(
        &node,
        &["get", "secret", "used", "-o", "jsonpath={.data.k}"],
    ));
    assert_eq!(secret, "dg==");
    forbidden(
        kubectl_with(&node, &["delete", "deployment", "web"]),
        "deployments.apps \"web\" is forbidden: User \"system:node:n1\" cannot delete resource \"deployments\" in API group \"apps\" in the namespace \"default\"",
    );
    ok(control.kubectl(&["get", "deployment", "web"]));
    // Not even its own kubelet API through the API server (kube's system:node role has no
    // nodes/proxy).
    forbidden(
        kubectl_with(&node, &["get", "--raw", "/api/v1/nodes/n1/proxy/metrics/resource"]),
        "nodes \"n1\" is forbidden: User \"system:node:n1\" cannot get resource \"nodes/proxy\" in API group \"\" at the cluster scope",
    );
    // Another node's credentials cannot read n1's pod's Secret.
    let other = control.node_kubeconfig("other");
    forbidden(
        kubectl_with(&other, &["get", "secret", "used"]),
        "User \"system:node:other\" cannot get resource \"secrets\"",
    );
    // A node finishes the graceful deletion of its own pods, and only of those.
    ok(control.kubectl(&["delete", "pod", "web", "--wait=false"]));
    let uid = ok(control.kubectl(&["get", "pod", "web", "-o", "jsonpath={.metadata.uid}"]));
    let body = control.dir.path().join("final-delete.json");
    let options = format!(r#"{{"gracePeriodSeconds": 0, "preconditions": {{"uid": "{uid}"}}}}"#);
    std::fs::write(&body, options).expect("write");
    let final_delete = |kubeconfig: &std::path::Path| {
        kubectl_with(
            kubeconfig,
            &[
                "delete",
                "--raw",
                "/api/v1/namespaces/default/pods/web",
                "-f",
                body.to_str().expect("utf-8"),
            ],
        )
    };
    // NodeRestriction's words, as kube-apiserver's (the system:node role may delete pods).
    forbidden(
        final_delete(&other),
        "pods \"web\" is forbidden: node \"other\" can only delete pods with spec.nodeName set to itself",
    );
    ok(final_delete(&node));
    let gone = control.kubectl(&["get", "pod", "web"]);
    assert!(stderr(&gone).contains("NotFound"), "{}", stderr(&gone));
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
    // The real token authenticates (403, not 401): a bootstrapper may not list pods.
    forbidden(
        kubectl_with(&bootstrap, &["get", "pods"]),
        "pods is forbidden: User \"system:bootstrap:",
    );
    for (name, token) in [
        ("garbage", "not-a-token-at-all"),
        ("unknown", "zzzzzz.0123456789abcdef"),
    ] {
        unauthorized(kubectl_with(
            &control.token_kubeconfig(name, token),
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
        &control.token_kubeconfig("expired", "old123.0123456789abcdef"),
        &["get", "pods"],
    ));
    // The token cleaner deletes the expired token's Secret; the live one stays.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = control.kubectl(&["get", "secrets", "-n", "kube-system", "-o", "name"]);
        let names = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && !names.contains("bootstrap-token-old123") {
            assert!(names.contains("secret/bootstrap-token-"), "{names}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "expired token not cleaned: {names}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
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

/// A PKCS#10 request (PEM) for `CN=cn, O=orgs…` and its private key (PEM), made with rcgen
/// (openssl is not guaranteed on the machine).
fn certificate_request(cn: &str, orgs: &[&str]) -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, cn);
    for o in orgs {
        dn.push(rcgen::DnType::OrganizationName, *o);
    }
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key).expect("CSR");
    (csr.pem().expect("PEM"), key.serialize_pem())
}

/// Creates CSR `name` for `signer` with `kubeconfig`; returns kubectl's output.
fn create_csr(
    control: &Control,
    kubeconfig: &std::path::Path,
    name: &str,
    signer: &str,
    request_pem: &str,
) -> std::process::Output {
    use base64::Engine;
    let object = serde_json::json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "signerName": signer,
            "request": base64::engine::general_purpose::STANDARD.encode(request_pem),
            "usages": ["digital signature", "client auth"],
        },
    });
    let file = control.dir.path().join(format!("{name}.json"));
    std::fs::write(&file, object.to_string()).expect("write");
    kubectl_with(kubeconfig, &["create", "-f", file.to_str().expect("utf-8")])
}

/// A kubeconfig like the admin's with the certificate CSR `name` was issued and `key_pem`.
fn kubeconfig_from_csr(control: &Control, name: &str, key_pem: &str) -> std::path::PathBuf {
    use base64::Engine;
    let issued = ok(control.kubectl(&["get", "csr", name, "-o", "jsonpath={.status.certificate}"]));
    assert!(!issued.is_empty(), "CSR {name} has no certificate");
    let text = std::fs::read_to_string(control.kubeconfig()).expect("kubeconfig");
    let mut config: serde_yaml::Value = serde_yaml::from_str(&text).expect("YAML");
    config["users"][0]["user"]["client-certificate-data"] = issued.trim().into();
    config["users"][0]["user"]["client-key-data"] = base64::engine::general_purpose::STANDARD
        .encode(key_pem)
        .into();
    let path = control.dir.path().join(format!("{name}.kubeconfig"));
    std::fs::write(&path, serde_yaml::to_string(&config).expect("YAML")).expect("write");
    path
}

#[test]
fn a_bootstrapper_gets_a_node_certificate_through_a_csr() {
    let control = Control::start();
    let bootstrap = control.bootstrap_kubeconfig();
    let (request, key) = certificate_request("system:node:joiner", &["system:nodes"]);
    ok(create_csr(
        &control,
        &bootstrap,
        "node-csr-joiner",
        "kubernetes.io/kube-apiserver-client-kubelet",
        &request,
    ));
    let table = ok(kubectl_with(&bootstrap, &["get", "csr", "node-csr-joiner"]));
    assert_eq!(
        common::header(&table),
        [
            "NAME",
            "AGE",
            "SIGNERNAME",
            "REQUESTOR",
            "REQUESTEDDURATION",
            "CONDITION"
        ]
    );
    assert!(table.contains("Approved,Issued"), "{table}");
    assert!(table.contains("system:bootstrap:"), "{table}");
    let node = kubeconfig_from_csr(&control, "node-csr-joiner", &key);
    ok(kubectl_with(&node, &["get", "pods"]));
    // The issued certificate is the node's identity, under the node rule.
    admin_create(
        &control,
        "joiner",
        &[serde_json::json!(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v"}}
        )],
    );
    forbidden(
        kubectl_with(&node, &["get", "secret", "s"]),
        "User \"system:node:joiner\" cannot get resource \"secrets\"",
    );
}

#[test]
fn other_csrs_wait_for_an_administrators_approval() {
    let control = Control::start();
    let bootstrap = control.bootstrap_kubeconfig();
    let (request, key) = certificate_request("alice", &["dev"]);
    ok(create_csr(
        &control,
        &bootstrap,
        "alice",
        "kubernetes.io/kube-apiserver-client",
        &request,
    ));
    let table = ok(control.kubectl(&["get", "csr", "alice", "--no-headers"]));
    assert!(table.contains("Pending"), "{table}");
    // kubectl PUTs the CSR with an Approved condition to the approval subresource, as protobuf.
    let out = ok(control.kubectl(&["certificate", "approve", "alice"]));
    assert!(out.contains("approved"), "{out}");
    let table = ok(control.kubectl(&["get", "csr", "alice", "--no-headers"]));
    assert!(table.contains("Approved,Issued"), "{table}");
    let alice = kubeconfig_from_csr(&control, "alice", &key);
    // alice is authenticated by the issued certificate (403, not 401) and has no rights.
    forbidden(
        kubectl_with(&alice, &["get", "csr", "alice"]),
        "certificatesigningrequests.certificates.k8s.io \"alice\" is forbidden: User \"alice\" cannot get resource \"certificatesigningrequests\" in API group \"certificates.k8s.io\" at the cluster scope",
    );
}

#[test]
fn a_client_over_its_rate_gets_429_and_succeeds_after_waiting() {
    let control = Control::start_with(&[
        "--max-requests-per-second-per-client",
        "1",
        "--max-request-burst-per-client",
        "3",
    ]);
    let node = control.node_kubeconfig("n1");
    let started = Instant::now();
    let mut throttled = 0;
    // Each `get --raw` is one request: the fourth within a second is over the burst, answered
    // 429 with Retry-After, and client-go waits and retries it.
    for _ in 0..5 {
        let out = kubectl_with(
            &node,
            &["get", "--raw", "/api/v1/namespaces/default/pods", "-v=6"],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        if stderr(&out).contains("429 Too Many Requests") {
            throttled += 1;
        }
    }
    assert!(throttled >= 1, "no request was throttled");
    assert!(started.elapsed() < Duration::from_secs(30));
    // The administrator is exempt (as APF's exempt level).
    for _ in 0..5 {
        let out = control.kubectl(&["get", "--raw", "/api/v1/namespaces/default/pods", "-v=6"]);
        // (-v=6 prints timings too: "200 OK in 429 milliseconds" is no refusal.)
        assert!(
            !stderr(&out).contains("429 Too Many Requests"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn a_client_over_its_watch_cap_gets_429() {
    let control = Control::start_with(&["--max-watches-per-client", "2"]);
    let node = control.node_kubeconfig("n1");
    // Each kubectl prints the pod once it has listed, then starts its watch at once; the
    // probes below (watches themselves) start only then, so they never take the slot a
    // starting kubectl watch needs.
    let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "watched"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    ok(control.create_json("watched", &pod));
    let first = Streaming::spawn(&node, &["get", "pods", "--watch"]);
    first.wait_for("watched", Duration::from_secs(60));
    let second = Streaming::spawn(&node, &["get", "pods", "--watch"]);
    second.wait_for("watched", Duration::from_secs(60));
    let probe = || {
        kubectl_with(
            &node,
            &[
                "get",
                "--raw",
                "/api/v1/namespaces/default/pods?watch=1&timeoutSeconds=1",
                "-v=6",
            ],
        )
    };
    // Once both watches are up, a third is refused (starting two kubectl watches can take a
    // while on a loaded machine).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = probe();
        if stderr(&out).contains("429 Too Many Requests") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no 429 for a third watch: {}",
            stderr(&out)
        );
    }
    // One watch ends: a new one is served (client-go retries the 429 after Retry-After).
    drop(first);
    let out = probe();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn static_tokens_authenticate_their_user_and_groups() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("tokens.csv");
    std::fs::write(
        &file,
        "s3cr3t-admin,ops,1,\"system:masters\"\ns3cr3t-node,system:node:n1,2,system:nodes\n",
    )
    .expect("write");
    let control = Control::start_with(&["--token-auth-file", file.to_str().expect("utf-8")]);
    let admin = control.token_kubeconfig("ops", "s3cr3t-admin");
    ok(kubectl_with(
        &admin,
        &["get", "secrets", "-n", "kube-system"],
    ));
    let node = control.token_kubeconfig("tok-node", "s3cr3t-node");
    forbidden(
        kubectl_with(&node, &["get", "secrets", "-n", "kube-system"]),
        "User \"system:node:n1\" cannot list resource \"secrets\"",
    );
    unauthorized(kubectl_with(
        &control.token_kubeconfig("tok-wrong", "s3cr3t-nope"),
        &["get", "pods"],
    ));
}
