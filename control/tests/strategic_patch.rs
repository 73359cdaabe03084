//! Strategic merge patch through the real kubectl: client-side `apply` of a changed file (a
//! three-way patch from the last-applied annotation, with `$setElementOrder`), `set image`,
//! `edit` with a scripted editor, `patch` (strategic by default) adding a container port and
//! deleting a container with `$patch: delete`, `label`/`annotate`, and the `status` and
//! `scale` subresources patched the same way. Every check reads the object back. `apply`
//! builds its patch from the OpenAPI v3 document's `x-kubernetes-patch-merge-key`s.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{ok, stderr, stdout, Control};
use serde_json::Value;

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, tier: front}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: c1
        image: nginx:1.25
        ports: [{containerPort: 80}]
        env: [{name: A, value: a}, {name: B, value: b}]
        volumeMounts: [{name: data, mountPath: /data}]
      - name: c2
        image: busybox:1.36
        args: [sleep, infinity]
      volumes:
      - name: data
        emptyDir: {}
";

fn write(control: &Control, name: &str, text: &str) -> String {
    let file = control.dir.path().join(name);
    std::fs::write(&file, text).expect("write");
    file.to_str().expect("path").to_owned()
}

fn get(control: &Control) -> Value {
    serde_json::from_str(&ok(control.kubectl(&["get", "deploy", "web", "-o", "json"])))
        .expect("JSON")
}

fn containers(object: &Value) -> &Vec<Value> {
    object["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
}

fn container<'a>(object: &'a Value, name: &str) -> &'a Value {
    containers(object)
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name} in {object}"))
}

