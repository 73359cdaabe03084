//! A client of a CSI driver's unix socket: typed helpers for the Identity and Node calls a node
//! agent makes and the Controller calls a control plane makes (create/delete/expand).
//!
//! ```no_run
//! # async fn demo() -> Result<(), bosun_csi::client::ClientError> {
//! use bosun_csi::client::{Client, MountCapability};
//! let mut csi = Client::connect("/var/lib/bosun/plugins/local.csi.bosun.dev/csi.sock").await?;
//! let info = csi.node_get_info().await?;
//! let volume = csi.create_volume("pvc-1", 64 << 20, &MountCapability::default()).await?;
//! csi.node_stage(&volume.volume_id, "/staging/pvc-1".as_ref(), &MountCapability::default())
//!     .await?;
//! # let _ = info; Ok(()) }
//! ```
//!
//! Every call is one RPC; a driver's error comes back as [`ClientError::Call`] with its gRPC
//! status, whose [`code`](ClientError::code) callers match on (`NotFound`, `AlreadyExists`, …).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tonic::transport::{Channel, Endpoint};

use crate::proto::{
    self, controller_client::ControllerClient, identity_client::IdentityClient,
    node_client::NodeClient, volume_capability, CapacityRange, VolumeCapability,
};

/// What a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be connected to.
    #[error("connecting to the CSI driver at {socket}: {source}")]
    Connect {
        socket: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
    /// The driver answered an RPC with an error status.
    #[error("CSI {call}: {} ({})", status.message(), status.code())]
    Call {
        call: &'static str,
        status: tonic::Status,
    },
    /// The driver answered without a field the spec requires.
    #[error("CSI {call}: the response has no {field}")]
    Missing {
        call: &'static str,
        field: &'static str,
    },
}

impl ClientError {
    /// The gRPC code of a driver's error; `Unknown` for errors that are not an RPC's status.
    pub fn code(&self) -> tonic::Code {
        match self {
            ClientError::Call { status, .. } => status.code(),
            _ => tonic::Code::Unknown,
        }
    }
}

/// A filesystem volume capability: the access type every bosun volume uses.
#[derive(Debug, Clone)]
pub struct MountCapability {
    /// `""` lets the driver choose.
    pub fs_type: String,
    pub mount_flags: Vec<String>,
    pub access_mode: proto::volume_capability::access_mode::Mode,
}

impl Default for MountCapability {
    fn default() -> Self {
        MountCapability {
            fs_type: String::new(),
            mount_flags: Vec::new(),
            access_mode: volume_capability::access_mode::Mode::SingleNodeWriter,
        }
    }
}

impl MountCapability {
    /// The CSI message.
    pub fn to_proto(&self) -> VolumeCapability {
        VolumeCapability {
            access_type: Some(volume_capability::AccessType::Mount(
                volume_capability::MountVolume {
                    fs_type: self.fs_type.clone(),
                    mount_flags: self.mount_flags.clone(),
                },
            )),
            access_mode: Some(volume_capability::AccessMode {
                mode: self.access_mode as i32,
            }),
        }
    }
}

/// One connection to a CSI driver, with a client per service sharing it.
#[derive(Debug, Clone)]
pub struct Client {
    pub identity: IdentityClient<Channel>,
    pub controller: ControllerClient<Channel>,
    pub node: NodeClient<Channel>,
}

fn call<T>(
    call: &'static str,
    result: Result<tonic::Response<T>, tonic::Status>,
) -> Result<T, ClientError> {
    result
        .map(tonic::Response::into_inner)
        .map_err(|status| ClientError::Call { call, status })
}

fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

impl Client {
    /// Connects to the driver listening on the unix socket `socket`.
    pub async fn connect(socket: impl AsRef<Path>) -> Result<Client, ClientError> {
        let socket = socket.as_ref();
        let connect_err = |source| ClientError::Connect {
            socket: socket.to_owned(),
            source,
        };
        let channel = Endpoint::from_shared(format!("unix://{}", socket.display()))
            .map_err(connect_err)?
            .connect()
            .await
            .map_err(connect_err)?;
        Ok(Client {
            identity: IdentityClient::new(channel.clone()),
            controller: ControllerClient::new(channel.clone()),
            node: NodeClient::new(channel),
        })
    }

