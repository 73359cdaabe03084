//! Kubernetes' RBAC authorizer, without I/O: a [`Policy`] is the cluster's Roles,
//! ClusterRoles, RoleBindings and ClusterRoleBindings; [`Policy::allows`] answers whether any
//! binding that applies to the caller (its user, its groups, `system:authenticated`, or the
//! service account it is) grants a rule matching the request — ClusterRoleBindings
//! everywhere, RoleBindings in their namespace —, with kube's matching of verbs, API groups,
//! `resource/subresource` (`*`, `*/scale`), resourceNames and non-resource URL prefixes
//! (`/metrics*`). `covers` is kube's escalation check: may an owner of these rules grant
//! those.

mod covers;

use std::collections::BTreeMap;

use serde_json::Value;

pub use covers::{compact, covers, uncovered};

use crate::authn::Identity;

/// Every authenticated caller is in this group.
const AUTHENTICATED: &str = "system:authenticated";

/// One `rules[]` item of a Role or ClusterRole.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

fn strings(value: &Value, field: &str) -> Vec<String> {
    value[field]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

impl Rule {
    pub fn of(rule: &Value) -> Rule {
        Rule {
            verbs: strings(rule, "verbs"),
            api_groups: strings(rule, "apiGroups"),
            resources: strings(rule, "resources"),
            resource_names: strings(rule, "resourceNames"),
            non_resource_urls: strings(rule, "nonResourceURLs"),
        }
    }

    /// The rules of a Role or ClusterRole object.
    pub fn all_of(role: &Value) -> Vec<Rule> {
        role["rules"]
            .as_array()
            .map(|rules| rules.iter().map(Rule::of).collect())
            .unwrap_or_default()
    }

    /// The rule as a `rules[]` item (empty lists left out, as kube serializes them).
    pub fn to_json(&self) -> Value {
        let mut out = serde_json::Map::new();
        let fields = [
            ("verbs", &self.verbs),
            ("apiGroups", &self.api_groups),
            ("resources", &self.resources),
            ("resourceNames", &self.resource_names),
            ("nonResourceURLs", &self.non_resource_urls),
        ];
        for (name, items) in fields {
            if !items.is_empty() || name == "verbs" {
                out.insert(name.to_owned(), Value::from(items.clone()));
            }
        }
        Value::Object(out)
    }

    fn has(list: &[String], item: &str) -> bool {
        list.iter().any(|i| i == "*" || i == item)
    }

    /// Whether this rule allows `request` (kube's `RuleAllows`).
    pub fn allows(&self, request: &Request<'_>) -> bool {
        if !Rule::has(&self.verbs, request.verb()) {
            return false;
        }
        match *request {
            Request::Resource {
                group,
                resource,
                subresource,
                name,
                ..
            } => {
                Rule::has(&self.api_groups, group)
                    && self.resource_matches(resource, subresource)
                    && (self.resource_names.is_empty()
                        || name.is_some_and(|n| self.resource_names.iter().any(|r| r == n)))
            }
            Request::NonResource { path, .. } => self.non_resource_urls.iter().any(|url| {
                url == "*"
                    || url == path
                    || url
                        .strip_suffix('*')
                        .is_some_and(|prefix| path.starts_with(prefix))
            }),
        }
    }

    fn resource_matches(&self, resource: &str, subresource: Option<&str>) -> bool {
        self.resources.iter().any(|r| {
            r == "*"
                || match subresource {
                    None => r == resource,
                    Some(sub) => {
                        r.split_once('/') == Some((resource, sub))
                            || r.strip_prefix("*/") == Some(sub)
                    }
                }
        })
    }
}

/// What a request asks, as RBAC sees it.
#[derive(Clone, Copy, Debug)]
pub enum Request<'a> {
    Resource {
        verb: &'a str,
        group: &'a str,
        resource: &'a str,
        subresource: Option<&'a str>,
        namespace: Option<&'a str>,
        /// Empty for a create of a new object: a rule's resourceNames cannot limit creates.
        name: Option<&'a str>,
    },
    NonResource {
        verb: &'a str,
        path: &'a str,
    },
}

impl Request<'_> {
    fn verb(&self) -> &str {
        match self {
            Request::Resource { verb, .. } | Request::NonResource { verb, .. } => verb,
        }
    }

    fn namespace(&self) -> Option<&str> {
        match self {
            Request::Resource { namespace, .. } => *namespace,
            Request::NonResource { .. } => None,
        }
    }
}

/// One subject of a binding.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Subject {
    kind: String,
    name: String,
    namespace: String,
}

