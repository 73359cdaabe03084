//! `cargo xtask bench pods`: pod start→exit latency of bosun against crun and runc, and the
//! agent's footprint with 500 idle pods.
//!
//! Latency: every run of `true` is one process invocation timed from spawn to exit —
//! `bosun-agent run pod.yaml` (sandbox, cgroups, overlay rootfs, container, teardown) against
//! `crun run` / `runc run` of an OCI bundle of the same busybox image with the same
//! namespaces and limits (see [`super::pods_peers`]). All three are measured in the same run,
//! interleaved run by run (sequential) or wave by wave (20 at once), so machine noise hits
//! them alike. Density lives in [`super::pods_density`]. Everything runs under
//! `target/bench-work/pods`, in cgroups named `bosun-bench*`, and is removed at the end
//! whether or not the measurement succeeded.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::agent_daemon::Agent;
use super::pods_peers::{Peer, Peers};
use super::{percentiles, pods_density, write_results, Options, Row};
use xtask::{images, util};

/// The cgroup root the agent runs with; peers use `bosun-bench-<peer>`.
pub const CGROUP_ROOT: &str = "bosun-bench";
/// How many runs start at once in the concurrent case.
const CONCURRENCY: usize = 20;
/// A single run taking longer than this is killed and counted as failed.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// How many runs each case does.
struct Plan {
    sequential: usize,
    concurrent: usize,
    density: usize,
}

impl Plan {
    fn new(options: &Options) -> Self {
        if options.quick {
            Self {
                sequential: 30,
                concurrent: CONCURRENCY,
                density: 50,
            }
        } else {
            Self {
                sequential: 200,
                concurrent: 10 * CONCURRENCY,
                density: 500,
            }
        }
    }
}

/// The bench's scratch directory, `target/bench-work/pods`.
pub fn work_dir() -> PathBuf {
    util::target_dir().join("bench-work").join("pods")
}

pub fn run(options: &Options) -> Result<()> {
    let plan = Plan::new(options);
    util::run(util::cargo().args(["build", "--release", "-p", "bosun-agent"]))?;
    let image = images::run(false)?.join("busybox");
    let work = work_dir();
    // A previous run that was killed may have left state behind.
    super::pods_cleanup::cleanup(&work, false);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let agent = Agent {
        bin: util::target_dir().join("release").join("bosun-agent"),
        root: work.join("root"),
        run_dir: work.join("run"),
        cgroup_root: CGROUP_ROOT,
    };
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let measured = measure(&plan, &agent, &image, &work, &mut rows, &mut notes);
    super::pods_cleanup::cleanup(&work, true);
    measured?;
    write_results("pods", &rows)?;
    print!("{}", ratios(&rows));
    for note in notes {
        println!("note: {note}");
    }
    Ok(())
}

