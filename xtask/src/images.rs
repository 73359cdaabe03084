//! `cargo xtask images`: the OCI test images under `target/images/`.
//!
//! Each image is written as an OCI layout `target/images/<name>/` and as a tarball
//! `target/images/<name>.tar`, tagged `bosun.test/<name>:1` (DESIGN.md §6). Builds are
//! reproducible: the same busybox gives the same digests on every run and every machine.
//! Nothing is downloaded; the only input is Debian's static busybox.

mod layer;
mod layout;
mod rootfs;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};
use oci_spec::image::{
    Arch, Config, ConfigBuilder, HistoryBuilder, ImageConfiguration, ImageConfigurationBuilder, Os,
    RootFsBuilder,
};

use crate::util;
use layer::Layer;
use layout::ImageLayout;

/// Where Debian's busybox-static puts its binary.
pub const BUSYBOX: &str = "/bin/busybox";

const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One test image: its name under `target/images/`, its reference and its runtime config.
struct ImageSpec {
    name: &'static str,
    config: fn() -> Result<Config>,
}

impl ImageSpec {
    fn reference(&self) -> String {
        format!("bosun.test/{}:1", self.name)
    }
}

/// Every test image. All share the busybox layer and differ only in their config.
const IMAGES: &[ImageSpec] = &[
    ImageSpec {
        name: "busybox",
        config: busybox_config,
    },
    ImageSpec {
        name: "busybox-entry",
        config: busybox_entry_config,
    },
];

/// Plain busybox: `sh` in `/` as root.
fn busybox_config() -> Result<Config> {
    ConfigBuilder::default()
        .env(vec![PATH_ENV.to_owned()])
        .cmd(vec!["sh".to_owned()])
        .working_dir("/")
        .build()
        .context("building the busybox config")
}

/// Exercises Entrypoint/Cmd/Env/WorkingDir/User: runs `/bin/echo entry default-cmd` in
/// `/tmp` as 1000:1000 unless the pod overrides them.
fn busybox_entry_config() -> Result<Config> {
    ConfigBuilder::default()
        .env(vec![PATH_ENV.to_owned(), "GREETING=hello".to_owned()])
        .entrypoint(vec!["/bin/echo".to_owned(), "entry".to_owned()])
        .cmd(vec!["default-cmd".to_owned()])
        .working_dir("/tmp")
        .user("1000:1000")
        .build()
        .context("building the busybox-entry config")
}

/// The directory holding the test images: `<target>/images`.
pub fn images_dir() -> PathBuf {
    util::target_dir().join("images")
}

/// Runs the images verb: builds every image into [`images_dir`] unless the outputs are
/// newer than their inputs (or `force`). Returns the images directory.
pub fn run(force: bool) -> Result<PathBuf> {
    let out_dir = images_dir();
    let busybox = Path::new(BUSYBOX);
    if !force && outputs_are_fresh(&out_dir, busybox)? {
        println!("images: up to date in {}", out_dir.display());
        return Ok(out_dir);
    }
    for (name, reference, digest) in build(&out_dir, busybox)? {
        println!("images: {name}: {reference} manifest {digest}");
    }
    println!("images: written to {}", out_dir.display());
    Ok(out_dir)
}

/// Builds every image from `busybox` into `out_dir`; returns (name, reference, manifest
/// digest) per image.
fn build(out_dir: &Path, busybox: &Path) -> Result<Vec<(String, String, String)>> {
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let entries = rootfs::busybox_rootfs(busybox)?;
    let layer = layer::build(entries).context("building the busybox layer")?;
    let mut built = Vec::with_capacity(IMAGES.len());
    for spec in IMAGES {
        let reference = spec.reference();
        let config = image_config((spec.config)()?, &layer)?;
        let image = ImageLayout::new(&reference, &config, std::slice::from_ref(&layer))
            .with_context(|| format!("assembling {reference}"))?;
        image.write_dir(&out_dir.join(spec.name))?;
        image.write_tarball(&out_dir.join(format!("{}.tar", spec.name)))?;
        built.push((spec.name.to_owned(), reference, image.manifest_digest));
    }
    Ok(built)
}

/// The image configuration for a linux/amd64 image of the single busybox `layer`.
fn image_config(config: Config, layer: &Layer) -> Result<ImageConfiguration> {
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(vec![layer.diff_id.clone()])
        .build()
        .context("building rootfs")?;
    let history = HistoryBuilder::default()
        .created_by("cargo xtask images: busybox-static rootfs")
        .build()
        .context("building history")?;
    ImageConfigurationBuilder::default()
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .config(config)
        .rootfs(rootfs)
        .history(vec![history])
        .build()
        .context("building the image configuration")
}

/// Whether every output exists and is newer than busybox and this xtask binary.
fn outputs_are_fresh(out_dir: &Path, busybox: &Path) -> Result<bool> {
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let newest_input = [busybox, exe.as_path()]
        .into_iter()
        .map(modified)
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .max();
    let outputs = IMAGES.iter().flat_map(|spec| {
        [
            out_dir.join(spec.name).join("index.json"),
            out_dir.join(format!("{}.tar", spec.name)),
        ]
    });
    for output in outputs {
        match modified(&output) {
            Ok(time) if Some(time) >= newest_input => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

fn modified(path: &Path) -> Result<SystemTime> {
    std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .with_context(|| format!("reading the mtime of {}", path.display()))
}

#[cfg(test)]
mod tests;
