//! Kubernetes' CEL extension libraries for the `cel` crate (cel-rust 0.11).
//!
//! Kubernetes evaluates CRD `x-kubernetes-validations` rules with cel-go plus a
//! set of extension libraries. This module re-creates the runtime behaviour of
//! the ones CRD rules use most:
//!
//! * `strings`: cel-go `ext.Strings` (version 2, as Kubernetes configures it)
//!   plus `reverse`, and the Kubernetes regex library (`find`, `findAll`).
//! * `lists`: the Kubernetes list library (`isSorted`, `sum`, `min`, `max`,
//!   `indexOf`, `lastIndexOf` on lists).
//! * `url`: the Kubernetes URL library (`url`, `isURL`, `getScheme`, ...).
//! * `net`: the Kubernetes IP and CIDR libraries (`ip`, `cidr`, ...).
//! * `quantity`: the Kubernetes quantity library (`quantity`, `add`, ...).
//!
//! # Calling convention
//! Every function is registered as a plain `fn(&FunctionContext) -> ResolveResult`
//! and normalised by `Call`: the receiver-style call `'a'.f(x)` and the global
//! call `f('a', x)` both yield the receiver `'a'` and the arguments `[x]`. Names
//! used by several libraries (`indexOf`, `lastIndexOf`, `ip`, `max`, `min`,
//! `reverse`, `size`, `string`) are registered once here and dispatch on the
//! receiver's type.
//!
//! # Opaque values
//! cel-rust has no custom types, so url, ip, cidr and quantity values are
//! represented as a `Value::Map` with exactly one reserved key (see
//! `IP_KEY` and friends) whose value is a canonical string:
//!
//! | type     | key                  | payload                                       |
//! |----------|----------------------|-----------------------------------------------|
//! | ip       | `__bosun_ip__`       | canonical address (`2001:db8::1`)             |
//! | cidr     | `__bosun_cidr__`     | canonical address + `/bits` (not masked)      |
//! | url      | `__bosun_url__`      | the string given to `url()`                   |
//! | quantity | `__bosun_quantity__` | exact value in nano units (10^-9) as decimal  |
//!
//! Because the payload is canonical, CEL `==` between two values of the same
//! kind behaves as in Kubernetes (`ip('::1') == ip('0::1')`,
//! `quantity('1k') == quantity('1000')`). Every method re-validates the payload,
//! so a user-supplied map that happens to use a reserved key can only produce
//! an error, never a panic or an invalid value.
//!
//! `ip.isCanonical(s)` parses as a method call on the identifier `ip`, so
//! [`register`] also adds a root variable named `ip` holding a namespace marker.

mod lists;
mod net;
mod optional;

pub use optional::{none as optional_none, of as optional_of};
mod quantity;
mod strings;
mod url;

