//! The pod record on disk (`<root>/pods/<uid>/state.json`): enough for a restarted agent to
//! adopt running containers instead of restarting them. Written atomically (temp + rename).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::status::PodStatus;
use crate::spec::Pod;

/// A running container process, as recorded for adoption.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProcessRecord {
    pub pid: i32,
    /// /proc start time; a pid with another start time is a different process.
    pub start_time: u64,
    pub started_unix_ms: u64,
    pub oom_before: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PodRecord {
    pub pod: Pod,
    pub hash: String,
    pub init_done: bool,
    pub init_index: usize,
    pub crashes: BTreeMap<String, u32>,
    pub processes: BTreeMap<String, ProcessRecord>,
    pub status: PodStatus,
}

pub const STATE_FILE: &str = "state.json";

pub fn save(dir: &Path, record: &PodRecord) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(".state.json.tmp");
    let data = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, data)?;
    std::fs::rename(tmp, dir.join(STATE_FILE))
}

pub fn load(dir: &Path) -> std::io::Result<PodRecord> {
    let data = std::fs::read(dir.join(STATE_FILE))?;
    serde_json::from_slice(&data).map_err(std::io::Error::other)
}

/// What `<root>/pods` holds: the readable records, and the pod directories whose record exists
/// but cannot be read (their containers may be running: the caller must leave them alone,
/// never treat them as absent).
#[derive(Debug, Default)]
pub struct PodRecords {
    pub records: Vec<PodRecord>,
    /// (pod directory, why its record cannot be read).
    pub unreadable: Vec<(PathBuf, String)>,
}

/// All pod records under `<root>/pods`. A missing `pods_dir` holds no pods; a directory that
/// cannot be listed is an error (nothing is known). A pod directory without a record (the
/// previous agent stopped before writing it) is skipped with a warning.
pub fn load_all(pods_dir: &Path) -> std::io::Result<PodRecords> {
    let entries = match std::fs::read_dir(pods_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PodRecords::default()),
        Err(e) => return Err(e),
    };
    let mut out = PodRecords::default();
    for e in entries {
        let dir = e?.path();
        if !dir.is_dir() {
            continue;
        }
        match load(&dir) {
            Ok(r) => out.records.push(r),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(dir = %dir.display(), "pod directory without a record; skipping it")
            }
            Err(err) => out.unreadable.push((dir, err.to_string())),
        }
    }
    Ok(out)
}

/// Milliseconds since the epoch (how records store instants).
pub fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_records_are_reported_not_skipped() {
        let root = tempfile::tempdir().expect("tempdir");
        let pods = root.path().join("pods");
        assert!(load_all(&pods).expect("missing dir").records.is_empty());
        std::fs::create_dir_all(pods.join("no-record")).expect("mkdir");
        std::fs::create_dir_all(pods.join("broken")).expect("mkdir");
        std::fs::write(pods.join("broken").join(STATE_FILE), "{\"pod\": 1").expect("write");
        let found = load_all(&pods).expect("listed");
        assert!(found.records.is_empty());
        assert_eq!(found.unreadable.len(), 1, "{found:?}");
        assert!(found.unreadable[0].0.ends_with("broken"));
        // A pods "directory" that cannot be listed is an error, not an empty node.
        let file = root.path().join("file");
        std::fs::write(&file, "").expect("write");
        assert!(load_all(&file).is_err());
    }
}
