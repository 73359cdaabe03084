//! The `pod-template-hash` of a Deployment's pod template and the template comparison that
//! finds the ReplicaSet of a template. Kubernetes hashes its Go structs with FNV-32a and encodes
//! the decimal digits with `rand.SafeEncodeString`; we hash the template's canonical JSON (keys
//! sorted) the same way, so names look like Kubernetes' (`web-7d4b9c8f6`) and stay stable.

use serde_json::Value;

use crate::names::SAFE_ALPHABET;

/// The label every ReplicaSet of a Deployment (and its pods) carries.
pub const HASH_LABEL: &str = "pod-template-hash";

/// The hash of `template` with `collisions` (status.collisionCount) mixed in.
pub fn template_hash(template: &Value, collisions: i64) -> String {
    let mut text = String::new();
    canonical(template, &mut text);
    let mut hash: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u32::from(*b);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    };
    feed(text.as_bytes());
    if collisions > 0 {
        feed(&collisions.to_le_bytes());
    }
    hash.to_string()
        .bytes()
        .map(|b| char::from(SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()]))
        .collect()
}

/// JSON with object keys in sorted order.
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// `template` without the hash label (and without `labels` if that leaves it empty).
pub fn without_hash(template: &Value) -> Value {
    let mut copy = template.clone();
    if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
            labels.remove(HASH_LABEL);
            if labels.is_empty() {
                meta.remove("labels");
            }
        }
    }
    copy
}

/// Whether two pod templates are the same ignoring the hash label, both with today's
/// defaults: a ReplicaSet stored before a default was added still matches.
pub fn same_template(a: &Value, b: &Value) -> bool {
    let defaulted = |template: &Value| {
        let mut copy = without_hash(template);
        crate::api::defaults::pod_template(&mut copy);
        copy
    };
    defaulted(a) == defaulted(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_hash_is_stable_safe_and_ignores_key_order() {
        let a = json!({"metadata": {"labels": {"app": "web", "x": "y"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let b: Value = serde_json::from_str(
            r#"{"spec":{"containers":[{"image":"i","name":"c"}]},"metadata":{"labels":{"x":"y","app":"web"}}}"#,
        )
        .unwrap();
        assert_eq!(template_hash(&a, 0), template_hash(&b, 0));
        assert_ne!(template_hash(&a, 0), template_hash(&a, 1));
        let hash = template_hash(&a, 0);
        assert!(hash.bytes().all(|c| SAFE_ALPHABET.contains(&c)), "{hash}");
        let mut other = a.clone();
        other["spec"]["containers"][0]["image"] = json!("j");
        assert_ne!(template_hash(&other, 0), hash);
    }

    #[test]
    fn templates_compare_without_the_hash_label() {
        let t = json!({"metadata": {"labels": {"app": "web"}}, "spec": {}});
        let mut labelled = t.clone();
        labelled["metadata"]["labels"][HASH_LABEL] = json!("abc");
        assert!(same_template(&t, &labelled));
        let probed = json!({"spec": {"containers": [{"name": "c", "image": "i:1",
            "readinessProbe": {"tcpSocket": {"port": 80}}}]}});
        let mut defaulted = probed.clone();
        crate::api::defaults::pod_template(&mut defaulted);
        assert_ne!(probed, defaulted);
        assert!(
            same_template(&probed, &defaulted),
            "stored before the defaults"
        );
        let bare = json!({"metadata": {}, "spec": {}});
        let only_hash = json!({"metadata": {"labels": {HASH_LABEL: "abc"}}, "spec": {}});
        assert!(same_template(&bare, &only_hash));
        assert!(!same_template(&t, &bare));
    }
}
