//! A pod's volumes from the worker's side: set up once before the first container that needs
//! them (again after an agent restart: setup is idempotent), then each container's mounts. A
//! volume that cannot be set up keeps the container Waiting in `ContainerCreating` (kubelet's
//! FailedMount) and is retried with the container's backoff; a bad subPath is a
//! `CreateContainerConfigError`. A `persistentVolumeClaim` volume waits (ContainerCreating,
//! kubelet's `PVC is not bound` text) until its claim is Bound, then its PV is mounted:
//! `hostPath`/`local` bind-mounted, `csi` staged and published by the driver.

use super::container_spec::pod_resources;
use super::start::StartFailure;
use super::worker::PodWorker;
use crate::config_source::ObjectKind;
use crate::runtime::BindMount;
use crate::spec::{Container, Volume};
use crate::volume::{ClaimedVolume, PodVolumes, VolumeError};
use std::collections::BTreeMap;
use std::path::PathBuf;

impl PodWorker {
    /// The bind mounts of `container`'s volumeMounts, setting the pod's volumes up first.
    pub(super) async fn volume_mounts(
        &mut self,
        container: &Container,
    ) -> Result<Vec<BindMount>, StartFailure> {
        if self.pod.spec.volumes.is_empty() {
            return Ok(Vec::new());
        }
        let pod_dir = self.ctx.pod_state_dir(&self.uid);
        if self.volumes.is_none() {
            self.wait_first_read(&volume_references(&self.pod.spec.volumes))
                .await?;
            let objects = self.object_reader();
            let volumes = self.pod.spec.volumes.clone();
            let limit = pod_resources(&self.pod, None)
                .ok()
                .and_then(|r| r.memory_limit_bytes)
                .and_then(|b| u64::try_from(b).ok());
            let claims = self.mount_claims().await?;
            let dir = pod_dir.clone();
            let set_up = tokio::task::spawn_blocking(move || {
                PodVolumes::set_up(&dir, &volumes, limit, &objects, &claims)
            })
            .await
            .map_err(|e| StartFailure::Waiting {
                reason: "ContainerCreating",
                message: e.to_string(),
            })?;
            let volumes = set_up.map_err(|e| StartFailure::Waiting {
                reason: "ContainerCreating",
                message: e.to_string(),
            })?;
            self.volumes = Some(volumes);
        }
        let volumes = self.volumes.clone().unwrap_or_default();
        let name = container.name.clone();
        let mounts = container.volume_mounts.clone();
        tokio::task::spawn_blocking(move || volumes.container_mounts(&pod_dir, &name, &mounts))
            .await
            .map_err(|e| StartFailure::Waiting {
                reason: "CreateContainerConfigError",
                message: e.to_string(),
            })?
            .map_err(|e| StartFailure::Waiting {
                reason: "CreateContainerConfigError",
                message: e.to_string(),
            })
    }
}

impl PodWorker {
    /// Resolves each `persistentVolumeClaim` volume to its PV and makes it ready on the node:
    /// the host directory of each, by volume name.
    async fn mount_claims(&self) -> Result<BTreeMap<String, PathBuf>, StartFailure> {
        let waiting = |message: String| StartFailure::Waiting {
            reason: "ContainerCreating",
            message,
        };
        let mut out = BTreeMap::new();
        for v in &self.pod.spec.volumes {
            let Some(pvc) = &v.persistent_volume_claim else {
                continue;
            };
            let Some(source) = self.ctx.claim_source.get() else {
                let message = "no API to read PersistentVolumeClaims from (the agent has no \
                               --kubeconfig)";
                return Err(waiting(message.to_string()));
            };
            let ns = self.pod.metadata.namespace.clone();
            let resolved = source
                .resolve(ns, pvc.claim_name.clone())
                .await
                .map_err(|e| waiting(VolumeError::set_up(&v.name, e.to_string()).to_string()))?;
            let path = match &resolved.volume {
                ClaimedVolume::Csi(csi) => self
                    .ctx
                    .csi
                    .publish(
                        &self.uid,
                        &self.ctx.pod_state_dir(&self.uid),
                        &v.name,
                        csi,
                        pvc.read_only,
                    )
                    .await
                    .map_err(|e| {
                        let message =
                            format!("MountVolume.SetUp failed for volume {:?} : {e}", v.name);
                        waiting(message)
                    })?,
                other => {
                    let (other, name) = (other.clone(), v.name.clone());
                    let path = tokio::task::spawn_blocking(move || {
                        crate::volume::claim_source(&other, &name)
                    })
                    .await
                    .map_err(|e| waiting(e.to_string()))?
                    .map_err(|e| waiting(e.to_string()))?;
                    path.unwrap_or_default()
                }
            };
            tracing::info!(pod = %self.pod.metadata.name, volume = %v.name, pv = %resolved.pv_name, path = %path.display(), "claim mounted");
            out.insert(v.name.clone(), path);
        }
        Ok(out)
    }
}

/// The ConfigMaps and Secrets the pod's volumes show.
fn volume_references(volumes: &[Volume]) -> Vec<(ObjectKind, String)> {
    let cms = volumes.iter().filter_map(|v| v.config_map.as_ref());
    let secrets = volumes.iter().filter_map(|v| v.secret.as_ref());
    cms.map(|c| (ObjectKind::ConfigMap, c.name.clone()))
        .chain(secrets.map(|s| (ObjectKind::Secret, s.secret_name.clone())))
        .collect()
}

impl PodWorker {
    /// Whether the pod has configMap or secret volumes to keep up to date.
    pub(super) fn has_config_volumes(&self) -> bool {
        !volume_references(&self.pod.spec.volumes).is_empty()
    }

    /// Rewrites the configMap and secret volumes whose objects changed (after a watch event).
    pub(super) async fn refresh_config_volumes(&mut self) {
        if self.volumes.is_none() || !self.has_config_volumes() {
            return;
        }
        let objects = self.object_reader();
        let volumes = self.pod.spec.volumes.clone();
        let dir = self.ctx.pod_state_dir(&self.uid);
        let done =
            tokio::task::spawn_blocking(move || PodVolumes::refresh(&dir, &volumes, &objects))
                .await;
        match done {
            Ok(Ok(changed)) if !changed.is_empty() => {
                tracing::info!(pod = %self.pod.metadata.name, volumes = ?changed, "volume content updated");
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(pod = %self.pod.metadata.name, error = %e, "updating volumes; keeping the last content")
            }
            Err(e) => tracing::warn!(error = %e, "volume update task"),
        }
    }
}
