//! PersistentVolumes end to end with the real kubectl and real mounts.
//!
//! - The tutorial: a hostPath PV, a claim bound to it, a pod appending a line to a file on the
//!   claimed volume every 2 s; the pod deleted and made again finds the old lines.
//! - A pod whose claim is not Bound waits in ContainerCreating with kubelet's text, and starts
//!   once the claim binds.
//! - Dynamic provisioning through `bosun-csi-local` (when the driver runs on the node): the
//!   claim is Bound to `pvc-<uid>`, the filesystem's size is the claim's (a bigger write fails
//!   with ENOSPC); expanded to 128Mi it takes the write once a new pod stages it (offline
//!   growth: no CAP_SYS_RESOURCE here); deleting the pod and the claim unpublishes, unstages
//!   and deletes the volume, leaving no mount; a second pod of the claim is scheduled (no
//!   nodeName) to the volume's node.
//! - Two nodes with the driver: a second pod of a bound claim goes where the volume is, though
//!   the scheduler would otherwise pick the other node.
//!
//! StatefulSets' claims are in `stateful_set.rs`.

use std::time::Duration;

use bosun_e2e::{mounts_under, wait_logged, wait_node_ready, Control, Node};

const TUTORIAL: &str = r#"apiVersion: v1
kind: PersistentVolume
metadata: {name: task-pv-volume}
spec:
  storageClassName: manual
  capacity: {storage: 10Mi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: HOSTDIR}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: task-pv-claim}
spec:
  storageClassName: manual
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 10Mi}}
"#;

const WRITER: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: POD}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  volumes:
  - {name: data, persistentVolumeClaim: {claimName: CLAIM}}
  containers:
  - name: c
    image: bosun.test/busybox:1
    volumeMounts:
    - {name: data, mountPath: /data}
    command: [sh, -c, 'while true; do echo "$(hostname) $(date +%s)" >> /data/log; sleep 2; done']
"#;

fn writer(pod: &str, node: &str, claim: &str) -> String {
    WRITER
        .replace("POD", pod)
        .replace("NODE", node)
        .replace("CLAIM", claim)
}

#[test]
fn a_claimed_host_path_volume_keeps_its_file_across_pods() {
    let control = Control::start();
    let mut node = Node::new(93, &control);
    node.start_agent();
    let name = node.name.clone();
    wait_node_ready(&control, &node);
    let host_dir = node.base.join("pv-data");
    std::fs::create_dir_all(&host_dir).expect("host dir");
    let log = host_dir.join("log");

    // The pod first: its claim does not exist yet, so it waits with kubelet's text.
    control.apply(&writer("writer", &name, "task-pv-claim"));
    wait_logged(
        "writer waits for its claim",
        &control,
        &node,
        Duration::from_secs(30),
        || {
            let (reason, message) = control.container_waiting("writer");
            reason == "ContainerCreating"
                && message.contains("error processing PVC default/task-pv-claim")
        },
    );
    control.apply(&TUTORIAL.replace("HOSTDIR", &host_dir.display().to_string()));
    wait_logged(
        "the claim Bound",
        &control,
        &node,
        Duration::from_secs(30),
        || control.phase("pvc", "task-pv-claim") == "Bound",
    );
    wait_logged(
        "writer running",
        &control,
        &node,
        Duration::from_secs(60),
        || control.container_running("writer"),
    );
    let lines = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_logged(
        "two lines written",
        &control,
        &node,
        Duration::from_secs(20),
        || lines().lines().count() >= 2,
    );
    let before = lines();

    control.kubectl_ok(&["delete", "pod", "writer", "--wait=true"]);
    control.apply(&writer("writer", &name, "task-pv-claim"));
    wait_logged(
        "writer running again",
        &control,
        &node,
        Duration::from_secs(60),
        || control.container_running("writer"),
    );
    wait_logged(
        "the new pod appends to the old lines",
        &control,
        &node,
        Duration::from_secs(20),
        || {
            let now = lines();
            now.starts_with(&before) && now.lines().count() >= before.lines().count() + 2
        },
    );
    control.kubectl_ok(&["delete", "pod", "writer", "--wait=true"]);
    // The hostPath volume is the node's own directory: nothing of it is mounted on the host.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let base = node.base.display().to_string();
    assert!(
        !mounts
            .lines()
            .any(|l| l.contains(&base) && l.contains("/pods/")),
        "pod mounts left:\n{mounts}"
    );
}

