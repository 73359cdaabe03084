//! `bosun-agent run FILE`: one pod in the foreground. Streams its containers' output to this
//! process's stdout/stderr, stops the pod on SIGINT/SIGTERM, and returns the exit code of its
//! last container. Leaves nothing behind but the pod's log files.

use std::io::Write;
use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};

use crate::pod::logs::Stream;
use crate::pod::{NodeContext, PodCommand, PodStatus, PodWorker};
use crate::spec::Pod;

/// Runs `pod` to completion; returns its final status.
pub async fn run_pod(ctx: Arc<NodeContext>, pod: Pod) -> std::io::Result<PodStatus> {
    let (tee_tx, mut tee_rx) = mpsc::unbounded_channel::<(Stream, Vec<u8>)>();
    let worker = PodWorker::new(ctx, pod, Some(tee_tx), true);
    let (cmd_tx, cmd_rx) = watch::channel(PodCommand::Run);
    let mut task = tokio::spawn(worker.run(cmd_rx));
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    loop {
        tokio::select! {
            Some((stream, bytes)) = tee_rx.recv() => write_out(stream, &bytes),
            _ = sigint.recv() => { let _ = cmd_tx.send(PodCommand::Delete { remove_logs: false }); }
            _ = sigterm.recv() => { let _ = cmd_tx.send(PodCommand::Delete { remove_logs: false }); }
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
