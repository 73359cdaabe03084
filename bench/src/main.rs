//! `bosun-bench NAME` (run by `cargo xtask bench NAME` after `setup`): the benchmark
//! dispatcher and what every benchmark shares.
//!
//! The benchmarks live in their own crate because they link the eBPF loader (`bosun-ebpf`),
//! whose build needs clang and libbpf's headers: `xtask` must build on a fresh machine before
//! `cargo xtask setup` has installed them.
//!
//! A benchmark measures bosun against a peer in the same run (DESIGN.md §6), returns
//! [`Row`]s, and [`write_results`] prints them as a table and writes
//! `target/bench/NAME.json`. Benchmarks are bounded in time and clean up after themselves;
//! this module never measures anything itself.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde::Serialize;

use xtask::util;

mod agent_daemon;
mod cluster;
mod cluster_containerd;
mod cluster_env;
mod cluster_rollout;
mod cluster_watch;
mod cni;
mod control;
mod control_api;
mod control_client;
mod control_etcd;
mod control_procs;
mod control_seq;
mod control_thin;
mod dns;
mod dns_env;
mod dns_perf;
mod pods;
mod pods_cleanup;
mod pods_density;
mod pods_mountns;
mod pods_peers;
mod probes;
mod probes_case;
mod probes_crun;
mod probes_metrics;
mod pull;
mod pull_image;
mod routing;
mod routing_backends;
mod routing_bosun;
mod routing_client;
mod routing_env;
mod routing_iptables;
mod routing_nft;
mod routing_report;
mod smaps;
mod volumes;
mod volumes_config;

/// `bosun-bench NAME [--quick] [--services 1,1000]`.
#[derive(Parser)]
#[command(
    name = "bosun-bench",
    about = "bosun benchmarks against peers measured in the same run"
)]
struct Cli {
    /// The benchmark to run.
    name: String,
    /// Few iterations: a fast check that the benchmark works, not a measurement.
    #[arg(long)]
    quick: bool,
    /// Service counts for benchmarks that scale with them (routing), e.g. 1,1000,10000,50000.
    #[arg(long, value_delimiter = ',')]
    services: Vec<u32>,
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == pull::MEASURE_ARG) {
        return pull::measure_child(&args[2..]);
    }
    if args.get(1).is_some_and(|a| a == control_thin::CHILD_ARG) {
        return control_thin::child(&args[2..]);
    }
    let cli = Cli::parse();
    let options = Options {
        quick: cli.quick,
        services: cli.services.leak(),
    };
    match run(&cli.name, &options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// How a benchmark should run, from the command line.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Few iterations: a fast check that the benchmark works, not a measurement.
    pub quick: bool,
    /// Service counts (`--services 1,1000`) for benchmarks that scale with them; empty means
    /// the benchmark's default.
    pub services: &'static [u32],
}

/// A named benchmark: runs, writes its results, and returns.
struct Bench {
    name: &'static str,
    run: fn(&Options) -> Result<()>,
}

/// Every benchmark, by name. Add new ones here (`routing`, `probes`).
const BENCHES: &[Bench] = &[
    Bench {
        name: "pods",
        run: pods::run,
    },
    Bench {
        name: "cni",
        run: cni::run,
    },
    Bench {
        name: "routing",
        run: routing::run,
    },
    Bench {
        name: "probes",
        run: probes::run,
    },
    Bench {
        name: "control",
        run: control::run,
    },
    Bench {
        name: "cluster",
        run: cluster::run,
    },
    Bench {
        name: "volumes",
        run: volumes::run,
    },
    Bench {
        name: "dns",
        run: dns::run,
    },
    Bench {
        name: "pull",
        run: pull::run,
    },
];

/// Runs the benchmark called `name`.
pub fn run(name: &str, options: &Options) -> Result<()> {
    match BENCHES.iter().find(|bench| bench.name == name) {
        Some(bench) => (bench.run)(options),
        None => bail!("unknown bench {name} (available: {})", available()),
    }
}

fn available() -> String {
    if BENCHES.is_empty() {
        return "none yet".to_owned();
    }
    BENCHES
        .iter()
        .map(|b| b.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One measurement: `impl` is "bosun" or the peer's name, `metric` says the unit
/// ("p50_ms", "p99_ms", "rps", ...).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    pub case: String,
    #[serde(rename = "impl")]
    pub implementation: String,
    pub metric: String,
    pub value: f64,
}

impl Row {
    pub fn new(case: &str, implementation: &str, metric: &str, value: f64) -> Self {
        Self {
            case: case.to_owned(),
            implementation: implementation.to_owned(),
            metric: metric.to_owned(),
            value,
        }
    }
}

/// The machine a benchmark ran on, so results from different runs can be compared.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub kernel: String,
    pub cpu_model: String,
}

impl Machine {
    pub fn probe() -> Self {
        let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| cpu_model(&info))
            .unwrap_or_else(|| "unknown".to_owned());
        Self {
            nproc,
            kernel,
            cpu_model,
        }
    }
}

/// The first `model name` in /proc/cpuinfo.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_owned())
    })
}

#[derive(Serialize)]
struct Results<'a> {
    bench: &'a str,
    machine: Machine,
    rows: &'a [Row],
}

/// Prints `rows` as a table and writes them to `target/bench/NAME.json`; returns the path.
/// The runtime of a bench's API clients beside a cluster: one worker thread, so the clients
/// take little of the CPU the cluster is measured on.
pub fn client_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the runtime")
}

pub fn write_results(name: &str, rows: &[Row]) -> Result<PathBuf> {
    let results = Results {
        bench: name,
        machine: Machine::probe(),
        rows,
    };
    let dir = util::target_dir().join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{name}.json"));
    let json = serde_json::to_vec_pretty(&results).context("serializing bench results")?;
    std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
    print!("{}", table(name, &results.machine, rows));
    println!("results: {}", path.display());
    Ok(path)
}

/// The human-readable table of `rows`.
fn table(name: &str, machine: &Machine, rows: &[Row]) -> String {
    let headers = ["case", "impl", "metric", "value"];
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            [
                r.case.clone(),
                r.implementation.clone(),
                r.metric.clone(),
                format!("{:.3}", r.value),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = format!(
        "bench {name} on {} cpus, kernel {}, {}\n",
        machine.nproc, machine.kernel, machine.cpu_model
    );
    let line = |cols: [&str; 4]| {
        let [case, imp, metric, value] = cols;
        let [w0, w1, w2, w3] = widths;
        format!("{case:<w0$}  {imp:<w1$}  {metric:<w2$}  {value:>w3$}\n")
    };
    out.push_str(&line(headers));
    for row in &cells {
        out.push_str(&line([&row[0], &row[1], &row[2], &row[3]]));
    }
    out
}

/// Summary statistics of a sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
}

/// p50 and p99 of `samples` (linear interpolation between closest ranks, as numpy does);
/// `None` for an empty sample. NaNs sort last.
pub fn percentiles(mut samples: Vec<f64>) -> Option<Percentiles> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    Some(Percentiles {
        p50: percentile_of_sorted(&samples, 50.0),
        p99: percentile_of_sorted(&samples, 99.0),
    })
}

/// The `p`th percentile (0..=100) of a non-empty, ascending `sorted` sample.
pub fn percentile_of_sorted(sorted: &[f64], p: f64) -> f64 {
    assert!(!sorted.is_empty(), "percentile of an empty sample");
    let rank = (p / 100.0).clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    let fraction = rank - low as f64;
    sorted[low] + (sorted[high] - sorted[low]) * fraction
}

#[cfg(test)]
mod tests;