#[test]
fn applying_a_changed_file_patches_one_container_and_prunes_what_the_file_dropped() {
    let control = Control::start();
    let file = write(&control, "web.yaml", DEPLOYMENT);
    ok(control.kubectl(&["apply", "-f", &file]));
    let first = get(&control);
    assert!(
        first["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );

    let changed = DEPLOYMENT
        .replace("image: nginx:1.25", "image: nginx:1.27")
        .replace(", {name: B, value: b}", "")
        .replace("labels: {app: web, tier: front}", "labels: {app: web}");
    let file = write(&control, "web.yaml", &changed);
    // At -v=5 kubectl says when it cannot build the patch from the OpenAPI v3 document.
    let out = control.kubectl(&["apply", "-f", &file, "-v=5"]);
    let log = stderr(&out);
    assert!(ok(out).contains("deployment.apps/web configured"));
    assert!(
        !log.contains("does not support strategic merge patch")
            && !log.contains("error calculating patch"),
        "kubectl built the patch from the OpenAPI merge keys: {log}"
    );

    let second = get(&control);
    assert_eq!(container(&second, "c1")["image"], "nginx:1.27");
    assert_eq!(
        container(&second, "c1")["env"],
        serde_json::json!([{"name": "A", "value": "a"}])
    );
    assert_eq!(
        container(&second, "c2"),
        container(&first, "c2"),
        "the other container is untouched"
    );
    let names: Vec<&Value> = containers(&second).iter().map(|c| &c["name"]).collect();
    assert_eq!(names, ["c1", "c2"], "the file's order is kept");
    assert_eq!(
        second["metadata"]["labels"],
        serde_json::json!({"app": "web"})
    );
    assert_eq!(second["metadata"]["generation"], 2);

    // A third apply of the same file changes nothing.
    let out = ok(control.kubectl(&["apply", "-f", &file]));
    assert!(out.contains("deployment.apps/web unchanged"), "{out}");

    // Dropping a container deletes it by name; changing a volume's source sends
    // `$retainKeys`, which drops the old source.
    let start = changed.find("      - name: c2").expect("c2 in the file");
    let end = changed.find("      volumes:").expect("volumes in the file");
    let fewer = format!("{}{}", &changed[..start], &changed[end..])
        .replace("emptyDir: {}", "configMap: {name: settings}");
    ok(control.kubectl(&["apply", "-f", &write(&control, "web.yaml", &fewer)]));
    let third = get(&control);
    let names: Vec<&Value> = containers(&third).iter().map(|c| &c["name"]).collect();
    assert_eq!(names, ["c1"]);
    assert_eq!(
        third["spec"]["template"]["spec"]["volumes"],
        serde_json::json!([{"name": "data", "configMap": {"name": "settings", "defaultMode": 420}}])
    );
}

#[test]
fn set_image_patch_and_delete_a_container() {
    let control = Control::start();
    ok(control.kubectl(&["apply", "-f", &write(&control, "web.yaml", DEPLOYMENT)]));

    ok(control.kubectl(&["set", "image", "deployment/web", "c1=nginx:1.26"]));
    let object = get(&control);
    assert_eq!(container(&object, "c1")["image"], "nginx:1.26");
    assert_eq!(container(&object, "c2")["image"], "busybox:1.36");

    ok(control.kubectl(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"c1","ports":[{"containerPort":8080,"name":"alt"}]}]}}}}"#,
    ]));
    let object = get(&control);
    let ports: Vec<&Value> = container(&object, "c1")["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| &p["containerPort"])
        .collect();
    assert_eq!(ports, [8080, 80], "the new port merged in by containerPort");
    assert_eq!(
        container(&object, "c1")["env"].as_array().map(Vec::len),
        Some(2)
    );

    ok(control.kubectl(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"c2","$patch":"delete"}]}}}}"#,
    ]));
    let object = get(&control);
    let names: Vec<&Value> = containers(&object).iter().map(|c| &c["name"]).collect();
    assert_eq!(names, ["c1"]);

    let out = control.kubectl(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"c1","$patch":"shred"}]}}}}"#,
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unknown directive $patch"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn label_and_annotate_add_overwrite_and_remove() {
    let control = Control::start();
    ok(control.kubectl(&["apply", "-f", &write(&control, "web.yaml", DEPLOYMENT)]));
    ok(control.kubectl(&["label", "deployment", "web", "env=prod"]));
    let out = control.kubectl(&["label", "deployment", "web", "env=dev"]);
    assert!(
        !out.status.success(),
        "a label is not overwritten without --overwrite"
    );
    ok(control.kubectl(&["label", "deployment", "web", "env=dev", "--overwrite"]));
    ok(control.kubectl(&["label", "deployment", "web", "tier-"]));
    assert_eq!(
        get(&control)["metadata"]["labels"],
        serde_json::json!({"app": "web", "env": "dev"})
    );

    ok(control.kubectl(&["annotate", "deployment", "web", "owner=team-a"]));
    ok(control.kubectl(&[
        "annotate",
        "deployment",
        "web",
        "owner=team-b",
        "--overwrite",
    ]));
    ok(control.kubectl(&["annotate", "deployment", "web", "note=x"]));
    ok(control.kubectl(&["annotate", "deployment", "web", "note-"]));
    let annotations = &get(&control)["metadata"]["annotations"];
    assert_eq!(annotations["owner"], "team-b");
    assert!(annotations.get("note").is_none(), "{annotations}");
}

#[test]
fn a_patch_changing_nothing_is_not_written_and_empty_maps_are_not_kept() {
    let control = Control::start();
    let version = || {
        ok(control.kubectl(&[
            "get",
            "configmap",
            "settings",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ]))
    };
    let file = write(
        &control,
        "settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, annotations: {}, finalizers: []}\ndata: {a: \"1\"}\nbinaryData: {}\n",
    );
    ok(control.kubectl(&["create", "-f", &file]));
    let created: Value = serde_json::from_str(&ok(control.kubectl(&[
        "get",
        "configmap",
        "settings",
        "-o",
        "json",
    ])))
    .expect("JSON");
    let meta = &created["metadata"];
    assert!(
        meta.get("annotations").is_none()
            && meta.get("finalizers").is_none()
            && created.get("binaryData").is_none(),
        "empty optional maps and lists are not stored, as Kubernetes' omitempty: {created}"
    );
    let before = version();
    // An empty map and a value that is already there: nothing to write.
    let patch = r#"{"metadata":{"labels":{}},"data":{"a":"1"},"binaryData":{}}"#;
    let out = ok(control.kubectl(&["patch", "configmap", "settings", "-p", patch]));
    assert!(
        out.contains("configmap/settings patched (no change)"),
        "{out}"
    );
    assert_eq!(version(), before, "a change of nothing is not written");
    ok(control.kubectl(&["label", "configmap", "settings", "env=prod"]));
    let out = ok(control.kubectl(&["label", "configmap", "settings", "env=prod", "--overwrite"]));
    assert!(out.contains("configmap/settings not labeled"), "{out}");

    // `diff` shows the one change, not an empty annotations map its dry-run patch adds.
    let changed = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, labels: {env: prod}}\ndata: {a: \"2\"}\n";
    let out = control.kubectl(&["diff", "-f", &write(&control, "changed.yaml", changed)]);
    let diff = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{diff}{}", stderr(&out));
    assert!(
        diff.contains("-  a: \"1\"") && diff.contains("+  a: \"2\""),
        "{diff}"
    );
    assert!(!diff.contains("annotations"), "{diff}");
}

