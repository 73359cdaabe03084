//! An admission webhook named by its Service, as charts install them (`clientConfig.service`):
//! bosun-control finds the Service's ready endpoint in its EndpointSlices and calls it over
//! HTTPS, verifying the server as `<service>.<namespace>.svc`. The endpoint is a webhook
//! server of this test on the host end of a test link (the address control reaches, as it
//! reaches pods on the node network); a Service whose name the certificate does not hold is
//! refused by TLS, one without a ready endpoint says so, both in kube's words.

use bosun_e2e::{stderr, Control, Fabric};
use bosun_test_support::webhook::WebhookServer;
use serde_json::{json, Value};

fn decide(_path: &str, request: &Value) -> Value {
    let uid = request["uid"].clone();
    match request["object"]["data"]["forbidden"].is_null() {
        true => json!({"uid": uid, "allowed": true}),
        false => json!({"uid": uid, "allowed": false,
            "status": {"code": 403, "reason": "Forbidden", "message": "no forbidden keys"}}),
    }
}

/// A Service without selector, and the EndpointSlice giving it `address:port` (ready or not).
fn service(name: &str, address: &str, port: u16, ready: bool) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  ports: [{{name: https, port: 443, targetPort: 9443}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-1
  labels: {{kubernetes.io/service-name: {name}, endpointslice.kubernetes.io/managed-by: test}}
addressType: IPv4
ports: [{{name: https, port: {port}}}]
endpoints: [{{addresses: ["{address}"], conditions: {{ready: {ready}}}}}]
"#
    )
}

fn webhook(name: &str, service: &str, ca: &str) -> String {
    format!(
        r#"- name: {name}
  clientConfig: {{service: {{namespace: default, name: {service}, path: /check}}, caBundle: {ca}}}
  sideEffects: None
  admissionReviewVersions: [v1]
  objectSelector: {{matchLabels: {{hook: {service}}}}}
  rules: [{{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}}]
"#
    )
}

/// `kubectl create` of ConfigMap `name`, labelled for the webhook of `service`, with `data`.
fn create(control: &Control, name: &str, service: &str, data: &str) -> std::process::Output {
    let manifest = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, labels: {{hook: {service}}}}}\ndata: {data}\n"
    );
    let file = control.dir.path().join(format!("{service}-{name}.yaml"));
    std::fs::write(&file, manifest).expect("write the manifest");
    control.kubectl(&["create", "-f", file.to_str().unwrap_or_default()])
}

#[test]
fn a_webhook_behind_a_service_is_called_at_its_endpoint() {
    bosun_e2e::require_root();
    let control = Control::start();
    let fabric = Fabric::with_host_link();
    let host = format!("{}.254", fabric.subnet);
    let server = WebhookServer::start(&host, &["hook.default.svc"], decide);
    let mut manifests = vec![
        service("hook", &host, server.port, true),
        service("impostor", &host, server.port, true),
        service("idle", &host, server.port, false),
    ];
    let ca = server.ca_bundle();
    manifests.push(format!(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata: {{name: checks}}\nwebhooks:\n{}{}{}",
        webhook("hook.example.com", "hook", &ca),
        webhook("impostor.example.com", "impostor", &ca),
        webhook("idle.example.com", "idle", &ca),
    ));
    control.apply(&manifests.join("---\n"));

    let allowed = create(&control, "fine", "hook", "{a: b}");
    assert!(allowed.status.success(), "{}", stderr(&allowed));
    let denied = create(&control, "bad", "hook", "{forbidden: x}");
    assert!(
        stderr(&denied).contains(
            r#"admission webhook "hook.example.com" denied the request: no forbidden keys"#
        ),
        "{}",
        stderr(&denied)
    );
    let reviews = server.reviews("/check");
    let names: Vec<&Value> = reviews.iter().map(|r| &r["request"]["name"]).collect();
    assert!(names.contains(&&json!("bad")), "{names:?}");

    let impostor = create(&control, "x", "impostor", "{a: b}");
    assert!(
        stderr(&impostor).contains(r#"failed calling webhook "impostor.example.com": failed to call webhook: Post "https://impostor.default.svc:443/check?timeout=10s": tls: failed to verify certificate"#),
        "{}",
        stderr(&impostor)
    );
    let idle = create(&control, "x", "idle", "{a: b}");
    assert!(
        stderr(&idle).contains(r#"Post "https://idle.default.svc:443/check?timeout=10s": no endpoints available for service "idle""#),
        "{}",
        stderr(&idle)
    );
}
