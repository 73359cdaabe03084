//! The Kubernetes URL library: `url`, `isURL` and the `get*` accessors.
//!
//! Kubernetes validates with Go's `url.ParseRequestURI` (absolute URI or
//! absolute path, no relative references) and then reads components from
//! `url.Parse` (which splits off the `#fragment`). This file re-implements the
//! parts of Go's `net/url` those two need, byte for byte where it matters:
//! scheme detection, authority/host/port checks, percent-escape validation,
//! `EscapedPath` and `Query`. Url values store the original string.

use super::{opaque, opaque_payload, Call, URL_KEY};
use cel::{ExecutionError, ResolveResult, Value};
use std::collections::HashMap;

/// Go `net/url` encoding modes that matter here.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Path,
    Host,
    Zone,
    QueryComponent,
    /// Userinfo and fragment: only percent-escapes are checked.
    Other,
}

/// Go's `shouldEscape` for the path, host and zone modes.
fn should_escape(c: u8, mode: Mode) -> bool {
    if c.is_ascii_alphanumeric() {
        return false;
    }
    if matches!(mode, Mode::Host | Mode::Zone) && b"!$&'()*+,;=:[]<>\"".contains(&c) {
        return false;
    }
    match c {
        b'-' | b'_' | b'.' | b'~' => false,
        b'$' | b'&' | b'+' | b',' | b'/' | b':' | b';' | b'=' | b'?' | b'@' => {
            mode != Mode::Path || c == b'?'
        }
        _ => true,
    }
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// Go's `unescape`: validates percent-escapes (and host characters) and decodes.
fn unescape(s: &str, mode: Mode) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'%' => {
                let escape =
                    || String::from_utf8_lossy(b.get(i..(i + 3).min(b.len())).unwrap_or_default());
                let (Some(hi), Some(lo)) = (
                    b.get(i + 1).and_then(|&h| hex_val(h)),
                    b.get(i + 2).and_then(|&l| hex_val(l)),
                ) else {
                    return Err(format!("invalid URL escape {:?}", escape()));
                };
                let v = hi << 4 | lo;
                let is_pct25 = v == b'%';
                if (mode == Mode::Host && hi < 8 && !is_pct25)
                    || (mode == Mode::Zone
                        && !is_pct25
                        && v != b' '
                        && should_escape(v, Mode::Host))
                {
                    return Err(format!("invalid URL escape {:?}", escape()));
                }
                out.push(v);
                i += 3;
            }
            b'+' => {
                out.push(if mode == Mode::QueryComponent {
                    b' '
                } else {
                    b'+'
                });
                i += 1;
            }
            _ => {
                if matches!(mode, Mode::Host | Mode::Zone) && c < 0x80 && should_escape(c, mode) {
                    return Err(format!("invalid character {:?} in host name", c as char));
                }
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn valid_optional_port(port: &str) -> bool {
    port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// Go's `parseHost`: bracketed IPv6 literals (with `%25` zones) or name[:port].
fn parse_host(host: &str) -> Result<String, String> {
    let lossy = |v: Vec<u8>| String::from_utf8_lossy(&v).into_owned();
    if host.starts_with('[') {
        let Some(i) = host.rfind(']') else {
            return Err("missing ']' in host".to_string());
        };
        let (literal, colon_port) = host.split_at(i + 1);
        if !valid_optional_port(colon_port) {
            return Err(format!("invalid port {colon_port:?} after host"));
        }
        if let Some(z) = literal.find("%25") {
            let (addr, zone) = literal.split_at(z);
            let (zone, bracket) = zone.split_at(zone.len() - 1);
            let mut out = unescape(addr, Mode::Host)?;
            out.extend(unescape(zone, Mode::Zone)?);
            out.extend(unescape(bracket, Mode::Host)?);
            out.extend(unescape(colon_port, Mode::Host)?);
            return Ok(lossy(out));
        }
    } else if let Some(i) = host.rfind(':') {
        let colon_port = &host[i..];
        if !valid_optional_port(colon_port) {
            return Err(format!("invalid port {colon_port:?} after host"));
        }
    }
    unescape(host, Mode::Host).map(lossy)
}

/// The components of a parsed URL that the library exposes.
#[derive(Default)]
struct Parts {
    scheme: String,
    host: String,
    /// The path as written (still escaped).
    raw_path: String,
    raw_query: String,
}

/// Go's `url.parse(raw, viaRequest)` without the fragment handling.
fn parse(raw: &str, via_request: bool) -> Result<Parts, String> {
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("net/url: invalid control character in URL".to_string());
    }
    if raw.is_empty() && via_request {
        return Err("empty url".to_string());
    }
    let mut parts = Parts::default();
    if raw == "*" {
        parts.raw_path = "*".to_string();
        return Ok(parts);
    }
    // Scheme: a letter then letters, digits, '+', '-', '.', up to ':'.
    let mut rest = raw;
    for (i, c) in raw.bytes().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => continue,
            b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => continue,
            b':' if i == 0 => return Err("missing protocol scheme".to_string()),
            b':' => {
                parts.scheme = raw[..i].to_ascii_lowercase();
                rest = &raw[i + 1..];
            }
            _ => {}
        }
        break;
    }
    let force_query = rest.ends_with('?') && rest.matches('?').count() == 1;
    let (before, query) = if force_query {
        (&rest[..rest.len() - 1], "")
    } else {
        rest.split_once('?').unwrap_or((rest, ""))
    };
    parts.raw_query = query.to_string();
    rest = before;
    if !rest.starts_with('/') {
        if !parts.scheme.is_empty() {
            return Ok(parts); // opaque URL such as mailto:x
        }
        if via_request {
            return Err("invalid URI for request".to_string());
        }
        if rest.split('/').next().is_some_and(|seg| seg.contains(':')) {
            return Err("first path segment in URL cannot contain colon".to_string());
        }
    }
    if (!parts.scheme.is_empty() || !via_request && !rest.starts_with("///"))
        && rest.starts_with("//")
    {
        let after = &rest[2..];
        let (authority, path) = after.split_at(after.find('/').unwrap_or(after.len()));
        let (userinfo, host) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        parts.host = parse_host(host)?;
        if let Some(u) = userinfo {
            let ok = u
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._:~!$&'()*+,;=%@".contains(c));
            if !ok {
                return Err("net/url: invalid userinfo".to_string());
            }
            unescape(u, Mode::Other)?;
        }
        rest = path;
    }
    unescape(rest, Mode::Path)?;
    parts.raw_path = rest.to_string();
    Ok(parts)
}

