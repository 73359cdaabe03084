//! The PersistentVolume controller through the real kubectl: a claim binds both ways to the
//! smallest volume that fits, waits with kube's event when nothing fits and binds once a
//! volume appears, releases its volume when deleted; a claim of a provisioning class is handed
//! to the provisioner; claims grow only through a class that allows it.

mod common;

use std::time::{Duration, Instant};

use common::{ok, stderr, Control};
use serde_json::{json, Value};

fn apply(control: &Control, name: &str, object: &Value) {
    let file = control.dir.path().join(format!("{name}.json"));
    std::fs::write(&file, object.to_string()).expect("write");
    ok(control.kubectl(&["apply", "-f", file.to_str().expect("utf-8")]));
}

fn pv(name: &str, size: &str, extra: Value) -> Value {
    let mut v = json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
        "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                 "hostPath": {"path": format!("/tmp/{name}")}}});
    merge(&mut v, &extra);
    v
}

fn pvc(name: &str, size: &str, extra: Value) -> Value {
    let mut c = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}});
    merge(&mut c, &extra);
    c
}

fn merge(into: &mut Value, extra: &Value) {
    match (into.as_object_mut(), extra.as_object()) {
        (Some(a), Some(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        _ => *into = extra.clone(),
    }
}

fn jsonpath(control: &Control, what: &[&str], path: &str) -> String {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    let path = format!("jsonpath={path}");
    args.extend_from_slice(&["-o", &path]);
    ok(control.kubectl(&args))
}

fn wait_until(what: &str, control: &Control, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "not within 30 s: {what}\nserver log:\n{}",
            control.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn events_of(control: &Control, name: &str) -> String {
    ok(control.kubectl(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={name}"),
        "-o",
        "custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message",
        "--no-headers",
    ]))
}

/// The row of `name` in `kubectl get KIND`, split into columns.
fn row(control: &Control, kind: &str, name: &str) -> Vec<String> {
    let out = ok(control.kubectl(&["get", kind, name, "--no-headers"]));
    out.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn a_claim_binds_the_smallest_fitting_volume_waits_when_none_fits_and_releases_on_delete() {
    let control = Control::start();
    apply(&control, "big", &pv("big", "10Gi", json!({})));
    apply(&control, "small", &pv("small", "2Gi", json!({})));
    apply(&control, "tiny", &pv("tiny", "500Mi", json!({})));
    // Admission and API defaults: Retain for a static volume, no class for a claim when no
    // class is the default one.
    let policy = jsonpath(
        &control,
        &["pv", "small"],
        "{.spec.persistentVolumeReclaimPolicy}",
    );
    assert_eq!(policy, "Retain");
    apply(&control, "data", &pvc("data", "1Gi", json!({})));
    wait_until("data Bound", &control, || {
        jsonpath(&control, &["pvc", "data"], "{.status.phase}") == "Bound"
    });
    let header = ok(control.kubectl(&["get", "pv"]));
    assert!(
        header.starts_with("NAME    CAPACITY   ACCESS MODES   RECLAIM POLICY   STATUS      CLAIM          STORAGECLASS   VOLUMEATTRIBUTESCLASS   REASON   AGE"),
        "{header}"
    );
    let both = ok(control.kubectl(&["get", "pv,pvc"]));
    assert!(
        both.contains("NAME                         STATUS   VOLUME   CAPACITY   ACCESS MODES   STORAGECLASS   VOLUMEATTRIBUTESCLASS   AGE"),
        "{both}"
    );
    assert_eq!(
        row(&control, "pvc", "data")[..5],
        ["data", "Bound", "small", "2Gi", "RWO"],
        "the smallest volume that fits, capacity and modes from it"
    );
    let pv_row = row(&control, "pv", "small");
    assert_eq!(
        pv_row[..6],
        ["small", "2Gi", "RWO", "Retain", "Bound", "default/data"]
    );
    assert_eq!(row(&control, "pv", "big")[4], "Available");
    let uid = jsonpath(&control, &["pvc", "data"], "{.metadata.uid}");
    assert_eq!(
        jsonpath(&control, &["pv", "small"], "{.spec.claimRef.uid}"),
        uid
    );
    let annotations = jsonpath(&control, &["pvc", "data"], "{.metadata.annotations}");
    assert!(
        annotations.contains(r#""pv.kubernetes.io/bind-completed":"yes""#)
            && annotations.contains(r#""pv.kubernetes.io/bound-by-controller":"yes""#),
        "{annotations}"
    );

    // Nothing fits 20Gi: Pending with kube's event, until a volume that fits appears.
    apply(&control, "huge", &pvc("huge", "20Gi", json!({})));
    wait_until("the FailedBinding event", &control, || {
        events_of(&control, "huge").contains(
            "FailedBinding   no persistent volumes available for this claim and no storage class is set",
        )
    });
    assert_eq!(
        jsonpath(&control, &["pvc", "huge"], "{.status.phase}"),
        "Pending"
    );
    let described = ok(control.kubectl(&["describe", "pvc", "huge"]));
    assert!(
        described.contains("persistentvolume-controller")
            && described.contains("no persistent volumes available for this claim"),
        "{described}"
    );
    apply(&control, "giant", &pv("giant", "50Gi", json!({})));
    wait_until("huge Bound to giant", &control, || {
        jsonpath(&control, &["pvc", "huge"], "{.spec.volumeName}") == "giant"
            && jsonpath(&control, &["pvc", "huge"], "{.status.phase}") == "Bound"
    });

    // A deleted claim releases its volume (Retain: it stays, Released, still naming the claim).
    ok(control.kubectl(&["delete", "pvc", "data"]));
    wait_until("small Released", &control, || {
        jsonpath(&control, &["pv", "small"], "{.status.phase}") == "Released"
    });
    assert_eq!(row(&control, "pv", "small")[5], "default/data");
}

#[test]
fn claims_and_volumes_prebound_by_name_bind_to_each_other_only() {
    let control = Control::start();
    let claim_ref = json!({"spec": {"claimRef": {"namespace": "default", "name": "wanted"}}});
    apply(&control, "reserved", &pv("reserved", "1Gi", claim_ref));
    apply(&control, "named", &pv("named", "5Gi", json!({})));
    apply(&control, "wanted", &pvc("wanted", "1Gi", json!({})));
    apply(
        &control,
        "by-name",
        &pvc("by-name", "1Gi", json!({"spec": {"volumeName": "named"}})),
    );
    for (claim, volume) in [("wanted", "reserved"), ("by-name", "named")] {
        wait_until(&format!("{claim} Bound to {volume}"), &control, || {
            jsonpath(&control, &["pvc", claim], "{.status.phase}") == "Bound"
                && jsonpath(&control, &["pvc", claim], "{.spec.volumeName}") == volume
        });
    }
    // A later claim gets neither.
    apply(&control, "other", &pvc("other", "1Gi", json!({})));
    wait_until("the FailedBinding event of other", &control, || {
        events_of(&control, "other").contains("FailedBinding")
    });
    assert_eq!(
        jsonpath(&control, &["pvc", "other"], "{.status.phase}"),
        "Pending"
    );
    let annotations = jsonpath(&control, &["pvc", "by-name"], "{.metadata.annotations}");
    assert!(
        !annotations.contains("bound-by-controller"),
        "{annotations}"
    );
}

#[test]
fn a_claim_of_a_provisioning_class_waits_for_its_provisioner_and_grows_only_if_allowed() {
    let control = Control::start();
    let class = |name: &str, expand: bool, default: bool| {
        let mut c = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": name}, "provisioner": "local.csi.bosun.io",
            "allowVolumeExpansion": expand});
        if default {
            c["metadata"]["annotations"] =
                json!({"storageclass.kubernetes.io/is-default-class": "true"});
        }
        c
    };
    // A claim made before any class is the default: no class, until one becomes the default
    // (kube's retroactive default StorageClass assignment).
    apply(&control, "early", &pvc("early", "1Gi", json!({})));
    wait_until("early's FailedBinding event", &control, || {
        events_of(&control, "early").contains("no storage class is set")
    });
    apply(&control, "fast", &class("fast", true, true));
    wait_until("early given the default class", &control, || {
        jsonpath(&control, &["pvc", "early"], "{.spec.storageClassName}") == "fast"
    });
    apply(&control, "fixed", &class("fixed", false, false));
    // No class named: the default one is filled in at creation (DefaultStorageClass).
    apply(&control, "grow", &pvc("grow", "1Gi", json!({})));
    assert_eq!(
        jsonpath(&control, &["pvc", "grow"], "{.spec.storageClassName}"),
        "fast"
    );
    let message = "ExternalProvisioning   Waiting for a volume to be created either by the external provisioner 'local.csi.bosun.io' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.";
    wait_until("the ExternalProvisioning event", &control, || {
        events_of(&control, "grow").contains(message)
    });
    let annotations = jsonpath(&control, &["pvc", "grow"], "{.metadata.annotations}");
    assert!(
        annotations.contains(r#""volume.kubernetes.io/storage-provisioner":"local.csi.bosun.io""#)
            && annotations.contains(
                r#""volume.beta.kubernetes.io/storage-provisioner":"local.csi.bosun.io""#
            ),
        "{annotations}"
    );
    // What the provisioner does: a volume pre-bound to the claim, of the claim's class.
    let provisioned = |name: &str, claim: &str, class: &str| {
        pv(
            name,
            "1Gi",
            json!({
            "metadata": {"annotations": {"pv.kubernetes.io/provisioned-by": "local.csi.bosun.io"}},
            "spec": {"storageClassName": class, "persistentVolumeReclaimPolicy": "Delete",
                     "claimRef": {"namespace": "default", "name": claim}}}),
        )
    };
    apply(&control, "pv-grow", &provisioned("pv-grow", "grow", "fast"));
    apply(
        &control,
        "stuck",
        &pvc(
            "stuck",
            "1Gi",
            json!({"spec": {"storageClassName": "fixed"}}),
        ),
    );
    apply(
        &control,
        "pv-stuck",
        &provisioned("pv-stuck", "stuck", "fixed"),
    );
    for claim in ["grow", "stuck"] {
        wait_until(&format!("{claim} Bound"), &control, || {
            jsonpath(&control, &["pvc", claim], "{.status.phase}") == "Bound"
        });
    }
    let resize = |claim: &str, size: &str| {
        let patch = json!({"spec": {"resources": {"requests": {"storage": size}}}}).to_string();
        control.kubectl(&["patch", "pvc", claim, "--type=merge", "-p", &patch])
    };
    ok(resize("grow", "2Gi"));
    assert_eq!(
        jsonpath(
            &control,
            &["pvc", "grow"],
            "{.spec.resources.requests.storage}"
        ),
        "2Gi"
    );
    let refused = resize("stuck", "2Gi");
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains(r#"persistentvolumeclaims "stuck" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"#),
        "{}",
        stderr(&refused)
    );
    let shrunk = resize("grow", "1Gi");
    assert!(
        stderr(&shrunk).contains(r#"PersistentVolumeClaim "grow" is invalid: spec.resources.requests.storage: Forbidden: field can not be less than previous value"#),
        "{}",
        stderr(&shrunk)
    );
    let patch = json!({"spec": {"accessModes": ["ReadWriteMany"]}}).to_string();
    let changed = control.kubectl(&["patch", "pvc", "grow", "--type=merge", "-p", &patch]);
    assert!(
        stderr(&changed).contains("spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"),
        "{}",
        stderr(&changed)
    );
    // Deleting a provisioned claim: its volume is Released, left (with the driver's name) for
    // the provisioner to delete.
    ok(control.kubectl(&["delete", "pvc", "grow"]));
    wait_until("pv-grow Released", &control, || {
        jsonpath(&control, &["pv", "pv-grow"], "{.status.phase}") == "Released"
    });
    let by = jsonpath(
        &control,
        &["pv", "pv-grow"],
        r"{.metadata.annotations.pv\.kubernetes\.io/provisioned-by}",
    );
    assert_eq!(by, "local.csi.bosun.io");
}

fn node(control: &Control, name: &str) {
    let object = json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}});
    apply(control, name, &object);
    let status = json!({"status": {
        "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "message": "kubelet is posting ready status"}]}});
    ok(control.kubectl(&[
        "patch",
        "node",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &status.to_string(),
    ]));
    wait_until("the node untainted", control, || {
        jsonpath(control, &["node", name], "{.spec.taints}")
            .trim()
            .is_empty()
    });
}

fn pod_with_claim(name: &str, claim: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}],
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}})
}

