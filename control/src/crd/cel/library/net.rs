//! The Kubernetes IP and CIDR libraries (Kubernetes 1.31+).
//!
//! Parsing follows Go's `netip.ParseAddr` / `netip.ParsePrefix` as Kubernetes
//! uses them: no zones, no IPv4-mapped IPv6 addresses, no leading zeros in IPv4
//! octets or in the prefix length. Canonical text is RFC 5952 (Rust's `Display`
//! for `IpAddr` matches Go's `Addr.String()` for every address accepted here).
//!
//! `containsCIDR` implements the documented meaning (the other network lies
//! inside this one). Upstream's implementation additionally requires the other
//! CIDR's address to equal this network's address, which contradicts its own
//! documented example `cidr('192.168.0.0/16').containsCIDR('192.168.10.0/24')`.

use super::{opaque, opaque_payload, Call, CIDR_KEY, IP_KEY, NAMESPACE_KEY};
use cel::{ExecutionError, ResolveResult, Value};
use std::net::{IpAddr, Ipv6Addr};

/// Parses an IP address the way Kubernetes' `ip()` does.
fn parse_ip(s: &str) -> Result<IpAddr, String> {
    match s.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_some() => {
            Err(format!("IPv4-mapped IPv6 address {s:?} is not allowed"))
        }
        Ok(addr) => Ok(addr),
        Err(_) => match s.split_once('%') {
            Some((head, _)) if head.parse::<Ipv6Addr>().is_ok() => {
                Err(format!("IP address {s:?} with zone value is not allowed"))
            }
            _ => Err(format!(
                "IP Address {s:?} parse error during conversion from string: \
                 ParseAddr({s:?}): invalid IP address"
            )),
        },
    }
}

/// A CIDR: an address (host bits kept) and a prefix length.
#[derive(Clone, Copy)]
struct Prefix {
    addr: IpAddr,
    bits: u8,
}

impl Prefix {
    fn max_bits(addr: &IpAddr) -> u8 {
        if addr.is_ipv4() {
            32
        } else {
            128
        }
    }

    /// `addr` with every bit past `bits` cleared.
    fn mask(addr: IpAddr, bits: u8) -> IpAddr {
        match addr {
            IpAddr::V4(a) => {
                let m = u32::MAX
                    .checked_shl(32 - u32::from(bits.min(32)))
                    .unwrap_or(0);
                IpAddr::from((u32::from(a) & m).to_be_bytes())
            }
            IpAddr::V6(a) => {
                let m = u128::MAX
                    .checked_shl(128 - u32::from(bits.min(128)))
                    .unwrap_or(0);
                IpAddr::from((u128::from(a) & m).to_be_bytes())
            }
        }
    }

    fn masked(self) -> Prefix {
        Prefix {
            addr: Self::mask(self.addr, self.bits),
            bits: self.bits,
        }
    }

    fn contains(self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && Self::mask(ip, self.bits) == self.masked().addr
    }

    fn to_text(self) -> String {
        format!("{}/{}", self.addr, self.bits)
    }
}

/// Parses a CIDR the way Kubernetes' `cidr()` does.
fn parse_cidr(s: &str) -> Result<Prefix, String> {
    let fail = |msg: &str| {
        Err(format!(
            "network address parse error during conversion from string: \
             netip.ParsePrefix({s:?}): {msg}"
        ))
    };
    let Some((addr, bits)) = s.rsplit_once('/') else {
        return fail("no '/'");
    };
    let addr = match addr.parse::<IpAddr>() {
        Ok(a) => a,
        Err(_) if addr.contains('%') => return fail("IPv6 zones cannot be present in a prefix"),
        Err(_) => return fail(&format!("ParseAddr({addr:?}): invalid IP address")),
    };
    if matches!(addr, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some()) {
        return Err(format!("IPv4-mapped IPv6 address {s:?} is not allowed"));
    }
    let digits_ok = !bits.is_empty()
        && bits.bytes().all(|b| b.is_ascii_digit())
        && (bits == "0" || !bits.starts_with('0'));
    let Some(n) = bits.parse::<u8>().ok().filter(|_| digits_ok) else {
        if digits_ok {
            return fail("prefix length out of range");
        }
        return fail(&format!("bad bits after slash: {bits:?}"));
    };
    if n > Prefix::max_bits(&addr) {
        return fail("prefix length out of range");
    }
    Ok(Prefix { addr, bits: n })
}

