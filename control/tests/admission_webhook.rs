//! Admission webhooks with the real kubectl and a real HTTPS webhook server (this test's own,
//! on loopback, with a certificate from its own CA given as `caBundle`): a mutating webhook's
//! JSON patch lands in the stored object, and one with `reinvocationPolicy: IfNeeded` runs
//! again after a later webhook changed the object; a validating webhook's denial reaches
//! kubectl in kube's words with the webhook's code, its warnings as kubectl warnings; match
//! conditions, object selectors, DELETE and CONNECT (exec); a webhook that cannot be called fails the request
//! under `failurePolicy: Fail` and not under `Ignore`, and one that answers too late times
//! out; bad configurations are refused naming the field.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use bosun_test_support::webhook::{json_patch, WebhookServer};
use serde_json::{json, Value};

use common::{ok, stderr, stdout, Control};

fn patch(operations: Value) -> String {
    json_patch(&operations)
}

/// What each path of the test's webhooks answers (`/slow`: anything, 3 s late).
fn decide(path: &str, request: &Value) -> Value {
    let uid = request["uid"].clone();
    let object = &request["object"];
    match path {
        // Adds a label (creating the labels map when there is none).
        "/label" => {
            let operation = match object["metadata"]["labels"].is_object() {
                true => {
                    json!([{"op": "add", "path": "/metadata/labels/mutated-by", "value": "webhook"}])
                }
                false => {
                    json!([{"op": "add", "path": "/metadata/labels", "value": {"mutated-by": "webhook"}}])
                }
            };
            json!({"uid": uid, "allowed": true, "patchType": "JSONPatch", "patch": patch(operation)})
        }
        // Counts its calls in an annotation.
        "/count" => {
            let seen = object["metadata"]["annotations"]["calls"]
                .as_str()
                .and_then(|c| c.parse::<u32>().ok())
                .unwrap_or(0);
            let operation = match object["metadata"]["annotations"].is_object() {
                true => {
                    json!([{"op": "add", "path": "/metadata/annotations/calls", "value": (seen + 1).to_string()}])
                }
                false => {
                    json!([{"op": "add", "path": "/metadata/annotations", "value": {"calls": "1"}}])
                }
            };
            json!({"uid": uid, "allowed": true, "patchType": "JSONPatch", "patch": patch(operation)})
        }
        "/exec" => json!({"uid": uid, "allowed": false, "status": {"code": 403,
            "reason": "Forbidden", "message": format!("no exec into {} for {}",
                request["name"].as_str().unwrap_or(""), object["command"])}}),
        "/check" => {
            if !object["data"]["forbidden"].is_null() {
                json!({"uid": uid, "allowed": false, "status": {"code": 403, "reason": "Forbidden",
                    "message": "configmaps may not hold the key forbidden"}})
            } else if request["operation"] == "DELETE" {
                json!({"uid": uid, "allowed": false, "status": {"message": "protected configmaps stay"}})
            } else {
                json!({"uid": uid, "allowed": true, "warnings": ["checked by the test webhook"],
                    "auditAnnotations": {"verdict": "fine"}})
            }
        }
        _ => json!({"uid": uid, "allowed": true}),
    }
}

fn configurations(server: &WebhookServer) -> String {
    let ca = server.ca_bundle();
    let hook = |name: &str, path: &str, extra: &str| {
        format!(
            "- name: {name}\n  clientConfig: {{url: \"{}\", caBundle: {ca}}}\n  sideEffects: None\n  admissionReviewVersions: [v1]\n  timeoutSeconds: 5\n  rules:\n  - {{apiGroups: [\"\"], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [configmaps]}}\n{extra}",
            server.url(path)
        )
    };
    format!(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\nmetadata: {{name: a-count}}\nwebhooks:\n{}---\napiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\nmetadata: {{name: b-label}}\nwebhooks:\n{}---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata: {{name: check}}\nwebhooks:\n{}{}",
        hook(
            "count.example.com",
            "/count",
            "  reinvocationPolicy: IfNeeded\n  matchConditions:\n  - {name: not-skipped, expression: \"!object.metadata.name.startsWith('skip-')\"}\n"
        ),
        hook("label.example.com", "/label", ""),
        hook("check.example.com", "/check", ""),
        hook(
            "protect.example.com",
            "/check",
            "  objectSelector: {matchLabels: {protected: \"true\"}}\n"
        )
        .replace("operations: [CREATE, UPDATE]", "operations: [DELETE]"),
    ) + &hook("exec.example.com", "/exec", "")
        .replace("operations: [CREATE, UPDATE]", "operations: [CONNECT]")
        .replace("resources: [configmaps]", "resources: [pods/exec]")
}

