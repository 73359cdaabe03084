//! What marks a pod of the API as a mirror pod (kubelet's `kubernetes.io/config.mirror`
//! annotation), shared by the pod watch (`pods.rs`, which never runs one) and the mirror pod
//! loop (`mirror.rs`, which keeps them).

use k8s_openapi::api::core::v1::Pod as ApiPod;

/// The annotation that marks a mirror pod; its value is the static pod's hash.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// A mirror pod bound to this node, as the pod watch last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorPod {
    pub namespace: String,
    pub name: String,
    /// Its `kubernetes.io/config.mirror` annotation.
    pub hash: String,
    /// It has a deletionTimestamp.
    pub deleting: bool,
}

impl MirrorPod {
    /// The mirror pod `api_pod` is, if it carries the mirror annotation.
    pub fn of(api_pod: &ApiPod) -> Option<MirrorPod> {
        let hash = api_pod
            .metadata
            .annotations
            .as_ref()?
            .get(MIRROR_ANNOTATION)?;
        Some(MirrorPod {
            namespace: api_pod.metadata.namespace.clone().unwrap_or_default(),
            name: api_pod.metadata.name.clone().unwrap_or_default(),
            hash: hash.clone(),
            deleting: api_pod.metadata.deletion_timestamp.is_some(),
        })
    }
}
