//! An agent killed (SIGKILL) as it publishes a pod's CSI volume — the moment the driver's
//! NodeStage mount appears, NodePublish next — leaves no mount behind:
//! the pod is deleted while no agent runs, and the restarted agent unpublishes and unstages
//! what the killed one made (`bosun-csi-local`, real loop devices and ext4 mounts).

use std::path::Path;
use std::time::{Duration, Instant};

use bosun_e2e::{mounts_under, wait_logged, wait_node_ready, Control, Node};

const CLASS_CLAIM_POD: &str = r#"apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local}
provisioner: local.csi.bosun.dev
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  storageClassName: local
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 16Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: user}
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - {name: data, persistentVolumeClaim: {claimName: data}}
  containers:
  - name: c
    image: bosun.test/busybox:1
    volumeMounts:
    - {name: data, mountPath: /data}
    command: [sleep, '1000']
"#;

/// The agent's publication records (`<root>/csi/published/<pod uid>/<volume>.json`).
fn published_records(root: &Path) -> usize {
    let Ok(pods) = std::fs::read_dir(root.join("csi/published")) else {
        return 0;
    };
    pods.flatten()
        .filter_map(|pod| std::fs::read_dir(pod.path()).ok())
        .flat_map(|files| files.flatten())
        .filter(|f| f.path().extension().is_some_and(|e| e == "json"))
        .count()
}

#[test]
fn an_agent_killed_mid_publish_leaves_no_mount_after_its_restart() {
    let control = Control::start();
    let mut node = Node::new(96, &control);
    node.start_csi_driver();
    node.start_agent();
    wait_node_ready(&control, &node);
    let root = node.base.join("root");
    control.apply(CLASS_CLAIM_POD);
    // Polled tightly: the agent is killed within milliseconds of the driver's NodeStage
    // mount appearing (the publication already recorded), while NodePublishVolume is on its
    // way.
    let staged = |root: &Path| {
        mounts_under(root)
            .iter()
            .any(|m| m.contains("/globalmount "))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !staged(&root) {
        assert!(
            Instant::now() < deadline,
            "the volume not staged within 60 s\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    node.kill_agent();
    assert_eq!(published_records(&root), 1, "{:#?}", mounts_under(&root));

    control.kubectl_ok(&["delete", "pod", "user", "--grace-period=0", "--force"]);
    wait_logged(
        "the pod gone from the API",
        &control,
        &node,
        Duration::from_secs(30),
        || control.get_json(&["pod", "user"]).is_none(),
    );
    node.start_agent();
    wait_logged(
        "the restarted agent unpublished and unstaged the volume",
        &control,
        &node,
        Duration::from_secs(60),
        || {
            let log = node.log();
            node.csi_log().contains("unstaged")
                && log.contains("unpublished CSI volume")
                && log.contains("unstaged CSI volume")
                && mounts_under(&root).is_empty()
                && published_records(&root) == 0
        },
    );
    control.kubectl_ok(&["delete", "pvc", "data", "--wait=false"]);
}