use cel::extractors::{Arguments, This};
use cel::objects::{Key, Map};
use cel::{Context, ExecutionError, FunctionContext, ResolveResult, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Reserved map key marking an IP address value.
pub(crate) const IP_KEY: &str = "__bosun_ip__";
/// Reserved map key marking a CIDR value.
pub(crate) const CIDR_KEY: &str = "__bosun_cidr__";
/// Reserved map key marking a URL value.
pub(crate) const URL_KEY: &str = "__bosun_url__";
/// Reserved map key marking a quantity value.
pub(crate) const QUANTITY_KEY: &str = "__bosun_quantity__";
/// Reserved map key of the `ip` namespace marker (for `ip.isCanonical`).
pub(crate) const NAMESPACE_KEY: &str = "__bosun_namespace__";

/// Registers Kubernetes' CEL extension functions on a root context.
///
/// Also replaces `size` (strings are measured in code points, as in CEL),
/// `string` (accepts ip and cidr values), and `max`/`min` (also usable on a
/// list receiver, `[1, 2].max()`), and adds the root variable `ip` so that
/// `ip.isCanonical(s)` resolves. Has no effect on child contexts.
pub fn register(ctx: &mut Context<'_>) {
    ctx.add_variable_from_value("ip", opaque(NAMESPACE_KEY, "ip".to_string()));
    ctx.add_variable_from_value("optional", opaque(NAMESPACE_KEY, "optional".to_string()));

    // Names shared by several libraries, dispatched on the receiver.
    ctx.add_function("size", size);
    ctx.add_function("string", string);
    ctx.add_function("max", max);
    ctx.add_function("min", min);
    ctx.add_function("indexOf", index_of);
    ctx.add_function("lastIndexOf", last_index_of);
    ctx.add_function("reverse", reverse);
    ctx.add_function("ip", ip);

    let table: &[(&str, Method)] = &[
        // strings ext + regex
        ("charAt", strings::char_at),
        ("lowerAscii", strings::lower_ascii),
        ("upperAscii", strings::upper_ascii),
        ("replace", strings::replace),
        ("split", strings::split),
        ("substring", strings::substring),
        ("trim", strings::trim),
        ("join", strings::join),
        ("find", strings::find),
        ("findAll", strings::find_all),
        // lists
        ("isSorted", lists::is_sorted),
        ("sum", lists::sum),
        // url
        ("url", url::url),
        ("isURL", url::is_url),
        ("getScheme", url::get_scheme),
        ("getHost", url::get_host),
        ("getHostname", url::get_hostname),
        ("getPort", url::get_port),
        ("getEscapedPath", url::get_escaped_path),
        ("getQuery", url::get_query),
        // ip / cidr
        ("isIP", net::is_ip),
        ("isCanonical", net::is_canonical),
        ("family", net::family),
        ("isUnspecified", net::is_unspecified),
        ("isLoopback", net::is_loopback),
        ("isLinkLocalMulticast", net::is_link_local_multicast),
        ("isLinkLocalUnicast", net::is_link_local_unicast),
        ("isGlobalUnicast", net::is_global_unicast),
        ("isCIDR", net::is_cidr),
        ("cidr", net::cidr),
        ("containsIP", net::contains_ip),
        ("containsCIDR", net::contains_cidr),
        ("masked", net::masked),
        ("prefixLength", net::prefix_length),
        // optional values (optionalOldSelf)
        ("hasValue", optional::has_value),
        ("value", optional::value),
        ("orValue", optional::or_value),
        ("of", optional::optional_of),
        ("none", optional::optional_none),
        // quantity
        ("isQuantity", quantity::is_quantity),
        ("quantity", quantity::quantity),
        ("sign", quantity::sign),
        ("isInteger", quantity::is_integer),
        ("asInteger", quantity::as_integer),
        ("asApproximateFloat", quantity::as_approximate_float),
        ("add", quantity::add),
        ("sub", quantity::sub),
        ("isGreaterThan", quantity::is_greater_than),
        ("isLessThan", quantity::is_less_than),
        ("compareTo", quantity::compare_to),
    ];
    for &(name, f) in table {
        ctx.add_function(name, move |ftx: &FunctionContext| f(&Call::new(ftx)?));
    }
}

/// Every function name a context set up with `Context::default()` + [`register`]
/// offers that Kubernetes CEL also has. `isCanonical` is reachable only as
/// `ip.isCanonical(...)`; `reverse` is cel-go strings v3 / lists v2.
#[rustfmt::skip]
pub const FUNCTIONS: &[&str] = &[
    // cel crate built-ins that match Kubernetes CEL
    "contains", "size", "startsWith", "endsWith", "matches", "string", "bytes", "double", "int",
    "uint", "duration", "timestamp", "getFullYear", "getMonth", "getDayOfYear", "getDayOfMonth",
    "getDate", "getDayOfWeek", "getHours", "getMinutes", "getSeconds", "getMilliseconds",
    // strings ext + regex
    "charAt", "indexOf", "lastIndexOf", "lowerAscii", "upperAscii", "replace", "split",
    "substring", "trim", "join", "reverse", "find", "findAll",
    // lists
    "isSorted", "sum", "min", "max",
    // url
    "url", "isURL", "getScheme", "getHost", "getHostname", "getPort", "getEscapedPath", "getQuery",
    // ip / cidr
    "ip", "isIP", "isCanonical", "family", "isUnspecified", "isLoopback", "isLinkLocalMulticast",
    "isLinkLocalUnicast", "isGlobalUnicast", "isCIDR", "cidr", "containsIP", "containsCIDR",
    "masked", "prefixLength",
    // optional values
    "hasValue", "value", "orValue", "of", "none",
    // quantity
    "isQuantity", "quantity", "sign", "isInteger", "asInteger", "asApproximateFloat", "add", "sub",
    "isGreaterThan", "isLessThan", "compareTo",
];

/// A library function working on a normalised [`Call`].
type Method = fn(&Call) -> ResolveResult;

/// One function call with the receiver and arguments resolved, whichever way
/// the call was written (`r.f(a)` or `f(r, a)`).
pub(crate) struct Call {
    /// Function name, for error messages.
    pub name: Arc<String>,
    /// The receiver (or the first argument of a global call).
    pub recv: Value,
    /// The remaining arguments.
    pub args: Vec<Value>,
}

/// Resolves all argument expressions of a call (the receiver excluded).
fn resolve_args(ftx: &FunctionContext) -> Result<Vec<Value>, ExecutionError> {
    ftx.args.iter().map(|e| ftx.ptx.resolve(e)).collect()
}

impl Call {
    fn new(ftx: &FunctionContext) -> Result<Self, ExecutionError> {
        let mut args = resolve_args(ftx)?;
        let recv = match &ftx.this {
            Some(this) => this.clone(),
            None if args.is_empty() => return Err(ExecutionError::missing_argument_or_target()),
            None => args.remove(0),
        };
        Ok(Call {
            name: ftx.name.clone(),
            recv,
            args,
        })
    }

    /// An error attributed to this function.
    pub fn err(&self, message: impl ToString) -> ExecutionError {
        ExecutionError::function_error(&self.name, message)
    }

    /// cel-go's "no such overload" for the actual receiver and argument types.
    pub fn no_overload(&self) -> ExecutionError {
        let args: Vec<String> = self.args.iter().map(type_name).collect();
        self.err(format!(
            "no such overload: {}.{}({})",
            type_name(&self.recv),
            self.name,
            args.join(", ")
        ))
    }

    /// Checks the argument count (receiver excluded) is within `min..=max`.
    pub fn arity(&self, min: usize, max: usize) -> Result<(), ExecutionError> {
        if (min..=max).contains(&self.args.len()) {
            Ok(())
        } else {
            Err(self.no_overload())
        }
    }

    pub fn recv_str(&self) -> Result<&str, ExecutionError> {
        match &self.recv {
            Value::String(s) => Ok(s),
            _ => Err(self.no_overload()),
        }
    }

    pub fn str(&self, i: usize) -> Result<&str, ExecutionError> {
        match self.args.get(i) {
            Some(Value::String(s)) => Ok(s),
            _ => Err(self.no_overload()),
        }
    }

    pub fn int(&self, i: usize) -> Result<i64, ExecutionError> {
        match self.args.get(i) {
            Some(Value::Int(n)) => Ok(*n),
            _ => Err(self.no_overload()),
        }
    }

    /// The optional int argument `i`, or `default` when absent.
    pub fn int_or(&self, i: usize, default: i64) -> Result<i64, ExecutionError> {
        if self.args.len() > i {
            self.int(i)
        } else {
            Ok(default)
        }
    }
}

/// Builds an opaque value: a map with the single reserved `key`.
pub(crate) fn opaque(key: &str, payload: String) -> Value {
    let mut map = HashMap::with_capacity(1);
    map.insert(Key::from(key), Value::String(Arc::new(payload)));
    Value::Map(Map { map: Arc::new(map) })
}

/// The payload of an opaque value of kind `key`, if `v` is one.
pub(crate) fn opaque_payload<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    let Value::Map(m) = v else { return None };
    if m.map.len() != 1 {
        return None;
    }
    match m.map.iter().next() {
        Some((Key::String(k), Value::String(s))) if k.as_str() == key => Some(s),
        _ => None,
    }
}

