//! Fields of a manifest that the spec types do not know. The rule of `unsupported` holds for
//! them too: a field the agent does not honour is refused, never dropped. Only these are let
//! through: output and server bookkeeping (`status`, `metadata.resourceVersion`, ...), fields
//! that only a scheduler, an API client or DNS acts on, and fields set to the value Kubernetes
//! defaults them to (which means the same as leaving them out). Pods are refused at parse
//! time; a Service or EndpointSlice carries its unknown fields to its own `validate`, so one
//! bad object never rejects its file. Pure.

use serde_json::Value;

use super::error::SpecError;

/// What may be set in an ignorable field.
enum Ignorable {
    /// Any value: nothing on a node acts on it.
    Any,
    /// Only Kubernetes' default (a JSON literal).
    Default(&'static str),
}

/// The kinds whose unknown fields are checked, each with its own ignorable fields.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Pod,
    Service,
    EndpointSlice,
}

/// Ignorable in every kind.
const COMMON: &[(&str, Ignorable)] = &[
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
];

/// Ignorable in a Pod. `[]` stands for any container of `containers` or `initContainers`.
const POD: &[(&str, Ignorable)] = &[
    // The scheduler's business: a static pod is not scheduled.
    ("spec.schedulerName", Ignorable::Any),
    ("spec.priority", Ignorable::Any),
    ("spec.priorityClassName", Ignorable::Any),
    ("spec.preemptionPolicy", Ignorable::Any),
    ("spec.tolerations", Ignorable::Any),
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

/// Ignorable in a Service.
const SERVICE: &[(&str, Ignorable)] = &[
    ("spec.ipFamilies", Ignorable::Default("[\"IPv4\"]")),
    ("spec.ipFamilyPolicy", Ignorable::Default("\"SingleStack\"")),
    (
        "spec.internalTrafficPolicy",
        Ignorable::Default("\"Cluster\""),
    ),
    (
        "spec.externalTrafficPolicy",
        Ignorable::Default("\"Cluster\""),
    ),
    // A hint for clients and meshes; the dataplane balances connections whatever the protocol.
    ("spec.ports[].appProtocol", Ignorable::Any),
];

/// Ignorable in an EndpointSlice: what only DNS, topology hints or clients read.
const ENDPOINT_SLICE: &[(&str, Ignorable)] = &[
    ("endpoints[].targetRef", Ignorable::Any),
    ("endpoints[].nodeName", Ignorable::Any),
    ("endpoints[].zone", Ignorable::Any),
    ("endpoints[].hints", Ignorable::Any),
    ("ports[].appProtocol", Ignorable::Any),
];

impl Kind {
    fn ignorable(self) -> impl Iterator<Item = &'static (&'static str, Ignorable)> {
        let own = match self {
            Kind::Pod => POD,
            Kind::Service => SERVICE,
            Kind::EndpointSlice => ENDPOINT_SLICE,
        };
        COMMON.iter().chain(own)
    }
}

/// An unknown field: its path (`spec.containers[0].x`) and value.
pub type UnknownField = (String, Value);

