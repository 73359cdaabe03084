use serde_json::{json, Value};

use super::{apply_defaults, check_schema, prune, validate};
use crate::status::FieldCause;

/// A Widget CRD schema in the style controller-gen writes (spec/status, enums, maps,
/// int-or-string, list-map, embedded resource, preserve-unknown-fields).
pub(super) fn widget_schema() -> Value {
    json!({
        "type": "object",
        "description": "Widget is a test resource.",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "required": ["size"],
                "properties": {
                    "size": {"type": "integer", "format": "int32", "minimum": 0, "maximum": 10},
                    "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
                    "name": {"type": "string", "minLength": 3, "maxLength": 5, "pattern": "^a+$"},
                    "port": {
                        "anyOf": [{"type": "integer"}, {"type": "string"}],
                        "x-kubernetes-int-or-string": true
                    },
                    "ratio": {"type": "number", "multipleOf": 0.5, "exclusiveMaximum": true, "maximum": 2},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "limits": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "properties": {"max": {"type": "integer", "default": 5}}
                        }
                    },
                    "ports": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "maxItems": 3,
                        "items": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {
                                "name": {"type": "string"},
                                "protocol": {"type": "string", "default": "TCP"}
                            }
                        }
                    },
                    "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                    "template": {
                        "type": "object",
                        "x-kubernetes-embedded-resource": true,
                        "x-kubernetes-preserve-unknown-fields": true
                    },
                    "extra": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": true,
                        "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}}
                    },
                    "note": {"type": "string", "nullable": true},
                    "created": {"type": "string", "format": "date-time"},
                    "secret": {"type": "string", "format": "byte"}
                }
            },
            "status": {
                "type": "object",
                "properties": {
                    "conditions": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"type": {"type": "string"}, "status": {"type": "string"}}
                        }
                    }
                }
            }
        }
    })
}

fn only_cause(object: Value, schema: &Value) -> FieldCause {
    let causes = validate(&object, schema);
    assert_eq!(causes.len(), 1, "{causes:#?}");
    causes.into_iter().next().unwrap()
}

fn spec_cause(spec: Value) -> FieldCause {
    let mut spec = spec;
    spec["size"] = spec.get("size").cloned().unwrap_or(json!(1));
    only_cause(json!({"spec": spec}), &widget_schema())
}

fn assert_cause(cause: &FieldCause, field: &str, reason: &str, message: &str) {
    assert_eq!(
        (cause.field.as_str(), cause.reason, cause.message.as_str()),
        (field, reason, message)
    );
}

#[test]
fn prune_drops_undeclared_fields_and_reports_kube_paths() {
    let mut object = json!({
        "apiVersion": "x/v1", "kind": "Widget", "metadata": {"name": "w", "odd": 1},
        "junk": true,
        "spec": {
            "size": 1, "bogus": 2,
            "ports": [{"name": "a", "zz": 1}, {"name": "b"}],
            "limits": {"cpu": {"max": 1, "min": 0}},
            "labels": {"a": "b"},
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"x": 1}, "spec": {"any": 1}},
            "extra": {"free": {"deep": 1}, "known": {"a": "x", "b": "y"}}
        },
        "status": {"conditions": [{"type": "Ready", "reason": "x"}]}
    });
    let dropped = prune(&mut object, &widget_schema());
    assert_eq!(
        dropped,
        [
            "junk",
            "spec.bogus",
            "spec.extra.known.b",
            "spec.limits.cpu.min",
            "spec.ports[0].zz",
            "status.conditions[0].reason"
        ]
    );
    assert_eq!(
        object,
        json!({
            "apiVersion": "x/v1", "kind": "Widget", "metadata": {"name": "w", "odd": 1},
            "spec": {
                "size": 1,
                "ports": [{"name": "a"}, {"name": "b"}],
                "limits": {"cpu": {"max": 1}},
                "labels": {"a": "b"},
                "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"x": 1}, "spec": {"any": 1}},
                "extra": {"free": {"deep": 1}, "known": {"a": "x"}}
            },
            "status": {"conditions": [{"type": "Ready"}]}
        })
    );
}

