//! The node side of `csi` PersistentVolumes: NodeStageVolume to a per-volume staging
//! directory `<root>/csi/staged/<key>/globalmount`, NodePublishVolume to the pod's
//! `<pod dir>/volumes/kubernetes.io~csi/<name>/mount`; on pod delete NodeUnpublishVolume, and
//! NodeUnstageVolume once no pod of the node publishes the volume. Every step is recorded
//! under `<root>/csi/` *before* it is made (`staged/<key>/volume.json`,
//! `published/<pod uid>/<volume>.json`), so what a previous agent left is undone after a
//! restart ([`CsiNode::collect_orphans`]). Drivers are reached at
//! `<plugin dir>/<driver>/csi.sock`. Owns no mount itself: the driver mounts. The published
//! records name their claim, so [`CsiNode::volume_stats`] (`stats.rs`) can ask the drivers
//! for each claim's NodeGetVolumeStats.

use std::path::{Path, PathBuf};

use bosun_csi::client::{Client, ClientError};
use bosun_csi::proto::{
    self, node_service_capability::rpc::Type as NodeCap, volume_capability::access_mode::Mode,
};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::claims::CsiVolume;

mod stats;
pub use stats::ClaimVolumeStats;

/// What a CSI step failed with.
#[derive(Debug, thiserror::Error)]
pub enum CsiError {
    #[error("driver {driver}: {source}")]
    Driver { driver: String, source: ClientError },
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CsiError + 'a {
    move |source| CsiError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// One publication of a volume into a pod (`published/<uid>/<volume>.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Published {
    driver: String,
    volume_id: String,
    target: PathBuf,
    staging: Option<PathBuf>,
    /// The claim the pod mounted it through (records of older agents have none).
    #[serde(default)]
    claim: Option<ClaimName>,
}

/// A PersistentVolumeClaim's namespace and name.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClaimName {
    pub namespace: String,
    pub name: String,
}

/// One staged volume (`staged/<key>/volume.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Staged {
    driver: String,
    volume_id: String,
}

/// The node's CSI volumes.
#[derive(Debug)]
pub struct CsiNode {
    root: PathBuf,
    plugin_dir: PathBuf,
    /// Stage/unstage decisions read every record: one at a time.
    lock: tokio::sync::Mutex<()>,
}

/// kubelet's directory of a pod's csi volume; the driver publishes at `mount` inside it.
pub fn publish_target(pod_dir: &Path, volume: &str) -> PathBuf {
    super::volumes_dir(pod_dir)
        .join("kubernetes.io~csi")
        .join(volume)
        .join("mount")
}

/// The CSI access mode of a PV's access modes (kubelet's mapping).
fn access_mode(modes: &[String]) -> Mode {
    let has = |m: &str| modes.iter().any(|x| x == m);
    if has("ReadWriteOncePod") {
        Mode::SingleNodeSingleWriter
    } else if has("ReadWriteMany") {
        Mode::MultiNodeMultiWriter
    } else if has("ReadOnlyMany") && !has("ReadWriteOnce") {
        Mode::MultiNodeReaderOnly
    } else {
        Mode::SingleNodeWriter
    }
}

fn capability(v: &CsiVolume) -> proto::VolumeCapability {
    bosun_csi::client::MountCapability {
        fs_type: v.fs_type.clone(),
        mount_flags: Vec::new(),
        access_mode: access_mode(&v.access_modes),
    }
    .to_proto()
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), CsiError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).map_err(io("mkdir", dir))?;
    let text = serde_json::to_vec_pretty(value).unwrap_or_default();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("rename", path))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let text = std::fs::read(path).ok()?;
    match serde_json::from_slice(&text) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "unreadable CSI record");
            None
        }
    }
}

/// The files of a directory, empty when it does not exist.
fn entries(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    out.sort();
    out
}

/// A NotFound from a driver on a teardown call: the volume is gone, nothing is left to undo.
fn gone(e: &ClientError) -> bool {
    e.code() == tonic::Code::NotFound
}

