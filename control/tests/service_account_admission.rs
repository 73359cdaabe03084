//! kube's ServiceAccount admission, root-CA publisher and `kubectl auth whoami` with the real
//! kubectl: a pod made by `kubectl run` runs as `default` with the `kube-api-access-*`
//! projected volume mounted in each container; an account (or a pod) saying
//! `automountServiceAccountToken: false` gets none; a missing account is refused in kube's
//! words; every namespace has `kube-root-ca.crt` with the cluster CA, put back when deleted or
//! edited; and whoami names the administrator, or the service account of a token with its uid
//! and credential id; `explain` finds the review's schema.

mod common;

use std::time::{Duration, Instant};

use common::{kubectl_with, ok, stderr, stdout, Control};
use serde_json::{json, Value};

const MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

fn get(control: &Control, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&ok(control.kubectl(&all))).expect("JSON")
}

fn apply(control: &Control, name: &str, object: &Value) -> std::process::Output {
    let file = control.dir.path().join(format!("{name}.json"));
    std::fs::write(&file, object.to_string()).expect("write");
    control.kubectl(&["create", "-f", file.to_str().expect("utf-8")])
}

/// Waits (bounded) until `check` holds.
fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn pods_get_their_service_account_and_its_token_volume_as_kube_gives_them() {
    let control = Control::start();
    ok(control.kubectl(&["run", "web", "--image=busybox", "--", "sleep", "1000"]));
    let pod = get(&control, &["pod", "web"]);
    let spec = &pod["spec"];
    assert_eq!(spec["serviceAccountName"], "default", "{spec}");
    assert_eq!(spec["serviceAccount"], "default", "{spec}");
    let volume = &spec["volumes"][0];
    let name = volume["name"].as_str().expect("a volume");
    let suffix = name.strip_prefix("kube-api-access-").expect(name);
    assert_eq!(suffix.len(), 5, "{name}");
    assert_eq!(
        volume["projected"],
        json!({"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace",
                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]})
    );
    assert_eq!(
        spec["containers"][0]["volumeMounts"],
        json!([{"name": name, "readOnly": true, "mountPath": MOUNT}])
    );

    // An account that says no, a pod that says no; init containers mount it too.
    let account = json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "quiet"}, "automountServiceAccountToken": false});
    ok(apply(&control, "quiet", &account));
    let pod = |name: &str, extra: Value| {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"initContainers": [{"name": "i", "image": "busybox"}],
                     "containers": [{"name": "c", "image": "busybox"}]}});
        for (k, v) in extra.as_object().expect("object") {
            p["spec"][k] = v.clone();
        }
        p
    };
    ok(apply(
        &control,
        "quiet-pod",
        &pod("q", json!({"serviceAccountName": "quiet"})),
    ));
    let spec = &get(&control, &["pod", "q"])["spec"];
    assert!(spec["volumes"].is_null(), "{spec}");
    assert!(spec["containers"][0]["volumeMounts"].is_null(), "{spec}");
    // The pod's own setting wins over the account's.
    ok(apply(
        &control,
        "loud-pod",
        &pod(
            "loud",
            json!({"serviceAccountName": "quiet", "automountServiceAccountToken": true}),
        ),
    ));
    let spec = &get(&control, &["pod", "loud"])["spec"];
    assert_eq!(
        spec["initContainers"][0]["volumeMounts"][0]["mountPath"],
        MOUNT
    );
    assert_eq!(spec["containers"][0]["volumeMounts"][0]["mountPath"], MOUNT);
    ok(apply(
        &control,
        "off-pod",
        &pod("off", json!({"automountServiceAccountToken": false})),
    ));
    assert!(get(&control, &["pod", "off"])["spec"]["volumes"].is_null());

    // A missing account is refused, in kube's words.
    let out = apply(
        &control,
        "missing",
        &pod("m", json!({"serviceAccountName": "missing"})),
    );
    assert!(!out.status.success(), "{}", stdout(&out));
    let want = "pods \"m\" is forbidden: error looking up service account default/missing: serviceaccount \"missing\" not found";
    assert!(stderr(&out).contains(want), "{}", stderr(&out));
    let out = control.kubectl(&[
        "run",
        "x",
        "--image=busybox",
        "--overrides",
        r#"{"spec":{"serviceAccount":"gone"}}"#,
    ]);
    assert!(
        stderr(&out).contains("error looking up service account default/gone"),
        "{}",
        stderr(&out)
    );

    // Pods of a Deployment get it too (through the controllers' own writes).
    ok(control.kubectl(&["create", "deployment", "d", "--image=busybox"]));
    wait_until("the Deployment's pod", || {
        let pods = get(&control, &["pods", "-l", "app=d"]);
        pods["items"][0]["spec"]["volumes"][0]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("kube-api-access-"))
    });
}

