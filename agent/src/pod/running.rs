//! A running container as the pod worker holds it: its PID 1 (pidfd), cgroup, log copiers and
//! the watcher that turns the pidfd becoming readable into an exit event. Knows nothing of the
//! worker: it only sends [`PodEvent`]s on the channel it is given.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::{mpsc, oneshot};
use tokio::task::{AbortHandle, JoinHandle};

use super::event::PodEvent;
use super::logs::{copy_stream, Stream, Tee};
use super::persist::{unix_ms, ProcessRecord};
use crate::runtime::cgroup::CgroupHandle;
use crate::sys::pidfd::{async_pidfd, try_reap, ProcessExit};

/// The log copiers of one container instance: their stop signals and tasks.
pub type LogCopiers = (Vec<oneshot::Sender<()>>, Vec<JoinHandle<()>>);

pub struct RunningContainer {
    pub pid: i32,
    pub pidfd: Arc<OwnedFd>,
    pub start_time: u64,
    pub started: SystemTime,
    pub cgroup: CgroupHandle,
    pub oom_before: u64,
    pub exited: Vec<oneshot::Sender<()>>,
    pub log_tasks: Vec<JoinHandle<()>>,
    /// Registered probes of this instance.
    pub probes: Option<crate::probe::ProbeHandle>,
    /// Readiness verdict (true when the container has no readiness probe).
    pub ready: bool,
    /// Startup verdict (true when the container has no startup probe).
    pub startup_passed: bool,
    /// Why the agent killed it (a failed liveness/startup probe or postStart hook), for its
    /// terminated state.
    pub kill_reason: Option<String>,
    /// Its postStart hook is running: not started yet, and the next containers wait.
    pub post_start_pending: bool,
    /// The postStart hook task, aborted when the instance exits.
    pub hook_task: Option<AbortHandle>,
    /// The stop under way (preStop, SIGTERM, SIGKILL), aborted when the instance exits.
    pub stop_task: Option<AbortHandle>,
    /// The slot of a recorded process that was already gone at adoption: `pidfd` is not the
    /// container's and must never be signalled.
    pub stand_in: bool,
    /// The agent's end of its stdin (`stdin`/`tty` containers): closed with the instance.
    pub stdin: Option<Arc<super::container_stdin::ContainerStdin>>,
}

impl RunningContainer {
    /// A running instance with its log copiers; probe state starts unset.
    pub fn new(
        process: ProcessRecord,
        pidfd: Arc<OwnedFd>,
        cgroup: CgroupHandle,
        logs: LogCopiers,
    ) -> Self {
        RunningContainer {
            pid: process.pid,
            pidfd,
            start_time: process.start_time,
            started: SystemTime::UNIX_EPOCH
                + std::time::Duration::from_millis(process.started_unix_ms),
            cgroup,
            oom_before: process.oom_before,
            exited: logs.0,
            log_tasks: logs.1,
            probes: None,
            ready: false,
            startup_passed: false,
            kill_reason: None,
            post_start_pending: false,
            hook_task: None,
            stop_task: None,
            stand_in: false,
            stdin: None,
        }
    }

    pub fn record(&self) -> ProcessRecord {
        ProcessRecord {
            pid: self.pid,
            start_time: self.start_time,
            started_unix_ms: unix_ms(self.started),
            oom_before: self.oom_before,
        }
    }

    /// Aborts the hook and stop tasks of this instance (it exited: they have nothing left
    /// to act on).
    pub fn abort_tasks(&mut self) {
        for task in [self.hook_task.take(), self.stop_task.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
    }

    /// Tells the log copiers the container is gone and waits until they drained the FIFOs.
    pub async fn finish_logs(&mut self) {
        for tx in self.exited.drain(..) {
            let _ = tx.send(());
        }
        for t in self.log_tasks.drain(..) {
            let _ = t.await;
        }
    }
}

/// Watches `pidfd` and sends one `Exited` event when the process ends.
pub(super) fn watch_exit(
    pidfd: Arc<OwnedFd>,
    pid: i32,
    name: String,
    events: mpsc::UnboundedSender<PodEvent>,
) {
    tokio::spawn(async move {
        let exit = match async_pidfd(pidfd) {
            Ok(afd) => loop {
                match afd.readable().await {
                    Ok(mut guard) => match try_reap(&**guard.get_inner(), pid) {
                        Ok(Some(exit)) => break exit,
                        Ok(None) => guard.clear_ready(),
                        Err(e) => {
                            tracing::warn!(pid, error = %e, "waitid");
                            break ProcessExit::Unknown;
                        }
                    },
                    Err(_) => break ProcessExit::Unknown,
                }
            },
            Err(e) => {
                tracing::warn!(pid, error = %e, "cannot poll pidfd");
                ProcessExit::Unknown
            }
        };
        let _ = events.send(PodEvent::Exited { name, pid, exit });
    });
}

/// Starts the two log copiers of a container instance (FIFOs opened before it starts).
pub(super) fn spawn_log_copiers(
    fifos: [(tokio::net::unix::pipe::Receiver, Stream); 2],
    log_path: std::path::PathBuf,
    tee: &Tee,
) -> LogCopiers {
    let mut senders = Vec::new();
    let mut tasks = Vec::new();
    for (fifo, stream) in fifos {
        let (tx, rx) = oneshot::channel();
        senders.push(tx);
        tasks.push(tokio::spawn(copy_stream(
            fifo,
            stream,
            log_path.clone(),
            tee.clone(),
            rx,
        )));
    }
    (senders, tasks)
}