fn ip_value(addr: IpAddr) -> Value {
    opaque(IP_KEY, addr.to_string())
}

fn cidr_value(p: Prefix) -> Value {
    opaque(CIDR_KEY, p.to_text())
}

/// The address held by an ip value (receiver or argument).
fn as_ip(c: &Call, v: &Value) -> Result<IpAddr, ExecutionError> {
    let s = opaque_payload(v, IP_KEY).ok_or_else(|| c.no_overload())?;
    parse_ip(s).map_err(|e| c.err(e))
}

/// The prefix held by a cidr value (receiver or argument).
fn as_cidr(c: &Call, v: &Value) -> Result<Prefix, ExecutionError> {
    let s = opaque_payload(v, CIDR_KEY).ok_or_else(|| c.no_overload())?;
    parse_cidr(s).map_err(|e| c.err(e))
}

/// `ip(<string>)`.
pub(super) fn string_to_ip(c: &Call) -> ResolveResult {
    c.arity(0, 0)?;
    let addr = parse_ip(c.recv_str()?).map_err(|e| c.err(e))?;
    Ok(ip_value(addr))
}

/// `isIP(<string>)`.
pub(super) fn is_ip(c: &Call) -> ResolveResult {
    c.arity(0, 0)?;
    Ok(Value::Bool(parse_ip(c.recv_str()?).is_ok()))
}

/// `ip.isCanonical(<string>)`: the string is the address's canonical text.
pub(super) fn is_canonical(c: &Call) -> ResolveResult {
    if opaque_payload(&c.recv, NAMESPACE_KEY) != Some("ip") {
        return Err(c.no_overload());
    }
    c.arity(1, 1)?;
    let s = c.str(0)?;
    let addr = parse_ip(s).map_err(|e| c.err(e))?;
    Ok(Value::Bool(addr.to_string() == s))
}

/// `string(<ip>)`.
pub(super) fn ip_string(c: &Call) -> ResolveResult {
    Ok(as_ip(c, &c.recv)?.to_string().into())
}

/// `<ip>.family()`: 4 or 6.
pub(super) fn family(c: &Call) -> ResolveResult {
    c.arity(0, 0)?;
    Ok(Value::Int(if as_ip(c, &c.recv)?.is_ipv4() { 4 } else { 6 }))
}

/// Runs a predicate on an ip receiver.
fn ip_predicate(c: &Call, f: impl Fn(IpAddr) -> bool) -> ResolveResult {
    c.arity(0, 0)?;
    Ok(Value::Bool(f(as_ip(c, &c.recv)?)))
}

/// `<ip>.isUnspecified()`: `0.0.0.0` or `::`.
pub(super) fn is_unspecified(c: &Call) -> ResolveResult {
    ip_predicate(c, |a| a.is_unspecified())
}

/// `<ip>.isLoopback()`: `127.0.0.0/8` or `::1`.
pub(super) fn is_loopback(c: &Call) -> ResolveResult {
    ip_predicate(c, |a| a.is_loopback())
}

/// `<ip>.isLinkLocalMulticast()`: `224.0.0.0/24` or `ff02::/16` (any flags).
pub(super) fn is_link_local_multicast(c: &Call) -> ResolveResult {
    ip_predicate(c, |a| match a {
        IpAddr::V4(v4) => matches!(v4.octets(), [224, 0, 0, _]),
        IpAddr::V6(v6) => v6.segments()[0] & 0xff0f == 0xff02,
    })
}

