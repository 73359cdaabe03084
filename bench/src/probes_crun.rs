//! The probes benchmark's exec peer: `crun exec` of the exec probe's check
//! (`test -f /var/www/index.html`) into a running crun container, run sequentially.
//!
//! The container is the pods bench's busybox bundle ([`pods_peers::base_config`]) running
//! `sleep 3600` with the same namespaces and no limits, in cgroup
//! `/bosun-bench-probes-crun/exec-peer`, started with `crun run -d`. Each `crun exec` is
//! timed from spawn to exit (wall), and its CPU is what getrusage(RUSAGE_CHILDREN) gains
//! while it runs: user+system time of crun and of every descendant it waited for, which is
//! what fork+exec of `crun exec` costs the node. Nothing else is spawned meanwhile. crun runs
//! in a mount namespace without the cgroup v2 mount when needed ([`NoV2MountNs`]).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;

use super::pods_mountns::NoV2MountNs;
use super::pods_peers::{base_config, state_dir, Peer};
use super::{percentiles, Row};

/// The check every exec runs, the same as the bosun exec probe's.
pub const CHECK: [&str; 3] = ["test", "-f", "/var/www/index.html"];
const ID: &str = "exec-peer";
/// One `crun exec` taking longer than this is killed and counted as failed.
const EXEC_LIMIT: Duration = Duration::from_secs(10);

/// Measures `count` sequential `crun exec`s, appending rows (case `exec`, impl `crun`).
pub fn run(
    image: &Path,
    work: &Path,
    cgroup_prefix: &str,
    count: usize,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> Result<()> {
    let container = Container::start(image, work, cgroup_prefix)?;
    if container.ns.is_some() {
        notes.push(
            "crun ran in a mount namespace without /sys/fs/cgroup/unified (setns before exec)"
                .into(),
        );
    }
    println!("probes: {count} sequential `crun exec {}`", CHECK.join(" "));
    container.exec().context("the first `crun exec` failed")?; // warm the caches
    let mut wall_ms = Vec::with_capacity(count);
    let mut failures = 0;
    let mut first_failure = None;
    let before = children_cpu_us()?;
    for _ in 0..count {
        match container.exec() {
            Ok(ms) => wall_ms.push(ms),
            Err(error) => {
                failures += 1;
                first_failure.get_or_insert(format!("{error:#}"));
            }
        }
    }
    let cpu_us = children_cpu_us()? - before;
    let runs = (count as f64).max(1.0);
    rows.push(Row::new("exec", "crun", "cpu_us_per_probe", cpu_us / runs));
    if let Some(p) = percentiles(wall_ms) {
        rows.push(Row::new("exec", "crun", "p50_ms", p.p50));
        rows.push(Row::new("exec", "crun", "p99_ms", p.p99));
    }
    rows.push(Row::new("exec", "crun", "failures", failures as f64));
    if let Some(first) = first_failure {
        notes.push(format!(
            "exec/crun: {failures} of {count} execs failed; first: {first}"
        ));
    }
    Ok(())
}

/// user+system CPU of this process's reaped children, in µs.
fn children_cpu_us() -> Result<f64> {
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN)?;
    let us = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 * 1e6 + t.tv_usec() as f64;
    Ok(us(usage.user_time()) + us(usage.system_time()))
}

/// The running peer container; deleted (`crun delete -f`) when dropped.
struct Container {
    state: PathBuf,
    bundle: PathBuf,
    ns: Option<NoV2MountNs>,
}

impl Container {
    fn start(image: &Path, work: &Path, cgroup_prefix: &str) -> Result<Self> {
        let mut config = base_config(image, work)?;
        config["process"]["args"] = json!(["sleep", "3600"]);
        config["linux"]["resources"] = json!({});
        config["linux"]["cgroupsPath"] = json!(format!("/{cgroup_prefix}-crun/{ID}"));
        let bundle = work.join("bundles").join("crun").join(ID);
        std::fs::create_dir_all(&bundle)
            .with_context(|| format!("creating {}", bundle.display()))?;
        std::fs::write(bundle.join("config.json"), serde_json::to_vec(&config)?)?;
        let ns = if NoV2MountNs::needed() {
            Some(NoV2MountNs::start()?)
        } else {
            None
        };
        let container = Self {
            state: state_dir(work, Peer::Crun),
            bundle,
            ns,
        };
        // -d: crun exits once the container runs; the container keeps crun's stdio, so
        // nothing here may be a pipe we wait on.
        let log = container.bundle.join("crun-run.log");
        let mut run = container.crun(&["run", "-d", "--bundle"]);
        run.arg(&container.bundle).arg(ID);
        let status = run
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log)?)
            .status()
            .context("starting `crun run -d`")?;
        if !status.success() {
            let error = std::fs::read_to_string(&log).unwrap_or_default();
            bail!("`crun run -d` {status}: {}", error.trim());
        }
        Ok(container)
    }

    /// `crun --root STATE ARGS...`, entering the namespace without the v2 mount if needed.
    fn crun(&self, args: &[&str]) -> Command {
        let mut command = Command::new(Peer::Crun.name());
        command.arg("--root").arg(&self.state).args(args);
        if let Some(ns) = &self.ns {
            ns.enter_on_exec(&mut command);
        }
        command
    }

    /// One `crun exec` of [`CHECK`]; its wall time in ms.
    fn exec(&self) -> Result<f64> {
        let mut command = self.crun(&["exec", ID]);
        command
            .args(CHECK)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let start = Instant::now();
        let mut child = command.spawn().context("starting `crun exec`")?;
        let (done, watch) = mpsc::channel::<()>();
        let pid = Pid::from_raw(child.id() as i32);
        let watchdog = thread::spawn(move || {
            if watch.recv_timeout(EXEC_LIMIT) == Err(mpsc::RecvTimeoutError::Timeout) {
                let _ = kill(pid, Signal::SIGKILL);
            }
        });
        let status = child.wait();
        let elapsed = start.elapsed();
        drop(done);
        let _ = watchdog.join();
        let status = status.context("waiting for `crun exec`")?;
        if !status.success() {
            bail!("`crun exec {ID} {}` {status}", CHECK.join(" "));
        }
        Ok(elapsed.as_secs_f64() * 1e3)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self
            .crun(&["delete", "-f", ID])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
