//! Field sets of real kinds, their `fieldsV1` form, and the bookkeeping of updates.

use serde_json::json;

use super::fields::{self, Fields};
use super::managed;
use crate::api::patch::shape::Shape;
use crate::kinds;

fn deployment() -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "u", "resourceVersion": "9",
            "labels": {"app": "web"}, "finalizers": ["a/b"]},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [
                    {"name": "web", "image": "nginx", "args": ["-g", "x"],
                     "ports": [{"containerPort": 80}]},
                ], "volumes": [{"name": "v", "emptyDir": {}}]},
            },
        },
        "status": {"replicas": 2},
    })
}

fn path(elements: &[&str]) -> fields::Path {
    elements.iter().map(|e| (*e).to_owned()).collect()
}

fn deployments() -> (&'static kinds::Resource, Shape) {
    let r = kinds::find("apps", "v1", "deployments").unwrap();
    (r, Shape::of_kind("apps", "v1", "Deployment"))
}

#[test]
fn a_deployment_sets_leaves_maps_and_keyed_elements_but_no_server_metadata() {
    let (_, shape) = deployments();
    let set = fields::of_object(&deployment(), shape, true);
    let containers = ["f:spec", "f:template", "f:spec", "f:containers"];
    let web = r#"k:{"name":"web"}"#;
    for expected in [
        path(&["f:metadata", "f:labels"]),
        path(&["f:metadata", "f:labels", "f:app"]),
        path(&["f:metadata", "f:finalizers", r#"v:"a/b""#]),
        path(&["f:spec", "f:replicas"]),
        path(&["f:spec", "f:selector", "f:matchLabels", "f:app"]),
        path(&[
            containers[0],
            containers[1],
            containers[2],
            containers[3],
            web,
        ]),
        path(&[
            containers[0],
            containers[1],
            containers[2],
            containers[3],
            web,
            "f:image",
        ]),
        path(&[
            containers[0],
            containers[1],
            containers[2],
            containers[3],
            web,
            "f:args",
        ]),
        path(&[
            containers[0],
            containers[1],
            containers[2],
            containers[3],
            web,
            "f:ports",
            r#"k:{"containerPort":80}"#,
            "f:containerPort",
        ]),
        path(&[
            "f:spec",
            "f:template",
            "f:spec",
            "f:volumes",
            r#"k:{"name":"v"}"#,
            "f:emptyDir",
        ]),
    ] {
        assert!(
            set.contains(&expected),
            "{expected:?} missing from {set:#?}"
        );
    }
    for absent in [
        path(&["f:metadata", "f:name"]),
        path(&["f:metadata", "f:uid"]),
        path(&["f:apiVersion"]),
        path(&["f:status", "f:replicas"]),
        // A struct is not a member itself, only its fields are.
        path(&["f:spec"]),
    ] {
        assert!(!set.contains(&absent), "{absent:?} in the set");
    }
}

#[test]
fn fields_v1_round_trips_and_marks_members_with_children() {
    let (_, shape) = deployments();
    let set = fields::of_object(&deployment(), shape, true);
    let v1 = fields::to_fields_v1(&set);
    assert_eq!(v1["f:metadata"]["f:labels"], json!({".": {}, "f:app": {}}));
    assert_eq!(v1["f:spec"]["f:replicas"], json!({}));
    assert!(v1["f:spec"].get(".").is_none());
    assert_eq!(fields::from_fields_v1(&v1), Some(set));
    assert_eq!(fields::from_fields_v1(&json!({"x:bad": {}})), None);
}

#[test]
fn paths_find_and_remove_keyed_and_set_elements() {
    let mut d = deployment();
    let image = path(&[
        "f:spec",
        "f:template",
        "f:spec",
        "f:containers",
        r#"k:{"name":"web"}"#,
        "f:image",
    ]);
    assert_eq!(fields::value_at(&d, &image), Some(&json!("nginx")));
    assert_eq!(
        fields::display(&image),
        r#".spec.template.spec.containers[name="web"].image"#
    );
    let finalizer = path(&["f:metadata", "f:finalizers", r#"v:"a/b""#]);
    assert!(fields::remove_at(&mut d, &finalizer));
    assert_eq!(d["metadata"]["finalizers"], json!([]));
    let container = &image[..5];
    assert!(fields::remove_at(&mut d, container));
    assert_eq!(d["spec"]["template"]["spec"]["containers"], json!([]));
    assert!(!fields::remove_at(&mut d, &image));
    assert!(fields::covers(
        &Fields::from([image.clone()]),
        &image[..3].to_vec()
    ));
}

#[test]
fn an_update_takes_the_fields_it_changes_from_their_managers() {
    let (r, shape) = deployments();
    let mut old = deployment();
    let mut applier = managed::Entry::new("kubectl", "Apply", r);
    applier.fields = fields::of_object(&old, shape, true);
    managed::set_entries(&mut old, &[applier]);
    let mut new = old.clone();
    new["spec"]["replicas"] = json!(5);
    new["metadata"]["labels"]["extra"] = json!("1");
    managed::track_update(&old, &mut new, "kubectl-scale", "", r);
    let entries = managed::entries(&new);
    assert_eq!(entries.len(), 2, "{:#?}", new["metadata"]["managedFields"]);
    let replicas = path(&["f:spec", "f:replicas"]);
    assert!(!entries[0].fields.contains(&replicas));
    assert!(entries[0]
        .fields
        .contains(&path(&["f:metadata", "f:labels", "f:app"])));
    assert!(entries[1].is("kubectl-scale", "Update", ""));
    assert_eq!(
        entries[1].fields,
        Fields::from([replicas, path(&["f:metadata", "f:labels", "f:extra"])])
    );

    // Objects without managedFields stay without; `[{}]` resets them.
    let plain = deployment();
    let mut changed = plain.clone();
    changed["spec"]["replicas"] = json!(1);
    managed::track_update(&plain, &mut changed, "x", "", r);
    assert!(changed["metadata"].get("managedFields").is_none());
    let mut reset = new.clone();
    reset["metadata"]["managedFields"] = json!([{}]);
    managed::track_update(&new, &mut reset, "x", "", r);
    assert!(reset["metadata"].get("managedFields").is_none());
}

#[test]
fn a_first_apply_gives_kubectl_its_client_side_fields() {
    let (r, _) = deployments();
    let mut live = deployment();
    let last = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"}, "spec": {"replicas": 2}});
    live["metadata"]["annotations"] = json!({
        "kubectl.kubernetes.io/last-applied-configuration": last.to_string(),
    });
    let replicas = path(&["f:spec", "f:replicas"]);
    let entries = managed::first_apply(&live, "kubectl", r);
    assert_eq!(entries[0].manager, managed::BEFORE_FIRST_APPLY);
    assert!(!entries[0].fields.contains(&replicas));
    assert!(entries[1].is("kubectl", "Apply", "") && entries[1].fields.contains(&replicas));
    let other = managed::first_apply(&live, "helm", r);
    assert_eq!(other.len(), 1);
    assert!(other[0].fields.contains(&replicas));
}
