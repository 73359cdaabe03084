//! The authorizer's table: (who, verb, resource, namespace, name, object) → allowed or not.

use serde_json::json;

use super::*;
use crate::kinds;

/// Two pods: `web` on n1 using Secret `s1`, ConfigMap `c1`, PVC `v1`; `other` on n2 using
/// Secret `s2`.
#[derive(Default)]
struct Fake {
    policy: super::rbac::Policy,
}

fn pod_web() -> Value {
    json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "web-uid"},
        "spec": {
            "nodeName": "n1",
            "imagePullSecrets": [{"name": "pull"}],
            "volumes": [
                {"name": "a", "secret": {"secretName": "s1"}},
                {"name": "b", "configMap": {"name": "c1"}},
                {"name": "c", "persistentVolumeClaim": {"claimName": "v1"}},
                {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                {"name": "d", "projected": {"sources": [{"secret": {"name": "proj"}}]}},
            ],
            "containers": [{"name": "c", "env": [
                {"name": "X", "valueFrom": {"secretKeyRef": {"name": "envsecret", "key": "k"}}},
                {"name": "Y", "valueFrom": {"configMapKeyRef": {"name": "envcm", "key": "k"}}},
            ], "envFrom": [{"secretRef": {"name": "fromsecret"}}]}],
            "initContainers": [{"name": "i", "envFrom": [{"configMapRef": {"name": "initcm"}}]}],
        },
    })
}

fn pod_other() -> Value {
    json!({"metadata": {"name": "other", "namespace": "default", "uid": "other-uid"},
        "spec": {"nodeName": "n2", "serviceAccountName": "builder", "volumes": [{"name": "a", "secret": {"secretName": "s2"}}]}})
}

#[async_trait::async_trait]
impl Facts for Fake {
    async fn stored(
        &self,
        resource: &'static Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, ApiError> {
        Ok(match (resource.plural, namespace, name) {
            ("pods", Some("default"), "web") => Some(pod_web()),
            ("pods", Some("default"), "other") => Some(pod_other()),
            ("nodes", None, "n1") => Some(json!({"metadata": {"name": "n1", "uid": "n1-uid"}})),
            _ => None,
        })
    }

    async fn policy(&self) -> Result<std::sync::Arc<super::rbac::Policy>, ApiError> {
        Ok(std::sync::Arc::new(self.policy.clone()))
    }

    async fn any_pod_on_node(
        &self,
        namespace: &str,
        node: &str,
        test: &PodTest<'_>,
    ) -> Result<bool, ApiError> {
        Ok([pod_web(), pod_other()].iter().any(|p| {
            p["metadata"]["namespace"] == namespace && p["spec"]["nodeName"] == node && test(p)
        }))
    }
}

fn id(user: &str, groups: &[&str]) -> Identity {
    Identity {
        user: user.into(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        ..Default::default()
    }
}

fn resource(path: &str) -> &'static Resource {
    let (group, plural) = path.split_once('/').unwrap_or(("", path));
    kinds::RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == plural)
        .unwrap_or_else(|| panic!("no resource {path}"))
}

/// (verb, "group/plural" or "plural", subresource, namespace, name, body, allowed)
type Row = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    Option<Value>,
    bool,
);

async fn check(who: &Identity, rows: Vec<Row>) {
    for (verb, path, sub, ns, name, object, want) in rows {
        let attrs = Attributes {
            verb,
            resource: resource(path),
            subresource: sub,
            namespace: ns,
            name,
            object: object.as_ref(),
        };
        let got = authorize(who, &attrs, &Fake::default()).await;
        assert_eq!(
            got.is_ok(),
            want,
            "{} {verb} {path}/{sub:?} {ns:?}/{name:?}: {got:?}",
            who.user
        );
    }
}

