//! Image garbage collection by disk usage, like kubelet's image GC manager: when the
//! filesystem holding the store is at or above the high threshold (percent used), the images
//! no pod uses are removed least recently used first — every reference to one manifest at once
//! — each followed by the blob and layer sweep (`gc.rs`), until usage is at or below the low
//! threshold or nothing more may go. An image is "used" when a pod starts a container of it,
//! and when it is pulled or imported; the times live in `<root>/last-used.json` (manifest digest
//! → Unix milliseconds), an image never seen there counting as used when first seen.
//!
//! This file must never remove an image whose manifest one of the in-use references resolves
//! to; it asks for them only once it holds the store's exclusive lock, so an image a pod
//! resolves later is resolved after the collection (and pulled again if it went).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{io_err, ImageError};
use super::store::{RefsFile, StoreDirs};
use super::{gc, lookup, ImageStore};

const LAST_USED_FILE: &str = "last-used.json";

/// kubelet's `--image-gc-high-threshold` and `--image-gc-low-threshold` (percent of the
/// filesystem used) and `--minimum-image-ttl-duration`. A high threshold of 100 turns the
/// collection off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcPolicy {
    pub high_percent: u8,
    pub low_percent: u8,
    /// An unused image whose last use (or pull, or import) is more recent than this stays:
    /// it may have just been pulled for a container about to start. kubelet counts from when
    /// it first detected the image; the last use is never earlier, so this keeps at least as
    /// much.
    pub minimum_age: Duration,
}

impl Default for GcPolicy {
    /// kubelet's defaults: 85, 80 and 2 minutes.
    fn default() -> Self {
        GcPolicy {
            high_percent: 85,
            low_percent: 80,
            minimum_age: Duration::from_secs(120),
        }
    }
}

impl GcPolicy {
    /// Checks the thresholds like kubelet's configuration validation.
    pub fn new(high_percent: u8, low_percent: u8) -> Result<Self, String> {
        if high_percent > 100 || low_percent > 100 {
            return Err(format!(
                "image GC thresholds must be within [0, 100] (high {high_percent}, low {low_percent})"
            ));
        }
        if low_percent >= high_percent && high_percent < 100 {
            return Err(format!(
                "--image-gc-low-threshold ({low_percent}) must be less than --image-gc-high-threshold ({high_percent})"
            ));
        }
        Ok(GcPolicy {
            high_percent,
            low_percent,
            minimum_age: Duration::ZERO,
        })
    }

    /// The policy with `minimum_age` (the thresholds alone keep none).
    pub fn with_minimum_age(self, minimum_age: Duration) -> Self {
        GcPolicy {
            minimum_age,
            ..self
        }
    }

    pub fn enabled(&self) -> bool {
        self.high_percent < 100
    }
}

/// Size and free space of a filesystem, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUsage {
    pub capacity: u64,
    pub available: u64,
}

impl DiskUsage {
    /// Of the filesystem holding `path` (statvfs; available = what unprivileged users get).
    pub fn of(path: &Path) -> Result<DiskUsage, ImageError> {
        let st = nix::sys::statvfs::statvfs(path).map_err(|source| ImageError::Syscall {
            call: "statvfs",
            path: path.to_path_buf(),
            source,
        })?;
        let frsize = st.fragment_size();
        Ok(DiskUsage {
            capacity: st.blocks().saturating_mul(frsize),
            available: st.blocks_available().saturating_mul(frsize),
        })
    }

    /// kubelet's `100 - available * 100 / capacity`.
    pub fn used_percent(&self) -> u8 {
        if self.capacity == 0 {
            return 0;
        }
        let free = u128::from(self.available) * 100 / u128::from(self.capacity);
        100u8.saturating_sub(u8::try_from(free.min(100)).unwrap_or(100))
    }
}

/// What one collection did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcOutcome {
    pub before: DiskUsage,
    pub after: DiskUsage,
    /// References removed, least recently used image first.
    pub removed: Vec<String>,
    /// Usage ended at or below the low threshold.
    pub reached_low: bool,
    /// kubelet's amount to free: what usage at the low threshold leaves free, less what was.
    pub bytes_to_free: u64,
}

impl GcOutcome {
    pub fn bytes_freed(&self) -> u64 {
        self.after.available.saturating_sub(self.before.available)
    }
}

impl ImageStore {
    /// Records that `reference` is used now (a pod starts a container of it); the time
    /// reaches `last-used.json` with the next write of the pending uses (`uses.rs`).
    pub fn mark_used(&self, reference: &str) -> Result<(), ImageError> {
        if self.uses.record(reference, now_millis()) {
            self.write_uses()?;
        }
        Ok(())
    }

    /// Writes the uses recorded since the last write (the image GC pass does, and
    /// [`mark_used`](Self::mark_used) when they are due).
    pub fn write_uses(&self) -> Result<(), ImageError> {
        let _lock = self.dirs.lock(true)?;
        self.write_uses_locked()
    }

    /// [`write_uses`](Self::write_uses) under the exclusive lock: a reference gone meanwhile
    /// is skipped, a newer time in the file kept.
    fn write_uses_locked(&self) -> Result<(), ImageError> {
        let pending = self.uses.take();
        if pending.is_empty() {
            return Ok(());
        }
        let refs = self.dirs.load_refs()?;
        let mut last_used = load_last_used(&self.dirs)?;
        for (reference, millis) in pending {
            if let Ok((_, record)) = lookup(&refs, &reference) {
                let time = last_used.entry(record.manifest).or_default();
                *time = (*time).max(millis);
            }
        }
        save_last_used(&self.dirs, &last_used)
    }

