//! Fields of a Pod manifest that the spec types do not know. The rule of `unsupported` holds
//! for them too: a field the agent does not honour is refused, never dropped. Only these are
//! let through: output and server bookkeeping (`status`, `metadata.resourceVersion`, ...),
//! fields that only a scheduler or an API client acts on, and fields set to the value
//! Kubernetes defaults them to (which means the same as leaving them out). Pure.

use serde_json::Value;

use super::error::SpecError;

/// What may be set in an ignorable field.
enum Ignorable {
    /// Any value: nothing on a node acts on it.
    Any,
    /// Only Kubernetes' default (a JSON literal).
    Default(&'static str),
}

/// Ignorable unknown fields. `[]` stands for any container of `containers` or
/// `initContainers`.
const IGNORABLE: &[(&str, Ignorable)] = &[
    ("status", Ignorable::Any),
    ("metadata.creationTimestamp", Ignorable::Any),
    ("metadata.resourceVersion", Ignorable::Any),
    ("metadata.generation", Ignorable::Any),
    ("metadata.selfLink", Ignorable::Any),
    ("metadata.managedFields", Ignorable::Any),
    ("metadata.ownerReferences", Ignorable::Any),
    ("metadata.finalizers", Ignorable::Any),
    ("metadata.generateName", Ignorable::Any),
    ("metadata.deletionTimestamp", Ignorable::Any),
    ("metadata.deletionGracePeriodSeconds", Ignorable::Any),
    // The scheduler's business: a static pod is not scheduled.
    ("spec.schedulerName", Ignorable::Any),
    ("spec.priority", Ignorable::Any),
    ("spec.priorityClassName", Ignorable::Any),
    ("spec.preemptionPolicy", Ignorable::Any),
    ("spec.tolerations", Ignorable::Any),
    // Registry credentials: images come from the local store.
    ("spec.imagePullSecrets", Ignorable::Any),
    ("spec.enableServiceLinks", Ignorable::Default("true")),
    (
        "spec.automountServiceAccountToken",
        Ignorable::Default("true"),
    ),
    (
        "spec.containers[].terminationMessagePath",
        Ignorable::Default("\"/dev/termination-log\""),
    ),
    (
        "spec.containers[].terminationMessagePolicy",
        Ignorable::Default("\"File\""),
    ),
];

/// Refuses the first of `unknown` (paths in Kubernetes style, `spec.containers[0].x`) that may
/// not be ignored, given the manifest `doc` they come from.
pub fn refuse_unknown(unknown: &[String], doc: &Value) -> Result<(), SpecError> {
    for path in unknown {
        let pattern = container_pattern(path);
        let allowed = IGNORABLE.iter().find(|(p, _)| under(&pattern, p));
        let ok = match allowed {
            Some((_, Ignorable::Any)) => true,
            Some((p, Ignorable::Default(default))) => {
                let default: Value = serde_json::from_str(default).unwrap_or(Value::Null);
                *p == pattern && lookup(doc, path) == Some(&default)
            }
            None => false,
        };
        if !ok {
            let message = match allowed {
                Some((_, Ignorable::Default(default))) => {
                    format!("not supported yet (only the default, {default})")
                }
                _ => "not supported (unknown to bosun)".to_string(),
            };
            return Err(SpecError::new(path.clone(), message));
        }
    }
    Ok(())
}

/// `spec.initContainers[2].x` → `spec.containers[].x`.
fn container_pattern(path: &str) -> String {
    for list in ["spec.containers[", "spec.initContainers["] {
        if let Some(rest) = path.strip_prefix(list) {
            if let Some((_, tail)) = rest.split_once(']') {
                return format!("spec.containers[]{tail}");
            }
        }
    }
    path.to_string()
}

fn under(path: &str, entry: &str) -> bool {
    path == entry
        || path
            .strip_prefix(entry)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

/// The value at a Kubernetes-style path of keys without dots (what unknown fields are).
fn lookup<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = doc;
    for part in path.split('.') {
        let (key, indexes) = part.split_once('[').unwrap_or((part, ""));
        cur = cur.get(key)?;
        for index in indexes.split('[').filter(|s| !s.is_empty()) {
            cur = cur.get(index.trim_end_matches(']').parse::<usize>().ok()?)?;
        }
    }
    Some(cur)
}

/// Formats a path reported by `serde_ignored` Kubernetes style.
pub fn k8s_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", k8s_path(parent)),
        Path::Map { parent, key } => {
            let parent = k8s_path(parent);
            if parent.is_empty() {
                key.to_string()
            } else {
                format!("{parent}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => k8s_path(parent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(paths: &[&str], doc: Value) -> Result<(), SpecError> {
        let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
        refuse_unknown(&paths, &doc)
    }

    #[test]
    fn bookkeeping_scheduling_and_defaults_are_let_through() {
        let doc = serde_json::json!({
            "status": {"phase": "Running"},
            "spec": {"tolerations": [], "initContainers": [{"terminationMessagePolicy": "File"}]}
        });
        let paths = [
            "status",
            "spec.tolerations",
            "spec.initContainers[0].terminationMessagePolicy",
        ];
        assert_eq!(check(&paths, doc), Ok(()));
    }

    #[test]
    fn anything_else_is_refused_by_name() {
        let doc = serde_json::json!({
            "spec": {"containers": [{}, {"terminationMessagePolicy": "FallbackToLogsOnError"}]}
        });
        let err = check(&["spec.containers[1].terminationMessagePolicy"], doc).unwrap_err();
        assert_eq!(err.field, "spec.containers[1].terminationMessagePolicy");
        assert!(err.message.contains("\"File\""), "{err}");
        let err = check(&["spec.affinity"], Value::Null).unwrap_err();
        assert_eq!(err.field, "spec.affinity");
        assert!(err.message.contains("unknown"), "{err}");
    }
}
