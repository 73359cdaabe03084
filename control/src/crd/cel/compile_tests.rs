use serde_json::{json, Value};

use super::super::{check, on_cel_thread, validate, Rules};
use crate::status::FieldCause;

const PREFIX: &str = "spec.validation.openAPIV3Schema";

fn texts(causes: &[FieldCause]) -> Vec<String> {
    causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect()
}

fn run(schema: &Value, object: &Value, old: Option<&Value>) -> Vec<String> {
    assert_eq!(texts(&check(schema, PREFIX)), Vec::<String>::new());
    let rules = Rules::new(schema);
    let mut causes = Vec::new();
    validate(&rules, schema, object, old, &mut causes);
    texts(&causes)
}

fn widget_schema() -> Value {
    json!({"type": "object",
        "x-kubernetes-validations": [{"rule": "self.metadata.name.startsWith('w')",
            "message": "names start with w"}],
        "properties": {
        "spec": {"type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.minReplicas <= self.maxReplicas",
                 "messageExpression": "'minReplicas (' + string(self.minReplicas) + ') is above maxReplicas'"},
                {"rule": "!has(self.colour) || self.colour != 'red'", "reason": "FieldValueForbidden",
                 "fieldPath": ".colour", "message": "red is taken"},
                {"rule": "self.mode == oldSelf.mode", "message": "mode is immutable"}],
            "properties": {
                "minReplicas": {"type": "integer"},
                "maxReplicas": {"type": "integer"},
                "colour": {"type": "string", "maxLength": 16},
                "mode": {"type": "string", "maxLength": 16},
                "ports": {"type": "array", "maxItems": 8, "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object",
                        "x-kubernetes-validations": [{"rule": "self.port == oldSelf.port",
                            "message": "a named port keeps its number"}],
                        "properties": {"name": {"type": "string", "maxLength": 15},
                                       "port": {"type": "integer"}}}},
                "labels": {"type": "object", "maxProperties": 4,
                    "additionalProperties": {"type": "string", "maxLength": 63,
                        "x-kubernetes-validations": [{"rule": "self.size() > 0", "message": "empty"}]}}}}}})
}

fn widget(min: i64, max: i64) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"},
        "spec": {"minReplicas": min, "maxReplicas": max, "mode": "fast",
            "ports": [{"name": "http", "port": 80}]}})
}

#[test]
fn true_rules_pass_and_false_ones_are_named_as_kube_does() {
    let schema = widget_schema();
    assert_eq!(run(&schema, &widget(1, 3), None), Vec::<String>::new());
    assert_eq!(
        run(&schema, &widget(5, 3), None),
        ["spec: Invalid value: \"object\": minReplicas (5) is above maxReplicas"]
    );
    let mut red = widget(1, 3);
    red["spec"]["colour"] = json!("red");
    red["metadata"]["name"] = json!("x1");
    red["spec"]["labels"] = json!({"team": ""});
    assert_eq!(
        run(&schema, &red, None),
        [
            "<nil>: Invalid value: \"object\": names start with w",
            "spec.colour: Forbidden: red is taken",
            "spec.labels[team]: Invalid value: \"string\": empty",
        ]
    );
}

#[test]
fn transition_rules_compare_with_the_stored_object_where_it_can_be_found() {
    let schema = widget_schema();
    let old = widget(1, 3);
    let mut changed = widget(1, 3);
    changed["spec"]["mode"] = json!("slow");
    changed["spec"]["ports"] = json!([{"name": "http", "port": 81}, {"name": "admin", "port": 9}]);
    assert_eq!(
        run(&schema, &changed, Some(&old)),
        [
            "spec: Invalid value: \"object\": mode is immutable",
            "spec.ports[0]: Invalid value: \"object\": a named port keeps its number",
        ]
    );
    // on create there is no old value: transition rules do not run
    assert_eq!(run(&schema, &changed, None), Vec::<String>::new());
}

#[test]
fn evaluation_errors_name_the_rule() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
        "x-kubernetes-validations": [{"rule": "self.size > 1"}, {"rule": "self.size / self.zero > 1"}],
        "properties": {"size": {"type": "integer"}, "zero": {"type": "integer"}}}}});
    let object = json!({"spec": {"zero": 0}});
    assert_eq!(
        run(&schema, &object, None),
        [
            "spec: Invalid value: \"object\": no such key: size evaluating rule: self.size > 1",
            "spec: Invalid value: \"object\": no such key: size evaluating rule: self.size / self.zero > 1",
        ]
    );
    let object = json!({"spec": {"size": 4, "zero": 0}});
    assert_eq!(
        run(&schema, &object, None),
        ["spec: Invalid value: \"object\": division by zero evaluating rule: self.size / self.zero > 1"]
    );
}

