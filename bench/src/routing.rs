//! `cargo xtask bench routing [--quick] [--services 1,1000,10000]`: ClusterIP dataplanes side
//! by side — direct backend IP (the floor), bosun's eBPF socket LB, iptables and nftables in
//! kube-proxy's layouts, IPVS where the kernel has it — with the same client, the same
//! backends, on the same machine, in one run (DESIGN.md §6; issue 5 has the contract).
//!
//! Everything happens inside one test netns ([`super::routing_env`]). Service `i` is
//! 10.96.0.0 + 1 + i, port 80/TCP, with the same 10 endpoints 10.250.0.1..10:8080 (one HTTP
//! backend per address, shared by all services); the measured service is the last one
//! programmed (the worst case for a linear rule chain). Per (case `services=N`, impl) it
//! records `sync_full_ms` (program all N from empty), `sync_one_ms` (median of toggling one
//! endpoint of the measured service), `dataplane_cpu_ms` (CPU of the full sync), `conn_rps`,
//! `conn_p50_ms`, `conn_p99_ms`, `conn_cpu_us` (machine CPU per request), `keepalive_rps`.
//! Failures of one peer are reported and the others still run; the run then fails.

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use super::routing_backends::Backends;
use super::{
    percentiles, routing_bosun::Bosun, routing_client as client, routing_env as env,
    routing_iptables as ipt, routing_nft as nft, routing_report as report, write_results, Options,
    Row,
};
use env::{Cgroup, Netns};

/// The impls in table order; `ipvs` is only probed.
pub const IMPLS: [&str; 5] = ["direct", "bosun", "iptables", "nftables", "ipvs"];
const WORKERS: u32 = 8;
const REQUEST_CAP: u64 = 2_000_000;
/// The longest any programming command may run.
const SYNC_LIMIT: Duration = Duration::from_secs(600);
/// The most services the 10.96.0.0/16 VIP range (and a sane run time) allows.
const MAX_SERVICES: u32 = 65_000;

/// Service `i`'s ClusterIP.
pub fn vip(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + 1 + i)
}

/// The 10 endpoints every service has.
pub fn endpoints() -> [SocketAddrV4; env::BACKENDS] {
    std::array::from_fn(|k| SocketAddrV4::new(env::backend_ip(k), env::BACKEND_PORT))
}

/// How long each load and how many sync repetitions.
#[derive(Clone, Copy)]
struct Timing {
    warmup: Duration,
    load: Duration,
    wrk_secs: u64,
    bosun_reps: usize,
    rules_reps: usize,
    /// How long kube-proxy's `iptables-restore --noflush` full sync may take.
    noflush_limit: Duration,
}

impl Timing {
    fn new(quick: bool) -> Timing {
        if quick {
            Timing {
                warmup: Duration::from_millis(200),
                load: Duration::from_secs(1),
                wrk_secs: 1,
                bosun_reps: 5,
                rules_reps: 3,
                noflush_limit: Duration::from_secs(10),
            }
        } else {
            Timing {
                warmup: Duration::from_millis(500),
                load: Duration::from_secs(3),
                wrk_secs: 3,
                bosun_reps: 21,
                rules_reps: 7,
                noflush_limit: Duration::from_secs(30),
            }
        }
    }
}

/// Everything one case needs.
struct Ctx<'a> {
    ns: &'a Netns,
    cgroup: &'a Cgroup,
    backends: &'a Backends,
    tmp: &'a Path,
    timing: Timing,
}

