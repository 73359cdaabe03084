//! Pod and container start: the sandbox and pod cgroup once per pod, then one container
//! instance at a time (image → spec → cgroup → FIFOs → runtime). A container that cannot be
//! created is reported in its status with Kubernetes' reason and retried with backoff.

use std::sync::Arc;
use std::time::SystemTime;

use super::container_spec::{
    container_resources, init_spec, pod_files, pod_resources, ContainerInputs, ContainerPaths,
};
use super::container_stdin;
use super::persist::unix_ms;
use super::persist::ProcessRecord;
use super::running::{watch_exit, RunningContainer};
use super::status::ContainerState;
use super::worker::PodWorker;
use crate::runtime::sandbox::PodSandbox;
use crate::runtime::spawn::{prepare_container_dir, start_container};
use crate::runtime::RuntimeError;
use crate::spec::qos_class;

/// The cgroup (under the pod's) of a shared PID namespace's PID 1.
pub(super) const POD_INIT_CGROUP: &str = "pod-init";

/// Why a container did not start.
pub(super) enum StartFailure {
    /// Before a process existed: stay Waiting with this reason, retry later.
    Waiting {
        reason: &'static str,
        message: String,
    },
    /// The process could not exec: Terminated with StartError, exit 128.
    StartError(String),
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}

impl PodWorker {
    /// Creates the sandbox namespaces and the pod cgroup.
    pub(super) async fn setup_pod(&mut self) -> Result<(), RuntimeError> {
        let dir = self.ctx.sandbox_dir(&self.uid);
        let hostname = self.hostname();
        let ctx = self.ctx.clone();
        let pod = self.pod.clone();
        let uid = self.uid.clone();
        let exists = self.sandbox.exists();
        let net_ref = self.network_ref();
        let kinds = super::worker::sandbox_namespaces(&self.pod);
        let (sandbox, cgroup, ips) = tokio::task::spawn_blocking(move || {
            let start_err = |e: crate::spec::SpecError| RuntimeError::Start {
                id: uid.clone(),
                message: e.to_string(),
            };
            super::network::check_host_ports(&pod, ctx.network.is_some()).map_err(start_err)?;
            let mut t = super::phase::PhaseTimer::new("pod");
            let sandbox = if exists {
                PodSandbox::with_kinds(dir, &kinds)
            } else {
                PodSandbox::create_with(dir, &hostname, &kinds)?
            };
            t.mark("sandbox");
            let res = pod_resources(&pod, ctx.config.pod_pids_limit).map_err(start_err)?;
            let pod_rel = ctx.pod_cgroup(&uid, qos_class(&pod.spec));
            let cgroup = ctx.cgroups.create(&pod_rel, &res)?;
            t.mark("pod-cgroup");
            if !exists && sandbox.pid_namespace().is_some() {
                // The shared PID namespace's PID 1, in a cgroup of its own in the pod's.
                let own = ctx
                    .cgroups
                    .create(&pod_rel.join(POD_INIT_CGROUP), &Default::default())?;
                let spec = crate::runtime::pod_init::PodInitSpec {
                    cgroup_tasks: own.v1_task_files(),
                    cgroup_v2_dir: own.v2_dir(),
                };
                if let Err(e) = sandbox.start_pid_init(&ctx.config.init_exe, &spec) {
                    let _ = sandbox.remove();
                    let _ = own.remove();
                    return Err(e);
                }
            }
            let ips = if pod.spec.host_network {
                super::network::node_ips(&ctx)
            } else {
                super::network::network_add(&ctx, &net_ref)
            };
            let ips = ips.map_err(|message| RuntimeError::Start {
                id: uid.clone(),
                message,
            })?;
            t.mark("network");
            Ok::<_, RuntimeError>((sandbox, cgroup, ips))
        })
        .await
        .map_err(|e| RuntimeError::Start {
            id: self.uid.clone(),
            message: e.to_string(),
        })??;
        self.sandbox = sandbox;
        self.pod_cgroup = Some(cgroup);
        let mut st = self.lock_status();
        st.pod_ip = ips.first().map(|ip| ip.to_string());
        st.pod_ips = ips.iter().map(|ip| ip.to_string()).collect();
        Ok(())
    }

