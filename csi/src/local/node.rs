//! The Node service: the trait's entry points, and NodeStageVolume/NodeUnstageVolume (the
//! image on a loop device, its ext4 mounted at the staging path). Publish is in `publish`,
//! stats/expand/info in `node_info`.

use std::path::{Path, PathBuf};

use tonic::{Request, Response, Status};

use crate::proto::{
    node_server::Node, NodeExpandVolumeRequest, NodeExpandVolumeResponse,
    NodeGetCapabilitiesRequest, NodeGetCapabilitiesResponse, NodeGetInfoRequest,
    NodeGetInfoResponse, NodeGetVolumeStatsRequest, NodeGetVolumeStatsResponse,
    NodePublishVolumeRequest, NodePublishVolumeResponse, NodeStageVolumeRequest,
    NodeStageVolumeResponse, NodeUnpublishVolumeRequest, NodeUnpublishVolumeResponse,
    NodeUnstageVolumeRequest, NodeUnstageVolumeResponse,
};

use super::state::VolumeRecord;
use super::validate::{self, internal};
use super::{mounts, tools, Driver};

/// How long a detach waits for the kernel's last close of the loop device.
const DETACH_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// `major:minor` of a block device, as mountinfo writes it.
pub fn device_number(device: &Path) -> Result<String, Status> {
    let st = nix::sys::stat::stat(device)
        .map_err(|e| internal(format!("stat {}: {e}", device.display())))?;
    Ok(format!(
        "{}:{}",
        nix::sys::stat::major(st.st_rdev),
        nix::sys::stat::minor(st.st_rdev)
    ))
}

impl Driver {
    /// The record of volume `id`, NOT_FOUND if there is none.
    pub(super) fn record(&self, id: &str) -> Result<VolumeRecord, Status> {
        self.state
            .load(id)
            .map_err(internal)?
            .ok_or_else(|| Status::not_found(format!("volume {id} does not exist")))
    }

    /// The loop device holding volume `id`'s image and its `major:minor`, if attached.
    pub(super) async fn attached(&self, id: &str) -> Result<Option<(PathBuf, String)>, Status> {
        match tools::loop_find(&self.state.image(id))
            .await
            .map_err(internal)?
        {
            Some(dev) => {
                let number = device_number(&dev)?;
                Ok(Some((dev, number)))
            }
            None => Ok(None),
        }
    }

    /// Detaches volume `id`'s loop device, UNAVAILABLE (the CO retries) if the kernel still
    /// holds it after a while.
    pub(super) async fn detach(&self, id: &str, device: &Path) -> Result<(), Status> {
        let image = self.state.image(id);
        let gone = tools::loop_detach_and_wait(device, &image, DETACH_WAIT)
            .await
            .map_err(internal)?;
        if !gone {
            return Err(Status::unavailable(format!(
                "{} (volume {id}) is still in use after detaching; retry",
                device.display()
            )));
        }
        Ok(())
    }

    async fn stage(&self, req: NodeStageVolumeRequest) -> Result<(), Status> {
        let id = validate::required("volume_id", &req.volume_id)?;
        let staging = validate::abs_path("staging_target_path", &req.staging_target_path)?;
        let flags = validate::capability("volume_capability", req.volume_capability.as_ref())?;
        validate::unsupported_map("secrets", &req.secrets, |_| false)?;
        let mut record = self.record(id)?;
        let _guard = self.lock.lock().await;
        let attached = self.attached(id).await?;
        if let Some(m) = mounts::at(&staging).map_err(internal)? {
            if attached
                .as_ref()
                .is_some_and(|(_, number)| *number == m.device)
            {
                return Ok(());
            }
            return Err(Status::already_exists(format!(
                "staging_target_path {} already has another mount ({} {})",
                staging.display(),
                m.fs_type,
                m.device
            )));
        }
        let (device, attached_now) = match attached {
            Some((dev, _)) => (dev, false),
            None => {
                let image = self.state.image(id);
                (tools::loop_attach(&image).await.map_err(internal)?, true)
            }
        };
        let result = self
            .mount_staged(&mut record, &device, &staging, &flags)
            .await;
        if result.is_err() && attached_now {
            let _ = tools::loop_detach(&device).await;
        }
        result?;
        tracing::info!(volume = %id, device = %device.display(), staging = %staging.display(), "staged");
        Ok(())
    }

