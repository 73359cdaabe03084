//! Layer extraction tests through the public store API: whiteout conversion, device nodes,
//! and hostile layers (`..`, absolute paths, symlink and hard-link escapes), each checked to
//! leave nothing outside the store. They run as root and must never touch anything outside
//! their own temporary directory.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::test_fixtures::*;

#[test]
fn whiteouts_become_overlay_char_devices_and_opaque_dirs() {
    let fx = Fixture::new();
    let layers = vec![
        layer(vec![file("etc/gone", "x"), file("opq/old", "x")]),
        layer(vec![
            file("etc/.wh.gone", ""),
            dir("opq"),
            file("opq/.wh..wh..opq", ""),
            file("opq/new", "n"),
        ]),
    ];
    oci_layout(&fx.src(), "bosun.test/wh:1", &layers);
    fx.store.import(&fx.src()).expect("import");
    let top = fx.store.resolve("bosun.test/wh:1").expect("resolve").layers[1].clone();
    let whiteout = fs::symlink_metadata(top.join("etc/gone")).expect("whiteout exists");
    assert!(
        whiteout.file_type().is_char_device(),
        "whiteout is not a char device"
    );
    assert_eq!(whiteout.rdev(), 0, "whiteout device is not 0/0");
    assert!(!top.join("etc/.wh.gone").exists(), ".wh. file kept");
    assert!(!top.join("opq/.wh..wh..opq").exists(), "opaque marker kept");
    let opaque = xattr::get(top.join("opq"), "trusted.overlay.opaque").expect("getxattr");
    assert_eq!(opaque.as_deref(), Some(&b"y"[..]));
    assert!(top.join("opq/new").exists());
}

#[test]
fn entry_with_dotdot_is_refused() {
    Fixture::new().assert_layer_refused(vec![file("../evil", "x")], "../evil", "..");
}

#[test]
fn entry_with_absolute_path_is_refused() {
    Fixture::new().assert_layer_refused(vec![file("/abs/evil", "x")], "/abs/evil", "absolute");
    assert!(!Path::new("/abs/evil").exists());
}

#[test]
fn entry_through_symlink_is_refused() {
    let fx = Fixture::new();
    let outside = fx.outside().display().to_string();
    fx.assert_layer_refused(
        vec![symlink("link", &outside), file("link/evil", "x")],
        "link/evil",
        "symlink escape",
    );
}

#[test]
fn hardlink_out_of_layer_is_refused() {
    let fx = Fixture::new();
    fx.assert_layer_refused(
        vec![hardlink("evil", "../../etc/passwd")],
        "evil",
        "hard link target",
    );
    let abs = Fixture::new();
    abs.assert_layer_refused(
        vec![hardlink("evil", "/etc/passwd")],
        "evil",
        "hard link target",
    );
}

#[test]
fn hardlink_through_symlink_is_refused() {
    let fx = Fixture::new();
    let outside = fx.outside().display().to_string();
    fs::write(fx.outside().join("secret"), "s").expect("secret");
    oci_layout(
        &fx.src(),
        "bosun.test/evil:1",
        &[layer(vec![
            symlink("link", &outside),
            hardlink("evil", "link/secret"),
        ])],
    );
    let err = fx
        .store
        .import(&fx.src())
        .expect_err("hardlink through symlink");
    assert!(err.to_string().contains("evil"), "{err}");
    assert_eq!(
        fs::metadata(fx.outside().join("secret"))
            .expect("secret")
            .nlink(),
        1
    );
}

#[test]
fn device_nodes_in_layers_are_skipped() {
    let fx = Fixture::new();
    let dev = Item {
        kind: tar::EntryType::Char,
        ..file("dev/null", "")
    };
    oci_layout(
        &fx.src(),
        "bosun.test/dev:1",
        &[layer(vec![dev, file("ok", "1")])],
    );
    fx.store.import(&fx.src()).expect("import");
    let l = fx
        .store
        .resolve("bosun.test/dev:1")
        .expect("resolve")
        .layers[0]
        .clone();
    assert!(!l.join("dev/null").exists());
    assert!(l.join("ok").exists());
}

#[test]
fn file_over_symlink_replaces_the_link_instead_of_writing_through_it() {
    let fx = Fixture::new();
    let target = fx.outside().join("victim");
    let target_str = target.display().to_string();
    let items = vec![symlink("link", &target_str), file("link", "payload")];
    oci_layout(&fx.src(), "bosun.test/over:1", &[layer(items)]);
    fx.store.import(&fx.src()).expect("import");
    assert!(!target.exists(), "wrote through the symlink");
    let l = fx
        .store
        .resolve("bosun.test/over:1")
        .expect("resolve")
        .layers[0]
        .clone();
    let meta = fs::symlink_metadata(l.join("link")).expect("link");
    assert!(meta.is_file(), "symlink not replaced by the file");
}