const LOCAL_CLASS: &str = r#"apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local}
provisioner: local.csi.bosun.dev
volumeBindingMode: WaitForFirstConsumer
allowVolumeExpansion: true
"#;

const CLAIM: &str = r#"apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  storageClassName: local
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 64Mi}}
"#;

/// Scheduled (no nodeName): the scheduler picks the node and the claim's selected-node.
const FILLER: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: filler}
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - {name: data, persistentVolumeClaim: {claimName: data}}
  containers:
  - name: c
    image: bosun.test/busybox:1
    volumeMounts:
    - {name: data, mountPath: /data}
    command: [sh, -c, 'dd if=/dev/zero of=/data/big bs=1M count=100 2>&1; echo "dd-exit=$?"; rm -f /data/big; sleep 1000']
"#;

/// The quantity as Kubernetes' provisioner and resizer write a byte count (binary SI).
fn is_128mi(q: &serde_json::Value) -> bool {
    q == "128Mi"
}

/// Waits for a filler pod to run and for its 100 MiB write to end; returns its log.
fn filler_logs(control: &Control, node: &Node, pod: &str) -> String {
    let limit = Duration::from_secs(60);
    wait_logged(&format!("{pod} running"), control, node, limit, || {
        control.container_running(pod)
    });
    wait_logged(
        &format!("{pod}'s 100 MiB write ended"),
        control,
        node,
        limit,
        || node.logs("default", pod).contains("dd-exit="),
    );
    node.logs("default", pod)
}

