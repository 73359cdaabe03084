//! NodePublishVolume/NodeUnpublishVolume: the staged filesystem bind-mounted at a pod's target
//! path (read-only when asked), and the bind undone.

use tonic::Status;

use crate::proto::{NodePublishVolumeRequest, NodeUnpublishVolumeRequest};

use super::validate::{self, internal};
use super::{mounts, Driver};

impl Driver {
    pub(super) async fn publish(&self, req: NodePublishVolumeRequest) -> Result<(), Status> {
        let id = validate::required("volume_id", &req.volume_id)?;
        let target = validate::abs_path("target_path", &req.target_path)?;
        let staging = validate::abs_path("staging_target_path", &req.staging_target_path)?;
        let flags = validate::capability("volume_capability", req.volume_capability.as_ref())?;
        validate::unsupported_map("secrets", &req.secrets, |_| false)?;
        // The generic flags (nosuid, noexec, …) apply to the bind; filesystem options (ext4's
        // data string) were applied when the volume was staged.
        let (mut ms, _) = mounts::split_flags(&flags);
        if req.readonly {
            ms |= nix::mount::MsFlags::MS_RDONLY;
        }
        self.record(id)?;
        let _guard = self.lock.lock().await;
        let staged = match self.attached(id).await? {
            Some((_, number)) => mounts::at(&staging)
                .map_err(internal)?
                .filter(|m| m.device == number),
            None => None,
        };
        let Some(staged) = staged else {
            return Err(Status::failed_precondition(format!(
                "volume {id} is not staged at {}",
                staging.display()
            )));
        };
        if let Some(m) = mounts::at(&target).map_err(internal)? {
            let readonly = ms.contains(nix::mount::MsFlags::MS_RDONLY);
            if m.device == staged.device && m.readonly() == readonly {
                return Ok(());
            }
            return Err(Status::already_exists(format!(
                "target_path {} already has a mount ({} {}, {}) that is not this volume {}",
                target.display(),
                m.fs_type,
                m.device,
                if m.readonly() { "ro" } else { "rw" },
                if req.readonly {
                    "read-only"
                } else {
                    "read-write"
                },
            )));
        }
        std::fs::create_dir_all(&target)
            .map_err(|e| internal(format!("creating {}: {e}", target.display())))?;
        mounts::bind(&staging, &target, ms).map_err(internal)?;
        tracing::info!(volume = %id, target = %target.display(), readonly = req.readonly, "published");
        Ok(())
    }

    pub(super) async fn unpublish(&self, req: NodeUnpublishVolumeRequest) -> Result<(), Status> {
        let id = validate::required("volume_id", &req.volume_id)?;
        let target = validate::abs_path("target_path", &req.target_path)?;
        self.record(id)?;
        let _guard = self.lock.lock().await;
        if let Some((_, number)) = self.attached(id).await? {
            while let Some(m) = mounts::at(&target).map_err(internal)? {
                if m.device != number {
                    return Err(Status::failed_precondition(format!(
                        "target_path {} holds a mount ({} {}) that is not volume {id}",
                        target.display(),
                        m.fs_type,
                        m.device
                    )));
                }
                mounts::unmount(&target).map_err(internal)?;
            }
        }
        // The target directory is ours (publish made it if missing); an already-removed or
        // non-empty one (not a mount point any more, so not the volume) is left as it is.
        match std::fs::remove_dir(&target) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::DirectoryNotEmpty
                ) => {}
            Err(e) => return Err(internal(format!("removing {}: {e}", target.display()))),
        }
        tracing::info!(volume = %id, target = %target.display(), "unpublished");
        Ok(())
    }
}
