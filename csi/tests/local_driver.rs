//! `bosun-csi-local` on a real kernel: real loop devices, ext4 and mounts, driven through the
//! client library over the driver's unix socket. Every test works in its own sandbox (see
//! `support`), which is unmounted, detached and removed on drop, even after a failure.

mod support;

use std::collections::HashMap;
use std::path::Path;

use bosun_csi::client::{Client, MountCapability};
use bosun_csi::proto::{self, volume_usage};
use bosun_csi::TOPOLOGY_NODE_KEY;
use tonic::Code;

use support::{write_file, Driver, Sandbox, MIB};

fn bytes_usage(stats: &proto::NodeGetVolumeStatsResponse) -> &proto::VolumeUsage {
    stats
        .usage
        .iter()
        .find(|u| u.unit == volume_usage::Unit::Bytes as i32)
        .expect("a BYTES usage")
}

fn is_mounted(path: &Path) -> bool {
    mount_options(path).is_some()
}

/// The per-mount options of the topmost mount at `path`, if it is a mount point.
fn mount_options(path: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    text.lines()
        .rev()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .find(|f| f.get(4).is_some_and(|p| Path::new(p) == path))
        .map(|f| f[5].split(',').map(str::to_owned).collect())
}

/// Stages and publishes `id`, returning nothing; panics with the call that failed.
async fn stage_publish(csi: &mut Client, id: &str, staging: &Path, target: &Path) {
    let cap = MountCapability::default();
    csi.node_stage(id, staging, &cap).await.expect("NodeStage");
    csi.node_publish(id, staging, target, &cap, false)
        .await
        .expect("NodePublish");
}

#[tokio::test]
async fn lifecycle_keeps_data_across_restaging_and_delete_removes_it() {
    let sandbox = Sandbox::new("life");
    let node = bosun_test_support::unique("node-");
    let (driver, mut csi) = Driver::start(&sandbox, &node).await;

    let info = csi.get_plugin_info().await.unwrap();
    assert_eq!(info.name, "local.csi.bosun.dev");
    let node_info = csi.node_get_info().await.unwrap();
    assert_eq!(node_info.node_id, node);
    let topology = node_info.accessible_topology.expect("node topology");
    assert_eq!(topology.segments.get(TOPOLOGY_NODE_KEY), Some(&node));
    let caps = csi.node_get_capabilities().await.unwrap();
    assert!(caps.contains(&proto::node_service_capability::rpc::Type::StageUnstageVolume));
    assert!(caps.contains(&proto::node_service_capability::rpc::Type::ExpandVolume));

    let cap = MountCapability::default();
    let volume = csi.create_volume("pvc-life", 64 * MIB, &cap).await.unwrap();
    assert_eq!(volume.capacity_bytes, 64 * MIB);
    assert_eq!(
        volume.accessible_topology[0]
            .segments
            .get(TOPOLOGY_NODE_KEY),
        Some(&node),
        "the volume is accessible from its node"
    );
    let id = volume.volume_id.clone();
    let image = driver.state_dir.join("volumes").join(format!("{id}.img"));
    assert!(image.is_file(), "the image {} exists", image.display());

    let staging = sandbox.path("staging");
    let target = sandbox.path("pod/volume");
    stage_publish(&mut csi, &id, &staging, &target).await;
    assert!(is_mounted(&staging) && is_mounted(&target));
    std::fs::write(target.join("hello.txt"), "kept\n").unwrap();
    let stats = csi.node_get_volume_stats(&id, &target).await.unwrap();
    let bytes = bytes_usage(&stats);
    assert!(
        bytes.total > 50 * MIB && bytes.total <= 64 * MIB,
        "total {}",
        bytes.total
    );
    assert!(bytes.used > 0 && bytes.available > 0);

    csi.node_unpublish(&id, &target).await.unwrap();
    assert!(!target.exists(), "unpublish removes the target it made");
    csi.node_unstage(&id, &staging).await.unwrap();
    assert!(!is_mounted(&staging));
    assert!(
        sandbox.loop_devices().is_empty(),
        "unstage detaches the loop device"
    );

    // Stage again, publish at another pod's path (with mount flags, which the bind honours):
    // the file is still there.
    let target2 = sandbox.path("pod2/volume");
    let flagged = MountCapability {
        mount_flags: vec!["noexec".into(), "nosuid".into()],
        ..MountCapability::default()
    };
    csi.node_stage(&id, &staging, &flagged).await.unwrap();
    csi.node_publish(&id, &staging, &target2, &flagged, false)
        .await
        .unwrap();
    let options = mount_options(&target2).expect("published");
    assert!(
        options.contains(&"noexec".to_owned()) && options.contains(&"nosuid".to_owned()),
        "{options:?}"
    );
    assert_eq!(
        std::fs::read_to_string(target2.join("hello.txt")).unwrap(),
        "kept\n"
    );
    csi.node_unpublish(&id, &target2).await.unwrap();
    csi.node_unstage(&id, &staging).await.unwrap();
    csi.delete_volume(&id).await.unwrap();
    assert!(!image.exists(), "DeleteVolume removes the image");
    assert!(sandbox.mounts().is_empty() && sandbox.loop_devices().is_empty());
}