fn link_local_unicast(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

/// `<ip>.isLinkLocalUnicast()`: `169.254.0.0/16` or `fe80::/10`.
pub(super) fn is_link_local_unicast(c: &Call) -> ResolveResult {
    ip_predicate(c, link_local_unicast)
}

/// `<ip>.isGlobalUnicast()`: Go's definition (private ranges count as global).
pub(super) fn is_global_unicast(c: &Call) -> ResolveResult {
    ip_predicate(c, |a| {
        let broadcast = matches!(a, IpAddr::V4(v4) if v4.is_broadcast());
        !(a.is_unspecified()
            || broadcast
            || a.is_loopback()
            || a.is_multicast()
            || link_local_unicast(a))
    })
}

/// `isCIDR(<string>)`.
pub(super) fn is_cidr(c: &Call) -> ResolveResult {
    c.arity(0, 0)?;
    Ok(Value::Bool(parse_cidr(c.recv_str()?).is_ok()))
}

/// `cidr(<string>)`.
pub(super) fn cidr(c: &Call) -> ResolveResult {
    c.arity(0, 0)?;
    Ok(cidr_value(parse_cidr(c.recv_str()?).map_err(|e| c.err(e))?))
}

/// `string(<cidr>)`.
pub(super) fn cidr_string(c: &Call) -> ResolveResult {
    Ok(as_cidr(c, &c.recv)?.to_text().into())
}

/// `<cidr>.containsIP(<ip or string>)`.
pub(super) fn contains_ip(c: &Call) -> ResolveResult {
    c.arity(1, 1)?;
    let net = as_cidr(c, &c.recv)?;
    let ip = match c.args.first() {
        Some(Value::String(s)) => parse_ip(s).map_err(|e| c.err(e))?,
        Some(v) => as_ip(c, v)?,
        None => return Err(c.no_overload()),
    };
    Ok(Value::Bool(net.contains(ip)))
}

/// `<cidr>.containsCIDR(<cidr or string>)`: the other network is inside this one.
pub(super) fn contains_cidr(c: &Call) -> ResolveResult {
    c.arity(1, 1)?;
    let net = as_cidr(c, &c.recv)?;
    let other = match c.args.first() {
        Some(Value::String(s)) => parse_cidr(s).map_err(|e| c.err(e))?,
        Some(v) => as_cidr(c, v)?,
        None => return Err(c.no_overload()),
    };
    Ok(Value::Bool(
        net.bits <= other.bits && net.contains(other.addr),
    ))
}

/// `<cidr>.ip()`: the address as written (host bits kept).
pub(super) fn cidr_ip(c: &Call) -> ResolveResult {
    c.arity(0, 0)?;
    Ok(ip_value(as_cidr(c, &c.recv)?.addr))
}

/// `<cidr>.masked()`: the network with host bits cleared.
pub(super) fn masked(c: &Call) -> ResolveResult {
    c.arity(0, 0)?;
    Ok(cidr_value(as_cidr(c, &c.recv)?.masked()))
}

/// `<cidr>.prefixLength()`.
pub(super) fn prefix_length(c: &Call) -> ResolveResult {
    c.arity(0, 0)?;
    Ok(Value::Int(i64::from(as_cidr(c, &c.recv)?.bits)))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{assert_err, assert_true};

    #[test]
    fn ip_parsing() {
        assert_true(&[
            "isIP('127.0.0.1')",
            "isIP('::1')",
            "!isIP('127.0.0.256')",
            "!isIP(':::1')",
            "!isIP('01.2.3.4')",
            "!isIP('::ffff:1.2.3.4')",
            "!isIP('fe80::1%eth0')",
            "ip('2001:DB8::1') == ip('2001:db8::1')",
            "ip('10.0.0.1') != ip('10.0.0.2')",
        ]);
        assert_err(&[
            (
                "ip('127.0.0.256')",
                "parse error during conversion from string",
            ),
            ("ip('::ffff:1.2.3.4')", "IPv4-mapped IPv6 address"),
            ("ip('fe80::1%eth0')", "with zone value is not allowed"),
            ("ip(1)", "no such overload"),
        ]);
    }

    #[test]
    fn ip_canonical() {
        assert_true(&[
            "ip.isCanonical('127.0.0.1')",
            "ip.isCanonical('2001:db8::abcd')",
            "!ip.isCanonical('2001:DB8::ABCD')",
            "!ip.isCanonical('2001:db8::0:0:0:abcd')",
            "string(ip('2001:db8::0:0:0:abcd')) == '2001:db8::abcd'",
        ]);
        assert_err(&[
            ("ip.isCanonical('1.2.3')", "parse error"),
            ("isCanonical('1.2.3.4')", "no such overload"),
        ]);
    }

    #[test]
    fn ip_predicates() {
        assert_true(&[
            "ip('127.0.0.1').family() == 4",
            "ip('::1').family() == 6",
            "ip('0.0.0.0').isUnspecified()",
            "ip('::').isUnspecified()",
            "!ip('::1').isUnspecified()",
            "ip('127.0.0.1').isLoopback()",
            "ip('::1').isLoopback()",
            "!ip('192.168.0.1').isLoopback()",
            "ip('224.0.0.1').isLinkLocalMulticast()",
            "!ip('224.0.1.1').isLinkLocalMulticast()",
            "ip('ff02::1').isLinkLocalMulticast()",
            "!ip('fd00::1').isLinkLocalMulticast()",
            "ip('169.254.169.254').isLinkLocalUnicast()",
            "!ip('192.168.0.1').isLinkLocalUnicast()",
            "ip('fe80::1').isLinkLocalUnicast()",
            "!ip('fd80::1').isLinkLocalUnicast()",
            "ip('192.168.0.1').isGlobalUnicast()",
            "!ip('255.255.255.255').isGlobalUnicast()",
            "ip('2001:db8::abcd').isGlobalUnicast()",
            "!ip('ff00::1').isGlobalUnicast()",
        ]);
        assert_err(&[
            ("'1.2.3.4'.family()", "no such overload"),
            ("cidr('10.0.0.0/8').isLoopback()", "no such overload"),
            ("{'__bosun_ip__': 'x'}.family()", "parse error"),
        ]);
    }

    #[test]
    fn cidr_parsing() {
        assert_true(&[
            "isCIDR('192.168.0.0/16')",
            "isCIDR('::1/128')",
            "isCIDR('0.0.0.0/0')",
            "!isCIDR('192.168.0.0/33')",
            "!isCIDR('::1/129')",
            "!isCIDR('192.168.0.0/016')",
            "!isCIDR('192.168.0.0')",
            "!isCIDR('::ffff:1.2.3.4/120')",
            "cidr('192.168.0.1/24') != cidr('192.168.0.0/24')",
            "string(cidr('2001:DB8::/32')) == '2001:db8::/32'",
        ]);
        assert_err(&[
            ("cidr('192.168.0.0/')", "bad bits after slash: \"\""),
            ("cidr('192.168.0.0/33')", "prefix length out of range"),
            ("cidr('::ffff:1.2.3.4/120')", "IPv4-mapped IPv6 address"),
            ("cidr('fe80::1%eth0/64')", "zones cannot be present"),
        ]);
    }

    #[test]
    fn cidr_methods() {
        assert_true(&[
            "cidr('192.168.0.0/24').containsIP(ip('192.168.0.1'))",
            "!cidr('192.168.0.0/24').containsIP(ip('192.168.1.1'))",
            "cidr('192.168.0.0/24').containsIP('192.168.0.1')",
            "!cidr('192.168.0.0/24').containsIP('::1')",
            "cidr('0.0.0.0/0').containsIP('1.2.3.4')",
            "cidr('2001:db8::/32').containsIP('2001:db8::1')",
            "!cidr('2001:db8::/32').containsIP('2001:dc8::1')",
            "cidr('192.168.0.0/24').containsCIDR(cidr('192.168.0.0/25'))",
            "!cidr('192.168.0.0/24').containsCIDR(cidr('192.168.0.0/23'))",
            "cidr('192.168.0.0/16').containsCIDR('192.168.10.0/24')",
            "!cidr('192.168.1.0/24').containsCIDR('192.168.2.0/24')",
            "!cidr('10.0.0.0/8').containsCIDR('::/0')",
            "cidr('192.168.0.1/24').ip() == ip('192.168.0.1')",
            "cidr('192.168.0.1/24').masked() == cidr('192.168.0.0/24')",
            "cidr('2001:db8:1::/32').masked() == cidr('2001:db8::/32')",
            "cidr('::/0').masked() == cidr('::/0')",
            "cidr('192.168.0.0/16').prefixLength() == 16",
            "cidr('::1/128').prefixLength() == 128",
        ]);
        assert_err(&[
            ("cidr('10.0.0.0/8').containsIP('10.0.0.256')", "parse error"),
            (
                "cidr('10.0.0.0/8').containsCIDR('10.0.0.0/40')",
                "out of range",
            ),
            ("cidr('10.0.0.0/8').containsIP(1)", "no such overload"),
            ("ip('10.0.0.1').masked()", "no such overload"),
            ("ip('10.0.0.1').prefixLength()", "no such overload"),
        ]);
    }
}
