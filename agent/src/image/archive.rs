//! Import tarballs: staging an archive (OCI layout or `docker save` output, optionally gzipped)
//! into a scratch directory, and turning a staged docker-archive into an OCI layout by hashing
//! its config and layer files and writing a synthesised manifest.
//!
//! Staging writes only regular files and directories at checked relative paths (no `..`, not
//! absolute) and never creates a symlink, so nothing it writes can land outside the scratch
//! directory. Links inside the archive (old `docker save` links duplicate `layer.tar`s) become
//! hard links to staged files, only when the target resolves inside the archive.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use flate2::read::MultiGzDecoder;
use oci_spec::image::{Descriptor, Digest, ImageManifestBuilder, MediaType};
use serde::Deserialize;
use tar::EntryType;

use super::digest::{digest_of, sha256_hex, HashingReader};
use super::error::{io_err, ImageError};
use super::reference;
use super::source::SourceImage;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// A zstd frame's magic number, little-endian 0xFD2FB528.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Extracts the regular files and directories of the tarball at `tar_path` into `dir`.
pub(crate) fn stage_tarball(tar_path: &Path, dir: &Path) -> Result<(), ImageError> {
    let archive_name = tar_path.display().to_string();
    let tar_err = |source| ImageError::Tar {
        archive: archive_name.clone(),
        source,
    };
    let mut archive = tar::Archive::new(open_maybe_gzip(tar_path)?);
    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
    for entry in archive.entries().map_err(tar_err)? {
        let mut entry = entry.map_err(tar_err)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let entry_err = |action| {
            let name = name.clone();
            let archive = archive_name.clone();
            move |source| ImageError::TarEntry {
                action,
                archive,
                entry: name,
                source,
            }
        };
        let rel = archive_relative(&entry.path_bytes()).ok_or_else(|| ImageError::UnsafeEntry {
            layer: archive_name.clone(),
            entry: name.clone(),
            reason: "path is absolute or has a .. component",
        })?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let path = dir.join(&rel);
        match entry.header().entry_type() {
            EntryType::Directory => {
                fs::create_dir_all(&path).map_err(entry_err("staging directory"))?;
            }
            EntryType::Regular | EntryType::Continuous => {
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).map_err(entry_err("staging parent directory"))?;
                }
                let mut out = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                    .map_err(entry_err("staging file"))?;
                io::copy(&mut entry, &mut out).map_err(entry_err("staging file"))?;
            }
            kind @ (EntryType::Symlink | EntryType::Link) => {
                let target = entry.link_name_bytes().unwrap_or_default();
                let base = match kind {
                    EntryType::Symlink => rel.parent().unwrap_or(Path::new("")).to_path_buf(),
                    _ => PathBuf::new(),
                };
                if let Some(target) = resolve_link(&base, &target) {
                    links.push((rel, target));
                }
            }
            _ => {}
        }
    }
    for (alias, target) in links {
        let (alias, target) = (dir.join(alias), dir.join(target));
        if target.is_file() && fs::symlink_metadata(&alias).is_err() {
            if let Some(parent) = alias.parent() {
                fs::create_dir_all(parent).map_err(io_err("staging directory", parent))?;
            }
            fs::hard_link(&target, &alias).map_err(io_err("staging linked file", &alias))?;
        }
    }
    Ok(())
}

/// Opens `path`, transparently decompressing gzip.
fn open_maybe_gzip(path: &Path) -> Result<Box<dyn Read>, ImageError> {
    let mut file = File::open(path).map_err(io_err("opening import tarball", path))?;
    let mut magic = [0u8; 2];
    let n = file
        .read(&mut magic)
        .map_err(io_err("reading import tarball", path))?;
    let file = File::open(path).map_err(io_err("opening import tarball", path))?;
    if n == 2 && magic == GZIP_MAGIC {
        Ok(Box::new(MultiGzDecoder::new(BufReader::new(file))))
    } else {
        Ok(Box::new(BufReader::new(file)))
    }
}

/// A path of normal components, or None if absolute or containing `..`.
fn archive_relative(raw: &[u8]) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in Path::new(OsStr::from_bytes(raw)).components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

