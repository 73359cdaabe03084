//! Reading an import source: an OCI image layout directory, or a tarball (OCI layout or
//! docker-archive) staged into scratch space first. Produces the list of (reference, top-level
//! descriptor) pairs to import and the path of each source blob.
//!
//! This file decides names, never content: it must never trust a digest it reads (the store
//! verifies every blob on ingest) and never build a blob path from an unvalidated digest.

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex};

use super::archive::{docker_archive_to_oci, stage_tarball};
use super::digest::sha256_hex;
use super::error::{io_err, ImageError};
use super::reference::{self, is_valid_tag, repository_of};
use super::source::SourceImage;
use super::store::ScratchDir;

/// Annotation holding a full reference or just a tag.
pub(crate) const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// Annotation containerd and docker (>= 25) use for the full image name.
pub(crate) const CONTAINERD_NAME_ANNOTATION: &str = "io.containerd.image.name";

/// An opened import source: a directory in OCI layout form plus the images it names.
pub(crate) struct ImageSource {
    dir: PathBuf,
    pub images: Vec<SourceImage>,
    /// Holds the staged copy of a tarball; removed on drop.
    _staging: Option<ScratchDir>,
}

impl ImageSource {
    /// Opens `path`: a directory is read in place; a file is staged under `scratch_parent`.
    pub(crate) fn open(path: &Path, scratch_parent: &Path) -> Result<Self, ImageError> {
        let meta = fs::metadata(path).map_err(io_err("inspecting import source", path))?;
        if meta.is_dir() {
            if !path.join("index.json").is_file() {
                return Err(ImageError::BadSource {
                    path: path.to_path_buf(),
                    problem: "directory has no index.json: not an OCI image layout".to_owned(),
                });
            }
            let images = read_oci_index(path, path)?;
            return Ok(ImageSource {
                dir: path.to_path_buf(),
                images,
                _staging: None,
            });
        }
        let staging = ScratchDir::new(scratch_parent, "import")?;
        let dir = staging.path().to_path_buf();
        stage_tarball(path, &dir)?;
        let images = if dir.join("index.json").is_file() && dir.join("oci-layout").is_file() {
            read_oci_index(&dir, path)?
        } else if dir.join("manifest.json").is_file() {
            docker_archive_to_oci(&dir, path)?
        } else {
            return Err(ImageError::BadSource {
                path: path.to_path_buf(),
                problem: "tarball has neither oci-layout + index.json nor manifest.json".to_owned(),
            });
        };
        Ok(ImageSource {
            dir,
            images,
            _staging: Some(staging),
        })
    }

    /// Where the source keeps blob `digest` (which need not exist).
    pub(crate) fn blob_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        let hex = sha256_hex(digest, "import source descriptor")?;
        Ok(self.dir.join("blobs").join("sha256").join(hex))
    }
}

/// Reads `dir/index.json` and names each top-level descriptor. `origin` is what the user
/// passed, for error messages.
fn read_oci_index(dir: &Path, origin: &Path) -> Result<Vec<SourceImage>, ImageError> {
    let index_path = dir.join("index.json");
    let bytes = fs::read(&index_path).map_err(io_err("reading", &index_path))?;
    let index: ImageIndex = serde_json::from_slice(&bytes).map_err(|source| ImageError::Json {
        what: format!("OCI index.json of {}", origin.display()),
        source,
    })?;
    let mut images = Vec::new();
    for descriptor in index.manifests() {
        let reference = name_of(descriptor, origin)?;
        images.push(SourceImage {
            reference,
            descriptor: descriptor.clone(),
        });
    }
    if images.is_empty() {
        return Err(ImageError::BadSource {
            path: origin.to_path_buf(),
            problem: "index.json lists no images".to_owned(),
        });
    }
    Ok(images)
}

/// The normalised reference for one index.json entry, from its annotations:
/// a full `ref.name`; or a tag-only `ref.name` plus the repository of `io.containerd.image.name`;
/// or `io.containerd.image.name` alone.
fn name_of(descriptor: &Descriptor, origin: &Path) -> Result<String, ImageError> {
    let problem = |problem: String| ImageError::MissingImageName {
        digest: descriptor.digest().to_string(),
        path: origin.to_path_buf(),
        problem,
    };
    let annotations = descriptor.annotations().as_ref();
    let ref_name = annotations.and_then(|a| a.get(REF_NAME_ANNOTATION));
    let full_name = annotations.and_then(|a| a.get(CONTAINERD_NAME_ANNOTATION));
    let chosen = match (ref_name, full_name) {
        (Some(tag), Some(full)) if is_valid_tag(tag) => {
            let base = reference::parse(full)?;
            format!("{}:{tag}", repository_of(&base))
        }
        (Some(tag), None) if is_valid_tag(tag) => {
            return Err(problem(format!(
                "annotation {REF_NAME_ANNOTATION}={tag:?} is only a tag and there is no \
                 {CONTAINERD_NAME_ANNOTATION} annotation giving the image name"
            )))
        }
        (Some(name), _) => name.clone(),
        (None, Some(full)) => full.clone(),
        (None, None) => {
            return Err(problem(format!(
                "no {REF_NAME_ANNOTATION} or {CONTAINERD_NAME_ANNOTATION} annotation"
            )))
        }
    };
    Ok(reference::parse(&chosen)?.whole())
}
