//! Errors of the volume module: which volume, what was being done, and why.

use std::path::PathBuf;

/// A volume could not be set up or mounted into a container.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// kubelet's `MountVolume.SetUp failed` text.
    #[error("MountVolume.SetUp failed for volume {volume:?} : {message}")]
    SetUp { volume: String, message: String },
    #[error(
        "failed to prepare subPath for volumeMount {mount:?} of container {container:?}: {message}"
    )]
    SubPath {
        mount: String,
        container: String,
        message: String,
    },
    #[error("{call} {}: {source}", path.display())]
    Mount {
        call: &'static str,
        path: PathBuf,
        source: nix::Error,
    },
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("mounts left under {}: {left:?}", dir.display())]
    MountsLeft { dir: PathBuf, left: Vec<PathBuf> },
}

impl VolumeError {
    pub fn set_up(volume: &str, message: impl Into<String>) -> Self {
        VolumeError::SetUp {
            volume: volume.to_string(),
            message: message.into(),
        }
    }

    pub(super) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        VolumeError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// The same failure, reported for volume `name` in kubelet's words (a setup error that
    /// names its volume stays as it is).
    pub(super) fn of(self, name: &str) -> Self {
        match self {
            VolumeError::SetUp { volume, message } if volume.is_empty() => {
                VolumeError::set_up(name, message)
            }
            VolumeError::SetUp { .. } => self,
            other => VolumeError::set_up(name, other.to_string()),
        }
    }
}
