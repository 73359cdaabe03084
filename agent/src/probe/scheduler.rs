//! One task runs every probe of the node: a timer heap of (due time, probe), a JoinSet of the
//! runs in flight, thresholds per probe, startup gating, and a callback per container for
//! verdict changes. No task, thread or process per probe; exec probes cost one short-lived
//! helper process per run.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::exec::{exec_probe, ExecTarget};
use super::grpc::grpc_probe;
use super::net::{http_probe, tcp_probe, HttpRequest, NetTarget};
use super::state::{ProbeKind, ProbeState};
use crate::metrics::{metrics, ProbeType};

/// What a probe does.
#[derive(Debug, Clone)]
pub enum ProbeAction {
    Exec(Vec<String>),
    Http(HttpRequest),
    Tcp { host: Option<String>, port: u16 },
    Grpc { port: u16, service: String },
}

impl ProbeAction {
    fn probe_type(&self) -> ProbeType {
        match self {
            ProbeAction::Exec(_) => ProbeType::Exec,
            ProbeAction::Http(_) => ProbeType::HttpGet,
            ProbeAction::Tcp { .. } => ProbeType::TcpSocket,
            ProbeAction::Grpc { .. } => ProbeType::Grpc,
        }
    }
}

/// One probe of a container, with Kubernetes' timing and thresholds.
#[derive(Debug, Clone)]
pub struct ProbeSpec {
    pub kind: ProbeKind,
    pub action: ProbeAction,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

/// Where a container's probes run.
#[derive(Debug, Clone)]
pub struct ProbeTargets {
    pub net: NetTarget,
    pub exec: ExecTarget,
}

/// A verdict change of one probe, or one failed attempt of it (kubelet tells each one in
/// an `Unhealthy` event, verdict or not).
#[derive(Debug, Clone)]
pub struct ProbeUpdate {
    pub container: String,
    pub pid: i32,
    pub kind: ProbeKind,
    /// The probe's verdict, after this attempt.
    pub healthy: bool,
    /// Whether this attempt changed the verdict; otherwise it is a failed attempt only.
    pub changed: bool,
    /// This attempt's result: `Liveness probe failed: …` or `… probe succeeded`.
    pub message: String,
}

pub type UpdateSink = Arc<dyn Fn(ProbeUpdate) + Send + Sync>;

/// The probes of one running container instance.
pub struct ContainerProbes {
    pub container: String,
    pub pid: i32,
    pub probes: Vec<ProbeSpec>,
    pub targets: Arc<ProbeTargets>,
    pub updates: UpdateSink,
}

/// Identifies a registered container in the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProbeHandle(u64);

enum Command {
    Add(ProbeHandle, ContainerProbes),
    Remove(ProbeHandle),
}

/// Handle to the node's probe task.
#[derive(Clone)]
pub struct ProbeScheduler {
    tx: mpsc::UnboundedSender<Command>,
    next_id: Arc<std::sync::atomic::AtomicU64>,
}

impl ProbeScheduler {
    /// Starts the probe task on the current tokio runtime.
    pub fn start() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(rx));
        ProbeScheduler {
            tx,
            next_id: Arc::new(std::sync::atomic::AtomicU64::new(1)),
        }
    }

    pub fn add(&self, probes: ContainerProbes) -> ProbeHandle {
        let h = ProbeHandle(
            self.next_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        );
        let _ = self.tx.send(Command::Add(h, probes));
        h
    }

    pub fn remove(&self, h: ProbeHandle) {
        let _ = self.tx.send(Command::Remove(h));
    }
}

struct Entry {
    spec: ProbeSpec,
    state: ProbeState,
    inflight: bool,
    /// Liveness/readiness wait for the startup probe to pass.
    gated: bool,
    done: bool,
}

struct Registered {
    info: ContainerProbes,
    entries: Vec<Entry>,
}

type Due = Reverse<(Instant, u64, usize)>;
type RunResult = (u64, usize, Result<(), String>, Duration);

