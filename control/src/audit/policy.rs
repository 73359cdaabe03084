//! kube-apiserver's audit policy (`--audit-policy-file`, audit.k8s.io/v1 `Policy`): rules
//! checked in order, the first whose users, groups, verbs, namespaces and resources (or
//! non-resource URLs) all hold gives the request's level; none: `None`. The file is read as
//! kube reads it, and what it does not know (an unknown field, level or stage) is refused
//! naming it.

use serde::Deserialize;

/// How much of a request is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum Level {
    None,
    Metadata,
    Request,
    RequestResponse,
}

/// The stages an event is written at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Stage {
    RequestReceived,
    ResponseStarted,
    ResponseComplete,
    Panic,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::RequestReceived => "RequestReceived",
            Stage::ResponseStarted => "ResponseStarted",
            Stage::ResponseComplete => "ResponseComplete",
            Stage::Panic => "Panic",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GroupResources {
    #[serde(default)]
    group: String,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    resource_names: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Rule {
    level: Level,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    user_groups: Vec<String>,
    #[serde(default)]
    verbs: Vec<String>,
    #[serde(default)]
    resources: Vec<GroupResources>,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    non_resource_urls: Vec<String>,
    omit_stages: Option<Vec<Stage>>,
    omit_managed_fields: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PolicyFile {
    api_version: String,
    kind: String,
    #[serde(default)]
    #[allow(dead_code)] // read so that a policy's metadata is not refused as unknown
    metadata: Option<serde_yaml::Value>,
    #[serde(default)]
    rules: Vec<Rule>,
    #[serde(default)]
    omit_stages: Vec<Stage>,
    #[serde(default)]
    omit_managed_fields: bool,
}

/// A policy that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("reading the audit policy {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the audit policy {path}: {why}")]
    Invalid { path: String, why: String },
}

/// What a request is matched on.
pub struct Attributes<'a> {
    pub user: &'a str,
    pub groups: &'a [String],
    /// kube's verb: get, list, watch, create, update, patch, delete, deletecollection; for a
    /// non-resource path the lowercase method.
    pub verb: &'a str,
    /// `None` for a non-resource path.
    pub resource: Option<ResourceAttributes<'a>>,
    pub path: &'a str,
}

pub struct ResourceAttributes<'a> {
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
}

/// The level of one request and what its events leave out.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub level: Level,
    pub omit_stages: Vec<Stage>,
    pub omit_managed_fields: bool,
}

pub struct Policy {
    rules: Vec<Rule>,
    omit_stages: Vec<Stage>,
    omit_managed_fields: bool,
}

impl Policy {
    pub fn load(path: &str) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Policy::parse(&text).map_err(|why| PolicyError::Invalid {
            path: path.to_owned(),
            why,
        })
    }

    /// A policy from YAML or JSON text, checked as kube checks it.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let file: PolicyFile = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        if file.api_version != "audit.k8s.io/v1" || file.kind != "Policy" {
            return Err(format!(
                "expected apiVersion audit.k8s.io/v1 and kind Policy, got {} {}",
                file.api_version, file.kind
            ));
        }
        for (i, rule) in file.rules.iter().enumerate() {
            check_rule(rule).map_err(|why| format!("rules[{i}]: {why}"))?;
        }
        Ok(Policy {
            rules: file.rules,
            omit_stages: file.omit_stages,
            omit_managed_fields: file.omit_managed_fields,
        })
    }

    /// The first matching rule's level (`None` when no rule matches).
    pub fn decide(&self, request: &Attributes) -> Decision {
        let Some(rule) = self.rules.iter().find(|rule| matches(rule, request)) else {
            return Decision {
                level: Level::None,
                omit_stages: self.omit_stages.clone(),
                omit_managed_fields: self.omit_managed_fields,
            };
        };
        let mut omit_stages = self.omit_stages.clone();
        omit_stages.extend(rule.omit_stages.iter().flatten().copied());
        Decision {
            level: rule.level,
            omit_stages,
            omit_managed_fields: rule.omit_managed_fields.unwrap_or(self.omit_managed_fields),
        }
    }
}

fn check_rule(rule: &Rule) -> Result<(), String> {
    if !rule.non_resource_urls.is_empty()
        && (!rule.resources.is_empty() || !rule.namespaces.is_empty())
    {
        return Err("rules cannot apply to both regular resources and non-resource URLs".into());
    }
    for url in &rule.non_resource_urls {
        let star = url.find('*');
        if !url.starts_with('/') && url != "*" {
            return Err(format!("nonResourceURLs: {url:?}: must start with a '/'"));
        }
        if star.is_some_and(|i| i != url.len() - 1) {
            return Err(format!(
                "nonResourceURLs: {url:?}: '*' may only be the last character"
            ));
        }
    }
    for group in &rule.resources {
        for resource in &group.resources {
            let (name, sub) = resource.split_once('/').unwrap_or((resource, ""));
            if name.is_empty() || (name == "*" && sub.is_empty() && resource.contains('/')) {
                return Err(format!("resources: {resource:?} is not a resource"));
            }
            if !group.resource_names.is_empty() && (name == "*" || sub == "*") {
                return Err(format!(
                    "resources: {resource:?}: resourceNames cannot be used with wildcards"
                ));
            }
        }
    }
    Ok(())
}

fn listed(list: &[String], value: &str) -> bool {
    list.is_empty() || list.iter().any(|entry| entry == value)
}

