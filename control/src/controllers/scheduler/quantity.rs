//! Kubernetes resource quantities (`100m`, `1.5`, `128Mi`, `1G`, `2e3`) as integers: CPU in
//! millicores, everything else in whole units (bytes, pods), rounded up like
//! `Quantity.MilliValue()` / `Value()`. A quantity that does not parse is `None`; the API's
//! validation refuses those before they are stored.

/// The value of `text` times 1000 (milli-units), rounded up.
pub fn milli(text: &str) -> Option<i128> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let (negative, number) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number.strip_prefix('+').unwrap_or(number)),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !whole
        .bytes()
        .chain(fraction.bytes())
        .all(|b| b.is_ascii_digit())
        || fraction.len() > 18
    {
        return None;
    }
    // mantissa / 10^scale
    let digits = format!("{whole}{fraction}");
    let mantissa: i128 = digits.parse().ok()?;
    let scale = fraction.len() as u32;
    // multiplier as (numerator, power of ten)
    let (factor, power): (i128, i32) = match suffix {
        "" => (1, 0),
        "n" => (1, -9),
        "u" => (1, -6),
        "m" => (1, -3),
        "k" => (1, 3),
        "M" => (1, 6),
        "G" => (1, 9),
        "T" => (1, 12),
        "P" => (1, 15),
        "E" => (1, 18),
        "Ki" => (1 << 10, 0),
        "Mi" => (1 << 20, 0),
        "Gi" => (1 << 30, 0),
        "Ti" => (1 << 40, 0),
        "Pi" => (1 << 50, 0),
        "Ei" => (1 << 60, 0),
        exp if exp.starts_with(['e', 'E']) => (1, exp[1..].parse::<i32>().ok()?),
        _ => return None,
    };
    // value * 1000 = mantissa * factor * 10^(power + 3 - scale)
    let exponent = power + 3 - scale as i32;
    let base = mantissa.checked_mul(factor)?;
    let value = if exponent >= 0 {
        base.checked_mul(10i128.checked_pow(exponent as u32)?)?
    } else {
        let divisor = 10i128.checked_pow((-exponent) as u32)?;
        (base + divisor - 1) / divisor
    };
    Some(if negative { -value } else { value })
}

/// The value of `text` in whole units, rounded up.
pub fn units(text: &str) -> Option<i128> {
    milli(text).map(|m| (m + 999).div_euclid(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_like_kubernetes() {
        assert_eq!(milli("100m"), Some(100));
        assert_eq!(milli("1"), Some(1000));
        assert_eq!(milli("1.5"), Some(1500));
        assert_eq!(milli("0.0001"), Some(1));
        assert_eq!(units("128Mi"), Some(128 << 20));
        assert_eq!(units("1G"), Some(1_000_000_000));
        assert_eq!(units("2e3"), Some(2000));
        assert_eq!(units("1.5Gi"), Some(3 << 29));
        assert_eq!(units("110"), Some(110));
        for bad in ["", "abc", "1x", "1.2.3", "Mi", "1e"] {
            assert_eq!(milli(bad), None, "{bad}");
        }
    }
}
