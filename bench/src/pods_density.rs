//! The pods benchmark's density case: the agent daemon with N static pods of `sleep 3600`.
//!
//! The daemon starts with an empty manifests dir; the N files are then written at once and
//! the time until `ps --json` shows all N Running is `start_all_s`. With the pods idle, the
//! daemon's RSS (VmRSS) and its CPU over 10 s (utime+stime of all its threads, as % of one
//! core) are measured. The manifests are then removed, the pods waited for (bounded) and the
//! daemon stopped with SIGTERM. Goals, printed not asserted: RSS < 64 MB, idle CPU < 2 %.

use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::agent_daemon::{clock_ticks, cpu_ticks, status_field, Agent, Daemon};
use super::Row;

const START_LIMIT: Duration = Duration::from_secs(180);
const STOP_LIMIT: Duration = Duration::from_secs(120);
const IDLE_WINDOW: Duration = Duration::from_secs(10);
const RSS_GOAL_MB: f64 = 64.0;
const CPU_GOAL_PCT: f64 = 2.0;

/// Runs the density case with `count` pods, appending rows and notes.
pub fn run(
    agent: &Agent,
    work: &Path,
    count: usize,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> Result<()> {
    let manifests = work.join("manifests");
    std::fs::create_dir_all(&manifests)?;
    let log_path = work.join("daemon.log");
    let mut daemon = Daemon::start(agent, &manifests, &[], &log_path)?;
    println!(
        "density: daemon pid {} with {count} pods (log {})",
        daemon.pid(),
        log_path.display()
    );
    let measured = measure(agent, &mut daemon, &manifests, count, rows, notes);
    let stopped = daemon.stop(agent, &manifests, STOP_LIMIT, "density", notes);
    super::pods_cleanup::report_leftovers("the density run", work, notes);
    measured.and(stopped)
}

fn measure(
    agent: &Agent,
    daemon: &mut Daemon,
    manifests: &Path,
    count: usize,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> Result<()> {
    let case = format!("density{count}");
    let start = Instant::now();
    for i in 0..count {
        let path = manifests.join(format!("d-{i}.yaml"));
        std::fs::write(&path, sleep_pod(&format!("d-{i}")))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let mut running = 0;
    let all = daemon.wait_for(START_LIMIT, || {
        running = agent
            .pods()?
            .iter()
            .filter(|pod| pod["phase"] == "Running")
            .count();
        Ok((running >= count).then_some(()))
    });
    let start_all = start.elapsed().as_secs_f64();
    if let Err(error) = all {
        notes.push(format!(
            "{case}: only {running} of {count} pods Running after {start_all:.0} s: {error:#}"
        ));
    }
    rows.push(Row::new(&case, "bosun", "start_all_s", start_all));
    rows.push(Row::new(&case, "bosun", "pods_running", running as f64));
    sleep(Duration::from_secs(2));
    let pid = daemon.pid();
    let cpu_before = cpu_ticks(pid)?;
    let window = Instant::now();
    sleep(IDLE_WINDOW);
    let ticks = cpu_ticks(pid)? - cpu_before;
    let cpu_pct = ticks as f64 / clock_ticks()? / window.elapsed().as_secs_f64() * 100.0;
    let rss_mb = status_field(pid, "VmRSS")? / 1024.0;
    rows.push(Row::new(&case, "bosun", "rss_mb", rss_mb));
    rows.push(Row::new(
        &case,
        "bosun",
        "threads",
        status_field(pid, "Threads")?,
    ));
    rows.push(Row::new(&case, "bosun", "idle_cpu_pct", cpu_pct));
    match super::smaps::AnonBreakdown::of(pid) {
        Ok(anon) => notes.push(format!("{case}: the daemon's {anon}")),
        Err(e) => notes.push(format!("{case}: {e:#}")),
    }
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    notes.push(format!(
        "{case}: all Running after {start_all:.1} s; RSS {rss_mb:.1} MB (goal < {RSS_GOAL_MB} MB: {}), \
         idle CPU {cpu_pct:.2} % (goal < {CPU_GOAL_PCT} %: {})",
        verdict(rss_mb < RSS_GOAL_MB),
        verdict(cpu_pct < CPU_GOAL_PCT)
    ));
    Ok(())
}

/// A pod that idles: `sleep 3600`, no limits, a short grace period for the teardown.
fn sleep_pod(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: Never\n  \
         terminationGracePeriodSeconds: 2\n  containers:\n  - name: c\n    \
         image: bosun.test/busybox:1\n    command: [\"sleep\", \"3600\"]\n"
    )
}
