//! Test-only builders for images: layer tarballs (including malformed and malicious entries
//! that `tar::Builder` would refuse to write), OCI layout directories and tarballs, and
//! docker-archive tarballs; a [`Fixture`] with a store and an `outside/` directory that must
//! stay empty. Never used outside `#[cfg(test)]`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use serde_json::{json, Value};
use tar::{EntryType, Header};

use super::digest::digest_of;
use super::{ImageError, ImageStore};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const LAYER_ZSTD_FOREIGN: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

/// One tar entry, written with a raw header so any name is possible.
#[derive(Clone)]
pub struct Item {
    pub name: String,
    pub kind: EntryType,
    pub data: Vec<u8>,
    pub link: Option<String>,
    pub mode: u32,
    pub uid: u64,
}

pub fn file(name: &str, data: &str) -> Item {
    Item {
        name: name.to_owned(),
        kind: EntryType::Regular,
        data: data.as_bytes().to_vec(),
        link: None,
        mode: 0o644,
        uid: 0,
    }
}

pub fn dir(name: &str) -> Item {
    Item {
        kind: EntryType::Directory,
        mode: 0o755,
        ..file(name, "")
    }
}

pub fn symlink(name: &str, target: &str) -> Item {
    Item {
        kind: EntryType::Symlink,
        link: Some(target.to_owned()),
        mode: 0o777,
        ..file(name, "")
    }
}

pub fn hardlink(name: &str, target: &str) -> Item {
    Item {
        kind: EntryType::Link,
        link: Some(target.to_owned()),
        ..file(name, "")
    }
}

/// An uncompressed tar stream of `items`.
pub fn tar_bytes(items: &[Item]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for item in items {
        let mut header = Header::new_gnu();
        header.set_entry_type(item.kind);
        header.set_size(item.data.len() as u64);
        header.set_mode(item.mode);
        header.set_uid(item.uid);
        header.set_gid(item.uid);
        header.set_mtime(1_600_000_000);
        let gnu = header.as_gnu_mut().expect("gnu header");
        copy_raw(&mut gnu.name, &item.name);
        if let Some(link) = &item.link {
            copy_raw(&mut gnu.linkname, link);
        }
        header.set_cksum();
        builder
            .append(&header, item.data.as_slice())
            .expect("append tar entry");
    }
    builder.into_inner().expect("finish tar")
}

fn copy_raw(field: &mut [u8], value: &str) {
    assert!(value.len() < field.len(), "test name too long: {value}");
    field[..value.len()].copy_from_slice(value.as_bytes());
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip finish")
}

/// How a test layer's blob is compressed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    Tar,
    Gzip,
    /// zstd, described with this media type.
    Zstd(&'static str),
}

/// A layer: its entries and how its blob is compressed.
pub struct Layer {
    pub items: Vec<Item>,
    pub packing: Packing,
}

pub fn layer(items: Vec<Item>) -> Layer {
    Layer {
        items,
        packing: Packing::Gzip,
    }
}

/// `bytes` as two zstd frames (a layer's blob may hold several).
pub fn zstd_two_frames(bytes: &[u8]) -> Vec<u8> {
    let (a, b) = bytes.split_at(bytes.len() / 2);
    let mut out = zstd::encode_all(a, 3).expect("zstd");
    out.extend(zstd::encode_all(b, 3).expect("zstd"));
    out
}

/// Digests of an image written by [`write_oci_image`].
pub struct BuiltImage {
    pub manifest: Value,
    pub manifest_digest: String,
    pub layer_digests: Vec<String>,
}

/// Writes `bytes` as a blob of the layout at `dir`; returns its digest.
pub fn write_blob(dir: &Path, bytes: &[u8]) -> String {
    let digest = digest_of(bytes);
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).expect("create blobs dir");
    fs::write(blobs.join(&digest["sha256:".len()..]), bytes).expect("write blob");
    digest
}

pub fn descriptor(media_type: &str, bytes_len: usize, digest: &str) -> Value {
    json!({ "mediaType": media_type, "digest": digest, "size": bytes_len })
}

pub fn image_config(diff_ids: &[String]) -> Value {
    json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": ["/bin/sh", "-c"],
            "Cmd": ["echo hi"],
            "Env": ["PATH=/bin", "A=b"],
            "WorkingDir": "/work",
            "User": "1000:1000"
        },
        "rootfs": { "type": "layers", "diff_ids": diff_ids }
    })
}

