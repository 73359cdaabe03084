//! OCI image layouts (image-spec `image-layout.md`): blobs, `index.json`, `oci-layout`,
//! written as a directory and as a tarball of that directory.
//!
//! JSON is written with sorted keys so the manifest and config digests depend only on their
//! content. Outputs are written next to their final place and renamed into it, so a reader
//! never sees a half-written layout. Nothing here knows what the images contain.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use oci_spec::image::{
    Arch, Descriptor, DescriptorBuilder, ImageConfiguration, ImageIndexBuilder,
    ImageManifestBuilder, MediaType, Os, PlatformBuilder, Sha256Digest, ANNOTATION_REF_NAME,
};
use serde::Serialize;

use super::layer::{self, Entry, Layer};

/// containerd's annotation for the full image name in an OCI layout's index.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// A complete single-image layout held in memory.
#[derive(Clone, Debug)]
pub struct ImageLayout {
    /// Blob bytes by lowercase hex sha256.
    blobs: BTreeMap<String, Vec<u8>>,
    index_json: Vec<u8>,
    /// `sha256:<hex>` of the image manifest.
    pub manifest_digest: String,
}

impl ImageLayout {
    /// Assembles a layout for one linux/amd64 image made of `layers` and `config`, tagged
    /// `reference` (both as `org.opencontainers.image.ref.name` and containerd's name).
    pub fn new(reference: &str, config: &ImageConfiguration, layers: &[Layer]) -> Result<Self> {
        let mut blobs = BTreeMap::new();
        let mut layer_descriptors = Vec::with_capacity(layers.len());
        for layer in layers {
            let descriptor = add_blob(&mut blobs, MediaType::ImageLayerGzip, layer.gzip.clone())?;
            layer_descriptors.push(descriptor);
        }
        let config_descriptor =
            add_blob(&mut blobs, MediaType::ImageConfig, canonical_json(config)?)?;
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config_descriptor)
            .layers(layer_descriptors)
            .build()
            .context("building the image manifest")?;
        let manifest_blob = canonical_json(&manifest)?;
        let manifest_size = manifest_blob.len() as u64;
        let manifest_hex = layer::sha256_hex(&manifest_blob);
        blobs.insert(manifest_hex.clone(), manifest_blob);

        let annotations = HashMap::from([
            (ANNOTATION_REF_NAME.to_owned(), reference.to_owned()),
            (ANNOTATION_CONTAINERD_NAME.to_owned(), reference.to_owned()),
        ]);
        let platform = PlatformBuilder::default()
            .architecture(Arch::Amd64)
            .os(Os::Linux)
            .build()
            .context("building the platform")?;
        let manifest_descriptor = DescriptorBuilder::default()
            .media_type(MediaType::ImageManifest)
            .size(manifest_size)
            .digest(sha256_digest(&manifest_hex)?)
            .platform(platform)
            .annotations(annotations)
            .build()
            .context("building the manifest descriptor")?;
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(vec![manifest_descriptor])
            .build()
            .context("building the image index")?;
        Ok(Self {
            blobs,
            index_json: canonical_json(&index)?,
            manifest_digest: format!("sha256:{manifest_hex}"),
        })
    }

    /// The layout's files as layer entries: `oci-layout`, `index.json`, `blobs/sha256/*`.
    fn entries(&self) -> Vec<Entry> {
        let mut entries = vec![
            Entry::file("oci-layout", 0o644, OCI_LAYOUT_JSON),
            Entry::file("index.json", 0o644, self.index_json.clone()),
            Entry::dir("blobs", 0o755),
            Entry::dir("blobs/sha256", 0o755),
        ];
        for (hex, bytes) in &self.blobs {
            entries.push(Entry::file(
                &format!("blobs/sha256/{hex}"),
                0o644,
                bytes.clone(),
            ));
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        entries
    }

    /// Writes the layout as directory `dir`, replacing whatever was there.
    pub fn write_dir(&self, dir: &Path) -> Result<()> {
        let staging = sibling(dir, "tmp");
        remove_any(&staging)?;
        for entry in self.entries() {
            let path = staging.join(&entry.path);
            match entry.kind {
                layer::EntryKind::Dir { .. } => fs::create_dir_all(&path),
                layer::EntryKind::File { contents, .. } => fs::write(&path, contents),
                layer::EntryKind::Symlink { .. } => unreachable!("layouts hold no symlinks"),
            }
            .with_context(|| format!("writing {}", path.display()))?;
        }
        remove_any(dir)?;
        fs::rename(&staging, dir)
            .with_context(|| format!("renaming {} to {}", staging.display(), dir.display()))
    }

    /// Writes the layout as an OCI tarball at `path` (what `skopeo copy oci-archive:` reads).
    pub fn write_tarball(&self, path: &Path) -> Result<()> {
        let tar = layer::tar_bytes(&self.entries())?;
        let staging = sibling(path, "tmp");
        fs::write(&staging, tar).with_context(|| format!("writing {}", staging.display()))?;
        fs::rename(&staging, path)
            .with_context(|| format!("renaming {} to {}", staging.display(), path.display()))
    }
}

const OCI_LAYOUT_JSON: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// Stores `bytes` as a blob and returns its descriptor.
fn add_blob(
    blobs: &mut BTreeMap<String, Vec<u8>>,
    media_type: MediaType,
    bytes: Vec<u8>,
) -> Result<Descriptor> {
    let hex = layer::sha256_hex(&bytes);
    let descriptor = Descriptor::new(media_type, bytes.len() as u64, sha256_digest(&hex)?);
    blobs.insert(hex, bytes);
    Ok(descriptor)
}

fn sha256_digest(hex: &str) -> Result<Sha256Digest> {
    hex.parse()
        .with_context(|| format!("{hex} is not a sha256 digest"))
}

/// Serializes through `serde_json::Value`, whose maps are sorted, so `HashMap` fields
/// (annotations, labels) come out in the same order every run.
pub fn canonical_json(value: &impl Serialize) -> Result<Vec<u8>> {
    let value = serde_json::to_value(value).context("serializing to JSON")?;
    serde_json::to_vec(&value).context("serializing to JSON")
}

/// `path` with `.suffix` appended to its file name, in the same directory.
fn sibling(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
}

fn remove_any(path: &Path) -> Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    result.with_context(|| format!("removing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_map_keys() {
        let map: HashMap<String, u32> = (0..64).map(|i| (format!("k{i:02}"), i)).collect();
        let json = String::from_utf8(canonical_json(&map).unwrap()).unwrap();
        let keys: Vec<&str> = json.split('"').skip(1).step_by(2).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(
            keys, sorted,
            "serde_json must not have preserve_order enabled"
        );
    }

    #[test]
    fn sibling_appends_to_the_file_name() {
        assert_eq!(
            sibling(Path::new("/a/b.tar"), "tmp"),
            Path::new("/a/b.tar.tmp")
        );
    }
}
