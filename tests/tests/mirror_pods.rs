//! Static pods beside the API, like kubelet's: a static pod of the manifest directory shows in
//! `kubectl get pods` as a mirror pod `<name>-<node>`, Running, annotated and owned by its
//! Node; a ReplicaSet selecting it does not adopt it; `kubectl delete pod` of the mirror pod
//! brings it back without restarting the container (static pods are not deleted through the
//! API); editing the file replaces the mirror pod; when the Node is deleted the garbage
//! collector deletes it and the agent mirrors the pod again under the re-registered Node;
//! removing the file removes it. A node's credentials create only mirror pods bound to and
//! owned by that node (NodeRestriction, refused in kube-apiserver's words), and no update
//! adds, changes or removes the mirror annotation.

use std::path::Path;
use std::time::Duration;

use bosun_e2e::{stderr, wait_until, Control, Node};
use serde_json::Value;

const MIRROR: &str = "kubernetes.io/config.mirror";

/// A static pod with the usual fields (ports, env, resources, a probe), so its mirror pod
/// shows the agent's serialization is a valid v1 Pod.
fn static_pod(command: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: mirrored, labels: {{app: mirrored}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: bosun.test/busybox:1
    command: [{command}]
    env: [{{name: MODE, value: static}}]
    ports: [{{containerPort: 8080, name: http}}]
    resources: {{requests: {{cpu: 10m, memory: 16Mi}}, limits: {{memory: 32Mi}}}}
    readinessProbe:
      exec: {{command: ["true"]}}
      periodSeconds: 1
"#
    )
}

fn context(control: &Control, node: &Node) -> String {
    let log = control.log();
    let tail: Vec<&str> = log.lines().rev().take(40).collect();
    format!(
        "\n--- agent log ---\n{}\n--- control log (tail) ---\n{}",
        node.log(),
        tail.join("\n")
    )
}

/// Waits for `what`, panicking with both logs.
fn wait(control: &Control, node: &Node, what: &str, within: u64, check: impl FnMut() -> bool) {
    let run = std::panic::AssertUnwindSafe(|| wait_until(what, Duration::from_secs(within), check));
    if std::panic::catch_unwind(run).is_err() {
        panic!("{what}: not within {within}s{}", context(control, node));
    }
}

/// The mirror pod when it is Running with a running container.
fn running_mirror(control: &Control, name: &str) -> Option<Value> {
    let pod = control.get_json(&["pod", name])?;
    let running = pod["status"]["phase"] == "Running"
        && pod["status"]["containerStatuses"][0]["state"]["running"].is_object()
        && pod["metadata"]["deletionTimestamp"].is_null();
    running.then_some(pod)
}

fn pid(node: &Node) -> Value {
    let pod = node.ps_pod("mirrored").expect("the static pod on the node");
    pod["containerStatuses"][0]["pid"].clone()
}

