//! Errors of the runtime: each says what was being done to which object.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{call}: {source}")]
    Syscall {
        call: &'static str,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("cgroup {path}: {message}")]
    Cgroup { path: PathBuf, message: String },
    #[error("starting container {id}: {message}")]
    Start { id: String, message: String },
    #[error("encoding container spec: {0}")]
    Encode(#[from] serde_json::Error),
}

impl RuntimeError {
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RuntimeError::Io {
            op,
            path: path.into(),
            source,
        }
    }
    pub fn sys(call: &'static str, source: nix::errno::Errno) -> Self {
        RuntimeError::Syscall { call, source }
    }
}
