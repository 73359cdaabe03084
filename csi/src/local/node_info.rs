//! NodeGetVolumeStats (bytes and inodes from statvfs), NodeExpandVolume (loop set-capacity and
//! an online resize2fs), NodeGetInfo and NodeGetCapabilities.

use std::collections::HashMap;

use tonic::Status;

use crate::proto::{
    node_service_capability, volume_usage, NodeExpandVolumeRequest, NodeExpandVolumeResponse,
    NodeGetCapabilitiesResponse, NodeGetInfoResponse, NodeGetVolumeStatsRequest,
    NodeGetVolumeStatsResponse, NodeServiceCapability, Topology, VolumeCondition, VolumeUsage,
};
use crate::TOPOLOGY_NODE_KEY;

use super::validate::{self, internal};
use super::{mounts, tools, Driver};

fn usage(unit: volume_usage::Unit, total: u64, available: u64, used: u64) -> VolumeUsage {
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    VolumeUsage {
        available: clamp(available),
        total: clamp(total),
        used: clamp(used),
        unit: unit as i32,
    }
}

impl Driver {
    /// The loop device of volume `id` if `path` is one of its mounts; NOT_FOUND otherwise.
    async fn mounted_at(
        &self,
        id: &str,
        path: &std::path::Path,
    ) -> Result<std::path::PathBuf, Status> {
        let not_found =
            || Status::not_found(format!("volume {id} is not mounted at {}", path.display()));
        let (device, number) = self.attached(id).await?.ok_or_else(not_found)?;
        match mounts::at(path).map_err(internal)? {
            Some(m) if m.device == number => Ok(device),
            _ => Err(not_found()),
        }
    }

    pub(super) async fn volume_stats(
        &self,
        req: NodeGetVolumeStatsRequest,
    ) -> Result<NodeGetVolumeStatsResponse, Status> {
        let id = validate::required("volume_id", &req.volume_id)?;
        let path = validate::abs_path("volume_path", &req.volume_path)?;
        self.record(id)?;
        self.mounted_at(id, &path).await?;
        let st = nix::sys::statvfs::statvfs(&path)
            .map_err(|e| internal(format!("statvfs {}: {e}", path.display())))?;
        let frag = st.fragment_size() as u64;
        let (blocks, bfree, bavail) = (
            st.blocks() as u64,
            st.blocks_free() as u64,
            st.blocks_available() as u64,
        );
        let (files, ffree) = (st.files() as u64, st.files_free() as u64);
        Ok(NodeGetVolumeStatsResponse {
            usage: vec![
                usage(
                    volume_usage::Unit::Bytes,
                    blocks.saturating_mul(frag),
                    bavail.saturating_mul(frag),
                    blocks.saturating_sub(bfree).saturating_mul(frag),
                ),
                usage(
                    volume_usage::Unit::Inodes,
                    files,
                    ffree,
                    files.saturating_sub(ffree),
                ),
            ],
            volume_condition: Some(VolumeCondition {
                abnormal: false,
                message: String::new(),
            }),
        })
    }

    pub(super) async fn expand(
        &self,
        req: NodeExpandVolumeRequest,
    ) -> Result<NodeExpandVolumeResponse, Status> {
        let id = validate::required("volume_id", &req.volume_id)?;
        let path = validate::abs_path("volume_path", &req.volume_path)?;
        if req.volume_capability.is_some() {
            validate::capability("volume_capability", req.volume_capability.as_ref())?;
        }
        validate::unsupported_map("secrets", &req.secrets, |_| false)?;
        let mut record = self.record(id)?;
        if let Some(range) = &req.capacity_range {
            if range.required_bytes > record.capacity_bytes {
                return Err(Status::out_of_range(format!(
                    "capacity_range.required_bytes {} is more than volume {id}'s {} bytes: \
                     ControllerExpandVolume first",
                    range.required_bytes, record.capacity_bytes
                )));
            }
        }
        let _guard = self.lock.lock().await;
        let device = self.mounted_at(id, &path).await?;
        if record.fs_bytes < record.capacity_bytes {
            if !self.online_resize {
                return Err(Status::failed_precondition(format!(
                    "volume {id} is mounted and this driver cannot grow a mounted filesystem \
                     (it lacks CAP_SYS_RESOURCE; expansion is OFFLINE): unstage the volume, \
                     staging it again grows it"
                )));
            }
            tools::loop_set_capacity(&device).await.map_err(internal)?;
            tools::resize2fs(&device).await.map_err(internal)?;
            record.fs_bytes = record.capacity_bytes;
            self.state.save(&record).map_err(internal)?;
            tracing::info!(volume = %id, bytes = record.capacity_bytes, "grew filesystem online");
        }
        Ok(NodeExpandVolumeResponse {
            capacity_bytes: record.capacity_bytes,
        })
    }

    pub(super) fn capabilities(&self) -> NodeGetCapabilitiesResponse {
        use node_service_capability::rpc::Type;
        let rpc = |t: Type| NodeServiceCapability {
            r#type: Some(node_service_capability::Type::Rpc(
                node_service_capability::Rpc { r#type: t as i32 },
            )),
        };
        NodeGetCapabilitiesResponse {
            capabilities: vec![
                rpc(Type::StageUnstageVolume),
                rpc(Type::GetVolumeStats),
                rpc(Type::ExpandVolume),
                rpc(Type::VolumeCondition),
            ],
        }
    }

    pub(super) fn info(&self) -> NodeGetInfoResponse {
        NodeGetInfoResponse {
            node_id: self.config.node_id.clone(),
            max_volumes_per_node: self.config.max_volumes,
            accessible_topology: Some(Topology {
                segments: HashMap::from([(
                    TOPOLOGY_NODE_KEY.to_owned(),
                    self.config.node_id.clone(),
                )]),
            }),
        }
    }
}
