//! The seam through which pods read ConfigMaps and Secrets: a [`ConfigSource`] answers from
//! what it has (the cluster module watches each object a pod of the node references). Pods
//! never talk to the API themselves. Standalone agents have none: their manifests may not
//! reference API objects (refused at parse).

use std::collections::BTreeMap;
use std::sync::Arc;

/// ConfigMap or Secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    ConfigMap,
    Secret,
}

impl ObjectKind {
    /// kubelet's names in its messages: `configmap "x" not found`, `... in ConfigMap ns/x`.
    pub fn lower(self) -> &'static str {
        match self {
            ObjectKind::ConfigMap => "configmap",
            ObjectKind::Secret => "secret",
        }
    }
    pub fn title(self) -> &'static str {
        match self {
            ObjectKind::ConfigMap => "ConfigMap",
            ObjectKind::Secret => "Secret",
        }
    }
}

/// An object's keys and values (`data` and `binaryData` of a ConfigMap, `data` of a Secret).
pub type ObjectData = Arc<BTreeMap<String, Vec<u8>>>;

/// What is known about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Not read yet (its watch has just started).
    Pending,
    Absent,
    Present(ObjectData),
    /// Never read, and reading failed: why.
    Failed(String),
}

/// Reads ConfigMaps and Secrets for the pods of this node.
pub trait ConfigSource: Send + Sync {
    /// What is known now about `kind` `namespace/name`; the first call for an object starts
    /// watching it.
    fn lookup(&self, kind: ObjectKind, namespace: &str, name: &str) -> Lookup;
    /// A generation that moves whenever a watched object changes.
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64>;
}