/// A mirror pod bound to `node`, owned by n1's Node.
fn mirror_pod(node: &str) -> Value {
    json!({"metadata": {"name": "m", "annotations": {"kubernetes.io/config.mirror": "x"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "n1",
                "uid": "n1-uid", "controller": true}]},
        "spec": {"nodeName": node}})
}

fn owned_by(mut pod: Value, owners: Value) -> Value {
    pod["metadata"]["ownerReferences"] = owners;
    pod
}

fn with(mut pod: Value, key: &str, value: Value) -> Value {
    pod["spec"][key] = value;
    pod
}

#[rustfmt::skip]
#[tokio::test]
async fn nodes_follow_the_node_rule() {
    let n1 = id("system:node:n1", &["system:nodes"]);
    let d = Some("default");
    let lease_ns = Some("kube-node-lease");
    let leases = "coordination.k8s.io/leases";
    let csrs = "certificates.k8s.io/certificatesigningrequests";
    let plain_pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}});
    let mirror_with_secret = with(mirror_pod("n1"), "volumes", json!([{"name": "v", "secret": {"secretName": "s2"}}]));
    let mirror_with_cm = with(mirror_pod("n1"), "containers", json!([{"name": "c", "envFrom": [{"configMapRef": {"name": "c9"}}]}]));
    let mirror_with_sa = with(mirror_pod("n1"), "serviceAccountName", json!("admin"));
    check(&n1, vec![
        // Reads of what a node runs and routes.
        ("list", "pods", None, None, None, None, true),
        ("watch", "pods", None, d, None, None, true),
        ("get", "nodes", None, None, Some("n2"), None, true),
        ("list", "services", None, None, None, None, true),
        ("list", "endpoints", None, d, None, None, true),
        ("watch", "discovery.k8s.io/endpointslices", None, None, None, None, true),
        ("get", "namespaces", None, None, Some("default"), None, true),
        // Its own Node and Lease, nobody else's.
        ("create", "nodes", None, None, Some("n1"), None, true),
        ("patch", "nodes", None, None, Some("n1"), None, true),
        ("update", "nodes", Some("status"), None, Some("n1"), None, true),
        ("patch", "nodes", None, None, Some("n2"), None, false),
        ("patch", "nodes", Some("status"), None, Some("n2"), None, false),
        ("delete", "nodes", None, None, Some("n1"), None, false),
        ("create", leases, None, lease_ns, Some("n1"), None, true),
        ("update", leases, None, lease_ns, Some("n1"), None, true),
        ("get", leases, None, lease_ns, Some("n1"), None, true),
        ("update", leases, None, lease_ns, Some("n2"), None, false),
        ("update", leases, None, Some("kube-system"), Some("n1"), None, false),
        // Pod status only for pods bound to it (the stored pod decides).
        ("patch", "pods", Some("status"), d, Some("web"), None, true),
        ("update", "pods", Some("status"), d, Some("web"), None, true),
        ("patch", "pods", Some("status"), d, Some("other"), None, false),
        // (a pod that does not exist is answered 404 by the handler)
        ("patch", "pods", Some("status"), d, Some("missing"), None, true),
        ("patch", "pods", None, d, Some("web"), None, false),
        ("update", "pods", None, d, Some("web"), None, false),
        // Not the logs of any pod, even its own (a node is no user of pods/log).
        ("get", "pods", Some("log"), d, Some("web"), None, false),
        // Nor a command in one (pods/exec is a create, also by GET).
        ("create", "pods", Some("exec"), d, Some("web"), None, false),
        // Nor a debug container in one, even bound to it (no system:node right).
        ("patch", "pods", Some("ephemeralcontainers"), d, Some("web"), None, false),
        ("update", "pods", Some("ephemeralcontainers"), d, Some("web"), None, false),
        ("get", "pods", Some("ephemeralcontainers"), d, Some("web"), None, false),
        // Mirror pods bound to it that reference nothing it could then read; deleting pods
        // bound to it.
        ("create", "pods", None, d, Some("m"), Some(mirror_pod("n1")), true),
        ("create", "pods", None, d, Some("m"), Some(mirror_pod("n2")), false),
        ("create", "pods", None, d, Some("p"), Some(plain_pod), false),
        ("create", "pods", None, d, Some("m"), Some(mirror_with_secret), false),
        ("create", "pods", None, d, Some("m"), Some(mirror_with_cm), false),
        ("create", "pods", None, d, Some("m"), Some(mirror_with_sa), false),
        ("delete", "pods", None, d, Some("web"), None, true),
        ("delete", "pods", None, d, Some("other"), None, false),
        ("deletecollection", "pods", None, d, None, None, false),
        // Events.
        ("create", "events", None, d, None, None, true),
        ("patch", "events.k8s.io/events", None, d, Some("e"), None, true),
        ("delete", "events", None, d, Some("e"), None, false),
        // Secrets, ConfigMaps, PVCs its pods use, by name only.
        ("get", "secrets", None, d, Some("s1"), None, true),
        ("get", "secrets", None, d, Some("pull"), None, true),
        ("get", "secrets", None, d, Some("proj"), None, true),
        ("get", "secrets", None, d, Some("envsecret"), None, true),
        ("get", "secrets", None, d, Some("fromsecret"), None, true),
        ("watch", "secrets", None, d, Some("s1"), None, true),
        ("get", "secrets", None, d, Some("s2"), None, false),
        ("get", "secrets", None, Some("kube-system"), Some("s1"), None, false),
        ("list", "secrets", None, d, None, None, false),
        ("update", "secrets", None, d, Some("s1"), None, false),
        ("get", "configmaps", None, d, Some("c1"), None, true),
        ("get", "configmaps", None, d, Some("envcm"), None, true),
        ("get", "configmaps", None, d, Some("initcm"), None, true),
        ("get", "configmaps", None, d, Some("s1"), None, false),
        ("get", "persistentvolumeclaims", None, d, Some("v1"), None, true),
        ("get", "persistentvolumeclaims", None, d, Some("web-scratch"), None, true),
        // A node provisions and expands the claims of its drivers: it reads every claim.
        ("get", "persistentvolumeclaims", None, d, Some("v2"), None, true),
        ("list", "persistentvolumeclaims", None, None, None, None, true),
        ("patch", "persistentvolumeclaims", Some("status"), d, Some("v1"), None, true),
        ("delete", "persistentvolumeclaims", None, d, Some("v1"), None, false),
        ("create", "persistentvolumes", None, None, Some("pvc-1"), None, true),
        ("delete", "persistentvolumes", None, None, Some("pvc-1"), None, true),
        ("list", "storage.k8s.io/storageclasses", None, None, None, None, true),
        ("create", "storage.k8s.io/storageclasses", None, None, Some("x"), None, false),
        // Its own CSINode only.
        ("create", "storage.k8s.io/csinodes", None, None, Some("n1"), None, true),
        ("update", "storage.k8s.io/csinodes", None, None, Some("n1"), None, true),
        ("update", "storage.k8s.io/csinodes", None, None, Some("n2"), None, false),
        // CSRs; nothing else.
        ("create", csrs, None, None, Some("c"), None, true),
        ("update", csrs, Some("approval"), None, Some("c"), None, false),
        ("delete", "apps/deployments", None, d, Some("web"), None, false),
        ("list", "apps/deployments", None, d, None, None, false),
        ("create", "services", None, d, Some("x"), None, false),
        ("list", "serviceaccounts", None, d, None, None, false),
    ])
    .await;
    // Both the user name and the group make a node.
    let not_in_group = id("system:node:n1", &[]);
    check(&not_in_group, vec![("list", "pods", None, None, None, None, false)]).await;
}

