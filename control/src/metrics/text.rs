//! Reads the kubelet's `/metrics/resource` text (Prometheus text format 0.0.4): the
//! container and node samples bosun-control needs, with their timestamps. Pure.

use std::collections::BTreeMap;

/// A cumulative CPU reading and a working set, at a time (ms since the epoch).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub at_ms: i64,
    pub cpu_seconds: f64,
    pub memory_bytes: u64,
}

/// What one scrape of a node found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scrape {
    pub node: Option<Point>,
    /// (namespace, pod) → container → reading.
    pub containers: BTreeMap<(String, String), BTreeMap<String, Point>>,
}

/// One sample line: name, labels, value, timestamp.
type Sample<'a> = (&'a str, BTreeMap<String, String>, f64, Option<i64>);

fn sample(line: &str) -> Option<Sample<'_>> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let mut key = String::new();
        loop {
            let (i, c) = chars.next()?;
            match c {
                '}' => {
                    rest = &body[i + 1..];
                    break;
                }
                ',' | ' ' => {}
                '=' => {
                    if chars.next()?.1 != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next()?.1 {
                            '"' => break,
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            other => value.push(other),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                other => key.push(other),
            }
        }
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next()?.parse().ok()?;
    let ts = fields.next().and_then(|t| t.parse().ok());
    Some((name, labels, value, ts))
}

/// Parses a scrape; samples without a timestamp take `now_ms`. Unknown lines are skipped.
pub fn parse(text: &str, now_ms: i64) -> Scrape {
    let mut out = Scrape::default();
    let mut node = Point {
        at_ms: now_ms,
        cpu_seconds: f64::NAN,
        memory_bytes: 0,
    };
    let mut node_mem = false;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let Some((name, labels, value, ts)) = sample(line) else {
            continue;
        };
        let at_ms = ts.unwrap_or(now_ms);
        match name {
            "node_cpu_usage_seconds_total" => {
                node.cpu_seconds = value;
                node.at_ms = at_ms;
            }
            "node_memory_working_set_bytes" => {
                node.memory_bytes = value.max(0.0) as u64;
                node_mem = true;
            }
            "container_cpu_usage_seconds_total" | "container_memory_working_set_bytes" => {
                let (Some(ns), Some(pod), Some(c)) = (
                    labels.get("namespace"),
                    labels.get("pod"),
                    labels.get("container"),
                ) else {
                    continue;
                };
                let point = out
                    .containers
                    .entry((ns.clone(), pod.clone()))
                    .or_default()
                    .entry(c.clone())
                    .or_insert(Point {
                        at_ms,
                        cpu_seconds: f64::NAN,
                        memory_bytes: 0,
                    });
                if name.starts_with("container_cpu") {
                    point.cpu_seconds = value;
                    point.at_ms = at_ms;
                } else {
                    point.memory_bytes = value.max(0.0) as u64;
                }
            }
            _ => {}
        }
    }
    if !node.cpu_seconds.is_nan() && node_mem {
        out.node = Some(node);
    }
    // A container without a CPU reading cannot be rated.
    for containers in out.containers.values_mut() {
        containers.retain(|_, p| !p.cpu_seconds.is_nan());
    }
    out.containers.retain(|_, c| !c.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kubelets_resource_metrics() {
        let text = r#"# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="c",namespace="default",pod="burn"} 1.5 1700000000000
container_memory_working_set_bytes{container="c",namespace="default",pod="burn"} 2048 1700000000000
container_memory_working_set_bytes{container="x\"y",namespace="default",pod="nocpu"} 1 1700000000000
node_cpu_usage_seconds_total 357.5 1700000000001
node_memory_working_set_bytes 1.6e+09 1700000000001
resource_scrape_error 0
"#;
        let s = parse(text, 5);
        assert_eq!(
            s.node,
            Some(Point {
                at_ms: 1700000000001,
                cpu_seconds: 357.5,
                memory_bytes: 1_600_000_000
            })
        );
        let burn = &s.containers[&("default".to_owned(), "burn".to_owned())]["c"];
        assert_eq!(
            (burn.cpu_seconds, burn.memory_bytes, burn.at_ms),
            (1.5, 2048, 1700000000000)
        );
        assert_eq!(s.containers.len(), 1, "a container without CPU is left out");
    }
}
