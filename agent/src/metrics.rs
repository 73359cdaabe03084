//! Prometheus metrics of the agent, kept in atomics and rendered in the text exposition format
//! on `--metrics-addr` (`GET /metrics`): probe latency histograms and failure counters, and the
//! service dataplane's per-service counters (read from the eBPF maps at scrape time).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A latency histogram.
#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; 12],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// Probe handler types, as metric labels.
pub const PROBE_TYPES: [&str; 4] = ["exec", "httpGet", "tcpSocket", "grpc"];
/// Probe kinds, as metric labels.
pub const PROBE_KINDS: [&str; 3] = ["liveness", "readiness", "startup"];

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

#[derive(Default)]
pub struct AgentMetrics {
    pub probe_latency: [Histogram; 4],
    /// Failed probe runs by [kind][type].
    pub probe_failures: [[AtomicU64; 4]; 3],
    pub probe_runs: [[AtomicU64; 4]; 3],
    services: OnceLock<ServiceSource>,
}

pub fn metrics() -> &'static AgentMetrics {
    static M: OnceLock<AgentMetrics> = OnceLock::new();
    M.get_or_init(AgentMetrics::default)
}

impl AgentMetrics {
    /// Registers where service counters come from (once; later calls are ignored).
    pub fn set_service_source(&self, source: ServiceSource) {
        let _ = self.services.set(source);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP bosun_probe_duration_seconds Time one probe run took.\n# TYPE bosun_probe_duration_seconds histogram\n");
        for (i, t) in PROBE_TYPES.iter().enumerate() {
            self.probe_latency[i].render(
                &mut out,
                "bosun_probe_duration_seconds",
                &format!("probe_type=\"{t}\""),
            );
        }
        for (name, table, help) in [
            ("bosun_probe_runs_total", &self.probe_runs, "Probe runs."),
            (
                "bosun_probe_failures_total",
                &self.probe_failures,
                "Probe runs that failed.",
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (k, kind) in PROBE_KINDS.iter().enumerate() {
                for (t, ty) in PROBE_TYPES.iter().enumerate() {
                    let v = table[k][t].load(Ordering::Relaxed);
                    let _ = writeln!(out, "{name}{{probe=\"{kind}\",probe_type=\"{ty}\"}} {v}");
                }
            }
        }
        if let Some(source) = self.services.get() {
            render_services(&mut out, &source());
        }
        out
    }
}

/// The per-service section; a Service with several ClusterIPs is summed per port.
fn render_services(out: &mut String, samples: &[ServiceSample]) {
    type Key<'a> = (&'a str, &'a str, u16, &'a str);
    let mut rows: std::collections::BTreeMap<Key, [u64; 4]> = Default::default();
    for s in samples {
        let key = (
            s.namespace.as_str(),
            s.name.as_str(),
            s.port,
            s.protocol.as_str(),
        );
        let row = rows.entry(key).or_default();
        for (v, add) in row
            .iter_mut()
            .zip([s.connections, s.datagrams, s.refused, s.backends])
        {
            *v += add;
        }
    }
    let metrics = [
        (
            "bosun_service_connections_total",
            "counter",
            "connect() calls translated to a backend.",
        ),
        (
            "bosun_service_datagrams_total",
            "counter",
            "Unconnected UDP sends translated to a backend.",
        ),
        (
            "bosun_service_refused_total",
            "counter",
            "Connections refused for lack of a backend.",
        ),
        ("bosun_service_backends", "gauge", "Backends installed."),
    ];
    for (i, (name, kind, help)) in metrics.iter().enumerate() {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for ((ns, svc, port, proto), v) in &rows {
            let _ = writeln!(
                out,
                "{name}{{namespace=\"{ns}\",name=\"{svc}\",port=\"{port}\",protocol=\"{proto}\"}} {}",
                v[i]
            );
        }
    }
}

/// Serves `GET /metrics` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]);
            let (status, body) = if req.starts_with("GET /metrics") {
                ("200 OK", metrics().render())
            } else {
                ("404 Not Found", "not found\n".to_string())
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(body.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_renders_cumulative_buckets() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(3));
        let mut out = String::new();
        h.render(&mut out, "x", "a=\"b\"");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.0005\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.005\"} 2\n"), "{out}");
        assert!(out.contains("x_count{a=\"b\"} 2\n"), "{out}");
    }

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
        let mut out = String::new();
        render_services(&mut out, &[sample.clone(), sample]);
        let labels = "namespace=\"default\",name=\"web\",port=\"80\",protocol=\"tcp\"";
        assert!(
            out.contains(&format!("bosun_service_connections_total{{{labels}}} 10\n")),
            "{out}"
        );
        assert!(
            out.contains(&format!("bosun_service_refused_total{{{labels}}} 2\n")),
            "{out}"
        );
        assert!(out.contains("# TYPE bosun_service_backends gauge"), "{out}");
    }
}