async fn run(mut rx: mpsc::UnboundedReceiver<Command>) {
    let mut containers: HashMap<u64, Registered> = HashMap::new();
    let mut heap: BinaryHeap<Due> = BinaryHeap::new();
    let mut inflight: JoinSet<RunResult> = JoinSet::new();
    loop {
        let next = heap.peek().map(|Reverse((t, _, _))| *t);
        tokio::select! {
            cmd = rx.recv() => match cmd {
                None => return,
                Some(Command::Add(h, info)) => add(&mut containers, &mut heap, h, info),
                Some(Command::Remove(h)) => { containers.remove(&h.0); }
            },
            Some(res) = inflight.join_next(), if !inflight.is_empty() => {
                if let Ok((cid, idx, outcome, took)) = res {
                    finish(&mut containers, &mut heap, cid, idx, outcome, took);
                }
            }
            _ = sleep_until(next), if next.is_some() => {
                let now = Instant::now();
                while let Some(Reverse((t, cid, idx))) = heap.peek().copied() {
                    if t > now {
                        break;
                    }
                    heap.pop();
                    launch(&mut containers, &mut heap, &mut inflight, t, cid, idx);
                }
            }
        }
    }
}

async fn sleep_until(t: Option<Instant>) {
    if let Some(t) = t {
        tokio::time::sleep_until(t.into()).await;
    }
}

fn add(
    containers: &mut HashMap<u64, Registered>,
    heap: &mut BinaryHeap<Due>,
    h: ProbeHandle,
    info: ContainerProbes,
) {
    let has_startup = info.probes.iter().any(|p| p.kind == ProbeKind::Startup);
    let now = Instant::now();
    let entries: Vec<Entry> = info
        .probes
        .iter()
        .map(|spec| Entry {
            state: ProbeState::new(spec.kind, spec.success_threshold, spec.failure_threshold),
            gated: has_startup && spec.kind != ProbeKind::Startup,
            spec: spec.clone(),
            inflight: false,
            done: false,
        })
        .collect();
    for (idx, e) in entries.iter().enumerate() {
        if !e.gated {
            heap.push(Reverse((
                now + e.spec.initial_delay + jitter(e.spec.period),
                h.0,
                idx,
            )));
        }
    }
    containers.insert(h.0, Registered { info, entries });
}

/// Spreads first runs of probes registered together over a tenth of their period.
fn jitter(period: Duration) -> Duration {
    let max = (period.as_micros() / 10) as u64;
    if max == 0 {
        Duration::ZERO
    } else {
        Duration::from_micros(fastrand::u64(0..max))
    }
}

fn launch(
    containers: &mut HashMap<u64, Registered>,
    heap: &mut BinaryHeap<Due>,
    inflight: &mut JoinSet<RunResult>,
    due: Instant,
    cid: u64,
    idx: usize,
) {
    let Some(reg) = containers.get_mut(&cid) else {
        return;
    };
    let Some(entry) = reg.entries.get_mut(idx) else {
        return;
    };
    if entry.done || entry.gated {
        return;
    }
    // Fixed rate: the next run is one period after this one was due (skipped while in flight).
    let mut next = due + entry.spec.period;
    let now = Instant::now();
    if next < now {
        next = now + entry.spec.period;
    }
    heap.push(Reverse((next, cid, idx)));
    if entry.inflight {
        return;
    }
    entry.inflight = true;
    let action = entry.spec.action.clone();
    let timeout = entry.spec.timeout;
    let targets = reg.info.targets.clone();
    inflight.spawn(async move {
        let start = Instant::now();
        let outcome =
            match tokio::time::timeout(timeout, run_action(&action, &targets, timeout)).await {
                Ok(r) => r,
                Err(_) => Err(timed_out(&action, &targets.net, timeout)),
            };
        (cid, idx, outcome, start.elapsed())
    });
}