#[test]
fn a_dynamically_provisioned_volume_has_its_size_and_goes_with_its_claim() {
    let control = Control::start();
    let mut node = Node::new(94, &control);
    // The metrics endpoint, for kubelet's volume stats of the claim.
    node.metrics_port = Some(bosun_e2e::control::free_port());
    node.start_csi_driver();
    node.start_agent();
    let name = node.name.clone();
    wait_node_ready(&control, &node);
    // Registration: the CSINode names the driver with the node's id and topology key.
    wait_logged(
        "the CSINode lists the driver",
        &control,
        &node,
        Duration::from_secs(30),
        || {
            control.get_json(&["csinode", &name]).is_some_and(|c| {
                let d = &c["spec"]["drivers"][0];
                d["name"] == "local.csi.bosun.dev"
                    && d["nodeID"] == name.as_str()
                    && d["topologyKeys"][0] == "topology.bosun.dev/node"
            })
        },
    );
    let labels = control.get_json(&["node", &name]).unwrap_or_default();
    assert_eq!(
        labels["metadata"]["labels"]["topology.bosun.dev/node"],
        name.as_str()
    );

    control.apply(LOCAL_CLASS);
    control.apply(CLAIM);
    control.apply(FILLER);
    wait_logged(
        "the claim Bound",
        &control,
        &node,
        Duration::from_secs(60),
        || control.phase("pvc", "data") == "Bound",
    );
    let claim = control.get_json(&["pvc", "data"]).unwrap_or_default();
    let uid = claim["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let pv_name = format!("pvc-{uid}");
    assert_eq!(claim["spec"]["volumeName"], pv_name.as_str(), "{claim:#}");
    let pv = control
        .get_json(&["pv", &pv_name])
        .expect("the provisioned PV");
    assert_eq!(
        pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"],
        "local.csi.bosun.dev"
    );
    assert_eq!(pv["spec"]["csi"]["driver"], "local.csi.bosun.dev");
    assert!(pv["spec"]["csi"]["volumeHandle"]
        .as_str()
        .is_some_and(|h| !h.is_empty()));
    assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Delete");
    assert_eq!(pv["spec"]["capacity"]["storage"], "64Mi", "{pv:#}");
    assert_eq!(claim["status"]["capacity"]["storage"], "64Mi", "{claim:#}");

    let logs = filler_logs(&control, &node, "filler");
    assert!(logs.contains("No space left on device"), "{logs}");
    assert!(!logs.contains("dd-exit=0"), "{logs}");
    // kubelet's volume metrics: NodeGetVolumeStats of the claim's ext4 (the filler removed
    // its file again: some bytes and inodes used, most free).
    let stat = |text: &str, metric: &str| -> Option<f64> {
        let series = format!("{metric}{{namespace=\"default\",persistentvolumeclaim=\"data\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .and_then(|v| v.trim().parse().ok())
    };
    wait_logged(
        "kubelet_volume_stats_* of the claim on the metrics endpoint",
        &control,
        &node,
        Duration::from_secs(30),
        || {
            let text = node.metrics();
            let capacity = stat(&text, "kubelet_volume_stats_capacity_bytes").unwrap_or(0.0);
            let used = stat(&text, "kubelet_volume_stats_used_bytes").unwrap_or(0.0);
            let inodes = stat(&text, "kubelet_volume_stats_inodes").unwrap_or(0.0);
            let inodes_used = stat(&text, "kubelet_volume_stats_inodes_used").unwrap_or(0.0);
            (40.0 * 1048576.0..=64.0 * 1048576.0).contains(&capacity)
                && used > 0.0
                && used < capacity
                && stat(&text, "kubelet_volume_stats_available_bytes").is_some()
                && inodes > 0.0
                && inodes_used > 0.0
                && stat(&text, "kubelet_volume_stats_inodes_free").is_some()
        },
    );
    // Published into the pod, staged once under the agent root.
    let root = node.base.join("root");
    let mounted = mounts_under(&root);
    assert!(
        mounted.iter().any(|l| l.contains("/csi/staged/")),
        "staged: {mounted:#?}"
    );
    assert!(
        mounted
            .iter()
            .any(|l| l.contains("kubernetes.io~csi/data/mount")),
        "published: {mounted:#?}"
    );

    // Expansion to 128Mi: the PV grows at once; the mounted ext4 cannot grow online here
    // (bosun-csi-local without CAP_SYS_RESOURCE expands OFFLINE), so the claim says
    // FileSystemResizePending until the volume is staged again, by the next pod.
    control.kubectl_ok(&[
        "patch",
        "pvc",
        "data",
        "-p",
        r#"{"spec":{"resources":{"requests":{"storage":"128Mi"}}}}"#,
    ]);
    wait_logged(
        "the PV grown to 128Mi",
        &control,
        &node,
        Duration::from_secs(30),
        || {
            control
                .get_json(&["pv", &pv_name])
                .is_some_and(|p| is_128mi(&p["spec"]["capacity"]["storage"]))
        },
    );
    control.kubectl_ok(&["delete", "pod", "filler", "--wait=true"]);
    wait_logged(
        "the claim's capacity 128Mi",
        &control,
        &node,
        Duration::from_secs(30),
        || {
            control
                .get_json(&["pvc", "data"])
                .is_some_and(|c| is_128mi(&c["status"]["capacity"]["storage"]))
        },
    );
    // Scheduled again (no nodeName): the bound claim's volume is on this node, so is the pod.
    let again = FILLER.replace("name: filler}", "name: filler2}");
    control.apply(&again);
    let logs = filler_logs(&control, &node, "filler2");
    assert!(
        logs.contains("dd-exit=0"),
        "the grown volume takes 100 MiB:\n{logs}"
    );

    control.kubectl_ok(&["delete", "pod", "filler2", "--wait=true"]);
    control.kubectl_ok(&["delete", "pvc", "data", "--wait=false"]);
    wait_logged(
        "the PV deleted",
        &control,
        &node,
        Duration::from_secs(60),
        || control.get_json(&["pv", &pv_name]).is_none(),
    );
    assert!(
        mounts_under(&node.base).is_empty(),
        "mounts left: {:#?}",
        mounts_under(&node.base)
    );
    let driver_log = node.csi_log();
    assert!(driver_log.contains("unstaged"), "{driver_log}");
    assert!(driver_log.contains("deleted"), "{driver_log}");
}

/// A scheduled pod writing its name into the claim `shared`, after showing what is there.
const SHARED_POD: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: POD}
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - {name: data, persistentVolumeClaim: {claimName: shared}}
  containers:
  - name: c
    image: bosun.test/busybox:1
    volumeMounts:
    - {name: data, mountPath: /data}
    command: [sh, -c, 'cat /data/names 2>/dev/null; echo POD >> /data/names; echo written; sleep 1000']
"#;

const SHARED_CLAIM: &str = r#"apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: shared}
spec:
  storageClassName: local
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 16Mi}}
"#;

