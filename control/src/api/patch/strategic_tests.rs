//! Field-by-field tests of the strategic merge patch, on the real schemas.

use serde_json::{json, Value};

use super::super::shape::Shape;
use super::*;

fn deployment() -> Shape {
    Shape::of_kind("apps", "v1", "Deployment")
}

fn smp(original: Value, patch: Value) -> Value {
    apply(original, &patch, deployment()).unwrap()
}

fn pod_spec(spec: Value) -> Value {
    json!({"spec": {"template": {"spec": spec}}})
}

#[test]
fn maps_merge_recursively_and_null_deletes() {
    let out = smp(
        json!({"metadata": {"name": "web", "labels": {"a": "1", "b": "2"}}, "spec": {"replicas": 1}}),
        json!({"metadata": {"labels": {"a": null, "c": "3"}}, "spec": {"replicas": 3, "paused": null}}),
    );
    assert_eq!(
        out,
        json!({"metadata": {"name": "web", "labels": {"b": "2", "c": "3"}}, "spec": {"replicas": 3}})
    );
}

#[test]
fn containers_merge_by_name_and_the_other_container_is_untouched() {
    let out = smp(
        pod_spec(json!({"containers": [
            {"name": "c1", "image": "a:1", "args": ["x"]},
            {"name": "c2", "image": "b:1"}]})),
        pod_spec(json!({"containers": [{"name": "c1", "image": "a:2"}]})),
    );
    assert_eq!(
        out,
        pod_spec(json!({"containers": [
            {"name": "c1", "image": "a:2", "args": ["x"]},
            {"name": "c2", "image": "b:1"}]}))
    );
}

#[test]
fn new_elements_come_first_without_set_element_order_and_in_order_with_it() {
    let original = pod_spec(json!({"containers": [{"name": "a"}, {"name": "b"}]}));
    let out = smp(
        original.clone(),
        pod_spec(json!({"containers": [{"name": "n"}]})),
    );
    assert_eq!(
        out,
        pod_spec(json!({"containers": [{"name": "n"}, {"name": "a"}, {"name": "b"}]}))
    );
    let out = smp(
        original,
        pod_spec(json!({
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}, {"name": "n"}],
            "containers": [{"name": "n"}]})),
    );
    assert_eq!(
        out,
        pod_spec(json!({"containers": [{"name": "a"}, {"name": "b"}, {"name": "n"}]}))
    );
}

#[test]
fn set_element_order_reorders_and_weaves_server_only_elements_in_by_server_place() {
    let out = smp(
        pod_spec(
            json!({"containers": [{"name": "a"}, {"name": "s"}, {"name": "b"}, {"name": "c"}]}),
        ),
        pod_spec(
            json!({"$setElementOrder/containers": [{"name": "c"}, {"name": "b"}, {"name": "a"}]}),
        ),
    );
    let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    // "s" was before "b" and "c" on the server: it stays before the first of them it meets.
    assert_eq!(names, ["s", "c", "b", "a"]);
}

#[test]
fn nested_lists_merge_by_their_own_keys() {
    let out = smp(
        pod_spec(json!({"containers": [{"name": "c1",
            "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}],
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "volumeMounts": [{"mountPath": "/data", "name": "d"}]}]})),
        pod_spec(json!({"containers": [{"name": "c1",
            "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 8080}],
            "env": [{"name": "B", "value": "3"}, {"name": "A", "$patch": "delete"}],
            "volumeMounts": [{"mountPath": "/data", "readOnly": true}]}]})),
    );
    let c = &out["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["ports"],
        json!([{"containerPort": 80, "name": "http", "protocol": "TCP"}, {"containerPort": 8080}, {"containerPort": 443}])
    );
    assert_eq!(c["env"], json!([{"name": "B", "value": "3"}]));
    assert_eq!(
        c["volumeMounts"],
        json!([{"mountPath": "/data", "name": "d", "readOnly": true}])
    );
}

#[test]
fn lists_without_a_merge_strategy_are_replaced_whole() {
    let out = smp(
        pod_spec(
            json!({"tolerations": [{"key": "a", "operator": "Exists"}, {"key": "b"}],
                        "containers": [{"name": "c", "args": ["1", "2"]}]}),
        ),
        pod_spec(json!({"tolerations": [{"key": "c"}],
                        "containers": [{"name": "c", "args": ["3"]}]})),
    );
    assert_eq!(
        out,
        pod_spec(
            json!({"tolerations": [{"key": "c"}], "containers": [{"name": "c", "args": ["3"]}]})
        )
    );
}

#[test]
fn finalizers_are_a_set_with_delete_from_primitive_list() {
    let out = smp(
        json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
        json!({"metadata": {"finalizers": ["d", "a"], "$deleteFromPrimitiveList/finalizers": ["b"]}}),
    );
    assert_eq!(out, json!({"metadata": {"finalizers": ["d", "a", "c"]}}));
    let out = smp(
        json!({"metadata": {"finalizers": ["a", "b"]}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"],
                            "$setElementOrder/finalizers": ["b"]}}),
    );
    assert_eq!(out, json!({"metadata": {"finalizers": ["b"]}}));
    let out = smp(
        json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
        json!({"metadata": {"$setElementOrder/finalizers": ["c", "b", "a"]}}),
    );
    assert_eq!(out, json!({"metadata": {"finalizers": ["c", "b", "a"]}}));
}

