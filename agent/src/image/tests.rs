//! Store-level tests: import from every source format, verification, naming, garbage
//! collection, concurrency. They build their images on the fly (see `test_fixtures.rs`) and
//! run as root. They must never touch anything outside their own temporary directory.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde_json::json;

use super::test_fixtures::*;
use super::*;

fn two_layers() -> Vec<Layer> {
    let mut suid = file("bin/tool", "#!tool");
    suid.mode = 0o4755;
    suid.uid = 1000;
    vec![
        layer(vec![
            dir("etc"),
            file("etc/a", "base"),
            suid,
            symlink("bin/sh", "/bin/busybox"),
        ]),
        Layer {
            items: vec![file("etc/a", "top"), file("etc/b", "new")],
            packing: Packing::Tar,
        },
    ]
}

#[test]
fn oci_layout_dir_imports_and_resolves_config_and_layers_bottom_first() {
    let fx = Fixture::new();
    let image = oci_layout(&fx.src(), "bosun.test/app:1", &two_layers());
    let summaries = fx.store.import(&fx.src()).expect("import");
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0].reference, "bosun.test/app:1");
    assert_eq!(summaries[0].digest, image.manifest_digest);

    let resolved = fx.store.resolve("bosun.test/app:1").expect("resolve");
    assert_eq!(resolved.digest, image.manifest_digest);
    assert_eq!(resolved.config.entrypoint, ["/bin/sh", "-c"]);
    assert_eq!(resolved.config.cmd, ["echo hi"]);
    assert_eq!(resolved.config.env, ["PATH=/bin", "A=b"]);
    assert_eq!(resolved.config.working_dir.as_deref(), Some("/work"));
    assert_eq!(resolved.config.user.as_deref(), Some("1000:1000"));
    assert_eq!(resolved.layers.len(), 2);
    let (bottom, top) = (&resolved.layers[0], &resolved.layers[1]);
    assert_eq!(
        fs::read_to_string(bottom.join("etc/a")).expect("bottom"),
        "base"
    );
    assert_eq!(fs::read_to_string(top.join("etc/a")).expect("top"), "top");
    assert_eq!(fs::read_to_string(top.join("etc/b")).expect("top"), "new");

    let tool = fs::metadata(bottom.join("bin/tool")).expect("tool");
    assert_eq!(tool.mode() & 0o7777, 0o4755, "mode preserved incl. setuid");
    assert_eq!((tool.uid(), tool.gid()), (1000, 1000), "owner preserved");
    assert_eq!(tool.mtime(), 1_600_000_000, "mtime preserved");
    let sh = bottom.join("bin/sh");
    assert_eq!(
        fs::read_link(&sh).expect("symlink"),
        Path::new("/bin/busybox")
    );
}

#[test]
fn oci_tarball_imports() {
    let fx = Fixture::new();
    let image = oci_layout(&fx.src(), "bosun.test/tarred:2", &two_layers());
    let tarball = fx.tmp.path().join("image.tar");
    tar_dir(&fx.src(), &tarball);
    let summaries = fx.store.import(&tarball).expect("import tarball");
    assert_eq!(summaries[0].digest, image.manifest_digest);
    let resolved = fx.store.resolve("bosun.test/tarred:2").expect("resolve");
    assert_eq!(
        fs::read_to_string(resolved.layers[1].join("etc/b")).expect("b"),
        "new"
    );
    assert_eq!(fx.count("tmp"), 0, "staging directory left behind");
}

#[test]
fn docker_archive_imports_every_repo_tag() {
    let fx = Fixture::new();
    let tarball = fx.tmp.path().join("docker.tar");
    let layers = vec![vec![file("hello", "world")], vec![file("second", "2")]];
    docker_archive(&tarball, &["busybox:1.36", "bosun.test/bb:x"], &layers);
    let summaries = fx.store.import(&tarball).expect("import docker archive");
    let refs: Vec<_> = summaries.iter().map(|s| s.reference.as_str()).collect();
    assert_eq!(refs, ["docker.io/library/busybox:1.36", "bosun.test/bb:x"]);
    let resolved = fx
        .store
        .resolve("busybox:1.36")
        .expect("resolve normalised");
    assert_eq!(resolved.config.cmd, ["echo hi"]);
    assert_eq!(
        fs::read_to_string(resolved.layers[0].join("hello")).expect("hello"),
        "world"
    );
    assert_eq!(resolved.digest, summaries[1].digest);
}