/// Two nodes, each with bosun-csi-local. The claim is provisioned on the node of its first
/// pod (the other node cordoned meanwhile); a second pod of the claim, scheduled while both
/// nodes are open (the scheduler's tie-break would pick the other node), is placed where the
/// volume is and reads what the first wrote.
#[test]
fn a_second_pod_of_a_bound_local_claim_is_scheduled_where_its_volume_is() {
    let control = Control::start();
    // `b` is named first, so it sorts first: of two equal nodes the scheduler picks `b`.
    let mut b = Node::new(95, &control);
    let mut a = Node::new(96, &control);
    for node in [&mut a, &mut b] {
        node.start_csi_driver();
        node.start_agent();
    }
    let (name_a, name_b) = (a.name.clone(), b.name.clone());
    wait_logged("nodes Ready", &control, &a, Duration::from_secs(30), || {
        control.node_ready(&name_a) && control.node_ready(&name_b)
    });
    wait_logged(
        "both nodes labelled with their topology",
        &control,
        &a,
        Duration::from_secs(30),
        || {
            [&name_a, &name_b].iter().all(|n| {
                control.get_json(&["node", n]).is_some_and(|node| {
                    node["metadata"]["labels"]["topology.bosun.dev/node"] == n.as_str()
                })
            })
        },
    );
    control.apply(LOCAL_CLASS);
    control.apply(SHARED_CLAIM);
    control.kubectl_ok(&["cordon", &name_b]);
    control.apply(&SHARED_POD.replace("POD", "first"));
    wait_logged(
        "first running",
        &control,
        &a,
        Duration::from_secs(60),
        || control.container_running("first"),
    );
    wait_logged("first wrote", &control, &a, Duration::from_secs(30), || {
        a.logs("default", "first").contains("written")
    });
    control.kubectl_ok(&["delete", "pod", "first", "--wait=true"]);
    control.kubectl_ok(&["uncordon", &name_b]);
    // A pod without volumes shows that the scheduler now picks `b`.
    let probe = "apiVersion: v1\nkind: Pod\nmetadata: {name: probe}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {name: c, image: bosun.test/busybox:1, command: [sleep, '1000']}\n";
    control.apply(probe);
    wait_logged(
        "probe scheduled",
        &control,
        &a,
        Duration::from_secs(30),
        || {
            control
                .get_json(&["pod", "probe"])
                .is_some_and(|p| p["spec"]["nodeName"].is_string())
        },
    );
    let placed = control.get_json(&["pod", "probe"]).unwrap_or_default();
    assert_eq!(placed["spec"]["nodeName"], name_b.as_str(), "{placed:#}");
    control.kubectl_ok(&["delete", "pod", "probe", "--wait=true"]);

    control.apply(&SHARED_POD.replace("POD", "second"));
    wait_logged(
        "second running",
        &control,
        &a,
        Duration::from_secs(60),
        || control.container_running("second"),
    );
    let placed = control.get_json(&["pod", "second"]).unwrap_or_default();
    assert_eq!(placed["spec"]["nodeName"], name_a.as_str(), "{placed:#}");
    wait_logged("second read", &control, &a, Duration::from_secs(30), || {
        a.logs("default", "second").contains("written")
    });
    let logs = a.logs("default", "second");
    assert!(logs.starts_with("first\n"), "{logs}");
    control.kubectl_ok(&["delete", "pod", "second", "--wait=true"]);
    control.kubectl_ok(&["delete", "pvc", "shared", "--wait=false"]);
}
