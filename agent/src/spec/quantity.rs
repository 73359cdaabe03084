//! Kubernetes resource quantities (`100m`, `0.5`, `1.5Gi`, `1e3`): the `Quantity` newtype and
//! its exact integer conversions. It never uses floating point for values, so `requests ≤
//! limits` comparisons and cgroup limits are exact; fractions are rounded up, as Kubernetes'
//! `Value()`/`MilliValue()` do.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::error::SpecError;

/// A resource quantity kept exactly as written in the manifest.
///
/// YAML numbers (`cpu: 1`, `cpu: 0.5`) are accepted and stored in their decimal form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Quantity(pub String);

impl Quantity {
    pub fn new(s: impl Into<String>) -> Self {
        Quantity(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// CPU in millicores: `100m` → 100, `0.5` → 500, `2` → 2000 (fractions of a millicore
    /// round up).
    pub fn millicores(&self) -> Result<u64, SpecError> {
        self.to_u64(3)
    }

    /// Memory (or any countable resource) in bytes/units: `128Mi`, `1G`, `1e3`, `1.5Gi`.
    pub fn bytes(&self) -> Result<u64, SpecError> {
        self.to_u64(0)
    }

    /// A byte count as Kubernetes writes a binary-SI quantity it computed
    /// (`resource.NewQuantity(n, BinarySI).String()`): the largest power-of-1024 suffix that
    /// divides it exactly (`16777216` → `16Mi`), plain digits below 1 Ki or when none does.
    pub fn from_bytes(bytes: i64) -> Self {
        const SUFFIXES: [&str; 6] = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
        let mut number = bytes;
        let mut suffix = "";
        if bytes.unsigned_abs() >= 1024 {
            for next in SUFFIXES {
                if number % 1024 != 0 {
                    break;
                }
                number /= 1024;
                suffix = next;
            }
        }
        Quantity(format!("{number}{suffix}"))
    }

    /// The value × 1000, for comparing quantities of any resource exactly.
    pub(crate) fn milli_value(&self) -> Result<u128, SpecError> {
        parse(&self.0)?
            .scaled(3)
            .ok_or_else(|| self.error("is too large"))
    }

    fn to_u64(&self, scale: i32) -> Result<u64, SpecError> {
        parse(&self.0)?
            .scaled(scale)
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| self.error("is too large"))
    }

    fn error(&self, what: &str) -> SpecError {
        SpecError::new("", format!("quantity {:?} {what}", self.0))
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Quantity {
    fn from(s: &str) -> Self {
        Quantity(s.to_string())
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(QuantityVisitor)
    }
}

/// Accepts a string or a number (`cpu: 1`, `cpu: 0.5`), keeping its decimal form.
struct QuantityVisitor;

impl Visitor<'_> for QuantityVisitor {
    type Value = Quantity;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a quantity such as \"100m\", \"1.5Gi\" or a number")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
        Ok(Quantity(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
        Ok(Quantity(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
        Ok(Quantity(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
        Ok(Quantity(v.to_string()))
    }
}

/// A parsed quantity: `mantissa × 10^exp10 × 2^exp2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parsed {
    mantissa: u128,
    exp10: i32,
    exp2: u32,
}

impl Parsed {
    /// `ceil(value × 10^scale)`, or `None` on overflow.
    fn scaled(self, scale: i32) -> Option<u128> {
        let numerator = self.mantissa.checked_mul(1u128.checked_shl(self.exp2)?)?;
        let exp = self.exp10.checked_add(scale)?;
        if exp >= 0 {
            numerator.checked_mul(10u128.checked_pow(exp.unsigned_abs())?)
        } else {
            match 10u128.checked_pow(exp.unsigned_abs()) {
                Some(divisor) => Some(numerator.div_ceil(divisor)),
                // Smaller than any representable unit: 0 stays 0, anything else rounds up.
                None => Some(u128::from(numerator != 0)),
            }
        }
    }
}

fn parse(text: &str) -> Result<Parsed, SpecError> {
    let err = |what: &str| SpecError::new("", format!("quantity {text:?} {what}"));
    let unsigned = match text.as_bytes().first() {
        None => return Err(err("is empty")),
        Some(b'-') => return Err(err("must not be negative")),
        Some(b'+') => &text[1..],
        Some(_) => text,
    };
    let number_len = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_len);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty() || frac_part.contains('.') {
        return Err(err(
            "is not a number with an optional suffix (e.g. 100m, 1.5Gi)",
        ));
    }
    let mut mantissa: u128 = 0;
    for digit in int_part.bytes().chain(frac_part.bytes()) {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(u128::from(digit - b'0')))
            .ok_or_else(|| err("has too many digits"))?;
    }
    let (suffix_exp10, exp2) = suffix_exponents(suffix).ok_or_else(|| {
        err("has an unknown suffix (use n, u, m, k, M, G, T, P, E, Ki..Ei or e<exponent>)")
    })?;
    let frac_len = i32::try_from(frac_part.len()).map_err(|_| err("has too many digits"))?;
    Ok(Parsed {
        mantissa,
        exp10: suffix_exp10 - frac_len,
        exp2,
    })
}

/// The (power of ten, power of two) a suffix stands for.
fn suffix_exponents(suffix: &str) -> Option<(i32, u32)> {
    let decimal = match suffix {
        "" => Some(0),
        "n" => Some(-9),
        "u" => Some(-6),
        "m" => Some(-3),
        "k" => Some(3),
        "M" => Some(6),
        "G" => Some(9),
        "T" => Some(12),
        "P" => Some(15),
        "E" => Some(18),
        _ => None,
    };
    if let Some(exp) = decimal {
        return Some((exp, 0));
    }
    let binary = match suffix {
        "Ki" => Some(10),
        "Mi" => Some(20),
        "Gi" => Some(30),
        "Ti" => Some(40),
        "Pi" => Some(50),
        "Ei" => Some(60),
        _ => None,
    };
    if let Some(exp) = binary {
        return Some((0, exp));
    }
    // Decimal exponent: e3, E-2, e+6.
    let exponent = suffix.strip_prefix(['e', 'E'])?;
    let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((exponent.parse().ok()?, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_print_as_kubernetes_binary_quantities() {
        let table = [
            (0, "0"),
            (1000, "1000"),
            (1024, "1Ki"),
            (1536, "1536"),
            (16 << 20, "16Mi"),
            (1 << 26, "64Mi"),
            (3 << 30, "3Gi"),
            ((1 << 30) + (1 << 20), "1025Mi"),
            (-(2 << 20), "-2Mi"),
            (i64::MIN, "-8Ei"),
        ];
        for (bytes, text) in table {
            let q = Quantity::from_bytes(bytes);
            assert_eq!(q.as_str(), text, "{bytes}");
            if bytes >= 0 {
                assert_eq!(q.bytes().ok(), u64::try_from(bytes).ok(), "{text}");
            }
        }
    }

    #[test]
    fn cpu_quantities_convert_to_millicores() {
        let table = [
            ("100m", 100),
            ("0.5", 500),
            ("2", 2000),
            ("1.5", 1500),
            ("+1", 1000),
            ("250m", 250),
            (".1", 100),
            ("1.", 1000),
            ("0.0001", 1), // rounds up, like MilliValue()
            ("500000n", 1),
            ("1e3", 1_000_000),
            ("1k", 1_000_000),
            ("0", 0),
        ];
        for (text, want) in table {
            assert_eq!(Quantity::from(text).millicores(), Ok(want), "{text}");
        }
    }

    #[test]
    fn memory_quantities_convert_to_bytes() {
        let table = [
            ("128974848", 128_974_848),
            ("129e6", 129_000_000),
            ("129M", 129_000_000),
            ("123Mi", 123 * 1024 * 1024),
            ("1k", 1000),
            ("1Ki", 1024),
            ("1G", 1_000_000_000),
            ("1Gi", 1 << 30),
            ("1.5Gi", 3 << 29),
            ("1T", 1_000_000_000_000),
            ("2Ti", 2 << 40),
            ("1E3", 1000),
            ("1e+3", 1000),
            ("15e-1", 2), // 1.5 rounds up
            ("0.5", 1),
            ("100m", 1),
            ("1E", 1_000_000_000_000_000_000),
        ];
        for (text, want) in table {
            assert_eq!(Quantity::from(text).bytes(), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_quantities_are_rejected_naming_the_quantity() {
        for text in [
            "-1", "-100Mi", "", "abc", "1.2.3", "1Qi", "Mi", "1 Gi", "1e", "1e3.5", ".",
        ] {
            let err = Quantity::from(text).bytes().unwrap_err();
            assert!(err.message.contains(&format!("{text:?}")), "{text}: {err}");
        }
    }

    #[test]
    fn quantities_too_large_for_u64_are_rejected() {
        assert!(Quantity::from("100Ei").bytes().is_err());
        assert!(Quantity::from("1e40").millicores().is_err());
        assert!(Quantity::from("99999999999999999999999999999999999999999")
            .bytes()
            .is_err());
    }

    #[test]
    fn yaml_numbers_deserialize_as_quantities() {
        let q: Vec<Quantity> = serde_yaml::from_str("[1, 0.5, \"100m\", 1e9]").unwrap();
        let texts: Vec<&str> = q.iter().map(Quantity::as_str).collect();
        assert_eq!(texts, ["1", "0.5", "100m", "1000000000"]);
        assert_eq!(q[3].bytes(), Ok(1_000_000_000));
        let err = serde_yaml::from_str::<Quantity>("[1]").unwrap_err();
        assert!(err.to_string().contains("expected a quantity"), "{err}");
    }
}