#[test]
fn prune_keeps_meta_of_embedded_resources_only() {
    let schema = json!({"type": "object", "properties": {
        "embedded": {"type": "object", "x-kubernetes-embedded-resource": true,
                     "properties": {"spec": {"type": "object"}}},
        "plain": {"type": "object", "properties": {"spec": {"type": "object"}}}
    }});
    let mut object = json!({
        "embedded": {"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": {"x": 1}, "other": 1},
        "plain": {"apiVersion": "v1", "kind": "Pod", "spec": {}}
    });
    let dropped = prune(&mut object, &schema);
    assert_eq!(
        dropped,
        [
            "embedded.other",
            "embedded.spec.x",
            "plain.apiVersion",
            "plain.kind"
        ]
    );
    assert_eq!(
        object["embedded"],
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": {}})
    );
}

#[test]
fn prune_empties_values_without_schema() {
    let schema = json!({"type": "object", "properties": {"list": {"type": "array"}}});
    let mut object = json!({"list": [{"a": 1}, 2]});
    assert_eq!(prune(&mut object, &schema), ["list[0].a"]);
    assert_eq!(object, json!({"list": [{}, 2]}));
}

#[test]
fn defaults_fill_missing_fields_top_down() {
    let schema = json!({"type": "object", "properties": {"spec": {
        "type": "object",
        "default": {},
        "properties": {
            "replicas": {"type": "integer", "default": 1},
            "strategy": {
                "type": "object",
                "default": {"kind": "Rolling"},
                "properties": {"kind": {"type": "string"}, "surge": {"type": "integer", "default": 25}}
            }
        }
    }}});
    let mut object = json!({"apiVersion": "x/v1", "kind": "W", "metadata": {}});
    apply_defaults(&mut object, &schema);
    assert_eq!(
        object["spec"],
        json!({"replicas": 1, "strategy": {"kind": "Rolling", "surge": 25}})
    );
    let mut kept = json!({"spec": {"replicas": 4}});
    apply_defaults(&mut kept, &schema);
    assert_eq!(kept["spec"]["replicas"], 4);
}

#[test]
fn defaults_apply_in_list_items_and_map_values() {
    let mut object = json!({"spec": {"size": 1, "ports": [{"name": "a"}, {"name": "b", "protocol": "UDP"}],
                                     "limits": {"cpu": {}, "mem": {"max": 9}}}});
    apply_defaults(&mut object, &widget_schema());
    assert_eq!(
        object["spec"]["ports"],
        json!([{"name": "a", "protocol": "TCP"}, {"name": "b", "protocol": "UDP"}])
    );
    assert_eq!(
        object["spec"]["limits"],
        json!({"cpu": {"max": 5}, "mem": {"max": 9}})
    );
    assert_eq!(object["spec"]["color"], "red");
}

#[test]
fn nulls_are_defaulted_removed_or_kept() {
    let mut object = json!({"spec": {"size": 1, "color": null, "name": null, "note": null,
                                     "limits": {"cpu": null}, "tags": [null]}});
    apply_defaults(&mut object, &widget_schema());
    let spec = &object["spec"];
    assert_eq!(
        spec["color"], "red",
        "non-nullable null with a default is defaulted"
    );
    assert!(
        spec.get("name").is_none(),
        "non-nullable null without default is removed"
    );
    assert_eq!(spec["note"], Value::Null, "nullable null stays");
    assert!(spec["limits"].get("cpu").is_none());
    assert_eq!(spec["tags"], json!([null]), "list items are not removed");
    let cause = only_cause(object, &widget_schema());
    assert_cause(
        &cause,
        "spec.tags[0]",
        "FieldValueTypeInvalid",
        "Invalid value: \"null\": spec.tags[0] in body must be of type string: \"null\"",
    );
}

