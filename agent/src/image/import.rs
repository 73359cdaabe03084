//! Importing one named image from an opened source into the store: follow index -> manifest
//! (picking linux/amd64), ingest and verify every blob, check config diff_ids, and unpack each
//! layer once, keyed by chain id. Returns the [`RefRecord`] to store under the reference.
//!
//! This file must never write `refs.json` (the caller does, once, under the lock) and never
//! move a layer into `layers/` before its uncompressed digest matched the config's diff_id.

use std::fs::{self, Permissions};
use std::os::unix::fs::PermissionsExt;

use oci_spec::image::{
    Arch, Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType, Os,
};
use serde::de::DeserializeOwned;

use super::digest::chain_ids;
use super::error::{io_err, ImageError};
use super::layout::ImageSource;
use super::store::{RefRecord, ScratchDir, StoreDirs};
use super::unpack::{unpack_layer, Compression};

pub(crate) const DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const DOCKER_LAYER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Nested indexes deeper than this are refused rather than followed.
const MAX_INDEX_DEPTH: usize = 4;

/// Imports the image `top` names from `source` and returns what to record for its reference.
pub(crate) fn import_image(
    dirs: &StoreDirs,
    source: &ImageSource,
    top: &Descriptor,
) -> Result<RefRecord, ImageError> {
    let mut blobs = Vec::new();
    let mut size = 0u64;
    let manifest_desc = select_manifest(dirs, source, top, &mut blobs, &mut size)?;
    let manifest_digest = manifest_desc.digest().to_string();
    let manifest: ImageManifest = parse_blob(dirs, &manifest_digest, "image manifest")?;

    let config_desc = manifest.config();
    let config_digest = ingest(dirs, source, config_desc, &mut blobs, &mut size)?;
    let config: ImageConfiguration = parse_blob(dirs, &config_digest, "image config")?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        return Err(ImageError::LayerCountMismatch {
            manifest: manifest_digest,
            layers: manifest.layers().len(),
            diff_ids: diff_ids.len(),
        });
    }
    let chains = chain_ids(diff_ids)?;
    for ((layer, diff_id), chain) in manifest.layers().iter().zip(diff_ids).zip(&chains) {
        let compression = layer_compression(layer)?;
        let layer_digest = ingest(dirs, source, layer, &mut blobs, &mut size)?;
        ensure_layer_unpacked(dirs, &layer_digest, compression, diff_id, chain)?;
    }
    Ok(RefRecord {
        target: top.digest().to_string(),
        manifest: manifest_digest,
        config: config_digest,
        size,
        blobs,
        chain_ids: chains,
    })
}

/// Ingests `top` and, while it is an index, the linux/amd64 entry it lists. Returns the
/// descriptor of the image manifest reached.
fn select_manifest(
    dirs: &StoreDirs,
    source: &ImageSource,
    top: &Descriptor,
    blobs: &mut Vec<String>,
    size: &mut u64,
) -> Result<Descriptor, ImageError> {
    let mut current = top.clone();
    for _ in 0..=MAX_INDEX_DEPTH {
        let digest = ingest(dirs, source, &current, blobs, size)?;
        match current.media_type() {
            MediaType::ImageManifest => return Ok(current),
            MediaType::Other(m) if m == DOCKER_MANIFEST => return Ok(current),
            MediaType::ImageIndex => {}
            MediaType::Other(m) if m == DOCKER_MANIFEST_LIST => {}
            other => {
                return Err(ImageError::UnsupportedMediaType {
                    what: "top-level descriptor",
                    digest,
                    media_type: other.to_string(),
                })
            }
        }
        let index: ImageIndex = parse_blob(dirs, &digest, "image index")?;
        current = pick_platform(&index)
            .cloned()
            .ok_or(ImageError::NoMatchingPlatform { digest })?;
    }
    Err(ImageError::UnsupportedMediaType {
        what: "image index nested too deeply",
        digest: top.digest().to_string(),
        media_type: top.media_type().to_string(),
    })
}