fn matches(rule: &Rule, request: &Attributes) -> bool {
    if !listed(&rule.users, request.user) || !listed(&rule.verbs, request.verb) {
        return false;
    }
    if !rule.user_groups.is_empty() && !request.groups.iter().any(|g| rule.user_groups.contains(g))
    {
        return false;
    }
    if rule.non_resource_urls.is_empty() && rule.resources.is_empty() && rule.namespaces.is_empty()
    {
        return true;
    }
    match &request.resource {
        Some(resource) => resource_matches(rule, resource),
        None => rule.non_resource_urls.iter().any(|url| {
            url == "*"
                || url == request.path
                || url
                    .strip_suffix('*')
                    .is_some_and(|prefix| request.path.starts_with(prefix))
        }),
    }
}

fn resource_matches(rule: &Rule, request: &ResourceAttributes) -> bool {
    if rule.resources.is_empty() && rule.namespaces.is_empty() {
        return false; // a rule for non-resource URLs only
    }
    if !listed(&rule.namespaces, request.namespace) {
        return false;
    }
    if rule.resources.is_empty() {
        return true;
    }
    let full = match request.subresource {
        "" => request.resource.to_owned(),
        sub => format!("{}/{sub}", request.resource),
    };
    rule.resources.iter().any(|group| {
        if group.group != request.group && group.group != "*" {
            return false;
        }
        if group.resources.is_empty() {
            return true;
        }
        group.resources.iter().any(|entry| {
            let named = entry == &full
                || entry == "*" && request.subresource.is_empty()
                || entry == "*/*"
                || entry
                    .strip_prefix("*/")
                    .is_some_and(|sub| sub == request.subresource)
                || entry.strip_suffix("/*").is_some_and(|name| {
                    name == request.resource && !request.subresource.is_empty()
                });
            named
                && (group.resource_names.is_empty()
                    || group.resource_names.iter().any(|n| n == request.name))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  users: ["system:kube-proxy"]
  verbs: [watch]
- level: None
  nonResourceURLs: ["/healthz*", "/version"]
- level: Metadata
  resources:
  - group: ""
    resources: [secrets, "pods/log"]
- level: RequestResponse
  namespaces: [prod]
  resources:
  - group: apps
    resources: ["deployments", "deployments/scale"]
  omitStages: [ResponseStarted]
- level: Request
  userGroups: ["system:nodes"]
- level: Metadata
"#;

    fn request<'a>(
        user: &'a str,
        groups: &'a [String],
        verb: &'a str,
        what: (&'a str, &'a str, &'a str, &'a str),
    ) -> Attributes<'a> {
        Attributes {
            user,
            groups,
            verb,
            resource: Some(ResourceAttributes {
                group: what.0,
                resource: what.1,
                subresource: what.2,
                namespace: what.3,
                name: "x",
            }),
            path: "/apis/x",
        }
    }

    #[test]
    fn the_first_matching_rule_decides_as_in_kube() {
        let policy = Policy::parse(POLICY).expect("policy");
        let none: Vec<String> = Vec::new();
        let nodes = vec!["system:nodes".to_owned()];
        let level = |a: Attributes| policy.decide(&a).level;
        assert_eq!(
            level(request(
                "system:kube-proxy",
                &none,
                "watch",
                ("", "services", "", "")
            )),
            Level::None
        );
        assert_eq!(
            level(request(
                "system:kube-proxy",
                &none,
                "list",
                ("", "services", "", "")
            )),
            Level::Metadata
        );
        assert_eq!(
            level(request("u", &none, "get", ("", "secrets", "", "default"))),
            Level::Metadata
        );
        assert_eq!(
            level(request("u", &none, "get", ("", "pods", "log", "default"))),
            Level::Metadata
        );
        assert_eq!(
            level(request(
                "u",
                &none,
                "patch",
                ("apps", "deployments", "scale", "prod")
            )),
            Level::RequestResponse
        );
        assert_eq!(
            level(request(
                "u",
                &none,
                "patch",
                ("apps", "deployments", "", "dev")
            )),
            Level::Metadata
        );
        assert_eq!(
            level(request(
                "n",
                &nodes,
                "update",
                ("", "pods", "status", "dev")
            )),
            Level::Request
        );
        let health = Attributes {
            user: "u",
            groups: &none,
            verb: "get",
            resource: None,
            path: "/healthz/etcd",
        };
        assert_eq!(level(health), Level::None);
        let decision = policy.decide(&request(
            "u",
            &none,
            "patch",
            ("apps", "deployments", "", "prod"),
        ));
        assert_eq!(
            decision.omit_stages,
            [Stage::RequestReceived, Stage::ResponseStarted]
        );
    }

    #[test]
    fn bad_policies_are_refused_naming_what_is_wrong() {
        let refused = |text: &str| Policy::parse(text).err().unwrap_or_default();
        let head = "apiVersion: audit.k8s.io/v1\nkind: Policy\n";
        assert!(
            refused(&format!("{head}rules:\n- level: Loud\n")).contains("unknown variant `Loud`")
        );
        assert!(
            refused(&format!("{head}rules:\n- level: None\n  colour: red\n"))
                .contains("unknown field `colour`")
        );
        assert!(
            refused(&format!("{head}omitStages: [Later]\n")).contains("unknown variant `Later`")
        );
        assert_eq!(
            refused(&format!(
                "{head}rules:\n- level: None\n  nonResourceURLs: [/x]\n  namespaces: [a]\n"
            )),
            "rules[0]: rules cannot apply to both regular resources and non-resource URLs"
        );
        assert!(refused("apiVersion: audit.k8s.io/v1beta1\nkind: Policy\n")
            .contains("expected apiVersion audit.k8s.io/v1"));
        assert_eq!(
            refused(&format!("{head}rules:\n- level: None\n  resources: [{{group: '', resources: ['*'], resourceNames: [a]}}]\n")),
            "rules[0]: resources: \"*\": resourceNames cannot be used with wildcards"
        );
    }
}
