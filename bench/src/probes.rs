//! `cargo xtask bench probes`: what readiness probes cost the agent at density.
//!
//! Three cases, each with its own agent daemon ([`super::probes_case`]): N busybox
//! `httpd -f -p 8080 -h /var/www` pods whose readiness probe runs every second — `httpGet`
//! of /index.html on 8080, `tcpSocket` on 8080, or `exec` of `test -f /var/www/index.html`
//! (fewer pods for exec: one short-lived helper process per run). Once all pods are Ready,
//! the agent's CPU (its own plus its reaped children's: the exec helpers) and its probe
//! latency histogram are measured over a window. The exec peer is `crun exec` of the same
//! check into a running crun container ([`super::probes_crun`]), measured first on the
//! quiet machine. Goals, printed not asserted: httpGet < 10 % of a core; bosun exec probes
//! at least 3× cheaper in CPU than `crun exec`. Everything runs under
//! `target/bench-work/probes`, in cgroups named `bosun-bench-probes*`, and is removed at the
//! end whether or not the measurement succeeded.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::agent_daemon::Agent;
use super::probes_case::{self, Case};
use super::{pods_cleanup, probes_crun, write_results, Options, Row};
use xtask::{images, util};

/// The agent's cgroup root; the crun peer's cgroups are `bosun-bench-probes-crun/...`.
const CGROUP_ROOT: &str = "bosun-bench-probes";
const HTTP_GOAL_PCT: f64 = 10.0;
const EXEC_GOAL_RATIO: f64 = 3.0;

/// Sizes and durations of one run.
pub struct Plan {
    /// Pods in the httpGet and tcpSocket cases.
    pub net_pods: usize,
    /// Pods in the exec case: an exec probe is a process, so fewer on 2 cores.
    pub exec_pods: usize,
    /// How long CPU and latency are measured once all pods are Ready.
    pub window: Duration,
    /// Sequential `crun exec` runs of the peer.
    pub crun_execs: usize,
}

impl Plan {
    fn new(options: &Options) -> Self {
        if options.quick {
            Self {
                net_pods: 100,
                exec_pods: 50,
                window: Duration::from_secs(10),
                crun_execs: 50,
            }
        } else {
            Self {
                net_pods: 1000,
                exec_pods: 200,
                window: Duration::from_secs(30),
                crun_execs: 200,
            }
        }
    }

    /// The pod count of `case`.
    pub fn pods(&self, case: Case) -> usize {
        match case {
            Case::Exec => self.exec_pods,
            Case::HttpGet | Case::TcpSocket => self.net_pods,
        }
    }
}

pub fn run(options: &Options) -> Result<()> {
    let plan = Plan::new(options);
    util::run(util::cargo().args(["build", "--release", "-p", "bosun-agent"]))?;
    let image = images::run(false)?.join("busybox");
    let work = util::target_dir().join("bench-work").join("probes");
    // A previous run that was killed may have left state behind.
    pods_cleanup::cleanup_in(&work, CGROUP_ROOT, false);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let agent = Agent {
        bin: util::target_dir().join("release").join("bosun-agent"),
        root: work.join("root"),
        run_dir: work.join("run"),
        cgroup_root: CGROUP_ROOT,
    };
    let mut rows = Vec::new();
    let mut notes = vec![format!(
        "{} pods for httpGet and tcpSocket, {} for exec (an exec probe is a process per run: \
         {} exec/s would swamp 2 cores), {} s windows, {} crun execs",
        plan.net_pods,
        plan.exec_pods,
        plan.net_pods,
        plan.window.as_secs(),
        plan.crun_execs
    )];
    let measured = measure(&plan, &agent, &image, &work, &mut rows, &mut notes);
    pods_cleanup::cleanup_in(&work, CGROUP_ROOT, true);
    if !rows.is_empty() {
        write_results("probes", &rows)?;
        print!("{}", goals(&rows));
    }
    for note in notes {
        println!("note: {note}");
    }
    measured
}

/// The crun peer, then every case; a failed case is noted and the others still run.
fn measure(
    plan: &Plan,
    agent: &Agent,
    image: &Path,
    work: &Path,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> Result<()> {
    util::output(agent.command().arg("image").arg("import").arg(image))?;
    let mut failed = Vec::new();
    if let Err(error) = probes_crun::run(image, work, CGROUP_ROOT, plan.crun_execs, rows, notes) {
        notes.push(format!("exec/crun failed: {error:#}"));
        failed.push("crun exec");
    }
    for case in [Case::HttpGet, Case::TcpSocket, Case::Exec] {
        let count = plan.pods(case);
        if let Err(error) = probes_case::run(agent, work, case, count, plan.window, rows, notes) {
            notes.push(format!("{} failed: {error:#}", case.name()));
            failed.push(case.name());
        }
    }
    if !failed.is_empty() {
        bail!("probes bench: {} failed (see the notes)", failed.join(", "));
    }
    Ok(())
}

/// The goal lines: httpGet CPU against 10 % of a core, exec CPU per probe against crun's.
fn goals(rows: &[Row]) -> String {
    let find = |case: &str, imp: &str, metric: &str| {
        rows.iter()
            .find(|r| r.case == case && r.implementation == imp && r.metric == metric)
            .map(|r| r.value)
    };
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let mut out = String::new();
    if let Some(cpu) = find("httpGet", "bosun", "cpu_pct_core") {
        let rate = find("httpGet", "bosun", "probes_per_s").unwrap_or(0.0);
        let _ = writeln!(
            out,
            "goal httpGet: {cpu:.2} % of a core at {rate:.0} probes/s (goal < {HTTP_GOAL_PCT} %: {})",
            verdict(cpu < HTTP_GOAL_PCT)
        );
    }
    let bosun = find("exec", "bosun", "cpu_us_per_probe");
    let crun = find("exec", "crun", "cpu_us_per_probe");
    if let (Some(bosun), Some(crun)) = (bosun, crun) {
        let ratio = crun / bosun;
        let _ = writeln!(
            out,
            "goal exec: crun exec {crun:.0} µs CPU per check / bosun {bosun:.0} µs per probe = \
             {ratio:.2}× (goal ≥ {EXEC_GOAL_RATIO}×: {})",
            verdict(ratio >= EXEC_GOAL_RATIO)
        );
    }
    if let (Some(bosun), Some(crun)) = (
        find("exec", "bosun", "p99_ms"),
        find("exec", "crun", "p99_ms"),
    ) {
        let _ = writeln!(
            out,
            "exec wall p99: bosun probe {bosun:.2} ms (histogram, interpolated), crun exec {crun:.2} ms"
        );
    }
    out
}
