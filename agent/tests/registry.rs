//! Pulling images from a real registry on loopback (`docker-registry`, filled by `skopeo`):
//! by tag and by digest, a pod whose image comes from the registry, a corrupted blob refused
//! with nothing stored, a missing image reported with the registry's own answer, and
//! imagePullPolicy Never with a missing image, and two concurrent pulls fetching each blob once.

mod common;

use std::time::Duration;

use common::registry::{layout_digests, Registry};
use common::{pod, stderr, stdout, Node};
use serde_json::Value;

fn container(p: &Value) -> &Value {
    &p["containerStatuses"][0]
}

fn waiting(p: &Value) -> (String, String) {
    let w = &container(p)["state"]["waiting"];
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    (s(&w["reason"]), s(&w["message"]))
}

/// A node whose agent may speak plain HTTP to `reg`.
fn node_for(name: &str, reg: &Registry, extra: &[&str]) -> Node {
    let mut flags = vec!["--insecure-registry", reg.host.as_str()];
    flags.extend_from_slice(extra);
    Node::new(name).with_flags(&flags)
}

fn image_ls(node: &Node) -> String {
    let out = node.cmd().args(["image", "ls"]).output().expect("image ls");
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn pull_by_tag_and_by_digest() {
    let reg = Registry::start();
    reg.push("busybox", "bosun/busybox:1");
    let node = node_for("pull-tag", &reg, &[]);
    let (manifest, _) = layout_digests("busybox");
    let by_tag = format!("{}/bosun/busybox:1", reg.host);
    let out = node
        .cmd()
        .args(["image", "pull", &by_tag])
        .output()
        .expect("pull");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("pulled {by_tag} {manifest}")),
        "{}",
        stdout(&out)
    );
    let by_digest = format!("{}/bosun/busybox@{manifest}", reg.host);
    let out = node
        .cmd()
        .args(["image", "pull", &by_digest])
        .output()
        .expect("pull");
    assert!(out.status.success(), "{}", stderr(&out));
    let ls = image_ls(&node);
    assert!(ls.contains(&by_tag), "{ls}");
    assert!(ls.contains(&by_digest), "{ls}");
}

#[test]
fn a_pod_runs_an_image_from_the_registry() {
    let reg = Registry::start();
    reg.push("busybox", "bosun/busybox:1");
    let node = node_for("pull-run", &reg, &[]);
    let image = format!("{}/bosun/busybox:1", reg.host);
    let out = node.run_pod(&pod(
        "fromreg",
        "Never",
        &image,
        "    command: [echo, hello from the registry]\n",
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("hello from the registry"),
        "{}",
        stderr(&out)
    );
    assert!(image_ls(&node).contains(&image));

    // The daemon's pod worker pulls too: no tag means :latest, which defaults to Always.
    reg.push("busybox", "bosun/busybox:latest");
    let mut node = node;
    node.start_daemon();
    let untagged = format!("{}/bosun/busybox", reg.host);
    node.apply(
        "latest.yaml",
        &pod(
            "latest",
            "Always",
            &untagged,
            "    command: [sleep, '3600']\n",
        ),
    );
    node.wait_pod("latest", "running", Duration::from_secs(30), |p| {
        container(p)["state"]["running"].is_object()
    });
    assert!(image_ls(&node).contains(&format!("{untagged}:latest")));
    assert!(
        reg.log().contains("GET /v2/bosun/busybox/manifests/latest"),
        "{}",
        reg.log()
    );
}

#[test]
fn a_corrupted_blob_is_refused_and_nothing_is_stored() {
    let reg = Registry::start();
    reg.push("busybox", "bosun/busybox:1");
    let (_, layers) = layout_digests("busybox");
    let layer = layers.last().expect("a layer");
    let file = reg.blob_file(layer);
    let mut bytes = std::fs::read(&file).expect("read registry blob");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&file, &bytes).expect("corrupt registry blob");

    let node = node_for("pull-corrupt", &reg, &[]);
    // The harness imported the same layers from the layout: drop them, so the pull needs them.
    for imported in ["bosun.test/busybox:1", "bosun.test/busybox-entry:1"] {
        let out = node
            .cmd()
            .args(["image", "rm", imported])
            .output()
            .expect("rm");
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let store = node.root.join("images");
    let hex = layer.trim_start_matches("sha256:");
    assert!(!store.join("blobs/sha256").join(hex).exists());
    let image = format!("{}/bosun/busybox:1", reg.host);
    let out = node
        .cmd()
        .args(["image", "pull", &image])
        .output()
        .expect("pull");
    assert!(!out.status.success(), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains(layer.as_str()), "{err}");
    assert!(err.to_lowercase().contains("digest"), "{err}");
    assert!(!image_ls(&node).contains(&image));
    assert!(!store.join("blobs/sha256").join(hex).exists());
    let downloads: Vec<_> = std::fs::read_dir(store.join("downloads"))
        .expect("downloads dir")
        .collect();
    assert!(downloads.is_empty(), "{downloads:?}");
}

#[test]
fn a_missing_image_is_err_image_pull_with_the_registry_answer_then_backoff() {
    let reg = Registry::start();
    let mut node = node_for("pull-missing", &reg, &["--backoff-base-ms", "300"]);
    let image = format!("{}/bosun/missing:1", reg.host);
    let out = node
        .cmd()
        .args(["image", "pull", &image])
        .output()
        .expect("pull");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("manifest unknown"),
        "{}",
        stderr(&out)
    );

    node.start_daemon();
    node.apply(
        "missing.yaml",
        &pod("missing", "Always", &image, "    command: ['true']\n"),
    );
    let p = node.wait_pod("missing", "ErrImagePull", Duration::from_secs(20), |p| {
        waiting(p).0 == "ErrImagePull"
    });
    let (_, message) = waiting(&p);
    assert!(message.contains("manifest unknown"), "{p:#}");
    assert!(message.contains(&image), "{p:#}");
    let p = node.wait_pod(
        "missing",
        "ImagePullBackOff",
        Duration::from_secs(20),
        |p| waiting(p).0 == "ImagePullBackOff",
    );
    assert!(waiting(&p).1.contains("manifest unknown"), "{p:#}");
}

