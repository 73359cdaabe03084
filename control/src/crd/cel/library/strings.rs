//! cel-go `ext.Strings` (version 2, as Kubernetes configures it) and the
//! Kubernetes regex library (`find`, `findAll`).
//!
//! Indexes count Unicode code points, as in cel-go; out-of-range indexes give
//! cel-go's `index out of range: N` error. `format` and `strings.quote` are not
//! implemented. `reverse` lives in the parent module (shared with lists).

use super::{to_int, Call};
use cel::{ResolveResult, Value};
use std::sync::Arc;

fn out_of_range(c: &Call, i: i64) -> cel::ExecutionError {
    c.err(format!("index out of range: {i}"))
}

/// Byte offsets of every code point of `s`, plus `s.len()` as the last entry.
fn boundaries(s: &str) -> Vec<usize> {
    s.char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(s.len()))
        .collect()
}

/// `<string>.charAt(<int>)`: the code point at an index; `''` at the length.
pub(super) fn char_at(c: &Call) -> ResolveResult {
    c.arity(1, 1)?;
    let s = c.recv_str()?;
    let i = c.int(0)?;
    let bounds = boundaries(s);
    let idx = usize::try_from(i)
        .ok()
        .filter(|&i| i < bounds.len())
        .ok_or_else(|| out_of_range(c, i))?;
    let end = bounds.get(idx + 1).copied().unwrap_or(s.len());
    Ok(s.get(bounds[idx]..end).unwrap_or_default().into())
}

/// `<string>.indexOf(<string>[, <int>])`, in code points; -1 when absent.
pub(super) fn index_of(c: &Call) -> ResolveResult {
    c.arity(1, 2)?;
    let (hay, needle) = (c.recv_str()?, c.str(0)?);
    let offset = c.int_or(1, 0)?;
    if needle.is_empty() {
        return Ok(Value::Int(offset));
    }
    let hay: Vec<char> = hay.chars().collect();
    let needle: Vec<char> = needle.chars().collect();
    let start = usize::try_from(offset)
        .ok()
        .filter(|&o| o < hay.len())
        .ok_or_else(|| out_of_range(c, offset))?;
    let found = hay
        .get(start..)
        .and_then(|tail| tail.windows(needle.len()).position(|w| w == needle))
        .map(|p| p + start);
    Ok(found.map_or(Value::Int(-1), to_int))
}

/// `<string>.lastIndexOf(<string>[, <int>])`: the last match starting at or
/// before the offset (default: the end), in code points; -1 when absent.
pub(super) fn last_index_of(c: &Call) -> ResolveResult {
    c.arity(1, 2)?;
    let (hay, needle) = (c.recv_str()?, c.str(0)?);
    let hay: Vec<char> = hay.chars().collect();
    let len = i64::try_from(hay.len()).unwrap_or(i64::MAX);
    let offset = c.int_or(1, len.saturating_sub(1))?;
    if needle.is_empty() {
        return Ok(Value::Int(if c.args.len() > 1 { offset } else { len }));
    }
    let needle: Vec<char> = needle.chars().collect();
    let start = usize::try_from(offset)
        .ok()
        .filter(|&o| o < hay.len())
        .ok_or_else(|| out_of_range(c, offset))?;
    let Some(last_start) = hay.len().checked_sub(needle.len()) else {
        return Ok(Value::Int(-1));
    };
    let found = (0..=start.min(last_start))
        .rev()
        .find(|&i| hay.get(i..i + needle.len()) == Some(needle.as_slice()));
    Ok(found.map_or(Value::Int(-1), to_int))
}

/// `<string>.lowerAscii()`: lower-cases ASCII letters only.
pub(super) fn lower_ascii(c: &Call) -> ResolveResult {
    c.arity(0, 0)?;
    Ok(c.recv_str()?.to_ascii_lowercase().into())
}

/// `<string>.upperAscii()`: upper-cases ASCII letters only.
pub(super) fn upper_ascii(c: &Call) -> ResolveResult {
    c.arity(0, 0)?;
    Ok(c.recv_str()?.to_ascii_uppercase().into())
}

/// `<string>.replace(<old>, <new>[, <n>])`: Go `strings.Replace`; n < 0 = all.
pub(super) fn replace(c: &Call) -> ResolveResult {
    c.arity(2, 3)?;
    let (s, old, new) = (c.recv_str()?, c.str(0)?, c.str(1)?);
    let n = c.int_or(2, -1)?;
    Ok(match usize::try_from(n) {
        Ok(n) => s.replacen(old, new, n),
        Err(_) => s.replace(old, new),
    }
    .into())
}

