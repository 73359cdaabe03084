//! A running container as the pod worker holds it: its PID 1 (pidfd), cgroup, log copiers and
//! the watcher that turns the pidfd becoming readable into an exit event. Also adoption of the
//! processes a previous agent recorded.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::logs::{copy_stream, open_fifo, Stream, Tee};
use super::node::log_file;
use super::persist::{PodRecord, ProcessRecord};
use super::worker::{unix_ms, PodEvent, PodWorker};
use crate::runtime::cgroup::CgroupHandle;
use crate::sys::pidfd::{async_pidfd, pidfd_open, start_time, try_reap, ProcessExit};

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
    /// Why the agent killed it (a failed liveness/startup probe), for its terminated state.
    pub kill_reason: Option<String>,
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

impl PodWorker {
    /// Opens container `name`'s log FIFOs (under `dir`) and starts copying them into the log
    /// file of instance `restart_count`, keeping the previous instance's log for `--previous`.
    pub(super) fn start_log_copiers(
        &self,
        name: &str,
        dir: &std::path::Path,
        restart_count: u32,
    ) -> std::io::Result<LogCopiers> {
        let out = open_fifo(&dir.join("stdout.fifo"))?;
        let err = open_fifo(&dir.join("stderr.fifo"))?;
        let md = &self.pod.metadata;
        let root = &self.ctx.config.root;
        let log = log_file(
            root,
            &md.namespace,
            &md.name,
            &self.uid,
            name,
            restart_count,
        );
        prune_old_logs(&log, restart_count);
        Ok(spawn_log_copiers(
            [(out, Stream::Stdout), (err, Stream::Stderr)],
            log,
            &self.tee,
        ))
    }

    /// Re-attaches to the processes in `record` that are still alive.
    pub(super) fn adopt_processes(&mut self, record: &PodRecord) {
        let Some(qos) = Some(crate::spec::qos_class(&self.pod.spec)) else {
            return;
        };
        let pod_rel = self.ctx.pod_cgroup(&self.uid, qos);
        self.pod_cgroup = Some(self.ctx.cgroups.open(&pod_rel));
        for (name, proc_rec) in &record.processes {
            let alive = start_time(proc_rec.pid) == Some(proc_rec.start_time);
            let pidfd = if alive {
                pidfd_open(proc_rec.pid).ok()
            } else {
                None
            };
            let Some(pidfd) = pidfd else {
                tracing::info!(container = %name, pid = proc_rec.pid, "recorded container is gone");
                let _ = self.events_tx.send(PodEvent::Exited {
                    name: name.clone(),
                    pid: proc_rec.pid,
                    exit: ProcessExit::Unknown,
                });
                self.insert_placeholder(name, proc_rec);
                continue;
            };
            let cgroup = self.ctx.cgroups.open(&pod_rel.join(name));
            let dir = self.ctx.container_dir(&self.uid, name);
            let restarts = self
                .lock_status()
                .container(name)
                .map(|c| c.restart_count)
                .unwrap_or(0);
            let md = &self.pod.metadata;
            let (exited, log_tasks) = self
                .start_log_copiers(name, &dir, restarts)
                .unwrap_or_default();
            let pidfd = Arc::new(pidfd);
            watch_exit(
                pidfd.clone(),
                proc_rec.pid,
                name.clone(),
                self.events_tx.clone(),
            );
            tracing::info!(pod = %md.name, container = %name, pid = proc_rec.pid, "adopted running container");
            self.running.insert(
                name.clone(),
                RunningContainer::new(proc_rec.clone(), pidfd, cgroup, (exited, log_tasks)),
            );
            self.register_probes(name);
            // Until its probes report again, an adopted container keeps the readiness it had:
            // an agent restart must not take endpoints out of service.
            let was_ready = record.status.container(name).is_some_and(|c| c.ready);
            if let Some(r) = self.running.get_mut(name) {
                r.ready |= was_ready;
                r.startup_passed |= was_ready;
            }
        }
    }

    /// A dead recorded process still needs a slot so its exit event is processed normally.
    fn insert_placeholder(&mut self, name: &str, rec: &ProcessRecord) {
        let Ok(fd) = pidfd_open(std::process::id() as i32) else {
            return;
        };
        let qos = crate::spec::qos_class(&self.pod.spec);
        let rel = self.ctx.pod_cgroup(&self.uid, qos).join(name);
        let cgroup = self.ctx.cgroups.open(&rel);
        self.running.insert(
            name.to_string(),
            RunningContainer::new(rec.clone(), Arc::new(fd), cgroup, (Vec::new(), Vec::new())),
        );
    }
}

/// Keeps the current and the previous log of a container (what `logs --previous` shows).
fn prune_old_logs(current: &std::path::Path, restart_count: u32) {
    let Some(dir) = current.parent() else { return };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let n: Option<u32> = e
            .file_name()
            .to_str()
            .and_then(|s| s.strip_suffix(".log"))
            .and_then(|s| s.parse().ok());
        if let Some(n) = n {
            if n + 1 < restart_count {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
