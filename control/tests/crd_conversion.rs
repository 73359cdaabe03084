//! CRD conversion webhooks with the real kubectl and a real HTTPS webhook (this test's own,
//! on loopback, trusted through `caBundle`): a Widget written at v1alpha1 (`spec.hostPort`)
//! is stored at v1 (`spec.host`, `spec.port`) and shown at either version — get, list (one
//! review for the whole page), Tables with each version's printer columns, watch; the
//! converted object is validated against the storage version's schema; a webhook that
//! fails makes reads fail in kube's words; bad conversion settings are refused naming the
//! field.

mod common;

use std::time::Duration;

use bosun_test_support::webhook::WebhookServer;
use serde_json::{json, Value};

use common::{ok, stderr, Control};

/// One object converted to `desired`: v1alpha1's `hostPort` is v1's `host` and `port`.
fn convert(object: &Value, desired: &str) -> Value {
    let mut out = object.clone();
    out["apiVersion"] = json!(desired);
    let spec = &object["spec"];
    out["spec"] = match desired {
        "example.com/v1" => {
            let text = spec["hostPort"].as_str().unwrap_or("");
            let (host, port) = text.rsplit_once(':').unwrap_or((text, "0"));
            json!({"host": host, "port": port.parse::<i64>().unwrap_or(0)})
        }
        _ => json!({"hostPort": format!(
            "{}:{}",
            spec["host"].as_str().unwrap_or(""),
            spec["port"].as_i64().unwrap_or(0)
        )}),
    };
    out
}

fn decide(path: &str, request: &Value) -> Value {
    let uid = request["uid"].clone();
    if path == "/fail" {
        return json!({"uid": uid, "result": {"status": "Failure",
            "message": "the test webhook converts nothing"}});
    }
    let desired = request["desiredAPIVersion"].as_str().unwrap_or("");
    let converted: Vec<Value> = request["objects"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| convert(o, desired))
        .collect();
    json!({"uid": uid, "convertedObjects": converted, "result": {"status": "Success"}})
}

fn crd(server: &WebhookServer, path: &str) -> String {
    format!(
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: widgets.example.com}}
spec:
  group: example.com
  names: {{kind: Widget, plural: widgets}}
  scope: Namespaced
  conversion:
    strategy: Webhook
    webhook:
      conversionReviewVersions: [v1]
      clientConfig: {{url: "{}", caBundle: {}}}
  versions:
  - name: v1
    served: true
    storage: true
    additionalPrinterColumns: [{{name: Port, type: integer, jsonPath: .spec.port}}]
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              host: {{type: string}}
              port: {{type: integer, maximum: 65535}}
  - name: v1alpha1
    served: true
    storage: false
    additionalPrinterColumns: [{{name: Address, type: string, jsonPath: .spec.hostPort}}]
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              hostPort: {{type: string}}
"#,
        server.url(path),
        server.ca_bundle()
    )
}