#[rustfmt::skip]
#[tokio::test]
async fn bootstrappers_only_ask_for_certificates_and_admins_do_anything() {
    let boot = id("system:bootstrap:abcdef", &["system:bootstrappers"]);
    let csrs = "certificates.k8s.io/certificatesigningrequests";
    check(&boot, vec![
        ("create", csrs, None, None, Some("c"), None, true),
        ("get", csrs, None, None, Some("c"), None, true),
        ("list", csrs, None, None, None, None, true),
        ("watch", csrs, None, None, None, None, true),
        ("delete", csrs, None, None, Some("c"), None, false),
        ("update", csrs, Some("approval"), None, Some("c"), None, false),
        ("update", csrs, Some("status"), None, Some("c"), None, false),
        ("list", "pods", None, None, None, None, false),
        ("get", "nodes", None, None, Some("n1"), None, false),
    ])
    .await;
    let admin = id("bosun-admin", &["system:masters"]);
    check(&admin, vec![
        ("delete", "apps/deployments", None, Some("default"), Some("web"), None, true),
        ("update", csrs, Some("approval"), None, Some("c"), None, true),
        ("get", "secrets", None, Some("default"), Some("s2"), None, true),
    ])
    .await;
    let stranger = id("alice", &["dev"]);
    check(&stranger, vec![("list", "pods", None, None, None, None, false)]).await;
}