/// A RoleBinding (`namespace` set) or ClusterRoleBinding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    namespace: Option<String>,
    role_kind: String,
    role_name: String,
    subjects: Vec<Subject>,
}

impl Binding {
    /// The binding `object`; `namespace` is the RoleBinding's (`None` for a ClusterRoleBinding).
    pub fn of(object: &Value, namespace: Option<&str>) -> Binding {
        let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
        Binding {
            namespace: namespace.map(str::to_owned),
            role_kind: text(&object["roleRef"]["kind"]),
            role_name: text(&object["roleRef"]["name"]),
            subjects: object["subjects"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| Subject {
                    kind: text(&s["kind"]),
                    name: text(&s["name"]),
                    namespace: text(&s["namespace"]),
                })
                .collect(),
        }
    }

    /// Whether the binding names `identity` (kube's `appliesToUser`): a ServiceAccount
    /// subject without a namespace is the RoleBinding's namespace's.
    fn applies_to(&self, identity: &Identity) -> bool {
        self.subjects.iter().any(|s| match s.kind.as_str() {
            "User" => s.name == identity.user,
            "Group" => s.name == AUTHENTICATED || identity.in_group(&s.name),
            "ServiceAccount" => {
                let namespace = match s.namespace.as_str() {
                    "" => self.namespace.as_deref().unwrap_or(""),
                    ns => ns,
                };
                !namespace.is_empty()
                    && identity.user == format!("system:serviceaccount:{namespace}:{}", s.name)
            }
            _ => false,
        })
    }
}

/// The cluster's RBAC objects.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Role rules by (namespace, name).
    roles: BTreeMap<(String, String), Vec<Rule>>,
    cluster_roles: BTreeMap<String, Vec<Rule>>,
    bindings: Vec<Binding>,
}

impl Policy {
    /// Adds a stored RBAC object of `kind` (Role, ClusterRole, RoleBinding, ClusterRoleBinding).
    pub fn add_object(&mut self, kind: &str, object: &Value) {
        let metadata = &object["metadata"];
        let name = metadata["name"].as_str().unwrap_or("");
        let namespace = metadata["namespace"].as_str().unwrap_or("");
        match kind {
            "Role" => self.add_role(namespace, name, Rule::all_of(object)),
            "ClusterRole" => self.add_cluster_role(name, Rule::all_of(object)),
            "RoleBinding" => self.add_binding(Binding::of(object, Some(namespace))),
            "ClusterRoleBinding" => self.add_binding(Binding::of(object, None)),
            _ => {}
        }
    }

    pub fn add_role(&mut self, namespace: &str, name: &str, rules: Vec<Rule>) {
        self.roles
            .insert((namespace.to_owned(), name.to_owned()), rules);
    }

    pub fn add_cluster_role(&mut self, name: &str, rules: Vec<Rule>) {
        self.cluster_roles.insert(name.to_owned(), rules);
    }

    pub fn add_binding(&mut self, binding: Binding) {
        self.bindings.push(binding);
    }

    fn role_rules(&self, binding: &Binding) -> &[Rule] {
        let rules = match binding.role_kind.as_str() {
            "ClusterRole" => self.cluster_roles.get(&binding.role_name),
            "Role" => binding
                .namespace
                .as_ref()
                .and_then(|ns| self.roles.get(&(ns.clone(), binding.role_name.clone()))),
            _ => None,
        };
        rules.map(Vec::as_slice).unwrap_or_default()
    }

    /// The rules granted to `identity` in `namespace` (cluster-wide ones alone for `None`):
    /// its ClusterRoleBindings' and, in a namespace, that namespace's RoleBindings'.
    pub fn rules_for<'a>(
        &'a self,
        identity: &'a Identity,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Rule> + Clone + 'a {
        self.bindings
            .iter()
            .filter(move |b| b.namespace.is_none() || b.namespace.as_deref() == namespace)
            .filter(|b| b.applies_to(identity))
            .flat_map(|b| self.role_rules(b))
    }

    /// Whether any rule granted to `identity` allows `request`.
    pub fn allows(&self, identity: &Identity, request: &Request<'_>) -> bool {
        self.rules_for(identity, request.namespace())
            .any(|rule| rule.allows(request))
    }

    /// The rules of the role a binding refers to (`namespace`: a Role's); `None` when there
    /// is no such role.
    pub fn referenced_rules(
        &self,
        kind: &str,
        name: &str,
        namespace: Option<&str>,
    ) -> Option<Vec<Rule>> {
        let rules = match kind {
            "ClusterRole" => self.cluster_roles.get(name),
            _ => self.roles.get(&(namespace?.to_owned(), name.to_owned())),
        };
        rules.cloned()
    }
}

#[cfg(test)]
mod tests;