#[test]
fn interpreter_panics_are_reported_not_crashes() {
    // a comprehension over a string makes the interpreter panic
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
        "properties": {"v": {"x-kubernetes-int-or-string": true,
            "x-kubernetes-validations": [{"rule": "self.all(c, c == 1)"}]}}}}});
    let object = json!({"spec": {"v": "abc"}});
    assert_eq!(
        run(&schema, &object, None),
        ["spec.v: Invalid value: \"\": internal error evaluating rule: self.all(c, c == 1)"]
    );
}

#[test]
fn bad_rules_are_refused_when_the_crd_is_written() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
        "x-kubernetes-validations": [
            {"rule": "self.a.lowerAsci() == 'x'"},
            {"rule": "self.a >"},
            {"rule": "self.a == 'x'", "message": "two\nlines", "reason": "Nope"},
            {"rule": "self.a == 'x'", "fieldPath": ".b"},
            {"rule": ""},
            {"rule": "true", "optionalOldSelf": true}],
        "properties": {"a": {"type": "string"},
            "l": {"type": "array", "items": {"type": "string",
                "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}},
            "u": {"type": "array", "items": {"type": "string"},
                "x-kubernetes-validations": [{"rule": "self.all(x, self.all(y, x == y || !x.contains(y)))"}]}}}}});
    let causes = texts(&check(&schema, PREFIX));
    let at = |tail: &str| format!("{PREFIX}.properties[spec]{tail}");
    let expect_start = [
        format!("{}: Invalid value: apiextensions.ValidationRule{{Rule:\"self.a.lowerAsci() == 'x'\"", at(".x-kubernetes-validations[0].rule")),
        format!("{}: Invalid value: apiextensions.ValidationRule{{Rule:\"self.a >\"", at(".x-kubernetes-validations[1].rule")),
        format!("{}: Invalid value: \"two\\nlines\": message must not contain line breaks", at(".x-kubernetes-validations[2].message")),
        format!("{}: Unsupported value: \"Nope\": supported values: ", at(".x-kubernetes-validations[2].reason")),
        format!("{}: Invalid value: \".b\": fieldPath must be a valid path: does not refer to a valid field", at(".x-kubernetes-validations[3].fieldPath")),
        format!("{}: Required value: rule is not specified", at(".x-kubernetes-validations[4].rule")),
        format!("{}: Forbidden: may not be set if oldSelf is not used in rule", at(".x-kubernetes-validations[5].optionalOldSelf")),
        format!("{}: Invalid value: apiextensions.ValidationRule{{Rule:\"self == oldSelf\"", at(".properties[l].items.x-kubernetes-validations[0].rule")),
        format!("{}: Forbidden: estimated rule cost exceeds budget by factor of ", at(".properties[u].x-kubernetes-validations[0].rule")),
    ];
    assert!(causes.len() >= expect_start.len(), "{causes:#?}");
    for expected in &expect_start {
        assert!(
            causes.iter().any(|c| c.starts_with(expected.as_str())),
            "missing {expected}\nin {causes:#?}"
        );
    }
    let all = causes.join("\n");
    assert!(all.contains("compilation failed: ERROR: <input>:1:8: undeclared reference to 'lowerAsci' (in container '')"), "{all}");
    assert!(
        all.contains("compilation failed: ERROR: <input>:1:9: Syntax error"),
        "{all}"
    );
    assert!(
        all.contains("oldSelf cannot be used on the uncorrelatable portion of the schema"),
        "{all}"
    );
}

#[test]
fn rules_under_junctors_are_refused_by_name() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
        "allOf": [{"x-kubernetes-validations": [{"rule": "true"}]}]}}});
    assert_eq!(
        texts(&check(&schema, PREFIX)),
        [format!("{PREFIX}.properties[spec].allOf: Forbidden: x-kubernetes-validations under allOf is not supported by bosun")]
    );
}

#[test]
fn deep_expressions_do_not_overflow_the_stack() {
    let rule = format!("self.n{} > 0", " + 1".repeat(3000));
    let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}},
        "x-kubernetes-validations": [{"rule": rule}]});
    assert_eq!(run(&schema, &json!({"n": 1}), None), Vec::<String>::new());
    let nested = format!("{}true{}", "(".repeat(200), ")".repeat(200));
    let schema = json!({"type": "object", "x-kubernetes-validations": [{"rule": nested}]});
    let causes = texts(&check(&schema, PREFIX));
    assert!(causes[0].contains("compilation failed"), "{causes:?}");
    assert!(on_cel_thread(|| 1).is_some());
}

