//! Validation of custom resources against a structural schema, with kube-openapi's messages.

use std::collections::{HashMap, HashSet};

use regex::Regex;
use serde_json::{Map, Value};

use super::{
    additional, child_index, child_key, flag, go_float, go_value, is_meta, items, json_kind,
    nullable, properties, push, quoted, EMBEDDED, INT_OR_STRING, LIST_MAP_KEYS, LIST_TYPE,
    MAX_CAUSES, MAX_DEPTH,
};
use crate::status::FieldCause;

/// Whether the float is a whole number (kube accepts those for `integer`).
fn is_whole(number: f64) -> bool {
    number.is_finite() && number.fract() == 0.0
}

fn is_integer(value: &Value) -> bool {
    match value {
        Value::Number(number) => !number.is_f64() || number.as_f64().is_some_and(is_whole),
        _ => false,
    }
}

fn type_matches(value: &Value, expected: &str) -> bool {
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "number" => value.is_number(),
        "integer" => is_integer(value),
        "integer,string" => is_integer(value) || value.is_string(),
        _ => true,
    }
}

/// Equality with numbers compared by value (`1` equals `1.0`).
fn json_equal(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(a), Value::Number(b)) => a == b || a.as_f64() == b.as_f64(),
        _ => left == right,
    }
}

/// Whether `number / factor` is whole, with go-openapi's relative tolerance.
fn is_multiple(number: &Value, factor: f64) -> bool {
    if let (Some(value), true) = (number.as_i64(), is_whole(factor) && factor.abs() < 9e15) {
        return value % (factor as i64) == 0;
    }
    let quotient = number.as_f64().unwrap_or(0.0) / factor;
    let nearest = quotient.round();
    quotient == nearest || (quotient - nearest).abs() / quotient.abs().max(1.0) < 1e-9
}

/// Whether `text` is RFC 3339 date-time (seconds fraction and zone optional, as strfmt).
fn is_date_time(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .is_some_and(|part| part.iter().all(u8::is_ascii_digit))
    };
    let basic = bytes.len() >= 19
        && digits(0..4)
        && bytes[4] == b'-'
        && digits(5..7)
        && bytes[7] == b'-'
        && digits(8..10)
        && matches!(bytes[10], b'T' | b't' | b' ')
        && digits(11..13)
        && bytes[13] == b':'
        && digits(14..16)
        && bytes[16] == b':'
        && digits(17..19);
    if !basic {
        return false;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let length = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if length == 0 {
            return false;
        }
        rest = &fraction[length..];
    }
    let zone = rest.as_bytes();
    match zone {
        [] | [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit()),
        _ => false,
    }
}

/// Whether `text` is standard padded base64 (format `byte`).
fn is_base64(text: &str) -> bool {
    let body = text.trim_end_matches('=');
    text.len().is_multiple_of(4)
        && text.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// Whether `value` satisfies `format` (only int32, int64, date-time and byte are checked).
fn format_holds(format: &str, value: &Value) -> bool {
    match (format, value) {
        ("int32", Value::Number(number)) => match number.as_i64() {
            Some(value) => i32::try_from(value).is_ok(),
            None => number
                .as_f64()
                .is_some_and(|f| !is_whole(f) || f.abs() <= 2_147_483_648.0),
        },
        ("int64", Value::Number(number)) => {
            number.is_i64()
                || number
                    .as_f64()
                    .is_some_and(|f| !is_whole(f) || f.abs() < 9.2e18)
        }
        ("date-time", Value::String(text)) => is_date_time(text),
        ("byte", Value::String(text)) => is_base64(text),
        // kube-openapi's strfmt checks of addresses and identifiers
        ("ipv4", Value::String(text)) => text.parse::<std::net::Ipv4Addr>().is_ok(),
        ("ipv6", Value::String(text)) => {
            text.contains(':') && text.parse::<std::net::IpAddr>().is_ok()
        }
        ("cidr", Value::String(text)) => is_cidr(text),
        ("uuid" | "uuid3" | "uuid4" | "uuid5", Value::String(text)) => is_uuid(format, text),
        ("date", Value::String(text)) => time::Date::parse(
            text,
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .is_ok(),
        ("mac", Value::String(text)) => is_mac(text),
        _ => true,
    }
}

/// Go's `net.ParseCIDR`: an address and a prefix length within its family's bits.
fn is_cidr(text: &str) -> bool {
    let Some((address, bits)) = text.split_once('/') else {
        return false;
    };
    let Ok(address) = address.parse::<std::net::IpAddr>() else {
        return false;
    };
    let most = if address.is_ipv4() { 32 } else { 128 };
    !bits.is_empty()
        && bits.len() <= 3
        && bits.bytes().all(|b| b.is_ascii_digit())
        && bits.parse::<u32>().is_ok_and(|b| b <= most)
}

/// strfmt's UUID forms: 8-4-4-4-12 hex digits; uuid3/4/5 also fix the version digit.
fn is_uuid(format: &str, text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    let shaped = groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()));
    let version = match format {
        "uuid3" => Some(b'3'),
        "uuid4" => Some(b'4'),
        "uuid5" => Some(b'5'),
        _ => None,
    };
    shaped && version.is_none_or(|v| groups[2].as_bytes().first() == Some(&v))
}

