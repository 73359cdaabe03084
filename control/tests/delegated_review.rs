//! Delegated authentication and authorization through the real kubectl (`kubectl create -f`
//! of the reviews, as servers delegating to the API send them): TokenReviews of
//! service-account tokens (for the API or an audience asked), of a bad token;
//! SubjectAccessReviews following RBAC; a LocalSubjectAccessReview's namespace check; a
//! service account allowed to review only once bound to `system:auth-delegator`.

mod common;

use std::time::{Duration, Instant};

use common::{kubectl_with, ok, stderr, Control};
use serde_json::{json, Value};

fn status(out: std::process::Output) -> Value {
    serde_json::from_str::<Value>(&ok(out)).unwrap_or_default()["status"].clone()
}

fn token_review(token: &str, audiences: &[&str]) -> Value {
    json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": token, "audiences": audiences}})
}

fn access_review(user: &str, namespace: &str) -> Value {
    json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": user, "resourceAttributes": {"verb": "list", "resource": "pods", "namespace": namespace}}})
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "not within 20 s: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn token_and_subject_access_reviews() {
    let control = Control::start();
    ok(control.kubectl(&["create", "namespace", "dev"]));
    ok(control.kubectl(&["create", "serviceaccount", "app", "-n", "dev"]));
    let resources = ok(control.kubectl(&["api-resources", "--api-group=authorization.k8s.io"]));
    assert!(
        resources
            .lines()
            .any(|l| l.starts_with("localsubjectaccessreviews") && l.contains("true")),
        "{resources}"
    );

    let token = ok(control.kubectl(&["create", "token", "app", "-n", "dev"]));
    let reviewed = status(control.create_json("tr", &token_review(token.trim(), &[])));
    assert_eq!(reviewed["authenticated"], true, "{reviewed}");
    assert_eq!(
        reviewed["user"]["username"],
        "system:serviceaccount:dev:app"
    );
    assert!(reviewed["user"]["groups"]
        .as_array()
        .is_some_and(|g| g.contains(&json!("system:serviceaccounts:dev"))));
    let vault = ok(control.kubectl(&["create", "token", "app", "-n", "dev", "--audience=vault"]));
    let for_vault =
        status(control.create_json("tr-vault", &token_review(vault.trim(), &["vault"])));
    assert_eq!(
        (
            for_vault["authenticated"].clone(),
            for_vault["audiences"].clone()
        ),
        (json!(true), json!(["vault"]))
    );
    let wrong = status(control.create_json("tr-wrong", &token_review(token.trim(), &["vault"])));
    assert_eq!(wrong["authenticated"], Value::Null, "{wrong}");
    assert_eq!(wrong["error"], "invalid bearer token");
    let forged = status(control.create_json(
        "tr-forged",
        &token_review("eyJhbGciOiJFUzI1NiJ9.e30.c2ln", &[]),
    ));
    assert_eq!(forged["error"], "invalid bearer token");

    assert_eq!(
        status(control.create_json("sar", &access_review("jane", "dev")))["allowed"],
        false
    );
    ok(control.kubectl(&[
        "create",
        "rolebinding",
        "jane-view",
        "--clusterrole=view",
        "--user=jane",
        "-n",
        "dev",
    ]));
    wait_until("jane may list pods in dev", || {
        status(control.create_json("sar", &access_review("jane", "dev")))["allowed"] == true
    });
    let mut local = access_review("jane", "other");
    local["kind"] = json!("LocalSubjectAccessReview");
    local["metadata"] = json!({"namespace": "dev"});
    let text = stderr(&control.create_json("lsar", &local));
    assert!(text.contains("spec.resourceAttributes.namespace: Invalid value: \"other\": must match metadata.namespace"), "{text}");

    // A service account reviews only once it is an auth delegator.
    let as_app = control.token_kubeconfig("app", token.trim());
    let file = control.dir.path().join("tr.json");
    let path = file.to_str().unwrap_or_default();
    let refused = kubectl_with(&as_app, &["create", "-f", path, "-o", "json"]);
    assert!(
        stderr(&refused).contains("tokenreviews.authentication.k8s.io is forbidden: User \"system:serviceaccount:dev:app\" cannot create resource \"tokenreviews\""),
        "{}",
        stderr(&refused)
    );
    ok(control.kubectl(&[
        "create",
        "clusterrolebinding",
        "app-delegator",
        "--clusterrole=system:auth-delegator",
        "--serviceaccount=dev:app",
    ]));
    wait_until("the delegator reviews tokens", || {
        kubectl_with(&as_app, &["create", "-f", path, "-o", "json"])
            .status
            .success()
    });
}