/// Refuses the first of `unknown` that `kind` may not ignore.
pub fn refuse_unknown(kind: Kind, unknown: &[UnknownField]) -> Result<(), SpecError> {
    for (path, value) in unknown {
        let pattern = list_pattern(path);
        let allowed = kind.ignorable().find(|(p, _)| under(&pattern, p));
        let ok = match allowed {
            Some((_, Ignorable::Any)) => true,
            Some((p, Ignorable::Default(default))) => {
                let default: Value = serde_json::from_str(default).unwrap_or(Value::Null);
                *p == pattern && *value == default
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

/// Deserializes `value` as `T`, also returning the fields `T` does not know, with their values.
/// Type errors name their field path.
pub fn deserialize_listing_unknown<T: serde::de::DeserializeOwned>(
    value: &Value,
) -> Result<(T, Vec<UnknownField>), SpecError> {
    let mut paths = Vec::new();
    let mut collect = |path: serde_ignored::Path<'_>| paths.push(k8s_path(&path));
    let fields = serde_ignored::Deserializer::new(value, &mut collect);
    let typed = serde_path_to_error::deserialize(fields).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { String::new() } else { path };
        SpecError::new(field, e.into_inner().to_string())
    })?;
    let unknown = paths
        .into_iter()
        .map(|p| {
            let v = lookup(value, &p).cloned().unwrap_or(Value::Null);
            (p, v)
        })
        .collect();
    Ok((typed, unknown))
}

/// Indexes of the lists the tables name become `[]`, and init containers are containers:
/// `spec.initContainers[2].x` → `spec.containers[].x`, `endpoints[3].zone` → `endpoints[].zone`.
fn list_pattern(path: &str) -> String {
    const LISTS: [(&str, &str); 6] = [
        ("spec.containers[", "spec.containers[]"),
        ("spec.initContainers[", "spec.containers[]"),
        ("spec.ephemeralContainers[", "spec.containers[]"),
        ("spec.ports[", "spec.ports[]"),
        ("endpoints[", "endpoints[]"),
        ("ports[", "ports[]"),
    ];
    for (list, pattern) in LISTS {
        if let Some(rest) = path.strip_prefix(list) {
            if let Some((_, tail)) = rest.split_once(']') {
                return format!("{pattern}{tail}");
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
fn k8s_path(path: &serde_ignored::Path<'_>) -> String {
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
    use serde_json::json;

    fn field(path: &str, value: Value) -> UnknownField {
        (path.to_string(), value)
    }

    #[test]
    fn bookkeeping_scheduling_and_defaults_are_let_through() {
        let unknown = [
            field("status", json!({"phase": "Running"})),
            field("spec.tolerations", json!([])),
            field(
                "spec.initContainers[0].terminationMessagePolicy",
                json!("File"),
            ),
        ];
        assert_eq!(refuse_unknown(Kind::Pod, &unknown), Ok(()));
        let unknown = [
            field("spec.ipFamilies", json!(["IPv4"])),
            field("spec.ports[1].appProtocol", json!("http")),
        ];
        assert_eq!(refuse_unknown(Kind::Service, &unknown), Ok(()));
        let unknown = [field("endpoints[2].targetRef", json!({"kind": "Pod"}))];
        assert_eq!(refuse_unknown(Kind::EndpointSlice, &unknown), Ok(()));
    }

    #[test]
    fn anything_else_is_refused_by_name() {
        let policy = "spec.containers[1].terminationMessagePolicy";
        let err = refuse_unknown(Kind::Pod, &[field(policy, json!("FallbackToLogsOnError"))]);
        let err = err.unwrap_err();
        assert_eq!(err.field, policy);
        assert!(err.message.contains("\"File\""), "{err}");
        let err = refuse_unknown(Kind::Pod, &[field("spec.affinity", json!({}))]).unwrap_err();
        assert_eq!(err.field, "spec.affinity");
        assert!(err.message.contains("unknown"), "{err}");
        let local = field("spec.internalTrafficPolicy", json!("Local"));
        let err = refuse_unknown(Kind::Service, &[local]).unwrap_err();
        assert_eq!(err.field, "spec.internalTrafficPolicy");
        // A Pod-only allowance does not carry over to other kinds.
        let err = refuse_unknown(Kind::Service, &[field("spec.tolerations", json!([]))]);
        assert_eq!(err.unwrap_err().field, "spec.tolerations");
    }

    #[test]
    fn unknown_fields_are_listed_with_their_values() {
        #[derive(serde::Deserialize)]
        struct Known {
            #[allow(dead_code)]
            a: u8,
        }
        let doc = json!({"a": 1, "b": {"c": [1, 2]}, "d": [{"e": true}]});
        let (_, unknown): (Known, _) = deserialize_listing_unknown(&doc).expect("parses");
        assert_eq!(
            unknown,
            vec![
                field("b", json!({"c": [1, 2]})),
                field("d", json!([{"e": true}]))
            ]
        );
    }
}
