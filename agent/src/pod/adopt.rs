//! Adoption: re-attaching a pod worker to the container processes a previous agent recorded
//! (pidfds, cgroups, log copiers, probes), and the log copiers of a container instance, which
//! a fresh start (`start.rs`) uses too. Never restarts or signals an adopted process.

use std::sync::Arc;

use super::event::PodEvent;
use super::logs::{open_fifo, Stream};
use super::node::log_file;
use super::persist::{PodRecord, ProcessRecord};
use super::running::{spawn_log_copiers, watch_exit, LogCopiers, RunningContainer};
use super::status::ContainerState;
use super::worker::PodWorker;
use crate::sys::pidfd::{pidfd_open, start_time, ProcessExit};

impl PodWorker {
    /// Opens container `name`'s log FIFOs (under `dir`) and starts copying them into the log
    /// file of instance `restart_count`, keeping the previous instance's log for `--previous`.
    /// `terminal`: the master of the container's pty, read as its stdout instead of the FIFO.
    pub(super) fn start_log_copiers(
        &self,
        name: &str,
        dir: &std::path::Path,
        restart_count: u32,
        terminal: Option<std::os::fd::OwnedFd>,
    ) -> std::io::Result<LogCopiers> {
        let out = match terminal {
            // Non-blocking already; read(2) and epoll work on a pty master as on a pipe.
            Some(master) => tokio::net::unix::pipe::Receiver::from_owned_fd_unchecked(master)?,
            None => open_fifo(&dir.join("stdout.fifo"))?,
        };
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
                .start_log_copiers(name, &dir, restarts, None)
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
            // A previous agent that stopped in the middle of a postStart hook never reported
            // the container started; the hook is not run again (nor is it by kubelet).
            if let Some(c) = self.lock_status().container_mut(name) {
                if matches!(c.state, ContainerState::Waiting { .. }) {
                    let started = std::time::UNIX_EPOCH
                        + std::time::Duration::from_millis(proc_rec.started_unix_ms);
                    let started_at = humantime::format_rfc3339_nanos(started).to_string();
                    c.state = ContainerState::Running { started_at };
                }
            }
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
        let mut slot =
            RunningContainer::new(rec.clone(), Arc::new(fd), cgroup, (Vec::new(), Vec::new()));
        slot.stand_in = true;
        self.running.insert(name.to_string(), slot);
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
