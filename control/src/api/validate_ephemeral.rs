//! kube-apiserver's `validateEphemeralContainers` in its words and field paths: each
//! ephemeral container passes the checks every container does (`validateContainerCommon`:
//! a DNS-label name, an image, the termination-message and pull policies, env names, volume
//! mounts naming the pod's volumes), has a name no other container of the pod has, targets
//! one of the pod's containers or init containers, and sets none of the fields an ephemeral
//! container may not have (ports, probes, lifecycle, resources, resize and restart policies,
//! mount sub-paths). Pure: reads the pod spec's JSON only.

use std::collections::HashSet;

use serde_json::Value;

use super::meta::label_problem;
use crate::status::FieldCause;

/// What kube's allow list (`allowedEphemeralContainerFields`) leaves out, in the Go struct's
/// field order (kube reports them in that order).
const FORBIDDEN_FIELDS: &[&str] = &[
    "ports",
    "resources",
    "resizePolicy",
    "restartPolicy",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
];

const FORBIDDEN: &str = "cannot be set for an Ephemeral Container";

/// The checks of `spec.ephemeralContainers` (the pod spec at path `at`) into `causes`.
pub(super) fn containers(spec: &Value, at: &str, causes: &mut Vec<FieldCause>) {
    let Some(ephemeral) = spec["ephemeralContainers"]
        .as_array()
        .filter(|l| !l.is_empty())
    else {
        return;
    };
    let others: HashSet<&str> = ["containers", "initContainers"]
        .iter()
        .flat_map(|list| spec[*list].as_array().into_iter().flatten())
        .filter_map(|c| c["name"].as_str())
        .collect();
    let volumes: HashSet<&str> = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str())
        .collect();
    let mut names = others.clone();
    for (i, container) in ephemeral.iter().enumerate() {
        let path = format!("{at}.ephemeralContainers[{i}]");
        common(container, &volumes, &path, causes);
        let name = container["name"].as_str().unwrap_or("");
        if !names.insert(name) {
            causes.push(FieldCause::duplicate(&format!("{path}.name"), name));
        }
        if let Some(target) = container["targetContainerName"]
            .as_str()
            .filter(|t| !t.is_empty() && !others.contains(t))
        {
            let field = format!("{path}.targetContainerName");
            causes.push(FieldCause::not_found(&field, target));
        }
        for field in FORBIDDEN_FIELDS {
            if is_set(field, &container[*field]) {
                causes.push(FieldCause::forbidden(&format!("{path}.{field}"), FORBIDDEN));
            }
        }
        let mounts = container["volumeMounts"].as_array().into_iter().flatten();
        for (j, mount) in mounts.enumerate() {
            for field in ["subPath", "subPathExpr"] {
                if mount[field].as_str().is_some_and(|s| !s.is_empty()) {
                    let field = format!("{path}.volumeMounts[{j}].{field}");
                    causes.push(FieldCause::forbidden(&field, FORBIDDEN));
                }
            }
        }
    }
}

/// Whether a field is set as Go sees it after decoding: present and not null (an empty
/// `resources` is the struct's zero value).
fn is_set(field: &str, value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Object(map) if field == "resources" => map.values().any(|v| !v.is_null()),
        _ => true,
    }
}

/// kube's `validateContainerCommon` and `validateContainerOnlyForPod`, for the fields an
/// ephemeral container may have.
fn common(container: &Value, volumes: &HashSet<&str>, path: &str, causes: &mut Vec<FieldCause>) {
    let at = |field: &str| format!("{path}.{field}");
    match container["name"].as_str().unwrap_or("") {
        "" => causes.push(FieldCause::required(&at("name"))),
        name => causes.extend(label_problem(&at("name"), name)),
    }
    let image = container["image"].as_str().unwrap_or("");
    if image.is_empty() {
        causes.push(FieldCause::required(&at("image")));
    }
    one_of(
        &container["terminationMessagePolicy"],
        &at("terminationMessagePolicy"),
        &["File", "FallbackToLogsOnError"],
        causes,
    );
    let env = container["env"].as_array().into_iter().flatten();
    for (j, var) in env.enumerate() {
        if var["name"].as_str().is_none_or(str::is_empty) {
            causes.push(FieldCause::required(&at(&format!("env[{j}].name"))));
        }
    }
    volume_mounts(container, volumes, path, causes);
    one_of(
        &container["imagePullPolicy"],
        &at("imagePullPolicy"),
        &["Always", "IfNotPresent", "Never"],
        causes,
    );
    if !image.is_empty() && image.trim() != image {
        let value = format!("{image:?}");
        let why = "must not have leading or trailing whitespace";
        causes.push(FieldCause::invalid(&at("image"), &value, why));
    }
}

/// A required value out of `supported` (kube's Required / NotSupported).
fn one_of(value: &Value, field: &str, supported: &[&str], causes: &mut Vec<FieldCause>) {
    match value.as_str().unwrap_or("") {
        "" => causes.push(FieldCause::required(field)),
        v if supported.contains(&v) => {}
        v => causes.push(FieldCause::not_supported(field, v, supported)),
    }
}

