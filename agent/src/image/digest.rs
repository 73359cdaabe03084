//! sha256 digests: validating `sha256:<hex>` strings, hashing streams while they are read, and
//! computing layer chain ids. This file must never accept a digest it has not validated: the hex
//! part becomes a file name under the store root, so anything but 64 lowercase hex digits is an
//! error here, before any path is built.

use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

use super::error::ImageError;

/// The only algorithm prefix the store accepts.
pub(crate) const SHA256_PREFIX: &str = "sha256:";

/// Returns the 64-character hex part of `digest`, or an error naming `context`.
pub(crate) fn sha256_hex<'a>(digest: &'a str, context: &str) -> Result<&'a str, ImageError> {
    match digest.strip_prefix(SHA256_PREFIX) {
        Some(hex) if is_sha256_hex(hex) => Ok(hex),
        _ => Err(ImageError::InvalidDigest {
            digest: digest.to_owned(),
            context: context.to_owned(),
        }),
    }
}

/// True when `hex` is exactly 64 lowercase hex digits.
pub(crate) fn is_sha256_hex(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `sha256:<hex>` of `bytes`.
pub(crate) fn digest_of(bytes: &[u8]) -> String {
    format!("{SHA256_PREFIX}{}", hex::encode(Sha256::digest(bytes)))
}

/// Chain ids (hex, without prefix) of a layer stack given its diff ids, bottom layer first:
/// chain(L1) = diffid1, chain(Ln) = sha256(chain(Ln-1) + " " + diffidn).
pub(crate) fn chain_ids(diff_ids: &[String]) -> Result<Vec<String>, ImageError> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        sha256_hex(diff_id, "image config rootfs.diff_ids")?;
        let chain = match out.last() {
            None => diff_id.clone(),
            Some(parent_hex) => {
                digest_of(format!("{SHA256_PREFIX}{parent_hex} {diff_id}").as_bytes())
            }
        };
        out.push(sha256_hex(&chain, "chain id")?.to_owned());
    }
    Ok(out)
}

/// A reader that hashes and counts every byte that passes through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Reads the rest of the stream, then returns (`sha256:<hex>`, total bytes read).
    pub(crate) fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        let digest = format!("{SHA256_PREFIX}{}", hex::encode(self.hasher.finalize()));
        Ok((digest, self.len))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let read = buf.get(..n).unwrap_or_default();
        self.hasher.update(read);
        self.len += read.len() as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_id_of_one_layer_is_its_diff_id_and_then_hashes_pairs() {
        let a = digest_of(b"a");
        let b = digest_of(b"b");
        let ids = chain_ids(&[a.clone(), b.clone()]).expect("valid diff ids");
        assert_eq!(format!("sha256:{}", ids[0]), a);
        assert_eq!(
            format!("sha256:{}", ids[1]),
            digest_of(format!("{a} {b}").as_bytes())
        );
    }

    #[test]
    fn digests_that_could_escape_a_path_are_rejected() {
        for bad in [
            "sha256:../../etc",
            "sha512:00",
            "sha256:ABCDEF",
            "",
            "sha256:",
        ] {
            assert!(sha256_hex(bad, "test").is_err(), "{bad} accepted");
        }
    }
}
