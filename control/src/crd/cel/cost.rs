//! A rule's worst-case cost, estimated as kube does before it accepts a CRD: every step of the
//! expression costs one, a comprehension (`all`, `exists`, `map`, …) costs its body times the
//! most elements its range can hold, and functions that traverse a string or list cost a tenth
//! of its length. The most a list, map or string can hold is its `maxItems`,
//! `maxProperties` or `maxLength`, else as many of its smallest elements as fit in a request
//! (3 MiB). Kube's limits: 10⁷ per rule, and 10⁸ for every rule of a schema together, each
//! times the number of values it may run on. The units are kube's in spirit, not to the
//! digit: a CRD near a limit may be judged differently by kube.

use cel::common::ast::{EntryExpr, Expr};
use cel::IdedExpr;
use serde_json::Value;

pub const RULE_LIMIT: f64 = 1e7;
pub const CRD_LIMIT: f64 = 1e8;
pub const HINT: &str = "(try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)";

/// kube-apiserver's largest request body.
const MAX_REQUEST: f64 = 3.0 * 1024.0 * 1024.0;

/// cel-go's cost of visiting one character or element.
const TRAVERSAL: f64 = 0.1;
/// cel-go's guess of a regular expression's cost per character.
const REGEX: f64 = 0.25;

/// Functions whose cost grows with the string or list they work on (the receiver, or the
/// first argument of a global call), besides those costed on their own in `cost`.
const TRAVERSING: &[&str] = &[
    "matches",
    "contains",
    "startsWith",
    "endsWith",
    "find",
    "findAll",
    "split",
    "replace",
    "lowerAscii",
    "upperAscii",
    "trim",
    "indexOf",
    "lastIndexOf",
    "join",
    "substring",
    "charAt",
    "reverse",
    "isSorted",
    "sum",
    "min",
    "max",
    "_+_",
    "_==_",
    "_!=_",
    "_<_",
    "_>_",
    "_<=_",
    "_>=_",
    "@in",
    "url",
    "isURL",
    "quantity",
    "isQuantity",
    "ip",
    "isIP",
    "cidr",
    "isCIDR",
    "string",
];

/// Functions whose result is a scalar (a number or a bool), whatever their operands.
const SCALAR: &[&str] = &[
    "size",
    "int",
    "uint",
    "double",
    "matches",
    "contains",
    "startsWith",
    "endsWith",
    "isSorted",
    "sum",
    "indexOf",
    "lastIndexOf",
    "isURL",
    "isIP",
    "isCIDR",
    "isQuantity",
    "_==_",
    "_!=_",
    "_<_",
    "_>_",
    "_<=_",
    "_>=_",
    "_&&_",
    "_||_",
    "!_",
    "-_",
    "_-_",
    "_*_",
    "_/_",
    "_%_",
    "@in",
    "@not_strictly_false",
];

/// A factor as kube prints it (`1.5`, `12`).
pub fn factor(value: f64) -> String {
    let rounded = (value * 10.0).round() / 10.0;
    format!("{rounded}")
}

/// The most items a list of `schema` may hold.
pub fn max_items(schema: &Value) -> f64 {
    schema["maxItems"]
        .as_f64()
        .unwrap_or_else(|| (MAX_REQUEST / (min_size(&schema["items"]) + 1.0)).floor())
}

/// The most entries a map of `schema` (additionalProperties) may hold.
pub fn max_properties(schema: &Value) -> f64 {
    schema["maxProperties"].as_f64().unwrap_or_else(|| {
        (MAX_REQUEST / (min_size(&schema["additionalProperties"]) + 4.0)).floor()
    })
}

/// The longest a string of `schema` may be: its `maxLength`, its longest enum value, a
/// date-time's or duration's length, else a whole request.
fn max_length(schema: &Value) -> f64 {
    if let Some(max) = schema["maxLength"].as_f64() {
        return max;
    }
    if let Some(values) = schema["enum"].as_array() {
        return values
            .iter()
            .filter_map(Value::as_str)
            .map(|v| v.chars().count() as f64)
            .fold(0.0, f64::max);
    }
    match schema["format"].as_str() {
        Some("date-time") => 64.0,
        Some("duration") => 32.0,
        _ => MAX_REQUEST,
    }
}