/// Validates like `url.ParseRequestURI`, then splits like `url.Parse`.
fn components(raw: &str) -> Result<Parts, String> {
    let wrap =
        |e: String| format!("URL parse error during conversion from string: parse {raw:?}: {e}");
    parse(raw, true).map_err(wrap)?;
    let (head, fragment) = raw.split_once('#').unwrap_or((raw, ""));
    let parts = parse(head, false).map_err(wrap)?;
    unescape(fragment, Mode::Other).map_err(wrap)?;
    Ok(parts)
}

/// Go's `EscapedPath`: the raw path when it is validly encoded, else re-escaped.
fn escaped_path(raw_path: &str) -> String {
    let valid = raw_path
        .bytes()
        .all(|c| b"!$&'()*+,;=:@[]%".contains(&c) || !should_escape(c, Mode::Path));
    if valid {
        return raw_path.to_string();
    }
    let decoded = unescape(raw_path, Mode::Path).unwrap_or_else(|_| raw_path.as_bytes().to_vec());
    decoded.iter().fold(String::new(), |mut out, &c| {
        if should_escape(c, Mode::Path) {
            out.push_str(&format!("%{c:02X}"));
        } else {
            out.push(char::from(c));
        }
        out
    })
}

/// Go's `splitHostPort` behind `Hostname()` and `Port()`.
fn split_host_port(host: &str) -> (&str, &str) {
    let (mut name, mut port) = (host, "");
    if let Some(i) = host.rfind(':') {
        if valid_optional_port(&host[i..]) {
            (name, port) = (&host[..i], &host[i + 1..]);
        }
    }
    if let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        name = inner;
    }
    (name, port)
}

/// Go's `ParseQuery`, skipping malformed pairs as `URL.Query()` does.
fn query(raw_query: &str) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for pair in raw_query
        .split('&')
        .filter(|p| !p.is_empty() && !p.contains(';'))
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Ok(k), Ok(v)) = (
            unescape(k, Mode::QueryComponent),
            unescape(v, Mode::QueryComponent),
        ) else {
            continue;
        };
        let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        out.entry(text(k)).or_default().push(text(v));
    }
    out
}

fn parts_of(c: &Call) -> Result<Parts, ExecutionError> {
    c.arity(0, 0)?;
    let raw = opaque_payload(&c.recv, URL_KEY).ok_or_else(|| c.no_overload())?;
    components(raw).map_err(|e| c.err(e))
}