#[test]
fn webhooks_mutate_and_validate_as_kube_calls_them() {
    let server = WebhookServer::start("127.0.0.1", &[], decide);
    let files = tempfile::tempdir().expect("temp dir");
    let policy = files.path().join("audit-policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  resources: [{group: '', resources: [configmaps]}]\n",
    )
    .expect("write the audit policy");
    let log = files.path().join("audit.log");
    let control = Control::start_with(&[
        "--audit-policy-file",
        policy.to_str().unwrap_or_default(),
        "--audit-log-path",
        log.to_str().unwrap_or_default(),
    ]);
    let file = control.dir.path().join("webhooks.yaml");
    std::fs::write(&file, configurations(&server)).expect("write the configurations");
    ok(control.kubectl(&["apply", "-f", file.to_str().unwrap_or_default()]));
    let table = ok(control.kubectl(&["get", "mutatingwebhookconfigurations"]));
    assert!(
        table.starts_with("NAME") && table.contains("WEBHOOKS"),
        "{table}"
    );
    let defaults = ok(control.kubectl(&[
        "get",
        "validatingwebhookconfiguration",
        "check",
        "-o",
        "jsonpath={.webhooks[0].failurePolicy} {.webhooks[0].matchPolicy} {.webhooks[0].rules[0].scope}",
    ]));
    assert_eq!(defaults, "Fail Equivalent *");

    // Both mutations land; the counter ran again after the label webhook changed the object.
    let created = control.kubectl(&["create", "configmap", "app", "--from-literal=a=b"]);
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(
        stderr(&created).contains("Warning: checked by the test webhook"),
        "{}",
        stderr(&created)
    );
    let stored = ok(control.kubectl(&[
        "get",
        "configmap",
        "app",
        "-o",
        "jsonpath={.metadata.labels.mutated-by} {.metadata.annotations.calls}",
    ]));
    assert_eq!(stored, "webhook 2");
    let review = server
        .reviews("/check")
        .pop()
        .expect("the check webhook was called");
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    let request = &review["request"];
    assert_eq!(request["operation"], "CREATE");
    assert_eq!(
        request["kind"],
        json!({"group": "", "version": "v1", "kind": "ConfigMap"})
    );
    assert_eq!(request["namespace"], "default");
    assert_eq!(
        request["object"]["metadata"]["labels"]["mutated-by"],
        "webhook"
    );
    assert!(request["userInfo"]["username"].is_string() && request["uid"].is_string());
    // The audit log names each mutation and holds the webhook's audit annotations.
    let mut annotations = Value::Null;
    common::wait_until("the create's audit event", Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        annotations = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|e| {
                e["verb"] == "create"
                    && e["objectRef"]["name"] == "app"
                    && e["stage"] == "ResponseComplete"
            })
            .map(|e| e["annotations"].clone())
            .unwrap_or_default();
        !annotations.is_null()
    });
    assert_eq!(annotations["check.example.com/verdict"], "fine");
    let first: Value = serde_json::from_str(
        annotations["mutation.webhook.admission.k8s.io/round_0_index_0"]
            .as_str()
            .unwrap_or_default(),
    )
    .expect("JSON");
    assert_eq!(
        first,
        json!({"configuration": "a-count", "webhook": "count.example.com", "mutated": true})
    );
    assert!(annotations["mutation.webhook.admission.k8s.io/round_1_index_0"].is_string());

    // A match condition keeps the counter away; the label still lands.
    ok(control.kubectl(&["create", "configmap", "skip-me"]));
    let skipped = ok(control.kubectl(&[
        "get",
        "configmap",
        "skip-me",
        "-o",
        "jsonpath={.metadata.labels.mutated-by}/{.metadata.annotations}",
    ]));
    assert_eq!(skipped, "webhook/");

    // A denial in kube's words and with the webhook's code; nothing stored.
    let denied = control.kubectl(&["create", "configmap", "bad", "--from-literal=forbidden=x"]);
    assert!(!denied.status.success());
    assert_eq!(
        stderr(&denied).trim(),
        "error: failed to create configmap: admission webhook \"check.example.com\" denied the request: configmaps may not hold the key forbidden"
    );
    let missing = control.kubectl(&["get", "configmap", "bad"]);
    assert!(
        stderr(&missing).contains("NotFound"),
        "{}",
        stderr(&missing)
    );
    let patched = control.kubectl(&[
        "patch",
        "configmap",
        "app",
        "-p",
        r#"{"data":{"forbidden":"y"}}"#,
    ]);
    assert!(
        stderr(&patched).contains("Error from server (Forbidden): admission webhook \"check.example.com\" denied the request"),
        "{}",
        stderr(&patched)
    );

    // kube's webhook metrics count the calls, the denial as rejected.
    let metrics = ok(control.kubectl(&["get", "--raw", "/metrics"]));
    for line in [
        r#"apiserver_admission_webhook_request_total{name="check.example.com",operation="CREATE",type="validating",rejected="true",code="200"} 1"#,
        r#"apiserver_admission_webhook_request_total{name="label.example.com",operation="CREATE",type="admit",rejected="false",code="200"}"#,
        r#"apiserver_admission_webhook_admission_duration_seconds_count{name="count.example.com",operation="CREATE",type="admit",rejected="false"}"#,
    ] {
        assert!(metrics.contains(line), "{line} not in the metrics");
    }
    assert!(
        metrics.contains("apiserver_audit_event_total "),
        "no audit event counter"
    );

    // A server-side dry run reaches the webhook as one.
    ok(control.kubectl(&["create", "configmap", "dry", "--dry-run=server"]));
    let review = server.reviews("/check").pop().expect("called");
    assert_eq!(review["request"]["dryRun"], true);
    assert_eq!(review["request"]["options"]["dryRun"], json!(["All"]));

    // DELETE reaches only the webhook whose object selector holds.
    ok(control.kubectl(&["label", "configmap", "app", "protected=true"]));
    let deleted = control.kubectl(&["delete", "configmap", "app"]);
    assert!(
        stderr(&deleted).contains("admission webhook \"protect.example.com\" denied the request: protected configmaps stay"),
        "{}",
        stderr(&deleted)
    );
    ok(control.kubectl(&["delete", "configmap", "skip-me"]));
    let review = server.reviews("/check").pop().expect("called");
    assert_eq!(review["request"]["operation"], "DELETE");
    assert_eq!(review["request"]["oldObject"]["metadata"]["name"], "app");

    // CONNECT: an exec is sent with its PodExecOptions before the pod is looked at further.
    ok(control.kubectl(&["run", "web", "--image=busybox"]));
    let exec = control.kubectl(&["exec", "web", "--", "ls", "/"]);
    assert!(
        stderr(&exec).contains(r#"admission webhook "exec.example.com" denied the request: no exec into web for ["ls","/"]"#),
        "{}",
        stderr(&exec)
    );
    let review = server.reviews("/exec").pop().expect("called");
    assert_eq!(review["request"]["operation"], "CONNECT");
    assert_eq!(review["request"]["subResource"], "exec");
    assert_eq!(review["request"]["kind"]["kind"], "PodExecOptions");
    assert_eq!(review["request"]["object"]["kind"], "PodExecOptions");
    assert!(review["request"]["options"].is_null());
}

