//! kubectl's JSONPath subset used by `additionalPrinterColumns[].jsonPath`: dotted fields,
//! bracket-quoted keys, indexes, `*` and `[?(@.a == "x")]` filters.

use std::cmp::Ordering;

use serde_json::Value;

/// A parsed column path: `.spec.replicas`, `.metadata.labels.app`, `.spec.items[0].name`,
/// `.spec.items[*].name`, `.status.conditions[?(@.type=="Ready")].status`, `.metadata['x.y/z']`
/// (bracket-quoted keys with dots), optionally wrapped in `{…}` as kubectl allows.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnPath {
    /// The selection steps, applied left to right from the object.
    steps: Vec<Step>,
}

/// One selection step.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    /// An object key.
    Field(String),
    /// A list position; negative ones select nothing.
    Index(i64),
    /// Every item of a list or value of an object.
    Wildcard,
    /// The list items the filter accepts.
    Filter(Box<Filter>),
}

/// `?(left)` (left exists) or `?(left <op> right)`.
#[derive(Clone, Debug, PartialEq)]
struct Filter {
    left: Operand,
    comparison: Option<(Comparison, Operand)>,
}

/// A filter side: a path below the current item (`@.a.b`) or a literal.
#[derive(Clone, Debug, PartialEq)]
enum Operand {
    Current(Vec<Step>),
    Literal(Value),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Comparison {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

/// Operators in the order they are looked for (two-character ones first).
const OPERATORS: [(&str, Comparison); 6] = [
    ("==", Comparison::Equal),
    ("!=", Comparison::NotEqual),
    ("<=", Comparison::LessOrEqual),
    (">=", Comparison::GreaterOrEqual),
    ("<", Comparison::Less),
    (">", Comparison::Greater),
];

/// Parses; the error says what is wrong (kube requires the path to start with `.`).
pub fn parse(path: &str) -> Result<ColumnPath, String> {
    let trimmed = path.trim();
    let inner = match trimmed.strip_prefix('{') {
        Some(rest) => rest
            .strip_suffix('}')
            .ok_or_else(|| format!("unclosed '{{' in {path:?}"))?
            .trim(),
        None => trimmed,
    };
    if inner.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if !inner.starts_with('.') {
        return Err("must be a simple json path starting with .".to_owned());
    }
    let steps = parse_steps(inner).map_err(|error| format!("{error} in {path:?}"))?;
    Ok(ColumnPath { steps })
}

impl ColumnPath {
    /// The first value the path selects in `object` (kube's printer columns show the first result).
    pub fn first<'a>(&self, object: &'a Value) -> Option<&'a Value> {
        select(&self.steps, object)
    }
}

/// Parses a run of steps (`.a.b[0]['c']`) covering all of `text`.
fn parse_steps(text: &str) -> Result<Vec<Step>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut steps = Vec::new();
    let mut position = 0;
    while position < chars.len() {
        match chars[position] {
            '.' => {
                position += 1;
                match chars.get(position) {
                    Some('.') => return Err("recursive descent (..) is not supported".to_owned()),
                    Some('[') | None => {}
                    Some('*') => {
                        steps.push(Step::Wildcard);
                        position += 1;
                    }
                    Some(_) => {
                        let (name, next) = read_field(&chars, position);
                        steps.push(Step::Field(name));
                        position = next;
                    }
                }
            }
            '[' => {
                let close = closing_bracket(&chars, position)?;
                let inside: String = chars[position + 1..close].iter().collect();
                steps.push(parse_bracket(inside.trim())?);
                position = close + 1;
            }
            other => return Err(format!("unexpected {other:?} at position {position}")),
        }
    }
    Ok(steps)
}

/// Reads a dotted field name from `start` up to the next unescaped `.` or `[`; `\.` is a dot.
fn read_field(chars: &[char], start: usize) -> (String, usize) {
    let mut name = String::new();
    let mut position = start;
    while let Some(&current) = chars.get(position) {
        match current {
            '\\' if chars.get(position + 1) == Some(&'.') => {
                name.push('.');
                position += 2;
                continue;
            }
            '.' | '[' => break,
            _ => name.push(current),
        }
        position += 1;
    }
    (name, position)
}

/// The index of the `]` closing the `[` at `open`, skipping quoted text and nested brackets.
fn closing_bracket(chars: &[char], open: usize) -> Result<usize, String> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut position = open;
    while let Some(&current) = chars.get(position) {
        match (quote, current) {
            (Some(_), '\\') => position += 1,
            (Some(open_quote), _) if current == open_quote => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(current),
            (None, '[') => depth += 1,
            (None, ']') => {
                depth -= 1;
                if depth == 0 {
                    return Ok(position);
                }
            }
            (None, _) => {}
        }
        position += 1;
    }
    Err(format!("unclosed '[' at position {open}"))
}