/// kube's `ValidateVolumeMounts`: a name of one of the pod's volumes and a mount path, each
/// path mounted once.
fn volume_mounts(
    container: &Value,
    volumes: &HashSet<&str>,
    path: &str,
    causes: &mut Vec<FieldCause>,
) {
    let mut paths = HashSet::new();
    let mounts = container["volumeMounts"].as_array().into_iter().flatten();
    for (j, mount) in mounts.enumerate() {
        let at = |field: &str| format!("{path}.volumeMounts[{j}].{field}");
        let name = mount["name"].as_str().unwrap_or("");
        if name.is_empty() {
            causes.push(FieldCause::required(&at("name")));
        }
        if !volumes.contains(name) {
            causes.push(FieldCause::not_found(&at("name"), name));
        }
        let mount_path = mount["mountPath"].as_str().unwrap_or("");
        if mount_path.is_empty() {
            causes.push(FieldCause::required(&at("mountPath")));
        } else if !paths.insert(mount_path) {
            let value = format!("{mount_path:?}");
            causes.push(FieldCause::invalid(
                &at("mountPath"),
                &value,
                "must be unique",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn debugger(extra: Value) -> Value {
        let mut c = json!({"name": "debugger", "image": "busybox:1.36",
            "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent",
            "terminationMessagePath": "/dev/termination-log", "resources": {}});
        if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
            c.extend(extra.clone());
        }
        c
    }

    fn causes_of(ephemeral: Vec<Value>) -> Vec<String> {
        let spec = json!({
            "containers": [{"name": "c", "image": "nginx"}],
            "initContainers": [{"name": "init", "image": "busybox"}],
            "volumes": [{"name": "data", "emptyDir": {}}],
            "ephemeralContainers": ephemeral,
        });
        let mut causes = Vec::new();
        containers(&spec, "spec", &mut causes);
        causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn a_debug_container_targeting_a_container_passes() {
        for target in ["c", "init"] {
            let c = debugger(
                json!({"targetContainerName": target, "stdin": true, "tty": true,
                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}),
            );
            assert_eq!(causes_of(vec![c]), Vec::<String>::new());
        }
        assert!(causes_of(vec![]).is_empty());
    }

    #[test]
    fn names_are_unique_labels_and_targets_exist() {
        let got = causes_of(vec![
            debugger(json!({"name": "c"})),
            debugger(json!({"name": "Bad_Name", "targetContainerName": "nope"})),
            debugger(json!({"name": "", "image": ""})),
            debugger(json!({"name": "x"})),
            debugger(json!({"name": "x"})),
        ]);
        assert_eq!(
            got[0],
            "spec.ephemeralContainers[0].name: Duplicate value: \"c\""
        );
        assert!(got[1].starts_with("spec.ephemeralContainers[1].name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 label"), "{got:?}");
        assert_eq!(
            got[2],
            "spec.ephemeralContainers[1].targetContainerName: Not found: \"nope\""
        );
        assert_eq!(got[3], "spec.ephemeralContainers[2].name: Required value");
        assert_eq!(got[4], "spec.ephemeralContainers[2].image: Required value");
        assert_eq!(
            got[5],
            "spec.ephemeralContainers[4].name: Duplicate value: \"x\""
        );
        assert_eq!(got.len(), 6, "{got:?}");
    }

    #[test]
    fn fields_of_a_workload_container_are_forbidden() {
        let c = debugger(json!({
            "ports": [{"containerPort": 80}], "resources": {"limits": {"cpu": "1"}},
            "resizePolicy": [], "restartPolicy": "Always",
            "livenessProbe": {}, "readinessProbe": {}, "startupProbe": {}, "lifecycle": {},
            "volumeMounts": [{"name": "data", "mountPath": "/d", "subPath": "x"}],
        }));
        let got = causes_of(vec![c]);
        let want: Vec<String> = FORBIDDEN_FIELDS
            .iter()
            .map(|f| format!("spec.ephemeralContainers[0].{f}"))
            .chain(["spec.ephemeralContainers[0].volumeMounts[0].subPath".to_owned()])
            .map(|f| format!("{f}: Forbidden: cannot be set for an Ephemeral Container"))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn the_common_container_rules_apply() {
        let c = debugger(json!({
            "image": " busybox", "imagePullPolicy": "Sometimes",
            "terminationMessagePolicy": "", "env": [{"value": "1"}],
            "volumeMounts": [{"name": "nope", "mountPath": "/a"}, {"name": "data", "mountPath": "/a"}],
        }));
        assert_eq!(
            causes_of(vec![c]),
            [
                "spec.ephemeralContainers[0].terminationMessagePolicy: Required value",
                "spec.ephemeralContainers[0].env[0].name: Required value",
                "spec.ephemeralContainers[0].volumeMounts[0].name: Not found: \"nope\"",
                "spec.ephemeralContainers[0].volumeMounts[1].mountPath: Invalid value: \"/a\": must be unique",
                "spec.ephemeralContainers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
                "spec.ephemeralContainers[0].image: Invalid value: \" busybox\": must not have leading or trailing whitespace",
            ]
        );
    }
}
