//! Structural schemas of custom resources (a CRD version's `openAPIV3Schema`): pruning of
//! undeclared fields, defaulting, validation with kube's messages, and the check run before
//! a CRD is accepted that its schema only uses what this module honours.
//!
//! Paths follow kube: object keys joined with `.` (map keys too), list items as `[i]`.

use serde_json::{Map, Value};

use crate::status::FieldCause;

mod check;
#[cfg(test)]
mod tests;
mod validation;

/// Deepest nesting walked (object levels or schema levels) before giving up.
const MAX_DEPTH: usize = 100;
/// Most causes one `validate` or `check_schema` call returns.
const MAX_CAUSES: usize = 100;
/// Fields a resource (the root, or an embedded resource) keeps whatever its schema says.
const META_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

const PRESERVE_UNKNOWN: &str = "x-kubernetes-preserve-unknown-fields";
const INT_OR_STRING: &str = "x-kubernetes-int-or-string";
const EMBEDDED: &str = "x-kubernetes-embedded-resource";
const LIST_TYPE: &str = "x-kubernetes-list-type";
const LIST_MAP_KEYS: &str = "x-kubernetes-list-map-keys";

/// Whether `key` is one of the fields every resource keeps.
fn is_meta(key: &str) -> bool {
    META_FIELDS.contains(&key)
}

/// Whether boolean keyword `name` is `true` in `schema`.
fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool).unwrap_or(false)
}

fn properties(schema: &Value) -> Option<&Map<String, Value>> {
    schema.get("properties")?.as_object()
}

fn property<'a>(schema: &'a Value, key: &str) -> Option<&'a Value> {
    properties(schema)?.get(key)
}

/// `additionalProperties`: `None` when absent, `Some(None)` for `true`/`false`, else its schema.
fn additional(schema: &Value) -> Option<Option<&Value>> {
    match schema.get("additionalProperties")? {
        value @ Value::Object(_) => Some(Some(value)),
        _ => Some(None),
    }
}

fn items(schema: &Value) -> Option<&Value> {
    schema.get("items").filter(|value| value.is_object())
}

