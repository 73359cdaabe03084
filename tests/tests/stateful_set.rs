//! A StatefulSet of 3 with a volumeClaimTemplate on `bosun-csi-local`, end to end with the real
//! kubectl and real mounts: the pods start in order (OrderedReady: web-N+1 is made only once
//! web-N is Ready), each writes its own name to its own claim; web-0 deleted is made again
//! (same name, new uid: the scheduler must not take it for the pod it placed before) and reads
//! its file; scaled 3→1 the claims of web-1 and web-2 stay Bound, and scaled back to 3 the new
//! web-1 and web-2 reattach those same claims (same uids) and read what they wrote before.

use std::collections::BTreeMap;
use std::time::Duration;

use bosun_e2e::{wait_logged, wait_node_ready, Control, Node};
use serde_json::Value;

const LOCAL_CLASS: &str = r#"apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local}
provisioner: local.csi.bosun.dev
volumeBindingMode: WaitForFirstConsumer
"#;

const WEB: &str = r#"apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: bosun.test/busybox:1
        volumeMounts:
        - {name: data, mountPath: /data}
        command: [sh, -c, 'if [ -f /data/note ]; then echo "read $(cat /data/note)"; else echo "by $(hostname)" > /data/note; echo wrote; fi; sleep 1000']
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      storageClassName: local
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 16Mi}}
"#;

const PODS: [&str; 3] = ["web-0", "web-1", "web-2"];

/// The web pods by name, as one list read.
fn web_pods(control: &Control) -> BTreeMap<String, Value> {
    let list = control
        .get_json(&["pods", "-l", "app=web"])
        .unwrap_or_default();
    let items = list["items"].as_array().cloned().unwrap_or_default();
    items
        .into_iter()
        .filter_map(|p| Some((p["metadata"]["name"].as_str()?.to_owned(), p)))
        .collect()
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn uid(control: &Control, kind: &str, name: &str) -> String {
    control.get_json(&[kind, name]).unwrap_or_default()["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_stateful_set_keeps_each_pods_claim_across_deletion_and_scaling() {
    let control = Control::start();
    let mut node = Node::new(97, &control);
    node.start_csi_driver();
    node.start_agent();
    wait_node_ready(&control, &node);
    control.apply(LOCAL_CLASS);
    control.apply(WEB);
    // OrderedReady, seen in every list read while the set comes up: a pod exists only when
    // the one before it is Ready.
    let mut out_of_order = Vec::new();
    wait_logged(
        "web-0, web-1 and web-2 wrote",
        &control,
        &node,
        Duration::from_secs(120),
        || {
            let pods = web_pods(&control);
            for pair in PODS.windows(2) {
                if pods.contains_key(pair[1]) && !pods.get(pair[0]).is_some_and(is_ready) {
                    out_of_order.push(format!("{} exists while {} is not Ready", pair[1], pair[0]));
                }
            }
            PODS.iter().all(|pod| {
                pods.get(*pod).is_some_and(is_ready) && node.logs("default", pod).contains("wrote")
            })
        },
    );
    assert!(out_of_order.is_empty(), "{out_of_order:?}");
    let claims: Vec<String> = PODS.iter().map(|p| format!("data-{p}")).collect();
    let claim_uids: Vec<String> = claims.iter().map(|c| uid(&control, "pvc", c)).collect();
    for claim in &claims {
        assert_eq!(control.phase("pvc", claim), "Bound", "{claim}");
    }

    let first = uid(&control, "pod", "web-0");
    control.kubectl_ok(&["delete", "pod", "web-0", "--wait=true"]);
    wait_logged(
        "the new web-0 read its note",
        &control,
        &node,
        Duration::from_secs(90),
        || {
            control.container_running("web-0")
                && uid(&control, "pod", "web-0") != first
                && node.logs("default", "web-0").contains("read by web-0")
        },
    );

    control.kubectl_ok(&["scale", "statefulset", "web", "--replicas=1"]);
    wait_logged(
        "web-1 and web-2 gone",
        &control,
        &node,
        Duration::from_secs(60),
        || {
            let pods = web_pods(&control);
            pods.len() == 1 && pods.contains_key("web-0")
        },
    );
    for claim in &claims[1..] {
        assert_eq!(control.phase("pvc", claim), "Bound", "{claim} after 3→1");
    }

    control.kubectl_ok(&["scale", "statefulset", "web", "--replicas=3"]);
    wait_logged(
        "web-1 and web-2 made again read their notes",
        &control,
        &node,
        Duration::from_secs(120),
        || {
            PODS[1..].iter().all(|pod| {
                control.container_running(pod)
                    && node
                        .logs("default", pod)
                        .contains(&format!("read by {pod}"))
            })
        },
    );
    let after: Vec<String> = claims.iter().map(|c| uid(&control, "pvc", c)).collect();
    assert_eq!(after, claim_uids, "the same claims after 3→1→3");
    control.kubectl_ok(&["delete", "statefulset", "web", "--wait=true"]);
    for claim in &claims {
        control.kubectl_ok(&["delete", "pvc", claim, "--wait=false"]);
    }
}