/// The fewest bytes a value of `schema` takes in JSON.
fn min_size(schema: &Value) -> f64 {
    match schema["type"].as_str() {
        Some("string") => 2.0,
        Some("boolean") => 4.0,
        Some("object" | "array") => 2.0,
        _ => 1.0,
    }
}

/// What the estimate knows of an expression's value.
#[derive(Clone, Copy)]
enum Shape<'a> {
    /// A value of this schema node.
    Schema(&'a Value),
    /// A list or map of at most this many elements, or a string of at most this length.
    Sized(f64),
    Unknown,
}

/// The variables a rule starts with: `self` and `oldSelf`, values of the rule's node.
pub struct Shapes<'a> {
    node: &'a Value,
    resource_root: bool,
}

impl<'a> Shapes<'a> {
    pub fn new(node: &'a Value, resource_root: bool) -> Self {
        Shapes {
            node,
            resource_root,
        }
    }
}

/// What CEL shows of a resource's metadata: its name and generateName only.
static METADATA: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
    serde_json::json!({"type": "object", "properties": {
        "name": {"type": "string"}, "generateName": {"type": "string"}}})
});
static STRING: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| serde_json::json!({"type": "string"}));

/// A rule's estimated worst-case cost and the first field it names that its schema does not
/// declare (cel-go's "undefined field", a compile error in kube).
pub struct Estimate {
    pub cost: f64,
    pub undefined: Option<String>,
    /// The first operator applied to operands of types it has no overload for
    /// (`(">", "int", "string")`), a compile error in kube.
    pub mismatch: Option<(String, &'static str, &'static str)>,
}

/// The estimated worst-case cost of one evaluation of `expr` against `shapes`' node.
pub fn estimate(expr: &IdedExpr, shapes: &Shapes) -> Estimate {
    let mut estimator = Estimator {
        vars: vec![
            ("self".to_owned(), Shape::Schema(shapes.node)),
            ("oldSelf".to_owned(), Shape::Schema(shapes.node)),
        ],
        root: shapes.resource_root.then_some(shapes.node),
        undefined: None,
        mismatch: None,
    };
    let cost = estimator.cost(expr, 0);
    Estimate {
        cost,
        undefined: estimator.undefined,
        mismatch: estimator.mismatch,
    }
}

struct Estimator<'a> {
    vars: Vec<(String, Shape<'a>)>,
    /// The node when it is a resource's root (it then shows apiVersion, kind, metadata).
    root: Option<&'a Value>,
    undefined: Option<String>,
    mismatch: Option<(String, &'static str, &'static str)>,
}

