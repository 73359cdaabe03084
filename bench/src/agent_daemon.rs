//! The agent as a node daemon, for benchmarks that run many static pods (pods' density case,
//! probes): starting it on a manifests dir, polling `ps --json`, stopping it, and reading a
//! process's CPU time and memory from /proc.
//!
//! [`Daemon::stop`] removes the manifests, waits (bounded) for the pods to go, then SIGTERMs
//! the daemon and SIGKILLs it after 20 s; dropping a [`Daemon`] that was not stopped kills it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use xtask::util;

const POLL: Duration = Duration::from_millis(500);
const TERM_LIMIT: Duration = Duration::from_secs(20);

/// The release agent with a benchmark's own state directories and cgroup root.
pub struct Agent {
    pub bin: PathBuf,
    pub root: PathBuf,
    pub run_dir: PathBuf,
    pub cgroup_root: &'static str,
}

impl Agent {
    /// `bosun-agent` with the global flags that keep it inside the bench's directories.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.bin);
        command
            .arg("--root")
            .arg(&self.root)
            .arg("--run-dir")
            .arg(&self.run_dir)
            .args([
                "--cgroup-root",
                self.cgroup_root,
                "--log-level",
                "warn",
                "--network",
                "none",
            ]);
        command
    }

    /// The daemon's pods, from `ps --json`.
    pub fn pods(&self) -> Result<Vec<Value>> {
        let out = util::output(self.command().args(["ps", "--json"]))?;
        serde_json::from_str(&out).context("parsing `ps --json`")
    }
}

/// A running agent daemon (a child of this process).
pub struct Daemon {
    child: Child,
}

impl Daemon {
    /// Starts the daemon on `manifests` with `extra` flags, its output going to `log`, and
    /// waits (bounded) until its socket answers `ps`.
    pub fn start(agent: &Agent, manifests: &Path, extra: &[String], log: &Path) -> Result<Self> {
        let file = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let child = agent
            .command()
            .arg("--manifests")
            .arg(manifests)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .context("starting the agent daemon")?;
        let mut daemon = Self { child };
        daemon
            .wait_for(Duration::from_secs(30), || {
                Ok(agent.pods().is_ok().then_some(()))
            })
            .context("the daemon's socket never answered")?;
        Ok(daemon)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `check` until it yields, the daemon exits, or `limit` passes.
    pub fn wait_for<T>(
        &mut self,
        limit: Duration,
        mut check: impl FnMut() -> Result<Option<T>>,
    ) -> Result<T> {
        let start = Instant::now();
        let mut last_error = None;
        loop {
            if let Some(status) = self.child.try_wait()? {
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

    /// Removes the manifests, waits up to `limit` for the pods to go, then SIGTERMs the
    /// daemon (bounded); notes are prefixed with `label`. Fails if pods were left.
    pub fn stop(
        &mut self,
        agent: &Agent,
        manifests: &Path,
        limit: Duration,
        label: &str,
        notes: &mut Vec<String>,
    ) -> Result<()> {
        let removed = std::fs::remove_dir_all(manifests)
            .and_then(|()| std::fs::create_dir(manifests))
            .context("removing the manifests");
        let start = Instant::now();
        let mut left = usize::MAX;
        let gone = removed.and_then(|()| {
            self.wait_for(limit, || {
                left = agent.pods()?.len();
                Ok((left == 0).then_some(()))
            })
        });
        match &gone {
            Ok(()) => notes.push(format!(
                "{label}: all pods gone {:.1} s after their manifests were removed",
                start.elapsed().as_secs_f64()
            )),
            Err(error) => notes.push(format!(
                "{label}: pods not all gone ({left} left): {error:#}"
            )),
        }
        if !self.terminate() {
            notes.push(format!(
                "{label}: the daemon ignored SIGTERM for 20 s and was killed"
            ));
        }
        gone
    }

    /// SIGTERM, then SIGKILL after 20 s; whether SIGTERM was enough.
    fn terminate(&mut self) -> bool {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + TERM_LIMIT;
        while let Ok(None) = self.child.try_wait() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return false;
            }
            sleep(Duration::from_millis(50));
        }
        true
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

/// CPU time of one process in clock ticks, from /proc/PID/stat.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTicks {
    /// utime + stime of all its threads.
    pub own: u64,
    /// cutime + cstime: its children (and their waited-for descendants) once reaped, plus the
    /// whole CPU (own + reaped children) of its live `bosun-init` helpers — the exec spawner
    /// forks and reaps the exec helpers, so their CPU would otherwise not show up here.
    pub children: u64,
}

impl CpuTicks {
    pub fn read(pid: u32) -> Result<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let mut ticks = Self::parse(&stat)?;
        for helper in live_helpers(pid) {
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{helper}/stat")) {
                if let Ok(h) = Self::parse(&stat) {
                    ticks.children += h.own + h.children;
                }
            }
        }
        Ok(ticks)
    }

    fn parse(stat: &str) -> Result<Self> {
        // Fields after the parenthesised comm; utime, stime, cutime, cstime are 14 to 17.
        let rest = stat.rsplit_once(')').context("odd /proc/PID/stat")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| -> Result<u64> {
            Ok(fields.get(n - 3).context("short /proc/PID/stat")?.parse()?)
        };
        Ok(Self {
            own: field(14)? + field(15)?,
            children: field(16)? + field(17)?,
        })
    }
}

/// Live children of `pid` running `bosun-init` (the exec spawner); containers are not counted.
fn live_helpers(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        for child in children
            .split_whitespace()
            .filter_map(|c| c.parse::<u32>().ok())
        {
            let comm = std::fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
            if comm.trim() == "bosun-init" {
                out.push(child);
            }
        }
    }
    out
}

/// utime + stime of process `pid` (all its threads), in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    Ok(CpuTicks::read(pid)?.own)
}

/// The number in field `name` of /proc/`pid`/status (VmRSS in kB, Threads).
pub fn status_field(pid: u32, name: &str) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.split(':').next() == Some(name))
        .with_context(|| format!("no {name} in /proc/{pid}/status"))?;
    let value = line.split_whitespace().nth(1).context("odd status line")?;
    Ok(value.parse()?)
}

/// Clock ticks per second (`getconf CLK_TCK`).
pub fn clock_ticks() -> Result<f64> {
    Ok(util::output(&mut util::cmd("getconf", ["CLK_TCK"]))?
        .trim()
        .parse()?)
}

#[cfg(test)]
mod tests {
    use super::CpuTicks;

    #[test]
    fn parses_own_and_children_ticks() {
        let stat = "42 (bosun agent) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 11 5 20 0 1 0";
        let ticks = CpuTicks::parse(stat).unwrap();
        assert_eq!(
            ticks,
            CpuTicks {
                own: 10,
                children: 16
            }
        );
    }
}