    // ---- Identity ----

    /// The driver's name and version (the name is what CSINode and PVs refer to).
    pub async fn get_plugin_info(&mut self) -> Result<proto::GetPluginInfoResponse, ClientError> {
        let r = self
            .identity
            .get_plugin_info(proto::GetPluginInfoRequest {})
            .await;
        call("GetPluginInfo", r)
    }

    /// The plugin capabilities (controller service, topology, expansion).
    pub async fn get_plugin_capabilities(
        &mut self,
    ) -> Result<Vec<proto::PluginCapability>, ClientError> {
        let r = self
            .identity
            .get_plugin_capabilities(proto::GetPluginCapabilitiesRequest {})
            .await;
        Ok(call("GetPluginCapabilities", r)?.capabilities)
    }

    /// Whether the driver is ready; an unset `ready` means ready, per the spec.
    pub async fn probe(&mut self) -> Result<bool, ClientError> {
        let r = self.identity.probe(proto::ProbeRequest {}).await;
        Ok(call("Probe", r)?.ready.unwrap_or(true))
    }

    // ---- Controller ----

    /// Creates (or, for a name already created compatibly, returns) a volume of at least
    /// `required_bytes`.
    pub async fn create_volume(
        &mut self,
        name: &str,
        required_bytes: i64,
        capability: &MountCapability,
    ) -> Result<proto::Volume, ClientError> {
        self.create_volume_with(proto::CreateVolumeRequest {
            name: name.to_owned(),
            capacity_range: Some(CapacityRange {
                required_bytes,
                limit_bytes: 0,
            }),
            volume_capabilities: vec![capability.to_proto()],
            ..Default::default()
        })
        .await
    }

    /// CreateVolume with a request built by the caller (parameters, topology, limits).
    pub async fn create_volume_with(
        &mut self,
        request: proto::CreateVolumeRequest,
    ) -> Result<proto::Volume, ClientError> {
        let r = self.controller.create_volume(request).await;
        call("CreateVolume", r)?.volume.ok_or(ClientError::Missing {
            call: "CreateVolume",
            field: "volume",
        })
    }

    /// Deletes a volume; a volume that does not exist is success.
    pub async fn delete_volume(&mut self, volume_id: &str) -> Result<(), ClientError> {
        let r = self
            .controller
            .delete_volume(proto::DeleteVolumeRequest {
                volume_id: volume_id.to_owned(),
                secrets: HashMap::new(),
            })
            .await;
        call("DeleteVolume", r).map(drop)
    }

    /// Grows a volume to at least `required_bytes`.
    pub async fn controller_expand_volume(
        &mut self,
        volume_id: &str,
        required_bytes: i64,
    ) -> Result<proto::ControllerExpandVolumeResponse, ClientError> {
        let r = self
            .controller
            .controller_expand_volume(proto::ControllerExpandVolumeRequest {
                volume_id: volume_id.to_owned(),
                capacity_range: Some(CapacityRange {
                    required_bytes,
                    limit_bytes: 0,
                }),
                ..Default::default()
            })
            .await;
        call("ControllerExpandVolume", r)
    }

    // ---- Node ----

    /// The node's id, volume limit and topology (what CSINode records).
    pub async fn node_get_info(&mut self) -> Result<proto::NodeGetInfoResponse, ClientError> {
        let r = self.node.node_get_info(proto::NodeGetInfoRequest {}).await;
        call("NodeGetInfo", r)
    }