    /// Starts one instance of container `name`, updating its status either way.
    pub(super) async fn start(&mut self, name: &str) {
        let Some((field, container, _init)) = self.container_spec(name) else {
            return;
        };
        let restart_count = {
            let mut st = self.lock_status();
            let Some(c) = st.container_mut(name) else {
                return;
            };
            let crashed = match &c.state {
                ContainerState::Terminated { .. } => true,
                ContainerState::Waiting { reason, .. } => reason == "CrashLoopBackOff",
                ContainerState::Running { .. } => false,
            };
            if crashed {
                c.restart_count += 1;
                let prev = std::mem::replace(
                    &mut c.state,
                    ContainerState::waiting("ContainerCreating", ""),
                );
                if matches!(prev, ContainerState::Terminated { .. }) {
                    c.last_state = Some(prev);
                }
            }
            c.restart_count
        };
        match self
            .create_instance(name, &field, &container, restart_count)
            .await
        {
            Ok(running) => {
                let pid = running.pid;
                if let Some(c) = self.lock_status().container_mut(name) {
                    c.pid = Some(pid);
                }
                self.running.insert(name.to_string(), running);
                // With a postStart hook, the container is started once the hook succeeded.
                if !self.start_post_start(name) {
                    self.container_running(name);
                }
            }
            Err(StartFailure::Waiting { reason, message }) => {
                // A pull that failed before shows kubelet's ImagePullBackOff while retrying.
                let (reason, message) =
                    if reason == "ErrImagePull" && self.crashes.get(name).is_some_and(|n| *n > 0) {
                        let message = format!(
                            "Back-off pulling image \"{}\": ErrImagePull: {message}",
                            container.image
                        );
                        ("ImagePullBackOff", message)
                    } else {
                        (reason, message)
                    };
                tracing::warn!(pod = %self.pod.metadata.name, container = name, reason, %message, "container not created");
                {
                    let mut st = self.lock_status();
                    if let Some(c) = st.container_mut(name) {
                        c.state = ContainerState::waiting(reason, message);
                    }
                }
                self.schedule_retry(name, reason);
            }
            Err(StartFailure::StartError(message)) => {
                tracing::warn!(pod = %self.pod.metadata.name, container = name, %message, "container failed to start");
                let now = now_rfc3339();
                {
                    let mut st = self.lock_status();
                    if let Some(c) = st.container_mut(name) {
                        c.state = ContainerState::Terminated {
                            exit_code: 128,
                            reason: "StartError".into(),
                            message,
                            started_at: now.clone(),
                            finished_at: now,
                        };
                        c.pid = None;
                    }
                }
                self.after_start_error(name);
            }
        }
        self.persist();
    }

    /// Reports the running instance of `name` started (Running since its process started)
    /// and registers its probes.
    pub(super) fn container_running(&mut self, name: &str) {
        let Some((pid, started)) = self.running.get(name).map(|r| (r.pid, r.started)) else {
            return;
        };
        if let Some(c) = self.lock_status().container_mut(name) {
            c.state = ContainerState::Running {
                started_at: humantime::format_rfc3339_nanos(started).to_string(),
            };
        }
        tracing::info!(pod = %self.pod.metadata.name, container = name, pid, "container started");
        self.register_probes(name);
    }

