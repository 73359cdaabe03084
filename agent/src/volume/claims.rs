//! `persistentVolumeClaim` volumes: what a Bound claim's PersistentVolume asks of the node,
//! read through the [`ClaimSource`] seam (the cluster module implements it with the API).
//! [`claimed_volume`] maps a claim and its PV to a [`ClaimedVolume`] with kubelet's checks
//! (the claim is Bound, the PV is bound back to it) and refuses, naming the field, every PV
//! source and field the node does not honour. Pure; never mounts anything.

use std::collections::BTreeMap;
use std::path::PathBuf;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};

/// How a claimed volume reaches the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimedVolume {
    /// A `hostPath` or `local` PV: the node's path, bind-mounted as it is (`kind`: the
    /// hostPath type to check; `Directory` for `local`, whose path must exist).
    Path { path: PathBuf, kind: Option<String> },
    /// A `csi` PV: staged and published by its driver.
    Csi(CsiVolume),
}

/// A `csi` PV's source.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CsiVolume {
    pub driver: String,
    pub volume_handle: String,
    pub fs_type: String,
    /// `spec.csi.readOnly` (or the pod's / PV's read-only request).
    pub read_only: bool,
    /// `spec.csi.volumeAttributes`: the volume context passed to stage and publish.
    pub volume_context: BTreeMap<String, String>,
    /// The PV's `accessModes`.
    pub access_modes: Vec<String>,
}

/// A claim resolved to its volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedClaim {
    pub pv_name: String,
    pub volume: ClaimedVolume,
}

/// Why a claim cannot be mounted (yet).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// Not Bound yet, or not readable now: the pod waits and retries.
    #[error("{0}")]
    Waiting(String),
    /// The PV asks for something the node does not do.
    #[error("{0}")]
    Refused(String),
}

/// Reads a claim of the pod's namespace and its PV.
pub trait ClaimSource: Send + Sync {
    fn resolve(
        &self,
        namespace: String,
        claim: String,
    ) -> BoxFuture<'static, Result<ResolvedClaim, ClaimError>>;
}

/// kubelet's `error processing PVC ns/name: …` text.
pub fn pvc_error(namespace: &str, claim: &str, why: impl std::fmt::Display) -> String {
    format!("error processing PVC {namespace}/{claim}: {why}")
}

/// The claim's PV name once the claim is Bound.
pub fn bound_volume_name(claim: &PersistentVolumeClaim) -> Result<String, ClaimError> {
    let ns = claim.metadata.namespace.as_deref().unwrap_or_default();
    let name = claim.metadata.name.as_deref().unwrap_or_default();
    let phase = claim.status.as_ref().and_then(|s| s.phase.as_deref());
    let volume = claim.spec.as_ref().and_then(|s| s.volume_name.as_deref());
    match (phase, volume) {
        (Some("Bound"), Some(v)) if !v.is_empty() => Ok(v.to_string()),
        _ => Err(ClaimError::Waiting(pvc_error(ns, name, "PVC is not bound"))),
    }
}

