//! The Kubernetes quantity library (`resource.Quantity` in CEL).
//!
//! # Precision
//! A quantity is held exactly as an `i128` count of nano units (10^-9). This is
//! the precision Kubernetes itself keeps: `ParseQuantity` rounds anything finer
//! up (away from zero) to 1n, and caps binary-suffixed values at 2^63-1. Sums
//! and differences stay exact. The only departure: magnitudes above about
//! 1.7e29 (which Kubernetes can hold for decimal exponents such as `1e30`) are
//! rejected with an error instead of being represented.
//!
//! Parsing mirrors `resource.ParseQuantity`: optional sign, digits with an
//! optional `.`, then a suffix (`n u m "" k M G T P E`, `Ki Mi Gi Ti Pi Ei`, or
//! `e`/`E` with a signed exponent). The payload of a quantity value is the nano
//! count in decimal, so `==` compares numeric values as Kubernetes does.

use super::{opaque, opaque_payload, Call, QUANTITY_KEY};
use cel::{ExecutionError, ResolveResult, Value};
use std::cmp::Ordering;

const NANO: i128 = 1_000_000_000;
/// Upstream's cap for binary-suffixed quantities: 2^63-1 units, in nano units.
const BINARY_CAP: i128 = i64::MAX as i128 * NANO;
const FORMAT_ERR: &str = "quantities must match the regular expression \
     '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
const SUFFIX_ERR: &str = "unable to parse quantity's suffix";
const RANGE_ERR: &str = "quantity is too large (magnitude above 1.7e29 is not supported)";

/// Multiplies a big-endian decimal digit vector by `m` in place.
fn mul_small(digits: &mut Vec<u8>, m: u64) {
    let mut carry = 0u64;
    for d in digits.iter_mut().rev() {
        let v = u64::from(*d) * m + carry;
        *d = (v % 10) as u8;
        carry = v / 10;
    }
    while carry > 0 {
        digits.insert(0, (carry % 10) as u8);
        carry /= 10;
    }
}

/// `digits * 10^k` rounded up to an integer, or `None` if it exceeds `i128`.
fn scaled_ceil(digits: &[u8], k: i64) -> Option<i128> {
    let digits = &digits[digits.iter().take_while(|&&d| d == 0).count()..];
    if digits.is_empty() {
        return Some(0);
    }
    let len = i64::try_from(digits.len()).ok()?;
    let keep = usize::try_from(len.saturating_add(k).clamp(0, len)).ok()?;
    let (int_part, frac) = digits.split_at(keep);
    if len.saturating_add(k) > 39 {
        return None;
    }
    let mut v: i128 = 0;
    for &d in int_part {
        v = v.checked_mul(10)?.checked_add(i128::from(d))?;
    }
    for _ in 0..k.max(0) {
        v = v.checked_mul(10)?;
    }
    if frac.iter().any(|&d| d != 0) {
        v = v.checked_add(1)?;
    }
    Some(v)
}

/// Parses a Kubernetes quantity string into nano units.
fn parse(s: &str) -> Result<i128, &'static str> {
    let b = s.as_bytes();
    if b.is_empty() {
        return Err(FORMAT_ERR);
    }
    let digits_from = |mut pos: usize| {
        while b.get(pos).is_some_and(u8::is_ascii_digit) {
            pos += 1;
        }
        pos
    };
    let negative = b.first() == Some(&b'-');
    let mut pos = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    let num_start = pos;
    pos = digits_from(pos);
    let num = &b[num_start..pos];
    let mut denom: &[u8] = &[];
    if b.get(pos) == Some(&b'.') {
        let start = pos + 1;
        pos = digits_from(start);
        denom = &b[start..pos];
    }
    let suffix_start = pos;
    while b.get(pos).is_some_and(|c| b"eEinumkKMGTP".contains(c)) {
        pos += 1;
    }
    if matches!(b.get(pos), Some(b'+' | b'-')) {
        pos += 1;
    }
    if digits_from(pos) != b.len() {
        return Err(FORMAT_ERR);
    }
    let suffix = s.get(suffix_start..).unwrap_or_default();
    let (binary, exp) = match suffix {
        "" => (false, 0),
        "n" => (false, -9),
        "u" => (false, -6),
        "m" => (false, -3),
        "k" => (false, 3),
        "M" => (false, 6),
        "G" => (false, 9),
        "T" => (false, 12),
        "P" => (false, 15),
        "E" => (false, 18),
        "Ki" => (true, 10),
        "Mi" => (true, 20),
        "Gi" => (true, 30),
        "Ti" => (true, 40),
        "Pi" => (true, 50),
        "Ei" => (true, 60),
        // Upstream parses an int64 and truncates it to int32; so do we.
        _ if suffix.len() > 1 && suffix.starts_with(['e', 'E']) => {
            let e = suffix.get(1..).unwrap_or_default().parse::<i64>();
            (false, e.map_err(|_| SUFFIX_ERR)? as i32)
        }
        _ => return Err(SUFFIX_ERR),
    };
    let mut digits: Vec<u8> = num.iter().chain(denom).map(|d| d - b'0').collect();
    let frac_len = i64::try_from(denom.len()).unwrap_or(i64::MAX);
    let mut k = 9 - frac_len;
    if binary {
        for _ in 0..exp / 10 {
            mul_small(&mut digits, 1024);
        }
    } else {
        k = k.saturating_add(i64::from(exp));
    }
    let magnitude = match (scaled_ceil(&digits, k), binary) {
        (Some(v), true) => v.min(BINARY_CAP),
        (None, true) => BINARY_CAP,
        (Some(v), false) => v,
        (None, false) => return Err(RANGE_ERR),
    };
    Ok(if negative { -magnitude } else { magnitude })
}