/// The linux/amd64 manifest of an index; a lone entry without a platform also qualifies.
pub(crate) fn pick_platform(index: &ImageIndex) -> Option<&Descriptor> {
    let manifests = index.manifests();
    let amd64 = manifests.iter().find(|d| {
        d.platform()
            .as_ref()
            .is_some_and(|p| *p.os() == Os::Linux && *p.architecture() == Arch::Amd64)
    });
    match (amd64, manifests.as_slice()) {
        (Some(d), _) => Some(d),
        (None, [only]) if only.platform().is_none() => Some(only),
        _ => None,
    }
}

pub(crate) fn layer_compression(layer: &Descriptor) -> Result<Compression, ImageError> {
    let unsupported = || ImageError::UnsupportedMediaType {
        what: "layer",
        digest: layer.digest().to_string(),
        media_type: layer.media_type().to_string(),
    };
    match layer.media_type() {
        MediaType::ImageLayer | MediaType::ImageLayerNonDistributable => Ok(Compression::None),
        MediaType::ImageLayerGzip | MediaType::ImageLayerNonDistributableGzip => {
            Ok(Compression::Gzip)
        }
        MediaType::Other(m) if m == DOCKER_LAYER_GZIP || m == DOCKER_LAYER_FOREIGN => {
            Ok(Compression::Gzip)
        }
        MediaType::Other(m) if m == DOCKER_LAYER_TAR => Ok(Compression::None),
        MediaType::ImageLayerZstd | MediaType::ImageLayerNonDistributableZstd => {
            Ok(Compression::Zstd)
        }
        _ => Err(unsupported()),
    }
}

/// Ingests the blob `desc` names, adds it to the image's blob list and size; returns its digest.
fn ingest(
    dirs: &StoreDirs,
    source: &ImageSource,
    desc: &Descriptor,
    blobs: &mut Vec<String>,
    size: &mut u64,
) -> Result<String, ImageError> {
    let digest = desc.digest().to_string();
    let src = source.blob_path(&digest)?;
    dirs.ingest_blob(&digest, desc.size(), &src)?;
    if !blobs.contains(&digest) {
        blobs.push(digest.clone());
        *size = size.saturating_add(desc.size());
    }
    Ok(digest)
}

fn parse_blob<T: DeserializeOwned>(
    dirs: &StoreDirs,
    digest: &str,
    what: &str,
) -> Result<T, ImageError> {
    let bytes = dirs.read_json_blob(digest)?;
    serde_json::from_slice(&bytes).map_err(|source| ImageError::Json {
        what: format!("{what} {digest}"),
        source,
    })
}

/// Unpacks the layer into `layers/<chain>/diff` unless it is already there.
fn ensure_layer_unpacked(
    dirs: &StoreDirs,
    layer_digest: &str,
    compression: Compression,
    diff_id: &str,
    chain: &str,
) -> Result<(), ImageError> {
    let dest = dirs.layer_dir(chain)?;
    if dest.join("diff").is_dir() {
        return Ok(());
    }
    let scratch = ScratchDir::new(&dirs.tmp_dir(), "layer")?;
    let diff = scratch.path().join("diff");
    fs::create_dir(&diff).map_err(io_err("creating layer directory", &diff))?;
    fs::set_permissions(&diff, Permissions::from_mode(0o755))
        .map_err(io_err("setting mode of", &diff))?;
    let blob = dirs.blob_path(layer_digest)?;
    let actual = unpack_layer(&blob, compression, &diff, layer_digest)?;
    if actual != diff_id {
        return Err(ImageError::DiffIdMismatch {
            layer: layer_digest.to_owned(),
            expected: diff_id.to_owned(),
            actual,
        });
    }
    if dest.exists() {
        // A directory without diff/ is a leftover; replace it.
        super::store::remove_any(&dest)?;
    }
    scratch.persist(&dest)
}
