//! `authorization.k8s.io/v1` SelfSubjectAccessReview (`kubectl auth can-i VERB RESOURCE
//! [NAME]`) and SelfSubjectRulesReview (`kubectl auth can-i --list`): may the caller do this,
//! and what may it do, as the authorizer (`authz`) decides for its real requests. Nothing is
//! stored; the body (protobuf from kubectl, or JSON) is the question. A resource the server
//! does not serve is allowed only to administrators (who may do everything); a non-resource
//! path is allowed to anyone authenticated for the discovery, health and OpenAPI paths every
//! caller is served, to administrators for any other. The rules of the node authorizer
//! depend on the objects and are not listed: a node's rules review says it is incomplete, as
//! kube's Node authorizer does.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use serde_json::{json, Value};

use super::{read_body, validate, ApiState};
use crate::authn::Identity;
use crate::authz;
use crate::http_util::{json_response, ResponseBody};
use crate::kinds::{self, Resource};
use crate::status::{ApiError, FieldCause};

pub const GROUP: &str = "authorization.k8s.io";
pub const VERSION: &str = "v1";
/// (kind, plural) of the two reviews.
pub const ACCESS: (&str, &str) = ("SelfSubjectAccessReview", "selfsubjectaccessreviews");
pub const RULES: (&str, &str) = ("SelfSubjectRulesReview", "selfsubjectrulesreviews");

/// Non-resource paths every authenticated caller is served (kube's `system:discovery` and
/// `system:public-info-viewer`).
const PUBLIC_PATHS: &[&str] = &[
    "/api", "/apis", "/version", "/healthz", "/livez", "/readyz", "/openapi",
];

/// Answers `POST .../selfsubjectaccessreviews|selfsubjectrulesreviews`; `None` for any other
/// path.
pub async fn handle<B>(
    state: &Arc<ApiState>,
    identity: &Identity,
    request: http::Request<B>,
) -> Option<Response<ResponseBody>>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let plural = path.strip_prefix(&format!("/apis/{GROUP}/{VERSION}/"))?;
    let kind = [ACCESS, RULES].into_iter().find(|(_, p)| *p == plural)?.0;
    if request.method() != Method::POST {
        let e = ApiError::method_not_allowed(request.method(), &path);
        return Some(e.into_response());
    }
    let content_type = crate::http_util::content_type_of(request.headers());
    let answered = async {
        let body = read_body(request.into_body()).await?;
        let review = validate::decode_body(&content_type, &body)?.object;
        if review["kind"].as_str().is_some_and(|k| k != kind) {
            return Err(ApiError::bad_request(format!(
                "the body is a {}, not a {kind}",
                review["kind"].as_str().unwrap_or("")
            )));
        }
        let status = match kind == ACCESS.0 {
            true => access(state, identity, &review["spec"]).await?,
            false => rules(state, identity, &review["spec"]).await?,
        };
        Ok(
            json!({"kind": kind, "apiVersion": format!("{GROUP}/{VERSION}"),
            "metadata": {"creationTimestamp": null},
            "spec": review["spec"], "status": status}),
        )
    };
    Some(match answered.await {
        Ok(review) => {
            let body = serde_json::to_vec(&review).unwrap_or_default();
            json_response(StatusCode::CREATED, body.into())
        }
        Err(e) => e.into_response(),
    })
}

pub(super) fn invalid(kind: &str, cause: FieldCause) -> ApiError {
    ApiError::invalid(&format!("{kind}.{GROUP}"), kind, "", &[cause])
}

/// The status of an access review of `spec`.
pub(super) async fn access(
    state: &Arc<ApiState>,
    identity: &Identity,
    spec: &Value,
) -> Result<Value, ApiError> {
    let (resource_attrs, path_attrs) =
        (&spec["resourceAttributes"], &spec["nonResourceAttributes"]);
    if resource_attrs.is_null() == path_attrs.is_null() {
        return Err(invalid(
            ACCESS.0,
            FieldCause::invalid(
                "spec.resourceAttributes",
                "",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            ),
        ));
    }
    if !path_attrs.is_null() {
        let path = path_attrs["path"].as_str().unwrap_or("");
        let public = PUBLIC_PATHS
            .iter()
            .any(|p| path == *p || path.starts_with(&format!("{p}/")));
        let verb = path_attrs["verb"].as_str().unwrap_or("");
        let granted = || async {
            let policy = state.rbac.policy(&state.store).await?;
            let request = authz::rbac::Request::NonResource { verb, path };
            Ok::<_, ApiError>(policy.allows(identity, &request))
        };
        let allowed = identity.is_admin() || (public && verb == "get") || granted().await?;
        return Ok(verdict(allowed, String::new()));
    }
    let text = |field: &str| resource_attrs[field].as_str().unwrap_or("");
    let verb = text("verb");
    let Some(resource) = find(text("group"), text("version"), text("resource")) else {
        let why = match identity.is_admin() {
            true => String::new(),
            false => format!("bosun serves no resource {:?}", text("resource")),
        };
        return Ok(verdict(identity.is_admin(), why));
    };
    let namespace = Some(text("namespace")).filter(|n| !n.is_empty() && resource.namespaced());
    let name = Some(text("name")).filter(|n| !n.is_empty());
    let subresource = Some(text("subresource")).filter(|s| !s.is_empty());
    let attrs = authz::Attributes {
        verb,
        resource,
        subresource,
        namespace,
        name,
        object: None,
    };
    let facts = authz::StoreFacts {
        store: &state.store,
        pods: &state.pod_index,
        rbac: &state.rbac,
    };
    Ok(match authz::decide(identity, &attrs, &facts).await? {
        None => verdict(true, String::new()),
        Some(authz::Denied(reason)) => verdict(false, reason),
    })
}