#[test]
fn unreachable_and_slow_webhooks_follow_their_failure_policy() {
    let server = WebhookServer::start("127.0.0.1", &[], decide);
    let control = Control::start();
    // A port nothing listens on: bound, then closed.
    let closed = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let hook = |name: &str, url: &str, policy: &str, namespace: &str, timeout: u32| {
        format!(
            "- name: {name}\n  clientConfig: {{url: \"{url}\", caBundle: {}}}\n  sideEffects: None\n  admissionReviewVersions: [v1]\n  timeoutSeconds: {timeout}\n  failurePolicy: {policy}\n  namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {namespace}}}}}\n  rules:\n  - {{apiGroups: [\"\"], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}}\n",
            server.ca_bundle()
        )
    };
    let down = format!("https://127.0.0.1:{closed}/down");
    let config = format!(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata: {{name: failing}}\nwebhooks:\n{}{}{}",
        hook("fail.example.com", &down, "Fail", "strict", 5),
        hook("ignore.example.com", &down, "Ignore", "default", 5),
        hook("slow.example.com", &server.url("/slow"), "Fail", "slow", 1),
    );
    let file = control.dir.path().join("failing.yaml");
    std::fs::write(&file, config).expect("write");
    ok(control.kubectl(&["apply", "-f", file.to_str().unwrap_or_default()]));
    for namespace in ["strict", "slow"] {
        ok(control.kubectl(&["create", "namespace", namespace]));
    }
    let refused = control.kubectl(&["create", "configmap", "x", "-n", "strict"]);
    assert_eq!(
        stderr(&refused).trim(),
        format!("error: failed to create configmap: Internal error occurred: failed calling webhook \"fail.example.com\": failed to call webhook: Post \"https://127.0.0.1:{closed}/down?timeout=5s\": dial tcp 127.0.0.1:{closed}: connect: connection refused")
    );
    ok(control.kubectl(&["create", "configmap", "x", "-n", "default"]));
    let slow = control.kubectl(&["create", "configmap", "x", "-n", "slow"]);
    assert!(
        stderr(&slow).contains(&format!(
            "failed calling webhook \"slow.example.com\": failed to call webhook: Post \"{}?timeout=1s\": context deadline exceeded",
            server.url("/slow")
        )),
        "{}",
        stderr(&slow)
    );
    // (The root CA publisher's kube-root-ca.crt in the new namespace was sent there too.)
    let names: Vec<Value> = server
        .reviews("/slow")
        .iter()
        .map(|r| r["request"]["name"].clone())
        .collect();
    assert!(names.contains(&json!("x")), "{names:?}");
}