/// A scratch directory for the rule files (removed on drop).
struct TmpDir(PathBuf);

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the benchmark (or, in the re-executed client, the client).
pub fn run(options: &Options) -> Result<()> {
    if let Ok(plan) = std::env::var(client::ENV) {
        return client::client_main(&plan);
    }
    if !xtask::util::is_root() {
        bail!("bench routing needs root (netns, cgroups, BPF, netfilter)");
    }
    let counts = service_counts(options)?;
    let timing = Timing::new(options.quick);
    let tmp = TmpDir(std::env::temp_dir().join(format!("bosun-bench-rt-{}", std::process::id())));
    std::fs::create_dir_all(&tmp.0).context("creating the rule file directory")?;
    // Drop order (reverse of declaration): backends, cgroup, netns.
    let ns = Netns::create()?;
    let cgroup = Cgroup::create()?;
    let backends = Backends::start(&ns)?;
    let ctx = Ctx {
        ns: &ns,
        cgroup: &cgroup,
        backends: &backends,
        tmp: &tmp.0,
        timing,
    };
    let ipvs = ipvs_available();
    let (mut rows, mut failures) = (Vec::new(), Vec::new());
    for &n in &counts {
        let case = format!("services={n}");
        for imp in &IMPLS[..4] {
            println!("routing: {case} {imp} ...");
            if let Err(e) = measure(&ctx, n, imp, &mut rows) {
                eprintln!("routing: {case} {imp} failed: {e:#}");
                failures.push(format!("{case} {imp}: {e:#}"));
                // Leave no rules behind for the next peer, whatever failed.
                let _ = ns.flush_ruleset();
                let _ = ns.route_services(false);
            }
        }
        rows.push(Row::new(
            &case,
            "ipvs",
            "available",
            f64::from(u8::from(ipvs)),
        ));
    }
    write_results("routing", &rows)?;
    print!("{}", report::matrix(&rows, &counts, ipvs));
    print!("{}", report::goals(&rows, &counts));
    if !failures.is_empty() {
        bail!("some measurements failed:\n  {}", failures.join("\n  "));
    }
    Ok(())
}

/// `--services`, or the defaults: 1,1000,10000 (quick: 1,1000).
fn service_counts(options: &Options) -> Result<Vec<u32>> {
    let counts = match (options.services, options.quick) {
        ([], true) => vec![1, 1000],
        ([], false) => vec![1, 1000, 10_000],
        (given, _) => given.to_vec(),
    };
    if let Some(bad) = counts.iter().find(|&&n| n == 0 || n > MAX_SERVICES) {
        bail!("--services {bad}: each count must be 1..={MAX_SERVICES}");
    }
    Ok(counts)
}

/// The kernel has IPVS when its proc files exist (no modules can be loaded here).
fn ipvs_available() -> bool {
    Path::new("/proc/net/ip_vs").exists() || Path::new("/proc/sys/net/ipv4/vs").exists()
}

/// Measures one impl at `n` services, pushing its rows.
fn measure(ctx: &Ctx, n: u32, imp: &str, rows: &mut Vec<Row>) -> Result<()> {
    let case = format!("services={n}");
    let mut push = |metric: &str, value: f64| rows.push(Row::new(&case, imp, metric, value));
    let measured = n - 1;
    let vip_target = SocketAddrV4::new(vip(measured), 80);
    match imp {
        "direct" => traffic(ctx, None, false, &mut push),
        "bosun" => {
            let mut lb = Bosun::load(n, ctx.cgroup.path())?;
            let (wall, cpu) = lb.sync_full(n)?;
            push("sync_full_ms", wall);
            push("dataplane_cpu_ms", cpu);
            traffic(ctx, Some(vip_target), true, &mut push)?;
            println!(
                "routing:   bosun counted {} connections on {vip_target}",
                lb.connections(measured)?
            );
            let samples = toggle(ctx.timing.bosun_reps, |count| lb.sync_one(measured, count))?;
            push("sync_one_ms", median(samples));
            Ok(())
        }
        "iptables" | "nftables" => {
            let file = ctx.tmp.join(format!("{imp}.rules"));
            let result = rules(ctx, n, imp == "iptables", &file, &mut push);
            ctx.ns.flush_ruleset()?;
            ctx.ns.route_services(false)?;
            result
        }
        other => bail!("unknown impl {other}"),
    }
}

