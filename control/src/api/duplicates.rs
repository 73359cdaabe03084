//! Duplicate fields in a JSON body: `serde_json::Value` keeps the last of two equal keys
//! silently, so strict field validation walks the raw body once more and names every key
//! that repeats within one object (`spec.replicas`), as Kubernetes' strict decoding does.

use std::collections::HashSet;
use std::fmt::{self, Write};

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// The paths of keys repeated within one JSON object of `body` (none if it is not JSON).
pub fn duplicate_fields(body: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut path = String::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    let walk = Walk {
        path: &mut path,
        out: &mut out,
    };
    if walk.deserialize(&mut de).is_err() {
        return Vec::new();
    }
    out
}

/// One value's walk: `path` is its path (one buffer for the whole walk, each key or index
/// appended while its value is walked: every body of strict validation goes through here).
struct Walk<'a> {
    path: &'a mut String,
    out: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Walk { path, out } = self;
        let mut seen = HashSet::new();
        let base = path.len();
        while let Some(key) = map.next_key::<String>()? {
            if base > 0 {
                path.push('.');
            }
            path.push_str(&key);
            if !seen.insert(key) {
                out.push(path.clone());
            }
            map.next_value_seed(Walk {
                path: &mut *path,
                out: &mut *out,
            })?;
            path.truncate(base);
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Walk { path, out } = self;
        let base = path.len();
        for i in 0.. {
            let _ = write!(path, "[{i}]");
            let more = seq
                .next_element_seed(Walk {
                    path: &mut *path,
                    out: &mut *out,
                })?
                .is_some();
            path.truncate(base);
            if !more {
                break;
            }
        }
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_are_named_with_their_path() {
        let body = br#"{"spec":{"replicas":1,"replicas":2,"list":[{"a":1,"a":2}]},"b":null}"#;
        assert_eq!(duplicate_fields(body), ["spec.replicas", "spec.list[0].a"]);
        assert!(duplicate_fields(br#"{"a":{"a":1}}"#).is_empty());
        assert!(duplicate_fields(b"not json").is_empty());
        let nested = br#"[{"a":[1,{"b":1,"c":{"d":1,"d":2},"b":2}],"e":1,"e":1}]"#;
        assert_eq!(
            duplicate_fields(nested),
            ["[0].a[1].c.d", "[0].a[1].b", "[0].e"],
            "each path is its own, whatever came before it"
        );
    }
}
