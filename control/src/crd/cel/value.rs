//! Custom objects as CEL sees them, kube's way: integers are `int` (`number` fields
//! `double`), `date-time` strings timestamps and `duration` strings durations, declared
//! properties are reached by their escaped names (`x-foo` as `self.x__dash__foo`, `namespace`
//! as `self.__namespace__`), and a resource's root (or an embedded resource) shows
//! `apiVersion`, `kind` and only `metadata.name` / `metadata.generateName`.

use std::collections::HashMap;
use std::sync::Arc;

use cel::objects::{Key, Map};
use cel::Value as CelValue;
use serde_json::Value;

/// CEL's reserved words, which a property name is escaped from as `__word__`.
const RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// The name a property has in CEL, or `None` when kube cannot escape it (it is then not
/// reachable from a rule).
pub fn escape(name: &str) -> Option<String> {
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || "_.-/".contains(c));
    if !first_ok
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c))
    {
        return None;
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("__") {
            out.push_str("__underscores__");
            rest = after;
            continue;
        }
        match c {
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            other => out.push(other),
        }
        rest = &rest[c.len_utf8()..];
    }
    Some(out)
}

/// `value` (already pruned to `schema`) as a CEL value; `resource_root` for the root of a
/// custom object or an embedded resource.
pub fn to_cel(value: &Value, schema: &Value, resource_root: bool) -> CelValue {
    match value {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => {
            let wants_double = schema["type"] == "number";
            match n.as_i64() {
                Some(i) if !wants_double => CelValue::Int(i),
                _ => CelValue::Float(n.as_f64().unwrap_or(f64::NAN)),
            }
        }
        Value::String(s) => string(s, schema),
        Value::Array(items) => {
            let item_schema = &schema["items"];
            let embedded = flag(item_schema, "x-kubernetes-embedded-resource");
            CelValue::List(Arc::new(
                items
                    .iter()
                    .map(|item| to_cel(item, item_schema, embedded))
                    .collect(),
            ))
        }
        Value::Object(fields) => object(fields, schema, resource_root),
    }
}

fn string(text: &str, schema: &Value) -> CelValue {
    match schema["format"].as_str() {
        Some("date-time") => {
            if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
                return CelValue::Timestamp(at);
            }
        }
        Some("duration") => {
            if let Some(length) = go_duration(text) {
                return CelValue::Duration(length);
            }
        }
        _ => {}
    }
    CelValue::String(Arc::new(text.to_owned()))
}

