//! Strategic merge patch (`application/strategic-merge-patch+json`), the patch kubectl's
//! client-side `apply`, `edit`, `set`, `label`, `annotate` and `patch` send: a JSON merge patch
//! whose lists are merged element-wise when the field's `patchStrategy` is `merge` (by its
//! `patchMergeKey`, or as a set of primitives), with the directives `$patch` (replace, delete,
//! merge), `$retainKeys`, `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>`.
//! The field facts come from `shape`; this module owns only the merge. Bad input is an error
//! naming the path, never a panic; unknown directives are refused.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value};

use super::shape::{Field, Shape};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_FROM: &str = "$deleteFromPrimitiveList/";

/// A strategic merge patch that cannot be applied, with the path where.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("strategic merge patch: {path}: {message}")]
pub struct SmpError {
    pub path: String,
    pub message: String,
}

fn error(path: &str, message: impl Into<String>) -> SmpError {
    let path = if path.is_empty() { "<root>" } else { path };
    SmpError {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// `original` (an object whose schema is `shape`) with `patch` applied.
pub fn apply(original: Value, patch: &Value, shape: Shape) -> Result<Value, SmpError> {
    let Value::Object(patch) = patch else {
        return Err(error("", "the patch must be a JSON object"));
    };
    let original = match original {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    match merge_map(original, patch, shape, "")? {
        Some(merged) => Ok(Value::Object(merged)),
        None => Err(error("", "$patch: delete may not delete the whole object")),
    }
}

/// The directives a map of the patch gives for one of its lists.
#[derive(Default)]
struct ListDirectives<'a> {
    order: Option<&'a [Value]>,
    delete: Option<&'a [Value]>,
}

/// Merges a patch map into `original`; `None` when the patch deletes the map.
fn merge_map(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    shape: Shape,
    path: &str,
) -> Result<Option<Map<String, Value>>, SmpError> {
    if let Some(directive) = patch.get(PATCH) {
        match directive.as_str() {
            Some("delete") => return Ok(None),
            Some("replace") => original.clear(),
            Some("merge") => {}
            _ => return Err(unknown_directive(path, PATCH, directive)),
        }
    }
    if let Some(keys) = patch.get(RETAIN_KEYS) {
        retain_keys(&mut original, patch, keys, path)?;
    }
    let mut lists: BTreeMap<&str, ListDirectives> = BTreeMap::new();
    for (key, value) in patch {
        let list = |name: &str| {
            value.as_array().map(Vec::as_slice).ok_or_else(|| {
                error(
                    &join(path, key),
                    format!("{name} must be followed by a list"),
                )
            })
        };
        if let Some(field) = key.strip_prefix(SET_ORDER) {
            lists.entry(field).or_default().order = Some(list("$setElementOrder")?);
        } else if let Some(field) = key.strip_prefix(DELETE_FROM) {
            lists.entry(field).or_default().delete = Some(list("$deleteFromPrimitiveList")?);
        } else if key.starts_with('$') && key != PATCH && key != RETAIN_KEYS {
            return Err(unknown_directive(path, key, value));
        }
    }
    for (key, value) in patch.iter().filter(|(k, _)| !k.starts_with('$')) {
        let directives = lists.remove(key.as_str()).unwrap_or_default();
        merge_field(&mut original, key, Some(value), directives, shape, path)?;
    }
    for (key, directives) in lists {
        merge_field(&mut original, key, None, directives, shape, path)?;
    }
    Ok(Some(original))
}

fn unknown_directive(path: &str, key: &str, value: &Value) -> SmpError {
    error(
        path,
        format!("unknown directive {key}: {value} (known: $patch: replace|delete|merge, $retainKeys, $setElementOrder/<list>, $deleteFromPrimitiveList/<list>)"),
    )
}

/// `$retainKeys`: every field of the patch must be listed; fields not listed are dropped.
fn retain_keys(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    keys: &Value,
    path: &str,
) -> Result<(), SmpError> {
    let names = keys
        .as_array()
        .and_then(|list| {
            list.iter()
                .map(Value::as_str)
                .collect::<Option<HashSet<&str>>>()
        })
        .ok_or_else(|| error(path, "$retainKeys must be a list of field names"))?;
    for (key, value) in patch {
        if !key.starts_with('$') && !value.is_null() && !names.contains(key.as_str()) {
            return Err(error(
                path,
                format!("{key} is in the patch but not in its $retainKeys list"),
            ));
        }
    }
    original.retain(|key, _| names.contains(key.as_str()));
    Ok(())
}

/// Merges the patch's value (and list directives) for `key` into `original`.
fn merge_field(
    original: &mut Map<String, Value>,
    key: &str,
    patch: Option<&Value>,
    directives: ListDirectives,
    shape: Shape,
    path: &str,
) -> Result<(), SmpError> {
    let here = join(path, key);
    let field = shape.field(key);
    if patch.is_some_and(Value::is_null) {
        original.remove(key);
        return Ok(());
    }
    let current = original.remove(key);
    let merged = match (current, patch) {
        (Some(Value::Array(items)), None) if field.strategy.merge => Some(Value::Array(
            merge_list(items, &[], &field, directives, &here)?,
        )),
        (current, None) => current,
        (Some(Value::Object(map)), Some(Value::Object(p))) if !field.strategy.replace => {
            merge_map(map, p, field.shape, &here)?.map(Value::Object)
        }
        (Some(Value::Array(items)), Some(Value::Array(p))) if field.strategy.merge => Some(
            Value::Array(merge_list(items, p, &field, directives, &here)?),
        ),
        (_, Some(p)) => fresh(p, &field, directives, &here)?,
    };
    if let Some(value) = merged {
        original.insert(key.to_owned(), value);
    }
    Ok(())
}

/// A patch value with nothing to merge into, cleaned of nulls and directives.
fn fresh(
    patch: &Value,
    field: &Field,
    directives: ListDirectives,
    path: &str,
) -> Result<Option<Value>, SmpError> {
    Ok(match patch {
        Value::Object(p) => merge_map(Map::new(), p, field.shape, path)?.map(Value::Object),
        Value::Array(p) if field.strategy.merge => Some(Value::Array(merge_list(
            Vec::new(),
            p,
            field,
            directives,
            path,
        )?)),
        Value::Array(p) => {
            let items = field.shape.items();
            let mut out = Vec::with_capacity(p.len());
            for (i, element) in p.iter().enumerate() {
                match element {
                    Value::Object(e) if e.len() == 1 && e.contains_key(PATCH) => {}
                    Value::Object(e) => {
                        let here = format!("{path}[{i}]");
                        out.extend(merge_map(Map::new(), e, items, &here)?.map(Value::Object));
                    }
                    other => out.push(other.clone()),
                }
            }
            Some(Value::Array(out))
        }
        other => Some(other.clone()),
    })
}

/// Merges a list whose field has the `merge` strategy.
fn merge_list(
    original: Vec<Value>,
    patch: &[Value],
    field: &Field,
    directives: ListDirectives,
    path: &str,
) -> Result<Vec<Value>, SmpError> {
    let objects = patch
        .iter()
        .chain(&original)
        .chain(directives.order.unwrap_or_default())
        .any(Value::is_object);
    if objects {
        merge_object_list(original, patch, field, directives, path)
    } else {
        Ok(merge_primitive_list(original, patch, directives))
    }
}

/// A set of primitives (`finalizers`): union, minus `$deleteFromPrimitiveList`.
fn merge_primitive_list(
    original: Vec<Value>,
    patch: &[Value],
    directives: ListDirectives,
) -> Vec<Value> {
    let deleted: HashSet<String> = directives
        .delete
        .unwrap_or_default()
        .iter()
        .map(Value::to_string)
        .collect();
    let server: Vec<Value> = original
        .into_iter()
        .filter(|v| !deleted.contains(&v.to_string()))
        .collect();
    let mut seen = HashSet::new();
    let merged: Vec<Value> = server
        .iter()
        .chain(patch)
        .filter(|v| seen.insert(v.to_string()))
        .cloned()
        .collect();
    let order = directives.order.unwrap_or(patch);
    arrange(merged, order, &server, |v| Some(v.to_string()))
}

/// A list of objects merged by the field's merge key.
fn merge_object_list(
    original: Vec<Value>,
    patch: &[Value],
    field: &Field,
    directives: ListDirectives,
    path: &str,
) -> Result<Vec<Value>, SmpError> {
    let Some(key) = field.merge_key else {
        return Err(error(
            path,
            "a list of objects with the merge strategy needs a merge key",
        ));
    };
    if directives.delete.is_some() {
        return Err(error(
            path,
            "$deleteFromPrimitiveList applies only to lists of primitives",
        ));
    }
    let key_of = |v: &Value| v.get(key).map(Value::to_string);
    let mut additions = Vec::new();
    let mut deleted = HashSet::new();
    let mut replace = false;
    for element in patch {
        let Value::Object(e) = element else {
            return Err(error(
                path,
                format!("element {element} is not an object, as the others are"),
            ));
        };
        let Some(directive) = e.get(PATCH) else {
            let k = key_of(element).ok_or_else(|| {
                error(path, format!("element {element} has no merge key {key:?}"))
            })?;
            additions.push((k, e));
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let k = key_of(element).ok_or_else(|| {
                    error(path, format!("$patch: delete element {element} has no merge key {key:?}"))
                })?;
                deleted.insert(k);
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(error(path, "$patch: merge is not allowed in a list (merging lists cannot be specified in the patch)"))
            }
            _ => return Err(unknown_directive(path, PATCH, directive)),
        }
    }
    let server: Vec<Value> = if replace {
        Vec::new()
    } else {
        original
            .into_iter()
            .filter(|v| key_of(v).is_none_or(|k| !deleted.contains(&k)))
            .collect()
    };
    let mut merged = server.clone();
    let mut at: HashMap<String, usize> = HashMap::new();
    for (i, v) in merged.iter().enumerate() {
        if let Some(k) = key_of(v) {
            at.entry(k).or_insert(i);
        }
    }
    let items = field.shape.items();
    for (k, e) in &additions {
        let here = format!("{path}[{key}={k}]");
        match at.get(k) {
            Some(&i) => {
                let current = match std::mem::take(&mut merged[i]) {
                    Value::Object(map) => map,
                    _ => Map::new(),
                };
                merged[i] = merge_map(current, e, items, &here)?.map_or(Value::Null, Value::Object);
            }
            None => {
                if let Some(new) = merge_map(Map::new(), e, items, &here)? {
                    at.insert(k.clone(), merged.len());
                    merged.push(Value::Object(new));
                }
            }
        }
    }
    merged.retain(|v| !v.is_null());
    let order: Vec<Value> = match directives.order {
        Some(order) => order
            .iter()
            .map(|v| {
                v.get(key).cloned().ok_or_else(|| {
                    error(
                        path,
                        format!("$setElementOrder entry {v} has no merge key {key:?}"),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        None => additions
            .iter()
            .filter_map(|(_, e)| e.get(key).cloned())
            .collect(),
    };
    let server_keys: Vec<Value> = server.iter().filter_map(|v| v.get(key).cloned()).collect();
    Ok(arrange(merged, &order, &server_keys, |v| key_of(v)))
}

/// Orders a merged list as Kubernetes does: the elements the patch names (or its
/// `$setElementOrder` lists) in that order, with the elements only the server has woven in
/// by their place in the server's list. `order` and `server` hold keys (`key_of` of the
/// elements, before `to_string`).
fn arrange(
    merged: Vec<Value>,
    order: &[Value],
    server: &[Value],
    key_of: impl Fn(&Value) -> Option<String>,
) -> Vec<Value> {
    let positions = |list: &[Value]| {
        let mut map = HashMap::new();
        for (i, v) in list.iter().enumerate() {
            map.entry(v.to_string()).or_insert(i);
        }
        map
    };
    let (in_order, in_server) = (positions(order), positions(server));
    let rank =
        |map: &HashMap<String, usize>, v: &Value| key_of(v).and_then(|k| map.get(&k).copied());
    let (mut patched, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|v| rank(&in_order, v).is_some());
    patched.sort_by_key(|v| rank(&in_order, v).unwrap_or(usize::MAX));
    server_only.sort_by_key(|v| rank(&in_server, v).unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(patched.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patched.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (Some(l), Some(r)) => matches!(
                (rank(&in_server, l), rank(&in_server, r)),
                (Some(a), Some(b)) if a < b
            ),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        out.extend(if take_left { left.next() } else { right.next() });
    }
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
#[path = "strategic_tests.rs"]
mod tests;
