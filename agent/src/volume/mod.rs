//! Pod volumes on the node: each volume of `spec.volumes` becomes a host directory (or file)
//! under the pod's directory in the agent root (`empty_dir`: disk, or a size-limited tmpfs
//! mounted on the host side), or a checked host path (`host_path`); each container's
//! `volumeMounts` become [`BindMount`]s its PID 1 makes in its own mount namespace, a `subPath`
//! first bind-mounted on the host side after a check that it stays inside its volume
//! (`sub_path`); `configMap` and `secret` volumes written by kubelet's atomic writer
//! (`config_volume`, `atomic_writer`), secrets on a tmpfs; `downwardAPI` and `projected`
//! volumes written the same way (`projected`; a `serviceAccountToken` source's token comes
//! from the caller); `persistentVolumeClaim` volumes
//! resolved to their PV (`claims`) and, for `csi` PVs, staged and published by the driver
//! (`csi`). Every host-side mount lives under the pod's directory, so `host_mounts` can
//! undo them all on pod delete and after an agent restart (CSI volumes are first unpublished
//! and unstaged by their driver, from records under `<root>/csi`). Knows the volume types,
//! never the pod lifecycle.

mod atomic_writer;
pub mod claims;
mod config_volume;
pub mod csi;
mod empty_dir;
mod error;
mod host_mounts;
mod host_path;
mod projected;
mod sub_path;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use claims::{ClaimError, ClaimSource, ClaimedVolume, CsiVolume, ResolvedClaim};
pub use config_volume::Objects;
pub use csi::CsiNode;
pub use empty_dir::mount_pod_files_dir;
pub use error::VolumeError;
pub use host_mounts::{unmount_all_under, unmount_orphans};
pub use projected::{FieldValues, TokenValues};

/// What file volumes are written from: the namespace's ConfigMaps and Secrets, the pod's
/// own fields (downwardAPI) and its service-account tokens (fetched by the caller).
#[derive(Clone, Copy)]
pub struct Sources<'a> {
    pub objects: Objects<'a>,
    pub fields: FieldValues<'a>,
    pub tokens: TokenValues<'a>,
}

use crate::runtime::BindMount;
use crate::spec::{Volume, VolumeMount};

/// The host side of a pod's volumes, by volume name.
#[derive(Debug, Clone, Default)]
pub struct PodVolumes {
    sources: BTreeMap<String, PathBuf>,
    /// Volumes every container mounts read-only (`persistentVolumeClaim.readOnly`).
    read_only: std::collections::BTreeSet<String>,
}

/// Where a pod's volume directories live: `<pod dir>/volumes/<plugin>/<name>` (kubelet's
/// layout).
pub fn volumes_dir(pod_dir: &Path) -> PathBuf {
    pod_dir.join("volumes")
}

impl PodVolumes {
    /// Makes every volume of the pod ready (idempotent: what a previous agent or an earlier
    /// call set up is kept). `pod_memory_limit` sizes a Memory emptyDir without `sizeLimit`;
    /// `claims` holds the host directories of the `persistentVolumeClaim` volumes, prepared
    /// by the caller (see [`claim_source`]).
    pub fn set_up(
        pod_dir: &Path,
        volumes: &[Volume],
        pod_memory_limit: Option<u64>,
        sources: Sources<'_>,
        claims: &BTreeMap<String, PathBuf>,
    ) -> Result<Self, VolumeError> {
        let mut dirs = BTreeMap::new();
        let mut read_only = std::collections::BTreeSet::new();
        for v in volumes {
            if v.persistent_volume_claim
                .as_ref()
                .is_some_and(|c| c.read_only)
            {
                read_only.insert(v.name.clone());
            }
            let source = if let Some(e) = &v.empty_dir {
                let dir = volumes_dir(pod_dir)
                    .join("kubernetes.io~empty-dir")
                    .join(&v.name);
                empty_dir::set_up(&dir, e, pod_memory_limit).map_err(|e| e.of(&v.name))?;
                dir
            } else if let Some(h) = &v.host_path {
                host_path::set_up(h).map_err(|e| e.of(&v.name))?
            } else if let Some(r) = config_volume::config_ref(v) {
                let dir = config_volume::dir_of(pod_dir, v, &r);
                config_volume::set_up(&dir, &r, sources.objects).map_err(|e| e.of(&v.name))?;
                dir
            } else if projected::is_file_projection(v) {
                let dir = projected::dir_of(pod_dir, v);
                projected::set_up(&dir, v, sources).map_err(|e| e.of(&v.name))?;
                dir
            } else if v.persistent_volume_claim.is_some() {
                claims
                    .get(&v.name)
                    .cloned()
                    .ok_or_else(|| VolumeError::set_up(&v.name, "the claim is not mounted"))?
            } else {
                return Err(VolumeError::set_up(&v.name, "no volume source"));
            };
            dirs.insert(v.name.clone(), source);
        }
        Ok(PodVolumes {
            sources: dirs,
            read_only,
        })
    }

