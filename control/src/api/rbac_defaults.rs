//! The RBAC objects kube-apiserver makes at its start (`plugin/pkg/auth/authorizer/rbac/
//! bootstrappolicy`), made when missing and otherwise left as the administrator keeps them:
//! `cluster-admin` (everything, bound to `system:masters`), `system:discovery`,
//! `system:basic-user` and `system:public-info-viewer` (bound to every authenticated caller),
//! `system:auth-delegator` (TokenReviews and SubjectAccessReviews, for servers delegating to us),
//! and the user-facing `admin`, `edit` and `view`, aggregated from the
//! `system:aggregate-to-*` roles and any ClusterRole labelled
//! `rbac.authorization.k8s.io/aggregate-to-<role>: "true"`.

use serde_json::{json, Value};

use super::validate_rbac::GROUP;
use super::{create_missing, ApiState};
use crate::kinds;
use crate::store;

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const AGGREGATE_TO: &str = "rbac.authorization.k8s.io/aggregate-to-";

fn rule(verbs: &[&str], group: &str, resources: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": [group], "resources": resources})
}

fn urls(paths: &[&str]) -> Value {
    json!({"verbs": ["get"], "nonResourceURLs": paths})
}

fn cluster_role(name: &str, labels: Value, rules: Vec<Value>) -> Value {
    let mut labels = labels;
    labels["kubernetes.io/bootstrapping"] = json!("rbac-defaults");
    json!({"apiVersion": format!("{GROUP}/v1"), "kind": "ClusterRole",
        "metadata": {"name": name, "labels": labels,
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
        "rules": rules})
}

/// `admin`, `edit` or `view`: aggregated from what is labelled for it, itself labelled into
/// `into` (view into edit, edit into admin).
fn aggregated(name: &str, into: Option<&str>) -> Value {
    let labels = match into {
        Some(into) => json!({ format!("{AGGREGATE_TO}{into}"): "true" }),
        None => json!({}),
    };
    let mut role = cluster_role(name, labels, Vec::new());
    role["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchLabels": { format!("{AGGREGATE_TO}{name}"): "true" }}]});
    role
}

fn aggregate_to(name: &str, rules: Vec<Value>) -> Value {
    let labels = json!({ format!("{AGGREGATE_TO}{name}"): "true" });
    cluster_role(&format!("system:aggregate-to-{name}"), labels, rules)
}

fn read_write() -> Vec<&'static str> {
    READ.iter().chain(WRITE).copied().collect()
}

