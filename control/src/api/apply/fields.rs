//! Field sets, as server-side apply tracks them: the paths an object sets, named the way
//! `managedFields[].fieldsV1` names them — `f:<field>` for a field of an object,
//! `k:{"<key>":<value>}` for an element of a list merged by key, `v:<value>` for a value of a
//! list merged as a set; an atomic list, a scalar or an empty object is one leaf. A map (labels,
//! annotations, data) and a keyed or set element is also a member itself, which `fieldsV1`
//! writes as `".": {}` beside its children. The lists' keys come from the types' patch-merge
//! keys (`patch::shape`).

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::api::patch::shape::Shape;

/// One path: its elements, outermost first.
pub type Path = Vec<String>;

/// A set of paths.
pub type Fields = BTreeSet<Path>;

/// Metadata the server owns, never part of a field set (kube's `stripmeta`).
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// The paths `object` (of schema `shape`) sets, without the server-owned metadata and, when
/// `without_status`, without `status` (written through its own subresource).
pub fn of_object(object: &Value, shape: Shape, without_status: bool) -> Fields {
    let mut fields = Fields::new();
    let Some(map) = object.as_object() else {
        return fields;
    };
    for (name, value) in map {
        let skip =
            matches!(name.as_str(), "apiVersion" | "kind") || (without_status && name == "status");
        if skip {
            continue;
        }
        let field = shape.field(name);
        let path = vec![format!("f:{name}")];
        if name == "metadata" {
            if let Some(meta) = value.as_object() {
                for (key, value) in meta {
                    if !SERVER_METADATA.contains(&key.as_str()) {
                        let path = vec![path[0].clone(), format!("f:{key}")];
                        let field = field.shape.field(key);
                        walk(value, &field_kind(&field), path, &mut fields);
                    }
                }
            }
            continue;
        }
        walk(value, &field_kind(&field), path, &mut fields);
    }
    fields
}

/// How a value's children are named, from its field's schema.
enum Kind {
    /// An object: a struct (only its children are members) or a map (itself too).
    Object { shape: Shape, map: bool },
    /// A list merged by this key: each element is `k:{key: value}`.
    Keyed { key: &'static str, items: Shape },
    /// A list merged as a set of values: each is `v:<value>`.
    Set,
    /// Replaced whole: one leaf.
    Atomic,
}

fn field_kind(field: &crate::api::patch::shape::Field) -> Kind {
    kind_of(field.shape, field.strategy.merge, field.merge_key)
}

fn kind_of(shape: Shape, merge: bool, key: Option<&'static str>) -> Kind {
    if shape.is_list() {
        return match (merge, key) {
            (true, Some(key)) => Kind::Keyed {
                key,
                items: shape.items(),
            },
            (true, None) => Kind::Set,
            _ => Kind::Atomic,
        };
    }
    Kind::Object {
        shape,
        map: shape.is_map(),
    }
}

fn walk(value: &Value, kind: &Kind, path: Path, fields: &mut Fields) {
    match (value, kind) {
        (Value::Object(map), Kind::Object { shape, map: is_map }) if !map.is_empty() => {
            if *is_map {
                fields.insert(path.clone());
            }
            for (name, child) in map {
                let mut child_path = path.clone();
                child_path.push(format!("f:{name}"));
                walk(child, &field_kind(&shape.field(name)), child_path, fields);
            }
        }
        (Value::Array(items), Kind::Keyed { key, items: shape }) => {
            // A list whose elements do not all carry the key is replaced whole.
            if !items.iter().all(|item| item.get(*key).is_some()) {
                fields.insert(path);
                return;
            }
            for item in items {
                let mut item_path = path.clone();
                item_path.push(key_element(key, &item[*key]));
                fields.insert(item_path.clone());
                for (name, child) in item.as_object().into_iter().flatten() {
                    let mut child_path = item_path.clone();
                    child_path.push(format!("f:{name}"));
                    walk(child, &field_kind(&shape.field(name)), child_path, fields);
                }
            }
        }
        (Value::Array(items), Kind::Set) => {
            for item in items {
                let mut item_path = path.clone();
                item_path.push(format!("v:{item}"));
                fields.insert(item_path);
            }
        }
        _ => {
            fields.insert(path);
        }
    }
}

/// `k:{"name":"web"}`.
fn key_element(key: &str, value: &Value) -> String {
    let mut object = Map::new();
    object.insert(key.to_owned(), value.clone());
    format!("k:{}", Value::Object(object))
}

/// The `fieldsV1` object of a set.
pub fn to_fields_v1(fields: &Fields) -> Value {
    let mut root = Map::new();
    'paths: for path in fields {
        // A member that has members below it says so with ".".
        let has_members_below = fields
            .range(path.clone()..)
            .nth(1)
            .is_some_and(|next| next.starts_with(path));
        let mut node = &mut root;
        for element in path {
            let child = node
                .entry(element.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(child) = child else {
                continue 'paths;
            };
            node = child;
        }
        if has_members_below {
            node.insert(".".to_owned(), json!({}));
        }
    }
    Value::Object(root)
}

/// The set a `fieldsV1` object describes; `None` when it is not one.
pub fn from_fields_v1(value: &Value) -> Option<Fields> {
    let mut fields = Fields::new();
    collect(value.as_object()?, &mut Vec::new(), &mut fields)?;
    Some(fields)
}

fn collect(node: &Map<String, Value>, path: &mut Path, fields: &mut Fields) -> Option<()> {
    for (element, child) in node {
        if element == "." {
            fields.insert(path.clone());
            continue;
        }
        if !matches!(element.get(..2), Some("f:" | "k:" | "v:" | "i:")) {
            return None;
        }
        let child = child.as_object()?;
        path.push(element.clone());
        if child.is_empty() {
            fields.insert(path.clone());
        } else {
            collect(child, path, fields)?;
        }
        path.pop();
    }
    Some(())
}

/// The value at `path` in `object`, if it has one.
pub fn value_at<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut value = object;
    for element in path {
        value = step(value, element)?.1;
    }
    Some(value)
}

