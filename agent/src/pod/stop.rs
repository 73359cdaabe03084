//! Container exit and pod teardown: records how a container ended (Completed, Error,
//! OOMKilled, with times), and on delete stops every container — preStop hook, SIGTERM, the
//! grace period, then SIGKILL (see `hooks`) — and removes cgroups, the sandbox and the pod's
//! directories.

use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;

use super::event::PodEvent;
use super::node::log_dir;
use super::status::ContainerState;
use super::worker::PodWorker;
use crate::runtime::leftovers::kill_and_reap;
use crate::sys::pidfd::{pidfd_send_signal, ProcessExit};

/// How long to wait for SIGKILLed processes to be reaped before giving up on them.
const KILL_WAIT: Duration = Duration::from_secs(10);

impl PodWorker {
    /// Turns a running container into a terminated one; returns its exit code.
    pub(super) async fn record_exit(&mut self, name: &str, exit: ProcessExit) -> i32 {
        let Some(mut running) = self.running.remove(name) else {
            return exit.exit_code();
        };
        if let Some(h) = running.probes.take() {
            self.ctx.probes().remove(h);
        }
        running.abort_tasks();
        running.finish_logs().await;
        let oom = running.cgroup.oom_kills() > running.oom_before;
        let code = exit.exit_code();
        let reason = match exit {
            _ if oom => "OOMKilled",
            ProcessExit::Code(0) => "Completed",
            ProcessExit::Unknown => "ContainerStatusUnknown",
            _ => "Error",
        };
        let started_at = humantime::format_rfc3339_nanos(running.started).to_string();
        let finished_at = humantime::format_rfc3339_nanos(SystemTime::now()).to_string();
        tracing::info!(pod = %self.pod.metadata.name, container = name, code, reason, "container exited");
        {
            let mut st = self.lock_status();
            if let Some(c) = st.container_mut(name) {
                c.state = ContainerState::Terminated {
                    exit_code: code,
                    reason: reason.to_string(),
                    message: running.kill_reason.take().unwrap_or_default(),
                    started_at,
                    finished_at,
                };
                c.pid = None;
                c.ready = false;
            }
        }
        let cgroup = running.cgroup;
        let host_pid = self.pod.spec.host_pid;
        let removed = tokio::task::spawn_blocking(move || {
            let mut t = super::phase::PhaseTimer::new("container-exit");
            if host_pid {
                // No PID namespace ended with the main process: its leftovers are ours.
                let left = kill_and_reap(&cgroup.pids(), KILL_WAIT);
                if left > 0 {
                    tracing::warn!(left, "processes of a hostPID container not reaped");
                }
                t.mark("leftovers-reaped");
            }
            let r = cgroup.remove();
            t.mark("cgroup-removed");
            r
        })
        .await;
        if let Ok(Err(e)) = removed {
            tracing::warn!(container = name, error = %e, "removing container cgroup");
        }
        code
    }

    pub(super) fn after_start_error(&mut self, name: &str) {
        let _ = self.events_tx.send(PodEvent::StartFailed {
            name: name.to_string(),
        });
    }

    /// Stops every container for good: no restart follows (SIGTERM, the grace period, SIGKILL).
    pub(super) async fn stop_containers(&mut self) {
        self.stopping = true;
        self.pending_restarts.clear();
        let grace =
            Duration::from_secs(self.pod.spec.termination_grace_period_seconds().max(0) as u64);
        // All at once, like kubelet: each container's preStop hook, SIGTERM, SIGKILL at the
        // end of the grace period. A stop already under way (a failed probe) keeps its own.
        let names: Vec<String> = self.running.keys().cloned().collect();
        for n in &names {
            self.spawn_stop(n, grace);
        }
        if !self.wait_all_exited(grace + KILL_WAIT).await {
            tracing::info!(pod = %self.pod.metadata.name, "grace period over, sending SIGKILL");
            self.signal_all(Signal::SIGKILL);
            self.wait_all_exited(KILL_WAIT).await;
        }
        let names: Vec<String> = self.running.keys().cloned().collect();
        for n in names {
            self.record_exit(&n, ProcessExit::Signal(9)).await;
        }
    }