    /// Grows the filesystem if a ControllerExpandVolume left it behind and nothing has it
    /// mounted (an offline resize), then mounts it at `staging`.
    async fn mount_staged(
        &self,
        record: &mut VolumeRecord,
        device: &Path,
        staging: &Path,
        flags: &[String],
    ) -> Result<(), Status> {
        let number = device_number(device)?;
        let in_use = mounts::all()
            .map_err(internal)?
            .iter()
            .any(|m| m.device == number);
        if record.fs_bytes < record.capacity_bytes && !in_use {
            tools::loop_set_capacity(device).await.map_err(internal)?;
            tools::e2fsck(device).await.map_err(internal)?;
            tools::resize2fs(device).await.map_err(internal)?;
            record.fs_bytes = record.capacity_bytes;
            self.state.save(record).map_err(internal)?;
            tracing::info!(volume = %record.id, bytes = record.fs_bytes, "grew filesystem offline");
        }
        let (ms, data) = mounts::split_flags(flags);
        std::fs::create_dir_all(staging)
            .map_err(|e| internal(format!("creating {}: {e}", staging.display())))?;
        mounts::mount_ext4(device, staging, ms, &data).map_err(|e| match e {
            mounts::MountError::Call {
                source: nix::Error::EINVAL,
                ..
            } => Status::invalid_argument(format!(
                "volume_capability.mount.mount_flags {flags:?}: ext4 refused them ({e})"
            )),
            e => internal(e),
        })
    }

    async fn unstage(&self, req: NodeUnstageVolumeRequest) -> Result<(), Status> {
        let id = validate::required("volume_id", &req.volume_id)?;
        let staging = validate::abs_path("staging_target_path", &req.staging_target_path)?;
        self.record(id)?;
        let _guard = self.lock.lock().await;
        let Some((device, number)) = self.attached(id).await? else {
            return Ok(());
        };
        let staging_real = std::fs::canonicalize(&staging).unwrap_or_else(|_| staging.clone());
        let elsewhere: Vec<PathBuf> = mounts::all()
            .map_err(internal)?
            .into_iter()
            .filter(|m| m.device == number && m.mount_point != staging_real)
            .map(|m| m.mount_point)
            .collect();
        if let Some(path) = elsewhere.first() {
            return Err(Status::failed_precondition(format!(
                "volume {id} is still published at {}; unpublish it first",
                path.display()
            )));
        }
        while let Some(m) = mounts::at(&staging).map_err(internal)? {
            if m.device != number {
                break;
            }
            mounts::unmount(&staging).map_err(internal)?;
        }
        self.detach(id, &device).await?;
        tracing::info!(volume = %id, device = %device.display(), "unstaged");
        Ok(())
    }
}

#[tonic::async_trait]
impl Node for Driver {
    async fn node_stage_volume(
        &self,
        request: Request<NodeStageVolumeRequest>,
    ) -> Result<Response<NodeStageVolumeResponse>, Status> {
        self.stage(request.into_inner()).await?;
        Ok(Response::new(NodeStageVolumeResponse {}))
    }

    async fn node_unstage_volume(
        &self,
        request: Request<NodeUnstageVolumeRequest>,
    ) -> Result<Response<NodeUnstageVolumeResponse>, Status> {
        self.unstage(request.into_inner()).await?;
        Ok(Response::new(NodeUnstageVolumeResponse {}))
    }

    async fn node_publish_volume(
        &self,
        request: Request<NodePublishVolumeRequest>,
    ) -> Result<Response<NodePublishVolumeResponse>, Status> {
        self.publish(request.into_inner()).await?;
        Ok(Response::new(NodePublishVolumeResponse {}))
    }

    async fn node_unpublish_volume(
        &self,
        request: Request<NodeUnpublishVolumeRequest>,
    ) -> Result<Response<NodeUnpublishVolumeResponse>, Status> {
        self.unpublish(request.into_inner()).await?;
        Ok(Response::new(NodeUnpublishVolumeResponse {}))
    }

    async fn node_get_volume_stats(
        &self,
        request: Request<NodeGetVolumeStatsRequest>,
    ) -> Result<Response<NodeGetVolumeStatsResponse>, Status> {
        self.volume_stats(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn node_expand_volume(
        &self,
        request: Request<NodeExpandVolumeRequest>,
    ) -> Result<Response<NodeExpandVolumeResponse>, Status> {
        self.expand(request.into_inner()).await.map(Response::new)
    }

    async fn node_get_capabilities(
        &self,
        _: Request<NodeGetCapabilitiesRequest>,
    ) -> Result<Response<NodeGetCapabilitiesResponse>, Status> {
        Ok(Response::new(self.capabilities()))
    }

    async fn node_get_info(
        &self,
        _: Request<NodeGetInfoRequest>,
    ) -> Result<Response<NodeGetInfoResponse>, Status> {
        Ok(Response::new(self.info()))
    }
}