fn write(control: &Control, name: &str, text: &str) -> String {
    let path = control.dir.path().join(name);
    std::fs::write(&path, text).expect("write manifest");
    path.to_string_lossy().into_owned()
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The reviews the webhook got that carried `count` objects.
fn reviews_of(server: &WebhookServer, count: usize) -> usize {
    server
        .reviews("/convert")
        .iter()
        .filter(|r| r["request"]["objects"].as_array().map(Vec::len) == Some(count))
        .count()
}

#[test]
fn a_conversion_webhook_converts_between_stored_and_served_versions() {
    let server = WebhookServer::start("127.0.0.1", &[], decide);
    let control = Control::start();
    let definition = write(&control, "crd.yaml", &crd(&server, "/convert"));
    ok(control.kubectl(&["apply", "-f", &definition]));
    ok(control.kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=20s",
    ]));

    // Written at v1alpha1, stored at v1: the webhook got a ConversionReview to v1.
    let old = write(
        &control,
        "w1.yaml",
        "apiVersion: example.com/v1alpha1\nkind: Widget\nmetadata: {name: w1}\nspec: {hostPort: 'db:5432'}\n",
    );
    ok(control.kubectl(&["apply", "-f", &old]));
    let review = server
        .reviews("/convert")
        .first()
        .cloned()
        .expect("a review");
    assert_eq!(review["kind"], "ConversionReview");
    assert_eq!(review["apiVersion"], "apiextensions.k8s.io/v1");
    assert_eq!(review["request"]["desiredAPIVersion"], "example.com/v1");
    let stored = json_of(&ok(control.kubectl(&[
        "get",
        "widgets.v1.example.com",
        "w1",
        "-o",
        "json",
    ])));
    assert_eq!(stored["apiVersion"], "example.com/v1");
    assert_eq!(stored["spec"], json!({"host": "db", "port": 5432}));
    let shown = json_of(&ok(control.kubectl(&[
        "get",
        "widgets.v1alpha1.example.com",
        "w1",
        "-o",
        "json",
    ])));
    assert_eq!(shown["apiVersion"], "example.com/v1alpha1");
    assert_eq!(shown["spec"], json!({"hostPort": "db:5432"}));
    assert_eq!(shown["metadata"]["uid"], stored["metadata"]["uid"]);

    // A list at v1alpha1 converts its page in one review; Tables print each version's columns.
    let w2 = write(
        &control,
        "w2.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {host: cache, port: 6379}\n",
    );
    ok(control.kubectl(&["apply", "-f", &w2]));
    let listed = json_of(&ok(control.kubectl(&[
        "get",
        "widgets.v1alpha1.example.com",
        "-o",
        "json",
    ])));
    let addresses: Vec<&Value> = listed["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| &i["spec"]["hostPort"])
        .collect();
    assert_eq!(addresses, [&json!("db:5432"), &json!("cache:6379")]);
    assert!(reviews_of(&server, 2) >= 1, "no review of the whole page");
    let table = ok(control.kubectl(&["get", "widgets.v1alpha1.example.com"]));
    assert!(
        table.contains("ADDRESS") && table.contains("cache:6379"),
        "{table}"
    );
    let table = ok(control.kubectl(&["get", "widgets.v1.example.com"]));
    assert!(table.contains("PORT") && table.contains("6379"), "{table}");

    // A watch shows its events converted.
    let watched = ok(control.kubectl(&[
        "get",
        "--raw",
        "/apis/example.com/v1alpha1/namespaces/default/widgets?watch=true&timeoutSeconds=2",
    ]));
    assert!(watched.contains(r#""hostPort":"db:5432""#), "{watched}");

    // The converted object is checked against the storage version's schema.
    let big = write(
        &control,
        "w3.yaml",
        "apiVersion: example.com/v1alpha1\nkind: Widget\nmetadata: {name: w3}\nspec: {hostPort: 'db:70000'}\n",
    );
    let out = control.kubectl(&["apply", "-f", &big]);
    assert!(
        stderr(&out).contains("spec.port: Invalid value: 70000"),
        "{}",
        stderr(&out)
    );

    // A webhook that fails makes reads at the other version fail as kube words it; reads at
    // the storage version need no conversion.
    let failing = write(&control, "crd-fail.yaml", &crd(&server, "/fail"));
    ok(control.kubectl(&["apply", "-f", &failing]));
    common::wait_until(
        "the failing webhook in use",
        Duration::from_secs(30),
        || {
            stderr(&control.kubectl(&["get", "widgets.v1alpha1.example.com", "w1"]))
            .contains("conversion webhook for example.com/v1, Kind=Widget failed: the test webhook converts nothing")
        },
    );
    ok(control.kubectl(&["get", "widgets.v1.example.com", "w1"]));

    // kube's checks of the conversion settings, naming the field.
    let bad = crd(&server, "/convert").replace("[v1]", "[v9]");
    let out = control.kubectl(&["apply", "-f", &write(&control, "bad.yaml", &bad)]);
    assert!(
        stderr(&out).contains(
            "spec.conversion.webhook.conversionReviewVersions: Invalid value: []string{\"v9\"}: must include at least one of v1, v1beta1"
        ),
        "{}",
        stderr(&out)
    );
}
