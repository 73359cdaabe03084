//! A pod's volumes from the worker's side: set up once before the first container that needs
//! them (again after an agent restart: setup is idempotent), then each container's mounts. A
//! volume that cannot be set up keeps the container Waiting in `ContainerCreating` (kubelet's
//! FailedMount) and is retried with the container's backoff; a bad subPath is a
//! `CreateContainerConfigError`.

use super::container_spec::pod_resources;
use super::start::StartFailure;
use super::worker::PodWorker;
use crate::runtime::BindMount;
use crate::spec::Container;
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
            let volumes = self.pod.spec.volumes.clone();
            let limit = pod_resources(&self.pod, None)
                .ok()
                .and_then(|r| r.memory_limit_bytes)
                .and_then(|b| u64::try_from(b).ok());
            let dir = pod_dir.clone();
            let set_up =
                tokio::task::spawn_blocking(move || PodVolumes::set_up(&dir, &volumes, limit))
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
