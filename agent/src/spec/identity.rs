//! Stable identities for pods: the uid bosun uses when a manifest has none (so a static pod
//! keeps its uid, cgroup and log paths across agent restarts) and the spec hash that tells a
//! changed manifest from an unchanged one. It never stores anything.

use sha2::{Digest, Sha256};

use super::pod::Pod;

/// `metadata.uid` when set; otherwise a UUID-shaped id derived from namespace and name only,
/// so editing a static pod's spec keeps its uid.
pub fn pod_uid(pod: &Pod) -> String {
    if let Some(uid) = pod.metadata.uid.as_deref().filter(|u| !u.is_empty()) {
        return uid.to_string();
    }
    let key = format!("bosun-pod:{}/{}", pod.metadata.namespace, pod.metadata.name);
    let hex = hex::encode(Sha256::digest(key.as_bytes()));
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// sha256 (hex) of the canonical JSON of `pod.spec`: object keys sorted, no whitespace. Equal
/// specs hash equally whatever the manifest's key order, formatting or YAML/JSON choice.
pub fn manifest_hash(pod: &Pod) -> String {
    let mut value = serde_json::to_value(&pod.spec).expect("a PodSpec always serializes to JSON");
    // Ephemeral containers join a running pod; adding one does not make it another pod.
    if let Some(spec) = value.as_object_mut() {
        spec.remove("ephemeralContainers");
    }
    canonical_hash(&value)
}

/// sha256 (hex) of the canonical JSON of `value` (object keys sorted, no whitespace).
pub fn canonical_hash(value: &serde_json::Value) -> String {
    let mut canonical = String::new();
    write_canonical(value, &mut canonical);
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// Writes `value` as JSON with sorted object keys, independent of serde_json's map ordering.
fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse::parse_pod;

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: prod}\n\
                       spec: {containers: [{name: c, image: nginx}]}";

    #[test]
    fn uid_is_stable_and_uuid_shaped() {
        let pod = parse_pod(POD).unwrap();
        let uid = pod_uid(&pod);
        assert_eq!(uid, pod_uid(&parse_pod(POD).unwrap()));
        let groups: Vec<usize> = uid.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert!(uid.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }

    #[test]
    fn uid_depends_on_namespace_and_name_only() {
        let pod = parse_pod(POD).unwrap();
        let mut changed_spec = pod.clone();
        changed_spec.spec.containers[0].image = "nginx:2".into();
        assert_eq!(pod_uid(&pod), pod_uid(&changed_spec));
        let mut other_ns = pod.clone();
        other_ns.metadata.namespace = "dev".into();
        assert_ne!(pod_uid(&pod), pod_uid(&other_ns));
        let mut other_name = pod.clone();
        other_name.metadata.name = "web2".into();
        assert_ne!(pod_uid(&pod), pod_uid(&other_name));
    }

    #[test]
    fn explicit_uid_wins() {
        let mut pod = parse_pod(POD).unwrap();
        pod.metadata.uid = Some("1234".into());
        assert_eq!(pod_uid(&pod), "1234");
    }

    #[test]
    fn hash_ignores_formatting_and_metadata_but_not_the_spec() {
        let pod = parse_pod(POD).unwrap();
        let json = r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"web","labels":{"a":"b"}},
                       "spec":{"containers":[{"image":"nginx","name":"c"}]}}"#;
        let same = parse_pod(json).unwrap();
        assert_eq!(manifest_hash(&pod), manifest_hash(&same));
        assert_eq!(manifest_hash(&pod).len(), 64);
        let mut changed = pod.clone();
        changed.spec.containers[0].args = vec!["-g".into()];
        assert_ne!(manifest_hash(&pod), manifest_hash(&changed));
        // Ephemeral containers join the running pod; stdinOnce and a target left out keep
        // the hashes a previous agent recorded.
        let mut debugged = pod.clone();
        let mut debugger = pod.spec.containers[0].clone();
        debugger.name = "debugger".into();
        debugger.target_container_name = Some("c".into());
        debugged.spec.ephemeral_containers.push(debugger);
        assert_eq!(manifest_hash(&pod), manifest_hash(&debugged));
        let spec = serde_json::to_value(&pod.spec).expect("json");
        assert!(spec["containers"][0].get("stdinOnce").is_none(), "{spec}");
        assert!(spec.get("ephemeralContainers").is_none(), "{spec}");
    }

    #[test]
    fn canonical_json_sorts_keys_recursively() {
        let value = serde_json::json!({"b": [{"z": 1, "a": null}], "a": "x\"y"});
        let mut out = String::new();
        write_canonical(&value, &mut out);
        assert_eq!(out, r#"{"a":"x\"y","b":[{"a":null,"z":1}]}"#);
    }
}