#[test]
fn fields_the_schema_does_not_declare_are_compile_errors() {
    let schema = |rule: &str| {
        json!({"type": "object", "x-kubernetes-validations": [{"rule": rule}], "properties": {
            "spec": {"type": "object", "properties": {"replicas": {"type": "integer"},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "items": {"type": "array", "items": {"type": "object",
                    "properties": {"name": {"type": "string"}}}}}}}})
    };
    let problems = |rule: &str| texts(&check(&schema(rule), PREFIX)).join("\n");
    for fine in [
        "self.spec.replicas > 0",
        "has(self.spec.extra.anything)",
        "self.spec.labels.team == 'a'",
        "self.spec.items.all(i, i.name != '')",
        "self.metadata.name.startsWith('a') && self.kind == 'W' && self.apiVersion != ''",
    ] {
        assert_eq!(problems(fine), "", "{fine}");
    }
    let typo = problems("self.spec.replicaz > 0");
    assert!(
        typo.contains("compilation failed: ERROR: <input>:1:11: undefined field 'replicaz'"),
        "{typo}"
    );
    assert!(problems("self.spec.items.all(i, i.nmae != '')").contains("undefined field 'nmae'"));
    assert!(problems("has(self.metadata.labels)").contains("undefined field 'labels'"));
}

#[test]
fn unchanged_values_are_not_checked_again_on_update() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
        "x-kubernetes-validations": [{"rule": "self.size < 10", "message": "too big"}],
        "properties": {"size": {"type": "integer"}, "note": {"type": "string"}}}}});
    let old = json!({"spec": {"size": 20}});
    // the stored object breaks the (newer) rule; an update elsewhere may keep it
    let same_spec = json!({"metadata": {"labels": {"a": "b"}}, "spec": {"size": 20}});
    assert_eq!(run(&schema, &same_spec, Some(&old)), Vec::<String>::new());
    let changed = json!({"spec": {"size": 21}});
    assert_eq!(
        run(&schema, &changed, Some(&old)),
        ["spec: Invalid value: \"object\": too big"]
    );
}

#[test]
fn optional_old_self_rules_run_on_create_too() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
        "x-kubernetes-validations": [{"rule": "self.size >= oldSelf.orValue(self).size && (oldSelf.hasValue() || self.size < 100)",
            "optionalOldSelf": true, "message": "size may not shrink, nor start at 100"}],
        "properties": {"size": {"type": "integer"}}}}});
    let big = json!({"spec": {"size": 100}});
    let small = json!({"spec": {"size": 5}});
    let shrunk = json!({"spec": {"size": 4}});
    // create: oldSelf is an empty optional, the rule runs
    assert_eq!(
        run(&schema, &big, None),
        ["spec: Invalid value: \"object\": size may not shrink, nor start at 100"]
    );
    assert_eq!(run(&schema, &small, None), Vec::<String>::new());
    assert_eq!(run(&schema, &big, Some(&small)), Vec::<String>::new());
    assert_eq!(
        run(&schema, &shrunk, Some(&small)),
        ["spec: Invalid value: \"object\": size may not shrink, nor start at 100"]
    );
}

#[test]
fn random_rules_never_panic_the_checker_or_the_interpreter() {
    #[rustfmt::skip]
    const TOKENS: &[&str] = &[
        "self", ".", "a", "(", ")", "[", "]", "{", "}", ",", ":", "?", "1", "2u", "3.0", "'s'",
        "+", "-", "*", "/", "%", "==", "!=", "<", "&&", "||", "!", " in ", "has", ".all",
        ".exists", ".map", "size", "x", "null", "true", "Foo", "[?", ".exists_one", "oldSelf",
        "'''", "\"", "\\", "é", "1e", " ",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let schema_of = |rule: String| {
        json!({"type": "object", "x-kubernetes-validations": [{"rule": rule}],
            "properties": {"a": {"type": "string", "maxLength": 8}}})
    };
    for _ in 0..2000 {
        let length = (next() % 10 + 1) as usize;
        let rule: String = (0..length)
            .map(|_| TOKENS[(next() % TOKENS.len() as u64) as usize])
            .collect();
        let schema = schema_of(rule);
        // a rule either is refused with causes or runs; neither path may panic
        let causes = check(&schema, PREFIX);
        if causes.is_empty() {
            let mut found = Vec::new();
            validate(
                &Rules::new(&schema),
                &schema,
                &json!({"a": "xy"}),
                None,
                &mut found,
            );
        }
    }
}

#[test]
fn operators_on_mismatched_types_are_compile_errors() {
    let schema = |rule: &str| {
        json!({"type": "object", "x-kubernetes-validations": [{"rule": rule}], "properties": {
            "n": {"type": "integer"}, "s": {"type": "string"}, "x": {"type": "number"},
            "v": {"x-kubernetes-int-or-string": true}}})
    };
    let problems = |rule: &str| texts(&check(&schema(rule), PREFIX)).join("\n");
    for fine in [
        "self.n > 1",
        "self.x > 1",
        "self.s == 'a'",
        "self.v == 1 || self.v == 'a'",
        "size(self.s) < self.n",
        "self.n + 1 > 2",
    ] {
        assert_eq!(problems(fine), "", "{fine}");
    }
    let wrong = problems("self.n > 'a'");
    assert!(
        wrong.contains("compilation failed: ERROR: <input>:1:8: found no matching overload for '_>_' applied to '(int, string)'"),
        "{wrong}"
    );
    assert!(problems("self.s == 1").contains("'_==_' applied to '(string, int)'"));
}
