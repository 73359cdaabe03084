//! The routing benchmark's load generators, the same for every dataplane.
//!
//! New connection per request: a bounded Rust client, this xtask binary re-executed
//! (`/proc/self/exe bench routing` with [`ENV`] set; [`super::routing::run`] hands over to
//! [`client_main`]) so it can join the bosun cgroup and the bench netns before exec. Each of
//! its workers loops connect → `GET / (Connection: close)` → read to EOF → close, for a
//! fixed duration after a short warm-up, with a request cap; it prints one result line.
//! Keep-alive: `wrk`, placed the same way. While a load runs, the whole machine's CPU time is
//! sampled from /proc/stat, so the dataplane's per-connection cost shows up as CPU per request.

use std::{
    io::{Read, Write},
    net::{SocketAddr, SocketAddrV4, TcpStream},
    process::{Command, Stdio},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use super::percentiles;

/// Set on the re-executed client: its plan.
pub const ENV: &str = "BOSUN_BENCH_ROUTING_CLIENT";
const RESULT: &str = "ROUTING-CLIENT";

/// One new-connection load run.
#[derive(Clone, Debug)]
pub struct ConnPlan {
    /// Requests go to these in turn (direct: every backend, like a service spreads them).
    pub targets: &'static [SocketAddrV4],
    pub workers: u32,
    pub warmup: Duration,
    pub duration: Duration,
    /// Upper bound on requests in the whole run (warm-up included).
    pub cap: u64,
}

/// What a new-connection run measured.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnResult {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    /// Whole-machine CPU time per request, in µs.
    pub cpu_us_per_req: f64,
}

impl ConnPlan {
    fn encode(&self) -> String {
        let targets: Vec<String> = self.targets.iter().map(|t| t.to_string()).collect();
        format!(
            "{} {} {} {} {}",
            targets.join(","),
            self.workers,
            self.warmup.as_millis(),
            self.duration.as_millis(),
            self.cap
        )
    }

    fn decode(s: &str) -> Result<ConnPlan> {
        let f: Vec<&str> = s.split(' ').collect();
        let [targets, workers, warmup, duration, cap] = f[..] else {
            bail!("bad client plan {s:?}");
        };
        let targets = targets
            .split(',')
            .map(str::parse)
            .collect::<Result<Vec<SocketAddrV4>, _>>()?;
        Ok(ConnPlan {
            targets: targets.leak(),
            workers: workers.parse()?,
            warmup: Duration::from_millis(warmup.parse()?),
            duration: Duration::from_millis(duration.parse()?),
            cap: cap.parse()?,
        })
    }
}

/// Runs `plan` in a child placed by `place` (netns, and the bosun cgroup where needed).
pub fn run_conn(place: impl FnOnce(&mut Command), plan: &ConnPlan) -> Result<ConnResult> {
    let mut command = Command::new("/proc/self/exe");
    command
        .arg("routing")
        .env(ENV, plan.encode())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    place(&mut command);
    let child = command.spawn().context("starting the routing client")?;
    // The client warms up first; sample the machine's CPU over its measured part only.
    std::thread::sleep(plan.warmup);
    let mark = cpu_mark()?;
    let out = child
        .wait_with_output()
        .context("waiting for the routing client")?;
    let cpu_s = cpu_since(mark)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(line) = stdout.lines().find_map(|l| l.strip_prefix(RESULT)) else {
        bail!("routing client failed ({}): {stdout}", out.status);
    };
    let v: Vec<f64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing client result {line:?}"))?;
    let [ok, errors, secs, p50_ms, p99_ms] = v[..] else {
        bail!("bad client result {line:?}");
    };
    Ok(ConnResult {
        rps: ok / secs,
        p50_ms,
        p99_ms,
        errors: errors as u64,
        cpu_us_per_req: cpu_s * 1e6 / ok.max(1.0),
    })
}