    /// Unless usage of the store's filesystem is below `policy`'s high threshold (or the
    /// policy is off), removes unused images least recently used first until it is at or
    /// below the low threshold. `in_use` is asked, under the store lock, for every image
    /// reference a pod uses (None: they are unknown, nothing may go). None: nothing was done.
    pub fn free_disk_space(
        &self,
        policy: GcPolicy,
        in_use: impl FnOnce() -> Option<Vec<String>>,
    ) -> Result<Option<GcOutcome>, ImageError> {
        let root = self.dirs.root().to_path_buf();
        self.free_with(policy, in_use, &mut || DiskUsage::of(&root))
    }

    /// [`free_disk_space`](Self::free_disk_space) with the usage measured by `usage`.
    pub(crate) fn free_with(
        &self,
        policy: GcPolicy,
        in_use: impl FnOnce() -> Option<Vec<String>>,
        usage: &mut dyn FnMut() -> Result<DiskUsage, ImageError>,
    ) -> Result<Option<GcOutcome>, ImageError> {
        if !policy.enabled() || usage()?.used_percent() < policy.high_percent {
            return Ok(None);
        }
        let _lock = self.dirs.lock(true)?;
        let before = usage()?;
        if before.used_percent() < policy.high_percent {
            return Ok(None);
        }
        self.write_uses_locked()?;
        let Some(in_use) = in_use() else {
            return Ok(None);
        };
        let mut refs = self.dirs.load_refs()?;
        let protected: BTreeSet<String> = in_use
            .iter()
            .filter_map(|r| lookup(&refs, r).ok().map(|(_, rec)| rec.manifest))
            .collect();
        let mut last_used = load_last_used(&self.dirs)?;
        let now = now_millis();
        let mut images: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (reference, record) in &refs.refs {
            images
                .entry(record.manifest.clone())
                .or_default()
                .push(reference.clone());
        }
        for manifest in images.keys() {
            last_used.entry(manifest.clone()).or_insert(now);
        }
        let old_enough =
            now.saturating_sub(u64::try_from(policy.minimum_age.as_millis()).unwrap_or(u64::MAX));
        let mut candidates: Vec<(u64, String)> = images
            .keys()
            .filter(|m| !protected.contains(*m))
            .map(|m| (last_used.get(m).copied().unwrap_or(now), m.clone()))
            .filter(|(used, _)| policy.minimum_age.is_zero() || *used <= old_enough)
            .collect();
        candidates.sort();
        let target_free =
            (u128::from(before.capacity) * u128::from(100 - policy.low_percent) / 100) as u64;
        let mut outcome = GcOutcome {
            before,
            after: before,
            removed: Vec::new(),
            reached_low: before.used_percent() <= policy.low_percent,
            bytes_to_free: target_free.saturating_sub(before.available),
        };
        for (_, manifest) in candidates {
            if outcome.reached_low {
                break;
            }
            let names = images.remove(&manifest).unwrap_or_default();
            for name in &names {
                refs.refs.remove(name);
            }
            self.dirs.save_refs(&refs)?;
            gc::collect_garbage(&self.dirs, &refs)?;
            last_used.remove(&manifest);
            tracing::info!(image = %manifest, references = ?names, "image garbage collection removed an unused image");
            outcome.removed.extend(names);
            outcome.after = usage()?;
            outcome.reached_low = outcome.after.used_percent() <= policy.low_percent;
        }
        last_used.retain(|m, _| images.contains_key(m));
        save_last_used(&self.dirs, &last_used)?;
        Ok(Some(outcome))
    }
}

/// Sets the last-used time of `manifests` to now. Needs the exclusive lock.
pub(crate) fn touch(dirs: &StoreDirs, manifests: &[String]) -> Result<(), ImageError> {
    let mut last_used = load_last_used(dirs)?;
    let now = now_millis();
    for m in manifests {
        last_used.insert(m.clone(), now);
    }
    save_last_used(dirs, &last_used)
}

/// Drops the times of images no reference names any more. Needs the exclusive lock.
pub(crate) fn forget_unreferenced(dirs: &StoreDirs, refs: &RefsFile) -> Result<(), ImageError> {
    let mut last_used = load_last_used(dirs)?;
    let before = last_used.len();
    let live: BTreeSet<&String> = refs.refs.values().map(|r| &r.manifest).collect();
    last_used.retain(|m, _| live.contains(m));
    if last_used.len() == before {
        return Ok(());
    }
    save_last_used(dirs, &last_used)
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn last_used_path(dirs: &StoreDirs) -> PathBuf {
    dirs.root().join(LAST_USED_FILE)
}

/// The last-used times; an unreadable file counts as empty (every image then as used now).
fn load_last_used(dirs: &StoreDirs) -> Result<BTreeMap<String, u64>, ImageError> {
    let path = last_used_path(dirs);
    match fs::read(&path) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "unreadable image last-used times; starting afresh");
            BTreeMap::new()
        })),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(ImageError::io("reading", path, e)),
    }
}

/// Writes the last-used times atomically (temp file, rename).
fn save_last_used(dirs: &StoreDirs, times: &BTreeMap<String, u64>) -> Result<(), ImageError> {
    let path = last_used_path(dirs);
    let bytes = serde_json::to_vec(times).map_err(|source| ImageError::Json {
        what: format!("serialising {}", path.display()),
        source,
    })?;
    let tmp = dirs.root().join(format!("{LAST_USED_FILE}.tmp"));
    let mut file = fs::File::create(&tmp).map_err(io_err("creating", &tmp))?;
    file.write_all(&bytes).map_err(io_err("writing", &tmp))?;
    fs::rename(&tmp, &path).map_err(io_err("renaming into place", &path))
}
