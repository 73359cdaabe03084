//! `cargo xtask bench cluster`: bosun as a cluster on this machine — the release
//! `bosun-control` (embedded store) and two release `bosun-agent --kubeconfig` nodes, each
//! with its node network in a netns of its own on one bridge, the eBPF dataplane, and its own
//! cgroup root, bpffs directory and directories ([`super::cluster_env`]) — against
//! containerd starting the same containers, measured in the same run.
//!
//! Cases, in the order they run:
//! - `deploy<N>`, the peer (impl `containerd`, [`super::cluster_containerd`]): Debian's
//!   containerd, a private instance, starting N `sleep 3600` busybox containers with
//!   `ctr run -d`, 8 at once: `all_running_s`. The peer has no API, no scheduler, no pod
//!   network and no status reporting: it only starts the processes.
//! - `rollout<M>` ([`super::cluster_rollout`]): a Deployment of M busybox httpd replicas
//!   behind a Service (each with a 2 s `preStop` sleep to drain), restarted with
//!   `kubectl rollout restart` while a client pod on node 1
//!   requests the ClusterIP every 50 ms: `duration_s`, `failed_requests`, `total_requests`.
//!   Deleted before the next case.
//! - `deploy<N>` (impl `bosun`): a Deployment of N replicas of `sleep 3600` (busybox, no
//!   readiness probe, so a pod is Ready once its container runs and the agent said so) applied
//!   with kubectl; the pods are followed with a list and a watch of the API
//!   ([`super::cluster_watch`]) until all are Running and all Ready (bounded): `all_running_s`
//!   and `all_ready_s` from the apply (and, to see where the time goes, `all_created_s` and
//!   `all_scheduled_s`: when the ReplicaSet had made them all and all were bound to nodes, and
//!   `control_cpu_s` and `agents_cpu_s`: the CPU time the control process and both agents
//!   spent meanwhile), then `control_rss_mb` and `agent_rss_mb` (the larger of
//!   the two agents' VmRSS) with the N pods running.
//!
//! N = 1000, M = 50 (`--quick`: 100 and 10). The agents run with `--max-pods` N (and /22 pod
//! CIDRs). Goals, printed not asserted: all Running in < 20 s, control RSS < 150 MB, each
//! agent < 96 MB, no failed request during the rollout. A debug `bosun-bench` builds the
//! release workspace and runs the bench from its release self. Everything is torn down
//! however the bench ends.

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::agent_daemon::{clock_ticks, cpu_ticks, status_field};
use super::cluster_env::{work_dir, ClusterEnv, Layout};
use super::control_client::Tls;
use super::{cluster_containerd, cluster_rollout, cluster_watch, write_results, Options, Row};
use xtask::util;

const RUNNING_GOAL_S: f64 = 20.0;
const CONTROL_RSS_GOAL_MB: f64 = 150.0;
const AGENT_RSS_GOAL_MB: f64 = 96.0;
const GONE_LIMIT: Duration = Duration::from_secs(90);

/// Sizes of one run.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub replicas: usize,
    pub rollout_replicas: usize,
    pub nodes: u8,
    /// Each agent's `--max-pods`.
    pub max_pods: usize,
    /// How long the N pods may take to be Running and Ready.
    pub limit: Duration,
}

impl Plan {
    pub fn new(options: &Options) -> Self {
        let (replicas, rollout_replicas, limit) = match options.quick {
            true => (100, 10, 120),
            false => (1000, 50, 300),
        };
        Self {
            replicas,
            rollout_replicas,
            nodes: 2,
            max_pods: replicas.max(110),
            limit: Duration::from_secs(limit),
        }
    }

    pub fn deploy_case(&self) -> String {
        format!("deploy{}", self.replicas)
    }
}

