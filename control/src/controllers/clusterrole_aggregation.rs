//! kube-controller-manager's ClusterRole aggregation: a ClusterRole with an `aggregationRule`
//! gets as its `rules` every rule of the other ClusterRoles its `clusterRoleSelectors` select
//! (in name order, each rule once) — how `admin`, `edit` and `view` take in what a ClusterRole
//! labelled `rbac.authorization.k8s.io/aggregate-to-edit: "true"` grants. Chains settle
//! (`view` is aggregated into `edit`, `edit` into `admin`): every change of a ClusterRole makes
//! a pass. `aggregate` decides without I/O.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::client::Loopback;
use super::informer::Informer;
use super::queue::wait_synced;
use crate::api::selector::LabelSelector;

const RESYNC: Duration = Duration::from_secs(60);

/// Starts the controller over the ClusterRoles cache.
pub fn spawn(client: Loopback, roles: Arc<Informer>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut changes = roles.subscribe();
        wait_synced(&[&roles]).await;
        loop {
            pass(&client, &roles).await;
            tokio::select! {
                _ = changes.recv() => {}
                _ = tokio::time::sleep(RESYNC) => {}
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            while changes.try_recv().is_ok() {}
        }
    })
}

async fn pass(client: &Loopback, roles: &Informer) {
    let all = roles.list(|_| true);
    for role in &all {
        let Some(rules) = aggregate(role, &all) else {
            continue;
        };
        let name = role["metadata"]["name"].as_str().unwrap_or("");
        let patch = json!({"rules": rules});
        if let Err(error) = client.merge_patch(roles.resource, None, name, &patch).await {
            tracing::debug!(%error, role = %name, "aggregating a ClusterRole");
        }
    }
}

/// The rules `role` should hold when it has an aggregation rule and they differ from its
/// own; `None` otherwise.
pub fn aggregate(role: &Value, all: &[Arc<Value>]) -> Option<Vec<Value>> {
    let selectors: Vec<LabelSelector> = role["aggregationRule"]["clusterRoleSelectors"]
        .as_array()?
        .iter()
        .filter_map(|s| LabelSelector::from_object(s).ok())
        .collect();
    let name = &role["metadata"]["name"];
    let mut selected: Vec<&Value> = all
        .iter()
        .map(Arc::as_ref)
        .filter(|other| &other["metadata"]["name"] != name)
        .filter(|other| selectors.iter().any(|s| s.matches(other)))
        .collect();
    selected.sort_by(|a, b| {
        let name = |v: &Value| v["metadata"]["name"].as_str().unwrap_or("").to_owned();
        name(a).cmp(&name(b))
    });
    let mut rules: Vec<Value> = Vec::new();
    for rule in selected
        .iter()
        .flat_map(|other| other["rules"].as_array().into_iter().flatten())
    {
        if !rules.contains(rule) {
            rules.push(rule.clone());
        }
    }
    let current = role["rules"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    (current != rules.as_slice()).then_some(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str, labels: Value, rules: Value) -> Arc<Value> {
        Arc::new(json!({"metadata": {"name": name, "labels": labels}, "rules": rules}))
    }

    #[test]
    fn selected_roles_rules_are_gathered_once_in_name_order() {
        let get = json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]});
        let list = json!({"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]});
        let all = vec![
            role(
                "b-extra",
                json!({"to-edit": "true"}),
                json!([list.clone(), get.clone()]),
            ),
            role("a-base", json!({"to-edit": "true"}), json!([get.clone()])),
            role(
                "unrelated",
                json!({}),
                json!([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]),
            ),
        ];
        let mut edit = json!({"metadata": {"name": "edit", "labels": {"to-edit": "true"}},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"to-edit": "true"}}]}});
        assert_eq!(
            aggregate(&edit, &all),
            Some(vec![get.clone(), list.clone()])
        );
        edit["rules"] = json!([get, list]);
        assert_eq!(aggregate(&edit, &all), None, "already aggregated");
        assert_eq!(aggregate(&all[0], &all), None, "no aggregation rule");
    }
}
