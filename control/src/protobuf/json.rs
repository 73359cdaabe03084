//! A decoded Kubernetes protobuf message as Kubernetes JSON: fields under their JSON names
//! (from the descriptor), int64 as numbers, bytes as base64, and the types whose JSON is not
//! their message: a field named `…,inline` (Go's `json:",inline"`, Volume's VolumeSource)
//! whose fields are its parent's, `metav1.Time`/`MicroTime` (RFC 3339), `metav1.Duration`
//! (Go's duration text), `intstr.IntOrString` (a number or a string), `resource.Quantity`
//! (its string), `runtime.RawExtension` and `metav1.FieldsV1` (the JSON they carry).
//!
//! Go writes every non-pointer field, so an empty singular string or bytes is its zero value
//! and is left out, as Go's JSON leaves it out. Numbers and booleans are kept: a pointer's
//! explicit zero (`replicas: 0`, `backoffLimit: 0`, `automountServiceAccountToken: false`)
//! means something, and the wire does not tell a pointer from a plain field; a plain field's
//! zero (`hostPort: 0`, `stdin: false`) is left out later, with the JSON body's, by the
//! validation's `omit_empty` from its list of Go's plain `omitempty` fields.

use base64::Engine;
use prost_reflect::{DynamicMessage, MapKey, ReflectMessage, Value as PValue};
use serde_json::{Map, Number, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::ProtoError;

const META: &str = "k8s.io.apimachinery.pkg.apis.meta.v1";

/// Refuses a message holding a field number its descriptor does not know.
pub fn refuse_unknown(message: &DynamicMessage) -> Result<(), ProtoError> {
    match message.unknown_fields().next() {
        Some(field) => Err(ProtoError::UnknownField {
            message: message.descriptor().full_name().to_owned(),
            number: field.number(),
        }),
        None => Ok(()),
    }
}

fn int_field(message: &DynamicMessage, number: u32) -> i64 {
    match message.get_field_by_number(number).as_deref() {
        Some(PValue::I64(n)) => *n,
        Some(PValue::I32(n)) => i64::from(*n),
        _ => 0,
    }
}

fn bytes_field(message: &DynamicMessage, number: u32) -> Vec<u8> {
    match message.get_field_by_number(number).as_deref() {
        Some(PValue::Bytes(b)) => b.to_vec(),
        _ => Vec::new(),
    }
}

/// `message` as Kubernetes JSON.
pub fn message(message: &DynamicMessage) -> Result<Value, ProtoError> {
    refuse_unknown(message)?;
    let name = message.descriptor().full_name().to_owned();
    let bad = |why: String| ProtoError::Value {
        message: name.clone(),
        why,
    };
    match name.as_str() {
        n if n == format!("{META}.Time") => time(message, false).map_err(bad),
        n if n == format!("{META}.MicroTime") => time(message, true).map_err(bad),
        n if n == format!("{META}.Duration") => {
            Ok(Value::String(go_duration(int_field(message, 1))))
        }
        n if n == format!("{META}.FieldsV1") => {
            embedded_json(&bytes_field(message, 1)).map_err(bad)
        }
        "k8s.io.apimachinery.pkg.runtime.RawExtension" => {
            embedded_json(&bytes_field(message, 1)).map_err(bad)
        }
        "k8s.io.apimachinery.pkg.api.resource.Quantity" => Ok(Value::String(
            match message.get_field_by_number(1).as_deref() {
                Some(PValue::String(s)) => s.clone(),
                _ => String::new(),
            },
        )),
        "k8s.io.apimachinery.pkg.util.intstr.IntOrString" => Ok(if int_field(message, 1) == 1 {
            match message.get_field_by_number(3).as_deref() {
                Some(PValue::String(s)) => Value::String(s.clone()),
                _ => Value::String(String::new()),
            }
        } else {
            Value::from(int_field(message, 2))
        }),
        _ => {
            let mut out = Map::new();
            for (field, value) in message.fields() {
                let zero = match value {
                    PValue::String(s) => s.is_empty(),
                    PValue::Bytes(b) => b.is_empty(),
                    _ => false,
                };
                if zero {
                    continue;
                }
                let value = to_json(value)?;
                match (field.json_name().strip_suffix(",inline"), value) {
                    (Some(_), Value::Object(inner)) => out.extend(inner),
                    (_, value) => {
                        out.insert(field.json_name().to_owned(), value);
                    }
                }
            }
            Ok(Value::Object(out))
        }
    }
}

fn to_json(value: &PValue) -> Result<Value, ProtoError> {
    Ok(match value {
        PValue::Bool(b) => Value::Bool(*b),
        PValue::I32(n) => Value::from(*n),
        PValue::I64(n) => Value::from(*n),
        PValue::U32(n) => Value::from(*n),
        PValue::U64(n) => Value::from(*n),
        PValue::EnumNumber(n) => Value::from(*n),
        PValue::F32(f) => float(f64::from(*f))?,
        PValue::F64(f) => float(*f)?,
        PValue::String(s) => Value::String(s.clone()),
        PValue::Bytes(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        PValue::Message(m) => message(m)?,
        PValue::List(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        PValue::Map(entries) => {
            let mut out = Map::new();
            for (key, value) in entries {
                let key = match key {
                    MapKey::String(s) => s.clone(),
                    MapKey::Bool(b) => b.to_string(),
                    MapKey::I32(n) => n.to_string(),
                    MapKey::I64(n) => n.to_string(),
                    MapKey::U32(n) => n.to_string(),
                    MapKey::U64(n) => n.to_string(),
                };
                out.insert(key, to_json(value)?);
            }
            Value::Object(out)
        }
    })
}

fn float(f: f64) -> Result<Value, ProtoError> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| ProtoError::Value {
            message: "double".into(),
            why: format!("{f} is not a JSON number"),
        })
}

/// A Time (whole seconds, `2026-12-02T08:00:00Z`) or MicroTime (`…08:00:00.000000Z`); an
/// empty message is Go's zero time, `null`.
fn time(message: &DynamicMessage, micro: bool) -> Result<Value, String> {
    if message.fields().next().is_none() {
        return Ok(Value::Null);
    }
    let seconds = int_field(message, 1);
    let nanos = int_field(message, 2);
    if !(0..1_000_000_000).contains(&nanos) {
        return Err(format!("nanos {nanos} is out of range"));
    }
    let at = OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|e| format!("seconds {seconds}: {e}"))?;
    let mut text = at
        .format(&Rfc3339)
        .map_err(|e| format!("seconds {seconds}: {e}"))?;
    if micro {
        // `2026-12-02T08:00:00Z` → `2026-12-02T08:00:00.123456Z`
        text.pop();
        text.push_str(&format!(".{:06}Z", nanos / 1000));
    }
    Ok(Value::String(text))
}