/// Runs every case, appending rows and notes.
fn measure(
    plan: &Plan,
    agent: &Agent,
    image: &Path,
    work: &Path,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> Result<()> {
    util::output(agent.command().arg("image").arg("import").arg(image))?;
    let peers = Peers::prepare(image, work)?;
    notes.extend(peers.notes());
    let pods_dir = work.join("pods");
    std::fs::create_dir_all(&pods_dir)?;
    let mut impls = vec![Impl::bosun(agent, &pods_dir, plan)?];
    for peer in [Peer::Crun, Peer::Runc] {
        impls.push(Impl::peer(&peers, peer, plan)?);
    }
    println!(
        "pods: {} sequential and {} concurrent ({CONCURRENCY} at once) runs of `true` per impl",
        plan.sequential, plan.concurrent
    );
    let mut sequential = vec![Samples::default(); impls.len()];
    for _ in 0..plan.sequential {
        for (imp, samples) in impls.iter_mut().zip(&mut sequential) {
            let command = imp.sequential.next().context("ran out of commands")?;
            samples.add(time_run(command));
        }
    }
    let mut concurrent = vec![Samples::default(); impls.len()];
    for _ in 0..plan.concurrent.div_ceil(CONCURRENCY) {
        for (imp, samples) in impls.iter_mut().zip(&mut concurrent) {
            let wave: Vec<Command> = imp.concurrent.by_ref().take(CONCURRENCY).collect();
            for result in time_wave(wave) {
                samples.add(result);
            }
        }
    }
    for (case, all) in [("sequential", &sequential), ("concurrent20", &concurrent)] {
        for (imp, samples) in impls.iter().zip(all) {
            samples.push_rows(case, imp.name, rows, notes);
        }
    }
    super::pods_cleanup::report_leftovers("the latency runs", work, notes);
    drop(peers); // density needs no peer: stop crun's namespace holder
    pods_density::run(agent, work, plan.density, rows, notes)
}

/// One implementation's prepared invocations, consumed in order.
struct Impl {
    name: &'static str,
    sequential: std::vec::IntoIter<Command>,
    concurrent: std::vec::IntoIter<Command>,
}

impl Impl {
    /// `bosun-agent run` of one pod file per run: names must differ for concurrent runs.
    fn bosun(agent: &Agent, pods_dir: &Path, plan: &Plan) -> Result<Self> {
        let commands = |case: &str, count: usize| -> Result<Vec<Command>> {
            (0..count)
                .map(|i| {
                    let path = pods_dir.join(format!("{case}-{i}.yaml"));
                    std::fs::write(&path, pod_yaml(&format!("b-{case}-{i}")))
                        .with_context(|| format!("writing {}", path.display()))?;
                    let mut command = agent.command();
                    command.arg("run").arg(&path);
                    Ok(command)
                })
                .collect()
        };
        Ok(Self {
            name: "bosun",
            sequential: commands("s", plan.sequential)?.into_iter(),
            concurrent: commands("c", plan.concurrent)?.into_iter(),
        })
    }

    /// `crun run` / `runc run` with a bundle (and so a cgroup) per run.
    fn peer(peers: &Peers, peer: Peer, plan: &Plan) -> Result<Self> {
        let commands = |case: &str, count: usize| -> Result<Vec<Command>> {
            (0..count)
                .map(|i| peers.command(peer, &format!("{CGROUP_ROOT}-{case}-{i}")))
                .collect()
        };
        Ok(Self {
            name: peer.name(),
            sequential: commands("s", plan.sequential)?.into_iter(),
            concurrent: commands("c", plan.concurrent)?.into_iter(),
        })
    }
}

/// The bench pod: `true` with the limits the peers' bundles get too.
fn pod_yaml(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: Never\n  \
         containers:\n  - name: c\n    image: bosun.test/busybox:1\n    command: [\"true\"]\n    \
         resources: {{limits: {{memory: 64Mi, cpu: 500m}}}}\n"
    )
}

/// Runs `command` to completion; its wall time in ms, or why it failed.
fn time_run(mut command: Command) -> Result<f64, String> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let child = command
        .spawn()
        .map_err(|e| format!("starting {}: {e}", util::display(&command)))?;
    let (done, watch) = mpsc::channel::<()>();
    let pid = Pid::from_raw(child.id() as i32);
    let watchdog = thread::spawn(move || {
        if watch.recv_timeout(RUN_LIMIT) == Err(mpsc::RecvTimeoutError::Timeout) {
            let _ = kill(pid, Signal::SIGKILL);
        }
    });
    let output = child.wait_with_output();
    let elapsed = start.elapsed();
    drop(done);
    let _ = watchdog.join();
    let output = output.map_err(|e| format!("waiting for {}: {e}", util::display(&command)))?;
    if !output.status.success() {
        return Err(format!(
            "`{}` {}: {}",
            util::display(&command),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(elapsed.as_secs_f64() * 1e3)
}

/// Starts all of `wave` at once (a thread each, released together) and times each run.
fn time_wave(wave: Vec<Command>) -> Vec<Result<f64, String>> {
    let barrier = Barrier::new(wave.len());
    thread::scope(|scope| {
        let handles: Vec<_> = wave
            .into_iter()
            .map(|command| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    time_run(command)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("timing thread panicked".into()))
            })
            .collect()
    })
}

/// The wall times of one impl in one case, and its failures.
#[derive(Clone, Default)]
struct Samples {
    ms: Vec<f64>,
    failures: usize,
    first_failure: Option<String>,
}

impl Samples {
    fn add(&mut self, result: Result<f64, String>) {
        match result {
            Ok(ms) => self.ms.push(ms),
            Err(error) => {
                self.failures += 1;
                self.first_failure.get_or_insert(error);
            }
        }
    }

    fn push_rows(&self, case: &str, imp: &str, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
        if let Some(p) = percentiles(self.ms.clone()) {
            let mean = self.ms.iter().sum::<f64>() / self.ms.len() as f64;
            rows.push(Row::new(case, imp, "p50_ms", p.p50));
            rows.push(Row::new(case, imp, "p99_ms", p.p99));
            rows.push(Row::new(case, imp, "mean_ms", mean));
        }
        if self.failures > 0 {
            rows.push(Row::new(case, imp, "failures", self.failures as f64));
            let first = self.first_failure.as_deref().unwrap_or("?");
            notes.push(format!(
                "{case}/{imp}: {} of {} runs failed (left out of the times); first: {first}",
                self.failures,
                self.failures + self.ms.len()
            ));
        }
    }
}

/// "bosun p50 / peer p50" lines for every case that has both.
fn ratios(rows: &[Row]) -> String {
    let find = |case: &str, imp: &str| {
        rows.iter()
            .find(|r| r.case == case && r.implementation == imp && r.metric == "p50_ms")
            .map(|r| r.value)
    };
    let mut out = String::new();
    for case in ["sequential", "concurrent20"] {
        let Some(bosun) = find(case, "bosun") else {
            continue;
        };
        for peer in [Peer::Crun, Peer::Runc] {
            if let Some(value) = find(case, peer.name()) {
                let _ = writeln!(
                    out,
                    "{case}: bosun/{} p50 ratio {:.2} (bosun {bosun:.1} ms, {} {value:.1} ms)",
                    peer.name(),
                    bosun / value,
                    peer.name()
                );
            }
        }
    }
    out
}
