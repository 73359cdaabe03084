//! RBAC through the real kubectl: kube's bootstrap roles (`cluster-admin`, `admin`/`edit`/
//! `view` aggregated from the `system:aggregate-to-*` roles and anything labelled for them,
//! `kubectl auth reconcile`);
//! `kubectl create role|rolebinding` (protobuf) and kube's tables; a service account's token
//! allowed what its bindings grant and refused the rest in kube's words; `kubectl auth can-i`
//! with `--as` (impersonation) and `--list`; escalation prevention (a namespace admin cannot
//! bind cluster-admin); kube's validation (`roleRef` fixed, namespaced roles without URLs).

mod common;

use std::time::{Duration, Instant};

use common::{kubectl_with, ok, stderr, stdout, Control};
use serde_json::Value;

const APP: &str = "--as=system:serviceaccount:dev:app";

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "not within 20 s: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `kubectl auth can-i` says yes (exit 0, "yes").
fn can(control: &Control, args: &[&str]) -> bool {
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    let out = control.kubectl(&all);
    out.status.success() && stdout(&out).trim() == "yes"
}

fn rules_of(control: &Control, role: &str) -> Vec<Value> {
    let text = ok(control.kubectl(&["get", "clusterrole", role, "-o", "json"]));
    let role: Value = serde_json::from_str(&text).unwrap_or_default();
    role["rules"].as_array().cloned().unwrap_or_default()
}

fn grants(rules: &[Value], group: &str, resource: &str, verb: &str) -> bool {
    let has = |v: &Value, item: &str| v.as_array().is_some_and(|a| a.iter().any(|i| i == item));
    rules.iter().any(|r| {
        has(&r["apiGroups"], group) && has(&r["resources"], resource) && has(&r["verbs"], verb)
    })
}

#[test]
fn bootstrap_roles_are_there_and_aggregated() {
    let control = Control::start();
    let table = ok(control.kubectl(&["get", "clusterroles"]));
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.lines().next().unwrap_or("").contains("CREATED AT"),
        "{table}"
    );
    for role in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:aggregate-to-edit",
        "system:discovery",
    ] {
        assert!(
            table.lines().any(|l| l.starts_with(&format!("{role} "))),
            "{role}: {table}"
        );
    }
    let bindings = ok(control.kubectl(&["get", "clusterrolebindings", "-o", "wide"]));
    assert!(
        bindings.lines().any(|l| l.starts_with("cluster-admin ")
            && l.contains("ClusterRole/cluster-admin")
            && l.contains("system:masters")),
        "{bindings}"
    );
    // view ⊂ edit ⊂ admin, through the aggregation labels.
    wait_until("admin aggregated", || {
        let admin = rules_of(&control, "admin");
        grants(&admin, "", "pods", "list")
            && grants(&admin, "apps", "deployments", "update")
            && grants(
                &admin,
                "rbac.authorization.k8s.io",
                "rolebindings",
                "create",
            )
    });
    assert!(
        !grants(&rules_of(&control, "view"), "", "secrets", "get"),
        "view does not read secrets"
    );

    // A ClusterRole labelled for view reaches view, edit and admin.
    let path = control.dir.path().join("widgets.yaml");
    std::fs::write(
        &path,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: widget-reader\n  labels: {rbac.authorization.k8s.io/aggregate-to-view: \"true\"}\nrules:\n- {apiGroups: [example.com], resources: [widgets], verbs: [get, list]}\n",
    )
    .expect("write");
    // `kubectl auth reconcile` (GETs, creates and updates of its own) takes the same file.
    let reconciled =
        ok(control.kubectl(&["auth", "reconcile", "-f", path.to_str().unwrap_or_default()]));
    assert!(
        reconciled.contains("clusterrole.rbac.authorization.k8s.io/widget-reader reconciled"),
        "{reconciled}"
    );
    wait_until("widgets in admin", || {
        ["view", "edit", "admin"]
            .iter()
            .all(|r| grants(&rules_of(&control, r), "example.com", "widgets", "list"))
    });
}

