//! The audit log with the real kubectl: a policy file gives each request its level; the log
//! holds kube's audit.k8s.io/v1 Events — Metadata for Secrets (no bodies), RequestResponse
//! for ConfigMaps (both objects, managedFields left out), Request for Deployments (the body
//! only); failures with their Status; the authorizer's decision, impersonation, failed
//! authentication, a ValidatingAdmissionPolicy's audit annotations and Audit action, a
//! watch's ResponseStarted and ResponseComplete, public endpoints (an anonymous /livez); the
//! audit webhook's EventLists; and a policy the server does not understand stops it with the
//! field named.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use bosun_test_support::webhook::WebhookServer;
use common::{kubectl_with, ok, stderr, wait_until, Control, Streaming, CONTROL};

const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  nonResourceURLs: ["/api", "/api/*", "/apis", "/apis/*", "/openapi/*", "/version"]
- level: Metadata
  resources: [{group: "", resources: [secrets]}]
- level: RequestResponse
  resources: [{group: "", resources: [configmaps]}]
  omitManagedFields: true
- level: Request
  resources: [{group: apps, resources: [deployments]}]
- level: None
  userGroups: ["system:nodes", "system:serviceaccounts"]
- level: Metadata
"#;

const AUDITED_POLICY: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: key-count.example.com}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}
  validations:
  - {expression: "!has(object.data) || size(object.data) <= 1", message: at most one key}
  auditAnnotations:
  - {key: keys, valueExpression: "has(object.data) ? string(size(object.data)) : null"}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: key-count-audit}
spec: {policyName: key-count.example.com, validationActions: [Audit]}
"#;

/// The events logged so far: every complete line (the writer may be midway through the
/// last one, which a buffered write can leave in the file in parts).
fn events(log: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    complete
        .lines()
        .map(|line| serde_json::from_str(line).expect("every line is a JSON event"))
        .collect()
}

/// Waits (bounded) for an event `matches` selects, and returns it.
fn event(log: &std::path::Path, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
    let mut found = None;
    wait_until(what, Duration::from_secs(10), || {
        found = events(log).into_iter().find(|e| matches(e));
        found.is_some()
    });
    found.unwrap_or_default()
}

fn about(event: &Value, verb: &str, resource: &str, name: &str) -> bool {
    event["verb"] == verb
        && event["objectRef"]["resource"] == resource
        && event["objectRef"]["name"] == name
        && event["stage"] == "ResponseComplete"
}

