//! The on-disk layout of the store and the primitives that change it: where blobs, layers, the
//! reference file and scratch space live; the flock that serialises processes; verified blob
//! ingestion; atomic writes of `refs.json`.
//!
//! Layout under the root: `blobs/sha256/<hex>`, `layers/<chainid-hex>/diff/`, `refs.json`,
//! `downloads/` (registry pulls in progress), `tmp/` (scratch, same filesystem so renames are atomic), `lock`. This file must never place a
//! blob in `blobs/` before its digest and size were checked, and never build a path from a
//! digest or chain id it has not validated.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::digest::{is_sha256_hex, sha256_hex, HashingReader};
use super::error::{io_err, ImageError};

/// Largest index, manifest or config the store parses (containerd uses 4 MiB for manifests).
pub(crate) const MAX_JSON_BLOB: u64 = 16 << 20;

/// Paths inside one store root.
#[derive(Debug, Clone)]
pub(crate) struct StoreDirs {
    root: PathBuf,
}

impl StoreDirs {
    /// Creates the directory skeleton under `root` if missing.
    pub(crate) fn create(root: &Path) -> Result<Self, ImageError> {
        let dirs = StoreDirs {
            root: root.to_path_buf(),
        };
        // Layers are overlayfs lowerdirs: traversable (0711), not listable, by others.
        let skeleton = [
            (dirs.layers_dir(), 0o711),
            (dirs.blobs_dir(), 0o700),
            (dirs.tmp_dir(), 0o700),
            (dirs.downloads_dir(), 0o700),
        ];
        for (dir, mode) in skeleton {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(&dir)
                .map_err(io_err("creating store directory", &dir))?;
        }
        Ok(dirs)
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    pub(crate) fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Registry downloads in progress (one scratch directory per pull). Not `tmp/`: an
    /// import clears that under the lock, while a pull downloads without holding it.
    pub(crate) fn downloads_dir(&self) -> PathBuf {
        self.root.join("downloads")
    }

    fn refs_path(&self) -> PathBuf {
        self.root.join("refs.json")
    }

    /// `blobs/sha256/<hex>` for a validated `sha256:<hex>` digest.
    pub(crate) fn blob_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        Ok(self.blobs_dir().join(sha256_hex(digest, "blob lookup")?))
    }

    /// `layers/<hex>` for a validated chain id (hex without prefix).
    pub(crate) fn layer_dir(&self, chain_hex: &str) -> Result<PathBuf, ImageError> {
        if !is_sha256_hex(chain_hex) {
            return Err(ImageError::InvalidDigest {
                digest: chain_hex.to_owned(),
                context: "layer chain id".to_owned(),
            });
        }
        Ok(self.layers_dir().join(chain_hex))
    }

