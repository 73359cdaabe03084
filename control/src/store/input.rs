//! What every backend checks before touching its database: the limits a store enforces on
//! keys, values and watchers, the validation of keys, values and revisions against them, and
//! the key range a prefix covers. Backends call these first, so bad input gets the same error
//! from every backend and never reaches SQL or the network.

use super::error::{Error, Op, Result};

/// Limits a store enforces; the same for every backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest key accepted, in bytes.
    pub max_key_bytes: usize,
    /// Largest value accepted, in bytes (etcd's default request limit is 1.5 MiB).
    pub max_value_bytes: usize,
    /// Events buffered for each watcher between the store and its consumer (the etcd watches
    /// with an etcd watch of their own; the hubs' watches hold their window instead).
    pub watch_buffer: usize,
    /// How many of the newest events the store keeps in memory for live watchers. A live
    /// watcher that falls further behind than this is closed with [`Error::WatchTooSlow`].
    pub watch_window: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_bytes: 4096,
            max_value_bytes: 3 * 512 * 1024,
            watch_buffer: 128,
            watch_window: 4096,
        }
    }
}

impl Limits {
    /// Checks a key: not empty, at most `max_key_bytes`, no NUL.
    pub fn check_key(&self, op: Op, key: &str) -> Result<()> {
        let reason = if key.is_empty() {
            "the key is empty"
        } else if key.len() > self.max_key_bytes {
            "the key is longer than the store's limit"
        } else if key.contains('\0') {
            "the key contains a NUL character"
        } else {
            return Ok(());
        };
        Err(Error::InvalidKey {
            op,
            key: shorten(key),
            reason,
        })
    }

    /// Checks a prefix: may be empty (everything), otherwise as a key.
    pub fn check_prefix(&self, op: Op, prefix: &str) -> Result<()> {
        if prefix.is_empty() {
            return Ok(());
        }
        self.check_key(op, prefix)
    }

    /// Checks a key and a value for a write.
    pub fn check_write(&self, op: Op, key: &str, value: &[u8]) -> Result<()> {
        self.check_key(op, key)?;
        if value.len() > self.max_value_bytes {
            return Err(Error::ValueTooLarge {
                op,
                key: key.to_owned(),
                size: value.len(),
                limit: self.max_value_bytes,
            });
        }
        Ok(())
    }
}

/// Refuses negative revisions.
pub fn check_revision(op: Op, key: &str, revision: i64) -> Result<()> {
    if revision < 0 {
        return Err(Error::InvalidRevision {
            op,
            key: key.to_owned(),
            revision,
        });
    }
    Ok(())
}

/// A key too long to print whole is cut in error messages.
fn shorten(key: &str) -> String {
    const SHOWN: usize = 256;
    if key.len() <= SHOWN {
        return key.to_owned();
    }
    let mut end = SHOWN;
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &key[..end])
}

/// The first string after every string that starts with `prefix`, in byte order (UTF-8 byte
/// order is code point order): `prefix`'s last character replaced by the next one. `None` when
/// there is no such string (empty prefix, or only `char::MAX`s), i.e. the range is open.
pub fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_string_after_the_prefix_range() {
        assert_eq!(
            prefix_end("/registry/pods/").as_deref(),
            Some("/registry/pods0")
        );
        assert_eq!(prefix_end("a\u{d7ff}").as_deref(), Some("a\u{e000}"));
        assert_eq!(prefix_end("a\u{10ffff}").as_deref(), Some("b"));
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("\u{10ffff}"), None);
        for key in ["/registry/pods/x", "/registry/pods/\u{10ffff}\u{10ffff}"] {
            assert!(key < prefix_end("/registry/pods/").unwrap().as_str());
        }
    }

    #[test]
    fn bad_keys_and_values_are_refused_with_the_reason() {
        let limits = Limits {
            max_key_bytes: 8,
            max_value_bytes: 4,
            ..Limits::default()
        };
        let reason = |key: &str| match limits.check_key(Op::Get, key) {
            Err(Error::InvalidKey { reason, .. }) => reason,
            other => panic!("{key:?}: {other:?}"),
        };
        assert_eq!(reason(""), "the key is empty");
        assert_eq!(
            reason("/123456789"),
            "the key is longer than the store's limit"
        );
        assert_eq!(reason("/a\0b"), "the key contains a NUL character");
        assert!(limits.check_prefix(Op::List, "").is_ok());
        assert!(matches!(
            limits.check_write(Op::Create, "/k", b"12345"),
            Err(Error::ValueTooLarge {
                size: 5,
                limit: 4,
                ..
            })
        ));
        assert!(limits.check_write(Op::Create, "/k", b"1234").is_ok());
        assert!(check_revision(Op::List, "/", -1).is_err());
        assert_eq!(shorten(&"é".repeat(200)).chars().count(), 129);
    }
}
