//! One bound policy evaluated on one request, on a CEL thread: its `matchConditions`, then
//! its `variables` in order, then its `validations` (each failure a `Decision`) and its
//! `auditAnnotations` (`<policy>/<key>` values for the audit log).

use std::sync::Arc;

use cel::Value as CelValue;

use super::Pair;
use crate::crd::cel::{context, error_text};

/// One failed validation of a matching policy.
pub(super) struct Decision {
    pub policy: String,
    pub binding: String,
    pub message: String,
    pub reason: String,
    /// Which validation failed (its index), for the audit annotation.
    pub expression_index: usize,
    pub deny: bool,
    pub warn: bool,
    pub audit: bool,
}

/// What one policy through one binding found.
#[derive(Default)]
pub(super) struct Evaluation {
    pub failures: Vec<Decision>,
    /// `<policy name>/<key>` → value.
    pub annotations: Vec<(String, String)>,
}

pub(super) struct Inputs {
    pub object: CelValue,
    pub old: CelValue,
    pub request: CelValue,
    pub namespace: CelValue,
}

/// The failed validations and the audit annotations of one policy through one binding.
pub(super) fn evaluate((policy, binding): &Pair, inputs: &Inputs, params: CelValue) -> Evaluation {
    let mut root = context();
    root.add_variable_from_value("object", inputs.object.clone());
    root.add_variable_from_value("oldObject", inputs.old.clone());
    root.add_variable_from_value("request", inputs.request.clone());
    root.add_variable_from_value("namespaceObject", inputs.namespace.clone());
    root.add_variable_from_value("params", params);
    let mut variables = std::collections::HashMap::new();
    root.add_variable_from_value("variables", variables_value(&variables));
    let decide = |message: String, reason: &str, expression_index: usize| Decision {
        policy: policy.name.clone(),
        binding: binding.name.clone(),
        message,
        reason: reason.to_owned(),
        expression_index,
        deny: binding.deny,
        warn: binding.warn,
        audit: binding.audit,
    };
    let mut found = Evaluation::default();
    for (name, program) in &policy.conditions {
        match run(program, &root) {
            Ok(CelValue::Bool(true)) => {}
            Ok(CelValue::Bool(false)) => return found,
            _ if policy.ignore_failures => return found,
            other => {
                let why = failure_text(name, other);
                let message = format!("failed to evaluate match condition {why}");
                found.failures.push(decide(message, "Invalid", 0));
                return found;
            }
        }
    }
    for (name, program) in &policy.variables {
        if let Ok(value) = run(program, &root) {
            variables.insert(cel::objects::Key::String(Arc::new(name.clone())), value);
            root.add_variable_from_value("variables", variables_value(&variables));
        }
    }
    for (index, validation) in policy.validations.iter().enumerate() {
        let message = match run(&validation.program, &root) {
            Ok(CelValue::Bool(true)) => continue,
            Ok(CelValue::Bool(false)) => validation
                .message_expression
                .as_ref()
                .and_then(|m| match run(m, &root) {
                    Ok(CelValue::String(text)) if !text.trim().is_empty() => {
                        Some(text.trim().to_owned())
                    }
                    _ => None,
                })
                .or_else(|| validation.message.clone())
                .unwrap_or_else(|| format!("failed expression: {}", validation.expression.trim())),
            _ if policy.ignore_failures => continue,
            other => format!(
                "expression '{}' resulted in error: {}",
                validation.expression.trim(),
                failure_text("", other)
            ),
        };
        found
            .failures
            .push(decide(message, &validation.reason, index));
    }
    for annotation in &policy.audit_annotations {
        match run(&annotation.program, &root) {
            Ok(CelValue::String(value)) => found.annotations.push((
                format!("{}/{}", policy.name, annotation.key),
                value.to_string(),
            )),
            Ok(CelValue::Null) => {}
            _ if policy.ignore_failures => {}
            other => {
                let why = match other {
                    Ok(value) => format!("expected a string or null, got {}", value.type_of()),
                    Err(error) => error,
                };
                let message = format!(
                    "valueExpression '{}' resulted in error: {why}",
                    annotation.expression.trim()
                );
                found.failures.push(decide(message, "Invalid", 0));
            }
        }
    }
    found
}

fn variables_value(variables: &std::collections::HashMap<cel::objects::Key, CelValue>) -> CelValue {
    CelValue::Map(cel::objects::Map {
        map: Arc::new(variables.clone()),
    })
}

pub(in crate::api) fn run(
    program: &cel::Program,
    context: &cel::Context,
) -> Result<CelValue, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| program.execute(context))) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error_text(&error).unwrap_or_else(|| "no such overload".to_owned())),
        Err(_) => Err("internal error".to_owned()),
    }
}

/// Why an expression did not give a bool, for a message.
pub(in crate::api) fn failure_text(name: &str, outcome: Result<CelValue, String>) -> String {
    let why = match outcome {
        Ok(other) => format!("expected a bool, got {}", other.type_of()),
        Err(error) => error,
    };
    match name {
        "" => why,
        name => format!("'{name}': {why}"),
    }
}
