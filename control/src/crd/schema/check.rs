//! The check run before a CRD is accepted: its schema must be structural and only use what
//! this module honours.

use regex::Regex;
use serde_json::Value;

use super::validation::Validator;
use super::{
    child_key, default_node, flag, go_value, properties, property, prune_node, prune_nulls, push,
    quoted, EMBEDDED, INT_OR_STRING, LIST_MAP_KEYS, LIST_TYPE, MAX_CAUSES, MAX_DEPTH,
    PRESERVE_UNKNOWN,
};
use crate::status::FieldCause;

/// Keywords `check_schema` accepts; everything else is refused.
const KNOWN_KEYWORDS: [&str; 36] = [
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "nullable",
    "default",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "format",
    PRESERVE_UNKNOWN,
    INT_OR_STRING,
    EMBEDDED,
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "description",
    "title",
    "example",
    "externalDocs",
    LIST_TYPE,
    LIST_MAP_KEYS,
    "x-kubernetes-map-type",
];
/// The `type` values a schema may name.
const TYPE_NAMES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];

/// Runs every check from the root schema (see `check_schema`).
pub(super) fn check_root(schema: &Value, field_prefix: &str) -> Vec<FieldCause> {
    let mut checker = SchemaChecker::default();
    let type_path = child_key(field_prefix, "type");
    match schema.get("type") {
        None => checker.push(
            &type_path,
            "FieldValueRequired",
            "Required value: must not be empty at the root".to_owned(),
        ),
        Some(Value::String(name)) if name == "object" => {}
        Some(other) => {
            let message = format!(
                "Invalid value: {}: must be object at the root",
                go_value(other)
            );
            checker.push(&type_path, "FieldValueInvalid", message);
        }
    }
    if let Some(metadata) = property(schema, "metadata") {
        checker.root_metadata(metadata, &format!("{field_prefix}.properties[metadata]"));
    }
    checker.node(schema, field_prefix, None, false, 0);
    checker.causes
}

/// Collects the problems `check_schema` finds.
#[derive(Default)]
struct SchemaChecker {
    causes: Vec<FieldCause>,
}

impl SchemaChecker {
    fn push(&mut self, field: &str, reason: &'static str, message: String) {
        push(&mut self.causes, field, reason, message);
    }

    fn forbid(&mut self, field: &str, detail: &str) {
        self.push(field, "FieldValueForbidden", format!("Forbidden: {detail}"));
    }

    fn invalid(&mut self, field: &str, value: &Value, detail: &str) {
        self.push(
            field,
            "FieldValueInvalid",
            format!("Invalid value: {}: {detail}", go_value(value)),
        );
    }

    fn root_metadata(&mut self, metadata: &Value, path: &str) {
        if let Some(kind) = metadata
            .get("type")
            .filter(|kind| kind.as_str() != Some("object"))
        {
            self.invalid(&child_key(path, "type"), kind, "must be object");
        }
        let extra = metadata.as_object().into_iter().flatten().any(|(key, _)| {
            !matches!(
                key.as_str(),
                "type" | "properties" | "description" | "title"
            )
        });
        let extra_properties = properties(metadata)
            .into_iter()
            .flatten()
            .any(|(key, _)| key != "name" && key != "generateName");
        if extra || extra_properties {
            let detail = "must not specify anything other than name and generateName, but metadata is implicitly specified";
            self.forbid(path, detail);
        }
    }