/// `<string>.split(<sep>[, <n>])`: Go `strings.SplitN`; n < 0 = all, 0 = [].
pub(super) fn split(c: &Call) -> ResolveResult {
    c.arity(1, 2)?;
    let (s, sep) = (c.recv_str()?, c.str(0)?);
    let n = c.int_or(1, -1)?;
    let limit = usize::try_from(n).ok();
    let parts: Vec<&str> = match limit {
        Some(0) => Vec::new(),
        _ if sep.is_empty() => {
            // Go explodes into code points; the last part keeps the rest.
            let bounds = boundaries(s);
            let count = bounds.len() - 1;
            let n = limit.map_or(count, |l| l.min(count));
            (0..n)
                .map(|i| {
                    let end = if i + 1 == n { s.len() } else { bounds[i + 1] };
                    s.get(bounds[i]..end).unwrap_or_default()
                })
                .collect()
        }
        Some(n) => s.splitn(n, sep).collect(),
        None => s.split(sep).collect(),
    };
    Ok(parts
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>()
        .into())
}

/// `<string>.substring(<start>[, <end>])`, in code points.
pub(super) fn substring(c: &Call) -> ResolveResult {
    c.arity(1, 2)?;
    let s = c.recv_str()?;
    let bounds = boundaries(s);
    let start = c.int(0)?;
    let end = if c.args.len() > 1 {
        let end = c.int(1)?;
        if start > end {
            return Err(c.err(format!(
                "invalid substring range. start: {start}, end: {end}"
            )));
        }
        Some(end)
    } else {
        None
    };
    let at = |i: i64| {
        usize::try_from(i)
            .ok()
            .and_then(|i| bounds.get(i).copied())
            .ok_or_else(|| out_of_range(c, i))
    };
    let from = at(start)?;
    let to = match end {
        Some(end) => at(end)?,
        None => s.len(),
    };
    Ok(s.get(from..to).unwrap_or_default().into())
}

/// `<string>.trim()`: strips leading and trailing Unicode whitespace.
pub(super) fn trim(c: &Call) -> ResolveResult {
    c.arity(0, 0)?;
    Ok(c.recv_str()?.trim().into())
}