fn on_node(name: &str) -> Value {
    json!({"spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": [name]}]}]}}}})
}

#[test]
fn pods_go_where_their_volumes_are_and_wait_for_their_claims() {
    let control = Control::start();
    node(&control, "a");
    node(&control, "b");

    // A claim bound to a volume of node b: its pod goes to b, whatever the scores say.
    apply(&control, "pv-b", &pv("pv-b", "1Gi", on_node("b")));
    apply(&control, "on-b", &pvc("on-b", "1Gi", json!({})));
    wait_until("on-b Bound", &control, || {
        jsonpath(&control, &["pvc", "on-b"], "{.status.phase}") == "Bound"
    });
    for i in 0..3 {
        let name = format!("user-{i}");
        apply(&control, &name, &pod_with_claim(&name, "on-b"));
    }
    for i in 0..3 {
        let name = format!("user-{i}");
        wait_until(&format!("{name} on b"), &control, || {
            jsonpath(&control, &["pod", &name], "{.spec.nodeName}") == "b"
        });
    }

    // A claim that does not exist: FailedScheduling with kube-scheduler's message; the pod
    // is placed once the claim is there and bound.
    apply(&control, "lonely", &pod_with_claim("lonely", "missing"));
    let message = r#"0/2 nodes are available: persistentvolumeclaim "missing" not found. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."#;
    wait_until("FailedScheduling for the missing claim", &control, || {
        events_of(&control, "lonely").contains(message)
    });
    // An Immediate claim not bound yet holds its pod back too.
    apply(&control, "missing", &pvc("missing", "1Gi", json!({})));
    wait_until("FailedScheduling for the unbound claim", &control, || {
        events_of(&control, "lonely").contains("pod has unbound immediate PersistentVolumeClaims")
    });
    apply(&control, "pv-any", &pv("pv-any", "1Gi", json!({})));
    wait_until("lonely placed", &control, || {
        !jsonpath(&control, &["pod", "lonely"], "{.spec.nodeName}").is_empty()
    });

    // WaitForFirstConsumer: the claim waits, Pending, until a pod using it is placed; then it
    // names the pod's node and binds the volume of that node.
    let class = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "local"}, "provisioner": "kubernetes.io/no-provisioner",
        "volumeBindingMode": "WaitForFirstConsumer"});
    apply(&control, "local", &class);
    let mut local_a = pv("local-a", "1Gi", on_node("a"));
    local_a["spec"]["storageClassName"] = json!("local");
    apply(&control, "local-a", &local_a);
    apply(
        &control,
        "late",
        &pvc(
            "late",
            "1Gi",
            json!({"spec": {"storageClassName": "local"}}),
        ),
    );
    wait_until("the WaitForFirstConsumer event", &control, || {
        events_of(&control, "late").contains(
            "WaitForFirstConsumer   waiting for first consumer to be created before binding",
        )
    });
    assert_eq!(
        jsonpath(&control, &["pvc", "late"], "{.status.phase}"),
        "Pending"
    );
    apply(&control, "consumer", &pod_with_claim("consumer", "late"));
    wait_until("consumer on a, late Bound to local-a", &control, || {
        jsonpath(&control, &["pod", "consumer"], "{.spec.nodeName}") == "a"
            && jsonpath(&control, &["pvc", "late"], "{.spec.volumeName}") == "local-a"
    });
    let selected = jsonpath(
        &control,
        &["pvc", "late"],
        r"{.metadata.annotations.volume\.kubernetes\.io/selected-node}",
    );
    assert_eq!(selected, "a");

    // A WaitForFirstConsumer class with a provisioner: once its pod is placed, the claim names
    // the node and the provisioner (what the node's provisioner answers).
    let class = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "csi"}, "provisioner": "local.csi.bosun.io",
        "volumeBindingMode": "WaitForFirstConsumer"});
    apply(&control, "csi", &class);
    apply(
        &control,
        "dyn",
        &pvc("dyn", "1Gi", json!({"spec": {"storageClassName": "csi"}})),
    );
    apply(&control, "dyn-user", &pod_with_claim("dyn-user", "dyn"));
    wait_until(
        "dyn handed to its provisioner on dyn-user's node",
        &control,
        || {
            let node = jsonpath(&control, &["pod", "dyn-user"], "{.spec.nodeName}");
            let annotations = jsonpath(&control, &["pvc", "dyn"], "{.metadata.annotations}");
            !node.is_empty()
                && annotations
                    .contains(&format!(r#""volume.kubernetes.io/selected-node":"{node}""#))
                && annotations
                    .contains(r#""volume.kubernetes.io/storage-provisioner":"local.csi.bosun.io""#)
        },
    );

    // A claim in use stays (Terminating, kube's pvc-protection) while its pods run: `missing`,
    // used by `lonely` only, is deleted with `on-b` and goes once `lonely` is gone; `on-b`
    // goes once its three pods are gone, and then its volume is Released.
    ok(control.kubectl(&["delete", "pvc", "on-b", "missing", "--wait=false"]));
    wait_until("on-b Terminating", &control, || {
        row(&control, "pvc", "on-b")[1] == "Terminating"
    });
    ok(control.kubectl(&["delete", "pod", "lonely", "--grace-period=0", "--force"]));
    wait_until("missing gone", &control, || {
        !control.kubectl(&["get", "pvc", "missing"]).status.success()
    });
    assert_eq!(
        row(&control, "pvc", "on-b")[1],
        "Terminating",
        "still used by 3 pods"
    );
    assert_eq!(
        jsonpath(&control, &["pv", "pv-b"], "{.status.phase}"),
        "Bound"
    );
    let users = ["user-0", "user-1", "user-2"];
    let mut args = vec!["delete", "pod", "--grace-period=0", "--force"];
    args.extend(users);
    ok(control.kubectl(&args));
    wait_until("pv-b Released", &control, || {
        jsonpath(&control, &["pv", "pv-b"], "{.status.phase}") == "Released"
    });
}