#[test]
fn refusals_read_as_kube_apiserver_writes_them() {
    let n1 = id("system:node:n1", &["system:nodes"]);
    let attrs = |verb, path, sub, ns, name| Attributes {
        verb,
        resource: resource(path),
        subresource: sub,
        namespace: ns,
        name,
        object: None,
    };
    let e = forbidden(
        &n1,
        &attrs("get", "secrets", None, Some("default"), Some("s")),
        "no relationship found between node 'n1' and this object",
    );
    assert_eq!(e.code, http::StatusCode::FORBIDDEN);
    assert_eq!(e.reason, "Forbidden");
    assert_eq!(
        e.message,
        "secrets \"s\" is forbidden: User \"system:node:n1\" cannot get resource \"secrets\" in API group \"\" in the namespace \"default\": no relationship found between node 'n1' and this object"
    );
    let e = forbidden(
        &n1,
        &attrs("patch", "nodes", Some("status"), None, Some("n2")),
        "",
    );
    assert_eq!(
        e.message,
        "nodes \"n2\" is forbidden: User \"system:node:n1\" cannot patch resource \"nodes/status\" in API group \"\" at the cluster scope"
    );
    let e = forbidden(
        &n1,
        &attrs("list", "apps/deployments", None, Some("a"), None),
        "",
    );
    assert_eq!(
        e.message,
        "deployments.apps is forbidden: User \"system:node:n1\" cannot list resource \"deployments\" in API group \"apps\" in the namespace \"a\""
    );
}

