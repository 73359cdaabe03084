//! The Kubernetes list library: `isSorted`, `sum`, `min`, `max`, `indexOf` and
//! `lastIndexOf` on a list receiver. Elements compare with the cel crate's
//! ordering (numbers, strings, bools, durations, timestamps); `sum` adds ints,
//! uints, doubles or durations. Mixing types that cannot be compared or added
//! gives cel-go's "no such overload"; int overflow is an error.

use super::{to_int, Call};
use cel::{ExecutionError, ResolveResult, Value};
use std::cmp::Ordering;
use std::sync::Arc;

fn recv_list(c: &Call) -> Result<&Arc<Vec<Value>>, ExecutionError> {
    match &c.recv {
        Value::List(l) => Ok(l),
        _ => Err(c.no_overload()),
    }
}

fn compare(c: &Call, a: &Value, b: &Value) -> Result<Ordering, ExecutionError> {
    a.partial_cmp(b).ok_or_else(|| {
        c.err(format!(
            "no such overload: cannot compare {} and {}",
            super::type_name(a),
            super::type_name(b)
        ))
    })
}

/// `<list>.isSorted()`: true when every element is <= its successor.
pub(super) fn is_sorted(c: &Call) -> ResolveResult {
    c.arity(0, 0)?;
    for pair in recv_list(c)?.windows(2) {
        if let [a, b] = pair {
            if compare(c, a, b)? == Ordering::Greater {
                return Ok(Value::Bool(false));
            }
        }
    }
    Ok(Value::Bool(true))
}

fn add(c: &Call, a: &Value, b: &Value) -> ResolveResult {
    let overflow = || c.err("integer overflow");
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x.checked_add(*y).map(Value::Int).ok_or_else(overflow),
        (Value::UInt(x), Value::UInt(y)) => x.checked_add(*y).map(Value::UInt).ok_or_else(overflow),
        (Value::Float(x), Value::Float(y)) => Ok(Value::Float(x + y)),
        (Value::Duration(x), Value::Duration(y)) => {
            x.checked_add(y).map(Value::Duration).ok_or_else(overflow)
        }
        _ => Err(c.err(format!(
            "no such overload: {} + {}",
            super::type_name(a),
            super::type_name(b)
        ))),
    }
}

/// `<list>.sum()`: the sum of ints, uints, doubles or durations; 0 when empty.
pub(super) fn sum(c: &Call) -> ResolveResult {
    c.arity(0, 0)?;
    let list = recv_list(c)?;
    let Some(first) = list.first() else {
        return Ok(Value::Int(0));
    };
    let init = match first {
        Value::Int(_) => Value::Int(0),
        Value::UInt(_) => Value::UInt(0),
        Value::Float(_) => Value::Float(0.0),
        Value::Duration(_) => Value::Duration(Default::default()),
        _ => return Err(c.no_overload()),
    };
    list.iter().try_fold(init, |acc, v| add(c, &acc, v))
}

/// `<list>.max()` (`want` = Greater) or `<list>.min()` (`want` = Less); the
/// first of equal extremes wins; an empty list is an error.
pub(super) fn extreme(c: &Call, want: Ordering) -> ResolveResult {
    c.arity(0, 0)?;
    let mut items = recv_list(c)?.iter();
    let Some(mut best) = items.next() else {
        return Err(c.err(format!("{} called on empty list", c.name)));
    };
    for v in items {
        if compare(c, v, best)? == want {
            best = v;
        }
    }
    Ok(best.clone())
}

/// `<list>.indexOf(<value>)` / `<list>.lastIndexOf(<value>)` (`last`):
/// position of the first / last equal element, or -1.
pub(super) fn index_of(c: &Call, last: bool) -> ResolveResult {
    c.arity(1, 1)?;
    let list = recv_list(c)?;
    let needle = c.args.first().ok_or_else(|| c.no_overload())?;
    let found = if last {
        list.iter().rposition(|v| v == needle)
    } else {
        list.iter().position(|v| v == needle)
    };
    Ok(found.map_or(Value::Int(-1), to_int))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{assert_err, assert_true};

    #[test]
    fn is_sorted() {
        assert_true(&[
            "[1, 2, 2, 3].isSorted()",
            "[].isSorted()",
            "['a', 'b'].isSorted()",
            "![2, 1].isSorted()",
            "![1.0, 3.0, 2.0].isSorted()",
        ]);
        assert_err(&[
            ("[1, 'a'].isSorted()", "no such overload"),
            ("'ab'.isSorted()", "no such overload"),
        ]);
    }

    #[test]
    fn sum() {
        assert_true(&[
            "[1, 2, 3].sum() == 6",
            "[].sum() == 0",
            "[1.5, 2.5].sum() == 4.0",
            "[uint(1), uint(2)].sum() == uint(3)",
            "[duration('1s'), duration('2m')].sum() == duration('121s')",
            "[1, 2].sum() != 4",
        ]);
        assert_err(&[
            ("[9223372036854775807, 1].sum()", "integer overflow"),
            ("[1, 'a'].sum()", "no such overload"),
            ("['a'].sum()", "no such overload"),
        ]);
    }

    #[test]
    fn min_max() {
        assert_true(&[
            "[3, 1, 2].min() == 1",
            "[3, 1, 2].max() == 3",
            "['b', 'a'].min() == 'a'",
            "[1.5].max() == 1.5",
            "[2, 2].max() == 2",
        ]);
        assert_err(&[
            ("[].max()", "max called on empty list"),
            ("[].min()", "min called on empty list"),
            ("[1, 'a'].max()", "no such overload"),
            ("'abc'.max()", "no such overload"),
        ]);
    }

    #[test]
    fn index_of() {
        assert_true(&[
            "[1, 2, 3, 2].indexOf(2) == 1",
            "[1, 2, 3, 2].lastIndexOf(2) == 3",
            "[1, 2].indexOf(5) == -1",
            "[1, 2].lastIndexOf(5) == -1",
            "[].indexOf(1) == -1",
            "['a', 'b'].indexOf('b') == 1",
        ]);
        assert_err(&[
            ("[1, 2].indexOf()", "no such overload"),
            ("[1, 2].lastIndexOf(1, 2)", "no such overload"),
        ]);
    }
}