#[test]
fn owner_references_merge_by_uid() {
    let out = smp(
        json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}}),
        json!({"metadata": {"ownerReferences": [{"uid": "1", "controller": true}, {"uid": "2", "name": "b"}]}}),
    );
    assert_eq!(
        out["metadata"]["ownerReferences"],
        json!([{"uid": "1", "name": "a", "controller": true}, {"uid": "2", "name": "b"}])
    );
}

#[test]
fn patch_replace_replaces_a_list_or_a_map() {
    let out = smp(
        pod_spec(json!({"containers": [{"name": "a", "image": "x"}, {"name": "b"}]})),
        pod_spec(json!({"containers": [{"name": "c"}, {"$patch": "replace"}]})),
    );
    assert_eq!(out, pod_spec(json!({"containers": [{"name": "c"}]})));
    let out = smp(
        json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
        json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}}),
    );
    assert_eq!(out, json!({"metadata": {"labels": {"c": "3"}}}));
}

#[test]
fn patch_delete_removes_a_map_and_list_elements_by_key() {
    let out = smp(
        json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
        json!({"spec": {"strategy": {"rollingUpdate": {"$patch": "delete"}}}}),
    );
    assert_eq!(
        out,
        json!({"spec": {"strategy": {"type": "RollingUpdate"}}})
    );
    let out = smp(
        pod_spec(json!({"containers": [{"name": "c1"}, {"name": "c2"}]})),
        pod_spec(json!({"containers": [{"name": "c2", "$patch": "delete"}]})),
    );
    assert_eq!(out, pod_spec(json!({"containers": [{"name": "c1"}]})));
}

#[test]
fn patch_merge_on_a_map_merges() {
    let out = smp(
        json!({"metadata": {"labels": {"a": "1"}}}),
        json!({"metadata": {"labels": {"$patch": "merge", "b": "2"}}}),
    );
    assert_eq!(out, json!({"metadata": {"labels": {"a": "1", "b": "2"}}}));
}

#[test]
fn retain_keys_drops_the_unlisted_fields_of_a_union() {
    let out = smp(
        json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
    );
    assert_eq!(out, json!({"spec": {"strategy": {"type": "Recreate"}}}));
    let out = smp(
        pod_spec(json!({"volumes": [{"name": "v", "emptyDir": {}}]})),
        pod_spec(
            json!({"volumes": [{"name": "v", "$retainKeys": ["name", "configMap"], "configMap": {"name": "cm"}}]}),
        ),
    );
    assert_eq!(
        out,
        pod_spec(json!({"volumes": [{"name": "v", "configMap": {"name": "cm"}}]}))
    );
    let err = apply(
        json!({"spec": {"strategy": {}}}),
        &json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
        deployment(),
    )
    .unwrap_err();
    assert!(err.message.contains("rollingUpdate"), "{err}");
}

#[test]
fn new_values_are_cleaned_of_nulls_and_directives() {
    let out = smp(
        json!({"metadata": {"name": "web"}}),
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": null, "env": [{"name": "X", "value": "1"}, {"name": "Y", "$patch": "delete"}]}]}},
            "strategy": {"rollingUpdate": {"$patch": "delete"}}}}),
    );
    assert_eq!(
        out,
        json!({"metadata": {"name": "web"}, "spec": {
            "template": {"spec": {"containers": [{"name": "c", "env": [{"name": "X", "value": "1"}]}]}},
            "strategy": {}}})
    );
}

#[test]
fn unknown_and_misplaced_directives_are_errors_naming_the_path() {
    let cases = [
        json!({"metadata": {"$frobnicate": 1}}),
        json!({"metadata": {"labels": {"$patch": "explode"}}}),
        pod_spec(json!({"containers": [{"name": "c", "$patch": "shred"}]})),
        pod_spec(json!({"containers": [{"$patch": "merge"}]})),
        pod_spec(json!({"containers": [{"image": "no-name"}]})),
        pod_spec(json!({"containers": [{"$patch": "delete"}]})),
        pod_spec(json!({"containers": ["not-an-object", {"name": "c"}]})),
        pod_spec(json!({"$deleteFromPrimitiveList/containers": [{"name": "c"}]})),
        pod_spec(json!({"$setElementOrder/containers": "c"})),
        pod_spec(json!({"$setElementOrder/containers": [{"image": "x"}]})),
        json!({"spec": {"strategy": {"$retainKeys": "type"}}}),
        json!({"$patch": "delete"}),
    ];
    let original = pod_spec(json!({"containers": [{"name": "c"}]}));
    for patch in cases {
        let err = apply(original.clone(), &patch, deployment()).unwrap_err();
        assert!(!err.path.is_empty(), "{patch}: {err}");
    }
    let err = apply(original.clone(), &json!([1]), deployment()).unwrap_err();
    assert!(err.message.contains("JSON object"), "{err}");
    let err = apply(
        original,
        &pod_spec(json!({"containers": [{"name": "c", "$patch": "shred"}]})),
        deployment(),
    )
    .unwrap_err();
    assert_eq!(err.path, "spec.template.spec.containers");
    assert!(err.message.contains("unknown directive $patch"), "{err}");
}

