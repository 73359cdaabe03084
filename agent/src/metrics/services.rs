//! The service dataplane's counters as metrics: a `prometheus-client` collector that reads
//! them from the dataplane (its eBPF maps) at scrape time, summed per Service port over its
//! ClusterIPs. It never caches a sample between scrapes.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

/// One (VIP, port, protocol) of a Service and its counters, summed over CPUs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceSample {
    pub namespace: String,
    pub name: String,
    pub port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    pub backends: u64,
    pub connections: u64,
    pub datagrams: u64,
    pub refused: u64,
}

/// Reads the services' counters when metrics are scraped (set by the dataplane).
pub type ServiceSource = Box<dyn Fn() -> Vec<ServiceSample> + Send + Sync>;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, EncodeLabelSet)]
struct ServiceLabels {
    namespace: String,
    name: String,
    port: u16,
    protocol: String,
}

/// Counters per Service port: connections, datagrams, refused, backends.
type Rows = BTreeMap<ServiceLabels, [u64; 4]>;

/// (name without `_total`, help, type) of each column of [`Rows`].
const COLUMNS: [(&str, &str, MetricType); 4] = [
    (
        "bosun_service_connections",
        "connect() calls translated to a backend",
        MetricType::Counter,
    ),
    (
        "bosun_service_datagrams",
        "Unconnected UDP sends translated to a backend",
        MetricType::Counter,
    ),
    (
        "bosun_service_refused",
        "Connections refused for lack of a backend",
        MetricType::Counter,
    ),
    (
        "bosun_service_backends",
        "Backends installed",
        MetricType::Gauge,
    ),
];

/// Renders nothing until a source is set (no dataplane: no service metrics).
#[derive(Default)]
pub(super) struct ServiceCollector {
    source: OnceLock<ServiceSource>,
}

impl fmt::Debug for ServiceCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceCollector")
            .field("source_set", &self.source.get().is_some())
            .finish()
    }
}

impl ServiceCollector {
    pub(super) fn set_source(&self, source: ServiceSource) {
        let _ = self.source.set(source);
    }
}

/// A Service with several ClusterIPs is summed per port.
fn rows(samples: &[ServiceSample]) -> Rows {
    let mut rows = Rows::new();
    for s in samples {
        let key = ServiceLabels {
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            port: s.port,
            protocol: s.protocol.clone(),
        };
        let row = rows.entry(key).or_default();
        for (v, add) in row
            .iter_mut()
            .zip([s.connections, s.datagrams, s.refused, s.backends])
        {
            *v = v.saturating_add(add);
        }
    }
    rows
}

fn encode_rows(rows: &Rows, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
    for (i, (name, help, metric_type)) in COLUMNS.iter().enumerate() {
        let mut family = encoder.encode_descriptor(name, help, None, *metric_type)?;
        for (labels, values) in rows {
            let sample = family.encode_family(labels)?;
            match metric_type {
                MetricType::Gauge => {
                    ConstGauge::new(i64::try_from(values[i]).unwrap_or(i64::MAX)).encode(sample)?
                }
                _ => ConstCounter::new(values[i]).encode(sample)?,
            }
        }
    }
    Ok(())
}

impl Collector for ServiceCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        match self.source.get() {
            Some(source) => encode_rows(&rows(&source()), encoder),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    #[test]
    fn services_are_rendered_per_port_summed_over_cluster_ips() {
        let sample = ServiceSample {
            namespace: "default".into(),
            name: "web".into(),
            port: 80,
            protocol: "tcp".into(),
            backends: 3,
            connections: 5,
            datagrams: 0,
            refused: 1,
        };
        let collector = ServiceCollector::default();
        collector.set_source(Box::new(move || vec![sample.clone(), sample.clone()]));
        let mut registry = Registry::default();
        registry.register_collector(Box::new(collector));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).expect("encode");
        let labels = "namespace=\"default\",name=\"web\",port=\"80\",protocol=\"tcp\"";
        for line in [
            format!("bosun_service_connections_total{{{labels}}} 10\n"),
            format!("bosun_service_refused_total{{{labels}}} 2\n"),
            format!("bosun_service_datagrams_total{{{labels}}} 0\n"),
            format!("bosun_service_backends{{{labels}}} 6\n"),
            "# TYPE bosun_service_backends gauge\n".into(),
            "# TYPE bosun_service_connections_total counter\n".into(),
        ] {
            assert!(out.contains(&line), "{line:?} missing from:\n{out}");
        }
    }

    #[test]
    fn no_source_renders_nothing() {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(ServiceCollector::default()));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).expect("encode");
        assert_eq!(out, "");
    }
}