/// CEL-ish type name of a value, naming the opaque kinds.
pub(crate) fn type_name(v: &Value) -> String {
    for (key, name) in [
        (IP_KEY, "net.IP"),
        (CIDR_KEY, "net.CIDR"),
        (URL_KEY, "kubernetes.URL"),
        (QUANTITY_KEY, "kubernetes.Quantity"),
    ] {
        if opaque_payload(v, key).is_some() {
            return name.to_string();
        }
    }
    v.type_of().to_string()
}

/// Converts a length or index to a CEL int (saturating; lengths never get there).
pub(crate) fn to_int(n: usize) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// `size`: like the cel crate's, but strings count Unicode code points.
fn size(ftx: &FunctionContext) -> ResolveResult {
    let c = Call::new(ftx)?;
    c.arity(0, 0)?;
    match &c.recv {
        Value::String(s) => Ok(to_int(s.chars().count())),
        other => cel::functions::size(ftx, This(other.clone())).map(Value::Int),
    }
}

/// `string`: the cel crate's conversions plus `string(ip)` and `string(cidr)`.
fn string(ftx: &FunctionContext) -> ResolveResult {
    let c = Call::new(ftx)?;
    c.arity(0, 0)?;
    if opaque_payload(&c.recv, IP_KEY).is_some() {
        return net::ip_string(&c);
    }
    if opaque_payload(&c.recv, CIDR_KEY).is_some() {
        return net::cidr_string(&c);
    }
    cel::functions::string(ftx, This(c.recv))
}

