//! Running the compiled rules over an object being written, as kube's CEL validator does:
//! each rule runs on every non-null value of its node, `self` bound to the value and, for a
//! transition rule (one naming `oldSelf`), `oldSelf` to the old object's value at the same
//! place — found through object properties (unless the map is atomic) and map-type list keys
//! only; without one, a transition rule is skipped (one with `optionalOldSelf` runs with
//! `oldSelf` an empty optional). A false rule is a 422 cause in kube's
//! words: `spec: Invalid value: "object": <message>` (`<nil>` at the root), its `reason`
//! choosing Forbidden/Required/Duplicate, its `fieldPath` the field named; an evaluation error
//! names the rule (`no such key: x evaluating rule: …`). On an update, a value left as it
//! was (found the same way) is not checked again by rules that do not name `oldSelf`
//! (kube's validation ratcheting).

use std::panic::{catch_unwind, AssertUnwindSafe};

use cel::{Context, ExecutionError, Value as CelValue};
use serde_json::Value;

use super::compile::{Node, Rule};
use super::value::to_cel;
use crate::status::FieldCause;

/// kube's longest evaluated messageExpression.
const MAX_MESSAGE_BYTES: usize = 5000;

/// Runs every rule of `root` over `object`; `old` is the stored object of an update.
pub fn validate(root: &Node, object: &Value, old: Option<&Value>, causes: &mut Vec<FieldCause>) {
    walk(root, "", object, old, &super::context(), causes, 0);
}