/// A resource of the kinds table by group, version (any served one when empty) and plural.
fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    kinds::RESOURCES.iter().find(|r| {
        r.group == group && r.plural == plural && (version.is_empty() || r.version == version)
    })
}

fn verdict(allowed: bool, reason: String) -> Value {
    let mut status = json!({ "allowed": allowed });
    if !reason.is_empty() {
        status["reason"] = json!(reason);
    }
    status
}

/// The status of a rules review: everything for an administrator; for anyone else the
/// rules every caller has and what RBAC grants it in the namespace asked about, marked
/// incomplete where the node authorizer decides by object.
async fn rules(state: &ApiState, identity: &Identity, spec: &Value) -> Result<Value, ApiError> {
    let namespace = spec["namespace"].as_str().filter(|n| !n.is_empty());
    let policy = state.rbac.policy(&state.store).await?;
    let granted: Vec<&authz::rbac::Rule> = policy.rules_for(identity, namespace).collect();
    Ok(rules_status(identity, &granted))
}

/// The status of a rules review of `identity`, which RBAC grants `granted`.
fn rules_status(identity: &Identity, granted: &[&authz::rbac::Rule]) -> Value {
    let public = json!([{"verbs": ["get"], "nonResourceURLs": PUBLIC_PATHS
        .iter()
        .flat_map(|p| [p.to_string(), format!("{p}/*")])
        .collect::<Vec<_>>()}]);
    let reviews = json!([
        {"verbs": ["create"], "apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"]},
        {"verbs": ["create"], "apiGroups": [GROUP], "resources": [ACCESS.1, RULES.1]},
    ]);
    if identity.is_admin() {
        return json!({
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": false,
        });
    }
    // What every caller is served, less what its RBAC rules list already.
    let held = || granted.iter().copied();
    let mut resource_rules: Vec<Value> = match reviews {
        Value::Array(items) => items,
        _ => Vec::new(),
    };
    resource_rules.retain(|r| !authz::rbac::covers(held(), &[authz::rbac::Rule::of(r)]));
    let unlisted: Vec<String> = public[0]["nonResourceURLs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|url| {
            let rule = authz::rbac::Rule::of(&json!({"verbs": ["get"], "nonResourceURLs": [url]}));
            !authz::rbac::covers(held(), &[rule])
        })
        .map(str::to_owned)
        .collect();
    let mut path_rules = Vec::new();
    if !unlisted.is_empty() {
        path_rules.push(json!({"verbs": ["get"], "nonResourceURLs": unlisted}));
    }
    for rule in granted {
        match rule.non_resource_urls.is_empty() {
            true => resource_rules.push(rule.to_json()),
            false => path_rules.push(rule.to_json()),
        }
    }
    let mut status = json!({"resourceRules": resource_rules,
        "nonResourceRules": path_rules, "incomplete": false});
    if identity.node_name().is_some() || identity.is_bootstrapper() {
        status["incomplete"] = json!(true);
        status["evaluationError"] = json!("node authorizer does not support user rule resolution");
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_found_by_group_and_plural_at_any_served_version() {
        assert_eq!(
            find("apps", "", "deployments").map(|r| r.kind),
            Some("Deployment")
        );
        assert_eq!(find("", "v1", "pods").map(|r| r.kind), Some("Pod"));
        assert!(find("", "v1", "widgets").is_none());
        assert!(find("apps", "v2", "deployments").is_none());
    }

    #[test]
    fn administrators_have_every_rule_and_nodes_an_incomplete_list() {
        let admin = Identity {
            user: "a".into(),
            groups: vec!["system:masters".into()],
            ..Default::default()
        };
        let all = rules_status(&admin, &[]);
        assert_eq!(all["resourceRules"][0]["verbs"], json!(["*"]));
        assert_eq!(all["incomplete"], false);
        let node = Identity {
            user: "system:node:n1".into(),
            groups: vec!["system:nodes".into()],
            ..Default::default()
        };
        let limited = rules_status(&node, &[]);
        assert_eq!(limited["incomplete"], true);
        assert!(limited["resourceRules"]
            .as_array()
            .is_some_and(|r| !r.iter().any(|rule| rule["verbs"] == json!(["*"]))));
    }
}