fn object(
    fields: &serde_json::Map<String, Value>,
    schema: &Value,
    resource_root: bool,
) -> CelValue {
    let mut map: HashMap<Key, CelValue> = HashMap::with_capacity(fields.len());
    let properties = schema["properties"].as_object();
    let additional = &schema["additionalProperties"];
    for (name, field) in fields {
        if resource_root && matches!(name.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if let Some(property) = properties.and_then(|p| p.get(name)) {
            if let Some(escaped) = escape(name) {
                let embedded = flag(property, "x-kubernetes-embedded-resource");
                map.insert(key(&escaped), to_cel(field, property, embedded));
            }
        } else if additional.is_object() {
            let embedded = flag(additional, "x-kubernetes-embedded-resource");
            map.insert(key(name), to_cel(field, additional, embedded));
        } else if properties.is_none() {
            // x-kubernetes-preserve-unknown-fields without properties: kept as given
            map.insert(key(name), to_cel(field, &Value::Null, false));
        }
    }
    if resource_root {
        for name in ["apiVersion", "kind"] {
            if let Some(text) = fields.get(name).and_then(Value::as_str) {
                map.insert(key(name), CelValue::String(Arc::new(text.to_owned())));
            }
        }
        if let Some(metadata) = fields.get("metadata").and_then(Value::as_object) {
            let mut shown: HashMap<Key, CelValue> = HashMap::new();
            for name in ["name", "generateName"] {
                if let Some(text) = metadata.get(name).and_then(Value::as_str) {
                    shown.insert(key(name), CelValue::String(Arc::new(text.to_owned())));
                }
            }
            map.insert(
                key("metadata"),
                CelValue::Map(Map {
                    map: Arc::new(shown),
                }),
            );
        }
    }
    CelValue::Map(Map { map: Arc::new(map) })
}

/// A JSON value as CEL sees it without a schema (an admission policy's `object`): integers
/// are `int`, other numbers `double`, objects maps with their own keys.
pub fn from_json(value: &Value) -> CelValue {
    match value {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => CelValue::Int(i),
            None => CelValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(items) => CelValue::List(Arc::new(items.iter().map(from_json).collect())),
        Value::Object(fields) => CelValue::Map(Map {
            map: Arc::new(fields.iter().map(|(k, v)| (key(k), from_json(v))).collect()),
        }),
    }
}

fn key(name: &str) -> Key {
    Key::String(Arc::new(name.to_owned()))
}

fn flag(schema: &Value, name: &str) -> bool {
    schema[name].as_bool().unwrap_or(false)
}

/// A Go duration (`1h30m`, `-1.5s`, `300ms`, `0`) as a chrono duration.
pub fn go_duration(text: &str) -> Option<chrono::Duration> {
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Some(chrono::Duration::zero());
    }
    if rest.is_empty() {
        return None;
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        nanos += number * scale;
    }
    if !nanos.is_finite() || nanos > i64::MAX as f64 {
        return None;
    }
    let nanos = nanos as i64;
    Some(chrono::Duration::nanoseconds(if negative {
        -nanos
    } else {
        nanos
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_escape_as_kube_does() {
        assert_eq!(escape("replicas").as_deref(), Some("replicas"));
        assert_eq!(escape("namespace").as_deref(), Some("__namespace__"));
        assert_eq!(escape("x-foo").as_deref(), Some("x__dash__foo"));
        assert_eq!(escape("a.b/c").as_deref(), Some("a__dot__b__slash__c"));
        assert_eq!(escape("a__b").as_deref(), Some("a__underscores__b"));
        assert_eq!(escape("1abc"), None);
        assert_eq!(escape("a b"), None);
    }

    #[test]
    fn values_take_their_schema_types() {
        let schema = json!({"type": "object", "properties": {
            "n": {"type": "integer"}, "x": {"type": "number"},
            "at": {"type": "string", "format": "date-time"},
            "every": {"type": "string", "format": "duration"},
            "in": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}}}});
        let object = json!({"apiVersion": "example.com/v1", "kind": "W",
            "metadata": {"name": "w", "labels": {"a": "b"}},
            "n": 3, "x": 2, "at": "2024-01-02T03:04:05Z", "every": "1h30m", "in": "v",
            "labels": {"x-y": "z"}});
        let CelValue::Map(map) = to_cel(&object, &schema, true) else {
            panic!("not a map")
        };
        let get = |k: &str| map.map.get(&key(k)).cloned();
        assert_eq!(get("n"), Some(CelValue::Int(3)));
        assert_eq!(get("x"), Some(CelValue::Float(2.0)));
        assert!(matches!(get("at"), Some(CelValue::Timestamp(_))));
        assert_eq!(
            get("every"),
            Some(CelValue::Duration(chrono::Duration::minutes(90)))
        );
        assert_eq!(
            get("__in__"),
            Some(CelValue::String(Arc::new("v".to_owned())))
        );
        let Some(CelValue::Map(labels)) = get("labels") else {
            panic!("labels")
        };
        assert!(labels.map.contains_key(&key("x-y")));
        let Some(CelValue::Map(metadata)) = get("metadata") else {
            panic!("metadata")
        };
        assert_eq!(
            metadata.map.len(),
            1,
            "only name and generateName are shown"
        );
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(
            go_duration("300ms"),
            Some(chrono::Duration::milliseconds(300))
        );
        assert_eq!(
            go_duration("-1.5s"),
            Some(chrono::Duration::milliseconds(-1500))
        );
        assert_eq!(go_duration("0"), Some(chrono::Duration::zero()));
        assert_eq!(go_duration("1x"), None);
        assert_eq!(go_duration(""), None);
    }
}
