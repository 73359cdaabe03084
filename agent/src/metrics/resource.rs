//! The kubelet's resource metrics endpoint (`GET /metrics/resource` on the kubelet API), which
//! metrics-server and bosun-control scrape: per container and pod cumulative CPU seconds and
//! memory working set, and the node's, read from the cgroups at scrape time, with kubelet's
//! metric names and a millisecond timestamp per sample. prometheus-client has no per-sample
//! timestamps, so the text is written here (the format is a handful of lines).

use std::fmt::Write;

use crate::runtime::cgroup_stats::Usage;

/// One container's reading.
#[derive(Debug, Clone)]
pub struct ContainerSample {
    pub name: String,
    pub usage: Usage,
    /// Start time, seconds since the epoch, when known.
    pub start_time: Option<f64>,
}

/// One pod's reading (its own cgroup) and its containers'.
#[derive(Debug, Clone)]
pub struct PodSample {
    pub namespace: String,
    pub name: String,
    pub usage: Usage,
    pub containers: Vec<ContainerSample>,
}

/// Everything one scrape found; `errors` counts cgroups that could not be read.
#[derive(Debug, Clone, Default)]
pub struct ResourceSample {
    pub node: Option<Usage>,
    pub pods: Vec<PodSample>,
    pub errors: usize,
    /// When the readings were taken, milliseconds since the epoch.
    pub timestamp_ms: i64,
}

/// Produces a [`ResourceSample`] at scrape time.
pub type ResourceSource = std::sync::Arc<dyn Fn() -> ResourceSample + Send + Sync>;

/// The Prometheus text version kubelet serves the endpoint with.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} [STABLE] {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value escaped as the text format wants.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders `s` in kubelet's format.
pub fn render(s: &ResourceSample) -> String {
    let ts = s.timestamp_ms;
    let mut out = String::new();
    let container_lines =
        |out: &mut String, name: &str, f: &dyn Fn(&ContainerSample) -> Option<String>| {
            for p in &s.pods {
                for c in &p.containers {
                    if let Some(v) = f(c) {
                        let _ = writeln!(
                            out,
                            "{name}{{container=\"{}\",namespace=\"{}\",pod=\"{}\"}} {v} {ts}",
                            esc(&c.name),
                            esc(&p.namespace),
                            esc(&p.name)
                        );
                    }
                }
            }
        };
    let name = "container_cpu_usage_seconds_total";
    header(
        &mut out,
        name,
        "counter",
        "Cumulative cpu time consumed by the container in core-seconds",
    );
    container_lines(&mut out, name, &|c| Some(c.usage.cpu_seconds.to_string()));
    let name = "container_memory_working_set_bytes";
    header(
        &mut out,
        name,
        "gauge",
        "Current working set of the container in bytes",
    );
    container_lines(&mut out, name, &|c| {
        Some(c.usage.working_set_bytes.to_string())
    });
    let name = "container_start_time_seconds";
    header(
        &mut out,
        name,
        "gauge",
        "Start time of the container since unix epoch in seconds",
    );
    container_lines(&mut out, name, &|c| c.start_time.map(|t| t.to_string()));
    if let Some(n) = s.node {
        let name = "node_cpu_usage_seconds_total";
        header(
            &mut out,
            name,
            "counter",
            "Cumulative cpu time consumed by the node in core-seconds",
        );
        let _ = writeln!(out, "{name} {} {ts}", n.cpu_seconds);
        let name = "node_memory_working_set_bytes";
        header(
            &mut out,
            name,
            "gauge",
            "Current working set of the node in bytes",
        );
        let _ = writeln!(out, "{name} {} {ts}", n.working_set_bytes);
    }
    let pod_lines = |out: &mut String, name: &str, f: &dyn Fn(&Usage) -> String| {
        for p in &s.pods {
            let _ = writeln!(
                out,
                "{name}{{namespace=\"{}\",pod=\"{}\"}} {} {ts}",
                esc(&p.namespace),
                esc(&p.name),
                f(&p.usage)
            );
        }
    };
    let name = "pod_cpu_usage_seconds_total";
    header(
        &mut out,
        name,
        "counter",
        "Cumulative cpu time consumed by the pod in core-seconds",
    );
    pod_lines(&mut out, name, &|u| u.cpu_seconds.to_string());
    let name = "pod_memory_working_set_bytes";
    header(
        &mut out,
        name,
        "gauge",
        "Current working set of the pod in bytes",
    );
    pod_lines(&mut out, name, &|u| u.working_set_bytes.to_string());
    let name = "resource_scrape_error";
    header(
        &mut out,
        name,
        "gauge",
        "1 if there was an error while getting container metrics, 0 otherwise",
    );
    let _ = writeln!(out, "{name} {}", u8::from(s.errors > 0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_kubelets_names_labels_and_timestamps() {
        let u = |cpu, mem| Usage {
            cpu_seconds: cpu,
            working_set_bytes: mem,
        };
        let s = ResourceSample {
            node: Some(u(357.5, 1_600_000_000)),
            pods: vec![PodSample {
                namespace: "default".into(),
                name: "burn".into(),
                usage: u(1.25, 4096),
                containers: vec![ContainerSample {
                    name: "c".into(),
                    usage: u(1.0, 2048),
                    start_time: Some(1_700_000_000.0),
                }],
            }],
            errors: 0,
            timestamp_ms: 1_700_000_123_456,
        };
        let out = render(&s);
        for line in [
            "# TYPE container_cpu_usage_seconds_total counter",
            "container_cpu_usage_seconds_total{container=\"c\",namespace=\"default\",pod=\"burn\"} 1 1700000123456",
            "container_memory_working_set_bytes{container=\"c\",namespace=\"default\",pod=\"burn\"} 2048 1700000123456",
            "container_start_time_seconds{container=\"c\",namespace=\"default\",pod=\"burn\"} 1700000000 1700000123456",
            "node_cpu_usage_seconds_total 357.5 1700000123456",
            "node_memory_working_set_bytes 1600000000 1700000123456",
            "pod_cpu_usage_seconds_total{namespace=\"default\",pod=\"burn\"} 1.25 1700000123456",
            "pod_memory_working_set_bytes{namespace=\"default\",pod=\"burn\"} 4096 1700000123456",
            "resource_scrape_error 0",
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
        }
    }
}