#[test]
fn a_valid_widget_has_no_causes() {
    let object = json!({
        "apiVersion": "x/v1", "kind": "Widget", "metadata": {"name": 5},
        "spec": {"size": 3, "color": "blue", "name": "aaa", "port": "http", "ratio": 1.5,
                 "labels": {"a": "b"}, "ports": [{"name": "a"}, {"name": "b"}], "tags": ["x", "y"],
                 "template": {"apiVersion": "v1", "kind": "Pod"}, "note": null,
                 "created": "2024-05-01T10:00:00.5+02:00", "secret": "aGk="},
        "status": {"conditions": []}
    });
    assert_eq!(validate(&object, &widget_schema()), []);
    assert_eq!(
        validate(
            &json!({"spec": {"size": 2.0, "port": 80}}),
            &widget_schema()
        ),
        []
    );
}

#[test]
fn type_errors_name_the_json_type() {
    let cause = spec_cause(json!({"size": "string"}));
    assert_cause(
        &cause,
        "spec.size",
        "FieldValueTypeInvalid",
        "Invalid value: \"string\": spec.size in body must be of type integer: \"string\"",
    );
    let fraction = spec_cause(json!({"size": 1.5}));
    assert_eq!(
        fraction.message,
        "Invalid value: \"number\": spec.size in body must be of type integer: \"number\""
    );
    let port = spec_cause(json!({"port": true}));
    assert_cause(
        &port,
        "spec.port",
        "FieldValueTypeInvalid",
        "Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\"",
    );
    let map_value = spec_cause(json!({"labels": {"k": 1}}));
    assert_eq!(map_value.field, "spec.labels.k");
    let null = spec_cause(json!({"name": null}));
    assert_eq!(
        null.message,
        "Invalid value: \"null\": spec.name in body must be of type string: \"null\""
    );
}

#[test]
fn required_fields_are_reported() {
    let causes = validate(&json!({"spec": {"ports": [{}]}}), &widget_schema());
    assert_eq!(
        causes,
        [
            FieldCause {
                field: "spec.ports[0].name".into(),
                reason: "FieldValueRequired",
                message: "Required value".into()
            },
            FieldCause {
                field: "spec.size".into(),
                reason: "FieldValueRequired",
                message: "Required value".into()
            },
        ]
    );
}

#[test]
fn enums_list_supported_values() {
    let cause = spec_cause(json!({"color": "pink"}));
    assert_cause(
        &cause,
        "spec.color",
        "FieldValueNotSupported",
        "Unsupported value: \"pink\": supported values: \"red\", \"blue\"",
    );
    let numbers =
        json!({"type": "object", "properties": {"n": {"type": "integer", "enum": [1, 2]}}});
    let cause = only_cause(json!({"n": 3}), &numbers);
    assert_eq!(
        cause.message,
        "Unsupported value: 3: supported values: \"1\", \"2\""
    );
}

#[test]
fn numeric_bounds_use_kube_texts() {
    let low = spec_cause(json!({"size": -1}));
    assert_cause(
        &low,
        "spec.size",
        "FieldValueInvalid",
        "Invalid value: -1: spec.size in body should be greater than or equal to 0",
    );
    assert_eq!(
        spec_cause(json!({"size": 11})).message,
        "Invalid value: 11: spec.size in body should be less than or equal to 10"
    );
    assert_eq!(
        spec_cause(json!({"ratio": 2})).message,
        "Invalid value: 2: spec.ratio in body should be less than 2"
    );
    assert_eq!(
        spec_cause(json!({"ratio": 0.75})).message,
        "Invalid value: 0.75: spec.ratio in body should be a multiple of 0.5"
    );
    let exclusive_min = json!({"type": "object", "properties": {"n": {"type": "number", "minimum": 0, "exclusiveMinimum": true}}});
    assert_eq!(
        only_cause(json!({"n": 0}), &exclusive_min).message,
        "Invalid value: 0: n in body should be greater than 0"
    );
    let int_multiple =
        json!({"type": "object", "properties": {"n": {"type": "integer", "multipleOf": 3}}});
    assert_eq!(
        only_cause(json!({"n": 7}), &int_multiple).message,
        "Invalid value: 7: n in body should be a multiple of 3"
    );
    assert_eq!(validate(&json!({"n": 9}), &int_multiple), []);
}