#[test]
fn reimport_is_idempotent_and_does_not_unpack_again() {
    let fx = Fixture::new();
    oci_layout(&fx.src(), "bosun.test/app:1", &two_layers());
    let first = fx.store.import(&fx.src()).expect("first import");
    let resolved = fx.store.resolve("bosun.test/app:1").expect("resolve");
    let marker = resolved.layers[0].join("marker");
    fs::write(&marker, "still here").expect("marker");
    let second = fx.store.import(&fx.src()).expect("second import");
    assert_eq!(first, second);
    assert!(marker.exists(), "layer was unpacked again");
    assert_eq!(fx.store.list().expect("list"), first);
    assert_eq!(fx.count("layers"), 2);
}

#[test]
fn corrupt_blob_is_rejected_naming_its_digest() {
    let fx = Fixture::new();
    let image = oci_layout(&fx.src(), "bosun.test/app:1", &two_layers());
    let digest = &image.layer_digests[0];
    let blob = fx
        .src()
        .join("blobs/sha256")
        .join(&digest["sha256:".len()..]);
    let mut bytes = fs::read(&blob).expect("blob");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&blob, bytes).expect("corrupt");
    let err = fx
        .store
        .import(&fx.src())
        .expect_err("corrupt blob imported");
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(digest.as_str()), "{err}");
    assert!(fx.store.list().expect("list").is_empty());
    assert_eq!(fx.count("blobs/sha256"), 0, "failed import left blobs");
}

#[test]
fn layer_whose_content_differs_from_diff_id_is_rejected() {
    let fx = Fixture::new();
    let image = write_oci_image(&fx.src(), &[layer(vec![file("a", "1")])]);
    // Rewrite the config with a wrong diff_id, keeping blobs self-consistent.
    let config = serde_json::to_vec(&image_config(&[digest::digest_of(b"other")])).expect("json");
    let config_digest = write_blob(&fx.src(), &config);
    let manifest = json!({
        "schemaVersion": 2,
        "config": descriptor("application/vnd.oci.image.config.v1+json", config.len(), &config_digest),
        "layers": [descriptor(LAYER_GZIP, fs::metadata(fx.src().join("blobs/sha256").join(&image.layer_digests[0][7..])).expect("m").len() as usize, &image.layer_digests[0])],
    });
    let bytes = serde_json::to_vec(&manifest).expect("json");
    let digest = write_blob(&fx.src(), &bytes);
    write_index(
        &fx.src(),
        vec![named(
            descriptor(OCI_MANIFEST, bytes.len(), &digest),
            "bosun.test/x:1",
        )],
    );
    let err = fx
        .store
        .import(&fx.src())
        .expect_err("wrong diff id accepted");
    assert!(matches!(err, ImageError::DiffIdMismatch { .. }), "{err}");
    assert_eq!(fx.count("layers"), 0);
}

#[test]
fn remove_collects_unused_blobs_and_layers_but_keeps_shared_ones() {
    let fx = Fixture::new();
    let base = || layer(vec![file("base", "shared")]);
    let a = write_oci_image(&fx.src(), &[base(), layer(vec![file("a", "only a")])]);
    let b = write_oci_image(&fx.src(), &[base(), layer(vec![file("b", "only b")])]);
    write_index(
        &fx.src(),
        vec![
            named(a.manifest.clone(), "bosun.test/a:1"),
            named(b.manifest.clone(), "bosun.test/b:1"),
        ],
    );
    fx.store.import(&fx.src()).expect("import");
    assert_eq!(fx.count("layers"), 3);
    let blob = |d: &str| fx.tmp.path().join("store/blobs/sha256").join(&d[7..]);

    fx.store.remove("bosun.test/a:1").expect("remove a");
    assert!(matches!(
        fx.store.resolve("bosun.test/a:1"),
        Err(ImageError::NotFound { .. })
    ));
    assert!(
        !blob(&a.layer_digests[1]).exists(),
        "a's own layer blob kept"
    );
    assert!(!blob(&a.manifest_digest).exists(), "a's manifest kept");
    assert!(
        blob(&a.layer_digests[0]).exists(),
        "shared base blob deleted"
    );
    assert_eq!(fx.count("layers"), 2);
    let resolved = fx
        .store
        .resolve("bosun.test/b:1")
        .expect("b still resolves");
    assert!(resolved.layers.iter().all(|l| l.is_dir()));

    fx.store.remove("bosun.test/b:1").expect("remove b");
    assert_eq!(fx.count("blobs/sha256"), 0);
    assert_eq!(fx.count("layers"), 0);
    assert!(matches!(
        fx.store.remove("bosun.test/b:1"),
        Err(ImageError::NotFound { .. })
    ));
}