/// Go's `net.ParseMAC`: 6, 8 or 20 hex octets separated by `:` or `-`, or dotted groups of four.
fn is_mac(text: &str) -> bool {
    let octets = |sep: char| -> Option<usize> {
        let parts: Vec<&str> = text.split(sep).collect();
        parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
            .then_some(parts.len())
    };
    let dotted = {
        let parts: Vec<&str> = text.split('.').collect();
        parts
            .iter()
            .all(|p| p.len() == 4 && p.bytes().all(|b| b.is_ascii_hexdigit()))
            .then_some(parts.len() * 2)
    };
    [octets(':'), octets('-'), dotted]
        .into_iter()
        .flatten()
        .any(|n| matches!(n, 6 | 8 | 20))
}

/// Walks a value against a schema, caching compiled patterns.
#[derive(Default)]
pub(super) struct Validator {
    patterns: HashMap<String, Option<Regex>>,
}

impl Validator {
    fn pattern_matches(&mut self, pattern: &str, text: &str) -> bool {
        let compiled = self
            .patterns
            .entry(pattern.to_owned())
            .or_insert_with(|| Regex::new(pattern).ok());
        compiled.as_ref().is_none_or(|regex| regex.is_match(text))
    }

    pub(super) fn node(
        &mut self,
        value: &Value,
        schema: &Value,
        path: &str,
        is_root: bool,
        depth: usize,
        causes: &mut Vec<FieldCause>,
    ) {
        if causes.len() >= MAX_CAUSES {
            return;
        }
        if depth > MAX_DEPTH {
            let message = format!(
                "Invalid value: {}: {path} in body is nested deeper than {MAX_DEPTH} levels",
                quoted(json_kind(value))
            );
            push(causes, path, "FieldValueInvalid", message);
            return;
        }
        let expected = if flag(schema, INT_OR_STRING) {
            Some("integer,string")
        } else {
            schema.get("type").and_then(Value::as_str)
        };
        if let Some(expected) = expected {
            let null_allowed = value.is_null() && nullable(schema);
            if !null_allowed && !type_matches(value, expected) {
                let kind = quoted(json_kind(value));
                let message = format!(
                    "Invalid value: {kind}: {path} in body must be of type {expected}: {kind}"
                );
                push(causes, path, "FieldValueTypeInvalid", message);
                return;
            }
        }
        if let Some(format) = schema.get("format").and_then(Value::as_str) {
            if !format_holds(format, value) {
                let data = match value {
                    Value::String(text) => quoted(text),
                    other => quoted(&other.to_string()),
                };
                let message = format!(
                    "Invalid value: {}: {path} in body must be of type {format}: {data}",
                    go_value(value)
                );
                push(causes, path, "FieldValueTypeInvalid", message);
            }
        }
        if let Some(Value::Array(allowed)) = schema.get("enum") {
            if !allowed.iter().any(|candidate| json_equal(candidate, value)) {
                let supported: Vec<String> = allowed
                    .iter()
                    .map(|candidate| match candidate {
                        Value::String(text) => quoted(text),
                        other => quoted(&other.to_string()),
                    })
                    .collect();
                let message = format!(
                    "Unsupported value: {}: supported values: {}",
                    go_value(value),
                    supported.join(", ")
                );
                push(causes, path, "FieldValueNotSupported", message);
            }
        }
        match value {
            Value::Number(_) => self.number(value, schema, path, causes),
            Value::String(text) => self.string(text, schema, path, causes),
            Value::Array(list) => self.array(list, schema, path, depth, causes),
            Value::Object(map) => self.object(map, schema, path, is_root, depth, causes),
            _ => {}
        }
        self.junctors(value, schema, path, is_root, depth, causes);
    }