    /// Checks one schema node. `type_required` holds kube's reason when the node must have a
    /// `type`; `in_junctor` is set below `allOf`/`anyOf`/`oneOf`/`not`.
    fn node(
        &mut self,
        schema: &Value,
        path: &str,
        type_required: Option<&str>,
        in_junctor: bool,
        depth: usize,
    ) {
        if self.causes.len() >= MAX_CAUSES {
            return;
        }
        if depth > MAX_DEPTH {
            self.forbid(
                path,
                &format!(
                    "schemas nested deeper than {MAX_DEPTH} levels are not supported by bosun"
                ),
            );
            return;
        }
        let Some(keywords) = schema.as_object() else {
            self.invalid(path, schema, "must be a schema object");
            return;
        };
        for (keyword, value) in keywords {
            let field = child_key(path, keyword);
            match keyword.as_str() {
                // CEL rules are checked by `crd::cel::check`
                "x-kubernetes-validations" => {}
                known if KNOWN_KEYWORDS.contains(&known) => {
                    self.keyword(keyword, value, schema, &field)
                }
                _ => self.forbid(&field, &format!("{keyword} is not supported by bosun")),
            }
        }
        let kind = schema.get("type").and_then(Value::as_str);
        let int_or_string = flag(schema, INT_OR_STRING);
        // below a junctor, schemas only validate: the structural spine gives the types
        let type_required = type_required.filter(|_| !in_junctor);
        if let Some(reason) = type_required {
            if kind.is_none() && !int_or_string && !flag(schema, PRESERVE_UNKNOWN) {
                self.push(
                    &child_key(path, "type"),
                    "FieldValueRequired",
                    format!("Required value: {reason}"),
                );
            }
        }
        if let (true, Some(kind)) = (int_or_string, schema.get("type")) {
            self.invalid(
                &child_key(path, "type"),
                kind,
                "must be empty if x-kubernetes-int-or-string is true",
            );
        }
        if flag(schema, EMBEDDED) && kind != Some("object") {
            let kind = schema.get("type").cloned().unwrap_or(Value::Null);
            self.invalid(
                &child_key(path, "type"),
                &kind,
                "must be object if x-kubernetes-embedded-resource is true",
            );
        }
        if kind == Some("array") && schema.get("items").is_none() && !in_junctor {
            self.push(
                &child_key(path, "items"),
                "FieldValueRequired",
                "Required value: must be specified".to_owned(),
            );
        }
        for (name, sub) in properties(schema).into_iter().flatten() {
            let sub_path = format!("{path}.properties[{name}]");
            self.node(
                sub,
                &sub_path,
                Some("must not be empty for specified object fields"),
                in_junctor,
                depth + 1,
            );
        }
        match schema.get("additionalProperties") {
            Some(Value::Bool(false)) => self.forbid(
                &child_key(path, "additionalProperties"),
                "additionalProperties cannot be set to false",
            ),
            Some(sub @ Value::Object(_)) => {
                if properties(schema).is_some_and(|declared| !declared.is_empty()) {
                    let detail = "additionalProperties and properties are mutual exclusive";
                    self.forbid(&child_key(path, "additionalProperties"), detail);
                }
                let reason = Some("must not be empty for specified object fields");
                self.node(
                    sub,
                    &child_key(path, "additionalProperties"),
                    reason,
                    in_junctor,
                    depth + 1,
                );
            }
            _ => {}
        }
        match schema.get("items") {
            Some(Value::Array(_)) => self.forbid(
                &child_key(path, "items"),
                "items must be a schema object and not an array",
            ),
            Some(sub) => {
                let reason = Some("must not be empty for specified array items");
                self.node(
                    sub,
                    &child_key(path, "items"),
                    reason,
                    in_junctor,
                    depth + 1,
                );
            }
            None => {}
        }
        for junctor in ["allOf", "anyOf", "oneOf"] {
            for (index, sub) in schema
                .get(junctor)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                self.node(
                    sub,
                    &format!("{path}.{junctor}[{index}]"),
                    None,
                    true,
                    depth + 1,
                );
            }
        }
        if let Some(sub) = schema.get("not") {
            self.node(sub, &child_key(path, "not"), None, true, depth + 1);
        }
        if let Some(default) = schema.get("default") {
            if in_junctor {
                self.forbid(
                    &child_key(path, "default"),
                    "must not be set inside allOf, anyOf, oneOf or not",
                );
            } else {
                self.check_default(default, schema, path);
            }
        }
    }

    /// Checks the shape of one known keyword's value.
    fn keyword(&mut self, keyword: &str, value: &Value, schema: &Value, field: &str) {
        match keyword {
            "type"
                if !value
                    .as_str()
                    .is_some_and(|name| TYPE_NAMES.contains(&name)) =>
            {
                let supported: Vec<String> = TYPE_NAMES.iter().map(|name| quoted(name)).collect();
                let message = format!(
                    "Unsupported value: {}: supported values: {}",
                    go_value(value),
                    supported.join(", ")
                );
                self.push(field, "FieldValueNotSupported", message);
            }
            "properties" | "externalDocs" if !value.is_object() => {
                self.invalid(field, value, "must be an object")
            }
            "additionalProperties" if !value.is_object() && !value.is_boolean() => {
                self.invalid(field, value, "must be a schema or a boolean")
            }
            "required" | "x-kubernetes-list-map-keys"
                if !value
                    .as_array()
                    .is_some_and(|names| names.iter().all(Value::is_string)) =>
            {
                self.invalid(field, value, "must be a list of strings")
            }
            "enum" | "allOf" | "anyOf" | "oneOf" if !value.is_array() => {
                self.invalid(field, value, "must be a list")
            }
            "minimum" | "maximum" if !value.is_number() => {
                self.invalid(field, value, "must be a number")
            }
            "multipleOf" if !value.as_f64().is_some_and(|factor| factor > 0.0) => {
                self.invalid(field, value, "must be a number greater than 0")
            }
            "minLength" | "maxLength" | "minItems" | "maxItems" | "minProperties"
            | "maxProperties"
                if !value.is_u64() =>
            {
                self.invalid(field, value, "must be a non-negative integer")
            }
            "nullable" | "exclusiveMinimum" | "exclusiveMaximum" | INT_OR_STRING | EMBEDDED
                if !value.is_boolean() =>
            {
                self.invalid(field, value, "must be a boolean")
            }
            "uniqueItems" if value.as_bool() == Some(true) => self.forbid(
                field,
                "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            ),
            PRESERVE_UNKNOWN if value.as_bool() != Some(true) => {
                self.invalid(field, value, "must be true or undefined")
            }
            "pattern" => match value.as_str().map(Regex::new) {
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    let detail = format!("must be a valid regular expression, but isn't: {error}");
                    self.invalid(field, value, &detail.replace('\n', " "))
                }
                None => self.invalid(field, value, "must be a string"),
            },
            "format" | "description" | "title" if !value.is_string() => {
                self.invalid(field, value, "must be a string")
            }
            LIST_TYPE => self.list_type(value, schema, field),
            "x-kubernetes-map-type" if !matches!(value.as_str(), Some("granular" | "atomic")) => {
                let message = format!(
                    "Unsupported value: {}: supported values: \"atomic\", \"granular\"",
                    go_value(value)
                );
                self.push(field, "FieldValueNotSupported", message);
            }
            _ => {}
        }
    }

    fn list_type(&mut self, value: &Value, schema: &Value, field: &str) {
        let Some(list_type @ ("atomic" | "set" | "map")) = value.as_str() else {
            let message = format!(
                "Unsupported value: {}: supported values: \"atomic\", \"map\", \"set\"",
                go_value(value)
            );
            self.push(field, "FieldValueNotSupported", message);
            return;
        };
        if schema.get("type").and_then(Value::as_str) != Some("array") {
            self.invalid(field, value, "must only be used on type array");
        }
        let has_keys = schema
            .get(LIST_MAP_KEYS)
            .and_then(Value::as_array)
            .is_some_and(|keys| !keys.is_empty());
        if list_type == "map" && !has_keys {
            let keys_field = field.replace(LIST_TYPE, LIST_MAP_KEYS);
            self.push(
                &keys_field,
                "FieldValueRequired",
                "Required value: must not be empty if x-kubernetes-list-type is map".to_owned(),
            );
        }
        if list_type != "map" && schema.get(LIST_MAP_KEYS).is_some() {
            let keys_field = field.replace(LIST_TYPE, LIST_MAP_KEYS);
            self.forbid(
                &keys_field,
                "must not be specified if x-kubernetes-list-type is not map",
            );
        }
    }

    /// A default must survive pruning unchanged and validate (after its own nested defaults).
    fn check_default(&mut self, default: &Value, schema: &Value, path: &str) {
        let field = child_key(path, "default");
        let mut candidate = default.clone();
        let mut dropped = Vec::new();
        prune_node(
            &mut candidate,
            Some(schema),
            false,
            "default",
            0,
            &mut dropped,
        );
        if !dropped.is_empty() {
            let detail = format!("must not have unknown fields, got: {}", dropped.join(", "));
            self.invalid(&field, default, &detail);
        }
        default_node(&mut candidate, schema, false, 0);
        prune_nulls(&mut candidate, schema, false, 0);
        let mut found = Vec::new();
        Validator::default().node(&candidate, schema, "default", false, 0, &mut found);
        for cause in found {
            self.push(&child_key(path, &cause.field), cause.reason, cause.message);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::super::check_schema;
    use super::super::tests::widget_schema;

    const PREFIX: &str = "spec.versions[0].schema.openAPIV3Schema";

    fn check_fields(schema: &Value) -> Vec<(String, &'static str, String)> {
        check_schema(schema, PREFIX)
            .into_iter()
            .map(|c| (c.field, c.reason, c.message))
            .collect()
    }

    #[test]
    fn properties_below_a_junctor_need_no_type() {
        // Gateway API's addresses: the structural spine has the types, oneOf only validates
        let schema = json!({"type": "object", "properties": {"address": {
        "type": "object",
        "properties": {"type": {"type": "string"}, "value": {"type": "string"}},
        "oneOf": [
            {"properties": {"type": {"enum": ["IPAddress"]},
                "value": {"anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}}},
            {"properties": {"type": {"not": {"enum": ["IPAddress"]}}}}
        ]}}});
        assert_eq!(check_fields(&schema), []);
    }

    #[test]
    fn a_typical_crd_schema_is_accepted() {
        assert_eq!(check_fields(&widget_schema()), []);
        let certificate = json!({
            "type": "object",
            "properties": {
                "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 63}}},
                "spec": {"type": "object", "required": ["secretName"], "properties": {
                    "secretName": {"type": "string"},
                    "duration": {"type": "string", "example": "2160h"},
                    "dnsNames": {"type": "array", "items": {"type": "string"}},
                    "issuerRef": {"type": "object", "required": ["name"], "properties": {
                        "name": {"type": "string"}, "kind": {"type": "string"}, "group": {"type": "string"}}},
                    "privateKey": {"type": "object", "properties": {
                        "algorithm": {"type": "string", "enum": ["RSA", "ECDSA", "Ed25519"]},
                        "size": {"type": "integer"},
                        "rotationPolicy": {"type": "string", "default": "Always"}}},
                    "usages": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "atomic"}
                }},
                "status": {"type": "object", "properties": {
                    "notAfter": {"type": "string", "format": "date-time"},
                    "conditions": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
                        "items": {"type": "object", "required": ["type", "status"], "properties": {
                            "type": {"type": "string"},
                            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                            "observedGeneration": {"type": "integer", "format": "int64"},
                            "lastTransitionTime": {"type": "string", "format": "date-time"}}}}}}
            }
        });
        assert_eq!(check_fields(&certificate), []);
    }

    #[test]
    fn unsupported_keywords_are_forbidden_by_path() {
        let schema = json!({"type": "object", "properties": {"spec": {
            "type": "object",
            "x-kubernetes-validations": [{"rule": "self.a > 0"}],
            "properties": {
                "a": {"$ref": "#/definitions/a"},
                "b": {"type": "string", "patternProperties": {}},
                "c": {"type": "array", "items": {"type": "string"}, "uniqueItems": true}
            }
        }}});
        let forbidden = |path: &str, what: &str| {
            (
                format!("{PREFIX}.properties[spec]{path}"),
                "FieldValueForbidden",
                format!("Forbidden: {what}"),
            )
        };
        assert_eq!(
        check_fields(&schema),
        [
            forbidden(".properties[a].$ref", "$ref is not supported by bosun"),
            (
                format!("{PREFIX}.properties[spec].properties[a].type"),
                "FieldValueRequired",
                "Required value: must not be empty for specified object fields".to_owned()
            ),
            forbidden(
                ".properties[b].patternProperties",
                "patternProperties is not supported by bosun"
            ),
            forbidden(
                ".properties[c].uniqueItems",
                "uniqueItems cannot be set to true since the runtime complexity becomes quadratic"
            ),
        ]
    );
    }

    #[test]
    fn structural_rules_are_enforced() {
        assert_eq!(
            check_fields(&json!({"properties": {}})),
            [(
                format!("{PREFIX}.type"),
                "FieldValueRequired",
                "Required value: must not be empty at the root".to_owned()
            ),]
        );
        assert_eq!(
            check_fields(&json!({"type": "string"}))[0].2,
            "Invalid value: \"string\": must be object at the root"
        );
        let schema = json!({"type": "object", "properties": {
            "list": {"type": "array", "items": [{"type": "string"}]},
            "map": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}},
            "free": {"x-kubernetes-preserve-unknown-fields": true},
            "port": {"x-kubernetes-int-or-string": true},
            "kind": {"type": "strin"},
            "re": {"type": "string", "pattern": "(["},
            "nested": {"type": "object", "properties": {"x": {"items": {"type": "string"}}}}
        }});
        let fields = check_fields(&schema);
        let texts: Vec<(&str, &str)> = fields
            .iter()
            .map(|(f, _, m)| (f.as_str(), m.as_str()))
            .collect();
        let p = |suffix: &str| format!("{PREFIX}.properties[{suffix}");
        assert_eq!(texts.len(), 5, "{texts:#?}");
        assert_eq!(texts[0], (p("kind].type").as_str(),
        "Unsupported value: \"strin\": supported values: \"array\", \"boolean\", \"integer\", \"number\", \"object\", \"string\""));
        assert_eq!(
            texts[1],
            (
                p("list].items").as_str(),
                "Forbidden: items must be a schema object and not an array"
            )
        );
        assert_eq!(
            texts[2],
            (
                p("map].additionalProperties").as_str(),
                "Forbidden: additionalProperties and properties are mutual exclusive"
            )
        );
        assert_eq!(
            texts[3],
            (
                p("nested].properties[x].type").as_str(),
                "Required value: must not be empty for specified object fields"
            )
        );
        assert_eq!(texts[4].0, p("re].pattern"));
        assert!(
            texts[4]
                .1
                .starts_with("Invalid value: \"([\": must be a valid regular expression"),
            "{}",
            texts[4].1
        );
    }

    #[test]
    fn defaults_must_validate_against_their_schema() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "size": {"type": "integer", "default": "big"},
            "mode": {"type": "string", "enum": ["a"], "default": "b"},
            "inner": {"type": "object", "default": {"x": 1}, "properties": {"y": {"type": "integer"}}}
        }}}});
        let fields = check_fields(&schema);
        let texts: Vec<(&str, &str)> = fields
            .iter()
            .map(|(f, _, m)| (f.as_str(), m.as_str()))
            .collect();
        let base = format!("{PREFIX}.properties[spec].properties");
        assert_eq!(
        texts,
        [
            (
                format!("{base}[inner].default").as_str(),
                "Invalid value: {\"x\":1}: must not have unknown fields, got: default.x"
            ),
            (
                format!("{base}[mode].default").as_str(),
                "Unsupported value: \"b\": supported values: \"a\""
            ),
            (
                format!("{base}[size].default").as_str(),
                "Invalid value: \"string\": default in body must be of type integer: \"string\""
            ),
        ]
    );
    }

    #[test]
    fn root_metadata_may_only_declare_name_and_generate_name() {
        let schema = json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {
        "name": {"type": "string"}, "labels": {"type": "object"}}}}});
        assert_eq!(check_fields(&schema), [(
        format!("{PREFIX}.properties[metadata]"),
        "FieldValueForbidden",
        "Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified".to_owned()
    )]);
    }

    #[test]
    fn list_map_needs_keys() {
        let schema = json!({"type": "object", "properties": {"l": {"type": "array", "x-kubernetes-list-type": "map",
                                                           "items": {"type": "object"}}}});
        assert_eq!(
            check_fields(&schema),
            [(
                format!("{PREFIX}.properties[l].x-kubernetes-list-map-keys"),
                "FieldValueRequired",
                "Required value: must not be empty if x-kubernetes-list-type is map".to_owned()
            )]
        );
    }
}
