//! The in-memory window of scrapes, as metrics-server keeps it: per node the last two readings
//! of the node and of every container, from which a CPU rate (cores) over the interval between
//! them and the newest working set are computed. A node whose scrape fails keeps its last good
//! readings until they are older than the staleness bound; then it has no metrics (never
//! zeros). Pure apart from the clock values passed in.

use std::collections::{BTreeMap, HashMap};

use super::text::{Point, Scrape};

/// Usage over a window: CPU in cores, memory in bytes, at `at_ms` over `window_ms`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Usage {
    pub cpu_cores: f64,
    pub memory_bytes: u64,
    pub at_ms: i64,
    pub window_ms: i64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Series {
    prev: Option<Point>,
    last: Option<Point>,
}

impl Series {
    /// Takes a new reading; a counter that went back (a restarted container) starts over.
    fn push(&mut self, p: Point) {
        match self.last {
            Some(last) if p.at_ms <= last.at_ms => {}
            Some(last) if p.cpu_seconds < last.cpu_seconds => {
                *self = Series {
                    prev: None,
                    last: Some(p),
                }
            }
            last => {
                *self = Series {
                    prev: last,
                    last: Some(p),
                }
            }
        }
    }

    fn usage(&self) -> Option<Usage> {
        let (prev, last) = (self.prev?, self.last?);
        let window_ms = last.at_ms - prev.at_ms;
        if window_ms <= 0 {
            return None;
        }
        Some(Usage {
            cpu_cores: (last.cpu_seconds - prev.cpu_seconds).max(0.0) / (window_ms as f64 / 1000.0),
            memory_bytes: last.memory_bytes,
            at_ms: last.at_ms,
            window_ms,
        })
    }
}

#[derive(Debug, Default)]
struct NodeSeries {
    node: Series,
    containers: BTreeMap<(String, String), BTreeMap<String, Series>>,
    /// When the last successful scrape ended (our clock, ms).
    scraped_ms: i64,
}

/// Every node's readings.
#[derive(Debug, Default)]
pub struct Window {
    nodes: HashMap<String, NodeSeries>,
}

/// One pod's usage per container.
pub type PodUsage = BTreeMap<String, Usage>;

impl Window {
    /// Records a successful scrape of `node` at `now_ms`.
    pub fn record(&mut self, node: &str, scrape: Scrape, now_ms: i64) {
        let entry = self.nodes.entry(node.to_owned()).or_default();
        if let Some(p) = scrape.node {
            entry.node.push(p);
        }
        let mut containers = BTreeMap::new();
        for (pod, cs) in scrape.containers {
            let mut old = entry.containers.remove(&pod).unwrap_or_default();
            let mut series = BTreeMap::new();
            for (name, p) in cs {
                let mut s = old.remove(&name).unwrap_or_default();
                s.push(p);
                series.insert(name, s);
            }
            containers.insert(pod, series);
        }
        entry.containers = containers;
        entry.scraped_ms = now_ms;
    }

    /// Forgets nodes whose last good scrape is older than `stale_ms`, and nodes not in `live`.
    pub fn expire(&mut self, now_ms: i64, stale_ms: i64, live: &[String]) {
        self.nodes
            .retain(|name, n| now_ms - n.scraped_ms <= stale_ms && live.contains(name));
    }

    /// Whether `node` has two readings of itself (a rate can be given).
    pub fn complete(&self, node: &str) -> bool {
        self.nodes
            .get(node)
            .is_some_and(|n| n.node.usage().is_some())
    }

    /// The node's usage.
    pub fn node(&self, node: &str) -> Option<Usage> {
        self.nodes.get(node)?.node.usage()
    }

    /// The usage of pod `namespace/name` per container; None unless every container it
    /// reported has a rate (metrics-server's rule).
    pub fn pod(&self, namespace: &str, name: &str) -> Option<PodUsage> {
        let key = (namespace.to_owned(), name.to_owned());
        self.nodes.values().find_map(|n| {
            let cs = n.containers.get(&key)?;
            cs.iter()
                .map(|(c, s)| Some((c.clone(), s.usage()?)))
                .collect::<Option<PodUsage>>()
                .filter(|u| !u.is_empty())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(at_ms: i64, cpu: f64, mem: u64) -> Scrape {
        let p = Point {
            at_ms,
            cpu_seconds: cpu,
            memory_bytes: mem,
        };
        let mut s = Scrape {
            node: Some(p),
            ..Scrape::default()
        };
        s.containers
            .entry(("default".into(), "burn".into()))
            .or_default()
            .insert("c".into(), p);
        s
    }

    #[test]
    fn cpu_is_the_rate_between_two_scrapes() {
        let mut w = Window::default();
        w.record("n1", scrape(10_000, 5.0, 100), 10_000);
        assert!(w.node("n1").is_none() && w.pod("default", "burn").is_none());
        assert!(!w.complete("n1"));
        w.record("n1", scrape(20_000, 10.0, 200), 20_000);
        let u = w.node("n1").unwrap();
        assert_eq!(
            (u.cpu_cores, u.memory_bytes, u.window_ms),
            (0.5, 200, 10_000)
        );
        assert_eq!(w.pod("default", "burn").unwrap()["c"].cpu_cores, 0.5);
        // A restarted container's counter goes back: no rate until the next reading.
        w.record("n1", scrape(30_000, 1.0, 50), 30_000);
        assert!(w.pod("default", "burn").is_none());
    }

    #[test]
    fn a_failing_node_keeps_its_values_for_a_bounded_time() {
        let mut w = Window::default();
        let live = vec!["n1".to_owned()];
        w.record("n1", scrape(0, 0.0, 1), 0);
        w.record("n1", scrape(10_000, 2.0, 1), 10_000);
        w.expire(60_000, 90_000, &live);
        assert_eq!(w.node("n1").unwrap().cpu_cores, 0.2);
        w.expire(101_000, 90_000, &live);
        assert!(
            w.node("n1").is_none(),
            "stale readings are dropped, not zeroed"
        );
    }
}