    /// A container stuck before creation (missing image, bad config) is retried with backoff
    /// while staying Waiting: the crash backoff, or for a volume not set up yet
    /// (ContainerCreating: a claim not Bound yet, a token not had) kubelet's volume operation
    /// backoff, which starts at 500 ms. A CreateContainerConfigError is also retried at once
    /// when a watched ConfigMap or Secret changes.
    fn schedule_retry(&mut self, name: &str, reason: &str) {
        let on_config_change = reason == "CreateContainerConfigError";
        let count = self
            .crashes
            .get(name)
            .copied()
            .unwrap_or(0)
            .saturating_add(1);
        self.crashes.insert(name.to_string(), count);
        let mut delay = self.ctx.config.backoff.delay(count);
        if reason == "ContainerCreating" {
            delay = delay.min(super::backoff::VOLUME_BACKOFF.delay(count));
        }
        self.pending_restarts.insert(name.to_string(), ());
        let tx = self.events_tx.clone();
        let name = name.to_string();
        let changed = on_config_change
            .then(|| self.ctx.config_source.get().map(|s| s.subscribe()))
            .flatten();
        tokio::spawn(async move {
            match changed {
                Some(mut changed) => {
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = changed.changed() => {}
                    }
                }
                None => tokio::time::sleep(delay).await,
            }
            let _ = tx.send(super::event::PodEvent::Restart { name });
        });
    }

    async fn create_instance(
        &mut self,
        name: &str,
        field: &str,
        container: &crate::spec::Container,
        restart_count: u32,
    ) -> Result<RunningContainer, StartFailure> {
        let waiting =
            |reason: &'static str| move |e: String| StartFailure::Waiting { reason, message: e };
        let mut t = super::phase::PhaseTimer::new(name);
        let image = self.ensure_image(container).await?;
        t.mark("image");
        let res = container_resources(container, field)
            .map_err(|e| waiting("CreateContainerConfigError")(e.to_string()))?;
        let dir = self.ctx.container_dir(&self.uid, name);
        let hostname = self.hostname();
        let etc = self.ctx.pod_state_dir(&self.uid).join("etc");
        let pod_ips = self.lock_status().pod_ips.clone();
        crate::volume::mount_pod_files_dir(&etc).map_err(|e| {
            waiting("CreateContainerError")(format!("making the pod's /etc files directory: {e}"))
        })?;
        let mut files = pod_files(&etc, &self.pod, &hostname, &pod_ips, &self.ctx.config.dns)
            .map_err(|e| {
                waiting("CreateContainerError")(format!("writing the pod's /etc files: {e}"))
            })?;
        t.mark("pod-files");
        files.extend(self.volume_mounts(container).await?);
        crate::volume::order_mounts(&mut files);
        t.mark("volumes");
        let (stdout_fifo, stderr_fifo) = prepare_container_dir(&self.ctx.config.root, &dir)
            .map_err(|e| waiting("CreateContainerError")(e.to_string()))?;
        let stdin =
            container_stdin::prepare(container.stdin, container.tty, container.stdin_once, &dir)
                .map_err(|e| {
                    waiting("CreateContainerError")(format!("making the container's stdin: {e}"))
                })?;
        t.mark("container-dir");
        let paths = ContainerPaths {
            dir: dir.clone(),
            stdout_fifo,
            stderr_fifo,
        };
        let id = format!("{}_{}", self.uid, name);
        let env = self.resolve_env(container).await?;
        t.mark("env");
        let inputs = ContainerInputs {
            mounts: &files,
            env: &env,
        };
        let mut spec = init_spec(id, &self.pod, container, field, &image, &paths, &inputs)
            .map_err(|e| waiting("CreateContainerConfigError")(e.to_string()))?;
        spec.input = stdin.input.clone();
        if spec.privileged {
            spec.host_devices = crate::runtime::devices::host_devices();
        }
        spec.pid_namespace = self.sandbox.pid_namespace();
        if let Some(target) = &container.target_container_name {
            let running = self.running.get(target).filter(|r| !r.stand_in);
            let Some(pid) = running.map(|r| r.pid) else {
                let message = format!("target container {target:?} is not running");
                return Err(waiting("CreateContainerError")(message));
            };
            spec.pid_namespace = Some(format!("/proc/{pid}/ns/pid").into());
        }
        spec.namespaces = self.sandbox.namespaces();
        let own_dirs = [
            self.ctx.config.root.as_path(),
            self.ctx.config.run_dir.as_path(),
        ];
        spec.mount_template = crate::runtime::mount_template::path(&own_dirs);
        if self.pod.spec.host_network {
            // The node's network: `--node-netns`, or the agent's own (inherited).
            if let Some(node) = &self.ctx.config.node_netns {
                spec.namespaces.push(("net".into(), node.clone()));
            }
        }
        let pod_rel = self.ctx.pod_cgroup(&self.uid, qos_class(&self.pod.spec));
        let cgroup = self
            .ctx
            .cgroups
            .create(&pod_rel.join(name), &res)
            .map_err(|e| waiting("CreateContainerError")(e.to_string()))?;
        spec.cgroup_tasks = cgroup.v1_task_files();
        spec.cgroup_v2_dir = cgroup.v2_dir();
        t.mark("cgroup");
        let oom_before = cgroup.oom_kills();
        let (exited, log_tasks) = self
            .start_log_copiers(name, &dir, restart_count, stdin.output)
            .map_err(|e| waiting("CreateContainerError")(e.to_string()))?;

        let exe = self.ctx.config.init_exe.clone();
        let spawned = tokio::task::spawn_blocking(move || start_container(&exe, &spec))
            .await
            .map_err(|e| StartFailure::StartError(e.to_string()))?;
        // The container holds the pty's slave now (or never will).
        drop(stdin.slave);
        match spawned {
            Ok(p) => {
                t.mark("runtime-start");
                let record = ProcessRecord {
                    pid: p.pid,
                    start_time: p.start_time,
                    started_unix_ms: unix_ms(SystemTime::now()),
                    oom_before,
                };
                let pidfd = Arc::new(p.pidfd);
                watch_exit(
                    pidfd.clone(),
                    p.pid,
                    name.to_string(),
                    self.events_tx.clone(),
                );
                let mut running = RunningContainer::new(record, pidfd, cgroup, (exited, log_tasks));
                if let Some(stdin) = stdin.stdin {
                    self.ctx.stdins.insert(&self.uid, name, &stdin);
                    running.stdin = Some(stdin);
                }
                Ok(running)
            }
            Err(e) => {
                for tx in exited {
                    let _ = tx.send(());
                }
                for task in log_tasks {
                    let _ = task.await;
                }
                let _ = tokio::task::spawn_blocking(move || cgroup.remove()).await;
                Err(match e {
                    RuntimeError::Start { message, .. } => StartFailure::StartError(message),
                    other => StartFailure::Waiting {
                        reason: "CreateContainerError",
                        message: other.to_string(),
                    },
                })
            }
        }
    }
}
