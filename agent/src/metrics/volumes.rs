//! kubelet's volume metrics (`kubelet_volume_stats_*`, labels `namespace` and
//! `persistentvolumeclaim`) for the claims mounted on this node: the last samples the daemon
//! took with CSI NodeGetVolumeStats, which it replaces whole every period (kubelet computes
//! them periodically too, `--volume-stats-agg-period`). A claim used by several pods is one
//! series. A volume whose driver did not answer has no series — never zeros.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

/// A volume's bytes and inodes as its driver reported them (CSI NodeGetVolumeStats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VolumeUsage {
    pub capacity_bytes: i64,
    pub available_bytes: i64,
    pub used_bytes: i64,
    pub inodes: i64,
    pub inodes_free: i64,
    pub inodes_used: i64,
}

/// One claim's volume usage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeStatsSample {
    pub namespace: String,
    pub claim: String,
    pub usage: VolumeUsage,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, EncodeLabelSet)]
struct ClaimLabels {
    namespace: String,
    persistentvolumeclaim: String,
}

/// (name, kubelet's help, the sample's value) of each gauge.
type Column = (&'static str, &'static str, fn(&VolumeUsage) -> i64);

const COLUMNS: [Column; 6] = [
    (
        "kubelet_volume_stats_capacity_bytes",
        "Capacity in bytes of the volume",
        |s| s.capacity_bytes,
    ),
    (
        "kubelet_volume_stats_available_bytes",
        "Number of available bytes in the volume",
        |s| s.available_bytes,
    ),
    (
        "kubelet_volume_stats_used_bytes",
        "Number of used bytes in the volume",
        |s| s.used_bytes,
    ),
    (
        "kubelet_volume_stats_inodes",
        "Maximum number of inodes in the volume",
        |s| s.inodes,
    ),
    (
        "kubelet_volume_stats_inodes_free",
        "Number of free inodes in the volume",
        |s| s.inodes_free,
    ),
    (
        "kubelet_volume_stats_inodes_used",
        "Number of used inodes in the volume",
        |s| s.inodes_used,
    ),
];

/// The samples of the last refresh.
#[derive(Debug, Default)]
pub(super) struct VolumeStatsCollector {
    samples: Mutex<BTreeMap<ClaimLabels, VolumeStatsSample>>,
}

impl VolumeStatsCollector {
    /// Replaces every sample (one per claim; the last of duplicates wins).
    pub(super) fn set(&self, samples: Vec<VolumeStatsSample>) {
        let by_claim = samples
            .into_iter()
            .map(|s| {
                let labels = ClaimLabels {
                    namespace: s.namespace.clone(),
                    persistentvolumeclaim: s.claim.clone(),
                };
                (labels, s)
            })
            .collect();
        *self.samples.lock().unwrap_or_else(|e| e.into_inner()) = by_claim;
    }
}

impl Collector for VolumeStatsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let samples = self
            .samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if samples.is_empty() {
            return Ok(());
        }
        for (name, help, value) in COLUMNS {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (labels, sample) in &samples {
                ConstGauge::new(value(&sample.usage)).encode(family.encode_family(labels)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;
    use std::sync::Arc;

    fn render(collector: Arc<VolumeStatsCollector>) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(collector));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).expect("encode");
        out
    }

    #[test]
    fn each_claim_is_one_series_of_kubelets_six_gauges() {
        let sample = VolumeStatsSample {
            namespace: "default".into(),
            claim: "data".into(),
            usage: VolumeUsage {
                capacity_bytes: 60 << 20,
                available_bytes: 50 << 20,
                used_bytes: 10 << 20,
                inodes: 16384,
                inodes_free: 16370,
                inodes_used: 14,
            },
        };
        let collector = Arc::new(VolumeStatsCollector::default());
        // Two pods of one claim: one series.
        collector.set(vec![sample.clone(), sample]);
        let out = render(collector.clone());
        let labels = r#"{namespace="default",persistentvolumeclaim="data"}"#;
        for line in [
            format!("kubelet_volume_stats_capacity_bytes{labels} 62914560\n"),
            format!("kubelet_volume_stats_available_bytes{labels} 52428800\n"),
            format!("kubelet_volume_stats_used_bytes{labels} 10485760\n"),
            format!("kubelet_volume_stats_inodes{labels} 16384\n"),
            format!("kubelet_volume_stats_inodes_free{labels} 16370\n"),
            format!("kubelet_volume_stats_inodes_used{labels} 14\n"),
            "# TYPE kubelet_volume_stats_capacity_bytes gauge\n".into(),
        ] {
            assert!(out.contains(&line), "{line:?} missing from:\n{out}");
        }
        assert_eq!(out.matches("kubelet_volume_stats_inodes_used{").count(), 1);
        // A refresh without the claim (its pod is gone) drops the series.
        collector.set(Vec::new());
        assert_eq!(render(collector), "");
    }
}