#[test]
fn resolve_by_digest_and_unknown_reference() {
    let fx = Fixture::new();
    let image = oci_layout(&fx.src(), "bosun.test/app:1", &two_layers());
    fx.store.import(&fx.src()).expect("import");
    let by_digest = format!("bosun.test/app@{}", image.manifest_digest);
    assert_eq!(
        fx.store.resolve(&by_digest).expect("by digest").digest,
        image.manifest_digest
    );
    let err = fx.store.resolve("bosun.test/other:1").expect_err("unknown");
    assert!(
        matches!(&err, ImageError::NotFound { reference } if reference == "bosun.test/other:1")
    );
    assert!(fx
        .store
        .resolve(&format!("bosun.test/nope@{}", image.manifest_digest))
        .is_err());
}

#[test]
fn tag_only_ref_name_uses_containerd_name_or_errors() {
    let fx = Fixture::new();
    let image = write_oci_image(&fx.src(), &[layer(vec![file("a", "1")])]);
    write_index(&fx.src(), vec![named(image.manifest.clone(), "v2")]);
    let err = fx.store.import(&fx.src()).expect_err("tag without name");
    assert!(matches!(err, ImageError::MissingImageName { .. }), "{err}");
    assert!(
        err.to_string().contains("io.containerd.image.name"),
        "{err}"
    );

    let mut desc = image.manifest.clone();
    desc["annotations"] = json!({
        "org.opencontainers.image.ref.name": "v2",
        "io.containerd.image.name": "docker.io/library/busybox:latest",
    });
    write_index(&fx.src(), vec![desc]);
    let summaries = fx.store.import(&fx.src()).expect("import");
    assert_eq!(summaries[0].reference, "docker.io/library/busybox:v2");
}

#[test]
fn nested_index_picks_linux_amd64() {
    let fx = Fixture::new();
    let arm = write_oci_image(&fx.src(), &[layer(vec![file("arch", "arm64")])]);
    let amd = write_oci_image(&fx.src(), &[layer(vec![file("arch", "amd64")])]);
    let with_platform = |mut d: serde_json::Value, arch: &str| {
        d["platform"] = json!({ "os": "linux", "architecture": arch });
        d
    };
    let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [with_platform(arm.manifest, "arm64"), with_platform(amd.manifest, "amd64")] });
    let bytes = serde_json::to_vec(&index).expect("json");
    let digest = write_blob(&fx.src(), &bytes);
    write_index(
        &fx.src(),
        vec![named(
            descriptor(OCI_INDEX, bytes.len(), &digest),
            "bosun.test/multi:1",
        )],
    );
    let summaries = fx.store.import(&fx.src()).expect("import");
    assert_eq!(summaries[0].digest, amd.manifest_digest);
    let resolved = fx
        .store
        .resolve(&format!("bosun.test/multi@{digest}"))
        .expect("by index digest");
    assert_eq!(
        fs::read_to_string(resolved.layers[0].join("arch")).expect("arch"),
        "amd64"
    );
}

#[test]
fn zstd_layers_import_and_their_diff_ids_are_checked() {
    let fx = Fixture::new();
    let layers = [
        Layer {
            items: vec![dir("etc"), file("etc/a", "zstd base"), file("etc/b", "b")],
            packing: Packing::Zstd(LAYER_ZSTD),
        },
        Layer {
            items: vec![file("etc/a", "zstd top")],
            packing: Packing::Zstd(LAYER_ZSTD_FOREIGN),
        },
    ];
    oci_layout(&fx.src(), "bosun.test/z:1", &layers);
    fx.store.import(&fx.src()).expect("import zstd layers");
    let resolved = fx.store.resolve("bosun.test/z:1").expect("resolve");
    let read = |i: usize, f: &str| fs::read_to_string(resolved.layers[i].join(f)).expect(f);
    assert_eq!(read(0, "etc/a"), "zstd base");
    assert_eq!(read(0, "etc/b"), "b");
    assert_eq!(read(1, "etc/a"), "zstd top");

    // A zstd blob whose content is not the config's diff_id is refused, nothing stored.
    let fx = Fixture::new();
    let image = oci_layout(
        &fx.src(),
        "bosun.test/z:2",
        &[Layer {
            items: vec![file("a", "1")],
            packing: Packing::Zstd(LAYER_ZSTD),
        }],
    );
    let other = zstd_two_frames(&tar_bytes(&[file("a", "2")]));
    let layer_path = fx
        .src()
        .join("blobs/sha256")
        .join(&image.layer_digests[0][7..]);
    let text = fs::read_to_string(
        fx.src()
            .join("blobs/sha256")
            .join(&image.manifest_digest[7..]),
    )
    .expect("manifest");
    let digest = write_blob(&fx.src(), &other);
    fs::remove_file(&layer_path).expect("remove old layer");
    let size = fs::metadata(fx.src().join("blobs/sha256").join(&digest[7..]))
        .expect("new layer")
        .len();
    let mut manifest: serde_json::Value = serde_json::from_str(&text).expect("json");
    manifest["layers"][0]["digest"] = digest.clone().into();
    manifest["layers"][0]["size"] = size.into();
    let bytes = serde_json::to_vec(&manifest).expect("json");
    let manifest_digest = write_blob(&fx.src(), &bytes);
    write_index(
        &fx.src(),
        vec![named(
            descriptor(OCI_MANIFEST, bytes.len(), &manifest_digest),
            "bosun.test/z:2",
        )],
    );
    let err = fx
        .store
        .import(&fx.src())
        .expect_err("wrong diff_id accepted");
    assert!(matches!(err, ImageError::DiffIdMismatch { .. }), "{err}");
    assert_eq!(fx.count("layers"), 0);
    assert!(fx.store.list().expect("list").is_empty());
}

