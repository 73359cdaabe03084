//! Tests of the built test images: reproducible digests and the content tests rely on.

use std::collections::BTreeMap;
use std::io::Read;

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};

use super::*;

fn busybox() -> &'static Path {
    let path = Path::new(BUSYBOX);
    assert!(
        path.exists(),
        "{BUSYBOX} is missing: run `cargo xtask setup`"
    );
    path
}

fn build_into_tempdir() -> (tempfile::TempDir, Vec<(String, String, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let built = build(dir.path(), busybox()).unwrap();
    (dir, built)
}

/// Reads one image back from its layout: (index, manifest, config).
fn read_image(layout: &Path) -> (ImageIndex, ImageManifest, ImageConfiguration) {
    let blob = |digest: &oci_spec::image::Digest| layout.join("blobs/sha256").join(digest.digest());
    let index = ImageIndex::from_file(layout.join("index.json")).unwrap();
    let manifest = ImageManifest::from_file(blob(index.manifests()[0].digest())).unwrap();
    let config = ImageConfiguration::from_file(blob(manifest.config().digest())).unwrap();
    (index, manifest, config)
}

#[test]
fn two_builds_give_the_same_manifest_digests_and_bytes() {
    let (first_dir, first) = build_into_tempdir();
    let (second_dir, second) = build_into_tempdir();
    assert_eq!(first, second);
    for spec in IMAGES {
        let tar = format!("{}.tar", spec.name);
        let index = format!("{}/index.json", spec.name);
        for file in [tar, index] {
            let a = std::fs::read(first_dir.path().join(&file)).unwrap();
            let b = std::fs::read(second_dir.path().join(&file)).unwrap();
            assert!(a == b, "{file} differs between two builds");
        }
    }
}

#[test]
fn index_names_the_image_for_oci_tools_and_containerd() {
    let (dir, built) = build_into_tempdir();
    for (name, reference, digest) in built {
        let (index, _, _) = read_image(&dir.path().join(&name));
        let descriptor = &index.manifests()[0];
        assert_eq!(descriptor.digest().to_string(), digest);
        let annotations = descriptor.annotations().as_ref().unwrap();
        assert_eq!(annotations["org.opencontainers.image.ref.name"], reference);
        assert_eq!(annotations["io.containerd.image.name"], reference);
        assert_eq!(reference, format!("bosun.test/{name}:1"));
    }
}

#[test]
fn images_share_one_layer_whose_diff_id_is_in_the_config() {
    let (dir, _) = build_into_tempdir();
    let (_, busybox_manifest, busybox_config) = read_image(&dir.path().join("busybox"));
    let (_, entry_manifest, entry_config) = read_image(&dir.path().join("busybox-entry"));
    assert_eq!(busybox_manifest.layers(), entry_manifest.layers());
    assert_eq!(
        busybox_config.rootfs().diff_ids(),
        entry_config.rootfs().diff_ids()
    );

    let layer = &busybox_manifest.layers()[0];
    let gzip = std::fs::read(
        dir.path()
            .join("busybox/blobs/sha256")
            .join(layer.digest().digest()),
    )
    .unwrap();
    assert_eq!(gzip.len() as u64, layer.size());
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(gzip.as_slice())
        .read_to_end(&mut tar)
        .unwrap();
    let diff_id = format!("sha256:{}", layer::sha256_hex(&tar));
    assert_eq!(busybox_config.rootfs().diff_ids(), &vec![diff_id]);
}

#[test]
fn configs_carry_the_runtime_defaults_tests_rely_on() {
    let (dir, _) = build_into_tempdir();
    let (_, _, plain) = read_image(&dir.path().join("busybox"));
    let plain = plain.config().clone().unwrap();
    assert_eq!(plain.cmd().as_deref(), Some(&["sh".to_owned()][..]));
    assert_eq!(plain.entrypoint(), &None);
    assert_eq!(plain.working_dir().as_deref(), Some("/"));
    assert_eq!(plain.env().as_deref(), Some(&[PATH_ENV.to_owned()][..]));

    let (_, _, entry) = read_image(&dir.path().join("busybox-entry"));
    let entry = entry.config().clone().unwrap();
    let strings = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(entry.entrypoint(), &Some(strings(&["/bin/echo", "entry"])));
    assert_eq!(entry.cmd(), &Some(strings(&["default-cmd"])));
    assert_eq!(entry.env(), &Some(strings(&[PATH_ENV, "GREETING=hello"])));
    assert_eq!(entry.working_dir().as_deref(), Some("/tmp"));
    assert_eq!(entry.user().as_deref(), Some("1000:1000"));
}

#[test]
fn rootfs_has_busybox_applets_users_and_web_root() {
    let (dir, _) = build_into_tempdir();
    let (_, manifest, _) = read_image(&dir.path().join("busybox"));
    let digest = manifest.layers()[0].digest().digest().to_owned();
    let gzip = std::fs::read(dir.path().join("busybox/blobs/sha256").join(digest)).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gzip.as_slice()));
    let mut files = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mode = entry.header().mode().unwrap();
        let link = entry
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned());
        let mut contents = Vec::new();
        entry.read_to_end(&mut contents).unwrap();
        files.insert(path, (mode, link, contents));
    }
    assert_eq!(files["bin/busybox"].0, 0o755);
    for applet in rootfs::REQUIRED_APPLETS {
        let (_, link, _) = &files[&format!("bin/{applet}")];
        assert_eq!(link.as_deref(), Some("busybox"), "bin/{applet}");
    }
    assert_eq!(files["tmp/"].0, 0o1777);
    for dir in ["etc/", "root/", "proc/", "sys/", "dev/", "var/www/"] {
        assert!(files.contains_key(dir), "{dir} missing");
    }
    assert_eq!(files["var/www/index.html"].2, rootfs::INDEX_HTML.as_bytes());
    let passwd = String::from_utf8(files["etc/passwd"].2.clone()).unwrap();
    assert!(passwd.contains("root:x:0:0:"));
    assert!(passwd.contains("nobody:x:65534:65534:"));
    assert!(passwd.contains("user1000:x:1000:1000:"));
    assert!(files.contains_key("etc/group"));
}

#[test]
fn tarball_holds_the_same_layout_as_the_directory() {
    let (dir, _) = build_into_tempdir();
    let tar = std::fs::File::open(dir.path().join("busybox.tar")).unwrap();
    let mut archive = tar::Archive::new(tar);
    let mut paths = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        if !path.ends_with('/') {
            let mut contents = Vec::new();
            entry.read_to_end(&mut contents).unwrap();
            let on_disk = std::fs::read(dir.path().join("busybox").join(&path)).unwrap();
            assert!(
                contents == on_disk,
                "{path} differs from the layout directory"
            );
        }
        paths.push(path);
    }
    assert!(paths.contains(&"oci-layout".to_owned()));
    assert!(paths.contains(&"index.json".to_owned()));
    assert_eq!(
        paths
            .iter()
            .filter(|p| p.starts_with("blobs/sha256/"))
            .count(),
        4
    );
}