#[test]
fn bad_webhook_configurations_are_refused_naming_the_field() {
    let control = Control::start();
    let refused = control.create_json(
        "bad",
        &json!({"apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "bad"},
            "webhooks": [{"name": "bad", "clientConfig": {"url": "http://127.0.0.1/"},
                "admissionReviewVersions": ["v1"],
                "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["PATCH"],
                    "resources": ["pods/exec"]}]}]}),
    );
    let text = stderr(&refused);
    for expected in [
        "webhooks[0].name: Invalid value: \"bad\": should be a domain with at least three segments separated by dots",
        "webhooks[0].clientConfig.url: Invalid value: \"http://127.0.0.1/\": 'https' is the only allowed URL scheme",
        "webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun",
        "webhooks[0].rules[0].operations[0]: Unsupported value: \"PATCH\"",
    ] {
        assert!(text.contains(expected), "{expected} not in {text}");
    }
    let listed =
        stdout(&control.kubectl(&["get", "validatingwebhookconfigurations", "-o", "name"]));
    assert!(listed.trim().is_empty(), "{listed}");
}

/// The kubeconfig `touch_once` changes the object with.
static TOUCH_KUBECONFIG: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
static TOUCHED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A validating webhook that, the first time it is asked about a DELETE, changes the object
/// being deleted (as a controller's status update would, between the API's read and its
/// delete), then allows.
fn touch_once(_path: &str, request: &Value) -> Value {
    if !TOUCHED.swap(true, std::sync::atomic::Ordering::SeqCst) {
        let name = request["name"].as_str().unwrap_or("");
        if let Some(kubeconfig) = TOUCH_KUBECONFIG.get() {
            let args = ["label", "configmap", name, "touched=yes"];
            let out = common::kubectl_with(kubeconfig, &args);
            assert!(out.status.success(), "{}", stderr(&out));
        }
    }
    json!({"uid": request["uid"], "allowed": true})
}

