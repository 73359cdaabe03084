//! kube's RBAC escalation prevention: a Role or ClusterRole may be written only by someone
//! who holds its rules (or may `escalate` it), a binding only by someone who holds the rules
//! of the role it refers to (or may `bind` it); administrators (`system:masters`) may do
//! both. An aggregationRule, which may gather anything, needs every permission. Refused as
//! kube-apiserver refuses: `… is forbidden: user "u" (groups=["g"]) is attempting to grant
//! RBAC permissions not currently held:` and the rules missing, one per line.

use serde_json::Value;

use super::validate_rbac::GROUP;
use super::{meta, Call};
use crate::authz::rbac::{self, compact, uncovered, Policy, Rule};
use crate::kinds::Resource;
use crate::status::ApiError;

/// Checks a write of `object` (an RBAC kind) by the call's caller.
pub async fn admit(call: &Call, object: &Value) -> Result<(), ApiError> {
    let resource = call.resource();
    if resource.group != GROUP || call.identity.is_admin() {
        return Ok(());
    }
    let policy = call.state.rbac.policy(&call.state.store).await?;
    let namespace = call.path.namespace.as_deref();
    let name = meta::name_of(object);
    let may = |verb, plural, name| {
        policy.allows(
            &call.identity,
            &rbac::Request::Resource {
                verb,
                group: GROUP,
                resource: plural,
                subresource: None,
                namespace,
                name: Some(name),
            },
        )
    };
    let granted = match resource.kind {
        "Role" | "ClusterRole" => {
            if may("escalate", resource.plural, name) {
                return Ok(());
            }
            if resource.kind == "ClusterRole" && object["aggregationRule"].is_object() {
                let everything = [
                    Rule::of(
                        &serde_json::json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}),
                    ),
                    Rule::of(&serde_json::json!({"verbs": ["*"], "nonResourceURLs": ["*"]})),
                ];
                if !uncovered(policy.rules_for(&call.identity, namespace), &everything).is_empty() {
                    return Err(refusal(
                        resource,
                        name,
                        "must have cluster-admin privileges to use the aggregationRule".to_owned(),
                    ));
                }
            }
            Rule::all_of(object)
        }
        _ => {
            let role_ref = &object["roleRef"];
            let kind = role_ref["kind"].as_str().unwrap_or("");
            let role = role_ref["name"].as_str().unwrap_or("");
            let plural = if kind == "Role" {
                "roles"
            } else {
                "clusterroles"
            };
            if may("bind", plural, role) {
                return Ok(());
            }
            referenced(&policy, kind, role, plural, namespace)?
        }
    };
    let missing = uncovered(policy.rules_for(&call.identity, namespace), &granted);
    if missing.is_empty() {
        return Ok(());
    }
    let groups: Vec<String> = call
        .identity
        .groups
        .iter()
        .map(|g| format!("{g:?}"))
        .collect();
    let lines: Vec<String> = missing.iter().map(compact).collect();
    Err(refusal(
        resource,
        name,
        format!(
            "user {:?} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
            call.identity.user,
            groups.join(" "),
            lines.join("\n")
        ),
    ))
}

/// The rules of the role a binding refers to; a role that does not exist is NotFound.
fn referenced(
    policy: &Policy,
    kind: &str,
    name: &str,
    plural: &str,
    namespace: Option<&str>,
) -> Result<Vec<Rule>, ApiError> {
    let namespace = if kind == "Role" { namespace } else { None };
    policy
        .referenced_rules(kind, name, namespace)
        .ok_or_else(|| ApiError::not_found(GROUP, plural, name))
}

fn refusal(resource: &Resource, name: &str, why: String) -> ApiError {
    let mut e = ApiError::forbidden(format!(
        "{} {name:?} is forbidden: {why}",
        resource.group_resource()
    ));
    e.details = Some(serde_json::json!({"name": name, "group": GROUP, "kind": resource.plural}));
    e
}