#[test]
fn requests_are_audited_at_the_policys_levels() {
    let files = tempfile::tempdir().expect("temp dir");
    let policy = files.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).expect("write the policy");
    let log = files.path().join("audit").join("audit.log");
    let control = Control::start_with(&[
        "--audit-policy-file",
        policy.to_str().unwrap_or_default(),
        "--audit-log-path",
        log.to_str().unwrap_or_default(),
    ]);

    ok(control.kubectl(&["create", "secret", "generic", "s", "--from-literal=k=v"]));
    let secret = event(&log, "the secret's create", |e| {
        about(e, "create", "secrets", "s")
    });
    assert_eq!(secret["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(secret["kind"], "Event");
    assert_eq!(secret["level"], "Metadata");
    assert_eq!(secret["objectRef"]["namespace"], "default");
    assert_eq!(secret["objectRef"]["apiVersion"], "v1");
    assert_eq!(secret["responseStatus"]["code"], 201);
    assert_eq!(
        secret["annotations"]["authorization.k8s.io/decision"],
        "allow"
    );
    assert_eq!(secret["sourceIPs"][0], "127.0.0.1");
    assert!(secret["userAgent"]
        .as_str()
        .is_some_and(|a| a.starts_with("kubectl")));
    assert!(secret["user"]["groups"]
        .as_array()
        .is_some_and(|g| !g.is_empty()));
    assert!(secret["requestObject"].is_null() && secret["responseObject"].is_null());
    assert!(secret["auditID"].as_str().is_some_and(|id| id.len() == 36));
    assert!(
        events(&log).iter().all(|e| e["stage"] != "RequestReceived"),
        "RequestReceived is omitted"
    );

    // Public endpoints are audited too: as the caller, or as kube's anonymous user when its
    // credentials are bad (they are still answered).
    let stranger = control.token_kubeconfig("stranger", "not-a-token");
    assert_eq!(
        ok(kubectl_with(&stranger, &["get", "--raw", "/livez"])),
        "ok"
    );
    let livez = event(&log, "the anonymous /livez", |e| {
        e["requestURI"]
            .as_str()
            .is_some_and(|uri| uri.starts_with("/livez"))
            && e["stage"] == "ResponseComplete"
    });
    assert_eq!(livez["user"]["username"], "system:anonymous");
    assert_eq!(livez["user"]["groups"][0], "system:unauthenticated");
    assert_eq!(livez["verb"], "get");
    assert_eq!(livez["responseStatus"]["code"], 200);

    ok(control.kubectl(&["create", "configmap", "c", "--from-literal=a=b"]));
    let configmap = event(&log, "the configmap's create", |e| {
        about(e, "create", "configmaps", "c")
    });
    assert_eq!(configmap["level"], "RequestResponse");
    assert_eq!(configmap["requestObject"]["data"]["a"], "b");
    assert!(configmap["responseObject"]["metadata"]["uid"].is_string());
    assert!(configmap["responseObject"]["metadata"]["managedFields"].is_null());

    let missing = control.kubectl(&["get", "configmap", "nope"]);
    assert!(!missing.status.success());
    let not_found = event(&log, "the failed get", |e| {
        about(e, "get", "configmaps", "nope")
    });
    assert_eq!(not_found["responseStatus"]["code"], 404);
    assert_eq!(not_found["responseStatus"]["reason"], "NotFound");
    assert_eq!(not_found["responseStatus"]["status"], "Failure");

    ok(control.kubectl(&["create", "deployment", "web", "--image=busybox"]));
    let deployment = event(&log, "the deployment's create", |e| {
        about(e, "create", "deployments", "web")
    });
    assert_eq!(deployment["level"], "Request");
    assert_eq!(deployment["objectRef"]["apiGroup"], "apps");
    assert!(deployment["requestObject"]["spec"].is_object());
    assert!(deployment["responseObject"].is_null());

    // Impersonation: the requester and whom it acts as; RBAC forbids, and says so.
    let forbidden = control.kubectl(&["get", "secrets", "--as=jane"]);
    assert!(
        stderr(&forbidden).contains("Forbidden"),
        "{}",
        stderr(&forbidden)
    );
    let jane = event(&log, "jane's list", |e| {
        e["verb"] == "list" && e["impersonatedUser"]["username"] == "jane"
    });
    assert_eq!(
        jane["annotations"]["authorization.k8s.io/decision"],
        "forbid"
    );
    assert_eq!(jane["responseStatus"]["code"], 403);
    assert_ne!(jane["user"]["username"], "jane");

    // A credential nobody issued: audited with no user.
    let stranger = control.token_kubeconfig("stranger", "not-a-token");
    let refused = kubectl_with(&stranger, &["get", "pods"]);
    assert!(!refused.status.success());
    let unauthorized = event(&log, "the 401", |e| e["responseStatus"]["code"] == 401);
    assert_eq!(unauthorized["user"], serde_json::json!({}));
    assert_eq!(unauthorized["verb"], "list");

    // A ValidatingAdmissionPolicy's auditAnnotations and its Audit action's failures.
    let file = files.path().join("vap.yaml");
    std::fs::write(&file, AUDITED_POLICY).expect("write");
    ok(control.kubectl(&["apply", "-f", file.to_str().unwrap_or_default()]));
    ok(control.kubectl(&[
        "create",
        "configmap",
        "big",
        "--from-literal=a=1",
        "--from-literal=b=2",
    ]));
    let audited = event(&log, "the audited create", |e| {
        about(e, "create", "configmaps", "big")
    });
    let annotations = &audited["annotations"];
    assert_eq!(annotations["key-count.example.com/keys"], "2");
    let failure: Value = serde_json::from_str(
        annotations["validation.policy.admission.k8s.io/validation_failure"]
            .as_str()
            .unwrap_or_default(),
    )
    .expect("the failures are JSON");
    assert_eq!(
        failure,
        serde_json::json!([{"message": "at most one key", "policy": "key-count.example.com",
            "binding": "key-count-audit", "expressionIndex": 0, "validationActions": ["Audit"]}])
    );

    // A watch: started when its headers go, complete when it ends.
    let watch = Streaming::spawn(&control.kubeconfig(), &["get", "configmaps", "--watch"]);
    watch.wait_for("c ", Duration::from_secs(10));
    let started = event(&log, "the watch's start", |e| {
        e["verb"] == "watch" && e["stage"] == "ResponseStarted"
    });
    drop(watch);
    let id = started["auditID"].clone();
    let ended = event(&log, "the watch's end", |e| {
        e["auditID"] == id && e["stage"] == "ResponseComplete"
    });
    assert_eq!(ended["responseStatus"]["code"], 200);
}

#[test]
fn a_policy_bosun_cannot_read_stops_the_server_naming_the_field() {
    let files = tempfile::tempdir().expect("temp dir");
    let policy = files.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  colour: red\n",
    )
    .expect("write");
    let out = Command::new(CONTROL)
        .arg("--data-dir")
        .arg(files.path().join("data"))
        .args(["--secure-port", "0", "--audit-policy-file"])
        .arg(&policy)
        .arg("--audit-log-path")
        .arg(files.path().join("audit.log"))
        .stdin(Stdio::null())
        .output()
        .expect("run bosun-control");
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("unknown field `colour`"), "{text}");
}

