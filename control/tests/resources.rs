//! The real kubectl against bosun-control's resource handler: create from a multi-document
//! file, get in every output, selectors, paging, watch, merge, JSON and strategic merge
//! patches, replace with a stale resourceVersion, delete, namespace deletion, validation
//! errors, and persistence across a restart.
//!
//! kubectl finds `fieldValidation` in the OpenAPI documents and sends
//! `fieldValidation=Strict` with `create`/`replace`; `create --raw` drives the other modes.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{ok, stderr, stdout, Control, Streaming};

const SHOP: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  namespace: shop
  labels: {app: web}
data:
  color: blue
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: db-config
  namespace: shop
  labels: {app: db}
data:
  color: green
---
apiVersion: v1
kind: Secret
metadata:
  name: web-secret
  namespace: shop
stringData:
  password: hunter2
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector: {app: web}
  ports:
  - port: 80
"#;

fn write(control: &Control, name: &str, text: &str) -> PathBuf {
    let path = control.dir.path().join(name);
    std::fs::write(&path, text).expect("write manifest");
    path
}

/// Waits (bounded) for the ConfigMap `kube-root-ca.crt` every namespace gets.
fn wait_root_ca(control: &Control, ns: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !control
        .kubectl(&["get", "cm", "kube-root-ca.crt", "-n", ns])
        .status
        .success()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no kube-root-ca.crt in {ns}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn create_shop(control: &Control) -> PathBuf {
    let file = write(control, "shop.yaml", SHOP);
    let out = ok(control.kubectl(&["create", "-f", file.to_str().unwrap()]));
    for made in [
        "namespace/shop",
        "configmap/web-config",
        "secret/web-secret",
        "deployment.apps/web",
        "service/web",
    ] {
        assert!(out.contains(&format!("{made} created")), "{out}");
    }
    file
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn created_objects_are_read_back_in_every_output_and_by_selectors() {
    let control = Control::start();
    create_shop(&control);
    let namespaces = ok(control.kubectl(&["get", "ns", "-o", "name"]));
    for ns in [
        "default",
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "shop",
    ] {
        assert!(
            namespaces.contains(&format!("namespace/{ns}\n")),
            "{namespaces}"
        );
    }
    let cm = json(&ok(control.kubectl(&[
        "get",
        "cm",
        "-n",
        "shop",
        "web-config",
        "-o",
        "json",
    ])));
    assert_eq!(cm["data"]["color"], "blue");
    assert_eq!(cm["metadata"]["namespace"], "shop");
    assert_eq!(cm["metadata"]["uid"].as_str().map(str::len), Some(36));
    assert!(cm["metadata"]["resourceVersion"]
        .as_str()
        .is_some_and(|rv| rv.parse::<i64>().is_ok()));
    assert!(cm["metadata"]["creationTimestamp"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let yaml = ok(control.kubectl(&["get", "cm", "-n", "shop", "web-config", "-o", "yaml"]));
    assert!(
        yaml.contains("color: blue") && yaml.contains("name: web-config"),
        "{yaml}"
    );
    // The default Table: NAME and AGE.
    let table = ok(control.kubectl(&["get", "deployments", "-n", "shop"]));
    assert!(
        table.starts_with("NAME") && table.contains("AGE") && table.contains("\nweb "),
        "{table}"
    );
    // Label and field selectors (kube-root-ca.crt has no `app` label).
    wait_root_ca(&control, "shop");
    let web = ok(control.kubectl(&["get", "cm", "-n", "shop", "-l", "app=web", "-o", "name"]));
    assert_eq!(web, "configmap/web-config\n");
    let not_web = ok(control.kubectl(&[
        "get",
        "cm",
        "-n",
        "shop",
        "-l",
        "app notin (web)",
        "-o",
        "name",
    ]));
    assert_eq!(not_web, "configmap/db-config\nconfigmap/kube-root-ca.crt\n");
    let by_name = ok(control.kubectl(&[
        "get",
        "cm",
        "-A",
        "--field-selector",
        "metadata.name=db-config",
        "-o",
        "name",
    ]));
    assert_eq!(by_name, "configmap/db-config\n");
    // stringData is stored as base64 data, as Kubernetes does.
    let secret = json(&ok(control.kubectl(&[
        "get",
        "secret",
        "-n",
        "shop",
        "web-secret",
        "-o",
        "json",
    ])));
    assert_eq!(secret["data"]["password"], "aHVudGVyMg==");
    assert!(secret.get("stringData").is_none(), "{secret}");
    // A missing object and a missing namespace are NotFound in Kubernetes' words.
    let out = control.kubectl(&["get", "cm", "-n", "shop", "nope"]);
    assert!(
        stderr(&out).contains(r#"configmaps "nope" not found"#),
        "{}",
        stderr(&out)
    );
    let out = control.kubectl(&[
        "create",
        "configmap",
        "x",
        "-n",
        "ghost",
        "--dry-run=client",
        "-o",
        "json",
    ]);
    let file = write(&control, "ghost.json", &stdout(&out));
    let out = control.kubectl(&["create", "-f", file.to_str().unwrap()]);
    assert!(
        stderr(&out).contains(r#"namespaces "ghost" not found"#),
        "{}",
        stderr(&out)
    );
}

#[test]
fn lists_page_with_continue_tokens_at_one_revision() {
    let control = Control::start();
    create_shop(&control);
    // db-config, kube-root-ca.crt and web-config.
    wait_root_ca(&control, "shop");
    let first = json(&ok(control.kubectl(&[
        "get",
        "--raw",
        "/api/v1/namespaces/shop/configmaps?limit=2",
    ])));
    assert_eq!(first["items"].as_array().map(Vec::len), Some(2), "{first}");
    let token = first["metadata"]["continue"]
        .as_str()
        .expect("a continue token")
        .to_owned();
    let rv = first["metadata"]["resourceVersion"].clone();
    let second = json(&ok(control.kubectl(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/shop/configmaps?limit=2&continue={token}"),
    ])));
    assert_eq!(
        second["items"].as_array().map(Vec::len),
        Some(1),
        "{second}"
    );
    assert_eq!(second["metadata"]["resourceVersion"], rv);
    assert!(second["metadata"]["continue"].is_null(), "{second}");
    assert_ne!(
        first["items"][0]["metadata"]["name"],
        second["items"][0]["metadata"]["name"]
    );
    // kubectl's own chunking walks every page.
    let all = ok(control.kubectl(&["get", "cm", "-n", "shop", "--chunk-size=1", "-o", "name"]));
    assert_eq!(
        all,
        "configmap/db-config\nconfigmap/kube-root-ca.crt\nconfigmap/web-config\n"
    );
}

#[test]
fn watch_sees_the_objects_then_merge_and_json_patches() {
    let control = Control::start();
    create_shop(&control);
    let watch = Streaming::spawn(
        &control.kubeconfig(),
        &[
            "get",
            "cm",
            "-n",
            "shop",
            "-w",
            "--output-watch-events",
            "-o",
            r#"jsonpath={.type} {.object.metadata.name} {.object.data.color}{"\n"}"#,
        ],
    );
    watch.wait_for("ADDED web-config blue", Duration::from_secs(20));
    // The default output watches one object as Table rows: one row now, one per change.
    let rows = Streaming::spawn(
        &control.kubeconfig(),
        &["get", "cm", "web-config", "-n", "shop", "-w"],
    );
    let first = rows.wait_for("web-config", Duration::from_secs(20));
    assert!(
        first[0].starts_with("NAME") && first[0].contains("AGE"),
        "{first:?}"
    );
    ok(control.kubectl(&[
        "patch",
        "cm",
        "web-config",
        "-n",
        "shop",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"color":"red"}}"#,
    ]));
    watch.wait_for("MODIFIED web-config red", Duration::from_secs(20));
    rows.wait_for("web-config", Duration::from_secs(20));
    ok(control.kubectl(&[
        "patch",
        "cm",
        "web-config",
        "-n",
        "shop",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/data/color","value":"teal"}]"#,
    ]));
    watch.wait_for("MODIFIED web-config teal", Duration::from_secs(20));
    ok(control.kubectl(&["delete", "cm", "db-config", "-n", "shop"]));
    watch.wait_for("DELETED db-config", Duration::from_secs(20));
    // kubectl patch's default type, strategic merge patch, is applied too.
    ok(control.kubectl(&[
        "patch",
        "cm",
        "web-config",
        "-n",
        "shop",
        "-p",
        r#"{"data":{"color":"green"}}"#,
    ]));
    watch.wait_for("MODIFIED web-config green", Duration::from_secs(20));
}

#[test]
fn a_stale_replace_conflicts_and_a_fresh_one_bumps_the_generation() {
    let control = Control::start();
    create_shop(&control);
    let mut deploy =
        json(&ok(control.kubectl(&[
            "get", "deploy", "web", "-n", "shop", "-o", "json",
        ])));
    let rv = deploy["metadata"]["resourceVersion"].clone();
    ok(control.kubectl(&[
        "patch",
        "deploy",
        "web",
        "-n",
        "shop",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":3}}"#,
    ]));
    deploy["spec"]["replicas"] = serde_json::json!(5);
    deploy["metadata"]["resourceVersion"] = rv;
    let file = write(&control, "stale.json", &deploy.to_string());
    let out = control.kubectl(&["replace", "-f", file.to_str().unwrap()]);
    assert!(
        stderr(&out).contains(r#"Operation cannot be fulfilled on deployments.apps "web": the object has been modified; please apply your changes to the latest version and try again"#),
        "{}",
        stderr(&out)
    );
    let now =
        json(&ok(control.kubectl(&[
            "get", "deploy", "web", "-n", "shop", "-o", "json",
        ])));
    assert_eq!(now["spec"]["replicas"], 3);
    assert_eq!(now["metadata"]["generation"], 2);
    deploy["metadata"]["resourceVersion"] = now["metadata"]["resourceVersion"].clone();
    let file = write(&control, "fresh.json", &deploy.to_string());
    ok(control.kubectl(&["replace", "-f", file.to_str().unwrap()]));
    let now =
        json(&ok(control.kubectl(&[
            "get", "deploy", "web", "-n", "shop", "-o", "json",
        ])));
    assert_eq!(now["spec"]["replicas"], 5);
    assert_eq!(now["metadata"]["generation"], 3);
    // A body naming another object (or namespace) than the URL is refused, in kube's words.
    let url = "/apis/apps/v1/namespaces/shop/deployments/web";
    for (field, value, want) in [
        ("name", "other", "the name of the object (other) does not match the name on the URL (web)"),
        ("namespace", "elsewhere", "the namespace of the provided object (elsewhere) does not match the namespace sent on the request (shop)"),
    ] {
        let mut body = now.clone();
        body["metadata"][field] = serde_json::json!(value);
        let file = write(&control, "renamed.json", &body.to_string());
        let out = control.kubectl(&["replace", "--raw", url, "-f", file.to_str().unwrap()]);
        assert!(stderr(&out).contains(want), "{field}: {}", stderr(&out));
    }
}

#[test]
fn delete_removes_objects_and_deleting_a_namespace_removes_its_content() {
    let control = Control::start();
    create_shop(&control);
    // delete -f of the objects (not the namespace): each is gone.
    let objects: String = SHOP.split("---").skip(1).collect::<Vec<_>>().join("---");
    let file = write(&control, "objects.yaml", &objects);
    let out = ok(control.kubectl(&["delete", "-f", file.to_str().unwrap()]));
    assert!(out.contains(r#"deployment.apps "web" deleted"#), "{out}");
    let out = control.kubectl(&["get", "deploy", "web", "-n", "shop"]);
    assert!(
        stderr(&out).contains(r#"deployments.apps "web" not found"#),
        "{}",
        stderr(&out)
    );
    // Namespace deletion takes its objects with it.
    create_shop_objects_again(&control, &file);
    ok(control.kubectl(&["delete", "ns", "shop", "--timeout=30s"]));
    let out = control.kubectl(&["get", "ns", "shop"]);
    assert!(
        stderr(&out).contains(r#"namespaces "shop" not found"#),
        "{}",
        stderr(&out)
    );
    let left = ok(control.kubectl(&["get", "cm,secret,deploy,svc", "-n", "shop", "-o", "name"]));
    assert_eq!(left, "", "objects outlived their namespace");
}

fn create_shop_objects_again(control: &Control, objects: &std::path::Path) {
    let out = ok(control.kubectl(&["create", "-f", objects.to_str().unwrap()]));
    assert!(out.contains("configmap/web-config created"), "{out}");
}

#[test]
fn invalid_objects_are_refused_naming_the_field() {
    let control = Control::start();
    ok(control.kubectl(&["create", "namespace", "v", "--dry-run=client", "-o", "json"]));
    let ns = write(
        &control,
        "ns.json",
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"v"}}"#,
    );
    ok(control.kubectl(&["create", "-f", ns.to_str().unwrap()]));
    let deployment = |replicas: &str, selector: &str| {
        format!(
            r#"{{"apiVersion":"apps/v1","kind":"Deployment","metadata":{{"name":"web","namespace":"v"}},
            "spec":{{{replicas}"selector":{{"matchLabels":{{"app":"{selector}"}}}},
            "template":{{"metadata":{{"labels":{{"app":"web"}}}},"spec":{{"containers":[{{"name":"c","image":"i"}}]}}}}}}}}"#
        )
    };
    let bad_type = write(
        &control,
        "type.json",
        &deployment(r#""replicas":"x","#, "web"),
    );
    let out = control.kubectl(&["create", "-f", bad_type.to_str().unwrap()]);
    assert!(
        stderr(&out).contains("spec.replicas: invalid type: string \"x\""),
        "{}",
        stderr(&out)
    );
    let mismatch = write(&control, "mismatch.json", &deployment("", "db"));
    let out = control.kubectl(&["create", "-f", mismatch.to_str().unwrap()]);
    assert!(
        stderr(&out).contains(
            r#"The Deployment "web" is invalid: spec.template.metadata.labels: Invalid value"#
        ),
        "{}",
        stderr(&out)
    );
    // Strict field validation names the unknown field; Warn stores without it.
    let unknown = write(
        &control,
        "unknown.json",
        &deployment(r#""replicaz":1,"#, "web"),
    );
    let path = "/apis/apps/v1/namespaces/v/deployments";
    let out = control.kubectl(&["create", "-f", unknown.to_str().unwrap()]);
    assert!(
        stderr(&out).contains(r#"strict decoding error: unknown field "spec.replicaz""#),
        "kubectl's own create is strict: {}",
        stderr(&out)
    );
    let out = control.kubectl(&[
        "create",
        "--raw",
        &format!("{path}?fieldValidation=Strict"),
        "-f",
        unknown.to_str().unwrap(),
    ]);
    assert!(
        stderr(&out).contains(r#"strict decoding error: unknown field "spec.replicaz""#),
        "{}",
        stderr(&out)
    );
    let out = control.kubectl(&[
        "create",
        "--raw",
        &format!("{path}?fieldValidation=Warn"),
        "-f",
        unknown.to_str().unwrap(),
    ]);
    assert!(
        stderr(&out).contains(r#"unknown field "spec.replicaz""#),
        "{}",
        stderr(&out)
    );
    let stored = json(&stdout(&out));
    assert!(stored["spec"].get("replicaz").is_none(), "{stored}");
    // So are keys given twice.
    let twice = write(
        &control,
        "twice.json",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"t"},"data":{"a":"1","a":"2"}}"#,
    );
    let out = control.kubectl(&[
        "create",
        "--raw",
        "/api/v1/namespaces/v/configmaps?fieldValidation=Strict",
        "-f",
        twice.to_str().unwrap(),
    ]);
    assert!(
        stderr(&out).contains(r#"strict decoding error: duplicate field "data.a""#),
        "{}",
        stderr(&out)
    );
    // A bad name is 422 with the DNS-1123 rule.
    let bad_name = write(
        &control,
        "name.json",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Web","namespace":"v"}}"#,
    );
    let out = control.kubectl(&["create", "-f", bad_name.to_str().unwrap()]);
    assert!(
        stderr(&out)
            .contains("metadata.name: Invalid value: \"Web\": a lowercase RFC 1123 subdomain"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn objects_survive_a_restart() {
    let mut control = Control::start();
    create_shop(&control);
    let before = json(&ok(control.kubectl(&[
        "get",
        "cm",
        "web-config",
        "-n",
        "shop",
        "-o",
        "json",
    ])));
    control.restart();
    let after = json(&ok(control.kubectl(&[
        "get",
        "cm",
        "web-config",
        "-n",
        "shop",
        "-o",
        "json",
    ])));
    assert_eq!(before, after);
    let names = ok(control.kubectl(&["get", "deploy,svc,secret", "-n", "shop", "-o", "name"]));
    assert_eq!(
        names,
        "deployment.apps/web\nservice/web\nsecret/web-secret\n"
    );
    // Writes go on from the stored revision.
    ok(control.kubectl(&[
        "patch",
        "cm",
        "web-config",
        "-n",
        "shop",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"color":"red"}}"#,
    ]));
    let patched = json(&ok(control.kubectl(&[
        "get",
        "cm",
        "web-config",
        "-n",
        "shop",
        "-o",
        "json",
    ])));
    let rv = |o: &serde_json::Value| {
        o["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
    };
    assert!(rv(&patched) > rv(&after));
}
