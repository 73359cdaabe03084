//! One layer of a registry pull: unless the store has it, download its blob into the pull's
//! staging directory (verified while streaming, `Fetch::blob`), unpack it there as soon as it
//! is complete, check the uncompressed digest against the config's diff_id, and only then
//! move blob and layer into the store under its exclusive lock. The pull's lease keeps them
//! from garbage collection until the reference is recorded.
//!
//! A per-chain lock of the `Puller` (held by the caller, `pull.rs`) makes concurrent pulls of one layer fetch it once: the
//! second waits and then finds it stored. This file must never put a blob or layer in the
//! store before its digest (and diff_id) matched.

use std::fs::{self, Permissions};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use oci_spec::image::Descriptor;

use super::error::{io_err, ImageError};
use super::import::layer_compression;
use super::unpack::unpack_layer;
use super::ImageStore;

/// A layer the pull needs: its blob descriptor, diff_id and chain id (hex).
pub(super) struct LayerJob {
    pub desc: Descriptor,
    pub diff_id: String,
    pub chain: String,
}

/// Makes sure layer `job` (blob and unpacked directory) is in `store`; `download` fetches
/// its blob into the pull's staging directory (verified) and returns the file. Call it with
/// the layer's in-flight lock held.
pub(super) async fn ensure_layer<F, Fut>(
    store: &ImageStore,
    staging: &Path,
    job: &LayerJob,
    download: F,
) -> Result<(), ImageError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<PathBuf, ImageError>>,
{
    let digest = job.desc.digest().to_string();
    let compression = layer_compression(&job.desc)?;
    let stored_blob = store.dirs.blob_path(&digest)?;
    let stored_layer = store.dirs.layer_dir(&job.chain)?.join("diff");
    let have_blob = stored_blob.is_file();
    if have_blob && stored_layer.is_dir() {
        return Ok(());
    }
    let blob = if have_blob {
        stored_blob
    } else {
        download().await?
    };
    let unpacked = staging.join(format!("layer-{}", job.chain));
    let dirs = store.dirs.clone();
    let diff_id = job.diff_id.clone();
    let chain = job.chain.clone();
    let started = std::time::Instant::now();
    tokio::task::spawn_blocking(move || -> Result<(), ImageError> {
        if !dirs.layer_dir(&chain)?.join("diff").is_dir() {
            unpack_checked(&blob, compression, &unpacked, &digest, &diff_id)?;
        }
        let _lock = dirs.lock(true)?;
        if !have_blob {
            dirs.adopt_verified_blob(&digest, &blob)?;
        }
        if unpacked.is_dir() {
            dirs.adopt_verified_layer(&chain, &unpacked)?;
        }
        Ok(())
    })
    .await
    .map_err(|e| ImageError::Registry {
        action: format!("unpacking layer {}", job.desc.digest()),
        reference: String::new(),
        message: e.to_string(),
    })??;
    tracing::info!(
        layer = %job.desc.digest(),
        bytes = job.desc.size(),
        unpack_ms = started.elapsed().as_millis() as u64,
        "layer in place"
    );
    Ok(())
}

/// Unpacks `blob` into `dir/diff` and checks the uncompressed digest is `diff_id`; on a
/// mismatch `dir` is removed.
fn unpack_checked(
    blob: &Path,
    compression: super::unpack::Compression,
    dir: &Path,
    layer: &str,
    diff_id: &str,
) -> Result<(), ImageError> {
    let diff: PathBuf = dir.join("diff");
    fs::create_dir_all(&diff).map_err(io_err("creating layer directory", &diff))?;
    fs::set_permissions(&diff, Permissions::from_mode(0o755))
        .map_err(io_err("setting mode of", &diff))?;
    let result = unpack_layer(blob, compression, &diff, layer).and_then(|actual| {
        if actual == diff_id {
            Ok(())
        } else {
            Err(ImageError::DiffIdMismatch {
                layer: layer.to_owned(),
                expected: diff_id.to_owned(),
                actual,
            })
        }
    });
    if result.is_err() {
        let _ = super::store::remove_any(dir);
    }
    result
}
