//! One case of the probes benchmark: an agent daemon with N busybox httpd pods whose
//! readiness probe (httpGet, tcpSocket or exec) runs every second.
//!
//! The daemon starts on an empty manifests dir with `--metrics-addr`; the N manifests are
//! written at once and the time until `ps --json` shows all N pods Ready is `start_all_s`.
//! After a settling second, /proc and /metrics are read before and after the window:
//! - `cpu_pct_core`: utime+stime+cutime+cstime of the agent process, as % of one core; the
//!   children part (exec helpers, reaped by the agent, with the commands they waited for) is
//!   also reported alone as `cpu_pct_children`;
//! - `p99_ms`: from the `bosun_probe_duration_seconds` histogram deltas, interpolated
//!   linearly inside the bucket where the cumulative count crosses 99 % (`p99_bucket_ms` is
//!   that bucket's upper bound);
//! - `probes_per_s`, `failures` from the readiness run and failure counters, and
//!   `cpu_us_per_probe` (with `cpu_pct_per_1k_probes_s`, the same scaled to 1 000 probes/s);
//! - `system_cpu_pct`: the whole machine's busy time from /proc/stat (% of one core), which
//!   also holds what the probed servers and the kernel spent.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::agent_daemon::{clock_ticks, status_field, Agent, CpuTicks, Daemon};
use super::probes_crun::CHECK;
use super::probes_metrics::{scrape, Histogram, ProbeMetrics};
use super::{pods_cleanup, Row};

const START_LIMIT: Duration = Duration::from_secs(300);
const STOP_LIMIT: Duration = Duration::from_secs(180);
const SETTLE: Duration = Duration::from_secs(2);

/// The probe handler a case uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    HttpGet,
    TcpSocket,
    Exec,
}

impl Case {
    /// The case name, which is also the agent's probe_type label.
    pub fn name(self) -> &'static str {
        match self {
            Case::HttpGet => "httpGet",
            Case::TcpSocket => "tcpSocket",
            Case::Exec => "exec",
        }
    }

    /// The readiness probe, as a YAML flow mapping.
    fn probe(self) -> String {
        let handler = match self {
            Case::HttpGet => "httpGet: {port: 8080, path: /index.html}".to_owned(),
            Case::TcpSocket => "tcpSocket: {port: 8080}".to_owned(),
            Case::Exec => format!("exec: {{command: [{}]}}", CHECK.join(", ")),
        };
        format!("{{{handler}, periodSeconds: 1}}")
    }

    /// The bench pod: busybox httpd serving the image's /var/www, no limits.
    fn pod_yaml(self, name: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  \
             restartPolicy: Always\n  terminationGracePeriodSeconds: 2\n  containers:\n  \
             - name: web\n    image: bosun.test/busybox:1\n    \
             command: [httpd, -f, -p, '8080', -h, /var/www]\n    readinessProbe: {}\n",
            self.probe()
        )
    }
}

