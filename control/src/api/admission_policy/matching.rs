//! Which requests a policy and its binding apply to, as kube's admission rule matcher decides:
//! an operation, group, version and resource (`deployments`, `deployments/scale`, `*`,
//! `*/*`, `pods/*`, `*/status`) of a rule, its scope and resource names, minus the excluded
//! rules; the namespace's labels (the object's own for a Namespace; cluster-scoped objects
//! always match) and the object's or old object's labels.

use serde_json::Value;

use super::compiled::{Match, Rule};

/// What the matcher looks at of one request.
pub struct Request<'a> {
    pub operation: &'a str,
    pub group: &'a str,
    pub version: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub name: &'a str,
    pub namespaced: bool,
    pub object: Option<&'a Value>,
    pub old: Option<&'a Value>,
    /// The request's namespace object (labels), when the resource is namespaced.
    pub namespace: Option<&'a Value>,
    pub is_namespace: bool,
}

fn listed(list: &[String], value: &str) -> bool {
    list.iter().any(|entry| entry == "*" || entry == value)
}

fn rule_matches(rule: &Rule, request: &Request) -> bool {
    let scope = match rule.scope.as_str() {
        "Cluster" => !request.namespaced,
        "Namespaced" => request.namespaced,
        _ => true,
    };
    let resource = rule.resources.iter().any(|entry| {
        let (resource, sub) = entry.split_once('/').unwrap_or((entry, ""));
        (resource == "*" || resource == request.resource)
            && (sub == "*" || sub == request.subresource)
    });
    scope
        && resource
        && listed(&rule.operations, request.operation)
        && listed(&rule.groups, request.group)
        && listed(&rule.versions, request.version)
        && (rule.names.is_empty() || rule.names.iter().any(|n| n == request.name))
}

/// Whether `matching` selects the request (a binding's `matchResources` without
/// `resourceRules` leaves the resources to its policy).
pub fn matches(matching: &Match, request: &Request) -> bool {
    let ruled = matching.rules.is_empty()
        || matching
            .rules
            .iter()
            .any(|rule| rule_matches(rule, request));
    if !ruled
        || matching
            .exclude
            .iter()
            .any(|rule| rule_matches(rule, request))
    {
        return false;
    }
    if let Some(selector) = &matching.namespace_selector {
        let labelled = if request.is_namespace {
            request.object.or(request.old)
        } else if request.namespaced {
            request.namespace
        } else {
            None
        };
        let cluster_scoped = !request.namespaced && !request.is_namespace;
        if !cluster_scoped && !labelled.is_some_and(|o| selector.matches(o)) {
            return false;
        }
    }
    if let Some(selector) = &matching.object_selector {
        let either = [request.object, request.old]
            .into_iter()
            .flatten()
            .any(|o| selector.matches(o));
        if !either {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::selector::LabelSelector;

    fn rule(resources: &[&str], operations: &[&str]) -> Rule {
        let owned = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
        Rule {
            groups: owned(&["apps"]),
            versions: owned(&["*"]),
            resources: owned(resources),
            operations: owned(operations),
            scope: "*".to_owned(),
            names: Vec::new(),
        }
    }

    fn request<'a>(operation: &'a str, subresource: &'a str, namespace: &'a Value) -> Request<'a> {
        Request {
            operation,
            group: "apps",
            version: "v1",
            resource: "deployments",
            subresource,
            name: "web",
            namespaced: true,
            object: None,
            old: None,
            namespace: Some(namespace),
            is_namespace: false,
        }
    }

    #[test]
    fn rules_match_resources_subresources_and_operations_as_kube() {
        let ns = serde_json::json!({"metadata": {"labels": {"env": "prod"}}});
        let only = |resources: &[&str], operations: &[&str]| Match {
            rules: vec![rule(resources, operations)],
            exclude: Vec::new(),
            namespace_selector: None,
            object_selector: None,
        };
        let create = request("CREATE", "", &ns);
        let scale = request("UPDATE", "scale", &ns);
        assert!(matches(&only(&["deployments"], &["CREATE"]), &create));
        assert!(!matches(&only(&["deployments"], &["UPDATE"]), &create));
        assert!(!matches(&only(&["deployments"], &["*"]), &scale));
        assert!(matches(&only(&["deployments/scale"], &["*"]), &scale));
        assert!(
            matches(&only(&["*/*"], &["*"]), &scale) && matches(&only(&["*/*"], &["*"]), &create)
        );
        assert!(!matches(&only(&["*"], &["*"]), &scale) && matches(&only(&["*"], &["*"]), &create));
        let mut selected = only(&["*"], &["*"]);
        selected.namespace_selector = LabelSelector::parse("env=prod").ok();
        assert!(matches(&selected, &create));
        selected.namespace_selector = LabelSelector::parse("env=dev").ok();
        assert!(!matches(&selected, &create));
        let mut excluded = only(&["*"], &["*"]);
        excluded.exclude = vec![rule(&["deployments"], &["CREATE"])];
        assert!(!matches(&excluded, &create));
    }
}