/// Parses what sits between `[` and `]`.
fn parse_bracket(inside: &str) -> Result<Step, String> {
    if inside == "*" {
        return Ok(Step::Wildcard);
    }
    if let Some(expression) = inside.strip_prefix('?') {
        let expression = expression.trim();
        let body = expression
            .strip_prefix('(')
            .and_then(|rest| rest.strip_suffix(')'))
            .ok_or_else(|| format!("filter {inside:?} must look like ?(...)"))?;
        return Ok(Step::Filter(Box::new(parse_filter(body.trim())?)));
    }
    if inside.starts_with('\'') || inside.starts_with('"') {
        return match parse_literal(inside)? {
            Value::String(key) => Ok(Step::Field(key)),
            _ => Err(format!("invalid quoted key {inside}")),
        };
    }
    if inside.contains(':') {
        return Err(format!("slices like [{inside}] are not supported"));
    }
    if inside.contains(',') {
        return Err(format!("unions like [{inside}] are not supported"));
    }
    inside
        .parse::<i64>()
        .map(Step::Index)
        .map_err(|_| format!("invalid array index [{inside}]"))
}

/// Parses a filter body such as `@.type=="Ready"`.
fn parse_filter(body: &str) -> Result<Filter, String> {
    let Some((at, operator, comparison)) = find_operator(body) else {
        return Ok(Filter {
            left: parse_operand(body)?,
            comparison: None,
        });
    };
    let left = parse_operand(body[..at].trim())?;
    let right = parse_operand(body[at + operator.len()..].trim())?;
    Ok(Filter {
        left,
        comparison: Some((comparison, right)),
    })
}

/// The first comparison operator outside quotes: its byte offset, text and meaning.
fn find_operator(body: &str) -> Option<(usize, &'static str, Comparison)> {
    let mut quote: Option<char> = None;
    for (offset, current) in body.char_indices() {
        match quote {
            Some(open) if current == open => quote = None,
            Some(_) => {}
            None if current == '\'' || current == '"' => quote = Some(current),
            None => {
                let rest = &body[offset..];
                if let Some((text, comparison)) =
                    OPERATORS.iter().find(|(text, _)| rest.starts_with(text))
                {
                    return Some((offset, text, *comparison));
                }
            }
        }
    }
    None
}

fn parse_operand(text: &str) -> Result<Operand, String> {
    if let Some(rest) = text.strip_prefix('@') {
        return Ok(Operand::Current(parse_steps(rest)?));
    }
    parse_literal(text).map(Operand::Literal)
}

/// A quoted string (single or double quotes), a number, `true`, `false` or `null`.
fn parse_literal(text: &str) -> Result<Value, String> {
    if let Some(body) = text
        .strip_prefix('\'')
        .and_then(|rest| rest.strip_suffix('\''))
    {
        return Ok(Value::String(body.replace("\\'", "'")));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(value @ (Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null)) => {
            Ok(value)
        }
        _ => Err(format!("invalid literal {text}")),
    }
}

/// The first value `steps` select below `value`, depth first (kubectl's result order).
fn select<'a>(steps: &[Step], value: &'a Value) -> Option<&'a Value> {
    let Some((step, rest)) = steps.split_first() else {
        return Some(value);
    };
    match step {
        Step::Field(name) => select(rest, value.as_object()?.get(name)?),
        Step::Index(index) => {
            let position = usize::try_from(*index).ok()?;
            select(rest, value.as_array()?.get(position)?)
        }
        Step::Wildcard => match value {
            Value::Array(list) => list.iter().find_map(|item| select(rest, item)),
            Value::Object(map) => map.values().find_map(|item| select(rest, item)),
            _ => None,
        },
        Step::Filter(filter) => value
            .as_array()?
            .iter()
            .filter(|item| filter.accepts(item))
            .find_map(|item| select(rest, item)),
    }
}

impl Filter {
    /// Whether the list item passes the filter; a missing operand never passes.
    fn accepts(&self, item: &Value) -> bool {
        let Some(left) = self.left.resolve(item) else {
            return false;
        };
        let Some((comparison, right)) = &self.comparison else {
            return true;
        };
        let Some(right) = right.resolve(item) else {
            return false;
        };
        let ordering = compare(left, right);
        match comparison {
            Comparison::Equal => ordering == Some(Ordering::Equal),
            Comparison::NotEqual => ordering != Some(Ordering::Equal),
            Comparison::Less => ordering == Some(Ordering::Less),
            Comparison::LessOrEqual => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
            Comparison::Greater => ordering == Some(Ordering::Greater),
            Comparison::GreaterOrEqual => {
                matches!(ordering, Some(Ordering::Greater | Ordering::Equal))
            }
        }
    }
}

impl Operand {
    fn resolve<'a>(&'a self, item: &'a Value) -> Option<&'a Value> {
        match self {
            Operand::Current(steps) => select(steps, item),
            Operand::Literal(value) => Some(value),
        }
    }
}

