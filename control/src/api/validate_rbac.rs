//! kube-apiserver's semantic rules for the RBAC kinds (`pkg/apis/rbac/validation`), in its
//! words: names are path segments (`system:aggregate-to-edit` is a valid role name), a rule
//! has verbs and either resources with API groups or non-resource URLs (never in a namespaced
//! Role), a binding refers to a Role or ClusterRole of `rbac.authorization.k8s.io` (a
//! ClusterRoleBinding to a ClusterRole only) and to subjects of a known kind; a binding's
//! `roleRef` never changes.

use serde_json::Value;

use super::validate_storage::not_supported;
use crate::kinds::Resource;
use crate::status::{ApiError, FieldCause};

pub const GROUP: &str = "rbac.authorization.k8s.io";

/// What makes `name` an invalid RBAC object or role name (a path segment), if anything.
pub fn name_problem(name: &str) -> Option<&'static str> {
    match name {
        "." => Some("may not be '.'"),
        ".." => Some("may not be '..'"),
        _ if name.contains('/') => Some("may not contain '/'"),
        _ if name.contains('%') => Some("may not contain '%'"),
        _ => None,
    }
}

fn strings<'a>(value: &'a Value, field: &str) -> Vec<&'a str> {
    value[field]
        .as_array()
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn list_value(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// A Role's (`namespaced`) or ClusterRole's rules and aggregation rule.
pub fn role(object: &Value, namespaced: bool, causes: &mut Vec<FieldCause>) {
    for (i, rule) in object["rules"].as_array().into_iter().flatten().enumerate() {
        policy_rule(rule, namespaced, &format!("rules[{i}]"), causes);
    }
    let aggregation = &object["aggregationRule"];
    if !namespaced && aggregation.is_object() {
        let selectors = aggregation["clusterRoleSelectors"].as_array();
        if selectors.is_none_or(Vec::is_empty) {
            causes.push(FieldCause::required("aggregationRule.clusterRoleSelectors").with_message(
                "Required value: at least one clusterRoleSelector required if aggregationRule is non-nil",
            ));
        }
    }
}

fn policy_rule(rule: &Value, namespaced: bool, path: &str, causes: &mut Vec<FieldCause>) {
    if strings(rule, "verbs").is_empty() {
        causes.push(
            FieldCause::required(&format!("{path}.verbs"))
                .with_message("Required value: verbs must contain at least one value"),
        );
    }
    let urls = strings(rule, "nonResourceURLs");
    if !urls.is_empty() {
        let field = format!("{path}.nonResourceURLs");
        if namespaced {
            causes.push(FieldCause::invalid(
                &field,
                &list_value(&urls),
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        let resourceful = ["apiGroups", "resources", "resourceNames"]
            .iter()
            .any(|f| !strings(rule, f).is_empty());
        if resourceful {
            causes.push(FieldCause::invalid(
                &field,
                &list_value(&urls),
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return;
    }
    if strings(rule, "apiGroups").is_empty() {
        causes.push(
            FieldCause::required(&format!("{path}.apiGroups"))
                .with_message("Required value: resource rules must supply at least one api group"),
        );
    }
    if strings(rule, "resources").is_empty() {
        causes.push(
            FieldCause::required(&format!("{path}.resources"))
                .with_message("Required value: resource rules must supply at least one resource"),
        );
    }
}

/// A RoleBinding's (`namespaced`) or ClusterRoleBinding's role reference and subjects.
pub fn binding(object: &Value, namespaced: bool, causes: &mut Vec<FieldCause>) {
    let role_ref = &object["roleRef"];
    let group = role_ref["apiGroup"].as_str().unwrap_or("");
    if group != GROUP {
        causes.push(not_supported("roleRef.apiGroup", group, &[GROUP]));
    }
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    let kind = role_ref["kind"].as_str().unwrap_or("");
    if !kinds.contains(&kind) {
        causes.push(not_supported("roleRef.kind", kind, kinds));
    }
    match role_ref["name"].as_str().unwrap_or("") {
        "" => causes.push(FieldCause::required("roleRef.name")),
        name => {
            if let Some(why) = name_problem(name) {
                causes.push(FieldCause::invalid(
                    "roleRef.name",
                    &format!("{name:?}"),
                    why,
                ));
            }
        }
    }
    for (i, subject) in object["subjects"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        binding_subject(subject, namespaced, &format!("subjects[{i}]"), causes);
    }
}

fn binding_subject(subject: &Value, namespaced: bool, path: &str, causes: &mut Vec<FieldCause>) {
    let name = subject["name"].as_str().unwrap_or("");
    if name.is_empty() {
        causes.push(FieldCause::required(&format!("{path}.name")));
    }
    let group = subject["apiGroup"].as_str().unwrap_or("");
    match subject["kind"].as_str().unwrap_or("") {
        "ServiceAccount" => {
            if !name.is_empty() {
                if let Some(why) = super::meta::name_problem(name, false) {
                    causes.push(FieldCause {
                        field: format!("{path}.name"),
                        ..why
                    });
                }
            }
            if !group.is_empty() {
                causes.push(not_supported(&format!("{path}.apiGroup"), group, &[""]));
            }
            if !namespaced && subject["namespace"].as_str().unwrap_or("").is_empty() {
                causes.push(FieldCause::required(&format!("{path}.namespace")));
            }
        }
        "User" | "Group" => {
            if group != GROUP {
                causes.push(not_supported(&format!("{path}.apiGroup"), group, &[GROUP]));
            }
        }
        kind => causes.push(not_supported(
            &format!("{path}.kind"),
            kind,
            &["ServiceAccount", "User", "Group"],
        )),
    }
}

/// A binding's `roleRef` may not change (kube's ValidateRoleBindingUpdate).
pub fn check_update(old: &Value, new: &Value, resource: &Resource) -> Result<(), ApiError> {
    if resource.group != GROUP || !resource.kind.ends_with("Binding") {
        return Ok(());
    }
    if old["roleRef"] == new["roleRef"] {
        return Ok(());
    }
    let r = &new["roleRef"];
    let shown = format!(
        "rbac.RoleRef{{APIGroup:{:?}, Kind:{:?}, Name:{:?}}}",
        r["apiGroup"].as_str().unwrap_or(""),
        r["kind"].as_str().unwrap_or(""),
        r["name"].as_str().unwrap_or("")
    );
    Err(ApiError::invalid(
        &format!("{}.{}", resource.kind, resource.group),
        resource.kind,
        super::meta::name_of(new),
        &[FieldCause {
            field: "roleRef".to_owned(),
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {shown}: cannot change roleRef"),
        }],
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(causes: &[FieldCause]) -> Vec<(&str, &str)> {
        causes
            .iter()
            .map(|c| (c.field.as_str(), c.message.as_str()))
            .collect()
    }

    #[test]
    fn role_names_are_path_segments() {
        assert_eq!(name_problem("system:aggregate-to-edit"), None);
        assert_eq!(name_problem("Pod-Reader"), None);
        assert_eq!(name_problem(".."), Some("may not be '..'"));
        assert_eq!(name_problem("a/b"), Some("may not contain '/'"));
    }

    #[test]
    fn rules_need_verbs_and_resources_or_urls_and_namespaced_roles_no_urls() {
        let mut causes = Vec::new();
        let object = json!({"rules": [
            {"apiGroups": [""], "resources": ["pods"]},
            {"verbs": ["get"]},
            {"verbs": ["get"], "nonResourceURLs": ["/metrics"]},
            {"verbs": ["get"], "nonResourceURLs": ["/metrics"], "resources": ["pods"]},
        ]});
        role(&object, true, &mut causes);
        assert_eq!(
            fields(&causes),
            [
                ("rules[0].verbs", "Required value: verbs must contain at least one value"),
                ("rules[1].apiGroups", "Required value: resource rules must supply at least one api group"),
                ("rules[1].resources", "Required value: resource rules must supply at least one resource"),
                ("rules[2].nonResourceURLs", "Invalid value: []string{\"/metrics\"}: namespaced rules cannot apply to non-resource URLs"),
                ("rules[3].nonResourceURLs", "Invalid value: []string{\"/metrics\"}: namespaced rules cannot apply to non-resource URLs"),
                ("rules[3].nonResourceURLs", "Invalid value: []string{\"/metrics\"}: rules cannot apply to both regular resources and non-resource URLs"),
            ]
        );
        let mut causes = Vec::new();
        role(
            &json!({"rules": [{"verbs": ["get"], "nonResourceURLs": ["/metrics"]}], "aggregationRule": {}}),
            false,
            &mut causes,
        );
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "aggregationRule.clusterRoleSelectors");
    }

    #[test]
    fn bindings_refer_to_roles_of_rbac_and_known_subjects() {
        let mut causes = Vec::new();
        let object = json!({
            "roleRef": {"apiGroup": GROUP, "kind": "Role", "name": "r"},
            "subjects": [
                {"kind": "ServiceAccount", "name": "app"},
                {"kind": "User", "name": "jane"},
                {"kind": "Robot", "name": "r2"},
            ]
        });
        binding(&object, false, &mut causes);
        assert_eq!(
            fields(&causes),
            [
                ("roleRef.kind", "Unsupported value: \"Role\": supported values: \"ClusterRole\""),
                ("subjects[0].namespace", "Required value"),
                ("subjects[1].apiGroup", "Unsupported value: \"\": supported values: \"rbac.authorization.k8s.io\""),
                ("subjects[2].kind", "Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\""),
            ]
        );
        let mut causes = Vec::new();
        binding(&object, true, &mut causes);
        assert_eq!(causes.len(), 2, "{causes:?}");
    }

    #[test]
    fn a_bindings_role_ref_is_fixed() {
        let bindings = crate::kinds::find(GROUP, "v1", "rolebindings").unwrap();
        let old = json!({"metadata": {"name": "b"}, "roleRef": {"apiGroup": GROUP, "kind": "Role", "name": "a"}});
        let mut new = old.clone();
        assert!(check_update(&old, &new, bindings).is_ok());
        new["roleRef"]["name"] = json!("b");
        let e = check_update(&old, &new, bindings).unwrap_err();
        assert!(e.message.contains("roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"Role\", Name:\"b\"}: cannot change roleRef"), "{}", e.message);
    }
}