/// `url(<string>)`.
pub(super) fn url(c: &Call) -> ResolveResult {
    c.arity(0, 0)?;
    let raw = c.recv_str()?;
    components(raw).map_err(|e| c.err(e))?;
    Ok(opaque(URL_KEY, raw.to_string()))
}

/// `isURL(<string>)`.
pub(super) fn is_url(c: &Call) -> ResolveResult {
    c.arity(0, 0)?;
    Ok(Value::Bool(components(c.recv_str()?).is_ok()))
}

/// `<url>.getScheme()`: lower-cased scheme, or `''`.
pub(super) fn get_scheme(c: &Call) -> ResolveResult {
    Ok(parts_of(c)?.scheme.into())
}

/// `<url>.getHost()`: host with port, IPv6 in brackets, or `''`.
pub(super) fn get_host(c: &Call) -> ResolveResult {
    Ok(parts_of(c)?.host.into())
}

/// `<url>.getHostname()`: host without port or brackets, or `''`.
pub(super) fn get_hostname(c: &Call) -> ResolveResult {
    Ok(split_host_port(&parts_of(c)?.host).0.into())
}

/// `<url>.getPort()`: the port, or `''`.
pub(super) fn get_port(c: &Call) -> ResolveResult {
    Ok(split_host_port(&parts_of(c)?.host).1.into())
}

/// `<url>.getEscapedPath()`.
pub(super) fn get_escaped_path(c: &Call) -> ResolveResult {
    Ok(escaped_path(&parts_of(c)?.raw_path).into())
}

/// `<url>.getQuery()`: map of key to the list of its (unescaped) values.
pub(super) fn get_query(c: &Call) -> ResolveResult {
    Ok(query(&parts_of(c)?.raw_query).into())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{assert_err, assert_true};

    #[test]
    fn parsing() {
        assert_true(&[
            "isURL('https://user:pass@example.com:80/path?query=val#fragment')",
            "isURL('/absolute-path')",
            "isURL('mailto:someone@example.com')",
            "isURL('*')",
            "!isURL('https://a:b:c/')",
            "!isURL('../relative-path')",
            "!isURL('')",
            "!isURL('https://exa mple.com/')",
            "!isURL('/bad%zzescape')",
            "!isURL(':nope')",
            "!isURL('http://[::1/')",
            "url('https://example.com/') == url('https://example.com/')",
        ]);
        assert_err(&[
            ("url('../relative-path')", "invalid URI for request"),
            ("url('https://a:b:c/')", "invalid port \":c\" after host"),
            ("url('/a\\tb')", "invalid control character"),
            ("url(1)", "no such overload"),
        ]);
    }

    #[test]
    fn accessors() {
        assert_true(&[
            "url('/path').getScheme() == ''",
            "url('HTTPS://example.com/').getScheme() == 'https'",
            "url('https://example.com:80/').getHost() == 'example.com:80'",
            "url('https://[::1]:80/').getHost() == '[::1]:80'",
            "url('/path').getHost() == ''",
            "url('//other/path').getHost() == 'other'",
            "url('https://example.com:80/').getHostname() == 'example.com'",
            "url('https://[::1]:80/').getHostname() == '::1'",
            "url('https://[fe80::1%25en0]/').getHostname() == 'fe80::1%en0'",
            "url('https://127.0.0.1/').getHostname() == '127.0.0.1'",
            "url('https://example.com:80/').getPort() == '80'",
            "url('https://example.com/').getPort() == ''",
            "url('https://example.com/path').getEscapedPath() == '/path'",
            "url('https://example.com/path with spaces/').getEscapedPath() == '/path%20with%20spaces/'",
            "url('https://example.com/a%2Fb').getEscapedPath() == '/a%2Fb'",
            "url('https://example.com/p#frag').getEscapedPath() == '/p'",
            "url('https://example.com').getEscapedPath() == ''",
            "url('https://example.com/path?k1=a&k2=b&k2=c').getQuery() == {'k1': ['a'], 'k2': ['b', 'c']}",
            "url('https://example.com/path?key with spaces=value with spaces').getQuery() == {'key with spaces': ['value with spaces']}",
            "url('https://example.com/?a=1+2&b=%41&c&bad=%zz&d=x;y').getQuery() == {'a': ['1 2'], 'b': ['A'], 'c': ['']}",
            "url('https://example.com/path?').getQuery() == {}",
            "url('https://example.com/path').getQuery() == {}",
        ]);
        assert_err(&[
            ("'https://x/'.getHost()", "no such overload"),
            ("ip('::1').getScheme()", "no such overload"),
            (
                "{'__bosun_url__': '../x'}.getHost()",
                "invalid URI for request",
            ),
        ]);
    }
}
