//! Prometheus metrics of the agent, kept in one `prometheus-client` registry with typed labels
//! and served on `--metrics-addr` (`GET /metrics`, [`http`]): probe latency histograms and
//! run/failure counters, and the service dataplane's per-service counters, read from the eBPF
//! maps at scrape time ([`services`]), and kubelet's `kubelet_volume_stats_*` of the claims
//! mounted here, from the daemon's last CSI NodeGetVolumeStats round ([`volumes`]), and image
//! garbage collection's counters (images removed, collections that failed or fell short). Recording a probe result touches pre-made handles only
//! (atomics, no label lookup).

pub mod http;
pub mod resource;
pub mod services;
pub mod volumes;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::probe::ProbeKind;
pub use services::{ServiceSample, ServiceSource};
pub use volumes::{VolumeStatsSample, VolumeUsage};

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A probe's handler, as the `probe_type` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeType {
    Exec,
    HttpGet,
    TcpSocket,
    Grpc,
}

impl ProbeType {
    pub const ALL: [ProbeType; 4] = [
        ProbeType::Exec,
        ProbeType::HttpGet,
        ProbeType::TcpSocket,
        ProbeType::Grpc,
    ];

    /// The manifest's field name: `exec`, `httpGet`, `tcpSocket`, `grpc`.
    pub fn name(self) -> &'static str {
        match self {
            ProbeType::Exec => "exec",
            ProbeType::HttpGet => "httpGet",
            ProbeType::TcpSocket => "tcpSocket",
            ProbeType::Grpc => "grpc",
        }
    }
}

impl EncodeLabelValue for ProbeType {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.name())
    }
}

impl EncodeLabelValue for ProbeKind {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.name())
    }
}

const KINDS: [ProbeKind; 3] = [
    ProbeKind::Liveness,
    ProbeKind::Readiness,
    ProbeKind::Startup,
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ProbeTypeLabels {
    probe_type: ProbeType,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ProbeLabels {
    probe: ProbeKind,
    probe_type: ProbeType,
}

/// The agent's metrics: the registry that is rendered, and handles for recording.
pub struct AgentMetrics {
    registry: Registry,
    probe_latency: [Histogram; 4],
    /// Probe runs and failed runs by [kind][type].
    probe_runs: [[Counter; 4]; 3],
    probe_failures: [[Counter; 4]; 3],
    services: Arc<services::ServiceCollector>,
    volumes: Arc<volumes::VolumeStatsCollector>,
    /// Images removed by image garbage collection, and collections that failed or could
    /// not reach the low threshold.
    images_collected: Counter,
    image_gc_failures: Counter,
}

/// The process's metrics.
pub fn metrics() -> &'static AgentMetrics {
    static M: OnceLock<AgentMetrics> = OnceLock::new();
    M.get_or_init(AgentMetrics::new)
}

impl AgentMetrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let latency =
            Family::<ProbeTypeLabels, Histogram>::new_with_constructor(|| Histogram::new(BUCKETS));
        let runs = Family::<ProbeLabels, Counter>::default();
        let failures = Family::<ProbeLabels, Counter>::default();
        registry.register(
            "bosun_probe_duration_seconds",
            "Time one probe run took",
            latency.clone(),
        );
        registry.register("bosun_probe_runs", "Probe runs", runs.clone());
        registry.register(
            "bosun_probe_failures",
            "Probe runs that failed",
            failures.clone(),
        );
        let images_collected = Counter::default();
        registry.register(
            "bosun_image_gc_images_removed",
            "Images removed by image garbage collection",
            images_collected.clone(),
        );
        let image_gc_failures = Counter::default();
        registry.register(
            "bosun_image_gc_failures",
            "Image garbage collections that failed or could not free enough space",
            image_gc_failures.clone(),
        );
        let services = Arc::new(services::ServiceCollector::default());
        registry.register_collector(Box::new(services.clone()));
        let volumes = Arc::new(volumes::VolumeStatsCollector::default());
        registry.register_collector(Box::new(volumes.clone()));
        // Every label combination exists from the start (a dashboard sees zeros, not gaps),
        // and recording goes through these handles without a label lookup.
        let by_kind = |family: &Family<ProbeLabels, Counter>| {
            KINDS.map(|probe| {
                ProbeType::ALL.map(|probe_type| {
                    family
                        .get_or_create(&ProbeLabels { probe, probe_type })
                        .clone()
                })
            })
        };
        AgentMetrics {
            probe_latency: ProbeType::ALL.map(|probe_type| {
                latency
                    .get_or_create(&ProbeTypeLabels { probe_type })
                    .clone()
            }),
            probe_runs: by_kind(&runs),
            probe_failures: by_kind(&failures),
            registry,
            services,
            volumes,
            images_collected,
            image_gc_failures,
        }
    }

    /// Counts images removed by image garbage collection.
    pub fn images_collected(&self, n: u64) {
        self.images_collected.inc_by(n);
    }

    /// Counts an image garbage collection that failed or could not reach the low threshold.
    pub fn image_gc_failed(&self) {
        self.image_gc_failures.inc();
    }

    /// Records one probe run.
    pub fn probe_ran(&self, kind: ProbeKind, probe_type: ProbeType, took: Duration, ok: bool) {
        let (k, t) = (kind as usize, probe_type as usize);
        self.probe_latency[t].observe(took.as_secs_f64());
        self.probe_runs[k][t].inc();
        if !ok {
            self.probe_failures[k][t].inc();
        }
    }

    /// Registers where service counters come from (once; later calls are ignored).
    pub fn set_service_source(&self, source: ServiceSource) {
        self.services.set_source(source);
    }

    /// Replaces the volume stats of the node's claims (one sample per claim).
    pub fn set_volume_stats(&self, samples: Vec<VolumeStatsSample>) {
        self.volumes.set(samples);
    }

    /// The metrics in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::warn!(error = %e, "encoding metrics");
        }
        out
    }
}

/// The `Content-Type` of [`AgentMetrics::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_runs_render_with_typed_labels_and_cumulative_buckets() {
        let m = AgentMetrics::new();
        m.probe_ran(
            ProbeKind::Readiness,
            ProbeType::HttpGet,
            Duration::from_micros(300),
            true,
        );
        m.probe_ran(
            ProbeKind::Readiness,
            ProbeType::HttpGet,
            Duration::from_millis(3),
            false,
        );
        let out = m.render();
        let bucket = "bosun_probe_duration_seconds_bucket{probe_type=\"httpGet\"";
        assert!(
            out.contains(&format!("{bucket},le=\"0.0005\"}} 1\n")),
            "{out}"
        );
        assert!(
            out.contains(&format!("{bucket},le=\"0.005\"}} 2\n")),
            "{out}"
        );
        assert!(
            out.contains(&format!("{bucket},le=\"+Inf\"}} 2\n")),
            "{out}"
        );
        assert!(
            out.contains("bosun_probe_duration_seconds_count{probe_type=\"httpGet\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("bosun_probe_runs_total{probe=\"readiness\",probe_type=\"httpGet\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains(
                "bosun_probe_failures_total{probe=\"readiness\",probe_type=\"httpGet\"} 1\n"
            ),
            "{out}"
        );
        // Untouched combinations are there as zeros.
        assert!(
            out.contains("bosun_probe_failures_total{probe=\"startup\",probe_type=\"grpc\"} 0\n"),
            "{out}"
        );
        assert!(
            out.contains("# TYPE bosun_probe_runs_total counter\n"),
            "{out}"
        );
        assert!(
            out.contains("# TYPE bosun_probe_duration_seconds histogram\n"),
            "{out}"
        );
    }
}