#[test]
fn string_rules_use_kube_texts() {
    assert_cause(
        &spec_cause(json!({"name": "aa"})),
        "spec.name",
        "FieldValueInvalid",
        "Invalid value: \"aa\": spec.name in body should be at least 3 chars long",
    );
    assert_cause(
        &spec_cause(json!({"name": "aaaaaa"})),
        "spec.name",
        "FieldValueTooLong",
        "Too long: may not be more than 5 bytes",
    );
    assert_cause(
        &spec_cause(json!({"name": "abc"})),
        "spec.name",
        "FieldValueInvalid",
        "Invalid value: \"abc\": spec.name in body should match '^a+$'",
    );
}

#[test]
fn formats_are_checked_cheaply() {
    assert_cause(&spec_cause(json!({"created": "yesterday"})), "spec.created", "FieldValueTypeInvalid",
        "Invalid value: \"yesterday\": spec.created in body must be of type date-time: \"yesterday\"");
    assert_eq!(
        spec_cause(json!({"secret": "a*b="})).message,
        "Invalid value: \"a*b=\": spec.secret in body must be of type byte: \"a*b=\""
    );
    let wide =
        json!({"type": "object", "properties": {"n": {"type": "integer", "format": "int32"}}});
    assert_eq!(
        only_cause(json!({"n": 3_000_000_000_i64}), &wide).message,
        "Invalid value: 3000000000: n in body must be of type int32: \"3000000000\""
    );
    let odd = json!({"type": "object", "properties": {"s": {"type": "string", "format": "email"}}});
    assert_eq!(validate(&json!({"s": "nope"}), &odd), []);
}

#[test]
fn address_and_identifier_formats_are_checked() {
    let holds = |format: &str, text: &str| {
        let schema =
            json!({"type": "object", "properties": {"s": {"type": "string", "format": format}}});
        validate(&json!({"s": text}), &schema).is_empty()
    };
    assert!(holds("ipv4", "10.0.0.3") && !holds("ipv4", "10.0.0.300") && !holds("ipv4", "::1"));
    assert!(holds("ipv6", "fd00::1") && !holds("ipv6", "10.0.0.3"));
    assert!(
        holds("cidr", "10.0.0.0/8") && holds("cidr", "fd00::/64") && !holds("cidr", "10.0.0.0/33")
    );
    assert!(holds("uuid", "5f0c7ad4-8a4e-4a4b-9f83-8b3f3f0a6c1e"));
    assert!(
        holds("uuid4", "5f0c7ad4-8a4e-4a4b-9f83-8b3f3f0a6c1e")
            && !holds("uuid3", "5f0c7ad4-8a4e-4a4b-9f83-8b3f3f0a6c1e")
    );
    assert!(holds("date", "2024-02-29") && !holds("date", "2024-02-30"));
    assert!(holds("mac", "00:1a:2b:3c:4d:5e") && !holds("mac", "00:1a:2b"));
}

#[test]
fn list_rules_use_kube_texts() {
    let many =
        spec_cause(json!({"ports": [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}]}));
    assert_cause(
        &many,
        "spec.ports",
        "FieldValueTooMany",
        "Too many: 4: must have at most 3 items",
    );
    let duplicate = spec_cause(json!({"ports": [{"name": "a"}, {"name": "a", "protocol": "UDP"}]}));
    assert_cause(
        &duplicate,
        "spec.ports[1]",
        "FieldValueDuplicate",
        "Duplicate value: {\"name\":\"a\"}",
    );
    let set = spec_cause(json!({"tags": ["x", "y", "x"]}));
    assert_cause(
        &set,
        "spec.tags[2]",
        "FieldValueDuplicate",
        "Duplicate value: \"x\"",
    );
    let schema = json!({"type": "object", "properties": {"l": {"type": "array", "minItems": 2, "uniqueItems": true, "items": {"type": "integer"}}}});
    assert_cause(
        &only_cause(json!({"l": [1]}), &schema),
        "l",
        "FieldValueInvalid",
        "Invalid value: 1: l in body should have at least 2 items",
    );
    assert_eq!(
        only_cause(json!({"l": [1, 1]}), &schema).message,
        "Invalid value: \"\": l in body shouldn't contain duplicates"
    );
}