    /// The node service's RPC capabilities (stage/unstage, stats, expand).
    pub async fn node_get_capabilities(
        &mut self,
    ) -> Result<Vec<proto::node_service_capability::rpc::Type>, ClientError> {
        let r = self
            .node
            .node_get_capabilities(proto::NodeGetCapabilitiesRequest {})
            .await;
        Ok(call("NodeGetCapabilities", r)?
            .capabilities
            .into_iter()
            .filter_map(|c| match c.r#type {
                Some(proto::node_service_capability::Type::Rpc(rpc)) => {
                    proto::node_service_capability::rpc::Type::try_from(rpc.r#type).ok()
                }
                None => None,
            })
            .collect())
    }

    /// Stages a volume at the node-global `staging`.
    pub async fn node_stage(
        &mut self,
        volume_id: &str,
        staging: &Path,
        capability: &MountCapability,
    ) -> Result<(), ClientError> {
        let r = self
            .node
            .node_stage_volume(proto::NodeStageVolumeRequest {
                volume_id: volume_id.to_owned(),
                staging_target_path: path_str(staging),
                volume_capability: Some(capability.to_proto()),
                ..Default::default()
            })
            .await;
        call("NodeStageVolume", r).map(drop)
    }

    /// Unstages a volume staged at `staging`.
    pub async fn node_unstage(
        &mut self,
        volume_id: &str,
        staging: &Path,
    ) -> Result<(), ClientError> {
        let r = self
            .node
            .node_unstage_volume(proto::NodeUnstageVolumeRequest {
                volume_id: volume_id.to_owned(),
                staging_target_path: path_str(staging),
            })
            .await;
        call("NodeUnstageVolume", r).map(drop)
    }

    /// Publishes a staged volume at a pod's `target`.
    pub async fn node_publish(
        &mut self,
        volume_id: &str,
        staging: &Path,
        target: &Path,
        capability: &MountCapability,
        readonly: bool,
    ) -> Result<(), ClientError> {
        let r = self
            .node
            .node_publish_volume(proto::NodePublishVolumeRequest {
                volume_id: volume_id.to_owned(),
                staging_target_path: path_str(staging),
                target_path: path_str(target),
                volume_capability: Some(capability.to_proto()),
                readonly,
                ..Default::default()
            })
            .await;
        call("NodePublishVolume", r).map(drop)
    }

    /// Unpublishes a volume from `target`.
    pub async fn node_unpublish(
        &mut self,
        volume_id: &str,
        target: &Path,
    ) -> Result<(), ClientError> {
        let r = self
            .node
            .node_unpublish_volume(proto::NodeUnpublishVolumeRequest {
                volume_id: volume_id.to_owned(),
                target_path: path_str(target),
            })
            .await;
        call("NodeUnpublishVolume", r).map(drop)
    }

    /// Bytes and inodes of the volume mounted at `path`.
    pub async fn node_get_volume_stats(
        &mut self,
        volume_id: &str,
        path: &Path,
    ) -> Result<proto::NodeGetVolumeStatsResponse, ClientError> {
        let r = self
            .node
            .node_get_volume_stats(proto::NodeGetVolumeStatsRequest {
                volume_id: volume_id.to_owned(),
                volume_path: path_str(path),
                staging_target_path: String::new(),
            })
            .await;
        call("NodeGetVolumeStats", r)
    }

    /// Grows the filesystem of a volume mounted at `path` (after ControllerExpandVolume).
    pub async fn node_expand(
        &mut self,
        volume_id: &str,
        path: &Path,
        staging: Option<&Path>,
        required_bytes: i64,
    ) -> Result<i64, ClientError> {
        let r = self
            .node
            .node_expand_volume(proto::NodeExpandVolumeRequest {
                volume_id: volume_id.to_owned(),
                volume_path: path_str(path),
                staging_target_path: staging.map(path_str).unwrap_or_default(),
                capacity_range: Some(CapacityRange {
                    required_bytes,
                    limit_bytes: 0,
                }),
                ..Default::default()
            })
            .await;
        Ok(call("NodeExpandVolume", r)?.capacity_bytes)
    }
}