#[test]
fn a_service_account_may_do_what_its_bindings_grant() {
    let control = Control::start();
    ok(control.kubectl(&["create", "namespace", "dev"]));
    ok(control.kubectl(&["create", "serviceaccount", "app", "-n", "dev"]));
    assert!(!can(&control, &["list", "pods", "-n", "dev", APP]));

    ok(control.kubectl(&[
        "create",
        "role",
        "pod-reader",
        "--verb=get,list,watch",
        "--resource=pods,pods/log",
        "-n",
        "dev",
    ]));
    ok(control.kubectl(&[
        "create",
        "rolebinding",
        "read",
        "--role=pod-reader",
        "--serviceaccount=dev:app",
        "-n",
        "dev",
    ]));
    let table = ok(control.kubectl(&["get", "rolebindings", "-n", "dev", "-o", "wide"]));
    assert!(
        table.contains("ROLE") && table.contains("SERVICEACCOUNTS"),
        "{table}"
    );
    assert!(
        table.lines().any(|l| l.starts_with("read ")
            && l.contains("Role/pod-reader")
            && l.contains("dev:app")),
        "{table}"
    );
    wait_until("the binding applies", || {
        can(&control, &["list", "pods", "-n", "dev", APP])
    });
    assert!(!can(&control, &["list", "pods", "-n", "default", APP]));
    assert!(!can(&control, &["delete", "pods", "-n", "dev", APP]));
    assert!(can(
        &control,
        &["get", "pods", "--subresource=log", "-n", "dev", APP]
    ));
    let list = ok(control.kubectl(&["auth", "can-i", "--list", "-n", "dev", APP]));
    let api_lines = list.lines().filter(|l| l.contains("[/api/*]")).count();
    assert_eq!(api_lines, 1, "each URL listed once: {list}");
    assert!(
        list.lines()
            .any(|l| l.starts_with("pods/log ") && l.contains("[get list watch]")),
        "{list}"
    );

    // The account's own token: allowed what the binding grants, refused the rest.
    let token = ok(control.kubectl(&["create", "token", "app", "-n", "dev"]));
    let as_app = control.token_kubeconfig("app", token.trim());
    let pods = kubectl_with(&as_app, &["get", "pods", "-n", "dev"]);
    assert!(pods.status.success(), "{}", stderr(&pods));
    let secrets = kubectl_with(&as_app, &["get", "secrets", "-n", "dev"]);
    assert!(
        stderr(&secrets).contains(
            "secrets is forbidden: User \"system:serviceaccount:dev:app\" cannot list resource \"secrets\" in API group \"\" in the namespace \"dev\""
        ),
        "{}",
        stderr(&secrets)
    );
    let impersonating = kubectl_with(&as_app, &["get", "pods", "-n", "dev", "--as=jane"]);
    assert!(
        stderr(&impersonating).contains(
            "users \"jane\" is forbidden: User \"system:serviceaccount:dev:app\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
        ),
        "{}",
        stderr(&impersonating)
    );

    // A namespace admin may grant what it holds, not more.
    ok(control.kubectl(&[
        "create",
        "rolebinding",
        "app-admin",
        "--clusterrole=admin",
        "--serviceaccount=dev:app",
        "-n",
        "dev",
    ]));
    wait_until("admin applies", || {
        can(&control, &["create", "roles", "-n", "dev", APP])
    });
    let fine = kubectl_with(
        &as_app,
        &[
            "create",
            "role",
            "secret-reader",
            "--verb=get",
            "--resource=secrets",
            "-n",
            "dev",
        ],
    );
    assert!(fine.status.success(), "{}", stderr(&fine));
    let escalation = kubectl_with(
        &as_app,
        &[
            "create",
            "rolebinding",
            "root",
            "--clusterrole=cluster-admin",
            "--serviceaccount=dev:app",
            "-n",
            "dev",
        ],
    );
    let text = stderr(&escalation);
    assert!(
        text.contains("rolebindings.rbac.authorization.k8s.io \"root\" is forbidden: user \"system:serviceaccount:dev:app\"")
            && text.contains("is attempting to grant RBAC permissions not currently held:")
            && text.contains("{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}"),
        "{text}"
    );
    let nodes_role = kubectl_with(
        &as_app,
        &[
            "create",
            "role",
            "nodes",
            "--verb=delete",
            "--resource=nodes",
            "-n",
            "dev",
        ],
    );
    assert!(
        stderr(&nodes_role).contains("is attempting to grant RBAC permissions not currently held"),
        "{}",
        stderr(&nodes_role)
    );
}

#[test]
fn kubes_rbac_validation() {
    let control = Control::start();
    ok(control.kubectl(&["create", "role", "r", "--verb=get", "--resource=pods"]));
    ok(control.kubectl(&["create", "rolebinding", "b", "--role=r", "--user=jane"]));
    let changed = control.kubectl(&[
        "patch",
        "rolebinding",
        "b",
        "--type=merge",
        "-p",
        r#"{"roleRef":{"name":"other"}}"#,
    ]);
    assert!(
        stderr(&changed).contains("roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"Role\", Name:\"other\"}: cannot change roleRef"),
        "{}",
        stderr(&changed)
    );
    let path = control.dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: bad}\nrules:\n- {verbs: [get], nonResourceURLs: [/metrics]}\n- {apiGroups: [\"\"], resources: [pods]}\n",
    )
    .expect("write");
    let bad = control.kubectl(&["apply", "-f", path.to_str().unwrap_or_default()]);
    let text = stderr(&bad);
    assert!(text.contains("The Role \"bad\" is invalid"), "{text}");
    assert!(text.contains("rules[0].nonResourceURLs: Invalid value: []string{\"/metrics\"}: namespaced rules cannot apply to non-resource URLs"), "{text}");
    assert!(
        text.contains("rules[1].verbs: Required value: verbs must contain at least one value"),
        "{text}"
    );
    std::fs::write(
        &path,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: x}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}\nsubjects:\n- {kind: ServiceAccount, name: app}\n",
    )
    .expect("write");
    let text = stderr(&control.kubectl(&["apply", "-f", path.to_str().unwrap_or_default()]));
    assert!(
        text.contains(
            "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\""
        ),
        "{text}"
    );
    assert!(
        text.contains("subjects[0].namespace: Required value"),
        "{text}"
    );
}