/// The iptables (`ipt`) or nftables peer at `n` services.
fn rules(
    ctx: &Ctx,
    n: u32,
    ipt: bool,
    file: &Path,
    push: &mut impl FnMut(&str, f64),
) -> Result<()> {
    let measured = n - 1;
    let apply = |text: &str, noflush: bool, limit: Duration| {
        let applied = if ipt {
            ipt::apply(ctx.ns, file, text, noflush, limit)?
        } else {
            nft::apply(ctx.ns, file, text, limit)?
        };
        applied.with_context(|| format!("programming took over {} s", limit.as_secs()))
    };
    ctx.ns.route_services(true)?;
    let text = if ipt { ipt::full(n) } else { nft::full(n) };
    if ipt {
        // kube-proxy's own way first, bounded (see routing_iptables).
        let limit = ctx.timing.noflush_limit;
        match apply(&text, true, limit) {
            Ok((wall, _)) => push("sync_full_noflush_ms", wall),
            Err(e) => {
                println!("routing:   iptables-restore --noflush (full): {e:#}; killed");
                push("sync_full_noflush_timeout_ms", limit.as_secs_f64() * 1e3);
            }
        }
        ctx.ns.flush_ruleset()?;
    }
    let (wall, cpu) = apply(&text, false, SYNC_LIMIT)?;
    push("sync_full_ms", wall);
    push("dataplane_cpu_ms", cpu);
    if let Err(e) = ctx.ns.tune_conntrack() {
        eprintln!("routing: warning: conntrack TIME_WAIT timeout not lowered: {e:#}");
    }
    traffic(ctx, Some(SocketAddrV4::new(vip(measured), 80)), false, push)?;
    let one = if ipt {
        ipt::one_change
    } else {
        nft::one_change
    };
    let samples = toggle(ctx.timing.rules_reps, |count| {
        apply(&one(measured, count), true, SYNC_LIMIT).map(|(wall, _)| wall)
    })?;
    push("sync_one_ms", median(samples));
    Ok(())
}

/// Removes and re-adds the measured service's last endpoint, `reps` changes in all (bounded
/// by 30 s), returning each change's wall ms.
fn toggle(reps: usize, mut change: impl FnMut(usize) -> Result<f64>) -> Result<Vec<f64>> {
    let all = endpoints().len();
    let start = Instant::now();
    let mut samples = Vec::new();
    for r in 0..reps.max(2) {
        samples.push(change(if r % 2 == 0 { all - 1 } else { all })?);
        if start.elapsed() > Duration::from_secs(30) && r % 2 == 1 {
            break;
        }
    }
    if samples.len() % 2 == 1 {
        change(all)?; // leave the service whole
    }
    Ok(samples)
}

fn median(samples: Vec<f64>) -> f64 {
    percentiles(samples).map_or(f64::NAN, |p| p.p50)
}

/// New-connection load then keep-alive load against the service `vip`, or (direct, `None`)
/// the backends themselves: new connections round-robin over all 10 (as a service spreads
/// them), wrk to the first. The clients join the bosun cgroup first when `in_cgroup`.
fn traffic(
    ctx: &Ctx,
    vip: Option<SocketAddrV4>,
    in_cgroup: bool,
    push: &mut impl FnMut(&str, f64),
) -> Result<()> {
    let procs = if in_cgroup {
        Some(ctx.cgroup.procs()?)
    } else {
        None
    };
    let place = |command: &mut Command| ctx.ns.place(command, procs.as_ref());
    let targets: &'static [SocketAddrV4] = match vip {
        Some(vip) => vec![vip].leak(),
        None => endpoints().to_vec().leak(),
    };
    let target = targets[0];
    let plan = client::ConnPlan {
        targets,
        workers: WORKERS,
        warmup: ctx.timing.warmup,
        duration: ctx.timing.load,
        cap: REQUEST_CAP,
    };
    let before = ctx.backends.hits();
    let conn = client::run_conn(place, &plan)?;
    let hit = ctx
        .backends
        .hits()
        .iter()
        .zip(&before)
        .filter(|(after, before)| after > before)
        .count();
    println!(
        "routing:   {target}: {:.0} conn/s, p50 {:.3} ms, p99 {:.3} ms, {} errors, {hit}/{} backends hit",
        conn.rps,
        conn.p50_ms,
        conn.p99_ms,
        conn.errors,
        env::BACKENDS
    );
    if conn.rps == 0.0 {
        bail!("no request through {target} succeeded");
    }
    push("conn_rps", conn.rps);
    push("conn_p50_ms", conn.p50_ms);
    push("conn_p99_ms", conn.p99_ms);
    push("conn_errors", conn.errors as f64);
    push("conn_cpu_us", conn.cpu_us_per_req);
    let url = format!("http://{target}/");
    match client::run_wrk(place, &url, ctx.timing.wrk_secs) {
        Ok((rps, cpu_us)) => {
            println!("routing:   {url}: {rps:.0} keep-alive req/s");
            push("keepalive_rps", rps);
            push("keepalive_cpu_us", cpu_us);
        }
        Err(e) => eprintln!("routing: warning: keep-alive load skipped: {e:#}"),
    }
    Ok(())
}