impl<'a> Estimator<'a> {
    fn cost(&mut self, expr: &IdedExpr, depth: usize) -> f64 {
        if depth > 10_000 {
            return f64::INFINITY;
        }
        match &expr.expr {
            Expr::Unspecified | Expr::Literal(_) | Expr::Ident(_) => 1.0,
            Expr::Select(select) => {
                if let Shape::Schema(schema) = self.shape(&select.operand) {
                    if self.field(schema, &select.field).is_none() && self.undefined.is_none() {
                        self.undefined = Some(select.field.clone());
                    }
                }
                1.0 + self.cost(&select.operand, depth + 1)
            }
            Expr::List(list) => {
                1.0 + list
                    .elements
                    .iter()
                    .map(|e| self.cost(e, depth + 1))
                    .sum::<f64>()
            }
            Expr::Map(map) => {
                1.0 + map
                    .entries
                    .iter()
                    .map(|entry| match &entry.expr {
                        EntryExpr::MapEntry(e) => {
                            self.cost(&e.key, depth + 1) + self.cost(&e.value, depth + 1)
                        }
                        EntryExpr::StructField(f) => self.cost(&f.value, depth + 1),
                    })
                    .sum::<f64>()
            }
            Expr::Struct(_) => 1.0,
            Expr::Call(call) => {
                let operands: Vec<&IdedExpr> = call
                    .target
                    .iter()
                    .map(|t| &**t)
                    .chain(call.args.iter())
                    .collect();
                let costs: Vec<f64> = operands.iter().map(|e| self.cost(e, depth + 1)).collect();
                self.check_operands(&call.func_name, &operands);
                let sum: f64 = costs.iter().sum();
                let size = |i: usize| operands.get(i).map_or(0.0, |e| self.size(e));
                match call.func_name.as_str() {
                    // short-circuits and the conditional cost their operands only
                    "_&&_" | "_||_" => sum,
                    "_?_:_" => {
                        costs.first().copied().unwrap_or(0.0)
                            + costs.iter().skip(1).fold(0.0, |a: f64, b| a.max(*b))
                    }
                    // comparisons traverse the smaller operand
                    "_==_" | "_!=_" | "_<_" | "_>_" | "_<=_" | "_>=_" => {
                        sum + TRAVERSAL * size(0).min(size(1))
                    }
                    "startsWith" | "endsWith" => sum + TRAVERSAL * size(1),
                    "contains" => sum + TRAVERSAL * size(0) * TRAVERSAL * size(1),
                    "matches" | "find" | "findAll" => {
                        sum + TRAVERSAL * (size(0) + 1.0) * REGEX * size(1)
                    }
                    "@in" => sum + size(1),
                    "_+_" if operands.iter().all(|e| self.scalar(e)) => sum + 1.0,
                    "_+_" => sum + TRAVERSAL * (size(0) + size(1)),
                    name if TRAVERSING.contains(&name) => sum + 1.0 + TRAVERSAL * size(0),
                    _ => sum + 1.0,
                }
            }
            Expr::Comprehension(c) => {
                let count = self.size(&c.iter_range);
                let element = self.element(&c.iter_range);
                let mut total =
                    self.cost(&c.iter_range, depth + 1) + self.cost(&c.accu_init, depth + 1);
                let before = self.vars.len();
                self.vars.push((c.iter_var.clone(), element));
                if let Some(second) = &c.iter_var2 {
                    self.vars.push((second.clone(), Shape::Unknown));
                }
                self.vars.push((c.accu_var.clone(), Shape::Sized(count)));
                let body = self.cost(&c.loop_cond, depth + 1) + self.cost(&c.loop_step, depth + 1);
                total += count * body + self.cost(&c.result, depth + 1);
                self.vars.truncate(before);
                total
            }
        }
    }