/// A webhook kubeconfig for `server` (its CA inline, a bearer token).
fn webhook_kubeconfig(server: &str, ca: Option<&str>) -> String {
    let ca = ca.map_or(String::new(), |ca| {
        format!(", certificate-authority-data: {ca}")
    });
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: sink\n  cluster: {{server: \"{server}\"{ca}}}\nusers:\n- name: control\n  user: {{token: audit-token}}\ncontexts:\n- name: audit\n  context: {{cluster: sink, user: control}}\ncurrent-context: audit\n"
    )
}

#[test]
fn audit_events_go_to_the_webhook_in_event_lists() {
    let sink = WebhookServer::start("127.0.0.1", &[], |_, _| serde_json::json!({}));
    let files = tempfile::tempdir().expect("temp dir");
    let policy = files.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).expect("write the policy");
    let config = files.path().join("webhook.kubeconfig");
    let kubeconfig = webhook_kubeconfig(&sink.url("/audit"), Some(&sink.ca_bundle()));
    std::fs::write(&config, kubeconfig).expect("write the kubeconfig");
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let control = Control::start_with(&[
        "--audit-policy-file",
        &path(&policy),
        "--audit-webhook-config-file",
        &path(&config),
        "--audit-webhook-batch-max-wait",
        "500ms",
    ]);
    ok(control.kubectl(&["create", "configmap", "hooked", "--from-literal=a=b"]));
    let mut created = Value::Null;
    wait_until(
        "the create in an EventList",
        Duration::from_secs(10),
        || {
            let lists = sink.reviews("/audit");
            assert!(lists
                .iter()
                .all(|l| l["kind"] == "EventList" && l["apiVersion"] == "audit.k8s.io/v1"));
            created = lists
                .iter()
                .flat_map(|l| l["items"].as_array().cloned().unwrap_or_default())
                .find(|e| about(e, "create", "configmaps", "hooked"))
                .unwrap_or_default();
            !created.is_null()
        },
    );
    assert_eq!(created["level"], "RequestResponse");
    assert_eq!(created["requestObject"]["data"]["a"], "b");

    // A webhook that cannot be reached: each event is tried five times, then counted.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("address").port();
    drop(closed);
    let unreachable = files.path().join("unreachable.kubeconfig");
    let text = webhook_kubeconfig(&format!("http://127.0.0.1:{port}/audit"), None);
    std::fs::write(&unreachable, text).expect("write the kubeconfig");
    let lost = Control::start_with(&[
        "--audit-policy-file",
        &path(&policy),
        "--audit-webhook-config-file",
        &path(&unreachable),
        "--audit-webhook-batch-max-wait",
        "100ms",
        "--audit-webhook-initial-backoff",
        "50ms",
    ]);
    ok(lost.kubectl(&["create", "configmap", "lost", "--from-literal=a=b"]));
    wait_until("the lost events counted", Duration::from_secs(10), || {
        let metrics = ok(lost.kubectl(&["get", "--raw", "/metrics"]));
        metrics.lines().any(|l| {
            l.starts_with("apiserver_audit_error_total{plugin=\"webhook\"}") && !l.ends_with(" 0")
        })
    });
}