fn value(c: &Call, nanos: Option<i128>) -> ResolveResult {
    let nanos = nanos.ok_or_else(|| c.err(RANGE_ERR))?;
    Ok(opaque(QUANTITY_KEY, nanos.to_string()))
}

/// The nano count held by a quantity value.
fn nanos(c: &Call, v: &Value) -> Result<i128, ExecutionError> {
    let payload = opaque_payload(v, QUANTITY_KEY).ok_or_else(|| c.no_overload())?;
    payload
        .parse::<i128>()
        .map_err(|_| c.err("corrupt quantity value"))
}

fn recv(c: &Call) -> Result<i128, ExecutionError> {
    c.arity(0, 0)?;
    nanos(c, &c.recv)
}

/// The other operand of add/sub: a quantity or an int.
fn operand(c: &Call) -> Result<i128, ExecutionError> {
    c.arity(1, 1)?;
    match c.args.first() {
        Some(Value::Int(n)) => Ok(i128::from(*n) * NANO),
        Some(v) => nanos(c, v),
        None => Err(c.no_overload()),
    }
}

fn compare(c: &Call) -> Result<Ordering, ExecutionError> {
    c.arity(1, 1)?;
    let other = c.args.first().ok_or_else(|| c.no_overload())?;
    Ok(nanos(c, &c.recv)?.cmp(&nanos(c, other)?))
}

/// `isQuantity(<string>)`.
pub(super) fn is_quantity(c: &Call) -> ResolveResult {
    c.arity(0, 0)?;
    Ok(Value::Bool(parse(c.recv_str()?).is_ok()))
}

/// `quantity(<string>)`.
pub(super) fn quantity(c: &Call) -> ResolveResult {
    c.arity(0, 0)?;
    value(c, Some(parse(c.recv_str()?).map_err(|e| c.err(e))?))
}

/// `<quantity>.sign()`: -1, 0 or 1.
pub(super) fn sign(c: &Call) -> ResolveResult {
    Ok(Value::Int(recv(c)?.signum() as i64))
}

/// The value as an int64 when it is a whole number that fits.
fn as_i64(v: i128) -> Option<i64> {
    if v % NANO == 0 {
        i64::try_from(v / NANO).ok()
    } else {
        None
    }
}

/// `<quantity>.isInteger()`: `asInteger()` would succeed.
pub(super) fn is_integer(c: &Call) -> ResolveResult {
    Ok(Value::Bool(as_i64(recv(c)?).is_some()))
}

/// `<quantity>.asInteger()`.
pub(super) fn as_integer(c: &Call) -> ResolveResult {
    as_i64(recv(c)?)
        .map(Value::Int)
        .ok_or_else(|| c.err("cannot convert value to integer"))
}

/// `<quantity>.asApproximateFloat()`.
pub(super) fn as_approximate_float(c: &Call) -> ResolveResult {
    let v = recv(c)?;
    Ok(Value::Float(if v % NANO == 0 {
        (v / NANO) as f64
    } else {
        v as f64 / 1e9
    }))
}

/// `<quantity>.add(<quantity or int>)`.
pub(super) fn add(c: &Call) -> ResolveResult {
    value(c, nanos(c, &c.recv)?.checked_add(operand(c)?))
}

/// `<quantity>.sub(<quantity or int>)`.
pub(super) fn sub(c: &Call) -> ResolveResult {
    value(c, nanos(c, &c.recv)?.checked_sub(operand(c)?))
}

/// `<quantity>.isGreaterThan(<quantity>)`.
pub(super) fn is_greater_than(c: &Call) -> ResolveResult {
    Ok(Value::Bool(compare(c)? == Ordering::Greater))
}

