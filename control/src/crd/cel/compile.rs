//! A version schema's `x-kubernetes-validations` compiled into a tree that parallels the
//! schema (only the branches that hold rules), and the checks kube makes of each rule when a
//! CRD is written: the rule parses, names only functions and variables CEL-for-Kubernetes
//! has, `messageExpression` likewise, `message` has no line break, `reason` and `fieldPath`
//! are valid, `oldSelf` is used only where an old value can be found (`optionalOldSelf` only
//! by a rule naming it), and the estimated cost
//! stays within kube's limits (`cost`).

use cel::common::ast::{EntryExpr, Expr};
use cel::{IdedExpr, Program};
use serde_json::Value;

use super::cost::{self, Shapes};
use super::library;
use crate::status::FieldCause;

/// The longest rule or messageExpression bosun compiles (kube has no such limit; the CEL
/// parser recurses per operator and this keeps its stack bounded).
pub const MAX_SOURCE_BYTES: usize = 16 * 1024;

const REASONS: &[&str] = &[
    "FieldValueDuplicate",
    "FieldValueForbidden",
    "FieldValueInvalid",
    "FieldValueRequired",
];

/// Operators the parser produces and the interpreter evaluates (the optional-type ones are
/// left out: the interpreter has no optionals).
const OPERATORS: &[&str] = &[
    "_?_:_",
    "_&&_",
    "_||_",
    "!_",
    "_-_",
    "_+_",
    "_*_",
    "_/_",
    "_%_",
    "_==_",
    "_!=_",
    "_>=_",
    "_<=_",
    "_>_",
    "_<_",
    "-_",
    "_[_]",
    "@not_strictly_false",
    "@in",
];

/// One compiled rule.
pub struct Rule {
    pub text: String,
    pub message: Option<String>,
    pub message_expression: Option<(String, Program)>,
    pub reason: Option<String>,
    /// The rule's `fieldPath`, as a field path below the node (`spec.x` form, no leading dot).
    pub field_path: Option<String>,
    pub uses_old_self: bool,
    /// `optionalOldSelf`: the rule also runs without an old value, `oldSelf` an optional.
    pub optional_old_self: bool,
    /// The program, or why it did not compile (kube: "rule compile error").
    pub program: Result<Program, String>,
}

/// The rules of one schema node and the branches below it that hold rules.
pub struct Node {
    pub schema: Value,
    pub resource_root: bool,
    pub rules: Vec<Rule>,
    pub properties: Vec<(String, Node)>,
    pub items: Option<Box<Node>>,
    pub additional: Option<Box<Node>>,
}

/// Builds the tree of `schema` (a version's `openAPIV3Schema`), collecting what kube would
/// refuse in `causes` under `prefix` (`spec.versions[0].schema.openAPIV3Schema`).
pub fn build(schema: &Value, prefix: &str, causes: &mut Vec<FieldCause>) -> Option<Node> {
    let mut builder = Builder {
        causes,
        total_cost: 0.0,
        costly: Vec::new(),
    };
    let node = builder.node(schema, prefix, true, true, 1.0, 0);
    if builder.total_cost > cost::CRD_LIMIT {
        let factor = builder.total_cost / cost::CRD_LIMIT;
        for field in std::mem::take(&mut builder.costly) {
            builder.causes.push(FieldCause::forbidden(
                &field,
                "contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema",
            ));
        }
        builder.causes.push(FieldCause::forbidden(
            prefix,
            &format!(
                "x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema exceeds budget by factor of {}x {}",
                cost::factor(factor),
                cost::HINT
            ),
        ));
    }
    node
}

struct Builder<'a> {
    causes: &'a mut Vec<FieldCause>,
    /// The sum of every rule's estimated cost times the number of values it may run on.
    total_cost: f64,
    /// Rules with a cost, for the message when the total is over the limit.
    costly: Vec<String>,
}