#[test]
fn a_delete_of_an_object_changed_meanwhile_reads_it_again() {
    let server = WebhookServer::start("127.0.0.1", &[], touch_once);
    let control = Control::start();
    TOUCH_KUBECONFIG
        .set(control.kubeconfig())
        .expect("one control per test binary run of this test");
    let configuration = format!(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata: {{name: touch}}\nwebhooks:\n- name: touch.example.com\n  clientConfig: {{url: \"{}\", caBundle: {}}}\n  sideEffects: None\n  admissionReviewVersions: [v1]\n  rules:\n  - {{apiGroups: [\"\"], apiVersions: [v1], operations: [DELETE], resources: [configmaps]}}\n",
        server.url("/touch"),
        server.ca_bundle()
    );
    let file = control.dir.path().join("touch.yaml");
    std::fs::write(&file, configuration).expect("write the configuration");
    ok(control.kubectl(&["apply", "-f", file.to_str().unwrap_or_default()]));
    ok(control.kubectl(&["create", "configmap", "racy", "--from-literal=a=b"]));
    // Changed between the read and the delete, the object is read again and deleted, not
    // answered with a Conflict (kube's conditional delete); the webhook saw both attempts.
    ok(control.kubectl(&["delete", "configmap", "racy"]));
    assert_eq!(server.reviews("/touch").len(), 2);
    let gone = control.kubectl(&["get", "configmap", "racy"]);
    assert!(stderr(&gone).contains("NotFound"), "{}", stderr(&gone));
}

/// Caps a Scale's replicas at 3 (a JSON patch of the Scale).
fn cap_scale(_path: &str, request: &Value) -> Value {
    let uid = request["uid"].clone();
    match request["object"]["spec"]["replicas"].as_i64() {
        Some(n) if n > 3 => {
            let operation = json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]);
            json!({"uid": uid, "allowed": true, "patchType": "JSONPatch", "patch": patch(operation)})
        }
        _ => json!({"uid": uid, "allowed": true}),
    }
}

#[test]
fn a_scale_is_admitted_as_its_scale_object() {
    let server = WebhookServer::start("127.0.0.1", &[], cap_scale);
    let control = Control::start();
    let objects = format!(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\nmetadata: {{name: cap}}\nwebhooks:\n- name: cap.example.com\n  clientConfig: {{url: \"{}\", caBundle: {}}}\n  sideEffects: None\n  admissionReviewVersions: [v1]\n  rules:\n  - {{apiGroups: [apps], apiVersions: [v1], operations: [UPDATE], resources: [deployments/scale]}}\n---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nmetadata: {{name: no-zero.example.com}}\nspec:\n  matchConstraints:\n    resourceRules:\n    - {{apiGroups: [apps], apiVersions: [v1], operations: [UPDATE], resources: [deployments/scale]}}\n  validations:\n  - {{expression: \"object.kind == 'Scale' && object.spec.replicas > 0\", message: scales stay above zero}}\n---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata: {{name: no-zero}}\nspec: {{policyName: no-zero.example.com, validationActions: [Deny]}}\n",
        server.url("/cap"),
        server.ca_bundle()
    );
    let file = control.dir.path().join("scale-admission.yaml");
    std::fs::write(&file, objects).expect("write the objects");
    ok(control.kubectl(&["apply", "-f", file.to_str().unwrap_or_default()]));
    ok(control.kubectl(&["create", "deployment", "web", "--image=busybox:1"]));

    // The webhook gets the autoscaling/v1 Scale and its patch of the Scale holds.
    ok(control.kubectl(&["scale", "deployment", "web", "--replicas=5"]));
    let replicas = ok(control.kubectl(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.spec.replicas}",
    ]));
    assert_eq!(replicas, "3");
    let review = server.reviews("/cap").pop().unwrap_or_default();
    let request = &review["request"];
    assert_eq!(
        request["kind"],
        json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
    );
    assert_eq!(request["subResource"], "scale");
    assert_eq!(request["object"]["kind"], "Scale");
    assert_eq!(request["oldObject"]["spec"]["replicas"], 1);

    // The policy sees the Scale too.
    let out = control.kubectl(&["scale", "deployment", "web", "--replicas=0"]);
    assert!(
        stderr(&out).contains("scales stay above zero"),
        "{}",
        stderr(&out)
    );
}

