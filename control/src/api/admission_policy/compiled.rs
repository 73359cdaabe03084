//! ValidatingAdmissionPolicies and their bindings read and checked as kube-apiserver does when
//! they are written (422 with field causes: required fields, operations, reasons, validation
//! actions, `paramKind`/`paramRef`, CEL compile errors in cel-go's words), and compiled for
//! admission.

use cel::Program;
use serde_json::Value;

use crate::api::selector::LabelSelector;
use crate::crd::cel::compile_with;
use crate::crd::definition::strings;
use crate::status::FieldCause;

/// The variables a policy's expressions may name.
const VARIABLES: &[&str] = &[
    "object",
    "oldObject",
    "request",
    "params",
    "namespaceObject",
    "variables",
];

const OPERATIONS: &[&str] = &["*", "CREATE", "UPDATE", "DELETE", "CONNECT"];
const REASONS: &[&str] = &[
    "Unauthorized",
    "Forbidden",
    "Invalid",
    "RequestEntityTooLarge",
];

/// One of `resourceRules` / `excludeResourceRules`.
pub struct Rule {
    pub groups: Vec<String>,
    pub versions: Vec<String>,
    pub resources: Vec<String>,
    pub operations: Vec<String>,
    pub scope: String,
    pub names: Vec<String>,
}

/// `matchConstraints` of a policy or `matchResources` of a binding.
pub struct Match {
    pub rules: Vec<Rule>,
    pub exclude: Vec<Rule>,
    pub namespace_selector: Option<LabelSelector>,
    pub object_selector: Option<LabelSelector>,
}

pub struct Validation {
    pub expression: String,
    pub program: Program,
    pub message: Option<String>,
    pub message_expression: Option<Program>,
    /// `Invalid` unless the validation names another.
    pub reason: String,
}

/// A policy's `paramKind`: the kind of its parameter objects.
pub struct ParamKind {
    pub group: String,
    pub version: String,
    pub kind: String,
}

/// A binding's `paramRef`: which parameter objects it applies the policy with.
pub struct ParamRef {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub selector: Option<LabelSelector>,
    /// `parameterNotFoundAction: Deny`: no parameter object refuses the request.
    pub deny_when_missing: bool,
}

pub struct Policy {
    pub name: String,
    pub param_kind: Option<ParamKind>,
    pub constraints: Match,
    /// `matchConstraints.matchPolicy: Equivalent` (the default): rules also match the kind's
    /// other versions.
    pub equivalent: bool,
    /// `failurePolicy: Ignore`: an expression that fails to evaluate lets the request pass.
    pub ignore_failures: bool,
    pub conditions: Vec<(String, Program)>,
    pub variables: Vec<(String, Program)>,
    pub validations: Vec<Validation>,
    pub audit_annotations: Vec<AuditAnnotation>,
}

/// One of a policy's `auditAnnotations`.
pub struct AuditAnnotation {
    pub key: String,
    pub expression: String,
    pub program: Program,
}

pub struct Binding {
    pub name: String,
    pub policy: String,
    pub deny: bool,
    pub warn: bool,
    pub audit: bool,
    pub matching: Option<Match>,
    pub param_ref: Option<ParamRef>,
}

