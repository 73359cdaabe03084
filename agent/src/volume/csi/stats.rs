//! NodeGetVolumeStats of the claims published on this node: each published record that
//! names its claim is asked of its driver at its target path; one answer per claim (the
//! first pod's). A driver that does not answer, or answers without byte usage, leaves its
//! claims out.

use std::collections::BTreeMap;

use bosun_csi::proto::volume_usage::Unit;

use super::{entries, read_json, ClaimName, CsiNode, Published};
use crate::metrics::VolumeUsage;

/// One claim's usage as its driver reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimVolumeStats {
    pub claim: ClaimName,
    pub usage: VolumeUsage,
}

impl CsiNode {
    /// The usage of every claim published on this node.
    pub async fn volume_stats(&self) -> Vec<ClaimVolumeStats> {
        let mut records: BTreeMap<ClaimName, Published> = BTreeMap::new();
        for pod in entries(&self.root.join("published")) {
            for file in entries(&pod) {
                if file.extension().is_none_or(|e| e != "json") {
                    continue;
                }
                let Some(record) = read_json::<Published>(&file) else {
                    continue;
                };
                if let Some(claim) = record.claim.clone() {
                    records.entry(claim).or_insert(record);
                }
            }
        }
        let mut out = Vec::new();
        for (claim, record) in records {
            let answer = match self.connect(&record.driver).await {
                Ok(mut c) => c
                    .node_get_volume_stats(&record.volume_id, &record.target)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let usage = match answer {
                Ok(r) => r.usage,
                Err(e) => {
                    tracing::debug!(claim = %claim.name, error = %e, "NodeGetVolumeStats");
                    continue;
                }
            };
            let mut stats = ClaimVolumeStats {
                claim,
                ..ClaimVolumeStats::default()
            };
            let mut has_bytes = false;
            for u in usage {
                match Unit::try_from(u.unit) {
                    Ok(Unit::Bytes) => {
                        has_bytes = true;
                        let bytes = &mut stats.usage;
                        (
                            bytes.capacity_bytes,
                            bytes.available_bytes,
                            bytes.used_bytes,
                        ) = (u.total, u.available, u.used);
                    }
                    Ok(Unit::Inodes) => {
                        let inodes = &mut stats.usage;
                        (inodes.inodes, inodes.inodes_free, inodes.inodes_used) =
                            (u.total, u.available, u.used);
                    }
                    _ => {}
                }
            }
            if has_bytes {
                out.push(stats);
            }
        }
        out
    }
}