/// Writes config, layers and manifest blobs of one image into the layout at `dir`.
pub fn write_oci_image(dir: &Path, layers: &[Layer]) -> BuiltImage {
    let mut diff_ids = Vec::new();
    let mut layer_descs = Vec::new();
    let mut layer_digests = Vec::new();
    for l in layers {
        let raw = tar_bytes(&l.items);
        diff_ids.push(digest_of(&raw));
        let (blob, media) = match l.packing {
            Packing::Gzip => (gzip(&raw), LAYER_GZIP),
            Packing::Tar => (raw, LAYER_TAR),
            Packing::Zstd(media) => (zstd_two_frames(&raw), media),
        };
        let digest = write_blob(dir, &blob);
        layer_descs.push(descriptor(media, blob.len(), &digest));
        layer_digests.push(digest);
    }
    let config = serde_json::to_vec(&image_config(&diff_ids)).expect("config json");
    let config_digest = write_blob(dir, &config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", config.len(), &config_digest),
        "layers": layer_descs,
    });
    let manifest_bytes = serde_json::to_vec(&manifest).expect("manifest json");
    let manifest_digest = write_blob(dir, &manifest_bytes);
    BuiltImage {
        manifest: descriptor(OCI_MANIFEST, manifest_bytes.len(), &manifest_digest),
        manifest_digest,
        layer_digests,
    }
}

/// Writes `index.json` and `oci-layout` listing `entries` (descriptors with annotations).
pub fn write_index(dir: &Path, entries: Vec<Value>) {
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
    let index = json!({ "schemaVersion": 2, "manifests": entries });
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&index).expect("index"),
    )
    .expect("index");
}

/// `desc` with a `org.opencontainers.image.ref.name` annotation.
pub fn named(mut desc: Value, ref_name: &str) -> Value {
    desc["annotations"] = json!({ "org.opencontainers.image.ref.name": ref_name });
    desc
}

/// A complete single-image OCI layout at `dir` named `reference`.
pub fn oci_layout(dir: &Path, reference: &str, layers: &[Layer]) -> BuiltImage {
    let image = write_oci_image(dir, layers);
    write_index(dir, vec![named(image.manifest.clone(), reference)]);
    image
}

/// Tars the directory `src` into `dest`.
pub fn tar_dir(src: &Path, dest: &Path) {
    let mut builder = tar::Builder::new(fs::File::create(dest).expect("create tarball"));
    builder.append_dir_all(".", src).expect("tar dir");
    builder.finish().expect("finish tarball");
}

/// A `docker save` style tarball at `dest` with uncompressed layers under `<n>/layer.tar`.
pub fn docker_archive(dest: &Path, repo_tags: &[&str], layers: &[Vec<Item>]) {
    let mut builder = tar::Builder::new(fs::File::create(dest).expect("create tarball"));
    let mut append = |name: &str, bytes: &[u8]| {
        let mut header = Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, name, bytes)
            .expect("append");
    };
    let mut diff_ids = Vec::new();
    let mut layer_paths = Vec::new();
    for (i, items) in layers.iter().enumerate() {
        let raw = tar_bytes(items);
        diff_ids.push(digest_of(&raw));
        let path = format!("layer{i}/layer.tar");
        append(&path, &raw);
        layer_paths.push(path);
    }
    let config = serde_json::to_vec(&image_config(&diff_ids)).expect("config");
    let config_name = format!("{}.json", &digest_of(&config)["sha256:".len()..]);
    append(&config_name, &config);
    let manifest = json!([{ "Config": config_name, "RepoTags": repo_tags, "Layers": layer_paths }]);
    append(
        "manifest.json",
        &serde_json::to_vec(&manifest).expect("manifest"),
    );
    builder.into_inner().expect("finish docker archive");
}

/// A temp dir holding `store/`, `src/` (image sources) and `outside/` (must stay empty).
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub store: ImageStore,
}

impl Fixture {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::create_dir(tmp.path().join("src")).expect("src dir");
        fs::create_dir(tmp.path().join("outside")).expect("outside dir");
        let store = ImageStore::open(&tmp.path().join("store")).expect("open store");
        Fixture { tmp, store }
    }

    pub fn src(&self) -> PathBuf {
        self.tmp.path().join("src")
    }

    pub fn outside(&self) -> PathBuf {
        self.tmp.path().join("outside")
    }

    pub fn count(&self, sub: &str) -> usize {
        let dir = self.tmp.path().join("store").join(sub);
        fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0)
    }

    /// Imports a one-layer image whose layer is `items` and expects it to be refused.
    pub fn assert_layer_refused(&self, items: Vec<Item>, entry: &str, reason: &str) {
        oci_layout(&self.src(), "bosun.test/evil:1", &[layer(items)]);
        let err = self
            .store
            .import(&self.src())
            .expect_err("hostile layer imported");
        let msg = err.to_string();
        assert!(
            matches!(err, ImageError::UnsafeEntry { .. }),
            "wrong error: {msg}"
        );
        assert!(
            msg.contains(entry),
            "error does not name entry {entry:?}: {msg}"
        );
        assert!(msg.contains(reason), "error does not say {reason:?}: {msg}");
        assert_eq!(
            fs::read_dir(self.outside()).expect("outside").count(),
            0,
            "wrote outside"
        );
        let escaped = find_named(self.tmp.path(), "evil");
        assert!(escaped.is_empty(), "escape target written: {escaped:?}");
        assert!(self.store.list().expect("list").is_empty());
        assert_eq!(self.count("layers"), 0, "partial layer left behind");
    }
}

pub fn find_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name() == name {
            found.push(path.clone());
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(find_named(&path, name));
        }
    }
    found
}