/// Labels every object it is asked about (a JSON patch adding `seen-as: <apiVersion>`).
fn label_version(_path: &str, request: &Value) -> Value {
    let version = request["object"]["apiVersion"]
        .as_str()
        .unwrap_or("")
        .replace('/', "_");
    let operation = match request["object"]["metadata"]["labels"].is_object() {
        true => json!([{"op": "add", "path": "/metadata/labels/seen-as", "value": version}]),
        false => json!([{"op": "add", "path": "/metadata/labels", "value": {"seen-as": version}}]),
    };
    json!({"uid": request["uid"], "allowed": true, "patchType": "JSONPatch",
        "patch": patch(operation)})
}

#[test]
fn equivalent_match_policy_calls_a_webhook_at_the_version_its_rules_name() {
    let server = WebhookServer::start("127.0.0.1", &[], label_version);
    let control = Control::start();
    let hook = |name: &str, path: &str, policy: &str| {
        format!(
            "apiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\nmetadata: {{name: {name}}}\nwebhooks:\n- name: {name}.example.com\n  clientConfig: {{url: \"{}\", caBundle: {}}}\n  sideEffects: None\n  admissionReviewVersions: [v1]\n  matchPolicy: {policy}\n  rules:\n  - {{apiGroups: [autoscaling], apiVersions: [v2], operations: [CREATE], resources: [horizontalpodautoscalers]}}\n",
            server.url(path),
            server.ca_bundle()
        )
    };
    let file = control.dir.path().join("equivalent.yaml");
    let text = hook("equivalent", "/equivalent", "Equivalent")
        + "---\n"
        + &hook("exact", "/exact", "Exact");
    std::fs::write(&file, text).expect("write the configurations");
    ok(control.kubectl(&["apply", "-f", file.to_str().unwrap_or_default()]));
    ok(control.kubectl(&["create", "deployment", "web", "--image=busybox:1"]));

    // `kubectl autoscale` writes an autoscaling/v1 HPA: the Equivalent webhook gets it as v2
    // (kind v2, requestKind v1) and its patch lands; the Exact one is not called.
    ok(control.kubectl(&["autoscale", "deployment", "web", "--max=3"]));
    let label = ok(control.kubectl(&[
        "get",
        "hpa",
        "web",
        "-o",
        "jsonpath={.metadata.labels.seen-as}",
    ]));
    assert_eq!(label, "autoscaling_v2");
    let review = server.reviews("/equivalent").pop().unwrap_or_default();
    let request = &review["request"];
    assert_eq!(request["kind"]["version"], "v2");
    assert_eq!(request["requestKind"]["version"], "v1");
    assert_eq!(request["resource"]["version"], "v2");
    assert_eq!(request["object"]["spec"]["maxReplicas"], 3);
    assert!(server.reviews("/exact").is_empty());

    // A ValidatingAdmissionPolicy naming v2 checks the v1 write as v2 too.
    let policy = "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nmetadata: {name: small.example.com}\nspec:\n  matchConstraints:\n    resourceRules:\n    - {apiGroups: [autoscaling], apiVersions: [v2], operations: [CREATE], resources: [horizontalpodautoscalers]}\n  validations:\n  - {expression: \"object.apiVersion == 'autoscaling/v2' && object.spec.maxReplicas <= 5\", message: at most 5 replicas}\n---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata: {name: small}\nspec: {policyName: small.example.com, validationActions: [Deny]}\n";
    let file = control.dir.path().join("small.yaml");
    std::fs::write(&file, policy).expect("write the policy");
    ok(control.kubectl(&["apply", "-f", file.to_str().unwrap_or_default()]));
    let out = control.kubectl(&["autoscale", "deployment", "web", "--name=big", "--max=9"]);
    assert!(
        stderr(&out).contains("at most 5 replicas"),
        "{}",
        stderr(&out)
    );
}