    /// Takes the store-wide flock: exclusive for mutations, shared for reads. Released on drop.
    pub(crate) fn lock(&self, exclusive: bool) -> Result<Flock<File>, ImageError> {
        let path = self.root.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err("opening lock file", &path))?;
        let arg = if exclusive {
            FlockArg::LockExclusive
        } else {
            FlockArg::LockShared
        };
        Flock::lock(file, arg).map_err(|(_, source)| ImageError::Lock { path, source })
    }

    /// Removes downloads left by pulls whose process is gone (scratch names carry the pid:
    /// `<prefix>-<pid>-…`); downloads of live processes are left alone.
    pub(crate) fn clear_stale_downloads(&self) -> Result<usize, ImageError> {
        let dir = self.downloads_dir();
        let mut removed = 0;
        for entry in fs::read_dir(&dir).map_err(io_err("listing downloads", &dir))? {
            let path = entry.map_err(io_err("listing downloads", &dir))?.path();
            if !owner_is_alive(&path) {
                remove_any(&path)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Empties `tmp/`. Only call with the exclusive lock held: then nothing in it is in use.
    pub(crate) fn clear_scratch(&self) -> Result<(), ImageError> {
        let tmp = self.tmp_dir();
        for entry in fs::read_dir(&tmp).map_err(io_err("listing scratch directory", &tmp))? {
            let path = entry
                .map_err(io_err("listing scratch directory", &tmp))?
                .path();
            remove_any(&path)?;
        }
        Ok(())
    }

    pub(crate) fn load_refs(&self) -> Result<RefsFile, ImageError> {
        let path = self.refs_path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(RefsFile::default()),
            Err(e) => return Err(ImageError::io("reading reference file", path, e)),
        };
        serde_json::from_slice(&bytes).map_err(|source| ImageError::Json {
            what: format!("reference file {}", path.display()),
            source,
        })
    }

    /// Writes `refs.json` atomically (temp file, fsync, rename). Needs the exclusive lock.
    pub(crate) fn save_refs(&self, refs: &RefsFile) -> Result<(), ImageError> {
        let path = self.refs_path();
        let bytes = serde_json::to_vec_pretty(refs).map_err(|source| ImageError::Json {
            what: format!("serialising reference file {}", path.display()),
            source,
        })?;
        let tmp = self.root.join("refs.json.tmp");
        let mut file = File::create(&tmp).map_err(io_err("creating", &tmp))?;
        file.write_all(&bytes).map_err(io_err("writing", &tmp))?;
        file.sync_all().map_err(io_err("syncing", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_err("renaming into place", &path))
    }

    /// Copies the blob `digest` from `src` into the store, checking its size and digest first.
    /// A blob already in the store (verified when it was added) is not read again.
    pub(crate) fn ingest_blob(
        &self,
        digest: &str,
        size: u64,
        src: &Path,
    ) -> Result<PathBuf, ImageError> {
        let dst = self.blob_path(digest)?;
        if dst.is_file() {
            return Ok(dst);
        }
        let input = File::open(src).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ImageError::BlobMissing {
                digest: digest.to_owned(),
                path: src.to_path_buf(),
            },
            _ => ImageError::io("opening blob", src, e),
        })?;
        let scratch = ScratchDir::new(&self.tmp_dir(), "blob")?;
        let tmp = scratch.path().join("data");
        let mut out = File::create(&tmp).map_err(io_err("creating", &tmp))?;
        // Read at most one byte more than promised: enough to detect a size lie.
        let mut reader = HashingReader::new(input.take(size.saturating_add(1)));
        io::copy(&mut reader, &mut out).map_err(io_err("copying blob from", src))?;
        let (actual, len) = reader.finish().map_err(io_err("reading blob", src))?;
        if len != size {
            return Err(ImageError::SizeMismatch {
                digest: digest.to_owned(),
                expected: size,
                actual: len,
                path: src.to_path_buf(),
            });
        }
        if actual != digest {
            return Err(ImageError::DigestMismatch {
                expected: digest.to_owned(),
                actual,
                path: src.to_path_buf(),
            });
        }
        out.sync_all().map_err(io_err("syncing", &tmp))?;
        fs::rename(&tmp, &dst).map_err(io_err("moving blob into place", &dst))?;
        Ok(dst)
    }

    /// Moves a blob this process downloaded and verified (size and sha256 against `digest`)
    /// from `verified` into the store. Needs the exclusive lock. A blob already stored wins.
    pub(crate) fn adopt_verified_blob(
        &self,
        digest: &str,
        verified: &Path,
    ) -> Result<(), ImageError> {
        let dst = self.blob_path(digest)?;
        if dst.is_file() {
            return Ok(());
        }
        fs::rename(verified, &dst).map_err(io_err("moving blob into place", &dst))
    }

    /// Moves a layer this process unpacked and checked against its diff_id (`unpacked`
    /// holds `diff/`) to `layers/<chain>`. Needs the exclusive lock. A stored layer wins.
    pub(crate) fn adopt_verified_layer(
        &self,
        chain_hex: &str,
        unpacked: &Path,
    ) -> Result<(), ImageError> {
        let dest = self.layer_dir(chain_hex)?;
        if dest.join("diff").is_dir() {
            return Ok(());
        }
        // A directory without diff/ is a leftover; replace it.
        remove_any(&dest)?;
        fs::rename(unpacked, &dest).map_err(io_err("moving unpacked layer into place", &dest))
    }

    /// What the pulls in progress of live processes lease (their `downloads/*/lease.json`):
    /// blob digests and layer chain ids garbage collection must keep although no reference
    /// names them yet.
    pub(crate) fn leases(&self) -> Result<Lease, ImageError> {
        let dir = self.downloads_dir();
        let mut all = Lease::default();
        for entry in fs::read_dir(&dir).map_err(io_err("listing downloads", &dir))? {
            let path = entry.map_err(io_err("listing downloads", &dir))?.path();
            if !owner_is_alive(&path) {
                continue;
            }
            let Ok(bytes) = fs::read(path.join(LEASE_FILE)) else {
                continue;
            };
            if let Ok(lease) = serde_json::from_slice::<Lease>(&bytes) {
                all.blobs.extend(lease.blobs);
                all.chain_ids.extend(lease.chain_ids);
            }
        }
        Ok(all)
    }

    /// Reads a JSON blob (index, manifest, config) that is already in the store. Blobs over
    /// [`MAX_JSON_BLOB`] are refused rather than read into memory.
    pub(crate) fn read_json_blob(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let path = self.blob_path(digest)?;
        let size = fs::metadata(&path).map_or(0, |m| m.len());
        if size > MAX_JSON_BLOB {
            return Err(ImageError::BlobTooLarge {
                digest: digest.to_owned(),
                size,
                limit: MAX_JSON_BLOB,
            });
        }
        fs::read(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ImageError::BlobMissing {
                digest: digest.to_owned(),
                path: path.clone(),
            },
            _ => ImageError::io("reading blob", &path, e),
        })
    }
}

