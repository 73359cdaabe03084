//! `bosun-csi-local`: a CSI driver (Identity, Controller and Node on one socket) whose volumes
//! are sparse files holding an ext4 filesystem, staged on a loop device and bind-mounted into
//! pods. A volume lives on the node that made it (topology key [`crate::TOPOLOGY_NODE_KEY`]).
//!
//! Modules: `identity`, `controller`, `node` (stage/unstage), `publish` (publish/unpublish),
//! `node_info` (stats, expand, info, capabilities); `state` (records under `--state-dir`),
//! `tools` (mkfs/resize2fs/losetup), `mounts` (mountinfo, mount calls), `validate`.
//!
//! Every mutating call holds one driver-wide lock, and each re-reads the kernel's state
//! (which loop device holds an image, what is mounted where) instead of trusting memory, so
//! repeated calls give the same answer and a restarted driver picks up where it was.

mod controller;
mod identity;
mod mounts;
mod node;
mod node_info;
mod publish;
mod state;
mod tools;
mod validate;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;

use crate::proto::{
    controller_server::ControllerServer, identity_server::IdentityServer, node_server::NodeServer,
};

pub use state::{id_for_name, StateError};

/// The driver's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The CSI driver name (`GetPluginInfo`).
    pub driver_name: String,
    /// This node's id (`NodeGetInfo`, the volumes' topology).
    pub node_id: String,
    /// Where images and records live.
    pub state_dir: PathBuf,
    /// `NodeGetInfo.max_volumes_per_node`.
    pub max_volumes: i64,
}

/// Serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{op} socket {path}: {source}")]
    Socket {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("serving CSI: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// The driver: one value behind every service.
#[derive(Debug)]
pub struct Driver {
    config: Config,
    state: state::State,
    lock: tokio::sync::Mutex<()>,
    /// Whether mounted filesystems can be grown: ext4's online resize ioctl needs
    /// CAP_SYS_RESOURCE. Without it the driver advertises OFFLINE expansion and grows a
    /// filesystem when it stages it (before mounting).
    online_resize: bool,
}

impl Driver {
    /// Opens the state directory.
    pub fn new(config: Config) -> Result<Driver, StateError> {
        let state = state::State::open(&config.state_dir)?;
        let online_resize = caps::has_cap(
            None,
            caps::CapSet::Effective,
            caps::Capability::CAP_SYS_RESOURCE,
        )
        .unwrap_or(false);
        if !online_resize {
            tracing::warn!(
                "no CAP_SYS_RESOURCE: volumes grow when staged (OFFLINE expansion), not while mounted"
            );
        }
        Ok(Driver {
            config,
            state,
            lock: tokio::sync::Mutex::new(()),
            online_resize,
        })
    }
}

/// Binds `socket` (replacing a stale socket file) and serves the three services until
/// `shutdown` completes.
pub async fn serve(
    driver: Driver,
    socket: &Path,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    use std::os::unix::fs::FileTypeExt;
    let sock_err = |op| {
        move |source| ServeError::Socket {
            op,
            path: socket.to_owned(),
            source,
        }
    };
    if let Ok(meta) = std::fs::symlink_metadata(socket) {
        if meta.file_type().is_socket() {
            std::fs::remove_file(socket).map_err(sock_err("removing stale"))?;
        }
    }
    if let Some(parent) = socket.parent() {
        std::fs::create_dir_all(parent).map_err(sock_err("creating the directory of"))?;
    }
    let listener = UnixListener::bind(socket).map_err(sock_err("binding"))?;
    let driver = Arc::new(driver);
    tonic::transport::Server::builder()
        .add_service(IdentityServer::from_arc(driver.clone()))
        .add_service(ControllerServer::from_arc(driver.clone()))
        .add_service(NodeServer::from_arc(driver))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}