#[test]
fn property_counts_use_kube_texts() {
    let schema = json!({"type": "object", "properties": {"m": {"type": "object", "minProperties": 1, "maxProperties": 2,
                                                             "additionalProperties": {"type": "string"}}}});
    assert_eq!(
        only_cause(json!({"m": {}}), &schema).message,
        "Invalid value: 0: m in body should have at least 1 properties"
    );
    let many = only_cause(json!({"m": {"a": "", "b": "", "c": ""}}), &schema);
    assert_cause(
        &many,
        "m",
        "FieldValueTooMany",
        "Too many: 3: must have at most 2 items",
    );
}

#[test]
fn embedded_resources_need_api_version_and_kind() {
    let causes = validate(
        &json!({"spec": {"size": 1, "template": {"kind": "", "metadata": 3}}}),
        &widget_schema(),
    );
    let fields: Vec<(&str, &str)> = causes
        .iter()
        .map(|c| (c.field.as_str(), c.message.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            (
                "spec.template.apiVersion",
                "Required value: must not be empty"
            ),
            (
                "spec.template.kind",
                "Invalid value: \"\": must not be empty"
            ),
            (
                "spec.template.metadata",
                "Invalid value: \"integer\": must be of type object"
            ),
        ]
    );
}

#[test]
fn junctors_validate_only() {
    let schema = json!({"type": "object", "properties": {"v": {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
        "oneOf": [{"required": ["a"]}, {"required": ["b"]}],
        "not": {"required": ["c"]}
    }}});
    assert_eq!(validate(&json!({"v": {"a": "x"}}), &schema), []);
    assert_eq!(
        only_cause(json!({"v": {"a": "x", "b": "y"}}), &schema).message,
        "Invalid value: \"\": v must validate one and only one schema (oneOf)"
    );
    let mut none = json!({"v": {}});
    assert_eq!(prune(&mut none, &schema), Vec::<String>::new());
    assert_eq!(
        only_cause(none, &schema).message,
        "Invalid value: \"\": v must validate one and only one schema (oneOf)"
    );
    let all = json!({"type": "object", "properties": {"n": {"type": "integer", "allOf": [{"minimum": 2}]}}});
    let causes = validate(&json!({"n": 1}), &all);
    assert_eq!(causes.len(), 2);
    assert_eq!(
        causes[1].message,
        "Invalid value: \"\": n must validate all the schemas (allOf)"
    );
}

#[test]
fn root_meta_is_not_validated() {
    let schema = json!({"type": "object", "required": ["metadata", "spec"],
                        "properties": {"metadata": {"type": "string"}, "spec": {"type": "object"}}});
    let cause = only_cause(json!({"metadata": {}}), &schema);
    assert_cause(&cause, "spec", "FieldValueRequired", "Required value");
}

#[test]
fn causes_are_capped_and_depth_is_guarded() {
    let schema = json!({"type": "object", "properties": {"l": {"type": "array", "items": {"type": "string"}}}});
    let object = json!({"l": vec![1; 500]});
    assert_eq!(validate(&object, &schema).len(), 100);

    let mut deep_schema = json!({"type": "string"});
    let mut deep_object = json!("x");
    for _ in 0..150 {
        deep_schema = json!({"type": "object", "properties": {"n": deep_schema}});
        deep_object = json!({"n": deep_object});
    }
    let causes = validate(&deep_object, &deep_schema);
    assert_eq!(causes.len(), 1);
    assert!(
        causes[0].message.contains("nested deeper than 100 levels"),
        "{causes:?}"
    );
    assert!(prune(&mut deep_object.clone(), &deep_schema).is_empty());
    apply_defaults(&mut deep_object, &deep_schema);
    let checked = check_schema(&deep_schema, "s");
    assert!(
        checked.iter().any(|c| c.message.contains("nested deeper")),
        "{checked:?}"
    );
}
