//! Content-addressed OCI image store: imports OCI layouts (directories or tarballs) and
//! docker-archive tarballs, verifies every blob by sha256, unpacks each layer once (keyed by
//! chain id) into a directory usable as an overlayfs lowerdir, and resolves references to
//! run configs and layer stacks.
//!
//! This module owns everything under its root directory and must never write outside it:
//! layer extraction refuses path traversal and never writes through a symlink (see
//! `unpack.rs`). Mutations take an exclusive flock on `<root>/lock`, reads a shared one, so
//! several processes may use one store. Registry pulls (`pull.rs`, `pull_layer.rs`) download
//! and unpack into the store's `downloads/`, then move each verified blob and layer into place,
//! leased against garbage collection until the reference is recorded.

mod archive;
mod credentials;
mod digest;
mod disk_gc;
mod error;
mod gc;
mod import;
mod layout;
mod progress;
mod pull;
mod pull_blob;
mod pull_layer;
mod reference;
mod registry_clients;
mod source;
mod store;
mod unpack;
mod uses;

#[cfg(test)]
mod disk_gc_tests;
#[cfg(test)]
mod test_fixtures;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod unpack_tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;

pub use credentials::{Credential, CredentialError, Keyring};
pub use disk_gc::{DiskUsage, GcOutcome, GcPolicy};
pub use error::ImageError;
pub use progress::PullProgress;
pub use pull::Puller;
pub use reference::normalize_reference;

use layout::ImageSource;
use store::{RefRecord, RefsFile, StoreDirs};

/// An image store rooted at one directory (e.g. `/var/lib/bosun/images`).
#[derive(Debug, Clone)]
pub struct ImageStore {
    dirs: StoreDirs,
    uses: std::sync::Arc<uses::PendingUses>,
}

/// One stored reference.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageSummary {
    /// Normalised reference, e.g. `docker.io/library/busybox:latest`.
    pub reference: String,
    /// Digest of the linux/amd64 image manifest, `sha256:<hex>`.
    pub digest: String,
    /// Bytes of all blobs the image uses (index, manifest, config, compressed layers).
    pub size: u64,
}

/// What a container runtime needs to start an image.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    pub reference: String,
    /// Digest of the image manifest.
    pub digest: String,
    pub config: ImageRunConfig,
    /// Unpacked layer directories usable as overlayfs lowerdirs, BOTTOM layer first
    /// (overlayfs wants the top layer first in `lowerdir=`: reverse before joining).
    pub layers: Vec<PathBuf>,
}

/// The run parameters of an image config.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageRunConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `K=V` entries.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
}

impl ImageStore {
    /// Opens the store at `root`, creating its directories if missing.
    pub fn open(root: &Path) -> Result<Self, ImageError> {
        Ok(ImageStore {
            dirs: StoreDirs::create(root)?,
            uses: std::sync::Arc::default(),
        })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        self.dirs.root()
    }

    /// Imports an OCI image layout directory, an OCI layout tarball or a docker-archive
    /// tarball, and returns the references imported. Re-importing an image is cheap: blobs
    /// and layers already present are not copied or unpacked again. If anything fails no
    /// reference is added, and blobs the failed import left behind are collected.
    pub fn import(&self, path: &Path) -> Result<Vec<ImageSummary>, ImageError> {
        let _lock = self.dirs.lock(true)?;
        self.dirs.clear_scratch()?;
        let mut refs = self.dirs.load_refs()?;
        match self.import_locked(path, &mut refs) {
            Ok(summaries) => Ok(summaries),
            Err(e) => {
                let _ = gc::collect_garbage(&self.dirs, &refs);
                Err(e)
            }
        }
    }

    /// Records `reference` for an image a registry pull brought in: moves its verified
    /// manifests and config (`staged`: digest and file) into the store, checks every layer
    /// and blob is there (a pull's lease kept them), and saves `refs.json`.
    fn record_pull(
        &self,
        reference: &str,
        record: RefRecord,
        staged: &[(String, PathBuf)],
    ) -> Result<ImageSummary, ImageError> {
        let _lock = self.dirs.lock(true)?;
        for (digest, path) in staged {
            self.dirs.adopt_verified_blob(digest, path)?;
        }
        for digest in &record.blobs {
            let path = self.dirs.blob_path(digest)?;
            if !path.is_file() {
                return Err(ImageError::StoreCorrupt {
                    path,
                    problem: format!("blob of {reference} vanished during the pull"),
                });
            }
        }
        for chain in &record.chain_ids {
            let diff = self.dirs.layer_dir(chain)?.join("diff");
            if !diff.is_dir() {
                return Err(ImageError::StoreCorrupt {
                    path: diff,
                    problem: format!("layer of {reference} vanished during the pull"),
                });
            }
        }
        let mut refs = self.dirs.load_refs()?;
        let summary = summary(reference, &record);
        let manifest = record.manifest.clone();
        let old = refs.refs.insert(reference.to_owned(), record.clone());
        self.dirs.save_refs(&refs)?;
        if old.is_some_and(|o| o != record) {
            gc::collect_garbage(&self.dirs, &refs)?;
            disk_gc::forget_unreferenced(&self.dirs, &refs)?;
        }
        disk_gc::touch(&self.dirs, &[manifest])?;
        Ok(summary)
    }