#[tokio::test]
async fn capacity_is_enforced_and_expansion_lets_the_write_through() {
    let sandbox = Sandbox::new("size");
    let (_driver, mut csi) = Driver::start(&sandbox, "node-size").await;
    let cap = MountCapability::default();
    let id = csi
        .create_volume("pvc-size", 64 * MIB, &cap)
        .await
        .unwrap()
        .volume_id;
    let staging = sandbox.path("staging");
    let target = sandbox.path("target");
    stage_publish(&mut csi, &id, &staging, &target).await;

    let big = target.join("big");
    let err = write_file(&big, 100 << 20).expect_err("a 100 MiB write into 64 MiB");
    assert_eq!(err.raw_os_error(), Some(libc_enospc()), "ENOSPC, got {err}");
    std::fs::remove_file(&big).unwrap();

    let grown = csi.controller_expand_volume(&id, 128 * MIB).await.unwrap();
    assert_eq!(grown.capacity_bytes, 128 * MIB);
    assert!(grown.node_expansion_required);
    if online_expansion(&mut csi).await {
        let now = csi
            .node_expand(&id, &target, Some(&staging), 128 * MIB)
            .await
            .unwrap();
        assert_eq!(now, 128 * MIB);
        assert!(is_mounted(&target), "expansion does not unmount");
    } else {
        // This kernel refuses ext4's online resize to a driver without CAP_SYS_RESOURCE: the
        // driver says OFFLINE, refuses to grow a mounted volume, and grows it when staged.
        eprintln!("driver lacks CAP_SYS_RESOURCE: testing OFFLINE expansion");
        let r = csi
            .node_expand(&id, &target, Some(&staging), 128 * MIB)
            .await;
        assert_eq!(r.unwrap_err().code(), Code::FailedPrecondition);
        csi.node_unpublish(&id, &target).await.unwrap();
        csi.node_unstage(&id, &staging).await.unwrap();
        stage_publish(&mut csi, &id, &staging, &target).await;
        let now = csi
            .node_expand(&id, &target, Some(&staging), 128 * MIB)
            .await
            .unwrap();
        assert_eq!(
            now,
            128 * MIB,
            "NodeExpand after staging has nothing left to do"
        );
    }
    write_file(&big, 100 << 20).expect("the 100 MiB write fits after expansion");
    let stats = csi.node_get_volume_stats(&id, &target).await.unwrap();
    assert!(bytes_usage(&stats).total > 110 * MIB, "{stats:?}");
    assert!(bytes_usage(&stats).used >= 100 * MIB, "{stats:?}");
}

/// Whether the driver advertises ONLINE volume expansion.
async fn online_expansion(csi: &mut Client) -> bool {
    use proto::plugin_capability::{volume_expansion, Type};
    let caps = csi.get_plugin_capabilities().await.unwrap();
    let expansion = caps
        .iter()
        .find_map(|c| match &c.r#type {
            Some(Type::VolumeExpansion(e)) => Some(e.r#type),
            _ => None,
        })
        .expect("a VolumeExpansion capability");
    expansion == volume_expansion::Type::Online as i32
}

fn libc_enospc() -> i32 {
    nix::errno::Errno::ENOSPC as i32
}

