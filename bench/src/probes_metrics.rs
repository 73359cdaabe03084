//! Scraping the agent's `GET /metrics` for the probes benchmark and reading the probe
//! latency histogram and run/failure counters out of it.
//!
//! Two scrapes bracket a measurement window; [`Histogram::delta`] leaves only the probes run
//! in between. Quantiles interpolate linearly inside the bucket the rank falls in, as
//! Prometheus' `histogram_quantile` does; [`Histogram::bucket_bound`] gives that bucket's
//! upper bound instead (the conservative reading).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context, Result};

const TIMEOUT: Duration = Duration::from_secs(10);

/// The text of `GET /metrics` from `addr`.
pub fn scrape(addr: SocketAddr) -> Result<String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, TIMEOUT).with_context(|| format!("connecting {addr}"))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: bosun\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .with_context(|| format!("reading /metrics from {addr}"))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("no end of headers in the /metrics response")?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("GET /metrics: {}", head.lines().next().unwrap_or(""));
    }
    Ok(body.to_owned())
}

/// A latency histogram: cumulative counts by upper bound (seconds, ascending, +Inf last).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    pub buckets: Vec<(f64, f64)>,
    pub count: f64,
    pub sum: f64,
}

impl Histogram {
    /// What was observed between `before` and `self`.
    pub fn delta(&self, before: &Histogram) -> Histogram {
        let old = |le: f64| {
            before
                .buckets
                .iter()
                .find(|(b, _)| *b == le)
                .map_or(0.0, |(_, n)| *n)
        };
        Histogram {
            buckets: self
                .buckets
                .iter()
                .map(|&(le, n)| (le, n - old(le)))
                .collect(),
            count: self.count - before.count,
            sum: self.sum - before.sum,
        }
    }

    /// The index of the bucket where the cumulative count reaches `q` of the total.
    fn bucket_of(&self, q: f64) -> Option<usize> {
        if self.count <= 0.0 {
            return None;
        }
        let rank = q * self.count;
        self.buckets.iter().position(|&(_, n)| n >= rank)
    }

    /// The `q` quantile (0..1) in seconds, interpolated linearly inside its bucket; the
    /// largest finite bound if it falls in +Inf.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let i = self.bucket_of(q)?;
        let (upper, n) = self.buckets[i];
        let (lower, below) = if i == 0 {
            (0.0, 0.0)
        } else {
            self.buckets[i - 1]
        };
        if upper.is_infinite() {
            return Some(lower);
        }
        let fraction = if n > below {
            (q * self.count - below) / (n - below)
        } else {
            1.0
        };
        Some(lower + (upper - lower) * fraction.clamp(0.0, 1.0))
    }

    /// The upper bound (seconds) of the bucket the `q` quantile falls in.
    pub fn bucket_bound(&self, q: f64) -> Option<f64> {
        self.bucket_of(q).map(|i| self.buckets[i].0)
    }

    /// Mean latency in seconds.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }
}

/// The probe metrics of one scrape.
#[derive(Clone, Debug, Default)]
pub struct ProbeMetrics {
    /// Latency by probe_type.
    pub latency: HashMap<String, Histogram>,
    /// `bosun_probe_runs_total` by (probe, probe_type).
    pub runs: HashMap<(String, String), f64>,
    /// `bosun_probe_failures_total` by (probe, probe_type).
    pub failures: HashMap<(String, String), f64>,
}

impl ProbeMetrics {
    pub fn parse(text: &str) -> Result<Self> {
        let mut metrics = Self::default();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (series, value) = line.rsplit_once(' ').context("odd metrics line")?;
            let value: f64 = value
                .parse()
                .with_context(|| format!("odd value in {line:?}"))?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, labels(rest.trim_end_matches('}'))),
                None => (series, HashMap::new()),
            };
            let label = |key: &str| labels.get(key).cloned().unwrap_or_default();
            let key = (label("probe"), label("probe_type"));
            if let Some(part) = name.strip_prefix("bosun_probe_duration_seconds_") {
                let histogram = metrics.latency.entry(label("probe_type")).or_default();
                match part {
                    "bucket" => {
                        let le = match label("le").as_str() {
                            "+Inf" => f64::INFINITY,
                            le => le.parse().with_context(|| format!("odd le in {line:?}"))?,
                        };
                        histogram.buckets.push((le, value));
                    }
                    "count" => histogram.count = value,
                    "sum" => histogram.sum = value,
                    _ => {}
                }
            } else if name == "bosun_probe_runs_total" {
                metrics.runs.insert(key, value);
            } else if name == "bosun_probe_failures_total" {
                metrics.failures.insert(key, value);
            }
        }
        for histogram in metrics.latency.values_mut() {
            histogram.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        Ok(metrics)
    }

    /// Readiness probe runs of `probe_type`.
    pub fn readiness_runs(&self, probe_type: &str) -> f64 {
        self.runs
            .get(&("readiness".to_owned(), probe_type.to_owned()))
            .copied()
            .unwrap_or(0.0)
    }

    /// Failed readiness probe runs of `probe_type`.
    pub fn readiness_failures(&self, probe_type: &str) -> f64 {
        self.failures
            .get(&("readiness".to_owned(), probe_type.to_owned()))
            .copied()
            .unwrap_or(0.0)
    }
}

/// `a="x",b="y"` as a map (values hold no commas or quotes here).
fn labels(text: &str) -> HashMap<String, String> {
    text.split(',')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            Some((key.trim().to_owned(), value.trim_matches('"').to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE bosun_probe_duration_seconds histogram\n\
        bosun_probe_duration_seconds_bucket{probe_type=\"exec\",le=\"0.001\"} 10\n\
        bosun_probe_duration_seconds_bucket{probe_type=\"exec\",le=\"0.005\"} 90\n\
        bosun_probe_duration_seconds_bucket{probe_type=\"exec\",le=\"0.01\"} 100\n\
        bosun_probe_duration_seconds_bucket{probe_type=\"exec\",le=\"+Inf\"} 100\n\
        bosun_probe_duration_seconds_sum{probe_type=\"exec\"} 0.3\n\
        bosun_probe_duration_seconds_count{probe_type=\"exec\"} 100\n\
        bosun_probe_runs_total{probe=\"readiness\",probe_type=\"exec\"} 100\n\
        bosun_probe_failures_total{probe=\"readiness\",probe_type=\"exec\"} 2\n";

    #[test]
    fn parses_and_interpolates() {
        let m = ProbeMetrics::parse(TEXT).unwrap();
        let h = &m.latency["exec"];
        assert_eq!(h.count, 100.0);
        assert_eq!(m.readiness_runs("exec"), 100.0);
        assert_eq!(m.readiness_failures("exec"), 2.0);
        // rank 99 falls in (0.005, 0.01] holding 10: 9 of 10 of the way.
        assert!((h.quantile(0.99).unwrap() - 0.0095).abs() < 1e-9);
        assert_eq!(h.bucket_bound(0.99), Some(0.01));
        // rank 50 falls in (0.001, 0.005] holding 80: 40 of 80.
        assert!((h.quantile(0.5).unwrap() - 0.003).abs() < 1e-9);
        assert!((h.mean().unwrap() - 0.003).abs() < 1e-9);
    }

    #[test]
    fn delta_subtracts_and_empty_has_no_quantile() {
        let m = ProbeMetrics::parse(TEXT).unwrap();
        let h = &m.latency["exec"];
        let d = h.delta(h);
        assert_eq!(d.count, 0.0);
        assert_eq!(d.quantile(0.99), None);
        assert_eq!(h.delta(&Histogram::default()), *h);
    }
}