/// `max`: `[1, 2].max()` (Kubernetes lists) or the cel crate's `max(1, 2)`.
fn max(ftx: &FunctionContext) -> ResolveResult {
    if ftx.this.is_some() {
        return lists::extreme(&Call::new(ftx)?, std::cmp::Ordering::Greater);
    }
    cel::functions::max(Arguments(Arc::new(resolve_args(ftx)?)))
}

/// `min`: `[1, 2].min()` (Kubernetes lists) or the cel crate's `min(1, 2)`.
fn min(ftx: &FunctionContext) -> ResolveResult {
    if ftx.this.is_some() {
        return lists::extreme(&Call::new(ftx)?, std::cmp::Ordering::Less);
    }
    cel::functions::min(Arguments(Arc::new(resolve_args(ftx)?)))
}

/// `indexOf` on a string (strings ext) or a list (Kubernetes lists).
fn index_of(ftx: &FunctionContext) -> ResolveResult {
    let c = Call::new(ftx)?;
    match c.recv {
        Value::List(_) => lists::index_of(&c, false),
        _ => strings::index_of(&c),
    }
}

/// `lastIndexOf` on a string (strings ext) or a list (Kubernetes lists).
fn last_index_of(ftx: &FunctionContext) -> ResolveResult {
    let c = Call::new(ftx)?;
    match c.recv {
        Value::List(_) => lists::index_of(&c, true),
        _ => strings::last_index_of(&c),
    }
}

/// `reverse` on a string (strings ext v3) or a list (lists ext v2).
fn reverse(ftx: &FunctionContext) -> ResolveResult {
    let c = Call::new(ftx)?;
    c.arity(0, 0)?;
    match &c.recv {
        Value::String(s) => Ok(s.chars().rev().collect::<String>().into()),
        Value::List(l) => Ok(Value::List(Arc::new(l.iter().rev().cloned().collect()))),
        _ => Err(c.no_overload()),
    }
}

/// `ip(string)` parses an address; `<cidr>.ip()` returns the CIDR's address.
fn ip(ftx: &FunctionContext) -> ResolveResult {
    let c = Call::new(ftx)?;
    if opaque_payload(&c.recv, CIDR_KEY).is_some() {
        net::cidr_ip(&c)
    } else {
        net::string_to_ip(&c)
    }
}

/// Test helpers: evaluate expressions on a big-stack thread (the cel parser
/// recurses deeply in debug builds).
#[cfg(test)]
pub(crate) mod testutil {
    use super::register;
    use cel::{Context, Program, Value};

