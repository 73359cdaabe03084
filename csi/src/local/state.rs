//! The driver's persistent state under `--state-dir`: per volume an image file
//! `volumes/<id>.img` and its record `volumes/<id>.json` (written atomically, after the image
//! is complete). Volume ids derive from the CreateVolume name, so a create retried after a
//! crash finds (or finishes) the same volume; the kernel's state (loop devices, mounts) is
//! re-read on every call, never cached, so a restarted driver carries on.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// State could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("volume record {path} is not valid: {source}")]
    Decode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// What the driver remembers about a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub id: String,
    pub name: String,
    pub capacity_bytes: i64,
    /// The size the ext4 filesystem was last made or grown to; below `capacity_bytes` after a
    /// ControllerExpandVolume until the node grows it.
    #[serde(default)]
    pub fs_bytes: i64,
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct State {
    dir: PathBuf,
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// The volume id for a CreateVolume name: `vol-` + 32 hex digits of its SHA-256.
pub fn id_for_name(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    format!("vol-{}", &hex::encode(digest)[..32])
}

/// Whether `id` has the shape of our ids (anything else names no volume of ours, and never
/// reaches a path).
pub fn valid_id(id: &str) -> bool {
    id.strip_prefix("vol-")
        .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

impl State {
    /// Opens (creating) the state directory.
    pub fn open(dir: &Path) -> Result<State, StateError> {
        let volumes = dir.join("volumes");
        std::fs::create_dir_all(&volumes).map_err(io("creating", &volumes))?;
        Ok(State {
            dir: dir.to_owned(),
        })
    }

    /// The directory volumes live in (for capacity reports).
    pub fn volumes_dir(&self) -> PathBuf {
        self.dir.join("volumes")
    }

    /// The image file of volume `id` (a valid id).
    pub fn image(&self, id: &str) -> PathBuf {
        self.volumes_dir().join(format!("{id}.img"))
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.volumes_dir().join(format!("{id}.json"))
    }

    /// The record of volume `id`, or None if there is no such volume.
    pub fn load(&self, id: &str) -> Result<Option<VolumeRecord>, StateError> {
        if !valid_id(id) {
            return Ok(None);
        }
        let path = self.record_path(id);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("reading", &path)(e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StateError::Decode { path, source })
    }

    /// Writes a record atomically (temporary file, fsync, rename).
    pub fn save(&self, record: &VolumeRecord) -> Result<(), StateError> {
        let path = self.record_path(&record.id);
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(record).map_err(|source| StateError::Decode {
            path: path.clone(),
            source,
        })?;
        let mut file = std::fs::File::create(&tmp).map_err(io("creating", &tmp))?;
        file.write_all(&json).map_err(io("writing", &tmp))?;
        file.sync_all().map_err(io("syncing", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("renaming into", &path))
    }

    /// Removes a volume's record and image; absent files are fine.
    pub fn remove(&self, id: &str) -> Result<(), StateError> {
        for path in [self.record_path(id), self.image(id)] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("removing", &path)(e)),
            }
        }
        Ok(())
    }

    /// Sets the length of volume `id`'s image (sparse: no blocks are written).
    pub fn grow_image(&self, id: &str, bytes: u64) -> Result<(), StateError> {
        let path = self.image(id);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io("opening", &path))?;
        file.set_len(bytes).map_err(io("growing", &path))?;
        file.sync_all().map_err(io("syncing", &path))
    }

    /// Creates the sparse file `path` of `bytes`, replacing a leftover of an interrupted create.
    pub fn create_sparse(path: &Path, bytes: u64) -> Result<(), StateError> {
        let file = std::fs::File::create(path).map_err(io("creating", path))?;
        file.set_len(bytes).map_err(io("sizing", path))
    }

    /// Renames a finished image into place.
    pub fn rename(from: &Path, to: &Path) -> Result<(), StateError> {
        std::fs::rename(from, to).map_err(io("renaming into", to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_checked() {
        let id = id_for_name("pvc-1");
        assert_eq!(id, id_for_name("pvc-1"));
        assert_ne!(id, id_for_name("pvc-2"));
        assert!(valid_id(&id));
        assert!(!valid_id("vol-../../etc"));
        assert!(!valid_id(""));
    }

    #[test]
    fn records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        let rec = VolumeRecord {
            id: id_for_name("a"),
            name: "a".into(),
            capacity_bytes: 1 << 26,
            fs_bytes: 1 << 26,
        };
        assert_eq!(state.load(&rec.id).unwrap(), None);
        state.save(&rec).unwrap();
        assert_eq!(state.load(&rec.id).unwrap(), Some(rec.clone()));
        state.remove(&rec.id).unwrap();
        state.remove(&rec.id).unwrap();
        assert_eq!(state.load(&rec.id).unwrap(), None);
    }
}
