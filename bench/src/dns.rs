//! `cargo xtask bench dns`: queries/s and latency of the node's cluster DNS server
//! (`bosun-agent dns-serve`: the agent's server, its zone loaded from a file of 1 000
//! Services) against Debian's dnsmasq serving the same names from a hosts file, in the same
//! run, with dnsperf in a "pod" netns (`dns_env.rs`). Two cases: a cluster name (the 1 000
//! Service names in turn) and a cached external name (100 names that both forward once to the
//! same upstream in the node netns and then answer from their caches). Per case and server:
//! queries/s with 100 queries in flight, and p50/p99 latency at a fixed rate, well below
//! either's capacity. Rounds alternate the servers; the median of the rounds is reported.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xtask::util;

use super::dns_env::{Files, World, BOSUN_IP, DNSMASQ_IP};
use super::dns_perf::{self, Target};
use super::{write_results, Options, Row};

/// Services in the zone (the size).
const SERVICES: usize = 1_000;
/// External names queried in the external case.
const EXTERNAL: usize = 100;
const NAMESPACES: usize = 10;

/// How long and how often to measure.
struct Plan {
    rounds: usize,
    throughput_secs: u32,
    latency_secs: u32,
    /// Queries/s of the latency runs.
    latency_rate: u32,
}

pub fn run(options: &Options) -> Result<()> {
    let plan = match options.quick {
        true => Plan {
            rounds: 1,
            throughput_secs: 2,
            latency_secs: 1,
            latency_rate: 2_000,
        },
        false => Plan {
            rounds: 3,
            throughput_secs: 10,
            latency_secs: 5,
            latency_rate: 10_000,
        },
    };
    for (tool, package) in [("dnsperf", "dnsperf"), ("dnsmasq", "dnsmasq-base")] {
        if util::output(std::process::Command::new("which").arg(tool)).is_err() {
            bail!("{tool} missing: apt-get install {package} (cargo xtask setup)");
        }
    }
    util::run(util::cargo().current_dir(util::workspace_root()).args([
        "build",
        "--release",
        "-p",
        "bosun-agent",
        "--bin",
        "bosun-agent",
    ]))?;
    let work = util::target_dir().join("bench-work").join("dns");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let result = write_files(&work).and_then(|(files, queries)| measure(&plan, &files, &queries));
    let rows = match result {
        Ok(rows) => rows,
        Err(e) => bail!("{e:#} (server logs in {})", work.display()),
    };
    let _ = std::fs::remove_dir_all(&work);
    write_results("dns", &rows)?;
    print!("{}", ratios(&rows));
    println!(
        "(qps: {} s runs with 100 queries in flight; latency: {} s at {} queries/s; median of {} \
         round(s))",
        plan.throughput_secs, plan.latency_secs, plan.latency_rate, plan.rounds
    );
    Ok(())
}

/// Query files: (case, path).
type Queries = Vec<(&'static str, PathBuf)>;

fn service(i: usize) -> (String, String, String) {
    let ip = format!("10.96.{}.{}", 1 + i / 250, 1 + i % 250);
    (format!("svc-{i}"), format!("ns-{}", i % NAMESPACES), ip)
}

fn write_files(work: &Path) -> Result<(Files, Queries)> {
    let (mut records, mut hosts, mut cluster) = (String::new(), String::new(), String::new());
    for i in 0..SERVICES {
        let (name, ns, ip) = service(i);
        let _ = write!(
            records,
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\n\
             spec: {{clusterIP: {ip}, ports: [{{name: http, port: 80}}]}}\n"
        );
        let fqdn = format!("{name}.{ns}.svc.cluster.local");
        let _ = writeln!(hosts, "{ip} {fqdn}");
        let _ = writeln!(cluster, "{fqdn} A");
    }
    let (mut external_hosts, mut external) = (String::new(), String::new());
    for i in 0..EXTERNAL {
        let name = format!("host-{i}.bench.example");
        let _ = writeln!(external_hosts, "198.51.100.{} {name}", 1 + i);
        let _ = writeln!(external, "{name} A");
    }
    let write = |name: &str, text: &str| -> Result<PathBuf> {
        let path = work.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    };
    let files = Files {
        agent: util::target_dir().join("release").join("bosun-agent"),
        records: write("services.yaml", &records)?,
        cluster_hosts: write("cluster.hosts", &hosts)?,
        external_hosts: write("external.hosts", &external_hosts)?,
        logs: work.to_path_buf(),
    };
    let queries = vec![
        ("cluster", write("cluster.queries", &cluster)?),
        ("external", write("external.queries", &external)?),
    ];
    Ok((files, queries))
}

fn measure(plan: &Plan, files: &Files, queries: &Queries) -> Result<Vec<Row>> {
    let world = World::start(files)?;
    let targets = [
        (
            "bosun",
            Target {
                server: BOSUN_IP,
                port: 53,
            },
        ),
        (
            "dnsmasq",
            Target {
                server: DNSMASQ_IP,
                port: 53,
            },
        ),
    ];
    for (_, target) in &targets {
        for (_, q) in queries {
            world.warm(target, q)?;
        }
    }
    // (case, impl, metric) → one value per round.
    let mut samples: Vec<(&str, &str, &str, Vec<f64>)> = Vec::new();
    let mut push = |case, imp, metric, value| match samples
        .iter_mut()
        .find(|s| (s.0, s.1, s.2) == (case, imp, metric))
    {
        Some(s) => s.3.push(value),
        None => samples.push((case, imp, metric, vec![value])),
    };
    for round in 0..plan.rounds {
        for (case, q) in queries {
            // Alternate who goes first, so neither always runs on a warmer machine.
            let order: Vec<_> = match round % 2 {
                0 => targets.iter().collect(),
                _ => targets.iter().rev().collect(),
            };
            for (imp, target) in order {
                let t = dns_perf::throughput(&world.pod, target, q, plan.throughput_secs)?;
                let l =
                    dns_perf::latency(&world.pod, target, q, plan.latency_secs, plan.latency_rate)?;
                println!(
                    "round {round} {case:<8} {imp:<7} {:>9.0} q/s (lost {}), p50 {:.3} ms, p99 {:.3} ms",
                    t.qps, t.lost, l.p50, l.p99
                );
                push(*case, *imp, "qps", t.qps);
                push(*case, *imp, "p50_ms", l.p50);
                push(*case, *imp, "p99_ms", l.p99);
            }
        }
    }
    drop(world);
    Ok(samples
        .into_iter()
        .map(|(case, imp, metric, values)| Row::new(case, imp, metric, median(values)))
        .collect())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// bosun ÷ dnsmasq per case: queries/s (higher is better) and p99 (lower is better).
fn ratios(rows: &[Row]) -> String {
    let value = |case: &str, imp: &str, metric: &str| {
        rows.iter()
            .find(|r| r.case == case && r.implementation == imp && r.metric == metric)
            .map_or(f64::NAN, |r| r.value)
    };
    let mut out = String::new();
    for case in ["cluster", "external"] {
        let qps = value(case, "bosun", "qps") / value(case, "dnsmasq", "qps");
        let p99 = value(case, "bosun", "p99_ms");
        let _ = writeln!(
            out,
            "{case}: bosun answers {qps:.2}x dnsmasq's queries/s; bosun p99 {p99:.3} ms \
             (dnsmasq {:.3} ms)",
            value(case, "dnsmasq", "p99_ms")
        );
    }
    out
}