/// Orders numbers by value and strings by text; other equal values are `Equal`, the rest
/// incomparable.
fn compare(left: &Value, right: &Value) -> Option<Ordering> {
    match (left, right) {
        (Value::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        _ if left == right => Some(Ordering::Equal),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({
            "metadata": {
                "name": "web",
                "labels": {"app": "shop", "x.y/z": "dotted"},
                "annotations": {"kubernetes.io/name": "escaped"}
            },
            "spec": {
                "replicas": 3,
                "items": [{"name": "a", "port": 80}, {"name": "b", "port": 443}],
                "empty": []
            },
            "status": {
                "conditions": [
                    {"type": "Progressing", "status": "True"},
                    {"type": "Ready", "status": "False", "count": 2}
                ]
            }
        })
    }

    fn first(path: &str) -> Option<Value> {
        parse(path).unwrap().first(&pod()).cloned()
    }

    #[test]
    fn dotted_fields_select_values() {
        assert_eq!(first(".spec.replicas"), Some(json!(3)));
        assert_eq!(first(".metadata.labels.app"), Some(json!("shop")));
        assert_eq!(
            first(".metadata.labels"),
            Some(pod()["metadata"]["labels"].clone())
        );
        assert_eq!(first("."), Some(pod()));
        assert_eq!(
            first(".metadata.annotations.kubernetes\\.io/name"),
            Some(json!("escaped"))
        );
    }

    #[test]
    fn braces_are_optional() {
        assert_eq!(first("{.spec.replicas}"), Some(json!(3)));
        assert_eq!(first(" { .metadata.name } "), Some(json!("web")));
    }

    #[test]
    fn indexes_select_list_items() {
        assert_eq!(first(".spec.items[0].name"), Some(json!("a")));
        assert_eq!(first(".spec.items[1].port"), Some(json!(443)));
        assert_eq!(first(".spec.items[2].name"), None);
        assert_eq!(first(".spec.items[-1].name"), None);
        assert_eq!(first(".spec.replicas[0]"), None);
    }

    #[test]
    fn wildcards_give_the_first_match() {
        assert_eq!(first(".spec.items[*].name"), Some(json!("a")));
        assert_eq!(first(".spec.items.*.port"), Some(json!(80)));
        assert_eq!(first(".spec.empty[*].name"), None);
        assert_eq!(first(".status.conditions[*].count"), Some(json!(2)));
    }

    #[test]
    fn quoted_keys_may_hold_dots() {
        assert_eq!(first(".metadata.labels['x.y/z']"), Some(json!("dotted")));
        assert_eq!(first(".metadata[\"labels\"][\"app\"]"), Some(json!("shop")));
    }

    #[test]
    fn filters_compare_fields_with_literals() {
        let ready = ".status.conditions[?(@.type==\"Ready\")].status";
        assert_eq!(first(ready), Some(json!("False")));
        assert_eq!(
            first(".status.conditions[?(@.type == 'Ready')].status"),
            Some(json!("False"))
        );
        assert_eq!(
            first(".status.conditions[?(@.type!=\"Progressing\")].type"),
            Some(json!("Ready"))
        );
        assert_eq!(first(".spec.items[?(@.port==443)].name"), Some(json!("b")));
        assert_eq!(first(".spec.items[?(@.port>100)].name"), Some(json!("b")));
        assert_eq!(
            first(".status.conditions[?(@.count)].type"),
            Some(json!("Ready"))
        );
        assert_eq!(
            first(".status.conditions[?(@.type==\"Gone\")].status"),
            None
        );
    }

    #[test]
    fn filters_follow_nested_paths() {
        let object = json!({"list": [
            {"meta": {"kind": "a"}, "v": 1},
            {"meta": {"kind": "b"}, "v": 2}
        ]});
        let path = parse(".list[?(@.meta.kind==\"b\")].v").unwrap();
        assert_eq!(path.first(&object), Some(&json!(2)));
        let indexed = parse(".list[?(@['meta'].kind=='a')].v").unwrap();
        assert_eq!(indexed.first(&object), Some(&json!(1)));
    }

    #[test]
    fn missing_fields_select_nothing() {
        assert_eq!(first(".spec.nothing"), None);
        assert_eq!(first(".metadata.name.deeper"), None);
    }

    #[test]
    fn bad_paths_are_refused_with_a_reason() {
        let error = parse("spec.replicas").unwrap_err();
        assert!(
            error.contains("must be a simple json path starting with ."),
            "{error}"
        );
        assert_eq!(parse("").unwrap_err(), "must not be empty");
        assert!(parse(".spec.items[0").unwrap_err().contains("unclosed '['"));
        assert!(parse(".spec..name")
            .unwrap_err()
            .contains("recursive descent"));
        assert!(parse(".spec.items[1:2]").unwrap_err().contains("slices"));
        assert!(parse(".spec.items[x]")
            .unwrap_err()
            .contains("invalid array index"));
        assert!(parse(".a[?(@.b==)]")
            .unwrap_err()
            .contains("invalid literal"));
        assert!(parse("{.spec").unwrap_err().contains("unclosed"));
    }
}