    fn shape(&self, expr: &IdedExpr) -> Shape<'a> {
        match &expr.expr {
            Expr::Ident(name) => self
                .vars
                .iter()
                .rev()
                .find(|(var, _)| var == name)
                .map_or(Shape::Unknown, |(_, shape)| *shape),
            Expr::Select(select) if !select.test => match self.shape(&select.operand) {
                Shape::Schema(schema) => {
                    self.field(schema, &select.field).unwrap_or(Shape::Unknown)
                }
                _ => Shape::Unknown,
            },
            Expr::Call(call) if call.func_name == "_[_]" => {
                match call.args.first().map(|t| self.shape(t)) {
                    Some(Shape::Schema(schema)) => element_of(schema),
                    _ => Shape::Unknown,
                }
            }
            Expr::List(list) => Shape::Sized(list.elements.len() as f64),
            Expr::Literal(cel::common::value::CelVal::String(text)) => {
                Shape::Sized(text.len() as f64)
            }
            Expr::Literal(_) => Shape::Sized(1.0),
            Expr::Call(call) if self.scalar(expr) || SCALAR.contains(&call.func_name.as_str()) => {
                Shape::Sized(1.0)
            }
            // a conditional is as large as its larger branch, a concatenation as its
            // operands together, another function's result as its largest operand
            Expr::Call(call) if call.func_name == "_?_:_" => Shape::Sized(
                call.args
                    .iter()
                    .skip(1)
                    .map(|e| self.size(e))
                    .fold(0.0, f64::max),
            ),
            Expr::Call(call) => {
                let operands = call.target.iter().map(|t| &**t).chain(call.args.iter());
                let sizes = operands.map(|e| self.size(e));
                Shape::Sized(if call.func_name == "_+_" {
                    sizes.sum()
                } else {
                    sizes.fold(1.0, f64::max)
                })
            }
            Expr::Comprehension(c) => Shape::Sized(self.size(&c.iter_range)),
            _ => Shape::Unknown,
        }
    }

    /// The schema of field `name` (as CEL names it) of an object of `schema`: `Unknown` where
    /// the schema does not say (preserved unknown fields, no properties), `None` when the
    /// schema's object has no such field.
    fn field(&self, schema: &'a Value, name: &str) -> Option<Shape<'a>> {
        let resource = self.root.is_some_and(|root| std::ptr::eq(root, schema))
            || schema["x-kubernetes-embedded-resource"] == true;
        if resource {
            match name {
                "apiVersion" | "kind" => return Some(Shape::Schema(&STRING)),
                "metadata" => return Some(Shape::Schema(&METADATA)),
                _ => {}
            }
        }
        if let Some(properties) = schema["properties"].as_object() {
            for (declared, sub) in properties {
                if super::value::escape(declared).as_deref() == Some(name) {
                    return Some(Shape::Schema(sub));
                }
            }
        }
        match &schema["additionalProperties"] {
            sub @ Value::Object(_) => Some(Shape::Schema(sub)),
            _ if schema["type"] == "object"
                && schema["x-kubernetes-preserve-unknown-fields"] != true
                && (schema["properties"].is_object() || std::ptr::eq(schema, &*METADATA)) =>
            {
                None
            }
            _ => Some(Shape::Unknown),
        }
    }

    /// Records an operator applied to two operands whose known types it has no overload for
    /// (a number and a string, a bool and a number, …).
    fn check_operands(&mut self, operator: &str, operands: &[&IdedExpr]) {
        const OPERATORS: &[&str] = &["_==_", "_!=_", "_<_", "_>_", "_<=_", "_>=_", "_+_", "_-_"];
        if self.mismatch.is_some() || !OPERATORS.contains(&operator) || operands.len() != 2 {
            return;
        }
        let (Some(left), Some(right)) = (self.type_of(operands[0]), self.type_of(operands[1]))
        else {
            return;
        };
        let numeric = |t: &str| matches!(t, "int" | "uint" | "double");
        let compatible = left == right || (numeric(left) && numeric(right) && operator != "_+_");
        if !compatible {
            self.mismatch = Some((operator.to_owned(), left, right));
        }
    }

    /// The CEL type of `expr` where it is plain from the literal or the schema.
    fn type_of(&self, expr: &IdedExpr) -> Option<&'static str> {
        use cel::common::value::CelVal;
        match &expr.expr {
            Expr::Literal(CelVal::String(_)) => Some("string"),
            Expr::Literal(CelVal::Int(_)) => Some("int"),
            Expr::Literal(CelVal::UInt(_)) => Some("uint"),
            Expr::Literal(CelVal::Double(_)) => Some("double"),
            Expr::Literal(CelVal::Boolean(_)) => Some("bool"),
            Expr::Call(call) if call.func_name == "size" => Some("int"),
            Expr::Select(select) if select.test => Some("bool"),
            Expr::Select(_) | Expr::Ident(_) => match self.shape(expr) {
                Shape::Schema(schema) if schema["x-kubernetes-int-or-string"] != true => {
                    match (schema["type"].as_str(), schema["format"].as_str()) {
                        (Some("string"), Some("date-time")) => Some("google.protobuf.Timestamp"),
                        (Some("string"), Some("duration")) => Some("google.protobuf.Duration"),
                        (Some("string"), _) => Some("string"),
                        (Some("integer"), _) => Some("int"),
                        (Some("number"), _) => Some("double"),
                        (Some("boolean"), _) => Some("bool"),
                        _ => None,
                    }
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether `expr` is a number or a bool (an addition of those is not a concatenation).
    fn scalar(&self, expr: &IdedExpr) -> bool {
        match &expr.expr {
            Expr::Literal(cel::common::value::CelVal::String(_)) => false,
            Expr::Literal(_) => true,
            Expr::Call(call) if SCALAR.contains(&call.func_name.as_str()) => true,
            Expr::Call(call) if call.func_name == "_?_:_" => {
                call.args.iter().skip(1).all(|e| self.scalar(e))
            }
            Expr::Call(call) if call.func_name == "_+_" => call.args.iter().all(|e| self.scalar(e)),
            Expr::Select(_) | Expr::Ident(_) => match self.shape(expr) {
                Shape::Schema(schema) => {
                    matches!(
                        schema["type"].as_str(),
                        Some("integer" | "number" | "boolean")
                    )
                }
                _ => false,
            },
            _ => false,
        }
    }

    /// The most elements (or characters) the value of `expr` may have.
    fn size(&self, expr: &IdedExpr) -> f64 {
        match self.shape(expr) {
            Shape::Schema(schema) => match schema["type"].as_str() {
                Some("array") => max_items(schema),
                Some("string") => max_length(schema),
                Some("object") if schema["additionalProperties"].is_object() => {
                    max_properties(schema)
                }
                Some("object") => schema["properties"]
                    .as_object()
                    .map_or(1.0, |p| p.len() as f64),
                _ => 1.0,
            },
            Shape::Sized(count) => count,
            Shape::Unknown => MAX_REQUEST / 2.0,
        }
    }

    /// What a comprehension over `expr` binds its variable to.
    fn element(&self, expr: &IdedExpr) -> Shape<'a> {
        match self.shape(expr) {
            Shape::Schema(schema) if schema["type"] == "array" => Shape::Schema(&schema["items"]),
            // a map's keys: kube's estimator gives them no length (its key type carries no
            // size), so rules over keys are judged by the number of keys alone, as in kube
            Shape::Schema(schema) if schema["additionalProperties"].is_object() => {
                Shape::Sized(0.0)
            }
            _ => Shape::Unknown,
        }
    }
}

fn element_of(schema: &Value) -> Shape<'_> {
    if schema["type"] == "array" {
        return Shape::Schema(&schema["items"]);
    }
    match &schema["additionalProperties"] {
        sub @ Value::Object(_) => Shape::Schema(sub),
        _ => Shape::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cost_of(rule: &str, schema: &Value) -> f64 {
        let program = cel::Program::compile(rule).expect("parses");
        estimate(program.expression(), &Shapes::new(schema, false)).cost
    }

    #[test]
    fn bounded_lists_cost_little_and_unbounded_nested_loops_a_lot() {
        let bounded = json!({"type": "object", "properties": {"l": {"type": "array", "maxItems": 16,
            "items": {"type": "string", "maxLength": 63}}}});
        let unbounded = json!({"type": "object", "properties": {"l": {"type": "array",
            "items": {"type": "string"}}}});
        let rule = "self.l.all(a, self.l.all(b, a == b || !a.startsWith(b)))";
        assert!(
            cost_of(rule, &bounded) < 20_000.0,
            "{}",
            cost_of(rule, &bounded)
        );
        assert!(cost_of(rule, &unbounded) > RULE_LIMIT);
        assert!(cost_of("self.l.all(a, a.size() < 10)", &unbounded) < RULE_LIMIT);
        assert!(cost_of("size(self.l) < 3", &unbounded) < 10.0);
    }

    #[test]
    fn factors_print_as_kube_does() {
        assert_eq!(factor(1.5), "1.5");
        assert_eq!(factor(12.04), "12");
    }
}