/// The JSON that a RawExtension or FieldsV1 carries; empty is `null`.
fn embedded_json(raw: &[u8]) -> Result<Value, String> {
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(raw).map_err(|e| format!("the embedded object is not JSON: {e}"))
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `1.5s`, `300ms`, `0s`.
pub fn go_duration(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    let text = if n == 0 {
        "0s".to_owned()
    } else if n < 1_000 {
        format!("{n}ns")
    } else if n < 1_000_000 {
        format!("{}µs", fraction(n, 1_000))
    } else if n < 1_000_000_000 {
        format!("{}ms", fraction(n, 1_000_000))
    } else {
        let hours = n / 3_600_000_000_000;
        let minutes = n % 3_600_000_000_000 / 60_000_000_000;
        let seconds = fraction(n % 60_000_000_000, 1_000_000_000);
        match (hours, minutes) {
            (0, 0) => format!("{seconds}s"),
            (0, m) => format!("{m}m{seconds}s"),
            (h, m) => format!("{h}h{m}m{seconds}s"),
        }
    };
    format!("{sign}{text}")
}

/// `value / unit` with its fraction, trailing zeros trimmed: `1500, 1000` → `1.5`.
fn fraction(value: u64, unit: u64) -> String {
    let whole = value / unit;
    let rest = value % unit;
    if rest == 0 {
        return whole.to_string();
    }
    let digits = unit.ilog10() as usize;
    let rest = format!("{rest:0digits$}");
    format!("{whole}.{}", rest.trim_end_matches('0'))
}