    /// Stops all containers gracefully and removes everything the pod owns on this node.
    pub(super) async fn teardown(&mut self, remove_logs: bool) {
        if !self.running.is_empty() {
            let grace = self.pod.spec.termination_grace_period_seconds().max(0);
            self.lock_status().message = format!("Terminating (grace period {grace}s)");
        }
        self.stop_containers().await;
        let pod_cgroup = self.pod_cgroup.take();
        let net_ctx = self.ctx.clone();
        let net_ref = (!self.pod.spec.host_network).then(|| self.network_ref());
        let sandbox = self.sandbox.clone();
        // The shared PID namespace's init goes before the pod cgroup, which holds its own.
        let pod_init_cgroup = sandbox.pid_namespace().map(|_| {
            let rel = self
                .ctx
                .pod_cgroup(&self.uid, crate::spec::qos_class(&self.pod.spec));
            self.ctx
                .cgroups
                .open(&rel.join(super::start::POD_INIT_CGROUP))
        });
        let state_dir = self.ctx.pod_state_dir(&self.uid);
        let root = self.ctx.config.root.clone();
        let md = &self.pod.metadata;
        let logs =
            remove_logs.then(|| log_dir(&self.ctx.config.root, &md.namespace, &md.name, &self.uid));
        let name = md.name.clone();
        // CSI volumes are unpublished (and unstaged when unused) by their driver before the
        // pod's mounts go; what fails stays recorded and is retried by the orphan collector.
        if let Err(e) = self.ctx.csi.release_pod(&self.uid).await {
            tracing::warn!(pod = %name, error = %e, "releasing CSI volumes; retried later");
        }
        let result = tokio::task::spawn_blocking(move || {
            let mut t = super::phase::PhaseTimer::new("pod-teardown");
            if let Some(net_ref) = &net_ref {
                super::network::network_del(&net_ctx, net_ref);
            }
            t.mark("network");
            sandbox.kill_pid_init();
            if let Some(cg) = pod_init_cgroup {
                if let Err(e) = cg.remove() {
                    tracing::warn!(pod = %name, error = %e, "removing the pod init's cgroup");
                }
            }
            if let Some(cg) = pod_cgroup {
                if let Err(e) = cg.remove() {
                    tracing::warn!(pod = %name, error = %e, "removing pod cgroup");
                }
            }
            t.mark("pod-cgroup-removed");
            if let Err(e) = sandbox.remove() {
                tracing::warn!(pod = %name, error = %e, "removing pod sandbox");
            }
            t.mark("sandbox-removed");
            // Never discard a directory with a mount left in it: deleting it would delete
            // what the mount shows (a hostPath subPath). The next start retries.
            if let Err(e) = crate::volume::unmount_all_under(&state_dir) {
                tracing::error!(pod = %name, error = %e, "unmounting the pod's volumes; keeping its directory");
            } else if let Err(e) = crate::runtime::trash::discard(&root, &state_dir) {
                tracing::warn!(pod = %name, error = %e, "removing pod directory");
            }
            t.mark("volumes-unmounted");
            if let Some(dir) = logs {
                let _ = std::fs::remove_dir_all(dir);
            }
            t.mark("dirs-removed");
        })
        .await;
        if result.is_err() {
            tracing::warn!(pod = %self.pod.metadata.name, "pod cleanup task failed");
        }
    }

    fn signal_all(&self, sig: Signal) {
        for (name, r) in self.running.iter().filter(|(_, r)| !r.stand_in) {
            if let Err(e) = pidfd_send_signal(&*r.pidfd, sig) {
                tracing::debug!(container = %name, error = %e, "signal");
            }
        }
    }

    /// Processes exit events until no container runs or `limit` passes; true if all exited.
    async fn wait_all_exited(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while !self.running.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.events_rx.recv()).await {
                Ok(Some(PodEvent::Exited { name, pid, exit })) => {
                    if self.running.get(&name).map(|r| r.pid) == Some(pid) {
                        self.record_exit(&name, exit).await;
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return self.running.is_empty(),
            }
        }
        true
    }
}