#[test]
fn a_static_pod_is_mirrored_in_the_api_and_survives_deletes_of_its_mirror() {
    let control = Control::start();
    let mut node = Node::new(64, &control);
    let file = node.manifests.join("mirrored.yaml");
    std::fs::write(&file, static_pod("sleep, '3600'")).expect("write the static pod");
    node.start_agent();
    let name = format!("mirrored-{}", node.name);

    // The mirror pod: bound to the node, annotated, owned by the Node, Running.
    wait(&control, &node, "the mirror pod Running", 30, || {
        running_mirror(&control, &name).is_some()
    });
    wait(&control, &node, "the mirror pod Ready", 20, || {
        running_mirror(&control, &name)
            .is_some_and(|p| p["status"]["containerStatuses"][0]["ready"] == true)
    });
    let first = running_mirror(&control, &name).expect("the mirror pod");
    let meta = &first["metadata"];
    let annotations = &meta["annotations"];
    let hash = annotations[MIRROR].as_str().expect("the mirror annotation");
    assert!(!hash.is_empty(), "{first:#}");
    assert_eq!(annotations["kubernetes.io/config.source"], "file");
    assert_eq!(annotations["kubernetes.io/config.hash"], hash);
    assert_eq!(meta["labels"]["app"], "mirrored");
    assert_eq!(first["spec"]["nodeName"], node.name.as_str());
    let node_object = control.get_json(&["node", &node.name]).expect("the Node");
    let owners = meta["ownerReferences"].as_array().expect("owners");
    assert_eq!(owners.len(), 1, "{first:#}");
    assert_eq!(owners[0]["apiVersion"], "v1");
    assert_eq!(owners[0]["kind"], "Node");
    assert_eq!(owners[0]["name"], node.name.as_str());
    assert_eq!(owners[0]["uid"], node_object["metadata"]["uid"]);
    assert_eq!(owners[0]["controller"], true);
    let table = control.kubectl_ok(&["get", "pods"]);
    let row = table.lines().find(|l| l.starts_with(&name)).unwrap_or("");
    assert!(row.contains("1/1") && row.contains("Running"), "{table}");
    // Exactly one pod runs for it on the node: the mirror pod is not run as an API pod.
    let on_node = node.ps();
    let instances = on_node
        .iter()
        .filter(|p| {
            p["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("mirrored"))
        })
        .count();
    assert_eq!(instances, 1, "{on_node:#?}");

    // A ReplicaSet selecting its labels leaves it alone (its controller is the Node).
    control.apply(
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: selector}\nspec:\n  \
         replicas: 0\n  selector: {matchLabels: {app: mirrored}}\n  template:\n    \
         metadata: {labels: {app: mirrored}}\n    \
         spec: {containers: [{name: c, image: bosun.test/busybox:1}]}\n",
    );
    wait(&control, &node, "the ReplicaSet synced", 20, || {
        control
            .get_json(&["rs", "selector"])
            .is_some_and(|rs| rs["status"]["observedGeneration"] == 1)
    });
    let rs = control
        .get_json(&["rs", "selector"])
        .expect("the ReplicaSet");
    assert_eq!(rs["status"]["replicas"], 0, "{rs:#}");
    let mirror = control.get_json(&["pod", &name]).expect("the mirror pod");
    assert_eq!(
        mirror["metadata"]["ownerReferences"],
        meta["ownerReferences"]
    );
    control.kubectl_ok(&["delete", "rs", "selector"]);

    // Deleting the mirror pod through the API does not stop the static pod: the mirror pod
    // comes back (another uid), showing the same container, never restarted.
    let pid_before = pid(&node);
    let container = first["status"]["containerStatuses"][0].clone();
    control.kubectl_ok(&["delete", "pod", &name, "--timeout=20s"]);
    wait(&control, &node, "the mirror pod back", 20, || {
        running_mirror(&control, &name).is_some_and(|p| p["metadata"]["uid"] != meta["uid"])
    });
    let again = running_mirror(&control, &name).expect("the mirror pod again");
    let same = &again["status"]["containerStatuses"][0];
    assert_eq!(same["containerID"], container["containerID"], "{again:#}");
    assert_eq!(same["restartCount"], 0, "{again:#}");
    assert_eq!(
        same["state"]["running"]["startedAt"], container["state"]["running"]["startedAt"],
        "{again:#}"
    );
    assert_eq!(pid(&node), pid_before, "the container was not restarted");

    // Editing the static pod replaces the mirror pod with one of the new spec.
    std::fs::write(&file, static_pod("sleep, '3601'")).expect("edit the static pod");
    wait(
        &control,
        &node,
        "the mirror pod of the edited file",
        30,
        || {
            running_mirror(&control, &name).is_some_and(|p| {
                p["metadata"]["annotations"][MIRROR] != hash
                    && p["spec"]["containers"][0]["command"][1] == "3601"
            })
        },
    );
    let edited = running_mirror(&control, &name).expect("the replaced mirror pod");
    assert_ne!(edited["metadata"]["uid"], again["metadata"]["uid"]);
    // It shows the new container, not the old one that was stopping meanwhile.
    let started =
        |p: &Value| p["status"]["containerStatuses"][0]["state"]["running"]["startedAt"].clone();
    assert_ne!(started(&edited), started(&again), "{edited:#}");
    assert_ne!(
        pid(&node),
        pid_before,
        "the edited static pod was restarted"
    );

    // The Node deleted: the garbage collector deletes its mirror pod with it; the agent
    // registers the Node again and mirrors the static pod under the new Node, which kept
    // running.
    let pid_edited = pid(&node);
    let old_node_uid = node_object["metadata"]["uid"].clone();
    control.kubectl_ok(&["delete", "node", &node.name]);
    wait(
        &control,
        &node,
        "the mirror pod owned by the new Node",
        45,
        || {
            let new_uid = control
                .get_json(&["node", &node.name])
                .map(|n| n["metadata"]["uid"].clone())
                .filter(|uid| *uid != old_node_uid);
            running_mirror(&control, &name).is_some_and(|p| {
                new_uid.is_some_and(|uid| p["metadata"]["ownerReferences"][0]["uid"] == uid)
            })
        },
    );
    assert_eq!(pid(&node), pid_edited, "the static pod was not restarted");

    // Removing the file removes the static pod and its mirror pod.
    std::fs::remove_file(&file).expect("remove the static pod");
    wait(&control, &node, "the mirror pod gone", 20, || {
        let out = control.kubectl(&["get", "pod", &name]);
        !out.status.success() && stderr(&out).contains("NotFound")
    });
    wait(
        &control,
        &node,
        "the static pod gone from the node",
        20,
        || node.ps_pod("mirrored").is_none(),
    );
}

