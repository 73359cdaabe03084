//! The result cache: one JSON file per attachment under `<cni_cache_dir>/results/`, holding
//! the config ADD used and its result, so DEL and CHECK work after an agent restart or a
//! config change, and GC can find attachments of pods that no longer exist. Written
//! atomically (temp file + rename); never holds anything but what ADD returned.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::conf::PortMapping;
use super::NetworkError;

/// One cached attachment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedAttachment {
    pub kind: String,
    pub container_id: String,
    pub if_name: String,
    pub network_name: String,
    pub netns: PathBuf,
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub port_mappings: Vec<PortMapping>,
    /// The conflist ADD ran (`{cniVersion, name, plugins}`).
    pub config: Value,
    pub result: Value,
}

pub const CACHE_KIND: &str = "cniCacheV1";

/// The cache directory of results.
#[derive(Debug, Clone)]
pub struct ResultCache {
    dir: PathBuf,
}

impl ResultCache {
    pub fn new(cni_cache_dir: &Path) -> Self {
        ResultCache {
            dir: cni_cache_dir.join("results"),
        }
    }

    fn path(&self, network: &str, container_id: &str, ifname: &str) -> PathBuf {
        self.dir.join(format!("{network}-{container_id}-{ifname}"))
    }

    pub fn store(&self, entry: &CachedAttachment) -> Result<(), NetworkError> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| NetworkError::io("creating", &self.dir, e))?;
        let path = self.path(&entry.network_name, &entry.container_id, &entry.if_name);
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let bytes = serde_json::to_vec(entry).unwrap_or_default();
        std::fs::write(&tmp, bytes).map_err(|e| NetworkError::io("writing", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| NetworkError::io("renaming", &path, e))
    }

    /// The entry for an attachment; `None` if absent or unreadable (a torn file is no result).
    pub fn load(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Option<CachedAttachment> {
        let bytes = std::fs::read(self.path(network, container_id, ifname)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn remove(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<(), NetworkError> {
        let path = self.path(network, container_id, ifname);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(NetworkError::io("removing", &path, e))
            }
            _ => Ok(()),
        }
    }

    /// Every readable entry of `network`.
    pub fn list(&self, network: &str) -> Result<Vec<CachedAttachment>, NetworkError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(NetworkError::io("listing", &self.dir, e)),
        };
        Ok(entries
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().ends_with(".tmp"))
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice::<CachedAttachment>(&b).ok())
            .filter(|c| c.network_name == network && c.kind == CACHE_KIND)
            .collect())
    }
}
