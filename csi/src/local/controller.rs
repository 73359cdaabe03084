//! The Controller service: CreateVolume (a sparse image file with ext4 on it), DeleteVolume,
//! ValidateVolumeCapabilities, GetCapacity, ControllerExpandVolume (the file grows; the node
//! grows the filesystem), ControllerGetCapabilities.

use std::collections::HashMap;

use tonic::{Request, Response, Status};

use crate::proto::{
    controller_server::Controller, controller_service_capability,
    validate_volume_capabilities_response, CapacityRange, ControllerExpandVolumeRequest,
    ControllerExpandVolumeResponse, ControllerGetCapabilitiesRequest,
    ControllerGetCapabilitiesResponse, ControllerServiceCapability, CreateVolumeRequest,
    CreateVolumeResponse, DeleteVolumeRequest, DeleteVolumeResponse, GetCapacityRequest,
    GetCapacityResponse, Topology, ValidateVolumeCapabilitiesRequest,
    ValidateVolumeCapabilitiesResponse, Volume,
};
use crate::TOPOLOGY_NODE_KEY;

use super::state::{id_for_name, State, VolumeRecord};
use super::validate::{self, internal};
use super::{tools, Driver};

const MIB: i64 = 1 << 20;
/// The smallest volume (ext4 with a journal needs a few MiB).
pub const MIN_BYTES: i64 = 16 * MIB;
/// The size of a volume created without a capacity range.
pub const DEFAULT_BYTES: i64 = 1024 * MIB;

/// The size to give a volume for `range`: at least `required` (and [`MIN_BYTES`]) rounded up to
/// a MiB, at most `limit`; OUT_OF_RANGE when no size fits.
pub fn size_for(range: Option<&CapacityRange>) -> Result<i64, Status> {
    let (required, limit) = range.map_or((0, 0), |r| (r.required_bytes, r.limit_bytes));
    if required < 0 || limit < 0 {
        return Err(Status::invalid_argument(
            "capacity_range: required_bytes and limit_bytes must not be negative",
        ));
    }
    if limit > 0 && required > limit {
        return Err(Status::out_of_range(format!(
            "capacity_range: required_bytes {required} exceeds limit_bytes {limit}"
        )));
    }
    let want = if required == 0 && limit == 0 {
        DEFAULT_BYTES
    } else {
        required.max(MIN_BYTES)
    };
    let rounded = want
        .checked_add(MIB - 1)
        .map(|b| b / MIB * MIB)
        .ok_or_else(|| Status::out_of_range("capacity_range.required_bytes is too large"))?;
    if limit == 0 || rounded <= limit {
        return Ok(rounded);
    }
    // The limit cuts the rounding: take the limit in whole 4 KiB blocks if that still fits.
    let at_limit = limit / 4096 * 4096;
    if at_limit >= required.max(MIN_BYTES) {
        return Ok(at_limit);
    }
    Err(Status::out_of_range(format!(
        "capacity_range: this driver's volumes are at least {MIN_BYTES} bytes, the limit is {limit}"
    )))
}

/// Whether an existing volume of `capacity` satisfies `range`.
fn fits(capacity: i64, range: Option<&CapacityRange>) -> bool {
    range.is_none_or(|r| {
        capacity >= r.required_bytes && (r.limit_bytes == 0 || capacity <= r.limit_bytes)
    })
}

fn rpc(t: controller_service_capability::rpc::Type) -> ControllerServiceCapability {
    ControllerServiceCapability {
        r#type: Some(controller_service_capability::Type::Rpc(
            controller_service_capability::Rpc { r#type: t as i32 },
        )),
    }
}

impl Driver {
    fn topology(&self) -> Topology {
        Topology {
            segments: HashMap::from([(TOPOLOGY_NODE_KEY.to_owned(), self.config.node_id.clone())]),
        }
    }

    fn volume(&self, record: &VolumeRecord) -> Volume {
        Volume {
            capacity_bytes: record.capacity_bytes,
            volume_id: record.id.clone(),
            accessible_topology: vec![self.topology()],
            ..Default::default()
        }
    }

    /// RESOURCE_EXHAUSTED unless the requirements allow this node.
    fn check_topology(&self, req: &CreateVolumeRequest) -> Result<(), Status> {
        let Some(reqs) = &req.accessibility_requirements else {
            return Ok(());
        };
        let ours = |t: &Topology| t.segments.get(TOPOLOGY_NODE_KEY) == Some(&self.config.node_id);
        let allowed = if reqs.requisite.is_empty() {
            reqs.preferred.is_empty() || reqs.preferred.iter().any(ours)
        } else {
            reqs.requisite.iter().any(ours)
        };
        if allowed {
            Ok(())
        } else {
            Err(Status::resource_exhausted(format!(
                "accessibility_requirements: this driver makes volumes on node {:?} only ({TOPOLOGY_NODE_KEY})",
                self.config.node_id
            )))
        }
    }
}

