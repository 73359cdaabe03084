//! Garbage collection: delete every blob and unpacked layer that no stored reference uses.
//! It must only run with the store's exclusive lock held, and must never delete anything
//! listed in a [`RefRecord`] of the references passed in, nor what a pull in progress
//! leases (`downloads/*/lease.json`).

use std::collections::HashSet;
use std::fs;

use super::digest::sha256_hex;
use super::error::{io_err, ImageError};
use super::store::{remove_any, RefsFile, StoreDirs};

/// What one collection removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct GcReport {
    pub blobs_removed: usize,
    pub layers_removed: usize,
}

/// Removes blobs and layer directories not used by any reference in `refs`.
pub(crate) fn collect_garbage(dirs: &StoreDirs, refs: &RefsFile) -> Result<GcReport, ImageError> {
    let mut live_blobs = HashSet::new();
    let mut live_layers = HashSet::new();
    for record in refs.refs.values() {
        for digest in &record.blobs {
            // A malformed digest in refs.json protects nothing; it is simply ignored.
            if let Ok(hex) = sha256_hex(digest, "refs.json") {
                live_blobs.insert(hex.to_owned());
            }
        }
        live_layers.extend(record.chain_ids.iter().cloned());
    }
    // Pulls in progress lease what they stored before their reference is recorded.
    let leased = dirs.leases()?;
    for digest in &leased.blobs {
        if let Ok(hex) = sha256_hex(digest, "lease") {
            live_blobs.insert(hex.to_owned());
        }
    }
    live_layers.extend(leased.chain_ids);
    Ok(GcReport {
        blobs_removed: sweep(&dirs.blobs_dir(), &live_blobs)?,
        layers_removed: sweep(&dirs.layers_dir(), &live_layers)?,
    })
}

/// Removes every entry of `dir` whose name is not in `live`; returns how many.
fn sweep(dir: &std::path::Path, live: &HashSet<String>) -> Result<usize, ImageError> {
    let mut removed = 0;
    for entry in fs::read_dir(dir).map_err(io_err("listing", dir))? {
        let entry = entry.map_err(io_err("listing", dir))?;
        let keep = entry.file_name().to_str().is_some_and(|n| live.contains(n));
        if !keep {
            remove_any(&entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}