/// NodeRestriction's refusals of a node's pod writes, word for word as kube-apiserver's.
#[tokio::test]
async fn a_node_creates_only_its_own_mirror_pods_in_noderestrictions_words() {
    let n1 = id("system:node:n1", &["system:nodes"]);
    let owner = |patch: Value| {
        let mut o = json!({"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "n1-uid",
            "controller": true});
        for (k, v) in patch.as_object().into_iter().flatten() {
            o[k] = v.clone();
        }
        json!([o])
    };
    let plain = json!({"metadata": {"name": "m"}, "spec": {"nodeName": "n1"}});
    let cases = [
        (mirror_pod("n1"), None),
        (plain, Some("pod does not have \"kubernetes.io/config.mirror\" annotation, node \"n1\" can only create mirror pods")),
        (mirror_pod("n2"), Some("node \"n1\" can only create pods with spec.nodeName set to itself")),
        (owned_by(mirror_pod("n1"), json!(null)), Some("node \"n1\" can only create pods with an owner reference set to itself")),
        (owned_by(mirror_pod("n1"), json!([owner(json!({}))[0], owner(json!({}))[0]])), Some("node \"n1\" can only create pods with a single owner reference set to itself")),
        (owned_by(mirror_pod("n1"), owner(json!({"name": "n2"}))), Some("node \"n1\" can only create pods with an owner reference set to itself")),
        (owned_by(mirror_pod("n1"), owner(json!({"kind": "Pod"}))), Some("node \"n1\" can only create pods with an owner reference set to itself")),
        (owned_by(mirror_pod("n1"), owner(json!({"controller": false}))), Some("node \"n1\" can only create pods with a controller owner reference set to itself")),
        (owned_by(mirror_pod("n1"), owner(json!({"blockOwnerDeletion": true}))), Some("node \"n1\" must not set blockOwnerDeletion on an owner reference")),
        (owned_by(mirror_pod("n1"), owner(json!({"uid": "old"}))), Some("node n1 UID mismatch: expected old got n1-uid")),
        (with(mirror_pod("n1"), "serviceAccountName", json!("admin")), Some("node \"n1\" can not create pods that reference a service account")),
        (with(mirror_pod("n1"), "volumes", json!([{"name": "v", "secret": {"secretName": "s"}}])), Some("node \"n1\" can not create pods that reference secrets")),
        (with(mirror_pod("n1"), "volumes", json!([{"name": "v", "persistentVolumeClaim": {"claimName": "c"}}])), Some("node \"n1\" can not create pods that reference persistentvolumeclaims")),
    ];
    for (pod, refusal) in cases {
        let attrs = Attributes {
            verb: "create",
            resource: resource("pods"),
            subresource: None,
            namespace: Some("default"),
            name: Some("m"),
            object: Some(&pod),
        };
        let got = authorize(&n1, &attrs, &Fake::default()).await;
        match refusal {
            None => assert!(got.is_ok(), "{pod}: {got:?}"),
            Some(why) => {
                let e = got.expect_err("refused");
                assert_eq!(e.code, http::StatusCode::FORBIDDEN);
                assert_eq!(
                    e.message,
                    format!("pods \"m\" is forbidden: {why}"),
                    "{pod}"
                );
            }
        }
    }
    let attrs = |verb, sub, name| Attributes {
        verb,
        resource: resource("pods"),
        subresource: sub,
        namespace: Some("default"),
        name: Some(name),
        object: None,
    };
    let e = authorize(&n1, &attrs("delete", None, "other"), &Fake::default())
        .await
        .expect_err("refused");
    assert_eq!(e.message, "pods \"other\" is forbidden: node \"n1\" can only delete pods with spec.nodeName set to itself");
    let e = authorize(
        &n1,
        &attrs("patch", Some("status"), "other"),
        &Fake::default(),
    )
    .await
    .expect_err("refused");
    assert_eq!(e.message, "pods \"other\" is forbidden: node \"n1\" can only update pod status for pods with spec.nodeName set to itself");
    let e = authorize(&n1, &attrs("update", None, "web"), &Fake::default())
        .await
        .expect_err("refused");
    assert_eq!(e.message, "pods \"web\" is forbidden: User \"system:node:n1\" cannot update resource \"pods\" in API group \"\" in the namespace \"default\"");
}