/// The client child's entry point: runs the plan and prints the result line.
pub fn client_main(plan: &str) -> Result<()> {
    let plan = ConnPlan::decode(plan)?;
    let started = AtomicU64::new(0);
    let errors = AtomicU64::new(0);
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let deadline = measure_from + plan.duration;
    let request = "GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
    let latencies: Vec<Vec<f64>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..plan.workers)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    let mut buf = [0u8; 512];
                    loop {
                        let t0 = Instant::now();
                        let nth = started.fetch_add(1, Ordering::Relaxed);
                        if t0 >= deadline || nth >= plan.cap {
                            return mine;
                        }
                        let target = plan.targets[nth as usize % plan.targets.len()];
                        match one_request(target, request.as_bytes(), &mut buf) {
                            Ok(()) if t0 >= measure_from => {
                                mine.push(t0.elapsed().as_secs_f64() * 1e3)
                            }
                            Ok(()) => {}
                            Err(_) => {
                                if t0 >= measure_from {
                                    errors.fetch_add(1, Ordering::Relaxed);
                                }
                                // No hot loop on an immediate failure.
                                std::thread::sleep(Duration::from_millis(1));
                            }
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let secs = (Instant::now().min(deadline) - measure_from.min(Instant::now()))
        .as_secs_f64()
        .max(1e-3);
    let all: Vec<f64> = latencies.into_iter().flatten().collect();
    let ok = all.len();
    let p = percentiles(all).map_or((0.0, 0.0), |p| (p.p50, p.p99));
    println!(
        "{RESULT} {ok} {} {secs:.6} {:.6} {:.6}",
        errors.load(Ordering::Relaxed),
        p.0,
        p.1
    );
    Ok(())
}

fn one_request(target: SocketAddrV4, request: &[u8], buf: &mut [u8]) -> std::io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&SocketAddr::V4(target), Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_nodelay(true)?;
    stream.write_all(request)?;
    let mut first = true;
    loop {
        match stream.read(buf)? {
            0 if first => return Err(std::io::Error::other("empty response")),
            0 => return Ok(()),
            n if first && !buf[..n].starts_with(b"HTTP/1.1 200") => {
                return Err(std::io::Error::other("not a 200 response"))
            }
            _ => first = false,
        }
    }
}

/// Runs wrk (keep-alive, 2 threads, 32 connections) against `url` for `secs`; returns
/// requests per second and the whole machine's CPU µs per request.
pub fn run_wrk(place: impl FnOnce(&mut Command), url: &str, secs: u64) -> Result<(f64, f64)> {
    let mut command = Command::new("wrk");
    command
        .args(["-t2", "-c32", &format!("-d{secs}s"), "--timeout", "2s", url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    place(&mut command);
    let child = command
        .spawn()
        .context("starting wrk (cargo xtask setup installs it)")?;
    let mark = cpu_mark()?;
    let out = child.wait_with_output().context("waiting for wrk")?;
    let cpu_s = cpu_since(mark)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "wrk failed ({}): {stdout} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let total = |prefix: &str| {
        stdout.lines().find_map(|l| {
            l.trim()
                .strip_prefix(prefix)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
        })
    };
    let rps = total("Requests/sec:").with_context(|| format!("no Requests/sec in: {stdout}"))?;
    if let Some(line) = stdout
        .lines()
        .find(|l| l.contains("Socket errors") || l.contains("Non-2xx"))
    {
        eprintln!("routing: wrk {url}: {}", line.trim());
    }
    Ok((rps, cpu_s * 1e6 / (rps * secs as f64).max(1.0)))
}

/// Busy CPU seconds of the whole machine between [`cpu_mark`] and now.
fn cpu_since(mark: u64) -> Result<f64> {
    Ok(busy_ticks()?.saturating_sub(mark) as f64 / ticks_per_second())
}

/// The start of a CPU sample.
fn cpu_mark() -> Result<u64> {
    busy_ticks()
}

fn ticks_per_second() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100.0, |t| t as f64)
}

/// user + nice + system + irq + softirq + steal ticks of all CPUs.
fn busy_ticks() -> Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let get = |i: usize| f.get(i).copied().unwrap_or(0);
    Ok(get(0) + get(1) + get(2) + get(5) + get(6) + get(7))
}
