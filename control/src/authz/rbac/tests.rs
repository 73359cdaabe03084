use serde_json::json;

use super::*;

fn id(user: &str, groups: &[&str]) -> Identity {
    Identity {
        user: user.to_owned(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        ..Default::default()
    }
}

fn rule(value: Value) -> Rule {
    Rule::of(&value)
}

fn get<'a>(group: &'a str, resource: &'a str, namespace: Option<&'a str>) -> Request<'a> {
    Request::Resource {
        verb: "get",
        group,
        resource,
        subresource: None,
        namespace,
        name: Some("x"),
    }
}

fn policy() -> Policy {
    let mut p = Policy::default();
    p.add_role(
        "dev",
        "pod-reader",
        vec![rule(
            json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "pods/log"]}),
        )],
    );
    p.add_cluster_role(
        "scaler",
        vec![rule(
            json!({"verbs": ["*"], "apiGroups": ["apps"], "resources": ["*/scale"]}),
        )],
    );
    p.add_cluster_role(
        "metrics",
        vec![rule(
            json!({"verbs": ["get"], "nonResourceURLs": ["/metrics*"]}),
        )],
    );
    p.add_cluster_role("one-secret", vec![rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["token"]}))]);
    p.add_binding(Binding::of(&json!({"roleRef": {"kind": "Role", "name": "pod-reader"}, "subjects": [{"kind": "ServiceAccount", "name": "app"}]}), Some("dev")));
    p.add_binding(Binding::of(&json!({"roleRef": {"kind": "ClusterRole", "name": "scaler"}, "subjects": [{"kind": "Group", "name": "ops"}]}), Some("dev")));
    p.add_binding(Binding::of(&json!({"roleRef": {"kind": "ClusterRole", "name": "metrics"}, "subjects": [{"kind": "Group", "name": "system:authenticated"}]}), None));
    p.add_binding(Binding::of(&json!({"roleRef": {"kind": "ClusterRole", "name": "one-secret"}, "subjects": [{"kind": "User", "name": "jane"}]}), None));
    p
}

#[test]
fn a_role_binding_grants_its_roles_rules_in_its_namespace_only() {
    let p = policy();
    let app = id("system:serviceaccount:dev:app", &["system:serviceaccounts"]);
    assert!(p.allows(&app, &get("", "pods", Some("dev"))));
    assert!(!p.allows(&app, &get("", "pods", Some("prod"))));
    assert!(!p.allows(&app, &get("", "secrets", Some("dev"))));
    let other = id("system:serviceaccount:prod:app", &[]);
    assert!(
        !p.allows(&other, &get("", "pods", Some("dev"))),
        "another namespace's account"
    );
    let log = Request::Resource {
        verb: "get",
        group: "",
        resource: "pods",
        subresource: Some("log"),
        namespace: Some("dev"),
        name: Some("x"),
    };
    assert!(p.allows(&app, &log));
    let exec = Request::Resource {
        verb: "get",
        group: "",
        resource: "pods",
        subresource: Some("exec"),
        namespace: Some("dev"),
        name: Some("x"),
    };
    assert!(!p.allows(&app, &exec));
}

#[test]
fn groups_wildcard_subresources_names_and_urls_match_as_kube_matches_them() {
    let p = policy();
    let ops = id("sam", &["ops"]);
    let scale = |group| Request::Resource {
        verb: "patch",
        group,
        resource: "deployments",
        subresource: Some("scale"),
        namespace: Some("dev"),
        name: Some("web"),
    };
    assert!(p.allows(&ops, &scale("apps")));
    assert!(!p.allows(&ops, &scale("")));
    assert!(!p.allows(
        &ops,
        &Request::Resource {
            verb: "patch",
            group: "apps",
            resource: "deployments",
            subresource: None,
            namespace: Some("dev"),
            name: Some("web")
        }
    ));
    let anyone = id("who", &[]);
    assert!(p.allows(
        &anyone,
        &Request::NonResource {
            verb: "get",
            path: "/metrics/cadvisor"
        }
    ));
    assert!(!p.allows(
        &anyone,
        &Request::NonResource {
            verb: "get",
            path: "/healthz"
        }
    ));
    let jane = id("jane", &[]);
    let token = Request::Resource {
        verb: "get",
        group: "",
        resource: "secrets",
        subresource: None,
        namespace: Some("any"),
        name: Some("token"),
    };
    assert!(p.allows(&jane, &token));
    let other = Request::Resource {
        verb: "get",
        group: "",
        resource: "secrets",
        subresource: None,
        namespace: Some("any"),
        name: Some("other"),
    };
    assert!(!p.allows(&jane, &other));
    let list = Request::Resource {
        verb: "get",
        group: "",
        resource: "secrets",
        subresource: None,
        namespace: Some("any"),
        name: None,
    };
    assert!(
        !p.allows(&jane, &list),
        "resourceNames never match a request without a name"
    );
}

#[test]
fn escalation_needs_every_piece_covered() {
    let held = [
        rule(
            json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "*/status"]}),
        ),
        rule(
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a"]}),
        ),
        rule(json!({"verbs": ["get"], "nonResourceURLs": ["/logs/*"]})),
    ];
    assert!(covers(
        held.iter(),
        &[rule(
            json!({"verbs": ["list"], "apiGroups": [""], "resources": ["pods", "services/status"]})
        )]
    ));
    assert!(covers(
        held.iter(),
        &[rule(
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a"]})
        )]
    ));
    assert!(covers(
        held.iter(),
        &[rule(
            json!({"verbs": ["get"], "nonResourceURLs": ["/logs/x"]})
        )]
    ));
    let missing = uncovered(
        held.iter(),
        &[rule(
            json!({"verbs": ["get", "delete"], "apiGroups": [""], "resources": ["pods", "secrets"]}),
        )],
    );
    let shown: Vec<String> = missing.iter().map(compact).collect();
    assert_eq!(
        shown,
        [
            r#"{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}"#,
            r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}"#,
            r#"{APIGroups:[""], Resources:["secrets"], Verbs:["delete"]}"#,
        ]
    );
    let star = [
        rule(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})),
        rule(json!({"verbs": ["*"], "nonResourceURLs": ["*"]})),
    ];
    assert!(covers(star.iter(), &held));
}

#[test]
fn rules_print_back_without_empty_lists() {
    let r = rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}));
    assert_eq!(
        r.to_json(),
        json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]})
    );
}
