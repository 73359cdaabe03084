//! A multi-platform image in a real registry on loopback: an OCI image index listing an
//! arm64 manifest first and the amd64 one second (built here from the busybox test layout,
//! pushed whole by `skopeo copy --all`). The pull follows the index to linux/amd64 and never
//! asks for the arm64 manifest.

mod common;

use std::path::Path;

use common::registry::{layout_digests, Registry};
use common::{images_dir, stderr, stdout, Node};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

/// Writes `bytes` as a blob of `layout`; returns its descriptor fields (digest, size).
fn put_blob(layout: &Path, bytes: &[u8]) -> (String, usize) {
    let hex = hex::encode(Sha256::digest(bytes));
    std::fs::write(layout.join("blobs/sha256").join(&hex), bytes).expect("write blob");
    (format!("sha256:{hex}"), bytes.len())
}

fn read_blob(layout: &Path, digest: &str) -> Value {
    let path = layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    serde_json::from_slice(&std::fs::read(path).expect("read blob")).expect("json blob")
}

/// A copy of the busybox layout whose ref `multi` is an index: an arm64 image (busybox's
/// layers, a config saying arm64), then busybox itself as amd64. Returns the index digest.
fn multi_platform_layout(dir: &Path) -> String {
    let source = images_dir().join("busybox");
    std::fs::create_dir_all(dir.join("blobs/sha256")).expect("layout dir");
    for entry in std::fs::read_dir(source.join("blobs/sha256")).expect("blobs") {
        let entry = entry.expect("blob entry");
        std::fs::copy(
            entry.path(),
            dir.join("blobs/sha256").join(entry.file_name()),
        )
        .expect("copy blob");
    }
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("oci-layout");
    let (amd64, _) = layout_digests("busybox");
    let amd64_bytes = std::fs::read(
        source
            .join("blobs/sha256")
            .join(amd64.trim_start_matches("sha256:")),
    )
    .expect("amd64 manifest");
    let mut manifest: Value = serde_json::from_slice(&amd64_bytes).expect("manifest json");
    let mut config = read_blob(dir, manifest["config"]["digest"].as_str().expect("config"));
    config["architecture"] = "arm64".into();
    let (config_digest, config_size) = put_blob(dir, &serde_json::to_vec(&config).expect("json"));
    manifest["config"]["digest"] = config_digest.into();
    manifest["config"]["size"] = config_size.into();
    let (arm64, arm64_size) = put_blob(dir, &serde_json::to_vec(&manifest).expect("json"));
    let entry = |digest: &str, size: usize, arch: &str| {
        json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": size,
            "platform": {"architecture": arch, "os": "linux"},
        })
    };
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            entry(&arm64, arm64_size, "arm64"),
            entry(&amd64, amd64_bytes.len(), "amd64"),
        ],
    });
    let (index_digest, index_size) = put_blob(dir, &serde_json::to_vec(&index).expect("json"));
    let top = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": index_digest,
            "size": index_size,
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }],
    });
    std::fs::write(dir.join("index.json"), top.to_string()).expect("index.json");
    arm64
}

#[test]
fn a_multi_platform_index_yields_the_amd64_image() {
    let reg = Registry::start();
    let node = Node::new("pull-index").with_flags(&["--insecure-registry", reg.host.as_str()]);
    let layout = node.base.join("multi-layout");
    let arm64 = multi_platform_layout(&layout);
    reg.push_layout(&layout, "multi", "bosun/multi:1")
        .unwrap_or_else(|e| panic!("pushing the index: {e}"));
    let (amd64, _) = layout_digests("busybox");

    let image = format!("{}/bosun/multi:1", reg.host);
    let out = node
        .cmd()
        .args(["image", "pull", &image])
        .output()
        .expect("pull");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("pulled {image} {amd64}")),
        "{}",
        stdout(&out)
    );
    let log = reg.log();
    assert!(
        log.contains(&format!("GET /v2/bosun/multi/manifests/{amd64} ")),
        "{log}"
    );
    assert!(
        !log.contains(&format!("GET /v2/bosun/multi/manifests/{arm64} ")),
        "the arm64 manifest was fetched:\n{log}"
    );
    // The image runs: its layers are busybox's.
    let out = node.run_pod(&common::pod(
        "multi",
        "Never",
        &image,
        "    imagePullPolicy: Never\n    command: [echo, amd64 picked]\n",
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("amd64 picked"), "{}", stderr(&out));
}