/// A probe that ran out of its time, as kubelet's probers tell it.
fn timed_out(action: &ProbeAction, net: &NetTarget, timeout: Duration) -> String {
    match action {
        ProbeAction::Exec(command) => format!("command {:?} timed out", command.join(" ")),
        ProbeAction::Http(req) => format!(
            "Get \"{}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            super::net::probe_url(net, req)
        ),
        ProbeAction::Tcp { host, port } => {
            let timed_out = std::io::Error::from(std::io::ErrorKind::TimedOut);
            super::net::dial_error(net, host.as_deref(), *port, &timed_out)
        }
        ProbeAction::Grpc { .. } => format!(
            "timeout: health rpc did not complete within {}",
            crate::go_duration::go_duration(timeout)
        ),
    }
}

async fn run_action(
    action: &ProbeAction,
    t: &ProbeTargets,
    timeout: Duration,
) -> Result<(), String> {
    match action {
        ProbeAction::Exec(cmd) => exec_probe(&t.exec, cmd, timeout).await,
        ProbeAction::Http(req) => http_probe(&t.net, req).await,
        ProbeAction::Tcp { host, port } => tcp_probe(&t.net, host.as_deref(), *port).await,
        ProbeAction::Grpc { port, service } => grpc_probe(&t.net, *port, service, timeout).await,
    }
}

fn finish(
    containers: &mut HashMap<u64, Registered>,
    heap: &mut BinaryHeap<Due>,
    cid: u64,
    idx: usize,
    outcome: Result<(), String>,
    took: Duration,
) {
    let Some(reg) = containers.get_mut(&cid) else {
        return;
    };
    let Some(entry) = reg.entries.get_mut(idx) else {
        return;
    };
    entry.inflight = false;
    metrics().probe_ran(
        entry.spec.kind,
        entry.spec.action.probe_type(),
        took,
        outcome.is_ok(),
    );
    let verdict = entry.state.observe(outcome.is_ok());
    if verdict.is_none() && outcome.is_ok() {
        return;
    }
    let (healthy, changed) = (entry.state.healthy, verdict.is_some());
    let kind = entry.spec.kind;
    let message = match &outcome {
        Ok(()) => format!("{} probe succeeded", kind.name()),
        Err(e) => format!("{} probe failed: {e}", kind.name()),
    };
    if kind == ProbeKind::Startup && healthy && changed {
        entry.done = true;
        let now = Instant::now();
        for (i, other) in reg.entries.iter_mut().enumerate() {
            if other.gated {
                other.gated = false;
                heap.push(Reverse((now, cid, i)));
            }
        }
    }
    (reg.info.updates)(ProbeUpdate {
        container: reg.info.container.clone(),
        pid: reg.info.pid,
        kind,
        healthy,
        changed,
        message,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn timeouts_read_as_kubelets_probers_tell_them() {
        let net = NetTarget {
            pod_ip: Some(IpAddr::V4(Ipv4Addr::new(10, 244, 1, 5))),
            netns: std::path::PathBuf::new(),
            node_netns: None,
        };
        let second = Duration::from_secs(1);
        let exec = ProbeAction::Exec(vec!["sleep".into(), "300".into()]);
        assert_eq!(
            timed_out(&exec, &net, second),
            "command \"sleep 300\" timed out"
        );
        let http = ProbeAction::Http(HttpRequest {
            host: None,
            port: 8080,
            target: http::uri::PathAndQuery::from_static("/healthz"),
            headers: Vec::new(),
            https: false,
        });
        assert_eq!(
            timed_out(&http, &net, second),
            "Get \"http://10.244.1.5:8080/healthz\": context deadline exceeded (Client.Timeout \
             exceeded while awaiting headers)"
        );
        let tcp = ProbeAction::Tcp {
            host: None,
            port: 5432,
        };
        assert_eq!(
            timed_out(&tcp, &net, second),
            "dial tcp 10.244.1.5:5432: i/o timeout"
        );
        let grpc = ProbeAction::Grpc {
            port: 9000,
            service: String::new(),
        };
        assert_eq!(
            timed_out(&grpc, &net, Duration::from_secs(90)),
            "timeout: health rpc did not complete within 1m30s"
        );
    }
}
