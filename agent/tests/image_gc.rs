//! Image garbage collection on a real small filesystem: the node's image store is a 96 MiB
//! tmpfs; a pod runs busybox, then four images of ~20 MiB each (a 10 MiB random file in an
//! uncompressed layer: blob + unpacked copy) are imported, the fourth taking usage past the
//! high threshold. The daemon (checking every second) removes the least recently used unused
//! images until usage is at or below the low threshold, and never busybox, which the pod uses
//! although it is the least recently used of all.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{images_dir, pod, stderr, stdout, wait_until, Node, BUSYBOX};
use serde_json::json;
use sha2::{Digest as _, Sha256};

const TMPFS_MIB: u64 = 96;
const FILE_MIB: usize = 10;

/// A tmpfs mounted at `path`, lazily unmounted on drop (also when the test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, mib: u64) -> Tmpfs {
        std::fs::create_dir_all(path).expect("mount point");
        nix::mount::mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size={mib}m,mode=0755").as_str()),
        )
        .expect("mount tmpfs");
        Tmpfs(path.to_path_buf())
    }

    fn used_percent(&self) -> u64 {
        let st = nix::sys::statvfs::statvfs(&self.0).expect("statvfs");
        100 - st.blocks_available() * 100 / st.blocks()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

fn put_blob(layout: &Path, bytes: &[u8]) -> serde_json::Value {
    let hex = hex::encode(Sha256::digest(bytes));
    std::fs::write(layout.join("blobs/sha256").join(&hex), bytes).expect("write blob");
    json!({"digest": format!("sha256:{hex}"), "size": bytes.len()})
}

/// An OCI layout at `dir` of one image `reference` whose one uncompressed layer holds a
/// random file of [`FILE_MIB`] MiB.
fn random_image(dir: &Path, reference: &str) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).expect("layout dir");
    let mut data = vec![0u8; FILE_MIB << 20];
    fastrand::fill(&mut data);
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_600_000_000);
    header.set_cksum();
    tar.append_data(&mut header, "random", data.as_slice())
        .expect("tar");
    let layer = tar.into_inner().expect("finish tar");
    let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&layer)));
    let mut layer_desc = put_blob(dir, &layer);
    layer_desc["mediaType"] = "application/vnd.oci.image.layer.v1.tar".into();
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["true"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    let mut config_desc = put_blob(dir, config.to_string().as_bytes());
    config_desc["mediaType"] = "application/vnd.oci.image.config.v1+json".into();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": [layer_desc],
    });
    let mut manifest_desc = put_blob(dir, manifest.to_string().as_bytes());
    manifest_desc["mediaType"] = "application/vnd.oci.image.manifest.v1+json".into();
    manifest_desc["annotations"] = json!({"org.opencontainers.image.ref.name": reference});
    let index = json!({"schemaVersion": 2, "manifests": [manifest_desc]});
    std::fs::write(dir.join("index.json"), index.to_string()).expect("index.json");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("oci-layout");
}

fn import(node: &Node, dir: &Path) {
    let out = node
        .cmd()
        .args(["image", "import"])
        .arg(dir)
        .output()
        .expect("image import");
    assert!(out.status.success(), "{}", stderr(&out));
}

fn image_ls(node: &Node) -> String {
    let out = node.cmd().args(["image", "ls"]).output().expect("image ls");
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn gc_removes_least_recently_used_unused_images_down_to_the_low_threshold() {
    let node = Node::new("imagegc");
    let store = Tmpfs::mount(&node.root.join("images"), TMPFS_MIB);
    import(&node, &images_dir().join("busybox"));
    let base = store.used_percent();
    // Each image takes ~2 × 10 MiB of 96 MiB ≈ 21%: after three it is at base + 63%, after four
    // base + 83%. Removing the two oldest brings it to base + 42%.
    let (high, low) = (base + 73, base + 52);
    assert!(high < 95, "busybox alone takes {base}% of the tmpfs");
    let mut node = node.with_flags(&[
        "--image-gc-high-threshold",
        &high.to_string(),
        "--image-gc-low-threshold",
        &low.to_string(),
        "--image-gc-period",
        "1s",
        // The images were imported a moment ago: kubelet's 2 minutes would keep them all.
        "--minimum-image-ttl-duration",
        "0s",
    ]);
    node.start_daemon();
    node.apply(
        "user.yaml",
        &pod(
            "user",
            "Always",
            BUSYBOX,
            "    imagePullPolicy: Never\n    command: [sleep, '3600']\n",
        ),
    );
    node.wait_pod("user", "running", Duration::from_secs(30), |p| {
        p["containerStatuses"][0]["state"]["running"].is_object()
    });

    let names = ["gc-a", "gc-b", "gc-c", "gc-d"];
    for (i, name) in names.iter().enumerate() {
        let layout = node.base.join(name);
        random_image(&layout, &format!("bosun.test/{name}:1"));
        import(&node, &layout);
        if i < 3 {
            let used = store.used_percent();
            assert!(used < high, "{used}% after {name} (high {high}%)");
        }
    }
    wait_until(
        "image GC to reach the low threshold",
        Duration::from_secs(30),
        || {
            let ls = image_ls(&node);
            !ls.contains("bosun.test/gc-b:1") && store.used_percent() <= low
        },
    );
    let ls = image_ls(&node);
    for gone in ["bosun.test/gc-a:1", "bosun.test/gc-b:1"] {
        assert!(!ls.contains(gone), "{gone} still there:\n{ls}");
    }
    for kept in [BUSYBOX, "bosun.test/gc-c:1", "bosun.test/gc-d:1"] {
        assert!(
            ls.contains(kept),
            "{kept} was removed:\n{ls}\n{}",
            node.daemon_log()
        );
    }
    let log = node.daemon_log();
    assert!(log.contains("image garbage collection"), "{log}");
    assert!(!log.contains("FreeDiskSpaceFailed"), "{log}");
    // The pod still runs on its image.
    let p = node.pod("user").expect("pod user");
    assert!(
        p["containerStatuses"][0]["state"]["running"].is_object(),
        "{p}"
    );
    // `node` (declared after `store`) is dropped first: its pods stop before the unmount.
}
