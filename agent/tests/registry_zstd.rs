//! zstd layers (`application/vnd.oci.image.layer.v1.tar+zstd`), made by skopeo itself: the
//! busybox test image pushed to a real registry on loopback with `--dest-compress-format
//! zstd` is pulled and runs; the same recompression into a local OCI layout imports and runs.

mod common;

use std::path::Path;
use std::process::Command;

use common::registry::Registry;
use common::{images_dir, pod, stderr, stdout, Node};
use serde_json::Value;

const ZSTD_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// The layer media types of the manifest `digest` the registry stores.
fn layer_media_types(reg: &Registry, digest: &str) -> Vec<String> {
    let bytes = std::fs::read(reg.blob_file(digest)).expect("manifest blob");
    let manifest: Value = serde_json::from_slice(&bytes).expect("manifest json");
    manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// The digest tag `tag` of `repo` points at in the registry's storage.
fn tag_digest(reg: &Registry, repo: &str, tag: &str) -> String {
    let link = reg
        .dir
        .join("data/docker/registry/v2/repositories")
        .join(repo)
        .join("_manifests/tags")
        .join(tag)
        .join("current/link");
    std::fs::read_to_string(&link)
        .unwrap_or_else(|e| panic!("{}: {e}", link.display()))
        .trim()
        .to_owned()
}

fn assert_runs(node: &Node, name: &str, image: &str) {
    let out = node.run_pod(&pod(
        name,
        "Never",
        image,
        "    imagePullPolicy: IfNotPresent\n    command: [sh, -c, 'echo zstd $(ls /bin/busybox)']\n",
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("zstd /bin/busybox"),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn a_zstd_image_from_the_registry_pulls_and_runs() {
    let reg = Registry::start();
    let layout = images_dir().join("busybox");
    reg.push_layout_with(
        &layout,
        "bosun.test/busybox:1",
        "bosun/busyzstd:1",
        &["--dest-compress-format", "zstd"],
    )
    .unwrap_or_else(|e| panic!("pushing with zstd: {e}"));
    let digest = tag_digest(&reg, "bosun/busyzstd", "1");
    let media = layer_media_types(&reg, &digest);
    assert!(
        !media.is_empty() && media.iter().all(|m| m == ZSTD_LAYER),
        "skopeo did not recompress: {media:?}"
    );

    let node = Node::new("pull-zstd").with_flags(&["--insecure-registry", reg.host.as_str()]);
    let image = format!("{}/bosun/busyzstd:1", reg.host);
    let out = node
        .cmd()
        .args(["image", "pull", &image])
        .output()
        .expect("pull");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("pulled {image} {digest}")),
        "{}",
        stdout(&out)
    );
    assert_runs(&node, "zstdpull", &image);
}

#[test]
fn a_zstd_oci_layout_imports_and_runs() {
    let node = Node::new("import-zstd");
    let zlayout = node.base.join("zstd-layout");
    let status = Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-compress-format", "zstd"])
        .arg(format!(
            "oci:{}:bosun.test/busybox:1",
            images_dir().join("busybox").display()
        ))
        .arg(format!("oci:{}:bosun.test/busyzstd:2", zlayout.display()))
        .status()
        .expect("run skopeo");
    assert!(status.success(), "skopeo copy to a zstd layout failed");
    let index: Value =
        serde_json::from_slice(&std::fs::read(zlayout.join("index.json")).expect("index.json"))
            .expect("index json");
    let manifest = index["manifests"][0]["digest"].as_str().expect("digest");
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(
            Path::new(&zlayout)
                .join("blobs/sha256")
                .join(manifest.trim_start_matches("sha256:")),
        )
        .expect("manifest"),
    )
    .expect("manifest json");
    assert_eq!(manifest["layers"][0]["mediaType"], ZSTD_LAYER, "{manifest}");

    let out = node
        .cmd()
        .args(["image", "import"])
        .arg(&zlayout)
        .output()
        .expect("import");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_runs(&node, "zstdimport", "bosun.test/busyzstd:2");
}
