//! cel-go's optional values, as much as a CRD rule with `optionalOldSelf` uses them:
//! `oldSelf.hasValue()`, `oldSelf.value()`, `oldSelf.orValue(default)`, `optional.of(x)` and
//! `optional.none()`. An optional is a map with one reserved key holding a list of zero or
//! one value, so two optionals compare equal as cel-go's do.

use std::collections::HashMap;
use std::sync::Arc;

use cel::objects::{Key, Map};
use cel::{ResolveResult, Value};

use super::{opaque_payload, Call, NAMESPACE_KEY};

/// Reserved map key marking an optional value.
pub(crate) const OPTIONAL_KEY: &str = "__bosun_optional__";

fn wrap(inner: Vec<Value>) -> Value {
    let mut map = HashMap::with_capacity(1);
    map.insert(Key::from(OPTIONAL_KEY), Value::List(Arc::new(inner)));
    Value::Map(Map { map: Arc::new(map) })
}

/// `optional.of(value)`.
pub fn of(value: Value) -> Value {
    wrap(vec![value])
}

/// `optional.none()`.
pub fn none() -> Value {
    wrap(Vec::new())
}

/// The value inside an optional: `Some(None)` for none, `None` when `v` is no optional.
fn inside(v: &Value) -> Option<Option<&Value>> {
    let Value::Map(map) = v else {
        return None;
    };
    if map.map.len() != 1 {
        return None;
    }
    match map.map.get(&Key::from(OPTIONAL_KEY)) {
        Some(Value::List(items)) if items.len() <= 1 => Some(items.first()),
        _ => None,
    }
}

pub(super) fn has_value(c: &Call) -> ResolveResult {
    c.arity(0, 0)?;
    match inside(&c.recv) {
        Some(found) => Ok(Value::Bool(found.is_some())),
        None => Err(c.no_overload()),
    }
}

pub(super) fn value(c: &Call) -> ResolveResult {
    c.arity(0, 0)?;
    match inside(&c.recv) {
        Some(Some(found)) => Ok(found.clone()),
        Some(None) => Err(c.err("optional.none() dereference")),
        None => Err(c.no_overload()),
    }
}

pub(super) fn or_value(c: &Call) -> ResolveResult {
    c.arity(1, 1)?;
    match (inside(&c.recv), c.args.first()) {
        (Some(Some(found)), _) => Ok(found.clone()),
        (Some(None), Some(default)) => Ok(default.clone()),
        _ => Err(c.no_overload()),
    }
}

fn in_namespace(c: &Call) -> bool {
    opaque_payload(&c.recv, NAMESPACE_KEY) == Some("optional")
}

pub(super) fn optional_of(c: &Call) -> ResolveResult {
    c.arity(1, 1)?;
    match (in_namespace(c), c.args.first()) {
        (true, Some(found)) => Ok(of(found.clone())),
        _ => Err(c.no_overload()),
    }
}

pub(super) fn optional_none(c: &Call) -> ResolveResult {
    c.arity(0, 0)?;
    if in_namespace(c) {
        Ok(none())
    } else {
        Err(c.no_overload())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{assert_err, assert_true};

    #[test]
    fn optionals_behave_as_cel_go_s() {
        assert_true(&[
            "optional.of(1).hasValue()",
            "!optional.none().hasValue()",
            "optional.of('a').value() == 'a'",
            "optional.none().orValue(3) == 3",
            "optional.of(2).orValue(3) == 2",
            "optional.none() == optional.none()",
        ]);
        assert_err(&[
            ("optional.none().value()", "optional.none() dereference"),
            ("(1).hasValue()", "no such overload"),
        ]);
    }
}