/// The volume a Bound `claim` mounts from `pv`.
pub fn claimed_volume(
    claim: &PersistentVolumeClaim,
    pv: &PersistentVolume,
) -> Result<ResolvedClaim, ClaimError> {
    let ns = claim.metadata.namespace.as_deref().unwrap_or_default();
    let name = claim.metadata.name.as_deref().unwrap_or_default();
    let pv_name = pv.metadata.name.clone().unwrap_or_default();
    let spec = pv.spec.clone().unwrap_or_default();
    let bound_uid = spec.claim_ref.as_ref().and_then(|r| r.uid.as_deref());
    if bound_uid != claim.metadata.uid.as_deref() || bound_uid.is_none() {
        let why = format!("PV {pv_name} is not bound to this claim (its claimRef differs)");
        return Err(ClaimError::Waiting(pvc_error(ns, name, why)));
    }
    let refuse = |field: &str, why: &str| {
        ClaimError::Refused(format!(
            "PersistentVolume {pv_name:?}: spec.{field} {why} (the node mounts hostPath, local \
             and csi volumes of volumeMode Filesystem)"
        ))
    };
    if spec
        .volume_mode
        .as_deref()
        .is_some_and(|m| m != "Filesystem")
    {
        return Err(refuse("volumeMode", "is not supported"));
    }
    let access_modes = spec.access_modes.clone().unwrap_or_default();
    let volume = if let Some(h) = &spec.host_path {
        ClaimedVolume::Path {
            path: PathBuf::from(&h.path),
            kind: h.type_.clone(),
        }
    } else if let Some(l) = &spec.local {
        if l.fs_type.as_deref().is_some_and(|f| !f.is_empty()) {
            return Err(refuse("local.fsType", "is not supported (block devices)"));
        }
        ClaimedVolume::Path {
            path: PathBuf::from(&l.path),
            kind: Some("Directory".to_string()),
        }
    } else if let Some(c) = &spec.csi {
        for (field, set) in [
            ("csi.nodeStageSecretRef", c.node_stage_secret_ref.is_some()),
            (
                "csi.nodePublishSecretRef",
                c.node_publish_secret_ref.is_some(),
            ),
            (
                "csi.nodeExpandSecretRef",
                c.node_expand_secret_ref.is_some(),
            ),
            (
                "csi.controllerPublishSecretRef",
                c.controller_publish_secret_ref.is_some(),
            ),
        ] {
            if set {
                return Err(refuse(field, "is not supported"));
            }
        }
        ClaimedVolume::Csi(CsiVolume {
            driver: c.driver.clone(),
            volume_handle: c.volume_handle.clone(),
            fs_type: c.fs_type.clone().unwrap_or_default(),
            read_only: c.read_only.unwrap_or(false),
            volume_context: c.volume_attributes.clone().unwrap_or_default(),
            access_modes,
        })
    } else {
        let value = serde_json::to_value(&spec).unwrap_or_default();
        let known = [
            "accessModes",
            "capacity",
            "claimRef",
            "mountOptions",
            "nodeAffinity",
            "persistentVolumeReclaimPolicy",
            "storageClassName",
            "volumeMode",
            "volumeAttributesClassName",
        ];
        let source = value
            .as_object()
            .and_then(|o| o.keys().find(|k| !known.contains(&k.as_str())).cloned())
            .unwrap_or_else(|| "(no source)".to_string());
        return Err(refuse(&source, "is not a volume source the node supports"));
    };
    if spec.mount_options.as_ref().is_some_and(|o| !o.is_empty()) {
        return Err(refuse("mountOptions", "is not supported"));
    }
    Ok(ResolvedClaim { pv_name, volume })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(phase: &str, volume: &str) -> PersistentVolumeClaim {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "ns", "name": "data", "uid": "u1"},
            "spec": {"volumeName": volume},
            "status": {"phase": phase},
        }))
        .expect("claim")
    }

    fn pv(spec: serde_json::Value) -> PersistentVolume {
        let mut spec = spec;
        spec["claimRef"] = serde_json::json!({"namespace": "ns", "name": "data", "uid": "u1"});
        serde_json::from_value(serde_json::json!({"metadata": {"name": "pv1"}, "spec": spec}))
            .expect("pv")
    }

    #[test]
    fn an_unbound_claim_waits_with_kubelets_text() {
        let err = bound_volume_name(&claim("Pending", "")).unwrap_err();
        assert_eq!(
            err,
            ClaimError::Waiting("error processing PVC ns/data: PVC is not bound".into())
        );
        assert_eq!(
            bound_volume_name(&claim("Bound", "pv1")).expect("bound"),
            "pv1"
        );
    }

    #[test]
    fn host_path_local_and_csi_sources_are_mapped() {
        let c = claim("Bound", "pv1");
        let got = claimed_volume(&c, &pv(serde_json::json!({"hostPath": {"path": "/d"}})));
        assert_eq!(
            got.expect("hostPath").volume,
            ClaimedVolume::Path {
                path: "/d".into(),
                kind: None
            }
        );
        let got = claimed_volume(&c, &pv(serde_json::json!({"local": {"path": "/l"}})));
        assert!(matches!(
            got.expect("local").volume,
            ClaimedVolume::Path { .. }
        ));
        let csi = serde_json::json!({"csi": {"driver": "d", "volumeHandle": "h", "fsType": "ext4",
            "volumeAttributes": {"a": "b"}}, "accessModes": ["ReadWriteOnce"]});
        match claimed_volume(&c, &pv(csi)).expect("csi").volume {
            ClaimedVolume::Csi(v) => {
                assert_eq!((v.driver.as_str(), v.volume_handle.as_str()), ("d", "h"));
                assert_eq!(v.volume_context.get("a").map(String::as_str), Some("b"));
                assert_eq!(v.access_modes, vec!["ReadWriteOnce".to_string()]);
            }
            other => panic!("expected csi, got {other:?}"),
        }
    }

    #[test]
    fn unhonoured_sources_and_fields_are_refused_by_name() {
        let c = claim("Bound", "pv1");
        let nfs = serde_json::json!({"nfs": {"server": "s", "path": "/"}});
        let err = claimed_volume(&c, &pv(nfs)).unwrap_err().to_string();
        assert!(err.contains("spec.nfs is not a volume source"), "{err}");
        let secret = serde_json::json!({"csi": {"driver": "d", "volumeHandle": "h",
            "nodePublishSecretRef": {"name": "s"}}});
        let err = claimed_volume(&c, &pv(secret)).unwrap_err().to_string();
        assert!(err.contains("spec.csi.nodePublishSecretRef"), "{err}");
        let block = serde_json::json!({"hostPath": {"path": "/d"}, "volumeMode": "Block"});
        let err = claimed_volume(&c, &pv(block)).unwrap_err().to_string();
        assert!(err.contains("spec.volumeMode"), "{err}");
    }

    #[test]
    fn a_pv_bound_to_another_claim_is_not_mounted() {
        let mut p = pv(serde_json::json!({"hostPath": {"path": "/d"}}));
        if let Some(r) = p.spec.as_mut().and_then(|s| s.claim_ref.as_mut()) {
            r.uid = Some("other".into());
        }
        let err = claimed_volume(&claim("Bound", "pv1"), &p).unwrap_err();
        assert!(matches!(err, ClaimError::Waiting(_)), "{err:?}");
    }
}