/// The file in a pull's download directory naming what the pull will reference.
pub(crate) const LEASE_FILE: &str = "lease.json";

/// Blobs and layers a pull in progress keeps from garbage collection.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Lease {
    pub blobs: Vec<String>,
    pub chain_ids: Vec<String>,
}

/// Whether the process that made scratch entry `path` (`<prefix>-<pid>-…`) still runs.
fn owner_is_alive(path: &Path) -> bool {
    let pid = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('-').nth(1))
        .and_then(|p| p.parse::<u32>().ok());
    pid.is_some_and(|p| Path::new("/proc").join(p.to_string()).exists())
}

/// Contents of `refs.json`: every reference and everything its image keeps alive.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct RefsFile {
    pub refs: BTreeMap<String, RefRecord>,
}

/// One stored reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RefRecord {
    /// The digest the reference names: a manifest, or an index that led to it.
    pub target: String,
    /// The linux/amd64 image manifest.
    pub manifest: String,
    pub config: String,
    /// Bytes of all blobs this image uses (indexes, manifest, config, compressed layers).
    pub size: u64,
    /// Every blob this image uses; garbage collection keeps these.
    pub blobs: Vec<String>,
    /// Layer chain ids (hex), bottom layer first.
    pub chain_ids: Vec<String>,
}

/// A uniquely named directory under the store's `tmp/`, removed on drop unless kept.
pub(crate) struct ScratchDir {
    path: Option<PathBuf>,
}

static SCRATCH_COUNTER: AtomicU64 = AtomicU64::new(0);

impl ScratchDir {
    pub(crate) fn new(parent: &Path, prefix: &str) -> Result<Self, ImageError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let n = SCRATCH_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = parent.join(format!("{prefix}-{}-{nanos}-{n}", std::process::id()));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(io_err("creating scratch directory", &path))?;
        Ok(ScratchDir { path: Some(path) })
    }

    pub(crate) fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// Renames the directory to `dest` and stops it from being removed.
    pub(crate) fn persist(mut self, dest: &Path) -> Result<(), ImageError> {
        let path = self.path.take().unwrap_or_default();
        match fs::rename(&path, dest) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.path = Some(path);
                Err(ImageError::io("moving unpacked layer into place", dest, e))
            }
        }
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = fs::remove_dir_all(path);
        }
    }
}

/// Removes a file, symlink or directory tree at `path` (never following a symlink).
pub(crate) fn remove_any(path: &Path) -> Result<(), ImageError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ImageError::io("inspecting", path, e)),
    };
    if meta.is_dir() {
        fs::remove_dir_all(path).map_err(io_err("removing directory", path))
    } else {
        fs::remove_file(path).map_err(io_err("removing file", path))
    }
}
