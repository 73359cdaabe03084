//! The mirror pod plan: (static pods, mirror pods of the watch) → creates and deletes.

use super::*;
use crate::spec::parse_pod;

fn static_pod(image: &str) -> Pod {
    parse_pod(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: etcd, namespace: kube-system, labels: {{tier: control}}}}\n\
         spec: {{containers: [{{name: c, image: {image}}}]}}"
    ))
    .expect("a static pod")
}

fn statics(pod: Pod) -> BTreeMap<String, StaticPod> {
    let s = StaticPod { pod, live: true };
    BTreeMap::from([("static-uid".to_owned(), s)])
}

fn mirror(hash: &str, deleting: bool) -> MirrorPod {
    MirrorPod {
        namespace: "kube-system".into(),
        name: "etcd-n1".into(),
        hash: hash.into(),
        deleting,
    }
}

#[test]
fn a_mirror_pod_is_bound_annotated_and_owned_by_the_node() {
    let pod = static_pod("busybox");
    let body = mirror_body(&pod, "n1", "node-uid");
    let meta = &body["metadata"];
    assert_eq!(meta["name"], "etcd-n1");
    assert_eq!(meta["namespace"], "kube-system");
    assert_eq!(meta["labels"]["tier"], "control");
    let hash = mirror_hash(&pod);
    assert_eq!(meta["annotations"][MIRROR_ANNOTATION], hash.as_str());
    assert_eq!(meta["annotations"][HASH_ANNOTATION], hash.as_str());
    assert_eq!(meta["annotations"][SOURCE_ANNOTATION], "file");
    assert_eq!(
        meta["ownerReferences"],
        json!([{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "node-uid", "controller": true}])
    );
    assert!(meta["uid"].is_null());
    assert_eq!(body["spec"]["nodeName"], "n1");
    assert_eq!(body["spec"]["containers"][0]["image"], "busybox");
    let typed: ApiPod = serde_json::from_value(body).expect("a v1 Pod");
    assert_eq!(MirrorPod::of(&typed).map(|m| m.hash), Some(hash));
}

#[test]
fn missing_mirror_pods_are_created_and_wrong_ones_deleted_first() {
    let pod = static_pod("busybox");
    let hash = mirror_hash(&pod);
    let create = vec![Action::Create {
        static_uid: "static-uid".into(),
    }];
    let delete = |uid: &str| Action::Delete {
        namespace: "kube-system".into(),
        name: "etcd-n1".into(),
        uid: uid.into(),
    };
    // None yet: created.
    assert_eq!(plan(&statics(pod.clone()), &BTreeMap::new(), "n1"), create);
    // Up to date: nothing to do, and it is where the static pod's status goes.
    let current = BTreeMap::from([("m1".to_owned(), mirror(&hash, false))]);
    assert!(plan(&statics(pod.clone()), &current, "n1").is_empty());
    let target = Target {
        namespace: "kube-system".into(),
        name: "etcd-n1".into(),
        uid: "m1".into(),
    };
    assert_eq!(
        targets(&statics(pod.clone()), &current, "n1"),
        BTreeMap::from([("static-uid".to_owned(), target)])
    );
    // While an older version of it is still stopping, its status is not the mirror pod's.
    let mut stopping = statics(pod.clone());
    stopping.values_mut().for_each(|s| s.live = false);
    assert!(plan(&stopping, &current, "n1").is_empty());
    assert!(targets(&stopping, &current, "n1").is_empty());
    // The static pod changed: the old mirror goes, the new one waits for its name.
    let changed = static_pod("nginx");
    assert_eq!(
        plan(&statics(changed.clone()), &current, "n1"),
        vec![delete("m1")]
    );
    assert!(targets(&statics(changed), &current, "n1").is_empty());
    // Deleted by a user: deleted for good (grace 0), then created again.
    let deleting = BTreeMap::from([("m1".to_owned(), mirror(&hash, true))]);
    assert_eq!(
        plan(&statics(pod.clone()), &deleting, "n1"),
        vec![delete("m1")]
    );
    assert!(targets(&statics(pod), &deleting, "n1").is_empty());
    // The static pod went away: its mirror pod goes.
    assert_eq!(plan(&BTreeMap::new(), &current, "n1"), vec![delete("m1")]);
}