impl CsiNode {
    pub fn new(root: &Path, plugin_dir: &Path) -> Self {
        CsiNode {
            root: root.join("csi"),
            plugin_dir: plugin_dir.to_path_buf(),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// `<plugin dir>/<driver>/csi.sock`.
    pub fn socket(&self, driver: &str) -> PathBuf {
        self.plugin_dir.join(driver).join("csi.sock")
    }

    async fn connect(&self, driver: &str) -> Result<Client, CsiError> {
        Client::connect(self.socket(driver))
            .await
            .map_err(|source| CsiError::Driver {
                driver: driver.to_string(),
                source,
            })
    }

    fn staged_dir(&self, driver: &str, volume_id: &str) -> PathBuf {
        let digest = sha2::Sha256::digest(format!("{driver}\0{volume_id}").as_bytes());
        let key = hex::encode(&digest[..12]);
        self.root.join("staged").join(key)
    }

    fn published_dir(&self, pod_uid: &str) -> PathBuf {
        self.root.join("published").join(pod_uid)
    }

    /// Stages (when the driver stages) and publishes `v` at the pod's volume `name`; returns
    /// the published directory. Idempotent.
    pub async fn publish(
        &self,
        pod_uid: &str,
        pod_dir: &Path,
        name: &str,
        v: &CsiVolume,
        read_only: bool,
        claim: ClaimName,
    ) -> Result<PathBuf, CsiError> {
        let driver_err = |source| CsiError::Driver {
            driver: v.driver.clone(),
            source,
        };
        let _guard = self.lock.lock().await;
        let mut client = self.connect(&v.driver).await?;
        let caps = client.node_get_capabilities().await.map_err(driver_err)?;
        let staging = caps.contains(&NodeCap::StageUnstageVolume).then(|| {
            self.staged_dir(&v.driver, &v.volume_handle)
                .join("globalmount")
        });
        let target = publish_target(pod_dir, name);
        let record = Published {
            driver: v.driver.clone(),
            volume_id: v.volume_handle.clone(),
            target: target.clone(),
            staging: staging.clone(),
            claim: Some(claim),
        };
        // The pod's directory exists before its record does: the orphan collector never
        // takes a pod being set up for one that is gone.
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io("mkdir", parent))?;
        }
        let record_path = self.published_dir(pod_uid).join(format!("{name}.json"));
        write_json(&record_path, &record)?;
        let context = v.volume_context.clone().into_iter().collect();
        if let Some(staging) = &staging {
            let staged = Staged {
                driver: v.driver.clone(),
                volume_id: v.volume_handle.clone(),
            };
            let dir = self.staged_dir(&v.driver, &v.volume_handle);
            write_json(&dir.join("volume.json"), &staged)?;
            let r = client
                .node
                .node_stage_volume(proto::NodeStageVolumeRequest {
                    volume_id: v.volume_handle.clone(),
                    staging_target_path: staging.to_string_lossy().into_owned(),
                    volume_capability: Some(capability(v)),
                    volume_context: context,
                    ..Default::default()
                })
                .await;
            r.map_err(|status| {
                driver_err(ClientError::Call {
                    call: "NodeStageVolume",
                    status,
                })
            })?;
        }
        let r = client
            .node
            .node_publish_volume(proto::NodePublishVolumeRequest {
                volume_id: v.volume_handle.clone(),
                staging_target_path: staging
                    .as_deref()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                target_path: target.to_string_lossy().into_owned(),
                volume_capability: Some(capability(v)),
                readonly: read_only || v.read_only,
                volume_context: v.volume_context.clone().into_iter().collect(),
                ..Default::default()
            })
            .await;
        r.map_err(|status| {
            driver_err(ClientError::Call {
                call: "NodePublishVolume",
                status,
            })
        })?;
        tracing::info!(pod = %pod_uid, volume = %name, driver = %v.driver, id = %v.volume_handle, "published CSI volume");
        Ok(target)
    }

    /// Unpublishes every CSI volume of pod `pod_uid` and unstages those no other pod
    /// publishes. A record stays (and is retried by [`collect_orphans`](Self::collect_orphans))
    /// when its driver fails.
    pub async fn release_pod(&self, pod_uid: &str) -> Result<(), CsiError> {
        let _guard = self.lock.lock().await;
        self.release_locked(pod_uid).await
    }