impl Builder<'_> {
    fn node(
        &mut self,
        schema: &Value,
        path: &str,
        resource_root: bool,
        correlatable: bool,
        cardinality: f64,
        depth: usize,
    ) -> Option<Node> {
        if depth > 100 || !schema.is_object() {
            return None;
        }
        for junctor in ["allOf", "anyOf", "oneOf", "not"] {
            if let Some(under) = schema.get(junctor) {
                if mentions_rules(under, 0) {
                    self.causes.push(FieldCause::forbidden(
                        &format!("{path}.{junctor}"),
                        &format!(
                            "x-kubernetes-validations under {junctor} is not supported by bosun"
                        ),
                    ));
                }
            }
        }
        let mut rules = Vec::new();
        if let Some(list) = schema.get("x-kubernetes-validations") {
            let field = format!("{path}.x-kubernetes-validations");
            match list.as_array() {
                Some(list) => {
                    for (index, rule) in list.iter().enumerate() {
                        let at = format!("{field}[{index}]");
                        let shapes = Shapes::new(schema, resource_root);
                        if let Some(rule) =
                            self.rule(rule, &at, schema, correlatable, cardinality, &shapes)
                        {
                            rules.push(rule);
                        }
                    }
                }
                None => self.causes.push(FieldCause::invalid(
                    &field,
                    &list.to_string(),
                    "must be a list of validation rules",
                )),
            }
        }
        let atomic_map = schema["x-kubernetes-map-type"] == "atomic";
        let mut properties = Vec::new();
        if let Some(declared) = schema["properties"].as_object() {
            for (name, sub) in declared {
                let sub_path = format!("{path}.properties[{name}]");
                let embedded = sub["x-kubernetes-embedded-resource"] == true;
                if let Some(node) = self.node(
                    sub,
                    &sub_path,
                    embedded,
                    correlatable && !atomic_map,
                    cardinality,
                    depth + 1,
                ) {
                    properties.push((name.clone(), node));
                }
            }
        }
        let items = schema
            .get("items")
            .filter(|s| s.is_object())
            .and_then(|sub| {
                let keyed = schema["x-kubernetes-list-type"] == "map";
                let count = cardinality * cost::max_items(schema);
                let embedded = sub["x-kubernetes-embedded-resource"] == true;
                self.node(
                    sub,
                    &format!("{path}.items"),
                    embedded,
                    correlatable && keyed,
                    count,
                    depth + 1,
                )
            });
        let additional = schema
            .get("additionalProperties")
            .filter(|s| s.is_object())
            .and_then(|sub| {
                let count = cardinality * cost::max_properties(schema);
                let embedded = sub["x-kubernetes-embedded-resource"] == true;
                self.node(
                    sub,
                    &format!("{path}.additionalProperties"),
                    embedded,
                    correlatable && !atomic_map,
                    count,
                    depth + 1,
                )
            });
        if rules.is_empty() && properties.is_empty() && items.is_none() && additional.is_none() {
            return None;
        }
        Some(Node {
            schema: schema.clone(),
            resource_root,
            rules,
            properties,
            items: items.map(Box::new),
            additional: additional.map(Box::new),
        })
    }

    fn rule(
        &mut self,
        rule: &Value,
        at: &str,
        schema: &Value,
        correlatable: bool,
        cardinality: f64,
        shapes: &Shapes,
    ) -> Option<Rule> {
        let Some(fields) = rule.as_object() else {
            self.causes.push(FieldCause::invalid(
                at,
                &rule.to_string(),
                "must be a validation rule object",
            ));
            return None;
        };
        for key in fields.keys() {
            if !matches!(
                key.as_str(),
                "rule"
                    | "message"
                    | "messageExpression"
                    | "reason"
                    | "fieldPath"
                    | "optionalOldSelf"
            ) {
                self.causes.push(FieldCause::forbidden(
                    &format!("{at}.{key}"),
                    &format!("{key} is not supported by bosun"),
                ));
            }
        }
        let text = rule["rule"].as_str().unwrap_or("").to_owned();
        let rule_field = format!("{at}.rule");
        if text.trim().is_empty() {
            self.causes.push(
                FieldCause::required(&rule_field)
                    .with_message("Required value: rule is not specified"),
            );
            return None;
        }
        let message = rule["message"].as_str().map(str::to_owned);
        if let Some(message) = &message {
            let field = format!("{at}.message");
            if message.trim().is_empty() {
                self.causes.push(FieldCause::invalid(
                    &field,
                    &quoted(message),
                    "message must be non-empty if specified",
                ));
            } else if message.contains('\n') {
                self.causes.push(FieldCause::invalid(
                    &field,
                    &quoted(message),
                    "message must not contain line breaks",
                ));
            }
        }
        let reason = rule["reason"].as_str().map(str::to_owned);
        if let Some(reason) = &reason {
            if !REASONS.contains(&reason.as_str()) {
                let supported: Vec<String> = REASONS.iter().map(|r| quoted(r)).collect();
                self.causes.push(FieldCause {
                    field: format!("{at}.reason"),
                    reason: "FieldValueNotSupported",
                    message: format!(
                        "Unsupported value: {}: supported values: {}",
                        quoted(reason),
                        supported.join(", ")
                    ),
                });
            }
        }
        let field_path = match rule["fieldPath"].as_str().filter(|p| !p.is_empty()) {
            None => None,
            Some(path) => match field_path(path, schema) {
                Ok(normalized) => Some(normalized),
                Err(why) => {
                    self.causes.push(FieldCause::invalid(
                        &format!("{at}.fieldPath"),
                        &quoted(path),
                        &format!("fieldPath must be a valid path: {why}"),
                    ));
                    None
                }
            },
        };
        let shown = go_rule(rule);
        let program = compile(&text);
        let mut uses_old_self = false;
        match &program {
            Ok(program) => {
                uses_old_self = mentions(program.expression(), "oldSelf");
                let cost::Estimate {
                    cost: estimate,
                    undefined,
                    mismatch,
                } = cost::estimate(program.expression(), shapes);
                if let Some((operator, left, right)) = mismatch {
                    let symbol = operator.trim_matches('_');
                    let at = symbol_position(&text, symbol);
                    self.causes.push(FieldCause::invalid(
                        &rule_field,
                        &shown,
                        &format!("compilation failed: ERROR: <input>:{at}: found no matching overload for '{operator}' applied to '({left}, {right})'"),
                    ));
                }
                if let Some(name) = undefined {
                    let at = position(&text, &name);
                    self.causes.push(FieldCause::invalid(
                        &rule_field,
                        &shown,
                        &format!(
                            "compilation failed: ERROR: <input>:{at}: undefined field '{name}'"
                        ),
                    ));
                }
                if estimate > cost::RULE_LIMIT {
                    self.causes.push(FieldCause::forbidden(
                        &rule_field,
                        &format!(
                            "estimated rule cost exceeds budget by factor of {}x {}",
                            cost::factor(estimate / cost::RULE_LIMIT),
                            cost::HINT
                        ),
                    ));
                }
                let total = estimate * cardinality;
                if total > 0.0 {
                    self.total_cost += total;
                    self.costly.push(rule_field.clone());
                }
                if uses_old_self && !correlatable {
                    self.causes.push(FieldCause::invalid(
                        &rule_field,
                        &shown,
                        "oldSelf cannot be used on the uncorrelatable portion of the schema",
                    ));
                }
            }
            Err(why) => self.causes.push(FieldCause::invalid(
                &rule_field,
                &shown,
                &format!("compilation failed: {why}"),
            )),
        }
        let message_expression = match rule["messageExpression"].as_str().filter(|m| !m.is_empty())
        {
            None => None,
            Some(source) => match compile(source) {
                Ok(compiled) => Some((source.to_owned(), compiled)),
                Err(why) => {
                    self.causes.push(FieldCause::invalid(
                        &format!("{at}.messageExpression"),
                        &quoted(source),
                        &format!("messageExpression compilation failed: {why}"),
                    ));
                    None
                }
            },
        };
        let optional_old_self = rule["optionalOldSelf"] == true;
        if optional_old_self && !uses_old_self {
            self.causes.push(FieldCause::forbidden(
                &format!("{at}.optionalOldSelf"),
                "may not be set if oldSelf is not used in rule",
            ));
        }
        Some(Rule {
            optional_old_self,
            text,
            message,
            message_expression,
            reason,
            field_path,
            uses_old_self,
            program,
        })
    }
}