fn root_ca(control: &Control, ns: &str) -> Option<Value> {
    let out = control.kubectl(&[
        "get",
        "configmap",
        "kube-root-ca.crt",
        "-n",
        ns,
        "-o",
        "json",
    ]);
    out.status
        .success()
        .then(|| serde_json::from_str(&stdout(&out)).expect("JSON"))
}

#[test]
fn every_namespace_has_the_cluster_ca_and_keeps_it() {
    let control = Control::start();
    let ca = std::fs::read_to_string(control.dir.path().join("pki/ca.crt")).expect("the CA");
    let holds_ca =
        |ns: &str| root_ca(&control, ns).is_some_and(|cm| cm["data"] == json!({"ca.crt": ca}));
    for ns in ["default", "kube-system", "kube-public"] {
        wait_until(&format!("kube-root-ca.crt in {ns}"), || holds_ca(ns));
    }
    ok(control.kubectl(&["create", "namespace", "team"]));
    wait_until("kube-root-ca.crt in team", || holds_ca("team"));
    // A namespace's pod may be created at once: its default account is there.
    ok(control.kubectl(&["run", "p", "-n", "team", "--image=busybox"]));

    ok(control.kubectl(&["delete", "configmap", "kube-root-ca.crt", "-n", "team"]));
    wait_until("kube-root-ca.crt back in team", || holds_ca("team"));
    ok(control.kubectl(&[
        "patch",
        "configmap",
        "kube-root-ca.crt",
        "-n",
        "team",
        "--type=merge",
        "-p",
        r#"{"data":{"ca.crt":"forged","extra":"x"}}"#,
    ]));
    wait_until("kube-root-ca.crt put back", || holds_ca("team"));
}

#[test]
fn kubectl_auth_whoami_names_the_caller() {
    let control = Control::start();
    let out = ok(control.kubectl(&["auth", "whoami"]));
    assert!(
        out.contains("Username") && out.contains("bosun-admin"),
        "{out}"
    );
    assert!(out.contains("system:masters"), "{out}");
    let review: Value =
        serde_json::from_str(&ok(control.kubectl(&["auth", "whoami", "-o", "json"])))
            .expect("JSON");
    assert_eq!(review["kind"], "SelfSubjectReview");
    assert_eq!(
        review["status"]["userInfo"]["groups"],
        json!(["system:masters", "system:authenticated"])
    );

    ok(control.kubectl(&["create", "serviceaccount", "builder"]));
    let token = ok(control.kubectl(&["create", "token", "builder"]));
    let as_sa = control.token_kubeconfig("sa", token.trim());
    let name = ok(kubectl_with(
        &as_sa,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    ));
    assert_eq!(name, "system:serviceaccount:default:builder");
    // kubectl's table: the account's uid and the token's id (kube's credential-id extra).
    let uid = ok(control.kubectl(&[
        "get",
        "serviceaccount",
        "builder",
        "-o",
        "jsonpath={.metadata.uid}",
    ]));
    let table = ok(kubectl_with(&as_sa, &["auth", "whoami"]));
    let row = |key: &str| {
        table
            .lines()
            .find(|line| line.starts_with(key))
            .map(|line| line[key.len()..].trim().to_owned())
            .unwrap_or_else(|| panic!("no {key} row in:\n{table}"))
    };
    assert_eq!(row("UID"), uid.trim());
    assert!(
        row("Extra: authentication.kubernetes.io/credential-id").starts_with("[JTI="),
        "{table}"
    );

    // `kubectl explain` finds the review's schema in the OpenAPI documents.
    let explained = ok(control.kubectl(&["explain", "selfsubjectreview.status.userInfo"]));
    assert!(
        explained.contains("KIND:") && explained.contains("SelfSubjectReview"),
        "{explained}"
    );
    assert!(explained.contains("username"), "{explained}");

    // Discovery lists it.
    let resources = ok(control.kubectl(&["api-resources", "--api-group=authentication.k8s.io"]));
    assert!(resources.contains("selfsubjectreviews"), "{resources}");
}