fn walk(
    node: &Node,
    path: &str,
    value: &Value,
    old: Option<&Value>,
    context: &Context,
    causes: &mut Vec<FieldCause>,
    depth: usize,
) {
    if value.is_null() || depth > 100 {
        return;
    }
    if !node.rules.is_empty() {
        rules(
            node,
            path,
            value,
            old.filter(|o| !o.is_null()),
            context,
            causes,
        );
    }
    let atomic_map = node.schema["x-kubernetes-map-type"] == "atomic";
    match value {
        Value::Object(fields) => {
            for (name, sub) in &node.properties {
                if let Some(field) = fields.get(name) {
                    let old_field = old.filter(|_| !atomic_map).and_then(|o| o.get(name));
                    let at = child(path, name);
                    walk(sub, &at, field, old_field, context, causes, depth + 1);
                }
            }
            if let Some(sub) = &node.additional {
                for (key, field) in fields {
                    let old_field = old.filter(|_| !atomic_map).and_then(|o| o.get(key));
                    let at = format!("{}[{key}]", root_name(path));
                    walk(sub, &at, field, old_field, context, causes, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = &node.items {
                let keys: Vec<&str> = node.schema["x-kubernetes-list-map-keys"]
                    .as_array()
                    .map(|keys| keys.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let keyed = node.schema["x-kubernetes-list-type"] == "map" && !keys.is_empty();
                let old_items = old.and_then(Value::as_array);
                for (index, item) in items.iter().enumerate() {
                    let old_item = old_items.filter(|_| keyed).and_then(|olds| {
                        olds.iter()
                            .find(|o| keys.iter().all(|k| o.get(*k) == item.get(*k)))
                    });
                    let at = format!("{}[{index}]", root_name(path));
                    walk(sub, &at, item, old_item, context, causes, depth + 1);
                }
            }
        }
        _ => {}
    }
}

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// The path as kube prints it: a nil path (the root) is `<nil>`.
fn root_name(path: &str) -> &str {
    if path.is_empty() {
        "<nil>"
    } else {
        path
    }
}

fn rules(
    node: &Node,
    path: &str,
    value: &Value,
    old: Option<&Value>,
    context: &Context,
    causes: &mut Vec<FieldCause>,
) {
    let kind = node.schema["type"].as_str().unwrap_or("");
    let shown_kind = Value::String(kind.to_owned()).to_string();
    let field = root_name(path).to_owned();
    let this = to_cel(value, &node.schema, node.resource_root);
    let previous = old.map(|o| to_cel(o, &node.schema, node.resource_root));
    for rule in &node.rules {
        let program = match &rule.program {
            Ok(program) => program,
            Err(why) => {
                causes.push(FieldCause::invalid(
                    &field,
                    &shown_kind,
                    &format!("rule compile error: {why}"),
                ));
                continue;
            }
        };
        if rule.uses_old_self && previous.is_none() && !rule.optional_old_self {
            continue;
        }
        // ratcheting (kube 1.30+): a value the update leaves as it was is not held to a
        // rule it may already break
        if !rule.uses_old_self && old == Some(value) {
            continue;
        }
        let mut scope = context.new_inner_scope();
        scope.add_variable_from_value("self", this.clone());
        match (&previous, rule.optional_old_self) {
            (Some(previous), false) => scope.add_variable_from_value("oldSelf", previous.clone()),
            (Some(previous), true) => scope
                .add_variable_from_value("oldSelf", super::library::optional_of(previous.clone())),
            (None, true) => {
                scope.add_variable_from_value("oldSelf", super::library::optional_none())
            }
            (None, false) => {}
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| program.execute(&scope)));
        let why = match outcome {
            Ok(Ok(CelValue::Bool(true))) => continue,
            Ok(Ok(CelValue::Bool(false))) => None,
            Ok(Ok(other)) => Some(format!(
                "rule evaluated to {}, not a bool, evaluating rule: {}",
                other.type_of(),
                error_string(rule)
            )),
            Ok(Err(error)) => Some(evaluation_error(&error, rule)),
            Err(_) => Some(format!(
                "internal error evaluating rule: {}",
                error_string(rule)
            )),
        };
        if let Some(why) = why {
            causes.push(FieldCause::invalid(&field, &shown_kind, &why));
            continue;
        }
        let at = match &rule.field_path {
            Some(extra) if path.is_empty() => extra.clone(),
            Some(extra) => format!("{path}.{extra}"),
            None => field.clone(),
        };
        let detail = rule
            .message_expression
            .as_ref()
            .and_then(|(_, message)| evaluated_message(message, &scope))
            .unwrap_or_else(|| message_or_default(rule));
        causes.push(cause(&at, &shown_kind, &detail, rule.reason.as_deref()));
    }
}

/// A messageExpression's text, or `None` (kube then falls back to `message`) when it fails,
/// is not a string, is empty, has a line break or is too long.
fn evaluated_message(program: &cel::Program, scope: &Context) -> Option<String> {
    match catch_unwind(AssertUnwindSafe(|| program.execute(scope))) {
        Ok(Ok(CelValue::String(text))) => {
            let text = text.trim();
            (!text.is_empty() && !text.contains('\n') && text.len() <= MAX_MESSAGE_BYTES)
                .then(|| text.to_owned())
        }
        _ => None,
    }
}

fn cause(field: &str, kind: &str, detail: &str, reason: Option<&str>) -> FieldCause {
    match reason {
        Some("FieldValueForbidden") => FieldCause {
            field: field.to_owned(),
            reason: "FieldValueForbidden",
            message: format!("Forbidden: {detail}"),
        },
        Some("FieldValueRequired") => FieldCause {
            field: field.to_owned(),
            reason: "FieldValueRequired",
            message: format!("Required value: {detail}"),
        },
        Some("FieldValueDuplicate") => FieldCause {
            field: field.to_owned(),
            reason: "FieldValueDuplicate",
            message: format!("Duplicate value: {kind}"),
        },
        _ => FieldCause::invalid(field, kind, detail),
    }
}

/// kube's `ruleMessageOrDefault`.
fn message_or_default(rule: &Rule) -> String {
    match &rule.message {
        Some(message) if !message.trim().is_empty() => message.trim().to_owned(),
        _ => format!("failed rule: {}", error_string(rule)),
    }
}

/// kube's `ruleErrorString`: the message if there is one, else the rule.
fn error_string(rule: &Rule) -> String {
    match &rule.message {
        Some(message) if !message.trim().is_empty() => message.trim().to_owned(),
        _ => rule.text.trim().to_owned(),
    }
}

/// An evaluation error in cel-go's words, kept short (the interpreter's own texts print
/// whole values).
fn evaluation_error(error: &ExecutionError, rule: &Rule) -> String {
    match error_text(error) {
        Some(text) => format!("{text} evaluating rule: {}", error_string(rule)),
        None => format!(
            "'no such overload': call arguments did not match a supported operator, function or macro signature for rule: {}",
            error_string(rule)
        ),
    }
}

/// cel-go's text of an evaluation error; `None` for a missing overload (a type mismatch).
pub fn error_text(error: &ExecutionError) -> Option<String> {
    Some(match error {
        ExecutionError::NoSuchKey(key) => format!("no such key: {key}"),
        ExecutionError::IndexOutOfBounds(index) => format!("index out of bounds: {}", short(index)),
        ExecutionError::DivisionByZero(_) => "division by zero".to_owned(),
        ExecutionError::RemainderByZero(_) => "modulus by zero".to_owned(),
        ExecutionError::Overflow(..) => "integer overflow".to_owned(),
        ExecutionError::FunctionError { function, message } => format!("{function}: {message}"),
        ExecutionError::UndeclaredReference(name) => format!("undeclared reference to '{name}'"),
        _ => return None,
    })
}

fn short(value: &CelValue) -> String {
    match value {
        CelValue::Int(i) => i.to_string(),
        CelValue::UInt(u) => u.to_string(),
        CelValue::String(s) => s.to_string(),
        other => other.type_of().to_string(),
    }
}