#[test]
fn a_layer_of_an_unknown_compression_is_refused() {
    let fx = Fixture::new();
    let image = oci_layout(&fx.src(), "bosun.test/x:1", &[layer(vec![file("a", "1")])]);
    let manifest_path = fx
        .src()
        .join("blobs/sha256")
        .join(&image.manifest_digest[7..]);
    let text = fs::read_to_string(&manifest_path).expect("manifest");
    let bytes = text.replace("tar+gzip", "tar+bzip2").into_bytes();
    let digest = write_blob(&fx.src(), &bytes);
    write_index(
        &fx.src(),
        vec![named(
            descriptor(OCI_MANIFEST, bytes.len(), &digest),
            "bosun.test/x:1",
        )],
    );
    let err = fx.store.import(&fx.src()).expect_err("bzip2 accepted");
    assert!(
        matches!(err, ImageError::UnsupportedMediaType { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("bzip2"), "{err}");
}

#[test]
fn corrupted_json_is_an_error_not_a_panic() {
    let fx = Fixture::new();
    fs::write(fx.src().join("index.json"), b"{not json").expect("index");
    assert!(matches!(
        fx.store.import(&fx.src()),
        Err(ImageError::Json { .. })
    ));

    let garbage = b"[1, 2, 3]";
    let digest = write_blob(&fx.src(), garbage);
    write_index(
        &fx.src(),
        vec![named(
            descriptor(OCI_MANIFEST, garbage.len(), &digest),
            "bosun.test/j:1",
        )],
    );
    let err = fx.store.import(&fx.src()).expect_err("garbage manifest");
    assert!(
        matches!(err, ImageError::Json { .. }) && err.to_string().contains(&digest),
        "{err}"
    );

    fs::write(fx.tmp.path().join("store/refs.json"), b"\0\xff").expect("refs");
    assert!(matches!(fx.store.list(), Err(ImageError::Json { .. })));
    assert!(fx.store.resolve("busybox").is_err());

    let not_a_tar = fx.tmp.path().join("junk.tar");
    fs::write(&not_a_tar, b"definitely not a tarball").expect("junk");
    assert!(fx.store.import(&not_a_tar).is_err());
}

#[test]
fn concurrent_imports_into_one_store_both_land() {
    let fx = Fixture::new();
    let (a, b) = (fx.tmp.path().join("a"), fx.tmp.path().join("b"));
    oci_layout(&a, "bosun.test/a:1", &two_layers());
    oci_layout(&b, "bosun.test/b:1", &[layer(vec![file("b", "b")])]);
    let root = fx.tmp.path().join("store");
    std::thread::scope(|s| {
        for src in [&a, &b] {
            let root = root.clone();
            s.spawn(move || {
                ImageStore::open(&root)
                    .expect("open")
                    .import(src)
                    .expect("import")
            });
        }
    });
    assert_eq!(fx.store.list().expect("list").len(), 2);
}

#[test]
fn downloads_of_dead_processes_are_removed_and_live_ones_kept() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(tmp.path()).expect("open");
    let downloads = store.dirs.downloads_dir();
    // pid 0 is never a process of ours; /proc/0 does not exist.
    let dead = downloads.join("pull-0-1-1");
    let live = downloads.join(format!("pull-{}-1-1", std::process::id()));
    for d in [&dead, &live] {
        fs::create_dir_all(d.join("blobs")).expect("mkdir");
    }
    assert_eq!(store.dirs.clear_stale_downloads().expect("sweep"), 1);
    assert!(!dead.exists());
    assert!(live.is_dir());
}
