//! Errors of pod networking: each names the plugin, file or field involved.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("CNI config {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("network config field {field}: {message}")]
    Field {
        field: &'static str,
        message: String,
    },
    #[error("CNI plugin {plugin:?} not found in {dirs:?}")]
    PluginNotFound { plugin: String, dirs: Vec<PathBuf> },
    #[error("CNI plugin {plugin} {command}: cannot run: {source}")]
    Exec {
        plugin: String,
        command: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("CNI plugin {plugin} {command}: no answer within {after:?}")]
    Timeout {
        plugin: String,
        command: &'static str,
        after: Duration,
    },
    #[error("CNI plugin {plugin} {command} failed with code {code}: {msg} ({details})")]
    Plugin {
        plugin: String,
        command: &'static str,
        code: u64,
        msg: String,
        details: String,
    },
    #[error("CNI plugin {plugin} {command}: unreadable output: {message}")]
    Output {
        plugin: String,
        command: &'static str,
        message: String,
    },
    #[error("pod {container_id}: no cached CNI result (was ADD ever done?)")]
    NotAttached { container_id: String },
    #[error(transparent)]
    Netlink(#[from] bosun_cni::link::NetlinkError),
    #[error("node route {ours} ({purpose}) would shadow {theirs}, already in the node's main routing table: choose another {purpose} or remove that route")]
    ShadowsRoute {
        purpose: &'static str,
        ours: String,
        theirs: String,
    },
    #[error("entering the node netns {path}: {source}")]
    NodeNetns {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl NetworkError {
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        NetworkError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