#[test]
fn type_changes_and_unknown_fields_take_the_patch_value() {
    let out = smp(
        json!({"spec": {"replicas": {"odd": true}, "x": [1, 2]}}),
        json!({"spec": {"replicas": 2, "x": [3]}}),
    );
    assert_eq!(out, json!({"spec": {"replicas": 2, "x": [3]}}));
}

#[test]
fn the_scale_patches_with_its_own_schema() {
    let out = apply(
        json!({"spec": {"replicas": 1}, "status": {"replicas": 1}}),
        &json!({"spec": {"replicas": 4}}),
        Shape::named(crate::openapi::schemas::SCALE),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"spec": {"replicas": 4}, "status": {"replicas": 1}})
    );
}

#[test]
fn large_lists_merge_in_linear_time() {
    let original: Vec<Value> = (0..20000)
        .map(|i| json!({"name": format!("e{i}")}))
        .collect();
    let patch: Vec<Value> = (0..20000)
        .map(|i| json!({"name": format!("e{i}"), "value": "v"}))
        .collect();
    let started = std::time::Instant::now();
    let out = smp(
        pod_spec(json!({"containers": [{"name": "c", "env": original}]})),
        pod_spec(json!({"containers": [{"name": "c", "env": patch}]})),
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["env"][19999]["value"],
        "v"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

/// Sets `value` at the dotted `path` of `patch` (creating maps), `[]` wrapping a one-element
/// list of containers.
fn put(path: &[&str], value: Value) -> Value {
    match path.split_first() {
        None => value,
        Some((&"[]", rest)) => {
            let mut element = json!({"name": "c1"});
            if let (Some(e), Value::Object(inner)) = (element.as_object_mut(), put(rest, value)) {
                e.extend(inner);
            }
            json!([element])
        }
        Some((key, rest)) => {
            let mut map = serde_json::Map::new();
            map.insert((*key).to_owned(), put(rest, value));
            Value::Object(map)
        }
    }
}

#[test]
fn malformed_patches_anywhere_are_errors_or_merges_never_panics() {
    let original = json!({
        "metadata": {"name": "web", "labels": {"a": "1"}, "finalizers": ["f"],
                     "ownerReferences": [{"uid": "u", "name": "o"}]},
        "spec": {"replicas": 2, "strategy": {"type": "Recreate"}, "template": {"spec": {
            "containers": [{"name": "c1", "ports": [{"containerPort": 80}], "env": [{"name": "A"}]},
                           "stray", {"no": "name"}],
            "volumes": [{"name": "v", "emptyDir": {}}],
            "tolerations": [{"key": "k"}]}}}});
    let values = [
        json!(null),
        json!(1),
        json!("s"),
        json!([]),
        json!([1, "x"]),
        json!([null]),
        json!([[]]),
        json!([{}]),
        json!([{"$patch": "delete"}]),
        json!([{"$patch": "replace"}, 3]),
        json!([{"name": "c1", "$patch": 5}]),
        json!({}),
        json!({"$patch": 5}),
        json!({"$patch": "replace"}),
        json!({"$retainKeys": [1]}),
        json!({"$retainKeys": ["x"], "y": 1}),
        json!({"$setElementOrder/containers": [1, {"name": 2}]}),
        json!({"$setElementOrder/finalizers": [{"a": 1}]}),
        json!({"$deleteFromPrimitiveList/finalizers": [{"a": 1}]}),
        json!({"$deleteFromPrimitiveList/containers": ["c1"]}),
        json!({"$setElementOrder/nothing": []}),
    ];
    let paths: [&[&str]; 14] = [
        &[],
        &["metadata"],
        &["metadata", "labels"],
        &["metadata", "finalizers"],
        &["metadata", "ownerReferences"],
        &["spec"],
        &["spec", "strategy"],
        &["spec", "template", "spec"],
        &["spec", "template", "spec", "containers"],
        &["spec", "template", "spec", "containers", "[]", "ports"],
        &["spec", "template", "spec", "containers", "[]", "env"],
        &["spec", "template", "spec", "containers", "[]"],
        &["spec", "template", "spec", "volumes"],
        &["spec", "template", "spec", "tolerations"],
    ];
    let mut outcomes = (0, 0);
    for path in paths {
        for value in &values {
            match apply(original.clone(), &put(path, value.clone()), deployment()) {
                Ok(_) => outcomes.0 += 1,
                Err(e) => {
                    assert!(!e.message.is_empty());
                    outcomes.1 += 1;
                }
            }
        }
    }
    assert!(outcomes.0 > 0 && outcomes.1 > 0, "{outcomes:?}");
}