fn sleep_deployment(replicas: usize) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: sleep}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: sleep}}}}
  template:
    metadata: {{labels: {{app: sleep}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: sleep
        image: bosun.test/busybox:1
        command: [sleep, '3600']
"#
    )
}

pub fn run(options: &Options) -> Result<()> {
    if !util::is_root() {
        anyhow::bail!("the cluster bench must run as root: pods need namespaces, cgroups and eBPF");
    }
    if cfg!(debug_assertions) {
        xtask::setup::prepare_release(&["--workspace"])?;
        let mut command = Command::new(util::target_dir().join("release").join("bosun-bench"));
        command.arg("cluster");
        if options.quick {
            command.arg("--quick");
        }
        return util::run(&mut command);
    }
    let plan = Plan::new(options);
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let case = plan.deploy_case();
    match cluster_containerd::measure(plan.replicas, &work_dir().join("containerd")) {
        Ok(seconds) => rows.push(Row::new(&case, "containerd", "all_running_s", seconds)),
        Err(e) => notes.push(format!("containerd peer: {e:#}")),
    }
    let measured = on_cluster(&plan, &mut rows, &mut notes);
    if !rows.is_empty() {
        write_results("cluster", &rows)?;
        print!("{}", report(&rows, &plan));
    }
    for note in &notes {
        println!("note: {note}");
    }
    measured
}

/// The rollout, then the big Deployment, on one cluster torn down at the end.
fn on_cluster(plan: &Plan, rows: &mut Vec<Row>, notes: &mut Vec<String>) -> Result<()> {
    let env = ClusterEnv::start(&Layout::cluster(plan.nodes, plan.max_pods))?;
    if let Err(e) = cluster_rollout::measure(&env, plan, rows) {
        notes.push(format!("rollout: {e:#}"));
    }
    let _ = env
        .kubectl()
        .args(["delete", "deployment/web", "service/web", "pod/client"])
        .args(["--ignore-not-found", "--wait=false"])
        .output();
    wait_no_pods(&env)?;
    deploy(&env, plan, rows, notes).with_context(|| format!("{}{}", plan.deploy_case(), env.logs()))
}

/// Waits (bounded) until the API has no pod left.
fn wait_no_pods(env: &ClusterEnv) -> Result<()> {
    let deadline = Instant::now() + GONE_LIMIT;
    loop {
        let out = env.kubectl().args(["get", "pods", "-o", "name"]).output()?;
        if out.status.success() && out.stdout.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("pods still there after {GONE_LIMIT:?}{}", env.logs());
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn deploy(
    env: &ClusterEnv,
    plan: &Plan,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> Result<()> {
    let case = plan.deploy_case();
    let control = env.control.as_ref().context("no control process")?;
    let tls = Tls::new(&control.kubeconfig)?;
    let runtime = super::client_runtime()?;
    let agent_pids: Vec<u32> = env
        .nodes
        .iter()
        .filter_map(|n| n.agent.as_ref().map(|a| a.pid))
        .collect();
    let cpu = |pids: &[u32]| -> Result<u64> { pids.iter().map(|p| cpu_ticks(*p)).sum() };
    let (control_cpu, agents_cpu) = (cpu(&[control.process.pid])?, cpu(&agent_pids)?);
    let start = Instant::now();
    env.apply(&sleep_deployment(plan.replicas))?;
    let followed = runtime.block_on(cluster_watch::follow(
        &tls,
        "app%3Dsleep",
        plan.replicas,
        start,
        start + plan.limit,
    ))?;
    // Where the time goes: the ReplicaSet's creates, the scheduler's bindings, then the nodes.
    if let Some(at) = followed.all_created {
        rows.push(Row::new(&case, "bosun", "all_created_s", at.as_secs_f64()));
    }
    if let Some(at) = followed.all_scheduled {
        rows.push(Row::new(
            &case,
            "bosun",
            "all_scheduled_s",
            at.as_secs_f64(),
        ));
    }
    if let Some(at) = followed.all_running {
        rows.push(Row::new(&case, "bosun", "all_running_s", at.as_secs_f64()));
    }
    if let Some(at) = followed.all_ready {
        rows.push(Row::new(&case, "bosun", "all_ready_s", at.as_secs_f64()));
    }
    // CPU seconds spent until then (or the deadline), to see who was busy on the machine.
    let hz = clock_ticks()?;
    let spent = |now: u64, then: u64| now.saturating_sub(then) as f64 / hz;
    let control_spent = spent(cpu(&[control.process.pid])?, control_cpu);
    rows.push(Row::new(&case, "bosun", "control_cpu_s", control_spent));
    let agents_spent = spent(cpu(&agent_pids)?, agents_cpu);
    rows.push(Row::new(&case, "bosun", "agents_cpu_s", agents_spent));
    let rss = |pid: u32| status_field(pid, "VmRSS").map(|kib| kib / 1024.0);
    rows.push(Row::new(
        &case,
        "bosun",
        "control_rss_mb",
        rss(control.process.pid)?,
    ));
    memory_notes("control", control.process.pid, notes);
    let mut agents = Vec::new();
    for pid in &agent_pids {
        agents.push(rss(*pid)?);
        memory_notes("agent", *pid, notes);
    }
    let max = agents.iter().copied().fold(0.0, f64::max);
    rows.push(Row::new(&case, "bosun", "agent_rss_mb", max));
    // Whether the control's per-client rate limit (--max-requests-per-second-per-client)
    // turned an agent's request away: the agents log every refused write (429).
    for node in &env.nodes {
        let log = std::fs::read_to_string(node.log_path()).unwrap_or_default();
        let throttled = log
            .lines()
            .filter(|l| l.contains("429") || l.contains("TooManyRequests"))
            .count();
        notes.push(format!(
            "{}: {throttled} requests refused by the control's rate limit (429)",
            node.name()
        ));
    }
    if followed.all_running.is_none() || followed.all_ready.is_none() {
        anyhow::bail!(
            "after {:?}: {} pods, {} Running, {} Ready of {}",
            plan.limit,
            followed.total,
            followed.running,
            followed.ready,
            plan.replicas
        );
    }
    Ok(())
}

fn find(rows: &[Row], case: &str, implementation: &str, metric: &str) -> Option<f64> {
    rows.iter()
        .find(|r| r.case == case && r.implementation == implementation && r.metric == metric)
        .map(|r| r.value)
}

/// The ratio against containerd and the goal lines.
pub fn report(rows: &[Row], plan: &Plan) -> String {
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let case = plan.deploy_case();
    let mut out = String::new();
    let bosun = find(rows, &case, "bosun", "all_running_s");
    let peer = find(rows, &case, "containerd", "all_running_s");
    if let (Some(bosun), Some(peer)) = (bosun, peer) {
        let _ = writeln!(
            out,
            "ratio {case} all_running_s: bosun {bosun:.2} s (API, scheduler, network, status) / \
             containerd {peer:.2} s (processes only) = {:.2}×",
            bosun / peer
        );
    }
    if let Some(s) = bosun {
        let _ = writeln!(
            out,
            "goal {case} all Running: {s:.2} s (< {RUNNING_GOAL_S} s): {}",
            verdict(s < RUNNING_GOAL_S)
        );
    }
    let goals = [
        ("control_rss_mb", "control RSS", CONTROL_RSS_GOAL_MB),
        ("agent_rss_mb", "each agent's RSS", AGENT_RSS_GOAL_MB),
    ];
    for (metric, what, goal) in goals {
        if let Some(mb) = find(rows, &case, "bosun", metric) {
            let _ = writeln!(
                out,
                "goal {what} with {} pods: {mb:.1} MB (< {goal} MB): {}",
                plan.replicas,
                verdict(mb < goal)
            );
        }
    }
    let rollout = format!("rollout{}", plan.rollout_replicas);
    if let Some(failed) = find(rows, &rollout, "bosun", "failed_requests") {
        let total = find(rows, &rollout, "bosun", "total_requests").unwrap_or(0.0);
        let _ = writeln!(
            out,
            "goal {rollout} failed requests: {failed} of {total} (0): {}",
            verdict(failed == 0.0)
        );
    }
    out
}

/// Where a process's RSS is: its heap and stacks, its mapped files (the binary, the store's
/// file), shared memory (mmapped BPF maps).
fn memory_notes(label: &str, pid: u32, notes: &mut Vec<String>) {
    let field = |name: &str| status_field(pid, name).map_or(-1.0, |kib| kib / 1024.0);
    notes.push(format!(
        "{label} pid {pid}: RssAnon {:.1} MB, RssFile {:.1} MB, RssShmem {:.1} MB, {} threads",
        field("RssAnon"),
        field("RssFile"),
        field("RssShmem"),
        status_field(pid, "Threads").unwrap_or(0.0)
    ));
    match super::smaps::AnonBreakdown::of(pid) {
        Ok(anon) => notes.push(format!("{label} pid {pid}: {anon}")),
        Err(e) => notes.push(format!("{label} pid {pid}: {e:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_match_the_issue_and_quick_is_small() {
        let full = Plan::new(&Options::default());
        assert_eq!(
            (full.replicas, full.rollout_replicas, full.nodes),
            (1000, 50, 2)
        );
        assert!(full.max_pods >= full.replicas);
        let quick = Plan::new(&Options {
            quick: true,
            ..Options::default()
        });
        assert_eq!((quick.replicas, quick.rollout_replicas), (100, 10));
        assert!(sleep_deployment(100).contains("replicas: 100"));
    }

    #[test]
    fn report_prints_the_ratio_and_goal_verdicts() {
        let plan = Plan::new(&Options::default());
        let rows = [
            Row::new("deploy1000", "bosun", "all_running_s", 30.0),
            Row::new("deploy1000", "containerd", "all_running_s", 15.0),
            Row::new("deploy1000", "bosun", "control_rss_mb", 100.0),
            Row::new("deploy1000", "bosun", "agent_rss_mb", 120.0),
            Row::new("rollout50", "bosun", "failed_requests", 0.0),
            Row::new("rollout50", "bosun", "total_requests", 300.0),
        ];
        let report = report(&rows, &plan);
        for line in [
            "= 2.00×",
            "goal deploy1000 all Running: 30.00 s (< 20 s): MISSED",
            "goal control RSS with 1000 pods: 100.0 MB (< 150 MB): met",
            "goal each agent's RSS with 1000 pods: 120.0 MB (< 96 MB): MISSED",
            "goal rollout50 failed requests: 0 of 300 (0): met",
        ] {
            assert!(report.contains(line), "{line}\n{report}");
        }
    }
}