/// `kubectl create -f` of `pod` with the kubeconfig `kubeconfig`: its stderr when refused.
fn create_as(control: &Control, kubeconfig: &Path, pod: &Value) -> Result<(), String> {
    let file = tempfile_path(pod);
    let kc = kubeconfig.to_string_lossy();
    let path = file.to_string_lossy();
    let out = control.kubectl(&["--kubeconfig", &kc, "create", "-f", &path]);
    let _ = std::fs::remove_file(&file);
    if out.status.success() {
        Ok(())
    } else {
        Err(stderr(&out))
    }
}

fn tempfile_path(pod: &Value) -> std::path::PathBuf {
    let name = bosun_test_support::unique("mirror-pod-");
    let path = std::env::temp_dir().join(format!("{name}.json"));
    std::fs::write(&path, pod.to_string()).expect("write the pod");
    path
}

#[test]
fn a_node_creates_only_mirror_pods_bound_to_and_owned_by_itself() {
    let control = Control::start();
    let node = "mirror-authz";
    let kubeconfig = control.node_kubeconfig(node);
    control.apply(&format!(
        "apiVersion: v1\nkind: Node\nmetadata: {{name: {node}}}\n"
    ));
    let uid = control.get_json(&["node", node]).expect("the Node")["metadata"]["uid"].clone();
    let pod = |name: &str, bound_to: &str, mirror: bool| {
        let mut p = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default",
                "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node,
                    "uid": uid, "controller": true}]},
            "spec": {"nodeName": bound_to,
                "containers": [{"name": "c", "image": "bosun.test/busybox:1"}]}});
        if mirror {
            p["metadata"]["annotations"] = serde_json::json!({MIRROR: "h"});
        }
        p
    };
    let refused = |pod: &Value, why: &str| {
        let name = pod["metadata"]["name"].as_str().unwrap_or("");
        let err = create_as(&control, &kubeconfig, pod).expect_err("refused");
        assert!(err.contains("(Forbidden): error when creating"), "{err}");
        let expected = format!("pods \"{name}\" is forbidden: {why}");
        assert!(err.contains(&expected), "{err}\nexpected: {expected}");
    };
    // Not a mirror pod.
    refused(
        &pod("plain", node, false),
        &format!("pod does not have \"{MIRROR}\" annotation, node \"{node}\" can only create mirror pods"),
    );
    // A mirror pod bound to another node.
    refused(
        &pod("elsewhere", "other-node", true),
        &format!("node \"{node}\" can only create pods with spec.nodeName set to itself"),
    );
    // A mirror pod naming a Secret (the node could then read it).
    let mut with_secret = pod("secretive", node, true);
    with_secret["spec"]["volumes"] =
        serde_json::json!([{"name": "s", "secret": {"secretName": "s"}}]);
    refused(
        &with_secret,
        &format!("node \"{node}\" can not create pods that reference secrets"),
    );
    // Its own mirror pod: created, and the node may delete it.
    create_as(&control, &kubeconfig, &pod("own", node, true)).expect("its own mirror pod");
    let kc = kubeconfig.to_string_lossy();
    let out = control.kubectl(&[
        "--kubeconfig",
        &kc,
        "delete",
        "pod",
        "own",
        "--force",
        "--grace-period=0",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_pod_cannot_be_turned_into_a_mirror_pod_or_out_of_one() {
    let control = Control::start();
    control.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: plain}\nspec:\n  nodeName: nowhere\n  \
         containers: [{name: c, image: bosun.test/busybox:1}]\n",
    );
    let out = control.kubectl(&["annotate", "pod", "plain", &format!("{MIRROR}=h")]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "Pod \"plain\" is invalid: metadata.annotations[{MIRROR}]: Forbidden: may not add mirror pod annotation"
        )),
        "{err}"
    );
    // Other annotations change freely.
    control.kubectl_ok(&["annotate", "pod", "plain", "note=x"]);
}