#[test]
fn never_with_a_missing_image_fails_clearly() {
    let reg = Registry::start();
    reg.push("busybox", "bosun/busybox:1");
    let mut node = node_for("pull-never", &reg, &[]);
    let image = format!("{}/bosun/busybox:1", reg.host);
    let never = "    imagePullPolicy: Never\n    command: ['true']\n";
    let out = node.run_pod(&pod("never", "Never", &image, never));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("ErrImageNeverPull"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains(&image), "{}", stderr(&out));

    node.start_daemon();
    node.apply("never.yaml", &pod("never", "Always", &image, never));
    let p = node.wait_pod("never", "ErrImageNeverPull", Duration::from_secs(20), |p| {
        waiting(p).0 == "ErrImageNeverPull"
    });
    assert!(waiting(&p).1.contains(&image), "{p:#}");
    // The registry has the image, yet it was never asked for it.
    assert!(
        !reg.log().contains("GET /v2/bosun/busybox/manifests"),
        "{}",
        reg.log()
    );
}

#[test]
fn concurrent_pulls_of_one_image_fetch_each_blob_once() {
    common::require_root();
    let reg = Registry::start();
    reg.push("busybox", "bosun/busybox:1");
    let (manifest, layers) = layout_digests("busybox");
    let dir = std::env::temp_dir().join(format!("bosun-test-pull-once-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = bosun_agent::image::ImageStore::open(&dir).expect("open store");
    let puller = bosun_agent::image::Puller::new(std::slice::from_ref(&reg.host)).expect("puller");
    let image = format!("{}/bosun/busybox:1", reg.host);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (a, b) = rt
        .block_on(async { tokio::join!(puller.pull(&store, &image), puller.pull(&store, &image)) });
    for pulled in [a, b] {
        assert_eq!(pulled.expect("pull").digest, manifest);
    }
    let resolved = store.resolve(&image).expect("resolve");
    assert!(resolved
        .layers
        .iter()
        .all(|l| l.join("bin/busybox").exists()));
    let log = reg.log();
    for layer in &layers {
        let gets = log
            .matches(&format!("\"GET /v2/bosun/busybox/blobs/{layer} "))
            .count();
        assert_eq!(gets, 1, "{layer} fetched {gets} times:\n{log}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