#[test]
fn kubectl_edit_saves_the_editors_change() {
    let control = Control::start();
    ok(control.kubectl(&["apply", "-f", &write(&control, "web.yaml", DEPLOYMENT)]));
    let editor = control.dir.path().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i -e 's/image: busybox:1.36/image: busybox:1.37/' -e 's/value: b$/value: edited/' \"$1\"\n",
    )
    .expect("write editor");
    std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let editor = editor.to_str().expect("path");
    let out = ok(control.kubectl_env(
        &[("EDITOR", editor), ("KUBE_EDITOR", editor)],
        &["edit", "deployment/web"],
    ));
    assert!(out.contains("deployment.apps/web edited"), "{out}");
    let object = get(&control);
    assert_eq!(container(&object, "c2")["image"], "busybox:1.37");
    assert_eq!(container(&object, "c1")["image"], "nginx:1.25");
    assert_eq!(
        container(&object, "c1")["env"],
        serde_json::json!([{"name": "A", "value": "a"}, {"name": "B", "value": "edited"}])
    );
}

#[test]
fn status_and_scale_subresources_take_strategic_patches() {
    let control = Control::start();
    ok(control.kubectl(&["apply", "-f", &write(&control, "web.yaml", DEPLOYMENT)]));
    // Conditions of a Pod's status: the pod names a scheduler nobody runs, so nothing but this
    // test writes its status (the Deployment controller owns a Deployment's).
    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: solo}\nspec:\n  schedulerName: nobody\n  containers: [{name: c, image: busybox}]\n";
    ok(control.kubectl(&["apply", "-f", &write(&control, "pod.yaml", POD)]));
    let condition = |kind: &str, status: &str| {
        format!(r#"{{"type":"{kind}","status":"{status}","reason":"Test","message":"m"}}"#)
    };
    for (kind, status) in [
        ("Ready", "False"),
        ("PodScheduled", "True"),
        ("Ready", "True"),
    ] {
        ok(control.kubectl(&[
            "patch",
            "pod",
            "solo",
            "--subresource=status",
            "-p",
            &format!(
                r#"{{"status":{{"conditions":[{}]}}}}"#,
                condition(kind, status)
            ),
        ]));
    }
    let object: Value =
        serde_json::from_str(&ok(control.kubectl(&["get", "pod", "solo", "-o", "json"])))
            .expect("JSON");
    let conditions: Vec<(&Value, &Value)> = object["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .map(|c| (&c["type"], &c["status"]))
        .collect();
    assert_eq!(
        conditions,
        // A new element comes first (no `$setElementOrder`), as in Kubernetes.
        [
            (&"PodScheduled".into(), &"True".into()),
            (&"Ready".into(), &"True".into())
        ],
        "conditions merge by type"
    );

    ok(control.kubectl(&[
        "patch",
        "deployment",
        "web",
        "--subresource=scale",
        "-p",
        r#"{"spec":{"replicas":4}}"#,
    ]));
    assert_eq!(get(&control)["spec"]["replicas"], 4);
}