/// Runs `case` with `count` pods measured over `window`, appending rows and notes.
pub fn run(
    agent: &Agent,
    work: &Path,
    case: Case,
    count: usize,
    window: Duration,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> Result<()> {
    let name = case.name();
    let manifests = work.join(format!("manifests-{name}"));
    std::fs::create_dir_all(&manifests)?;
    let addr = free_port()?;
    let log = work.join(format!("daemon-{name}.log"));
    let extra = ["--metrics-addr".to_owned(), addr.to_string()];
    let mut daemon = Daemon::start(agent, &manifests, &extra, &log)?;
    println!(
        "probes {name}: daemon pid {} with {count} pods, metrics on {addr} (log {})",
        daemon.pid(),
        log.display()
    );
    let measured = measure(
        agent,
        &mut daemon,
        &manifests,
        addr,
        case,
        count,
        window,
        rows,
        notes,
    );
    let stopped = daemon.stop(agent, &manifests, STOP_LIMIT, name, notes);
    let phase = format!("the {name} case");
    pods_cleanup::report_leftovers_in(&phase, work, agent.cgroup_root, notes);
    measured.and(stopped)
}

#[allow(clippy::too_many_arguments)]
fn measure(
    agent: &Agent,
    daemon: &mut Daemon,
    manifests: &Path,
    addr: SocketAddr,
    case: Case,
    count: usize,
    window: Duration,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> Result<()> {
    let name = case.name();
    let prefix = name.to_lowercase();
    let start = Instant::now();
    for i in 0..count {
        let path = manifests.join(format!("p-{i}.yaml"));
        std::fs::write(&path, case.pod_yaml(&format!("{prefix}-{i}")))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let mut ready = 0;
    let all = daemon.wait_for(START_LIMIT, || {
        ready = ready_pods(agent)?;
        Ok((ready >= count).then_some(()))
    });
    let start_all = start.elapsed().as_secs_f64();
    rows.push(Row::new(name, "bosun", "start_all_s", start_all));
    rows.push(Row::new(name, "bosun", "pods_ready", ready as f64));
    if let Err(error) = all {
        notes.push(format!(
            "{name}: only {ready} of {count} pods Ready after {start_all:.0} s: {error:#}"
        ));
        if ready == 0 {
            bail!("no pod became Ready");
        }
    }
    sleep(SETTLE);
    let pid = daemon.pid();
    let before = Snapshot::take(pid, addr)?;
    sleep(window);
    let after = Snapshot::take(pid, addr)?;
    let secs = after.at.duration_since(before.at).as_secs_f64();
    let tck = clock_ticks()?;
    let own = (after.cpu.own - before.cpu.own) as f64 / tck;
    let children = (after.cpu.children - before.cpu.children) as f64 / tck;
    let runs = after.metrics.readiness_runs(name) - before.metrics.readiness_runs(name);
    let failures = after.metrics.readiness_failures(name) - before.metrics.readiness_failures(name);
    let latency = after
        .metrics
        .latency
        .get(name)
        .context("no latency histogram for this probe type")?
        .delta(
            before
                .metrics
                .latency
                .get(name)
                .unwrap_or(&Default::default()),
        );
    let cpu_pct = (own + children) / secs * 100.0;
    let mut push = |metric: &str, value: f64| rows.push(Row::new(name, "bosun", metric, value));
    push("cpu_pct_core", cpu_pct);
    push("cpu_pct_children", children / secs * 100.0);
    push("probes_per_s", runs / secs);
    if runs > 0.0 {
        let us_per_probe = (own + children) * 1e6 / runs;
        push("cpu_us_per_probe", us_per_probe);
        // DESIGN §6's unit: % of a core that 1 000 probes/s would cost at this rate.
        push("cpu_pct_per_1k_probes_s", us_per_probe / 10.0);
    }
    for (metric, value) in [
        ("p50_ms", latency.quantile(0.5)),
        ("p99_ms", latency.quantile(0.99)),
        ("p99_bucket_ms", latency.bucket_bound(0.99)),
        ("mean_ms", latency.mean()),
    ] {
        if let Some(seconds) = value {
            push(metric, seconds * 1e3);
        }
    }
    push("failures", failures);
    push(
        "system_cpu_pct",
        (after.busy - before.busy) as f64 / tck / secs * 100.0,
    );
    push("rss_mb", status_field(pid, "VmRSS")? / 1024.0);
    let still_ready = ready_pods(agent)?;
    push("pods_ready_after", still_ready as f64);
    if failures > 0.0 || still_ready < ready {
        notes.push(format!(
            "{name}: {failures} probe failures in the window; {still_ready} of {count} pods \
             Ready after it"
        ));
    }
    notes.push(format!(
        "{name}: probe latency in the window: {}",
        buckets(&latency)
    ));
    if (runs / secs) < 0.9 * count as f64 {
        notes.push(format!(
            "{name}: {:.0} probes/s for {count} pods with periodSeconds 1: the scheduler fell \
             behind",
            runs / secs
        ));
    }
    Ok(())
}

/// The non-empty buckets of `histogram` as `≤bound ms: count`, for the notes.
fn buckets(histogram: &Histogram) -> String {
    let mut below = 0.0;
    let mut parts = Vec::new();
    for &(le, cumulative) in &histogram.buckets {
        if cumulative > below {
            parts.push(format!("≤{} ms: {}", le * 1e3, cumulative - below));
        }
        below = cumulative;
    }
    parts.join(", ")
}

/// What is read before and after the window.
struct Snapshot {
    at: Instant,
    cpu: CpuTicks,
    metrics: ProbeMetrics,
    /// Busy clock ticks of all CPUs, from /proc/stat.
    busy: u64,
}

impl Snapshot {
    fn take(pid: u32, addr: SocketAddr) -> Result<Self> {
        let metrics = ProbeMetrics::parse(&scrape(addr)?)?;
        Ok(Self {
            at: Instant::now(),
            cpu: CpuTicks::read(pid)?,
            metrics,
            busy: busy_ticks()?,
        })
    }
}

/// Pods whose Ready condition is true, from `ps --json`.
fn ready_pods(agent: &Agent) -> Result<usize> {
    Ok(agent
        .pods()?
        .iter()
        .filter(|pod| pod["ready"] == true)
        .count())
}

/// user+nice+system+irq+softirq+steal ticks of all CPUs (the `cpu` line of /proc/stat).
fn busy_ticks() -> Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .context("odd /proc/stat")?;
    let field = |i: usize| fields.get(i).copied().unwrap_or(0);
    Ok(field(0) + field(1) + field(2) + field(5) + field(6) + field(7))
}

/// A loopback address with a port nothing listens on right now.
fn free_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?)
}