pub(crate) fn quoted(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

pub(crate) fn expression(
    source: &Value,
    field: &str,
    causes: &mut Vec<FieldCause>,
) -> Option<Program> {
    let Some(text) = source.as_str().filter(|t| !t.trim().is_empty()) else {
        causes.push(FieldCause::required(field));
        return None;
    };
    match compile_with(text, VARIABLES) {
        Ok(program) => Some(program),
        Err(why) => {
            causes.push(FieldCause::invalid(
                field,
                &quoted(text),
                &format!("compilation failed: {why}"),
            ));
            None
        }
    }
}

pub(crate) fn rules(list: &Value, field: &str, causes: &mut Vec<FieldCause>) -> Vec<Rule> {
    let mut out = Vec::new();
    for (index, rule) in list.as_array().into_iter().flatten().enumerate() {
        let at = format!("{field}[{index}]");
        for key in ["apiGroups", "apiVersions", "resources", "operations"] {
            if strings(&rule[key]).is_empty() {
                causes.push(FieldCause::required(&format!("{at}.{key}")));
            }
        }
        let operations = strings(&rule["operations"]);
        for (i, op) in operations.iter().enumerate() {
            if !OPERATIONS.contains(&op.as_str()) {
                causes.push(FieldCause::not_supported(
                    &format!("{at}.operations[{i}]"),
                    op,
                    OPERATIONS,
                ));
            }
        }
        let scope = rule["scope"].as_str().unwrap_or("*").to_owned();
        if !matches!(scope.as_str(), "*" | "Cluster" | "Namespaced") {
            causes.push(FieldCause::not_supported(
                &format!("{at}.scope"),
                &scope,
                &["*", "Cluster", "Namespaced"],
            ));
        }
        out.push(Rule {
            groups: strings(&rule["apiGroups"]),
            versions: strings(&rule["apiVersions"]),
            resources: strings(&rule["resources"]),
            operations,
            scope,
            names: strings(&rule["resourceNames"]),
        });
    }
    out
}

pub(crate) fn selector(
    value: &Value,
    field: &str,
    causes: &mut Vec<FieldCause>,
) -> Option<LabelSelector> {
    if value.is_null() {
        return None;
    }
    match LabelSelector::from_object(value) {
        Ok(selector) => Some(selector),
        Err(why) => {
            causes.push(FieldCause::invalid(field, &value.to_string(), &why));
            None
        }
    }
}

fn matching(value: &Value, field: &str, causes: &mut Vec<FieldCause>) -> Match {
    Match {
        rules: rules(
            &value["resourceRules"],
            &format!("{field}.resourceRules"),
            causes,
        ),
        exclude: rules(
            &value["excludeResourceRules"],
            &format!("{field}.excludeResourceRules"),
            causes,
        ),
        namespace_selector: selector(
            &value["namespaceSelector"],
            &format!("{field}.namespaceSelector"),
            causes,
        ),
        object_selector: selector(
            &value["objectSelector"],
            &format!("{field}.objectSelector"),
            causes,
        ),
    }
}

/// A ValidatingAdmissionPolicy compiled, with what kube (or bosun) refuses in it.
pub fn policy(object: &Value) -> (Option<Policy>, Vec<FieldCause>) {
    let spec = &object["spec"];
    let mut causes = Vec::new();
    let audit_annotations = audit_annotations(object, &mut causes);
    let param_kind = match &spec["paramKind"] {
        Value::Null => None,
        kind => {
            let api_version = kind["apiVersion"].as_str().unwrap_or("");
            let name = kind["kind"].as_str().unwrap_or("");
            if api_version.is_empty() {
                causes.push(FieldCause::required("spec.paramKind.apiVersion"));
            }
            if name.is_empty() {
                causes.push(FieldCause::required("spec.paramKind.kind"));
            }
            let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
            Some(ParamKind {
                group: group.to_owned(),
                version: version.to_owned(),
                kind: name.to_owned(),
            })
        }
    };
    let constraints = match &spec["matchConstraints"] {
        Value::Null => {
            causes.push(FieldCause::required("spec.matchConstraints"));
            None
        }
        value => {
            if value["resourceRules"].as_array().is_none_or(Vec::is_empty) {
                causes.push(FieldCause::required("spec.matchConstraints.resourceRules"));
            }
            Some(matching(value, "spec.matchConstraints", &mut causes))
        }
    };
    let match_policy = spec["matchConstraints"]["matchPolicy"]
        .as_str()
        .unwrap_or("Equivalent");
    if !matches!(match_policy, "Exact" | "Equivalent") {
        causes.push(FieldCause::not_supported(
            "spec.matchConstraints.matchPolicy",
            match_policy,
            &["Equivalent", "Exact"],
        ));
    }
    let failure = spec["failurePolicy"].as_str().unwrap_or("Fail");
    if !matches!(failure, "Fail" | "Ignore") {
        causes.push(FieldCause::not_supported(
            "spec.failurePolicy",
            failure,
            &["Fail", "Ignore"],
        ));
    }
    let mut conditions = Vec::new();
    for (i, condition) in spec["matchConditions"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = condition["name"].as_str().unwrap_or("").to_owned();
        if name.is_empty() {
            causes.push(FieldCause::required(&format!(
                "spec.matchConditions[{i}].name"
            )));
        }
        let field = format!("spec.matchConditions[{i}].expression");
        if let Some(program) = expression(&condition["expression"], &field, &mut causes) {
            conditions.push((name, program));
        }
    }
    let mut variables = Vec::new();
    for (i, variable) in spec["variables"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = variable["name"].as_str().unwrap_or("").to_owned();
        if name.is_empty() {
            causes.push(FieldCause::required(&format!("spec.variables[{i}].name")));
        }
        let field = format!("spec.variables[{i}].expression");
        if let Some(program) = expression(&variable["expression"], &field, &mut causes) {
            variables.push((name, program));
        }
    }
    let listed = spec["validations"].as_array().cloned().unwrap_or_default();
    if listed.is_empty() && audit_annotations.is_empty() {
        causes.push(FieldCause::required("spec.validations").with_message(
            "Required value: validations or auditAnnotations must contain at least one item",
        ));
    }
    let mut validations = Vec::new();
    for (i, validation) in listed.iter().enumerate() {
        let at = format!("spec.validations[{i}]");
        let message = validation["message"].as_str().map(str::to_owned);
        if message.as_deref().is_some_and(|m| m.contains('\n')) {
            let text = message.as_deref().unwrap_or("");
            causes.push(FieldCause::invalid(
                &format!("{at}.message"),
                &quoted(text),
                "message must not contain line breaks",
            ));
        }
        let reason = validation["reason"]
            .as_str()
            .unwrap_or("Invalid")
            .to_owned();
        if !REASONS.contains(&reason.as_str()) {
            causes.push(FieldCause::not_supported(
                &format!("{at}.reason"),
                &reason,
                REASONS,
            ));
        }
        let message_expression = match &validation["messageExpression"] {
            Value::Null => None,
            source => expression(source, &format!("{at}.messageExpression"), &mut causes),
        };
        let source = validation["expression"].as_str().unwrap_or("").to_owned();
        if let Some(program) = expression(
            &validation["expression"],
            &format!("{at}.expression"),
            &mut causes,
        ) {
            validations.push(Validation {
                expression: source,
                program,
                message,
                message_expression,
                reason,
            });
        }
    }
    let compiled = constraints
        .filter(|_| causes.is_empty())
        .map(|constraints| Policy {
            name: object["metadata"]["name"].as_str().unwrap_or("").to_owned(),
            param_kind,
            constraints,
            equivalent: match_policy == "Equivalent",
            ignore_failures: failure == "Ignore",
            conditions,
            variables,
            validations,
            audit_annotations,
        });
    (compiled, causes)
}

/// kube's check of an audit annotation key: a qualified name's name part, with the policy's
/// name before it at most 63 characters.
fn annotation_key_problem(policy: &str, key: &str) -> Option<String> {
    let name_part = !key.is_empty()
        && key.len() <= 63
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && key
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && key
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if !name_part {
        return Some("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".to_owned());
    }
    if policy.len() + 1 + key.len() > 253 {
        return Some("the policy name and key together must be at most 253 characters".to_owned());
    }
    None
}

/// `spec.auditAnnotations`: unique keys, each with a compiled `valueExpression`.
fn audit_annotations(object: &Value, causes: &mut Vec<FieldCause>) -> Vec<AuditAnnotation> {
    let policy = object["metadata"]["name"].as_str().unwrap_or("");
    let mut keys = std::collections::HashSet::new();
    let mut out = Vec::new();
    let listed = object["spec"]["auditAnnotations"].as_array().cloned();
    for (i, annotation) in listed.into_iter().flatten().enumerate() {
        let at = format!("spec.auditAnnotations[{i}]");
        let key = annotation["key"].as_str().unwrap_or("").to_owned();
        if key.is_empty() {
            causes.push(FieldCause::required(&format!("{at}.key")));
        } else if let Some(why) = annotation_key_problem(policy, &key) {
            causes.push(FieldCause::invalid(
                &format!("{at}.key"),
                &quoted(&key),
                &why,
            ));
        } else if !keys.insert(key.clone()) {
            causes.push(FieldCause {
                field: format!("{at}.key"),
                reason: "FieldValueDuplicate",
                message: format!("Duplicate value: {}", quoted(&key)),
            });
        }
        let source = annotation["valueExpression"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let field = format!("{at}.valueExpression");
        if let Some(program) = expression(&annotation["valueExpression"], &field, causes) {
            out.push(AuditAnnotation {
                key,
                expression: source,
                program,
            });
        }
    }
    out
}

/// A ValidatingAdmissionPolicyBinding read, with what kube (or bosun) refuses in it.
pub fn binding(object: &Value) -> (Option<Binding>, Vec<FieldCause>) {
    let spec = &object["spec"];
    let mut causes = Vec::new();
    let policy = spec["policyName"].as_str().unwrap_or("").to_owned();
    if policy.is_empty() {
        causes.push(FieldCause::required("spec.policyName"));
    }
    let param_ref = match &spec["paramRef"] {
        Value::Null => None,
        reference => Some(param_ref(reference, &mut causes)),
    };
    let actions = strings(&spec["validationActions"]);
    if actions.is_empty() {
        causes.push(FieldCause::required("spec.validationActions"));
    }
    for (i, action) in actions.iter().enumerate() {
        match action.as_str() {
            "Deny" | "Warn" | "Audit" => {}
            other => causes.push(FieldCause::not_supported(
                &format!("spec.validationActions[{i}]"),
                other,
                &["Audit", "Deny", "Warn"],
            )),
        }
    }
    let deny = actions.iter().any(|a| a == "Deny");
    let warn = actions.iter().any(|a| a == "Warn");
    let audit = actions.iter().any(|a| a == "Audit");
    if deny && warn {
        causes.push(FieldCause::invalid(
            "spec.validationActions",
            &format!("{actions:?}"),
            "must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)",
        ));
    }
    let matching = match &spec["matchResources"] {
        Value::Null => None,
        value => Some(matching(value, "spec.matchResources", &mut causes)),
    };
    let compiled = causes.is_empty().then(|| Binding {
        name: object["metadata"]["name"].as_str().unwrap_or("").to_owned(),
        policy,
        deny,
        warn,
        audit,
        matching,
        param_ref,
    });
    (compiled, causes)
}

/// kube's rules for a binding's `paramRef`: a name or a selector (not both), and a
/// `parameterNotFoundAction`.
fn param_ref(reference: &Value, causes: &mut Vec<FieldCause>) -> ParamRef {
    let text = |key: &str| {
        reference[key]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
    };
    let name = text("name");
    let selector = selector(&reference["selector"], "spec.paramRef.selector", causes);
    match (&name, reference["selector"].is_null()) {
        (Some(_), false) => causes.push(FieldCause::forbidden(
            "spec.paramRef.name",
            "name and selector are mutually exclusive",
        )),
        (None, true) => causes.push(
            FieldCause::required("spec.paramRef")
                .with_message("Required value: one of name or selector must be set"),
        ),
        _ => {}
    }
    let action = reference["parameterNotFoundAction"].as_str().unwrap_or("");
    match action {
        "Allow" | "Deny" => {}
        "" => causes.push(FieldCause::required(
            "spec.paramRef.parameterNotFoundAction",
        )),
        other => causes.push(FieldCause::not_supported(
            "spec.paramRef.parameterNotFoundAction",
            other,
            &["Allow", "Deny"],
        )),
    }
    ParamRef {
        name,
        namespace: text("namespace"),
        selector,
        deny_when_missing: action == "Deny",
    }
}