    fn import_locked(
        &self,
        path: &Path,
        refs: &mut RefsFile,
    ) -> Result<Vec<ImageSummary>, ImageError> {
        let source = ImageSource::open(path, &self.dirs.tmp_dir())?;
        self.record_images(&source, refs)
    }

    /// Imports every image `source` names and records its reference (saving `refs.json`).
    fn record_images(
        &self,
        source: &ImageSource,
        refs: &mut RefsFile,
    ) -> Result<Vec<ImageSummary>, ImageError> {
        let mut by_target: HashMap<String, RefRecord> = HashMap::new();
        let mut new_refs = Vec::new();
        for image in &source.images {
            let target = image.descriptor.digest().to_string();
            let record = match by_target.get(&target) {
                Some(r) => r.clone(),
                None => import::import_image(&self.dirs, source, &image.descriptor)?,
            };
            by_target.insert(target, record.clone());
            new_refs.push((image.reference.clone(), record));
        }
        let mut replaced = false;
        let mut summaries = Vec::new();
        let manifests: Vec<String> = new_refs.iter().map(|(_, r)| r.manifest.clone()).collect();
        for (reference, record) in new_refs {
            summaries.push(summary(&reference, &record));
            let old = refs.refs.insert(reference, record.clone());
            replaced |= old.is_some_and(|o| o != record);
        }
        self.dirs.save_refs(refs)?;
        if replaced {
            gc::collect_garbage(&self.dirs, refs)?;
            disk_gc::forget_unreferenced(&self.dirs, refs)?;
        }
        disk_gc::touch(&self.dirs, &manifests)?;
        Ok(summaries)
    }

    /// All stored references, sorted.
    pub fn list(&self) -> Result<Vec<ImageSummary>, ImageError> {
        let _lock = self.dirs.lock(false)?;
        let refs = self.dirs.load_refs()?;
        Ok(refs.refs.iter().map(|(r, rec)| summary(r, rec)).collect())
    }

    /// Removes a reference, then deletes blobs and layers no remaining reference uses.
    pub fn remove(&self, reference: &str) -> Result<(), ImageError> {
        let _lock = self.dirs.lock(true)?;
        let mut refs = self.dirs.load_refs()?;
        let (key, _) = lookup(&refs, reference)?;
        refs.refs.remove(&key);
        self.dirs.save_refs(&refs)?;
        gc::collect_garbage(&self.dirs, &refs)?;
        disk_gc::forget_unreferenced(&self.dirs, &refs)
    }

    /// Looks up a reference (normalised like docker; `name@sha256:…` matches by digest).
    pub fn resolve(&self, reference: &str) -> Result<ResolvedImage, ImageError> {
        let _lock = self.dirs.lock(false)?;
        let refs = self.dirs.load_refs()?;
        let (key, record) = lookup(&refs, reference)?;
        let normalized = normalize_reference(reference)?;
        let config_bytes = self.dirs.read_json_blob(&record.config)?;
        let config: ImageConfiguration =
            serde_json::from_slice(&config_bytes).map_err(|source| ImageError::Json {
                what: format!("image config {} of {key}", record.config),
                source,
            })?;
        let mut layers = Vec::with_capacity(record.chain_ids.len());
        for chain in &record.chain_ids {
            let diff = self.dirs.layer_dir(chain)?.join("diff");
            if !diff.is_dir() {
                return Err(ImageError::StoreCorrupt {
                    path: diff,
                    problem: format!("layer of {key} is missing"),
                });
            }
            layers.push(diff);
        }
        Ok(ResolvedImage {
            reference: normalized,
            digest: record.manifest.clone(),
            config: run_config(&config),
            layers,
        })
    }
}

/// Finds the stored key and record for `reference`: exact normalised match first; for
/// `name@digest`, any reference of the same repository whose index or manifest has that digest.
fn lookup(refs: &RefsFile, reference: &str) -> Result<(String, RefRecord), ImageError> {
    let parsed = reference::parse(reference)?;
    let normalized = parsed.whole();
    if let Some(record) = refs.refs.get(&normalized) {
        return Ok((normalized, record.clone()));
    }
    if let Some(digest) = parsed.digest() {
        let found = refs.refs.iter().find(|(key, record)| {
            (record.target == digest || record.manifest == digest)
                && reference::parse(key).is_ok_and(|k| {
                    reference::repository_of(&k) == reference::repository_of(&parsed)
                })
        });
        if let Some((key, record)) = found {
            return Ok((key.clone(), record.clone()));
        }
    }
    Err(ImageError::NotFound {
        reference: normalized,
    })
}

fn summary(reference: &str, record: &RefRecord) -> ImageSummary {
    ImageSummary {
        reference: reference.to_owned(),
        digest: record.manifest.clone(),
        size: record.size,
    }
}

fn run_config(config: &ImageConfiguration) -> ImageRunConfig {
    let Some(c) = config.config() else {
        return ImageRunConfig::default();
    };
    let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    ImageRunConfig {
        entrypoint: c.entrypoint().clone().unwrap_or_default(),
        cmd: c.cmd().clone().unwrap_or_default(),
        env: c.env().clone().unwrap_or_default(),
        working_dir: non_empty(c.working_dir()),
        user: non_empty(c.user()),
    }
}