    /// Evaluates each expression with `Context::default()` + [`register`].
    pub fn eval_all(exprs: Vec<String>) -> Vec<Result<Value, String>> {
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(move || {
                let mut ctx = Context::default();
                register(&mut ctx);
                exprs
                    .iter()
                    .map(|e| {
                        let program = Program::compile(e).map_err(|err| format!("parse: {err}"))?;
                        program.execute(&ctx).map_err(|err| err.to_string())
                    })
                    .collect()
            })
            .expect("spawn test thread")
            .join()
            .expect("test thread panicked")
    }

    /// Asserts every expression evaluates to `true`.
    pub fn assert_true(exprs: &[&str]) {
        let results = eval_all(exprs.iter().map(|s| s.to_string()).collect());
        for (expr, result) in exprs.iter().zip(results) {
            assert_eq!(result, Ok(Value::Bool(true)), "{expr}");
        }
    }

    /// Asserts every expression fails with an error containing the given text.
    pub fn assert_err(cases: &[(&str, &str)]) {
        let results = eval_all(cases.iter().map(|(e, _)| e.to_string()).collect());
        for ((expr, needle), result) in cases.iter().zip(results) {
            match result {
                Err(msg) => assert!(msg.contains(needle), "{expr}: {msg:?} lacks {needle:?}"),
                Ok(v) => panic!("{expr}: expected error {needle:?}, got {v:?}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::{assert_err, assert_true};
    use super::FUNCTIONS;

    #[test]
    fn shared_names_dispatch() {
        assert_true(&[
            "'héllo'.size() == 5",
            "size('héllo') == 5",
            "[1, 2, 3].size() == 3",
            "string(ip('::1')) == '::1'",
            "string(cidr('10.0.0.1/8')) == '10.0.0.1/8'",
            "string(12) == '12'",
            "max(1, 3, 2) == 3",
            "min(1, 3, 2) == 1",
            "max([4, 5]) == 5",
            "[1, 3, 2].max() == 3",
            "[1, 3, 2].min() == 1",
            "'abc'.reverse() == 'cba'",
            "[1, 2].reverse() == [2, 1]",
            "ip('10.0.0.1') == cidr('10.0.0.1/8').ip()",
        ]);
        assert_err(&[
            ("5.reverse()", "no such overload"),
            ("string({'a': 1})", "cannot convert"),
            ("string({'__bosun_ip__': 'nope'})", "parse error"),
        ]);
    }

    #[test]
    fn no_panics_on_odd_inputs() {
        let values = [
            "''",
            "'a©\\u0000%'",
            "'::ffff:1.2.3.4'",
            "'1e99999999999'",
            "'-.'",
            "'[::1]:x'",
            "-9223372036854775808",
            "9223372036854775807",
            "uint(7)",
            "-1.5",
            "null",
            "b'x'",
            "[]",
            "[1, 'a', [2]]",
            "{'__bosun_quantity__': '-170141183460469231731687303715884105728'}",
            "{'__bosun_cidr__': '1.2.3.4/99'}",
            "quantity('8Ei')",
            "cidr('::/0')",
            "url('*')",
        ];
        // Evaluating every function on these receivers and arguments must not
        // panic; errors are expected and fine.
        let mut exprs = Vec::new();
        for f in FUNCTIONS {
            for r in values {
                exprs.push(format!("{r}.{f}()"));
                exprs.push(format!("{f}({r})"));
                for a in values.iter().step_by(2) {
                    exprs.push(format!("{r}.{f}({a})"));
                }
                exprs.push(format!("{r}.{f}({r}, -1)"));
            }
        }
        let results = super::testutil::eval_all(exprs);
        assert!(results
            .iter()
            .all(|r| !matches!(r, Err(e) if e.starts_with("parse"))));
    }

    #[test]
    fn functions_list_has_no_duplicates() {
        let mut names = FUNCTIONS.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FUNCTIONS.len());
    }

    #[test]
    fn every_listed_function_is_callable() {
        let results = super::testutil::eval_all(
            FUNCTIONS
                .iter()
                .map(|f| format!("{f}()"))
                .collect::<Vec<_>>(),
        );
        for (name, result) in FUNCTIONS.iter().zip(results) {
            if let Err(msg) = result {
                assert!(!msg.contains("Undeclared reference"), "{name}: {msg}");
            }
        }
    }
}