fn quoted(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

/// A rule as kube prints it in a compile error (Go's `%#v` of its ValidationRule).
fn go_rule(rule: &Value) -> String {
    let text = |name: &str| quoted(rule[name].as_str().unwrap_or(""));
    let reason = match rule["reason"].as_str() {
        Some(reason) => format!("(*apiextensions.FieldValueErrorReason)({})", quoted(reason)),
        None => "(*apiextensions.FieldValueErrorReason)(nil)".to_owned(),
    };
    let optional = match rule["optionalOldSelf"].as_bool() {
        Some(set) => format!("(*bool)({set})"),
        None => "(*bool)(nil)".to_owned(),
    };
    format!(
        "apiextensions.ValidationRule{{Rule:{}, Message:{}, MessageExpression:{}, Reason:{reason}, FieldPath:{}, OptionalOldSelf:{optional}}}",
        text("rule"),
        text("message"),
        text("messageExpression"),
        text("fieldPath"),
    )
}

/// Parses `source` and checks that it names only what bosun evaluates, with cel-go's texts
/// (`ERROR: <input>:1:6: undeclared reference to 'foo' (in container '')`).
pub fn compile(source: &str) -> Result<Program, String> {
    compile_with(source, &["self", "oldSelf"])
}

/// `compile` for an expression whose variables are `variables` (an admission policy's
/// `object`, `request`, …).
pub fn compile_with(source: &str, variables: &[&str]) -> Result<Program, String> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(format!(
            "ERROR: <input>:1:1: expression is longer than bosun's limit of {MAX_SOURCE_BYTES} bytes"
        ));
    }
    let program = Program::compile(source).map_err(|e| e.to_string())?;
    // `ip` is the namespace of `ip.isCanonical(…)`, `optional` of `optional.none()`
    let mut scope: Vec<String> = variables.iter().map(|v| (*v).to_owned()).collect();
    scope.extend(["ip".to_owned(), "optional".to_owned()]);
    if let Some(name) = undeclared(program.expression(), &mut scope, 0) {
        return Err(format!(
            "ERROR: <input>:{}: undeclared reference to '{name}' (in container '')",
            position(source, &name)
        ));
    }
    Ok(program)
}