/// The bootstrap ClusterRoles.
pub fn cluster_roles() -> Vec<Value> {
    let core = "";
    vec![
        cluster_role(
            "cluster-admin",
            json!({}),
            vec![
                rule(&["*"], "*", &["*"]),
                json!({"verbs": ["*"], "nonResourceURLs": ["*"]}),
            ],
        ),
        cluster_role(
            "system:discovery",
            json!({}),
            vec![urls(&[
                "/api",
                "/api/*",
                "/apis",
                "/apis/*",
                "/healthz",
                "/livez",
                "/openapi",
                "/openapi/*",
                "/readyz",
                "/version",
                "/version/",
            ])],
        ),
        // What the API server's kubelet client may do on the kubelet API, as kube's; also
        // what a user needs for `nodes/NAME/proxy/...`.
        cluster_role(
            "system:kubelet-api-admin",
            json!({}),
            vec![
                rule(READ, core, &["nodes"]),
                rule(&["proxy"], core, &["nodes"]),
                rule(
                    &read_write(),
                    core,
                    &[
                        "nodes/log",
                        "nodes/metrics",
                        "nodes/proxy",
                        "nodes/spec",
                        "nodes/stats",
                    ],
                ),
            ],
        ),
        cluster_role(
            "system:monitoring",
            json!({}),
            vec![urls(&[
                "/healthz",
                "/healthz/*",
                "/livez",
                "/livez/*",
                "/metrics",
                "/metrics/slis",
                "/readyz",
                "/readyz/*",
            ])],
        ),
        cluster_role(
            "system:public-info-viewer",
            json!({}),
            vec![urls(&[
                "/healthz",
                "/livez",
                "/readyz",
                "/version",
                "/version/",
            ])],
        ),
        cluster_role(
            "system:basic-user",
            json!({}),
            vec![
                rule(
                    &["create"],
                    "authorization.k8s.io",
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(
                    &["create"],
                    "authentication.k8s.io",
                    &["selfsubjectreviews"],
                ),
            ],
        ),
        cluster_role(
            "system:auth-delegator",
            json!({}),
            vec![
                rule(&["create"], "authentication.k8s.io", &["tokenreviews"]),
                rule(
                    &["create"],
                    "authorization.k8s.io",
                    &["subjectaccessreviews"],
                ),
            ],
        ),
        aggregated("admin", None),
        aggregated("edit", Some("admin")),
        aggregated("view", Some("edit")),
        aggregate_to(
            "admin",
            vec![
                rule(
                    &["create"],
                    "authorization.k8s.io",
                    &["localsubjectaccessreviews"],
                ),
                rule(&read_write(), GROUP, &["rolebindings", "roles"]),
            ],
        ),
        aggregate_to(
            "edit",
            vec![
                rule(
                    READ,
                    core,
                    &[
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                        "secrets",
                        "services/proxy",
                    ],
                ),
                rule(&["impersonate"], core, &["serviceaccounts"]),
                rule(
                    WRITE,
                    core,
                    &[
                        "pods",
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                    ],
                ),
                rule(&["create"], core, &["pods/eviction"]),
                rule(
                    WRITE,
                    core,
                    &[
                        "configmaps",
                        "events",
                        "persistentvolumeclaims",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "secrets",
                        "serviceaccounts",
                        "services",
                        "services/proxy",
                    ],
                ),
                rule(&["create"], core, &["serviceaccounts/token"]),
                rule(
                    WRITE,
                    "apps",
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/rollback",
                        "deployments/scale",
                        "replicasets",
                        "replicasets/scale",
                        "statefulsets",
                        "statefulsets/scale",
                    ],
                ),
                rule(WRITE, "autoscaling", &["horizontalpodautoscalers"]),
                rule(WRITE, "batch", &["cronjobs", "jobs"]),
                rule(WRITE, "discovery.k8s.io", &["endpointslices"]),
                rule(WRITE, "policy", &["poddisruptionbudgets"]),
                rule(
                    WRITE,
                    "networking.k8s.io",
                    &["ingresses", "networkpolicies"],
                ),
            ],
        ),
        aggregate_to(
            "view",
            vec![
                rule(
                    READ,
                    core,
                    &[
                        "configmaps",
                        "endpoints",
                        "persistentvolumeclaims",
                        "persistentvolumeclaims/status",
                        "pods",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/status",
                    ],
                ),
                rule(
                    READ,
                    core,
                    &[
                        "bindings",
                        "events",
                        "limitranges",
                        "namespaces/status",
                        "pods/log",
                        "pods/status",
                        "replicationcontrollers/status",
                        "resourcequotas",
                        "resourcequotas/status",
                    ],
                ),
                rule(READ, core, &["namespaces"]),
                rule(READ, "discovery.k8s.io", &["endpointslices"]),
                rule(
                    READ,
                    "apps",
                    &[
                        "controllerrevisions",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "statefulsets",
                        "statefulsets/scale",
                        "statefulsets/status",
                    ],
                ),
                rule(
                    READ,
                    "autoscaling",
                    &[
                        "horizontalpodautoscalers",
                        "horizontalpodautoscalers/status",
                    ],
                ),
                rule(
                    READ,
                    "batch",
                    &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
                ),
                rule(
                    READ,
                    "policy",
                    &["poddisruptionbudgets", "poddisruptionbudgets/status"],
                ),
                rule(
                    READ,
                    "networking.k8s.io",
                    &["ingresses", "ingresses/status", "networkpolicies"],
                ),
            ],
        ),
    ]
}

/// The bootstrap ClusterRoleBindings: (name = role, groups).
const BINDINGS: [(&str, &[&str]); 5] = [
    ("cluster-admin", &["system:masters"]),
    ("system:monitoring", &["system:monitoring"]),
    ("system:discovery", &["system:authenticated"]),
    ("system:basic-user", &["system:authenticated"]),
    (
        "system:public-info-viewer",
        &["system:authenticated", "system:unauthenticated"],
    ),
];

fn cluster_role_binding(name: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> = groups
        .iter()
        .map(|g| json!({"apiGroup": GROUP, "kind": "Group", "name": g}))
        .collect();
    json!({"apiVersion": format!("{GROUP}/v1"), "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": name},
        "subjects": subjects})
}

/// Makes the bootstrap roles and bindings that are missing.
pub async fn bootstrap(state: &ApiState) -> Result<(), store::Error> {
    let (Some(roles), Some(bindings)) = (
        kinds::find(GROUP, "v1", "clusterroles"),
        kinds::find(GROUP, "v1", "clusterrolebindings"),
    ) else {
        return Ok(());
    };
    for role in cluster_roles() {
        create_missing(state, roles, role).await?;
    }
    for (name, groups) in BINDINGS {
        create_missing(state, bindings, cluster_role_binding(name, groups)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::validate_rbac;
    use crate::status::FieldCause;

    #[test]
    fn the_bootstrap_roles_are_valid_and_the_aggregation_chain_is_kubes() {
        let roles = cluster_roles();
        for role in &roles {
            let mut causes: Vec<FieldCause> = Vec::new();
            validate_rbac::role(role, false, &mut causes);
            assert!(
                causes.is_empty(),
                "{}: {causes:?}",
                role["metadata"]["name"]
            );
        }
        let labelled = |name: &str| {
            roles
                .iter()
                .find(|r| r["metadata"]["name"] == name)
                .unwrap()["metadata"]["labels"]
                .clone()
        };
        assert_eq!(
            labelled("view")["rbac.authorization.k8s.io/aggregate-to-edit"],
            "true"
        );
        assert_eq!(
            labelled("edit")["rbac.authorization.k8s.io/aggregate-to-admin"],
            "true"
        );
        for (name, groups) in BINDINGS {
            let mut causes = Vec::new();
            validate_rbac::binding(&cluster_role_binding(name, groups), false, &mut causes);
            assert!(causes.is_empty(), "{name}: {causes:?}");
        }
    }
}
