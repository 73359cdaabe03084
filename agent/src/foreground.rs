//! `bosun-agent run FILE`: one pod in the foreground. Streams its containers' output to this
//! process's stdout/stderr, stops the pod on SIGINT/SIGTERM, and returns the exit code of its
//! last container. Leaves nothing behind but the pod's log files: by default the pod gets a
//! private network; with `--network cni` the node routes this run added are removed again
//! once the pod is gone (the caller holds them as `network::node::AddedRoutes`).

use std::io::Write;
use std::sync::Arc;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{mpsc, watch};

use crate::pod::logs::Stream;
use crate::pod::{NodeContext, PodCommand, PodStatus, PodWorker};
use crate::spec::Pod;

/// SIGINT and SIGTERM, caught from the moment they are registered (so one that arrives while
/// the node is being set up still stops the pod cleanly instead of killing the process).
pub struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    /// Registers the handlers; call inside the runtime (or with it entered).
    pub fn register() -> std::io::Result<Self> {
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }
}

/// Runs `pod` to completion, or until `stop` fires (then the pod is deleted: grace period,
/// CNI DEL, cgroups, mounts); returns its final status.
pub async fn run_pod(
    ctx: Arc<NodeContext>,
    pod: Pod,
    mut stop: StopSignals,
) -> std::io::Result<PodStatus> {
    let (tee_tx, mut tee_rx) = mpsc::unbounded_channel::<(Stream, Vec<u8>)>();
    let worker = PodWorker::new(ctx, pod, Some(tee_tx), true);
    let (cmd_tx, cmd_rx) = watch::channel(PodCommand::Run);
    let mut task = tokio::spawn(worker.run(cmd_rx));
    let delete = PodCommand::Delete { remove_logs: false };
    loop {
        tokio::select! {
            Some((stream, bytes)) = tee_rx.recv() => write_out(stream, &bytes),
            _ = stop.interrupt.recv() => { let _ = cmd_tx.send(delete); }
            _ = stop.terminate.recv() => { let _ = cmd_tx.send(delete); }
            done = &mut task => {
                while let Ok((stream, bytes)) = tee_rx.try_recv() {
                    write_out(stream, &bytes);
                }
                return done.map_err(std::io::Error::other);
            }
        }
    }
}

fn write_out(stream: Stream, bytes: &[u8]) {
    let _ = match stream {
        Stream::Stdout => std::io::stdout().write_all(bytes),
        Stream::Stderr => std::io::stderr().write_all(bytes),
    };
}

/// The exit code `run` reports: the last app container's; if no app container ran, the
/// failed init container's; else 1.
pub fn exit_code(status: &PodStatus) -> i32 {
    let app = status
        .container_statuses
        .last()
        .and_then(|c| c.state.exit_code());
    let init = || {
        status
            .init_container_statuses
            .iter()
            .filter_map(|c| c.state.exit_code())
            .find(|code| *code != 0)
    };
    app.or_else(init).unwrap_or(1)
}

/// One line per container: how it ended (printed to stderr when `run` finishes).
pub fn summary(status: &PodStatus) -> String {
    let mut out = String::new();
    for c in status
        .init_container_statuses
        .iter()
        .chain(&status.container_statuses)
    {
        let state = match &c.state {
            crate::pod::ContainerState::Terminated {
                exit_code,
                reason,
                message,
                ..
            } => {
                format!(
                    "terminated: {reason}, exit code {exit_code}{}",
                    if message.is_empty() {
                        String::new()
                    } else {
                        format!(": {message}")
                    }
                )
            }
            crate::pod::ContainerState::Waiting { reason, message } => {
                format!("waiting: {reason} {message}")
            }
            crate::pod::ContainerState::Running { .. } => "running".to_string(),
        };
        out.push_str(&format!(
            "pod {}/{} container {}: {state}, restarts {}\n",
            status.namespace, status.name, c.name, c.restart_count
        ));
    }
    out
}