fn child_key(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn child_index(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

// ---------------------------------------------------------------------------------------
// Pruning

/// Drops every field the schema does not declare (kube's pruning) and returns the dropped
/// fields' paths, sorted, as kube reports them (`spec.foo`, `spec.items[0].bar`,
/// `spec.map.key.x`). At the root `apiVersion`, `kind` and `metadata` are always kept (the
/// caller handles metadata). `x-kubernetes-preserve-unknown-fields` keeps unknown fields of
/// its subtree while declared properties below are still pruned; `additionalProperties`
/// schemas prune map values; embedded resources keep their `apiVersion`, `kind`, `metadata`.
pub fn prune(object: &mut Value, schema: &Value) -> Vec<String> {
    let mut dropped = Vec::new();
    prune_node(object, Some(schema), true, "", 0, &mut dropped);
    dropped.sort();
    dropped
}

/// Prunes `value` against `schema` (`None`: nothing is declared, objects empty out).
/// `keep_meta` says whether `value` is a resource whose meta fields stay.
fn prune_node(
    value: &mut Value,
    schema: Option<&Value>,
    keep_meta: bool,
    path: &str,
    depth: usize,
    dropped: &mut Vec<String>,
) {
    if depth > MAX_DEPTH {
        return;
    }
    if let Some(schema) = schema.filter(|schema| flag(schema, PRESERVE_UNKNOWN)) {
        prune_preserving(value, schema, keep_meta, path, depth, dropped);
        return;
    }
    match value {
        Value::Object(map) => {
            let Some(schema) = schema else {
                dropped.extend(map.keys().map(|key| child_key(path, key)));
                map.clear();
                return;
            };
            let keep_meta = keep_meta || flag(schema, EMBEDDED);
            map.retain(|key, child| {
                if keep_meta && is_meta(key) {
                    return true;
                }
                let child_path = child_key(path, key);
                let child_schema = match property(schema, key) {
                    Some(declared) => Some(declared),
                    None => match additional(schema) {
                        Some(additional) => additional,
                        None => {
                            dropped.push(child_path);
                            return false;
                        }
                    },
                };
                prune_node(child, child_schema, false, &child_path, depth + 1, dropped);
                true
            });
        }
        Value::Array(list) => {
            let item_schema = schema.and_then(items);
            for (index, item) in list.iter_mut().enumerate() {
                let item_path = child_index(path, index);
                prune_node(item, item_schema, false, &item_path, depth + 1, dropped);
            }
        }
        _ => {}
    }
}

/// Prunes below a node with `x-kubernetes-preserve-unknown-fields`: unknown fields stay,
/// declared ones are pruned by their own schemas.
fn prune_preserving(
    value: &mut Value,
    schema: &Value,
    keep_meta: bool,
    path: &str,
    depth: usize,
    dropped: &mut Vec<String>,
) {
    match value {
        Value::Object(map) => {
            let keep_meta = keep_meta || flag(schema, EMBEDDED);
            for (key, child) in map.iter_mut() {
                if keep_meta && is_meta(key) {
                    continue;
                }
                let child_schema = match property(schema, key) {
                    Some(declared) => Some(declared),
                    None => match additional(schema) {
                        Some(additional) => additional,
                        None => continue,
                    },
                };
                let child_path = child_key(path, key);
                prune_node(child, child_schema, false, &child_path, depth + 1, dropped);
            }
        }
        Value::Array(list) => {
            let Some(item_schema) = items(schema) else {
                return;
            };
            for (index, item) in list.iter_mut().enumerate() {
                let item_path = child_index(path, index);
                prune_preserving(item, item_schema, false, &item_path, depth + 1, dropped);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// Defaulting

/// kube's structural defaulting, after pruning: a missing property (or map/list item field)
/// whose schema has `default` gets a copy of it; nested defaults apply inside defaulted values
/// too, top-down. A `null` on a non-nullable field that has a default is replaced by it; a null
/// on a non-nullable field without a default is removed (kube's null pruning).
pub fn apply_defaults(object: &mut Value, schema: &Value) {
    default_node(object, schema, true, 0);
    prune_nulls(object, schema, true, 0);
}

fn nullable(schema: &Value) -> bool {
    flag(schema, "nullable")
}

/// Replaces a null `value` by the schema's default when the schema is not nullable.
fn default_null(value: &mut Value, schema: &Value) {
    if value.is_null() && !nullable(schema) {
        if let Some(default) = schema.get("default") {
            *value = default.clone();
        }
    }
}

fn default_node(value: &mut Value, schema: &Value, is_root: bool, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::Object(map) => {
            for (key, declared) in properties(schema).into_iter().flatten() {
                if is_root && is_meta(key) {
                    continue;
                }
                let Some(default) = declared.get("default") else {
                    continue;
                };
                let wanted = match map.get(key) {
                    None => true,
                    Some(current) => current.is_null() && !nullable(declared),
                };
                if wanted {
                    map.insert(key.clone(), default.clone());
                }
            }
            let additional_schema = additional(schema).flatten();
            for (key, child) in map.iter_mut() {
                if is_root && is_meta(key) {
                    continue;
                }
                if let Some(declared) = property(schema, key) {
                    default_node(child, declared, false, depth + 1);
                } else if let Some(additional_schema) = additional_schema {
                    default_null(child, additional_schema);
                    default_node(child, additional_schema, false, depth + 1);
                }
            }
        }
        Value::Array(list) => {
            let Some(item_schema) = items(schema) else {
                return;
            };
            for item in list {
                default_null(item, item_schema);
                default_node(item, item_schema, false, depth + 1);
            }
        }
        _ => {}
    }
}

/// Removes object fields that are null although their schema is neither nullable nor
/// defaulted (kube's `PruneNonNullableNullsWithoutDefaults`).
fn prune_nulls(value: &mut Value, schema: &Value, is_root: bool, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::Object(map) => {
            let additional_schema = additional(schema).flatten();
            map.retain(|key, child| {
                if is_root && is_meta(key) {
                    return true;
                }
                let Some(child_schema) = property(schema, key).or(additional_schema) else {
                    return true;
                };
                if child.is_null() {
                    return nullable(child_schema) || child_schema.get("default").is_some();
                }
                prune_nulls(child, child_schema, false, depth + 1);
                true
            });
        }
        Value::Array(list) => {
            let Some(item_schema) = items(schema) else {
                return;
            };
            for item in list {
                prune_nulls(item, item_schema, false, depth + 1);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// Validation

/// Validates `object` (after pruning and defaulting) and returns every violation as a
/// 422 field cause in kube's words. Paths without a leading dot (`spec.size`). The root's
/// `metadata`, `apiVersion`, `kind` are not checked here.
pub fn validate(object: &Value, schema: &Value) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    validation::Validator::default().node(object, schema, "", true, 0, &mut causes);
    causes
}

/// Adds a cause unless the cap is reached.
fn push(causes: &mut Vec<FieldCause>, field: &str, reason: &'static str, message: String) {
    if causes.len() < MAX_CAUSES {
        causes.push(FieldCause {
            field: field.to_owned(),
            reason,
            message,
        });
    }
}

/// The JSON type name kube reports for a value (`string`, `integer`, `number`, …).
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(number) if number.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A float as Go's `%v` prints it (`3`, `0.5`, `1e+21`).
fn go_float(number: f64) -> String {
    let magnitude = number.abs();
    if number != 0.0 && number.is_finite() && !(1e-4..1e21).contains(&magnitude) {
        let text = format!("{number:e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let (sign, digits) = match exponent.strip_prefix('-') {
            Some(digits) => ('-', digits),
            None => ('+', exponent),
        };
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    format!("{number}")
}

/// A value as kube prints a field error's bad value (strings quoted, numbers bare).
fn go_value(value: &Value) -> String {
    match value {
        Value::Null => "\"null\"".to_owned(),
        Value::Number(number) if number.is_f64() => go_float(number.as_f64().unwrap_or(0.0)),
        other => other.to_string(),
    }
}

fn quoted(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

/// Checks that a schema is one this module honours before a CRD is accepted: returns the
/// problems as field causes under `field_prefix` (e.g. `spec.versions[0].schema.openAPIV3Schema`).
/// Refuses CEL rules, `$ref` and unknown keywords (`FieldValueForbidden`), and breaks of kube's
/// structural-schema rules: the root must be `type: object`, every property, item and
/// additionalProperties schema needs a `type` (unless int-or-string or preserve-unknown-fields),
/// `items` must be one schema, `additionalProperties` excludes `properties`, defaults must
/// validate, and the root's `metadata` may only declare `name` and `generateName`.
pub fn check_schema(schema: &Value, field_prefix: &str) -> Vec<FieldCause> {
    check::check_root(schema, field_prefix)
}