    async fn release_locked(&self, pod_uid: &str) -> Result<(), CsiError> {
        let dir = self.published_dir(pod_uid);
        let mut first_error = None;
        for path in entries(&dir) {
            let Some(p) = read_json::<Published>(&path) else {
                continue;
            };
            let done = match self.connect(&p.driver).await {
                Ok(mut c) => match c.node_unpublish(&p.volume_id, &p.target).await {
                    Ok(()) => Ok(()),
                    Err(e) if gone(&e) => Ok(()),
                    Err(source) => Err(CsiError::Driver {
                        driver: p.driver.clone(),
                        source,
                    }),
                },
                Err(e) => Err(e),
            };
            match done {
                Ok(()) => {
                    tracing::info!(pod = %pod_uid, driver = %p.driver, id = %p.volume_id, "unpublished CSI volume");
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if entries(&dir).is_empty() {
            let _ = std::fs::remove_dir(&dir);
        }
        if let Err(e) = self.unstage_unused().await {
            first_error.get_or_insert(e);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Unstages every staged volume that no publication record names.
    async fn unstage_unused(&self) -> Result<(), CsiError> {
        let published: Vec<Published> = entries(&self.root.join("published"))
            .iter()
            .flat_map(|d| entries(d))
            .filter_map(|p| read_json(&p))
            .collect();
        let mut first_error = None;
        for dir in entries(&self.root.join("staged")) {
            let Some(s) = read_json::<Staged>(&dir.join("volume.json")) else {
                continue;
            };
            let used = published
                .iter()
                .any(|p| p.driver == s.driver && p.volume_id == s.volume_id);
            if used {
                continue;
            }
            let staging = dir.join("globalmount");
            let done = match self.connect(&s.driver).await {
                Ok(mut c) => match c.node_unstage(&s.volume_id, &staging).await {
                    Ok(()) => Ok(()),
                    Err(e) if gone(&e) => Ok(()),
                    Err(source) => Err(CsiError::Driver {
                        driver: s.driver.clone(),
                        source,
                    }),
                },
                Err(e) => Err(e),
            };
            match done {
                Ok(()) => {
                    tracing::info!(driver = %s.driver, id = %s.volume_id, "unstaged CSI volume");
                    let _ = std::fs::remove_file(dir.join("volume.json"));
                    let _ = std::fs::remove_dir(&staging);
                    let _ = std::fs::remove_dir(&dir);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Releases the volumes of pods whose directory `<root>/pods/<uid>` is gone (torn down by
    /// an agent that stopped before its driver answered, or while it was down).
    pub async fn collect_orphans(&self, pods_dir: &Path) -> Result<(), CsiError> {
        let _guard = self.lock.lock().await;
        let mut first_error = None;
        for dir in entries(&self.root.join("published")) {
            let Some(uid) = dir.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            if pods_dir.join(&uid).exists() {
                continue;
            }
            if let Err(e) = self.release_locked(&uid).await {
                first_error.get_or_insert(e);
            }
        }
        if let Err(e) = self.unstage_unused().await {
            first_error.get_or_insert(e);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The volume ids staged on this node and their staging directories, by driver.
    pub fn staged(&self) -> Vec<(String, String, PathBuf)> {
        entries(&self.root.join("staged"))
            .into_iter()
            .filter_map(|d| {
                let s = read_json::<Staged>(&d.join("volume.json"))?;
                Some((s.driver, s.volume_id, d.join("globalmount")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_modes_map_to_csi_modes_like_kubelet() {
        let m = |v: &[&str]| access_mode(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(m(&["ReadWriteOnce"]), Mode::SingleNodeWriter);
        assert_eq!(m(&[]), Mode::SingleNodeWriter);
        assert_eq!(m(&["ReadWriteOncePod"]), Mode::SingleNodeSingleWriter);
        assert_eq!(m(&["ReadOnlyMany"]), Mode::MultiNodeReaderOnly);
        assert_eq!(m(&["ReadWriteMany"]), Mode::MultiNodeMultiWriter);
    }

    #[test]
    fn a_volume_stages_once_per_driver_and_id() {
        let node = CsiNode::new(Path::new("/r"), Path::new("/r/plugins"));
        assert_eq!(node.staged_dir("d", "v"), node.staged_dir("d", "v"));
        assert_ne!(node.staged_dir("d", "v"), node.staged_dir("e", "v"));
        assert!(node.staged_dir("d", "v").starts_with("/r/csi/staged"));
        assert_eq!(
            node.socket("local.csi.bosun.dev"),
            Path::new("/r/plugins/local.csi.bosun.dev/csi.sock")
        );
    }
}