/// The Node authorizer and NodeRestriction on `serviceaccounts/token`.
#[tokio::test]
async fn a_node_gets_tokens_only_bound_to_its_own_pods() {
    let n1 = id("system:node:n1", &["system:nodes"]);
    let request = |kind: &str, name: &str, uid: &str| {
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"boundObjectRef": {"apiVersion": "v1", "kind": kind, "name": name, "uid": uid}}})
    };
    let cases = [
        ("default", request("Pod", "web", "web-uid"), None),
        // `other` runs as builder, but on n2: no relationship.
        ("builder", request("Pod", "other", "other-uid"), Some("serviceaccounts \"builder\" is forbidden: User \"system:node:n1\" cannot create resource \"serviceaccounts/token\" in API group \"\" in the namespace \"default\": no relationship found between node 'n1' and this object")),
        ("default", json!({"spec": {}}), Some("serviceaccounts \"default\" is forbidden: node requested token not bound to a pod")),
        ("default", request("Secret", "web", "web-uid"), Some("serviceaccounts \"default\" is forbidden: node requested token not bound to a pod")),
        ("default", request("Pod", "web", ""), Some("serviceaccounts \"default\" is forbidden: node requested token with a pod binding without a uid")),
        ("default", request("Pod", "web", "old"), Some("serviceaccounts \"default\" is forbidden: the UID in the bound object reference (old) does not match the UID in record. The object might have been deleted and then recreated")),
        ("default", request("Pod", "other", "other-uid"), Some("serviceaccounts \"default\" is forbidden: node requested token bound to a pod scheduled on a different node")),
        ("default", request("Pod", "gone", "u"), Some("pods \"gone\" not found")),
    ];
    for (account, body, refusal) in cases {
        let attrs = Attributes {
            verb: "create",
            resource: resource("serviceaccounts"),
            subresource: Some("token"),
            namespace: Some("default"),
            name: Some(account),
            object: Some(&body),
        };
        let got = authorize(&n1, &attrs, &Fake::default()).await;
        match refusal {
            None => assert!(got.is_ok(), "{body}: {got:?}"),
            Some(why) => assert_eq!(got.expect_err("refused").message, why, "{body}"),
        }
    }
    // Nothing else of service accounts, and nobody but a node or an admin.
    check(
        &n1,
        vec![(
            "get",
            "serviceaccounts",
            None,
            Some("default"),
            Some("default"),
            None,
            false,
        )],
    )
    .await;
    let sa = crate::authn::service_account::identity("default", "default");
    let body = request("Pod", "web", "web-uid");
    check(
        &sa,
        vec![
            (
                "create",
                "serviceaccounts",
                Some("token"),
                Some("default"),
                Some("default"),
                Some(body),
                false,
            ),
            ("list", "pods", None, Some("default"), None, None, false),
        ],
    )
    .await;
}

#[tokio::test]
async fn rbac_grants_what_the_node_and_default_rules_do_not() {
    let mut fake = Fake::default();
    fake.policy.add_object(
        "Role",
        &json!({"metadata": {"name": "reader", "namespace": "default"},
        "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["configmaps"]}]}),
    );
    fake.policy.add_object("RoleBinding", &json!({"metadata": {"name": "b", "namespace": "default"},
        "roleRef": {"kind": "Role", "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "app"}, {"kind": "Group", "name": "system:nodes"}]}));
    let configmaps = crate::kinds::find("", "v1", "configmaps").unwrap();
    let attrs = |verb, namespace| Attributes {
        verb,
        resource: configmaps,
        subresource: None,
        namespace,
        name: Some("settings"),
        object: None,
    };
    let app = id(
        "system:serviceaccount:default:app",
        &["system:serviceaccounts"],
    );
    assert!(authorize(&app, &attrs("get", Some("default")), &fake)
        .await
        .is_ok());
    let e = authorize(&app, &attrs("delete", Some("default")), &fake)
        .await
        .unwrap_err();
    assert_eq!(e.message, "configmaps \"settings\" is forbidden: User \"system:serviceaccount:default:app\" cannot delete resource \"configmaps\" in API group \"\" in the namespace \"default\"");
    assert!(authorize(&app, &attrs("get", Some("other")), &fake)
        .await
        .is_err());
    let n1 = id("system:node:n1", &["system:nodes"]);
    assert!(
        authorize(&n1, &attrs("get", Some("default")), &fake)
            .await
            .is_ok(),
        "RBAC after the node rules"
    );
    let e = authorize(&n1, &attrs("get", Some("other")), &fake)
        .await
        .unwrap_err();
    assert!(
        e.message
            .ends_with("no relationship found between node 'n1' and this object"),
        "{}",
        e.message
    );
}
