//! The pod record on disk (`<root>/pods/<uid>/state.json`): enough for a restarted agent to
//! adopt running containers instead of restarting them. Written atomically (temp + rename).

use std::collections::BTreeMap;
use std::path::Path;

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

/// All pod records under `<root>/pods`, skipping unreadable ones (with a warning).
pub fn load_all(pods_dir: &Path) -> Vec<PodRecord> {
    let Ok(entries) = std::fs::read_dir(pods_dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        match load(&e.path()) {
            Ok(r) => out.push(r),
            Err(err) => {
                tracing::warn!(dir = %e.path().display(), error = %err, "skipping unreadable pod record")
            }
        }
    }
    out
}

/// Milliseconds since the epoch (how records store instants).
pub fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
