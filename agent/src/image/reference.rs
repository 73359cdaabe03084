//! Image references, normalised the way Kubernetes (containerd, docker) does it: `busybox`
//! becomes `docker.io/library/busybox:latest`, `bosun.test/busybox:1` stays as it is, and
//! `name@sha256:<hex>` names an image by digest. Parsing is `oci_spec::distribution::Reference`
//! (a port of distribution/reference); this file adds the store's rules on top (only sha256
//! digests) and our error type. It only parses strings; it must never touch the filesystem.

pub(crate) use oci_spec::distribution::Reference;

use super::digest::sha256_hex;
use super::error::ImageError;

const MAX_TAG_LEN: usize = 128;

/// Parses and normalises `input`. A reference with neither tag nor digest gets `:latest`.
pub(crate) fn parse(input: &str) -> Result<Reference, ImageError> {
    let invalid = |reason: String| ImageError::InvalidReference {
        reference: input.to_owned(),
        reason,
    };
    let parsed: Reference = input.parse().map_err(|e| invalid(format!("{e}")))?;
    if let Some(digest) = parsed.digest() {
        sha256_hex(digest, "image reference")
            .map_err(|_| invalid("only sha256:<64 hex> digests are supported".to_owned()))?;
    }
    Ok(parsed)
}

/// `registry/repository` of a parsed reference, e.g. `docker.io/library/busybox`.
pub(crate) fn repository_of(reference: &Reference) -> String {
    format!("{}/{}", reference.registry(), reference.repository())
}

/// Normalises an image reference like Kubernetes: adds `docker.io/`, `library/` and `:latest`
/// where it would. `name@sha256:…` keeps its digest and gets no tag.
pub fn normalize_reference(r: &str) -> Result<String, ImageError> {
    parse(r).map(|r| r.whole())
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

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalize_reference_follows_kubernetes_rules() {
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
                &*format!("host:5000/x/y@sha256:{HEX}"),
                format!("host:5000/x/y@sha256:{HEX}"),
            ),
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
            "busybox@sha512:00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
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