/// Resolves a link target relative to `base` lexically; None if it leaves the archive.
fn resolve_link(base: &Path, target: &[u8]) -> Option<PathBuf> {
    let mut out = base.to_path_buf();
    for component in Path::new(OsStr::from_bytes(target)).components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// One image in a docker-archive `manifest.json`.
#[derive(Debug, Deserialize)]
struct DockerManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// Converts the staged docker-archive in `dir` into an OCI layout (blobs + one synthesised
/// manifest per image) and returns its references. `origin` names the tarball in errors.
pub(crate) fn docker_archive_to_oci(
    dir: &Path,
    origin: &Path,
) -> Result<Vec<SourceImage>, ImageError> {
    let manifest_path = dir.join("manifest.json");
    let bytes = fs::read(&manifest_path).map_err(io_err("reading", &manifest_path))?;
    let entries: Vec<DockerManifestEntry> =
        serde_json::from_slice(&bytes).map_err(|source| ImageError::Json {
            what: format!("docker-archive manifest.json of {}", origin.display()),
            source,
        })?;
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(io_err("creating", &blobs))?;
    let mut images = Vec::new();
    for entry in entries {
        let config = add_blob(dir, origin, &entry.config, &blobs)?;
        let mut layers = Vec::with_capacity(entry.layers.len());
        for layer in &entry.layers {
            let (digest, size) = add_blob(dir, origin, layer, &blobs)?;
            let media_type = layer_media_type(&blobs.join(sha256_hex(&digest, "layer")?))?;
            layers.push(Descriptor::new(media_type, size, parse_digest(&digest)?));
        }
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(Descriptor::new(
                MediaType::ImageConfig,
                config.1,
                parse_digest(&config.0)?,
            ))
            .layers(layers)
            .build()
            .map_err(|e| ImageError::BadSource {
                path: origin.to_path_buf(),
                problem: format!("building manifest for {}: {e}", entry.config),
            })?;
        let manifest_bytes = serde_json::to_vec(&manifest).map_err(|source| ImageError::Json {
            what: format!("serialising manifest for {}", entry.config),
            source,
        })?;
        let digest = digest_of(&manifest_bytes);
        let blob = blobs.join(sha256_hex(&digest, "manifest")?);
        fs::write(&blob, &manifest_bytes).map_err(io_err("writing", &blob))?;
        let descriptor = Descriptor::new(
            MediaType::ImageManifest,
            manifest_bytes.len() as u64,
            parse_digest(&digest)?,
        );
        let tags = entry.repo_tags.unwrap_or_default();
        if tags.is_empty() {
            return Err(ImageError::MissingImageName {
                digest,
                path: origin.to_path_buf(),
                problem: format!("manifest.json entry for {} has no RepoTags", entry.config),
            });
        }
        for tag in tags {
            images.push(SourceImage {
                reference: reference::parse(&tag)?.whole(),
                descriptor: descriptor.clone(),
            });
        }
    }
    Ok(images)
}

/// Hashes the archive file at relative path `rel` and links it to `blobs/<hex>`.
fn add_blob(
    dir: &Path,
    origin: &Path,
    rel: &str,
    blobs: &Path,
) -> Result<(String, u64), ImageError> {
    let rel_path = archive_relative(rel.as_bytes())
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| ImageError::BadSource {
            path: origin.to_path_buf(),
            problem: format!("manifest.json names unsafe path {rel:?}"),
        })?;
    let path = dir.join(rel_path);
    let file = File::open(&path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ImageError::BadSource {
            path: origin.to_path_buf(),
            problem: format!("manifest.json names {rel:?}, which is not in the archive"),
        },
        _ => ImageError::io("opening", &path, e),
    })?;
    let (digest, size) = HashingReader::new(BufReader::new(file))
        .finish()
        .map_err(io_err("hashing", &path))?;
    let blob = blobs.join(sha256_hex(&digest, "archive file")?);
    if fs::symlink_metadata(&blob).is_err() {
        fs::hard_link(&path, &blob).map_err(io_err("linking blob", &blob))?;
    }
    Ok((digest, size))
}

/// A docker-archive layer's media type, from its first bytes: gzip, zstd or a plain tar.
fn layer_media_type(path: &Path) -> Result<MediaType, ImageError> {
    let mut magic = [0u8; 4];
    let mut file = File::open(path).map_err(io_err("opening", path))?;
    let n = file.read(&mut magic).map_err(io_err("reading", path))?;
    Ok(match magic.get(..n) {
        Some(m) if m.starts_with(&GZIP_MAGIC) => MediaType::ImageLayerGzip,
        Some(m) if m == ZSTD_MAGIC.as_slice() => MediaType::ImageLayerZstd,
        _ => MediaType::ImageLayer,
    })
}

fn parse_digest(digest: &str) -> Result<Digest, ImageError> {
    digest.parse().map_err(|_| ImageError::InvalidDigest {
        digest: digest.to_owned(),
        context: "docker-archive conversion".to_owned(),
    })
}