/// `<quantity>.isLessThan(<quantity>)`.
pub(super) fn is_less_than(c: &Call) -> ResolveResult {
    Ok(Value::Bool(compare(c)? == Ordering::Less))
}

/// `<quantity>.compareTo(<quantity>)`: -1, 0 or 1.
pub(super) fn compare_to(c: &Call) -> ResolveResult {
    Ok(Value::Int(compare(c)? as i64))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{assert_err, assert_true};
    use super::parse;

    #[test]
    fn parse_values() {
        let n = 1_000_000_000i128;
        for (s, want) in [
            ("0", 0),
            ("1", n),
            ("-1.5", -3 * n / 2),
            ("+2", 2 * n),
            ("100m", n / 10),
            ("1n", 1),
            ("0.1n", 1),
            ("-0.0000000001", -1),
            ("1.5Gi", 1_610_612_736 * n),
            ("1Ki", 1024 * n),
            ("0.5Ki", 512 * n),
            ("8Ei", i64::MAX as i128 * n),
            ("1E", 1_000_000_000_000_000_000 * n),
            ("1e3", 1000 * n),
            ("1E-3", n / 1000),
            ("12e+2", 1200 * n),
            ("1.", n),
            (".5", n / 2),
            ("007", 7 * n),
            ("1e20", 100_000_000_000_000_000_000 * n),
            ("1e4294967296", n),
        ] {
            assert_eq!(parse(s), Ok(want), "{s}");
        }
        for s in [
            "", "abc", "1.2.3", "1K", "1e", "1Kii", "1 k", "1e+", "1Mi1", "1e30", "--1",
        ] {
            assert!(parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn construction() {
        assert_true(&[
            "isQuantity('1.5Gi')",
            "isQuantity('100m')",
            "!isQuantity('1K')",
            "!isQuantity('abc')",
            "quantity('1k') == quantity('1000')",
            "quantity('1Ki') != quantity('1k')",
        ]);
        assert_err(&[
            (
                "quantity('abc')",
                "quantities must match the regular expression",
            ),
            ("quantity('1K')", "unable to parse quantity's suffix"),
            ("quantity(1)", "no such overload"),
        ]);
    }

    #[test]
    fn accessors() {
        assert_true(&[
            "quantity('50k').sign() == 1",
            "quantity('-50k').sign() == -1",
            "quantity('0').sign() == 0",
            "sign(quantity('-1')) == -1",
            "quantity('50k').isInteger()",
            "!quantity('50m').isInteger()",
            "!quantity('9999999999999999999').isInteger()",
            "quantity('50k').asInteger() == 50000",
            "quantity('1.5Ki').asInteger() == 1536",
            "quantity('50m').asApproximateFloat() == 0.05",
            "quantity('1Mi').asApproximateFloat() == 1048576.0",
        ]);
        assert_err(&[
            (
                "quantity('50m').asInteger()",
                "cannot convert value to integer",
            ),
            ("'50k'.sign()", "no such overload"),
            (
                "{'__bosun_quantity__': 'x'}.sign()",
                "corrupt quantity value",
            ),
        ]);
    }

    #[test]
    fn arithmetic() {
        assert_true(&[
            "quantity('50k').add(quantity('20k')) == quantity('70k')",
            "quantity('50k').add(20) == quantity('50020')",
            "quantity('50k').sub(quantity('20k')) == quantity('30k')",
            "quantity('50k').sub(20) == quantity('49980')",
            "quantity('100m').add(quantity('1n')) == quantity('100000001n')",
            "quantity('1').sub(quantity('2')).sign() == -1",
            "quantity('8Ei').add(quantity('8Ei')).isInteger() == false",
        ]);
        assert_err(&[
            ("quantity('1').add('1')", "no such overload"),
            ("quantity('1').sub()", "no such overload"),
            (
                "quantity('1e29').add(quantity('1e29')).add(quantity('1e29'))",
                "too large",
            ),
        ]);
    }

    #[test]
    fn comparison() {
        assert_true(&[
            "quantity('200M').isGreaterThan(quantity('100M'))",
            "!quantity('100M').isGreaterThan(quantity('100M'))",
            "quantity('50M').isLessThan(quantity('100M'))",
            "!quantity('1Gi').isLessThan(quantity('1G'))",
            "quantity('1k').compareTo(quantity('1000')) == 0",
            "quantity('1k').compareTo(quantity('2k')) == -1",
            "quantity('3k').compareTo(quantity('2k')) == 1",
        ]);
        assert_err(&[
            ("quantity('1').isGreaterThan(1)", "no such overload"),
            ("quantity('1').compareTo('1')", "no such overload"),
            ("1.isLessThan(quantity('1'))", "no such overload"),
        ]);
    }
}
