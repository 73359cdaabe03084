use base64::Engine;
use http::StatusCode;
use serde_json::json;

use super::answer::{denial, read_response};
use super::target::ready_endpoint;
use super::*;

fn webhook(mutating: bool) -> Webhook {
    let object = json!({"metadata": {"name": "c"}, "webhooks": [{
        "name": "check.example.com", "sideEffects": "None", "admissionReviewVersions": ["v1"],
        "clientConfig": {"url": "https://127.0.0.1:9443/check"},
        "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
            "resources": ["configmaps"]}]}]});
    let (mut webhooks, causes) = config::configuration(&object, mutating);
    assert!(causes.is_empty());
    webhooks.remove(0)
}

fn answer(response: Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

#[test]
fn responses_are_checked_as_kube_checks_them() {
    let hook = webhook(true);
    let allowed = read_response(&answer(json!({"uid": "u", "allowed": true})), &hook, "u");
    assert!(allowed.is_ok_and(|r| r.allowed && r.patch.is_none()));
    let wrong_uid = read_response(&answer(json!({"uid": "x", "allowed": true})), &hook, "u");
    assert_eq!(
        wrong_uid.err().as_deref(),
        Some("expected response.uid=\"u\", got \"x\"")
    );
    let wrong_kind = read_response(&json!({"response": {"uid": "u"}}), &hook, "u");
    assert_eq!(
        wrong_kind.err().as_deref(),
        Some("expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got , Kind=")
    );
    let patch = base64::engine::general_purpose::STANDARD
        .encode(br#"[{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}]"#);
    let patched = read_response(
        &answer(
            json!({"uid": "u", "allowed": true, "patchType": "JSONPatch", "patch": patch,
            "warnings": ["careful"]}),
        ),
        &hook,
        "u",
    );
    assert!(patched.is_ok_and(|r| r.patch.is_some() && r.warnings == ["careful"]));
    let untyped = read_response(
        &answer(json!({"uid": "u", "allowed": true, "patch": patch})),
        &hook,
        "u",
    );
    assert_eq!(
        untyped.err().as_deref(),
        Some("webhook returned response.patch but not response.patchType")
    );
    let not_base64 = read_response(
        &answer(json!({"uid": "u", "allowed": true, "patchType": "JSONPatch", "patch": "%%"})),
        &hook,
        "u",
    );
    assert!(not_base64.is_err());
}

#[test]
fn denials_carry_the_webhooks_words_and_code() {
    let hook = webhook(false);
    let denied = denial(
        &hook,
        &json!({"code": 403, "reason": "Forbidden", "message": "no"}),
    );
    assert_eq!(denied.code, StatusCode::FORBIDDEN);
    assert_eq!(denied.reason, "Forbidden");
    assert_eq!(
        denied.message,
        "admission webhook \"check.example.com\" denied the request: no"
    );
    let bare = denial(&hook, &Value::Null);
    assert_eq!(bare.code, StatusCode::BAD_REQUEST);
    assert_eq!(
        bare.message,
        "admission webhook \"check.example.com\" denied the request without explanation"
    );
    let low = denial(&hook, &json!({"code": 200, "reason": "Whatever"}));
    assert_eq!(low.code, StatusCode::BAD_REQUEST);
    assert_eq!(low.reason, "");
    assert!(low.message.ends_with("denied the request: Whatever"));
}

#[test]
fn services_resolve_to_a_ready_endpoint_of_the_named_port() {
    let service = json!({"metadata": {"name": "hook"}, "spec": {"ports": [
        {"name": "metrics", "port": 8080}, {"name": "https", "port": 443, "targetPort": 9443}]}});
    let slice = |ready: bool, address: &str| {
        json!({"metadata": {"labels": {"kubernetes.io/service-name": "hook"}},
            "ports": [{"name": "https", "port": 9443}, {"name": "metrics", "port": 8080}],
            "endpoints": [{"addresses": [address], "conditions": {"ready": ready}}]})
    };
    let other = json!({"metadata": {"labels": {"kubernetes.io/service-name": "other"}},
        "ports": [{"name": "https", "port": 1}],
        "endpoints": [{"addresses": ["10.0.0.9"]}]});
    assert_eq!(
        ready_endpoint(
            &service,
            &[
                other.clone(),
                slice(false, "10.0.0.1"),
                slice(true, "10.0.0.2")
            ],
            443
        ),
        Some("10.0.0.2:9443".to_owned())
    );
    assert_eq!(
        ready_endpoint(&service, &[slice(true, "fd00::2")], 8080),
        Some("[fd00::2]:8080".to_owned())
    );
    assert_eq!(
        ready_endpoint(&service, &[slice(false, "10.0.0.1"), other], 443),
        None
    );
    assert_eq!(
        ready_endpoint(&service, &[slice(true, "10.0.0.1")], 444),
        None
    );
}