    fn number(&mut self, value: &Value, schema: &Value, path: &str, causes: &mut Vec<FieldCause>) {
        let number = value.as_f64().unwrap_or(0.0);
        let bound = |name: &str| schema.get(name).and_then(Value::as_f64);
        let mut fail = |detail: String| {
            let message = format!(
                "Invalid value: {}: {path} in body should be {detail}",
                go_value(value)
            );
            push(causes, path, "FieldValueInvalid", message);
        };
        if let Some(minimum) = bound("minimum") {
            if flag(schema, "exclusiveMinimum") && number <= minimum {
                fail(format!("greater than {}", go_float(minimum)));
            } else if number < minimum {
                fail(format!("greater than or equal to {}", go_float(minimum)));
            }
        }
        if let Some(maximum) = bound("maximum") {
            if flag(schema, "exclusiveMaximum") && number >= maximum {
                fail(format!("less than {}", go_float(maximum)));
            } else if number > maximum {
                fail(format!("less than or equal to {}", go_float(maximum)));
            }
        }
        if let Some(factor) = bound("multipleOf").filter(|factor| *factor > 0.0) {
            if !is_multiple(value, factor) {
                fail(format!("a multiple of {}", go_float(factor)));
            }
        }
    }

    fn string(&mut self, text: &str, schema: &Value, path: &str, causes: &mut Vec<FieldCause>) {
        let length = text.chars().count() as u64;
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
            if length > max {
                let unit = if max == 1 { "byte" } else { "bytes" };
                let message = format!("Too long: may not be more than {max} {unit}");
                push(causes, path, "FieldValueTooLong", message);
            }
        }
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
            if length < min {
                let message = format!(
                    "Invalid value: {}: {path} in body should be at least {min} chars long",
                    quoted(text)
                );
                push(causes, path, "FieldValueInvalid", message);
            }
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
            if !self.pattern_matches(pattern, text) {
                let message = format!(
                    "Invalid value: {}: {path} in body should match '{pattern}'",
                    quoted(text)
                );
                push(causes, path, "FieldValueInvalid", message);
            }
        }
    }

    fn array(
        &mut self,
        list: &[Value],
        schema: &Value,
        path: &str,
        depth: usize,
        causes: &mut Vec<FieldCause>,
    ) {
        if let Some(item_schema) = items(schema) {
            for (index, item) in list.iter().enumerate() {
                if causes.len() >= MAX_CAUSES {
                    return;
                }
                let item_path = child_index(path, index);
                self.node(item, item_schema, &item_path, false, depth + 1, causes);
            }
        }
        let count = list.len() as u64;
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
            if count < min {
                let message = format!(
                    "Invalid value: {count}: {path} in body should have at least {min} items"
                );
                push(causes, path, "FieldValueInvalid", message);
            }
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
            if count > max {
                let noun = if max == 1 { "item" } else { "items" };
                let message = format!("Too many: {count}: must have at most {max} {noun}");
                push(causes, path, "FieldValueTooMany", message);
            }
        }
        if flag(schema, "uniqueItems") {
            let mut seen = HashSet::new();
            if !list.iter().all(|item| seen.insert(item.to_string())) {
                let message =
                    format!("Invalid value: \"\": {path} in body shouldn't contain duplicates");
                push(causes, path, "FieldValueInvalid", message);
            }
        }
        let key_names: Vec<&str> = match schema.get(LIST_TYPE).and_then(Value::as_str) {
            Some("set") => Vec::new(),
            Some("map") => schema
                .get(LIST_MAP_KEYS)
                .and_then(Value::as_array)
                .map(|keys| keys.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default(),
            _ => return,
        };
        let mut seen = HashSet::new();
        for (index, item) in list.iter().enumerate() {
            let identity = if key_names.is_empty() {
                item.clone()
            } else {
                let Some(fields) = item.as_object() else {
                    continue;
                };
                let keys: Map<String, Value> = key_names
                    .iter()
                    .map(|name| {
                        (
                            (*name).to_owned(),
                            fields.get(*name).cloned().unwrap_or(Value::Null),
                        )
                    })
                    .collect();
                Value::Object(keys)
            };
            if !seen.insert(identity.to_string()) {
                let message = format!("Duplicate value: {}", go_value(&identity));
                push(
                    causes,
                    &child_index(path, index),
                    "FieldValueDuplicate",
                    message,
                );
            }
        }
    }

    fn object(
        &mut self,
        map: &Map<String, Value>,
        schema: &Value,
        path: &str,
        is_root: bool,
        depth: usize,
        causes: &mut Vec<FieldCause>,
    ) {
        let count = map.len() as u64;
        if let Some(min) = schema.get("minProperties").and_then(Value::as_u64) {
            if count < min {
                let message = format!(
                    "Invalid value: {count}: {path} in body should have at least {min} properties"
                );
                push(causes, path, "FieldValueInvalid", message);
                return;
            }
        }
        if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64) {
            if count > max {
                let noun = if max == 1 { "item" } else { "items" };
                let message = format!("Too many: {count}: must have at most {max} {noun}");
                push(causes, path, "FieldValueTooMany", message);
                return;
            }
        }
        let declared = properties(schema);
        for (key, child) in map {
            if causes.len() >= MAX_CAUSES {
                return;
            }
            if is_root && is_meta(key) {
                continue;
            }
            let child_schema = match declared.and_then(|declared| declared.get(key)) {
                Some(child_schema) => child_schema,
                None => match additional(schema).flatten() {
                    Some(child_schema) => child_schema,
                    None => continue,
                },
            };
            self.node(
                child,
                child_schema,
                &child_key(path, key),
                false,
                depth + 1,
                causes,
            );
        }
        let required = schema.get("required").and_then(Value::as_array);
        for name in required.into_iter().flatten().filter_map(Value::as_str) {
            if !(map.contains_key(name) || is_root && is_meta(name)) {
                push(
                    causes,
                    &child_key(path, name),
                    "FieldValueRequired",
                    "Required value".to_owned(),
                );
            }
        }
        if flag(schema, EMBEDDED) && !is_root {
            for name in ["apiVersion", "kind"] {
                let field = child_key(path, name);
                match map.get(name) {
                    None => push(
                        causes,
                        &field,
                        "FieldValueRequired",
                        "Required value: must not be empty".to_owned(),
                    ),
                    Some(Value::String(text)) if text.is_empty() => push(
                        causes,
                        &field,
                        "FieldValueInvalid",
                        "Invalid value: \"\": must not be empty".to_owned(),
                    ),
                    Some(Value::String(_)) => {}
                    Some(other) => {
                        let message =
                            format!("Invalid value: {}: must be a string", go_value(other));
                        push(causes, &field, "FieldValueInvalid", message);
                    }
                }
            }
            if let Some(metadata) = map.get("metadata").filter(|metadata| !metadata.is_object()) {
                let kind = quoted(json_kind(metadata));
                let message = format!("Invalid value: {kind}: must be of type object");
                push(
                    causes,
                    &child_key(path, "metadata"),
                    "FieldValueTypeInvalid",
                    message,
                );
            }
        }
    }

    /// `allOf`, `anyOf`, `oneOf` and `not`, with kube-openapi's messages.
    fn junctors(
        &mut self,
        value: &Value,
        schema: &Value,
        path: &str,
        is_root: bool,
        depth: usize,
        causes: &mut Vec<FieldCause>,
    ) {
        let run = |validator: &mut Self, sub: &Value| {
            let mut found = Vec::new();
            validator.node(value, sub, path, is_root, depth + 1, &mut found);
            found
        };
        let composite = |causes: &mut Vec<FieldCause>, detail: &str| {
            let message = format!("Invalid value: \"\": {path} {detail}");
            push(causes, path, "FieldValueInvalid", message);
        };
        if let Some(Value::Array(all)) = schema.get("allOf") {
            let mut failed = false;
            for sub in all {
                let found = run(self, sub);
                failed |= !found.is_empty();
                for cause in found {
                    push(causes, &cause.field, cause.reason, cause.message);
                }
            }
            if failed {
                composite(causes, "must validate all the schemas (allOf)");
            }
        }
        if let Some(Value::Array(any)) = schema.get("anyOf") {
            if !any.iter().any(|sub| run(self, sub).is_empty()) {
                composite(causes, "must validate at least one schema (anyOf)");
            }
        }
        if let Some(Value::Array(one)) = schema.get("oneOf") {
            let valid = one.iter().filter(|sub| run(self, sub).is_empty()).count();
            if valid != 1 {
                composite(causes, "must validate one and only one schema (oneOf)");
            }
        }
        if let Some(not) = schema.get("not").filter(|not| not.is_object()) {
            if run(self, not).is_empty() {
                composite(causes, "must not validate the schema (not)");
            }
        }
    }
}