/// The child `element` names in `value`: its index in a list (or None for a field) and itself.
fn step<'a>(value: &'a Value, element: &str) -> Option<(Option<usize>, &'a Value)> {
    if let Some(name) = element.strip_prefix("f:") {
        return value.get(name).map(|child| (None, child));
    }
    let items = value.as_array()?;
    let index = if let Some(key) = element.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(key).ok()?;
        items
            .iter()
            .position(|item| key.iter().all(|(k, v)| item.get(k) == Some(v)))?
    } else if let Some(member) = element.strip_prefix("v:") {
        let member: Value = serde_json::from_str(member).ok()?;
        items.iter().position(|item| *item == member)?
    } else {
        element.strip_prefix("i:")?.parse().ok()?
    };
    items.get(index).map(|item| (Some(index), item))
}

/// Removes the value at `path` from `object`; false when there is none.
pub fn remove_at(object: &mut Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut value = object;
    for element in parents {
        let Some((index, _)) = step(value, element) else {
            return false;
        };
        value = match index {
            Some(i) => &mut value[i],
            None => match value.get_mut(element.trim_start_matches("f:")) {
                Some(child) => child,
                None => return false,
            },
        };
    }
    match step(value, last) {
        Some((Some(index), _)) => value
            .as_array_mut()
            .map(|items| items.remove(index))
            .is_some(),
        Some((None, _)) => value
            .as_object_mut()
            .and_then(|map| map.remove(last.trim_start_matches("f:")))
            .is_some(),
        None => false,
    }
}

/// A path as kube prints it in a conflict: `.spec.containers[name="web"].image`.
pub fn display(path: &[String]) -> String {
    let mut out = String::new();
    for element in path {
        if let Some(name) = element.strip_prefix("f:") {
            out.push('.');
            out.push_str(name);
        } else if let Some(key) = element.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
            let parts: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(member) = element.strip_prefix("v:") {
            out.push_str(&format!("[={member}]"));
        } else {
            out.push_str(&format!("[{}]", element.trim_start_matches("i:")));
        }
    }
    out
}

/// Whether any path of `fields` is `path` or below it.
pub fn covers(fields: &Fields, path: &Path) -> bool {
    fields
        .range(path.clone()..)
        .next()
        .is_some_and(|first| first.starts_with(path))
}