#[tonic::async_trait]
impl Controller for Driver {
    async fn create_volume(
        &self,
        request: Request<CreateVolumeRequest>,
    ) -> Result<Response<CreateVolumeResponse>, Status> {
        let req = request.into_inner();
        let name = validate::required("name", &req.name)?;
        validate::capabilities("volume_capabilities", &req.volume_capabilities)?;
        // The external-provisioner's own keys (`csi.storage.k8s.io/…`) pass; others are refused.
        validate::unsupported_map("parameters", &req.parameters, |k| {
            k.starts_with("csi.storage.k8s.io/")
        })?;
        validate::unsupported_map("secrets", &req.secrets, |_| false)?;
        if req.volume_content_source.is_some() {
            return Err(Status::invalid_argument(
                "volume_content_source: this driver creates empty volumes only",
            ));
        }
        self.check_topology(&req)?;
        let range = req.capacity_range.as_ref();
        let size = size_for(range)?;
        let id = id_for_name(name);

        let _guard = self.lock.lock().await;
        if let Some(existing) = self.state.load(&id).map_err(internal)? {
            if existing.name == name && fits(existing.capacity_bytes, range) {
                return Ok(Response::new(CreateVolumeResponse {
                    volume: Some(self.volume(&existing)),
                }));
            }
            return Err(Status::already_exists(format!(
                "volume {name:?} exists with {} bytes, which capacity_range {range:?} does not allow",
                existing.capacity_bytes
            )));
        }
        let image = self.state.image(&id);
        let partial = image.with_extension("img.partial");
        State::create_sparse(&partial, size as u64).map_err(internal)?;
        if let Err(e) = tools::mkfs_ext4(&partial).await {
            let _ = std::fs::remove_file(&partial);
            return Err(internal(e));
        }
        State::rename(&partial, &image).map_err(internal)?;
        let record = VolumeRecord {
            id,
            name: name.to_owned(),
            capacity_bytes: size,
            fs_bytes: size,
        };
        self.state.save(&record).map_err(internal)?;
        tracing::info!(volume = %record.id, name, bytes = size, "created volume");
        Ok(Response::new(CreateVolumeResponse {
            volume: Some(self.volume(&record)),
        }))
    }

    async fn delete_volume(
        &self,
        request: Request<DeleteVolumeRequest>,
    ) -> Result<Response<DeleteVolumeResponse>, Status> {
        let req = request.into_inner();
        let id = validate::required("volume_id", &req.volume_id)?;
        validate::unsupported_map("secrets", &req.secrets, |_| false)?;
        let _guard = self.lock.lock().await;
        // An id that is not ours, or a volume already gone, is success (spec: NOT_FOUND is
        // answered with OK).
        if self.state.load(id).map_err(internal)?.is_none() {
            return Ok(Response::new(DeleteVolumeResponse {}));
        }
        // Staged means mounted; a loop device without a mount is what a stage interrupted
        // by a crash (or a detach the kernel deferred) leaves, and is detached here.
        if let Some((device, number)) = self.attached(id).await? {
            let mounted = super::mounts::all()
                .map_err(internal)?
                .into_iter()
                .find(|m| m.device == number);
            if let Some(m) = mounted {
                return Err(Status::failed_precondition(format!(
                    "volume {id} is staged on this node ({} at {}); unstage it first",
                    device.display(),
                    m.mount_point.display()
                )));
            }
            self.detach(id, &device).await?;
        }
        self.state.remove(id).map_err(internal)?;
        tracing::info!(volume = %id, "deleted volume");
        Ok(Response::new(DeleteVolumeResponse {}))
    }

    async fn validate_volume_capabilities(
        &self,
        request: Request<ValidateVolumeCapabilitiesRequest>,
    ) -> Result<Response<ValidateVolumeCapabilitiesResponse>, Status> {
        let req = request.into_inner();
        let id = validate::required("volume_id", &req.volume_id)?;
        if req.volume_capabilities.is_empty() {
            return Err(Status::invalid_argument("volume_capabilities is required"));
        }
        if self.state.load(id).map_err(internal)?.is_none() {
            return Err(Status::not_found(format!("volume {id} does not exist")));
        }
        let reply = match validate::capabilities("volume_capabilities", &req.volume_capabilities) {
            Ok(()) => ValidateVolumeCapabilitiesResponse {
                confirmed: Some(validate_volume_capabilities_response::Confirmed {
                    volume_context: req.volume_context,
                    volume_capabilities: req.volume_capabilities,
                    parameters: req.parameters,
                }),
                message: String::new(),
            },
            Err(status) => ValidateVolumeCapabilitiesResponse {
                confirmed: None,
                message: status.message().to_owned(),
            },
        };
        Ok(Response::new(reply))
    }

