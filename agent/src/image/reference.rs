//! Image references, normalised the way docker does it: `busybox` becomes
//! `docker.io/library/busybox:latest`, `bosun.test/busybox:1` stays as it is, and
//! `name@sha256:<hex>` names an image by digest. This file only parses strings; it must never
//! touch the filesystem or the store.

use super::digest::sha256_hex;
use super::error::ImageError;

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A parsed, normalised reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reference {
    /// Domain and path, e.g. `docker.io/library/busybox`.
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<hex>`.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and normalises `input`. A reference with neither tag nor digest gets `:latest`.
    pub(crate) fn parse(input: &str) -> Result<Self, ImageError> {
        let invalid = |reason: &str| ImageError::InvalidReference {
            reference: input.to_owned(),
            reason: reason.to_owned(),
        };
        if input.is_empty() {
            return Err(invalid("reference is empty"));
        }
        let (name_and_tag, digest) = match input.split_once('@') {
            Some((n, d)) => {
                sha256_hex(d, "image reference")
                    .map_err(|_| invalid("digest is not sha256:<64 hex>"))?;
                (n, Some(d.to_owned()))
            }
            None => (input, None),
        };
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&name_and_tag[..at], Some(&name_and_tag[at + 1..]))
            }
            None => (name_and_tag, None),
        };
        if let Some(tag) = tag {
            if !is_valid_tag(tag) {
                return Err(invalid("tag must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"));
            }
        }
        let repository = normalize_name(name).map_err(invalid)?;
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_owned()),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_TAG.to_owned()),
        };
        Ok(Reference {
            repository,
            tag,
            digest,
        })
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Normalises an image reference like docker: adds `docker.io/`, `library/` and `:latest` where
/// docker would. `name@sha256:…` keeps its digest and gets no tag.
pub fn normalize_reference(r: &str) -> Result<String, ImageError> {
    Reference::parse(r).map(|r| r.to_string())
}

/// True when `s` is a bare tag (`latest`, `1.36`), not a name: no `/`, `:` or `@`.
pub(crate) fn is_valid_tag(s: &str) -> bool {
    let mut bytes = s.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    first_ok
        && s.len() <= MAX_TAG_LEN
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Adds the default domain and `library/` prefix, then checks every component.
fn normalize_name(name: &str) -> Result<String, &'static str> {
    if name.is_empty() {
        return Err("repository name is empty");
    }
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest.to_owned())
        }
        _ => (DEFAULT_DOMAIN, name.to_owned()),
    };
    let domain = if domain == LEGACY_DEFAULT_DOMAIN {
        DEFAULT_DOMAIN
    } else {
        domain
    };
    if !is_valid_domain(domain) {
        return Err("domain must be a host name with an optional :port");
    }
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("{OFFICIAL_REPO_PREFIX}{path}")
    } else {
        path
    };
    if !path.split('/').all(is_valid_path_component) {
        return Err(
            "path components must be lowercase [a-z0-9._-], starting and ending with [a-z0-9]",
        );
    }
    let full = format!("{domain}/{path}");
    if full.len() > MAX_NAME_LEN {
        return Err("repository name is longer than 255 characters");
    }
    Ok(full)
}

fn is_valid_domain(domain: &str) -> bool {
    let (host, port) = match domain.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (domain, None),
    };
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

fn is_valid_path_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = c.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(&f), Some(&l)) => {
            alnum(f)
                && alnum(l)
                && bytes
                    .iter()
                    .all(|&b| alnum(b) || matches!(b, b'.' | b'_' | b'-'))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalize_reference_follows_docker_rules() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest".to_owned()),
            ("busybox:1.36", "docker.io/library/busybox:1.36".to_owned()),
            (
                "library/busybox",
                "docker.io/library/busybox:latest".to_owned(),
            ),
            ("someone/app:v1", "docker.io/someone/app:v1".to_owned()),
            (
                "index.docker.io/busybox",
                "docker.io/library/busybox:latest".to_owned(),
            ),
            ("bosun.test/busybox:1", "bosun.test/busybox:1".to_owned()),
            ("localhost/app", "localhost/app:latest".to_owned()),
            ("localhost:5000/a/b:t", "localhost:5000/a/b:t".to_owned()),
            (
                &*format!("busybox@sha256:{HEX}"),
                format!("docker.io/library/busybox@sha256:{HEX}"),
            ),
            (
                &*format!("bosun.test/busybox:1@sha256:{HEX}"),
                format!("bosun.test/busybox:1@sha256:{HEX}"),
            ),
        ];
        for (input, want) in cases {
            let got = normalize_reference(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got, want, "normalising {input}");
        }
    }

    #[test]
    fn malformed_references_are_errors_not_panics() {
        for bad in [
            "",
            "UPPER",
            "busybox:",
            "busybox:bad/tag",
            "busybox@sha256:short",
            "busybox@md5:00",
            "a//b",
            "/busybox",
            "busybox/",
            ":tag",
            "bad domain.com/x",
            "host:port/x",
            "-x",
            "é",
            "@",
        ] {
            assert!(
                matches!(
                    normalize_reference(bad),
                    Err(ImageError::InvalidReference { .. })
                ),
                "{bad:?} accepted"
            );
        }
    }
}