/// The first function, variable or type the expression names that bosun does not have.
fn undeclared(expr: &IdedExpr, scope: &mut Vec<String>, depth: usize) -> Option<String> {
    if depth > 10_000 {
        return Some("<expression too deep>".to_owned());
    }
    match &expr.expr {
        Expr::Unspecified => Some("<unspecified>".to_owned()),
        Expr::Literal(_) => None,
        Expr::Ident(name) => (!scope.contains(name)).then(|| name.clone()),
        Expr::Select(select) => undeclared(&select.operand, scope, depth + 1),
        Expr::Call(call) => {
            let known = OPERATORS.contains(&call.func_name.as_str())
                || library::FUNCTIONS.contains(&call.func_name.as_str());
            if !known {
                return Some(call.func_name.clone());
            }
            if let Some(target) = &call.target {
                if let Some(name) = undeclared(target, scope, depth + 1) {
                    return Some(name);
                }
            }
            call.args
                .iter()
                .find_map(|arg| undeclared(arg, scope, depth + 1))
        }
        Expr::List(list) => list
            .elements
            .iter()
            .find_map(|e| undeclared(e, scope, depth + 1)),
        Expr::Map(map) => map.entries.iter().find_map(|entry| match &entry.expr {
            EntryExpr::MapEntry(entry) if !entry.optional => {
                undeclared(&entry.key, scope, depth + 1)
                    .or_else(|| undeclared(&entry.value, scope, depth + 1))
            }
            _ => Some("<optional entry>".to_owned()),
        }),
        Expr::Struct(message) => Some(message.type_name.clone()),
        Expr::Comprehension(comprehension) => {
            if let Some(name) = undeclared(&comprehension.iter_range, scope, depth + 1)
                .or_else(|| undeclared(&comprehension.accu_init, scope, depth + 1))
            {
                return Some(name);
            }
            let before = scope.len();
            scope.push(comprehension.iter_var.clone());
            scope.extend(comprehension.iter_var2.clone());
            scope.push(comprehension.accu_var.clone());
            let found = [
                &comprehension.loop_cond,
                &comprehension.loop_step,
                &comprehension.result,
            ]
            .into_iter()
            .find_map(|e| undeclared(e, scope, depth + 1));
            scope.truncate(before);
            found
        }
    }
}