    /// Rewrites the configMap, secret, downwardAPI and projected volumes whose content
    /// changed (atomically; what cannot be read now is left as it is). Returns the names of
    /// the volumes rewritten.
    pub fn refresh(
        pod_dir: &Path,
        volumes: &[Volume],
        sources: Sources<'_>,
    ) -> Result<Vec<String>, VolumeError> {
        let mut changed = Vec::new();
        for v in volumes {
            let rewritten = if let Some(r) = config_volume::config_ref(v) {
                let dir = config_volume::dir_of(pod_dir, v, &r);
                config_volume::refresh(&dir, &r, sources.objects)
            } else if projected::is_file_projection(v) {
                projected::refresh(&projected::dir_of(pod_dir, v), v, sources)
            } else {
                continue;
            };
            if rewritten.map_err(|e| e.of(&v.name))? {
                changed.push(v.name.clone());
            }
        }
        Ok(changed)
    }

    /// The host path behind volume `name`.
    pub fn source(&self, name: &str) -> Option<&Path> {
        self.sources.get(name).map(PathBuf::as_path)
    }

    /// The bind mounts of one container's `volumeMounts`. A `subPath` is resolved inside its
    /// volume (created as a directory when missing, like kubelet) and bind-mounted on the host
    /// side under `<pod dir>/volume-subpaths/<volume>/<container>/<index>`.
    pub fn container_mounts(
        &self,
        pod_dir: &Path,
        container: &str,
        mounts: &[VolumeMount],
    ) -> Result<Vec<BindMount>, VolumeError> {
        let mut out = Vec::new();
        for (i, m) in mounts.iter().enumerate() {
            let source = self
                .source(&m.name)
                .ok_or_else(|| VolumeError::set_up(&m.name, "volume is not set up"))?;
            let source = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                None => source.to_path_buf(),
                Some(sub) => {
                    let target = pod_dir
                        .join("volume-subpaths")
                        .join(&m.name)
                        .join(container)
                        .join(i.to_string());
                    sub_path::bind(source, sub, &target).map_err(|e| VolumeError::SubPath {
                        mount: m.name.clone(),
                        container: container.to_string(),
                        message: e,
                    })?;
                    target
                }
            };
            out.push(BindMount {
                source,
                destination: m.mount_path.clone(),
                readonly: m.read_only || self.read_only.contains(&m.name),
            });
        }
        Ok(out)
    }
}

/// The host path of a `hostPath` or `local` PV (checked like a hostPath volume of its type),
/// `None` for a CSI volume.
pub fn claim_source(volume: &ClaimedVolume, name: &str) -> Result<Option<PathBuf>, VolumeError> {
    match volume {
        ClaimedVolume::Path { path, kind } => {
            let source = crate::spec::HostPathVolumeSource {
                path: path.to_string_lossy().into_owned(),
                kind: kind.clone(),
            };
            host_path::set_up(&source).map(Some).map_err(|e| e.of(name))
        }
        ClaimedVolume::Csi(_) => Ok(None),
    }
}

/// Orders mounts so that a parent directory is mounted before what is mounted inside it (the
/// container runtimes' rule): by the number of path components, stable otherwise.
pub fn order_mounts(mounts: &mut [BindMount]) {
    mounts.sort_by_key(|m| Path::new(&m.destination).components().count());
}
