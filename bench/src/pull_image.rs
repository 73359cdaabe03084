//! The image of the pull benchmark: about 100 MB of gzip layers (some 220 MB unpacked), one
//! layer per group of Debian packages `cargo xtask setup` installs, written as an OCI layout
//! under `target/bench-cache/pull100m/` from the files `dpkg -L` lists. Nothing is downloaded.
//!
//! The layout is cached: it is rebuilt only when the packages' versions change (the stamp
//! file holds them). Layers are deterministic (sorted paths, uid/gid 0, mtime 0, no gzip
//! mtime), so the same packages always give the same digests.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use flate2::{Compression, GzBuilder};
use serde_json::json;
use sha2::{Digest as _, Sha256};

/// One layer per group, bottom first: runtimes, then Go programs of 20–100 MB each.
const LAYERS: &[&[&str]] = &[
    &["busybox-static", "runc", "crun"],
    &["containerd"],
    &["etcd-server"],
    &["skopeo", "umoci"],
    &["docker-registry"],
    &["containernetworking-plugins"],
];

/// The tag of the image in the layout (`oci:DIR:1`).
pub const TAG: &str = "1";

/// The built layout and what it holds.
pub struct BenchImage {
    pub layout: PathBuf,
    pub layers: usize,
    /// Bytes of the gzip layers (what a pull downloads).
    pub compressed: u64,
    /// Bytes of the uncompressed layer tars.
    pub uncompressed: u64,
}

/// The layout under `cache`, built first unless the cached one matches the packages.
pub fn ensure(cache: &Path) -> Result<BenchImage> {
    // The builder's own version is part of the stamp: a change to it rebuilds the image.
    let stamp_text = format!("builder 2\n{}", package_versions()?);
    let stamp = cache.join("packages.stamp");
    let summary = cache.join("summary.json");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == stamp_text) {
        if let Ok(bytes) = std::fs::read(&summary) {
            let v: serde_json::Value = serde_json::from_slice(&bytes).context("summary.json")?;
            return Ok(BenchImage {
                layout: cache.join("layout"),
                layers: v["layers"].as_u64().unwrap_or(0) as usize,
                compressed: v["compressed"].as_u64().unwrap_or(0),
                uncompressed: v["uncompressed"].as_u64().unwrap_or(0),
            });
        }
    }
    println!("pull: building the benchmark image from Debian packages (cached afterwards)");
    let _ = std::fs::remove_dir_all(cache);
    let layout = cache.join("layout");
    let blobs = layout.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).with_context(|| format!("creating {}", blobs.display()))?;
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    let (mut compressed, mut uncompressed) = (0, 0);
    for group in LAYERS {
        let built = build_layer(group, &blobs)?;
        compressed += built.size;
        uncompressed += built.tar_size;
        diff_ids.push(built.diff_id);
        layers.push(json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": built.digest,
            "size": built.size,
        }));
    }
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["/bin/busybox", "sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = write_json_blob(&blobs, &config)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config.0, "size": config.1,
        },
        "layers": layers,
    });
    let manifest = write_json_blob(&blobs, &manifest)?;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest.0, "size": manifest.1,
            "annotations": {"org.opencontainers.image.ref.name": TAG},
        }],
    });
    write_file(&layout.join("index.json"), &serde_json::to_vec(&index)?)?;
    write_file(
        &layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let image = BenchImage {
        layout,
        layers: LAYERS.len(),
        compressed,
        uncompressed,
    };
    let totals =
        json!({"layers": image.layers, "compressed": compressed, "uncompressed": uncompressed});
    write_file(&summary, &serde_json::to_vec(&totals)?)?;
    write_file(&stamp, stamp_text.as_bytes())?;
    Ok(image)
}

/// `package version` lines of every package the image is built from.
fn package_versions() -> Result<String> {
    let packages: Vec<&str> = LAYERS.iter().flat_map(|g| g.iter().copied()).collect();
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Package} ${Version}\\n"])
        .args(&packages)
        .output()
        .context("running dpkg-query")?;
    if !out.status.success() {
        bail!(
            "the pull benchmark builds its image from {packages:?} (run `cargo xtask setup`): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Files, links and directories of `packages`, as `dpkg -L` lists them, sorted.
fn package_paths(packages: &[&str]) -> Result<BTreeSet<PathBuf>> {
    let out = Command::new("dpkg")
        .arg("-L")
        .args(packages)
        .output()
        .context("running dpkg -L")?;
    if !out.status.success() {
        bail!(
            "dpkg -L {packages:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('/') && *l != "/.")
        .map(|l| {
            let path = Path::new(l);
            match (path.parent().map(std::fs::canonicalize), path.file_name()) {
                (Some(Ok(parent)), Some(name)) => parent.join(name),
                _ => path.to_path_buf(),
            }
        })
        .collect())
}

struct BuiltLayer {
    digest: String,
    size: u64,
    diff_id: String,
    tar_size: u64,
}

/// Writes the gzip layer of `packages` into `blobs` and returns its digests.
fn build_layer(packages: &[&str], blobs: &Path) -> Result<BuiltLayer> {
    let tmp = blobs.join("layer.tmp");
    let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let gz = GzBuilder::new().write(
        Hashing::new(BufWriter::with_capacity(1 << 20, file)),
        Compression::default(),
    );
    let mut builder = tar::Builder::new(Hashing::new(gz));
    builder.follow_symlinks(false);
    for path in package_paths(packages)? {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue; // listed but gone (a removed conffile): not part of the image
        };
        // Merged /usr: /bin is a link to usr/bin. A layer may not put files under a link,
        // so directory links are left out and the rest listed by their real parent.
        if meta.file_type().is_symlink() && path.is_dir() {
            continue;
        }
        let name = path.strip_prefix("/").unwrap_or(&path);
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(&meta, tar::HeaderMode::Deterministic);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        if meta.is_dir() {
            builder.append_data(&mut header, name, io::empty())
        } else if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path)?;
            builder.append_link(&mut header, name, target)
        } else if meta.is_file() {
            let f = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
            builder.append_data(&mut header, name, f)
        } else {
            continue;
        }
        .with_context(|| format!("adding {} to the layer", path.display()))?;
    }
    let (tar_hash, tar_size, gz) = builder.into_inner()?.finish();
    let (gz_hash, size, mut out) = gz.finish()?.finish();
    out.flush()?;
    drop(out);
    let digest = format!("sha256:{gz_hash}");
    let dest = blobs.join(&gz_hash);
    std::fs::rename(&tmp, &dest).with_context(|| format!("renaming to {}", dest.display()))?;
    Ok(BuiltLayer {
        digest,
        size,
        diff_id: format!("sha256:{tar_hash}"),
        tar_size,
    })
}

/// Writes a JSON blob; returns its digest and size.
fn write_json_blob(blobs: &Path, value: &serde_json::Value) -> Result<(String, u64)> {
    let bytes = serde_json::to_vec(value)?;
    let hex = hex::encode(Sha256::digest(&bytes));
    write_file(&blobs.join(&hex), &bytes)?;
    Ok((format!("sha256:{hex}"), bytes.len() as u64))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Hex sha256, byte count and the inner writer.
    fn finish(self) -> (String, u64, W) {
        (hex::encode(self.hasher.finalize()), self.len, self.inner)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