/// Whether the expression names the variable `name` (not shadowed by a comprehension).
fn mentions(expr: &IdedExpr, name: &str) -> bool {
    let mut found = false;
    walk(expr, &mut |e| {
        if let Expr::Ident(ident) = &e.expr {
            found |= ident == name;
        }
    });
    found
}

/// Calls `visit` on every expression of the tree (iteratively: trees can be deep).
pub fn walk(expr: &IdedExpr, visit: &mut impl FnMut(&IdedExpr)) {
    let mut stack = vec![expr];
    while let Some(e) = stack.pop() {
        visit(e);
        match &e.expr {
            Expr::Select(select) => stack.push(&select.operand),
            Expr::Call(call) => {
                stack.extend(call.target.as_deref());
                stack.extend(call.args.iter());
            }
            Expr::List(list) => stack.extend(list.elements.iter()),
            Expr::Map(map) => {
                for entry in &map.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(entry) => stack.extend([&entry.key, &entry.value]),
                        EntryExpr::StructField(field) => stack.push(&field.value),
                    }
                }
            }
            Expr::Struct(message) => {
                for entry in &message.entries {
                    if let EntryExpr::StructField(field) = &entry.expr {
                        stack.push(&field.value);
                    }
                }
            }
            Expr::Comprehension(c) => stack.extend([
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ]),
            Expr::Unspecified | Expr::Literal(_) | Expr::Ident(_) => {}
        }
    }
}

/// `line:column` (1-based) of the first whole-word occurrence of `name` in `source`.
fn position(source: &str, name: &str) -> String {
    if name.is_empty() {
        return "1:1".to_owned();
    }
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut offset = None;
    let mut from = 0;
    while let Some(found) = source[from..].find(name) {
        let start = from + found;
        let end = start + name.len();
        let before_ok = source[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !is_word(c));
        let after_ok = source[end..].chars().next().is_none_or(|c| !is_word(c));
        if before_ok && after_ok {
            offset = Some(start);
            break;
        }
        from = end;
    }
    line_column(source, offset.unwrap_or(0))
}

/// `line:column` (1-based) of the first occurrence of an operator symbol in `source`.
fn symbol_position(source: &str, symbol: &str) -> String {
    line_column(source, source.find(symbol).unwrap_or(0))
}

/// `line:column` (1-based, columns in characters) of byte `offset` in `source`.
fn line_column(source: &str, offset: usize) -> String {
    let before = source.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("{line}:{column}")
}

/// Whether a schema (below a junctor) holds rules anywhere.
fn mentions_rules(schema: &Value, depth: usize) -> bool {
    if depth > 100 {
        return false;
    }
    match schema {
        Value::Object(fields) => fields.iter().any(|(key, value)| {
            key == "x-kubernetes-validations" || mentions_rules(value, depth + 1)
        }),
        Value::Array(items) => items.iter().any(|item| mentions_rules(item, depth + 1)),
        _ => false,
    }
}

/// A rule's `fieldPath` (`.spec.x`, `.labels['a.b']`) checked against the node's schema, as
/// the field path kube appends to the error (`spec.x`, `labels[a.b]`).
fn field_path(path: &str, schema: &Value) -> Result<String, String> {
    let mut out = String::new();
    let mut node = schema;
    let mut rest = path;
    while !rest.is_empty() {
        let (name, after) = if let Some(after) = rest.strip_prefix("['") {
            let end = after.find("']").ok_or("unexpected end of JSON path")?;
            (&after[..end], &after[end + 2..])
        } else if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return Err("unexpected end of JSON path".to_owned());
            }
            (&after[..end], &after[end..])
        } else {
            return Err(format!("expected [ or . but got: {rest}"));
        };
        if let Some(property) = node["properties"].get(name) {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(name);
            node = property;
        } else if node["additionalProperties"].is_object() {
            out.push_str(&format!("[{name}]"));
            node = &node["additionalProperties"];
        } else {
            return Err("does not refer to a valid field".to_owned());
        }
        rest = after;
    }
    Ok(out)
}

#[cfg(test)]
#[path = "compile_tests.rs"]
mod tests;
