//! The pods benchmark's density case: the agent daemon with N static pods of `sleep 3600`.
//!
//! The daemon starts with an empty manifests dir; the N files are then written at once and
//! the time until `ps --json` shows all N Running is `start_all_s`. With the pods idle, the
//! daemon's RSS (VmRSS) and its CPU over 10 s (utime+stime of all its threads, as % of one
//! core) are measured. The manifests are then removed, the pods waited for (bounded) and the
//! daemon stopped with SIGTERM. Goals, printed not asserted: RSS < 64 MB, idle CPU < 2 %.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use super::pods::Agent;
use super::Row;
use crate::util;

const START_LIMIT: Duration = Duration::from_secs(180);
const STOP_LIMIT: Duration = Duration::from_secs(120);
const IDLE_WINDOW: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(500);
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
    let log = File::create(&log_path)?;
    let mut daemon = agent
        .command()
        .arg("--manifests")
        .arg(&manifests)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting the agent daemon")?;
    println!(
        "density: daemon pid {} with {count} pods (log {})",
        daemon.id(),
        log_path.display()
    );
    let measured = measure(agent, &mut daemon, &manifests, count, rows, notes);
    let stopped = stop(agent, &mut daemon, &manifests, notes);
    super::pods_cleanup::report_leftovers("the density run", work, notes);
    measured.and(stopped)
}

fn measure(
    agent: &Agent,
    daemon: &mut Child,
    manifests: &Path,
    count: usize,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> Result<()> {
    let case = format!("density{count}");
    wait_for(daemon, Duration::from_secs(30), || {
        Ok(pods(agent).is_ok().then_some(()))
    })
    .context("the daemon's socket never answered")?;
    let start = Instant::now();
    for i in 0..count {
        let path = manifests.join(format!("d-{i}.yaml"));
        std::fs::write(&path, sleep_pod(&format!("d-{i}")))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let mut running = 0;
    let all = wait_for(daemon, START_LIMIT, || {
        running = pods(agent)?
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
    let pid = daemon.id();
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
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    notes.push(format!(
        "{case}: all Running after {start_all:.1} s; RSS {rss_mb:.1} MB (goal < {RSS_GOAL_MB} MB: {}), \
         idle CPU {cpu_pct:.2} % (goal < {CPU_GOAL_PCT} %: {})",
        verdict(rss_mb < RSS_GOAL_MB),
        verdict(cpu_pct < CPU_GOAL_PCT)
    ));
    Ok(())
}

/// Removes the manifests, waits for the pods to go, then SIGTERMs the daemon (bounded).
fn stop(
    agent: &Agent,
    daemon: &mut Child,
    manifests: &Path,
    notes: &mut Vec<String>,
) -> Result<()> {
    let removed = std::fs::remove_dir_all(manifests)
        .and_then(|()| std::fs::create_dir(manifests))
        .context("removing the manifests");
    let start = Instant::now();
    let mut left = usize::MAX;
    let gone = removed.and_then(|()| {
        wait_for(daemon, STOP_LIMIT, || {
            left = pods(agent)?.len();
            Ok((left == 0).then_some(()))
        })
    });
    match &gone {
        Ok(()) => notes.push(format!(
            "density: all pods gone {:.1} s after their manifests were removed",
            start.elapsed().as_secs_f64()
        )),
        Err(error) => notes.push(format!(
            "density: pods not all gone ({left} left): {error:#}"
        )),
    }
    let _ = kill(Pid::from_raw(daemon.id() as i32), Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(20);
    while daemon.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = daemon.kill();
            let _ = daemon.wait();
            notes.push("density: the daemon ignored SIGTERM for 20 s and was killed".into());
            break;
        }
        sleep(Duration::from_millis(50));
    }
    gone
}

/// Polls `check` until it yields, the daemon exits, or `limit` passes.
fn wait_for<T>(
    daemon: &mut Child,
    limit: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let start = Instant::now();
    let mut last_error = None;
    loop {
        if let Some(status) = daemon.try_wait()? {
            bail!("the daemon exited: {status}");
        }
        match check() {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(error) => last_error = Some(error),
        }
        if start.elapsed() > limit {
            match last_error {
                Some(error) => bail!("timed out after {limit:?}; last error: {error:#}"),
                None => bail!("timed out after {limit:?}"),
            }
        }
        sleep(POLL);
    }
}

/// The daemon's pods, from `ps --json`.
fn pods(agent: &Agent) -> Result<Vec<Value>> {
    let out = util::output(agent.command().args(["ps", "--json"]))?;
    serde_json::from_str(&out).context("parsing `ps --json`")
}

/// A pod that idles: `sleep 3600`, no limits, a short grace period for the teardown.
fn sleep_pod(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: Never\n  \
         terminationGracePeriodSeconds: 2\n  containers:\n  - name: c\n    \
         image: bosun.test/busybox:1\n    command: [\"sleep\", \"3600\"]\n"
    )
}

/// utime + stime of process `pid` (all its threads), in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised comm; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').context("odd /proc/PID/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Result<u64> {
        Ok(fields.get(n - 3).context("short /proc/PID/stat")?.parse()?)
    };
    Ok(field(14)? + field(15)?)
}

/// The number in field `name` of /proc/`pid`/status (VmRSS in kB, Threads).
fn status_field(pid: u32, name: &str) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.split(':').next() == Some(name))
        .with_context(|| format!("no {name} in /proc/{pid}/status"))?;
    let value = line.split_whitespace().nth(1).context("odd status line")?;
    Ok(value.parse()?)
}

/// Clock ticks per second (`getconf CLK_TCK`).
fn clock_ticks() -> Result<f64> {
    Ok(util::output(&mut util::cmd("getconf", ["CLK_TCK"]))?
        .trim()
        .parse()?)
}