#[tokio::test]
async fn every_call_twice_gives_the_same_answer() {
    let sandbox = Sandbox::new("twice");
    let (_driver, mut csi) = Driver::start(&sandbox, "node-twice").await;
    let cap = MountCapability::default();
    // Two at once (one driver-wide lock), then a third after: one volume.
    let mut other = csi.clone();
    let (first, second) = tokio::join!(
        csi.create_volume("pvc-twice", 32 * MIB, &cap),
        other.create_volume("pvc-twice", 32 * MIB, &cap)
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first, second, "same name, same request: same volume");
    let third = csi
        .create_volume("pvc-twice", 32 * MIB, &cap)
        .await
        .unwrap();
    assert_eq!(first, third);
    let images = std::fs::read_dir(sandbox.path("state/volumes"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("img".as_ref()))
        .count();
    assert_eq!(images, 1);
    for _ in 0..2 {
        let v = csi
            .controller
            .validate_volume_capabilities(proto::ValidateVolumeCapabilitiesRequest {
                volume_id: first.volume_id.clone(),
                volume_capabilities: vec![cap.to_proto()],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(v.confirmed.is_some(), "{v:?}");
    }
    let err = csi
        .create_volume("pvc-twice", 256 * MIB, &cap)
        .await
        .expect_err("same name, incompatible size");
    assert_eq!(err.code(), Code::AlreadyExists, "{err}");
    let id = first.volume_id;

    let staging = sandbox.path("staging");
    let target = sandbox.path("target");
    let ro_target = sandbox.path("ro-target");
    for _ in 0..2 {
        csi.node_stage(&id, &staging, &cap).await.unwrap();
    }
    for _ in 0..2 {
        csi.node_publish(&id, &staging, &target, &cap, false)
            .await
            .unwrap();
        csi.node_publish(&id, &staging, &ro_target, &cap, true)
            .await
            .unwrap();
    }
    let err = csi
        .node_publish(&id, &staging, &ro_target, &cap, false)
        .await
        .expect_err("read-write publish over a read-only one");
    assert_eq!(err.code(), Code::AlreadyExists, "{err}");
    std::fs::write(target.join("rw"), "x").unwrap();
    let ro_err = std::fs::write(ro_target.join("ro"), "x").expect_err("readonly honoured");
    assert_eq!(ro_err.raw_os_error(), Some(nix::errno::Errno::EROFS as i32));
    assert_eq!(std::fs::read_to_string(ro_target.join("rw")).unwrap(), "x");

    let a = csi.node_get_volume_stats(&id, &target).await.unwrap();
    let b = csi.node_get_volume_stats(&id, &target).await.unwrap();
    assert_eq!(bytes_usage(&a).total, bytes_usage(&b).total);
    for _ in 0..2 {
        let r = csi.controller_expand_volume(&id, 48 * MIB).await.unwrap();
        assert_eq!(r.capacity_bytes, 48 * MIB);
    }
    // Online: both grow (the second has nothing to do); offline: both refuse a mounted volume.
    let first = csi.node_expand(&id, &target, None, 48 * MIB).await;
    let second = csi.node_expand(&id, &target, None, 48 * MIB).await;
    match (first, second) {
        (Ok(a), Ok(b)) => assert_eq!((a, b), (48 * MIB, 48 * MIB)),
        (Err(a), Err(b)) => {
            assert_eq!(a.code(), Code::FailedPrecondition, "{a}");
            assert_eq!(b.code(), a.code());
        }
        (a, b) => panic!("NodeExpandVolume twice answered {a:?} then {b:?}"),
    }
    for _ in 0..2 {
        csi.node_unpublish(&id, &target).await.unwrap();
        csi.node_unpublish(&id, &ro_target).await.unwrap();
    }
    for _ in 0..2 {
        csi.node_unstage(&id, &staging).await.unwrap();
    }
    for _ in 0..2 {
        csi.delete_volume(&id).await.unwrap();
    }
    assert!(sandbox.mounts().is_empty() && sandbox.loop_devices().is_empty());
}

#[tokio::test]
async fn bad_requests_get_the_spec_codes() {
    let sandbox = Sandbox::new("bad");
    let (_driver, mut csi) = Driver::start(&sandbox, "node-bad").await;
    let cap = MountCapability::default();
    let staging = sandbox.path("staging");
    let target = sandbox.path("target");

    // Missing or malformed fields: INVALID_ARGUMENT.
    let missing_name = csi
        .create_volume_with(proto::CreateVolumeRequest {
            volume_capabilities: vec![cap.to_proto()],
            ..Default::default()
        })
        .await;
    assert_eq!(missing_name.unwrap_err().code(), Code::InvalidArgument);
    let no_caps = csi
        .create_volume_with(proto::CreateVolumeRequest {
            name: "pvc-bad".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(no_caps.unwrap_err().code(), Code::InvalidArgument);
    let block = proto::VolumeCapability {
        access_type: Some(proto::volume_capability::AccessType::Block(
            proto::volume_capability::BlockVolume {},
        )),
        ..cap.to_proto()
    };
    let r = csi
        .create_volume_with(proto::CreateVolumeRequest {
            name: "pvc-bad".into(),
            volume_capabilities: vec![block],
            ..Default::default()
        })
        .await;
    assert_eq!(r.unwrap_err().code(), Code::InvalidArgument);
    let r = csi
        .create_volume_with(proto::CreateVolumeRequest {
            name: "pvc-bad".into(),
            volume_capabilities: vec![cap.to_proto()],
            parameters: HashMap::from([("replicas".into(), "3".into())]),
            ..Default::default()
        })
        .await;
    let err = r.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.to_string().contains("replicas"), "names the key: {err}");
    for r in [
        csi.node_stage("", &staging, &cap).await,
        csi.node_unstage("", &staging).await,
        csi.node_publish("", &staging, &target, &cap, false).await,
        csi.node_unpublish("", &target).await,
        csi.delete_volume("").await,
        csi.node_stage("vol-x", Path::new("relative/path"), &cap)
            .await,
    ] {
        assert_eq!(r.unwrap_err().code(), Code::InvalidArgument);
    }
    let r = csi.node_get_volume_stats("", &target).await;
    assert_eq!(r.unwrap_err().code(), Code::InvalidArgument);
    let r = csi.node_expand("", &target, None, 0).await;
    assert_eq!(r.unwrap_err().code(), Code::InvalidArgument);
    let r = csi.controller_expand_volume("", MIB).await;
    assert_eq!(r.unwrap_err().code(), Code::InvalidArgument);

    // Sizes the driver cannot make: OUT_OF_RANGE; another node's topology: RESOURCE_EXHAUSTED.
    let r = csi
        .create_volume_with(proto::CreateVolumeRequest {
            name: "pvc-tiny".into(),
            capacity_range: Some(proto::CapacityRange {
                required_bytes: 0,
                limit_bytes: MIB,
            }),
            volume_capabilities: vec![cap.to_proto()],
            ..Default::default()
        })
        .await;
    assert_eq!(r.unwrap_err().code(), Code::OutOfRange);
    let elsewhere = proto::Topology {
        segments: HashMap::from([(TOPOLOGY_NODE_KEY.into(), "another-node".into())]),
    };
    let r = csi
        .create_volume_with(proto::CreateVolumeRequest {
            name: "pvc-elsewhere".into(),
            volume_capabilities: vec![cap.to_proto()],
            accessibility_requirements: Some(proto::TopologyRequirement {
                requisite: vec![elsewhere],
                preferred: vec![],
            }),
            ..Default::default()
        })
        .await;
    assert_eq!(r.unwrap_err().code(), Code::ResourceExhausted);

    // Unknown volumes: NOT_FOUND, except DeleteVolume (success).
    let unknown = bosun_csi::local::id_for_name("never-created");
    for r in [
        csi.node_stage(&unknown, &staging, &cap).await,
        csi.node_publish(&unknown, &staging, &target, &cap, false)
            .await,
        csi.node_stage("../../etc", &staging, &cap).await,
    ] {
        assert_eq!(r.unwrap_err().code(), Code::NotFound);
    }
    let r = csi.node_get_volume_stats(&unknown, &target).await;
    assert_eq!(r.unwrap_err().code(), Code::NotFound);
    let r = csi.controller_expand_volume(&unknown, MIB).await;
    assert_eq!(r.unwrap_err().code(), Code::NotFound);
    csi.delete_volume(&unknown)
        .await
        .expect("deleting a missing volume is success");

    // Order: publish before stage is FAILED_PRECONDITION, and so is deleting a staged volume.
    let id = csi
        .create_volume("pvc-order", 32 * MIB, &cap)
        .await
        .unwrap()
        .volume_id;
    let r = csi.node_publish(&id, &staging, &target, &cap, false).await;
    assert_eq!(r.unwrap_err().code(), Code::FailedPrecondition);
    let r = csi.node_get_volume_stats(&id, &target).await;
    assert_eq!(r.unwrap_err().code(), Code::NotFound, "not mounted there");
    csi.node_stage(&id, &staging, &cap).await.unwrap();
    let r = csi.delete_volume(&id).await;
    assert_eq!(r.unwrap_err().code(), Code::FailedPrecondition);
    // Expansion past what the controller granted: OUT_OF_RANGE.
    let r = csi.node_expand(&id, &staging, None, 1024 * MIB).await;
    assert_eq!(r.unwrap_err().code(), Code::OutOfRange);
    // Mount options ext4 does not know: INVALID_ARGUMENT, and nothing left attached.
    let other_staging = sandbox.path("other-staging");
    let bogus = MountCapability {
        mount_flags: vec!["no_such_ext4_option".into()],
        ..MountCapability::default()
    };
    let other = csi
        .create_volume("pvc-other", 32 * MIB, &cap)
        .await
        .unwrap()
        .volume_id;
    let r = csi.node_stage(&other, &other_staging, &bogus).await;
    assert_eq!(r.unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(
        sandbox.loop_devices().len(),
        1,
        "only the staged volume's loop device"
    );
    // Another volume's staging path: ALREADY_EXISTS.
    let other = csi
        .create_volume("pvc-other", 32 * MIB, &cap)
        .await
        .unwrap()
        .volume_id;
    let r = csi.node_stage(&other, &staging, &cap).await;
    assert_eq!(r.unwrap_err().code(), Code::AlreadyExists);

    assert!(
        csi.probe().await.unwrap(),
        "the driver survived every bad request"
    );
    csi.node_unstage(&id, &staging).await.unwrap();
    csi.delete_volume(&id).await.unwrap();
    csi.delete_volume(&other).await.unwrap();
}

#[tokio::test]
async fn a_restarted_driver_carries_on_mid_lifecycle() {
    let sandbox = Sandbox::new("restart");
    let (mut driver, mut csi) = Driver::start(&sandbox, "node-restart").await;
    let cap = MountCapability::default();
    let id = csi
        .create_volume("pvc-restart", 32 * MIB, &cap)
        .await
        .unwrap()
        .volume_id;
    let staging = sandbox.path("staging");
    let target = sandbox.path("target");
    stage_publish(&mut csi, &id, &staging, &target).await;
    std::fs::write(target.join("before"), "1").unwrap();

    // SIGKILL: nothing is cleaned up by the driver; the kernel keeps the mounts.
    let mut csi = driver.restart().await;
    let again = csi
        .create_volume("pvc-restart", 32 * MIB, &cap)
        .await
        .unwrap();
    assert_eq!(
        again.volume_id, id,
        "the name still maps to the same volume"
    );
    stage_publish(&mut csi, &id, &staging, &target).await;
    assert_eq!(std::fs::read_to_string(target.join("before")).unwrap(), "1");
    csi.node_get_volume_stats(&id, &target).await.unwrap();
    csi.node_unpublish(&id, &target).await.unwrap();

    // Killed again between unpublish and unstage.
    let mut csi = driver.restart().await;
    csi.node_unstage(&id, &staging).await.unwrap();
    assert!(sandbox.loop_devices().is_empty());
    csi.delete_volume(&id).await.unwrap();
    assert!(sandbox.mounts().is_empty());
}

#[tokio::test]
async fn what_an_interrupted_stage_leaves_is_adopted_or_cleared() {
    let sandbox = Sandbox::new("stray");
    let (mut driver, mut csi) = Driver::start(&sandbox, "node-stray").await;
    let cap = MountCapability::default();
    let image_of = |id: &str| driver_image(&sandbox, id);

    // A driver killed between attaching the loop device and mounting it: the next stage
    // mounts the device that is already there.
    let id = csi
        .create_volume("pvc-adopt", 32 * MIB, &cap)
        .await
        .unwrap()
        .volume_id;
    let mut csi = {
        driver.kill();
        attach_by_hand(&image_of(&id));
        driver.restart().await
    };
    let staging = sandbox.path("staging");
    csi.node_stage(&id, &staging, &cap).await.unwrap();
    assert_eq!(
        sandbox.loop_devices().len(),
        1,
        "the stray device was reused"
    );
    assert!(is_mounted(&staging));
    csi.node_unstage(&id, &staging).await.unwrap();
    assert!(sandbox.loop_devices().is_empty());

    // The same, but the CO gives up on the volume: DeleteVolume clears the device.
    attach_by_hand(&image_of(&id));
    csi.delete_volume(&id).await.unwrap();
    assert!(sandbox.loop_devices().is_empty());
    assert!(!image_of(&id).exists());
}

fn driver_image(sandbox: &Sandbox, id: &str) -> std::path::PathBuf {
    sandbox.path("state/volumes").join(format!("{id}.img"))
}

fn attach_by_hand(image: &Path) {
    let out = std::process::Command::new("losetup")
        .args(["--find", "--show"])
        .arg(image)
        .output()
        .expect("losetup");
    assert!(out.status.success(), "losetup: {out:?}");
}