/// `<list<string>>.join([<sep>])`.
pub(super) fn join(c: &Call) -> ResolveResult {
    c.arity(0, 1)?;
    let Value::List(items) = &c.recv else {
        return Err(c.no_overload());
    };
    let sep = if c.args.is_empty() { "" } else { c.str(0)? };
    let parts = items
        .iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.as_str()),
            other => Err(c.err(format!("join: list element {other:?} is not a string"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(parts.join(sep).into())
}

fn compile(c: &Call, pattern: &str) -> Result<regex::Regex, cel::ExecutionError> {
    regex::Regex::new(pattern).map_err(|e| c.err(format!("Illegal regex: {e}")))
}

/// `<string>.find(<regex>)`: the first match, or `''`.
pub(super) fn find(c: &Call) -> ResolveResult {
    c.arity(1, 1)?;
    let (s, re) = (c.recv_str()?, compile(c, c.str(0)?)?);
    Ok(re.find(s).map_or("", |m| m.as_str()).into())
}

/// `<string>.findAll(<regex>[, <limit>])`: all matches (at most `limit` when
/// it is >= 0), with Go's rules for empty matches.
pub(super) fn find_all(c: &Call) -> ResolveResult {
    c.arity(1, 2)?;
    let (s, re) = (c.recv_str()?, compile(c, c.str(0)?)?);
    let limit = usize::try_from(c.int_or(1, -1)?).unwrap_or(usize::MAX);
    let found: Vec<Value> = re
        .find_iter(s)
        .take(limit)
        .map(|m| Value::String(Arc::new(m.as_str().to_string())))
        .collect();
    Ok(Value::List(Arc::new(found)))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{assert_err, assert_true};

    #[test]
    fn char_at() {
        assert_true(&[
            "'hello'.charAt(4) == 'o'",
            "'hello'.charAt(5) == ''",
            "'©αT'.charAt(1) == 'α'",
            "charAt('abc', 0) == 'a'",
        ]);
        assert_err(&[
            ("'hello'.charAt(6)", "index out of range: 6"),
            ("'hello'.charAt(-1)", "index out of range: -1"),
            ("'hello'.charAt('x')", "no such overload"),
        ]);
    }

    #[test]
    fn index_of() {
        assert_true(&[
            "'hello mellow'.indexOf('') == 0",
            "'hello mellow'.indexOf('ello') == 1",
            "'hello mellow'.indexOf('jello') == -1",
            "'hello mellow'.indexOf('', 2) == 2",
            "'hello mellow'.indexOf('ello', 2) == 7",
            "'ta©o©αT'.indexOf('©αT', 3) == 4",
            "'ab'.indexOf('abc') == -1",
        ]);
        assert_err(&[
            (
                "'hello mellow'.indexOf('ello', 20)",
                "index out of range: 20",
            ),
            ("'hello'.indexOf('l', -1)", "index out of range: -1"),
            ("'hello'.indexOf(1)", "no such overload"),
        ]);
    }

    #[test]
    fn last_index_of() {
        assert_true(&[
            "'hello mellow'.lastIndexOf('') == 12",
            "'hello mellow'.lastIndexOf('ello') == 7",
            "'hello mellow'.lastIndexOf('jello') == -1",
            "'hello mellow'.lastIndexOf('ello', 6) == 1",
            "'hello mellow'.lastIndexOf('', 3) == 3",
            "'ta©o©αT'.lastIndexOf('©') == 4",
            "'ab'.lastIndexOf('abc') == -1",
        ]);
        assert_err(&[
            (
                "'hello mellow'.lastIndexOf('ello', -1)",
                "index out of range: -1",
            ),
            ("'hello'.lastIndexOf('l', 5)", "index out of range: 5"),
            ("''.lastIndexOf('a')", "index out of range: -1"),
        ]);
    }

    #[test]
    fn case_and_trim() {
        assert_true(&[
            "'TacoCÆt Xii'.lowerAscii() == 'tacocÆt xii'",
            "'TacoCæt Xii'.upperAscii() == 'TACOCæT XII'",
            "'  \\ttrim\\n  '.trim() == 'trim'",
            "'\\u00a0x\\u2003'.trim() == 'x'",
            "'x'.trim() != ' x'",
        ]);
        assert_err(&[
            ("1.lowerAscii()", "no such overload"),
            ("'a'.upperAscii(1)", "no such overload"),
            ("[1].trim()", "no such overload"),
        ]);
    }

    #[test]
    fn replace() {
        assert_true(&[
            "'hello hello'.replace('he', 'we') == 'wello wello'",
            "'hello hello'.replace('he', 'we', -1) == 'wello wello'",
            "'hello hello'.replace('he', 'we', 1) == 'wello hello'",
            "'hello hello'.replace('he', 'we', 0) == 'hello hello'",
            "'abc'.replace('', '-') == '-a-b-c-'",
            "'abc'.replace('x', 'y') == 'abc'",
        ]);
        assert_err(&[("'a'.replace('a')", "no such overload")]);
    }

    #[test]
    fn split() {
        assert_true(&[
            "'hello hello hello'.split(' ') == ['hello', 'hello', 'hello']",
            "'hello hello hello'.split(' ', 0) == []",
            "'hello hello hello'.split(' ', 1) == ['hello hello hello']",
            "'hello hello hello'.split(' ', 2) == ['hello', 'hello hello']",
            "'hello hello hello'.split(' ', -1) == ['hello', 'hello', 'hello']",
            "'a©c'.split('') == ['a', '©', 'c']",
            "'a©c'.split('', 2) == ['a', '©c']",
            "''.split('') == []",
            "''.split(',') == ['']",
        ]);
        assert_err(&[("'a'.split(1)", "no such overload")]);
    }

    #[test]
    fn substring() {
        assert_true(&[
            "'tacocat'.substring(4) == 'cat'",
            "'tacocat'.substring(0, 4) == 'taco'",
            "'tacocat'.substring(7) == ''",
            "'ta©o©αT'.substring(2, 6) == '©o©α'",
            "'abc'.substring(1, 1) == ''",
        ]);
        assert_err(&[
            ("'tacocat'.substring(-1)", "index out of range: -1"),
            ("'tacocat'.substring(8)", "index out of range: 8"),
            (
                "'tacocat'.substring(2, 1)",
                "invalid substring range. start: 2, end: 1",
            ),
            ("'tacocat'.substring(0, 9)", "index out of range: 9"),
        ]);
    }

    #[test]
    fn join() {
        assert_true(&[
            "['hello', 'mellow'].join() == 'hellomellow'",
            "['hello', 'mellow'].join(' ') == 'hello mellow'",
            "[].join('/') == ''",
            "['a'].join('-') != 'a-'",
        ]);
        assert_err(&[
            ("['a', 1].join('-')", "is not a string"),
            ("'ab'.join('-')", "no such overload"),
        ]);
    }

    #[test]
    fn find() {
        assert_true(&[
            "'abc 123'.find('[0-9]+') == '123'",
            "'abc'.find('[0-9]+') == ''",
            "'ab12cd34'.findAll('[0-9]+') == ['12', '34']",
            "'ab12cd34'.findAll('[0-9]+', 1) == ['12']",
            "'ab12cd34'.findAll('[0-9]+', 0) == []",
            "'abc'.findAll('[0-9]') == []",
            "'baaab'.findAll('a*') == ['', 'aaa', '']",
        ]);
        assert_err(&[
            ("'abc'.find('[')", "Illegal regex"),
            ("'abc'.findAll('(')", "Illegal regex"),
            ("'abc'.findAll('a', 'b')", "no such overload"),
        ]);
    }
}
