//! A pod's volumes from the worker's side: set up once before the first container that needs
//! them (again after an agent restart: setup is idempotent), then each container's mounts. A
//! volume that cannot be set up keeps the container Waiting in `ContainerCreating` (kubelet's
//! FailedMount) and is retried with the container's backoff; a bad subPath is a
//! `CreateContainerConfigError`.

use super::container_spec::pod_resources;
use super::start::StartFailure;
use super::worker::PodWorker;
use crate::config_source::ObjectKind;
use crate::runtime::BindMount;
use crate::spec::{Container, Volume};
use crate::volume::PodVolumes;

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
            let dir = pod_dir.clone();
            let set_up = tokio::task::spawn_blocking(move || {
                PodVolumes::set_up(&dir, &volumes, limit, &objects)
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