    async fn get_capacity(
        &self,
        _: Request<GetCapacityRequest>,
    ) -> Result<Response<GetCapacityResponse>, Status> {
        let dir = self.state.volumes_dir();
        let stat = nix::sys::statvfs::statvfs(&dir)
            .map_err(|e| internal(format!("statvfs {}: {e}", dir.display())))?;
        let available = (stat.blocks_available() as u128 * stat.fragment_size() as u128)
            .min(i64::MAX as u128) as i64;
        Ok(Response::new(GetCapacityResponse {
            available_capacity: available,
            maximum_volume_size: None,
            minimum_volume_size: Some(MIN_BYTES),
        }))
    }

    async fn controller_get_capabilities(
        &self,
        _: Request<ControllerGetCapabilitiesRequest>,
    ) -> Result<Response<ControllerGetCapabilitiesResponse>, Status> {
        use controller_service_capability::rpc::Type;
        Ok(Response::new(ControllerGetCapabilitiesResponse {
            capabilities: vec![
                rpc(Type::CreateDeleteVolume),
                rpc(Type::GetCapacity),
                rpc(Type::ExpandVolume),
            ],
        }))
    }

    async fn controller_expand_volume(
        &self,
        request: Request<ControllerExpandVolumeRequest>,
    ) -> Result<Response<ControllerExpandVolumeResponse>, Status> {
        let req = request.into_inner();
        let id = validate::required("volume_id", &req.volume_id)?;
        let range = req
            .capacity_range
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("capacity_range is required"))?;
        if req.volume_capability.is_some() {
            validate::capability("volume_capability", req.volume_capability.as_ref())?;
        }
        validate::unsupported_map("secrets", &req.secrets, |_| false)?;
        let _guard = self.lock.lock().await;
        let mut record = self
            .state
            .load(id)
            .map_err(internal)?
            .ok_or_else(|| Status::not_found(format!("volume {id} does not exist")))?;
        if range.limit_bytes > 0 && record.capacity_bytes > range.limit_bytes {
            return Err(Status::out_of_range(format!(
                "capacity_range.limit_bytes {} is below the volume's {} bytes (volumes do not shrink)",
                range.limit_bytes, record.capacity_bytes
            )));
        }
        if record.capacity_bytes < range.required_bytes {
            let size = size_for(Some(range))?;
            self.state.grow_image(id, size as u64).map_err(internal)?;
            record.capacity_bytes = size;
            self.state.save(&record).map_err(internal)?;
            tracing::info!(volume = %id, bytes = size, "expanded volume");
        }
        Ok(Response::new(ControllerExpandVolumeResponse {
            capacity_bytes: record.capacity_bytes,
            node_expansion_required: true,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(required_bytes: i64, limit_bytes: i64) -> CapacityRange {
        CapacityRange {
            required_bytes,
            limit_bytes,
        }
    }

    #[test]
    fn sizes_honour_the_range() {
        assert_eq!(size_for(None).unwrap(), DEFAULT_BYTES);
        assert_eq!(size_for(Some(&range(64 * MIB, 0))).unwrap(), 64 * MIB);
        assert_eq!(size_for(Some(&range(64 * MIB + 1, 0))).unwrap(), 65 * MIB);
        assert_eq!(size_for(Some(&range(1, 0))).unwrap(), MIN_BYTES);
        assert_eq!(
            size_for(Some(&range(64 * MIB + 1, 64 * MIB + 8192))).unwrap(),
            64 * MIB + 8192
        );
        assert_eq!(
            size_for(Some(&range(0, MIN_BYTES - 1))).unwrap_err().code(),
            tonic::Code::OutOfRange
        );
        assert_eq!(
            size_for(Some(&range(2 * MIB, MIB))).unwrap_err().code(),
            tonic::Code::OutOfRange
        );
        assert_eq!(
            size_for(Some(&range(-1, 0))).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            size_for(Some(&range(i64::MAX, 0))).unwrap_err().code(),
            tonic::Code::OutOfRange
        );
    }

    #[test]
    fn existing_volumes_fit_compatible_ranges() {
        assert!(fits(64 * MIB, None));
        assert!(fits(64 * MIB, Some(&range(64 * MIB, 0))));
        assert!(!fits(64 * MIB, Some(&range(128 * MIB, 0))));
        assert!(!fits(64 * MIB, Some(&range(0, 32 * MIB))));
    }
}
