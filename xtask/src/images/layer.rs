//! Deterministic layer tarballs: the same entries always give the same bytes.
//!
//! Entries are sorted by path and written as ustar with uid/gid 0 and mtime 0; the gzip
//! header carries no mtime and no file name. This module owns reproducibility of layer
//! digests; it never reads the host filesystem (callers hand it file contents).

use std::io::Write;

use anyhow::{Context, Result};
use flate2::{Compression, GzBuilder};
use sha2::{Digest as _, Sha256};

/// What one path in a layer is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory with these permission bits.
    Dir { mode: u32 },
    /// A regular file with these permission bits and contents.
    File { mode: u32, contents: Vec<u8> },
    /// A symbolic link pointing at `target`.
    Symlink { target: String },
}

/// One path in a layer, relative to the root and without a leading `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub kind: EntryKind,
}

impl Entry {
    pub fn dir(path: &str, mode: u32) -> Self {
        Self::new(path, EntryKind::Dir { mode })
    }

    pub fn file(path: &str, mode: u32, contents: impl Into<Vec<u8>>) -> Self {
        let contents = contents.into();
        Self::new(path, EntryKind::File { mode, contents })
    }

    pub fn symlink(path: &str, target: &str) -> Self {
        let target = target.to_owned();
        Self::new(path, EntryKind::Symlink { target })
    }

    fn new(path: &str, kind: EntryKind) -> Self {
        let path = path
            .trim_start_matches('/')
            .trim_end_matches('/')
            .to_owned();
        Self { path, kind }
    }
}

/// A built layer: the compressed blob and the digest of the uncompressed tar (the diff_id).
#[derive(Clone, Debug)]
pub struct Layer {
    pub gzip: Vec<u8>,
    /// `sha256:<hex>` of the uncompressed tar.
    pub diff_id: String,
}

/// Builds a gzip layer from `entries`, in path order whatever order they came in.
pub fn build(mut entries: Vec<Entry>) -> Result<Layer> {
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let tar = tar_bytes(&entries)?;
    let diff_id = format!("sha256:{}", sha256_hex(&tar));
    let mut encoder = GzBuilder::new().write(Vec::new(), Compression::default());
    encoder.write_all(&tar).context("compressing the layer")?;
    let gzip = encoder.finish().context("finishing the gzip stream")?;
    Ok(Layer { gzip, diff_id })
}

/// Writes entries, in the given order, as a ustar archive with fixed owners and times.
pub fn tar_bytes(entries: &[Entry]) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_ustar();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        let path = &entry.path;
        let appended = match &entry.kind {
            EntryKind::Dir { mode } => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(*mode);
                header.set_size(0);
                builder.append_data(&mut header, format!("{path}/"), std::io::empty())
            }
            EntryKind::File { mode, contents } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(contents.len() as u64);
                builder.append_data(&mut header, path, contents.as_slice())
            }
            EntryKind::Symlink { target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, path, target)
            }
        };
        appended.with_context(|| format!("adding {path} to the layer"))?;
    }
    builder.into_inner().context("finishing the tar archive")
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn sample() -> Vec<Entry> {
        vec![
            Entry::file("/etc/passwd", 0o644, "root:x:0:0::/root:/bin/sh\n"),
            Entry::symlink("/bin/sh", "busybox"),
            Entry::dir("/tmp", 0o1777),
            Entry::dir("/etc", 0o755),
            Entry::dir("/bin", 0o755),
        ]
    }

    #[test]
    fn same_entries_in_any_order_give_the_same_digests() {
        let a = build(sample()).unwrap();
        let mut reversed = sample();
        reversed.reverse();
        let b = build(reversed).unwrap();
        assert_eq!(a.diff_id, b.diff_id);
        assert_eq!(sha256_hex(&a.gzip), sha256_hex(&b.gzip));
    }

    #[test]
    fn diff_id_is_the_digest_of_the_uncompressed_tar() {
        let layer = build(sample()).unwrap();
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(layer.gzip.as_slice())
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(layer.diff_id, format!("sha256:{}", sha256_hex(&tar)));
    }

    #[test]
    fn gzip_header_has_no_mtime() {
        let layer = build(sample()).unwrap();
        assert_eq!(&layer.gzip[4..8], &[0, 0, 0, 0]);
    }

    #[test]
    fn entries_keep_modes_owners_and_link_targets() {
        let layer = build(sample()).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(layer.gzip.as_slice()));
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let header = entry.header();
            assert_eq!(header.uid().unwrap(), 0);
            assert_eq!(header.mtime().unwrap(), 0);
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let link = entry
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned());
            seen.push((path, header.mode().unwrap(), link));
        }
        assert_eq!(
            seen,
            vec![
                ("bin/".to_owned(), 0o755, None),
                ("bin/sh".to_owned(), 0o777, Some("busybox".to_owned())),
                ("etc/".to_owned(), 0o755, None),
                ("etc/passwd".to_owned(), 0o644, None),
                ("tmp/".to_owned(), 0o1777, None),
            ]
        );
    }
}
