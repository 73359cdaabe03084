//! One task per pod: creates the sandbox and pod cgroup, runs init containers in order, then the
//! app containers, restarts them by restartPolicy with CrashLoopBackOff, and on delete stops
//! them (SIGTERM, grace period, SIGKILL) and removes everything it made. Container exits arrive
//! as events from pidfd watchers; no thread or process per container.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::event::PodEvent;
use super::logs::Tee;
use super::node::NodeContext;
use super::persist::{self, PodRecord};
use super::running::RunningContainer;
use super::status::{
    app_phase, should_restart, ContainerState, ContainerStatus, PodPhase, PodStatus,
};
use crate::runtime::cgroup::CgroupHandle;
use crate::runtime::sandbox::PodSandbox;
use crate::spec::{manifest_hash, pod_uid, Container, Pod, RestartPolicy};

/// What the pod's owner asks of the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodCommand {
    Run,
    /// Stop the containers gracefully and remove the pod's resources (and logs if `true`).
    Delete {
        remove_logs: bool,
    },
    /// Delete (logs included) with this grace instead of the spec's: the API pod's
    /// `deletionGracePeriodSeconds`.
    Terminate {
        grace_seconds: i64,
    },
}

/// How often a pod with token projections asks whether a token is due for renewal (kubelet
/// checks at each pod sync, every minute or so).
pub(super) const TOKEN_RECHECK: Duration = Duration::from_secs(30);

/// The running pod task's state.
pub struct PodWorker {
    pub(super) ctx: Arc<NodeContext>,
    pub(super) pod: Pod,
    pub(super) uid: String,
    pub(super) hash: String,
    pub(super) status: Arc<Mutex<PodStatus>>,
    pub(super) sandbox: PodSandbox,
    pub(super) pod_cgroup: Option<CgroupHandle>,
    pub(super) running: HashMap<String, RunningContainer>,
    pub(super) crashes: BTreeMap<String, u32>,
    pub(super) pending_restarts: BTreeMap<String, ()>,
    pub(super) init_index: usize,
    pub(super) init_done: bool,
    pub(super) events_tx: mpsc::UnboundedSender<PodEvent>,
    pub(super) events_rx: mpsc::UnboundedReceiver<PodEvent>,
    pub(super) tee: Tee,
    pub(super) stopping: bool,
    /// The pod's volumes once set up (see `volumes.rs`).
    pub(super) volumes: Option<crate::volume::PodVolumes>,
    /// Return as soon as the pod reaches Succeeded/Failed (`bosun-agent run`).
    exit_when_done: bool,
    /// The pod's metadata as its source changes it (labels and annotations: a spec change
    /// replaces the pod instead), for the downwardAPI files.
    pod_updates: Option<watch::Receiver<Pod>>,
}

/// The namespaces a pod's sandbox holds: net and uts unless hostNetwork (the pod then shares
/// the node's network and hostname), ipc unless hostIPC. hostPID is per container process.
pub(super) fn sandbox_namespaces(pod: &Pod) -> Vec<&'static str> {
    let spec = &pod.spec;
    let mut kinds = Vec::new();
    if !spec.host_network {
        kinds.extend(["net", "uts"]);
    }
    if !spec.host_ipc {
        kinds.push("ipc");
    }
    if spec.share_process_namespace == Some(true) {
        kinds.push("pid");
    }
    kinds
}

/// The next change of the watched ConfigMaps and Secrets (never, without a receiver; `None`
/// once the source is gone).
async fn config_changed(rx: &mut Option<watch::Receiver<u64>>) -> Option<()> {
    match rx {
        Some(rx) => rx.changed().await.ok(),
        None => std::future::pending().await,
    }
}

/// The pod as its source has it next (never, without a receiver or once the sender is gone).
async fn pod_changed(rx: &mut Option<watch::Receiver<Pod>>) -> Pod {
    if let Some(r) = rx {
        if r.changed().await.is_ok() {
            return r.borrow_and_update().clone();
        }
    }
    *rx = None;
    std::future::pending().await
}

fn initial_status(pod: &Pod, uid: &str) -> PodStatus {
    let waiting = |c: &Container, init: bool| ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        init,
        state: ContainerState::waiting(
            if init {
                "PodInitializing"
            } else {
                "ContainerCreating"
            },
            "",
        ),
        last_state: None,
        restart_count: 0,
        ready: false,
        pid: None,
    };
    PodStatus {
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: uid.to_string(),
        phase: PodPhase::Pending,
        reason: String::new(),
        start_time: None,
        pod_ip: None,
        pod_ips: Vec::new(),
        qos_class: format!("{:?}", crate::spec::qos_class(&pod.spec)),
        message: String::new(),
        ready: false,
        init_container_statuses: pod
            .spec
            .init_containers
            .iter()
            .map(|c| waiting(c, true))
            .collect(),
        container_statuses: pod
            .spec
            .containers
            .iter()
            .map(|c| waiting(c, false))
            .collect(),
        // Added as each starts (`ephemeral.rs`).
        ephemeral_container_statuses: Vec::new(),
        warnings: Vec::new(),
        pulls: Default::default(),
        pulls_begun: Default::default(),
    }
}

impl PodWorker {
    /// A worker for a pod not yet running on this node.
    pub fn new(ctx: Arc<NodeContext>, pod: Pod, tee: Tee, exit_when_done: bool) -> Self {
        let uid = pod_uid(&pod);
        let status = Arc::new(Mutex::new(initial_status(&pod, &uid)));
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        PodWorker {
            sandbox: PodSandbox::with_kinds(ctx.sandbox_dir(&uid), &sandbox_namespaces(&pod)),
            hash: manifest_hash(&pod),
            ctx,
            pod,
            uid,
            status,
            pod_cgroup: None,
            running: HashMap::new(),
            crashes: BTreeMap::new(),
            pending_restarts: BTreeMap::new(),
            init_index: 0,
            init_done: false,
            events_tx,
            events_rx,
            tee,
            stopping: false,
            volumes: None,
            exit_when_done,
            pod_updates: None,
        }
    }

    /// Receives the pod's updates (the daemon sends them when its source changes labels,
    /// annotations or ephemeral containers).
    pub fn watch_pod_updates(&mut self, updates: watch::Receiver<Pod>) {
        self.pod_updates = Some(updates);
    }

    /// A worker that takes over a pod a previous agent ran, from its record: live containers
    /// are watched again (never restarted), dead ones are handled as exits.
    pub fn adopt(ctx: Arc<NodeContext>, record: PodRecord) -> Self {
        let mut w = PodWorker::new(ctx, record.pod.clone(), None, false);
        *w.lock_status() = record.status.clone();
        w.init_done = record.init_done;
        w.init_index = record.init_index;
        w.crashes = record.crashes.clone();
        w.adopt_processes(&record);
        w
    }

    /// The pod's hostname (see [`super::container_spec::pod_hostname`]).
    pub(super) fn hostname(&self) -> String {
        super::container_spec::pod_hostname(&self.pod)
    }

    pub fn uid(&self) -> &str {
        &self.uid
    }
    pub fn hash(&self) -> &str {
        &self.hash
    }
    pub fn status_handle(&self) -> Arc<Mutex<PodStatus>> {
        self.status.clone()
    }

    pub(super) fn lock_status(&self) -> std::sync::MutexGuard<'_, PodStatus> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn container_spec(&self, name: &str) -> Option<(String, Container, bool)> {
        let spec = &self.pod.spec;
        if let Some((i, c)) = spec
            .init_containers
            .iter()
            .enumerate()
            .find(|(_, c)| c.name == name)
        {
            return Some((format!("spec.initContainers[{i}]"), c.clone(), true));
        }
        spec.all_containers()
            .find(|(_, c)| c.name == name)
            .map(|(field, c)| (field, c.clone(), false))
    }

    pub(super) fn persist(&self) {
        let record = PodRecord {
            pod: self.pod.clone(),
            hash: self.hash.clone(),
            init_done: self.init_done,
            init_index: self.init_index,
            crashes: self.crashes.clone(),
            processes: self
                .running
                .iter()
                .map(|(n, r)| (n.clone(), r.record()))
                .collect(),
            status: self.lock_status().clone(),
        };
        if let Err(e) = persist::save(&self.ctx.pod_state_dir(&self.uid), &record) {
            tracing::warn!(pod = %self.pod.metadata.name, error = %e, "saving pod record");
        }
    }

    /// Runs the pod until it is deleted (or, with `exit_when_done`, finished). Returns the
    /// final status.
    pub async fn run(mut self, mut commands: watch::Receiver<PodCommand>) -> PodStatus {
        let name = self.pod.metadata.name.clone();
        let adopted = !self.running.is_empty() || self.init_done;
        self.mark_started();
        if !self.sandbox.exists() || self.pod_cgroup.is_none() {
            if let Err(e) = self.setup_pod().await {
                tracing::error!(pod = %name, error = %e, "pod sandbox setup failed");
                let mut st = self.lock_status();
                st.phase = PodPhase::Failed;
                st.message = e.to_string();
            }
        }
        // A fresh pod starts its first container; an adopted one only what is not running.
        let failed = self.lock_status().phase == PodPhase::Failed;
        if (!failed && !adopted) || (adopted && self.running.is_empty()) {
            self.advance().await;
        }
        self.refresh_phase();
        self.persist();
        let mut config_changes = self.config_changes();
        self.start_ephemeral().await;
        let mut updates = self.pod_updates.take();
        let renews_tokens = self.has_token_volumes();
        let mut token_check = tokio::time::Instant::now() + TOKEN_RECHECK;
        loop {
            if self.exit_when_done && self.is_finished() {
                self.teardown(false).await;
                break;
            }
            let deadline = self.deadline_in();
            let deadline_passed = tokio::time::sleep(deadline.unwrap_or(Duration::MAX));
            tokio::select! {
                Some(ev) = self.events_rx.recv() => self.handle_event(ev).await,
                () = deadline_passed, if deadline.is_some() => self.deadline_exceeded().await,
                Some(()) = config_changed(&mut config_changes) => self.refresh_file_volumes().await,
                () = tokio::time::sleep_until(token_check), if renews_tokens => {
                    token_check = tokio::time::Instant::now() + TOKEN_RECHECK;
                    self.refresh_file_volumes().await;
                }
                pod = pod_changed(&mut updates) => self.pod_updated(pod).await,
                changed = commands.changed() => {
                    let cmd = if changed.is_ok() { *commands.borrow() } else { PodCommand::Delete { remove_logs: false } };
                    if let PodCommand::Terminate { grace_seconds } = cmd {
                        self.pod.spec.termination_grace_period_seconds = Some(grace_seconds);
                        self.teardown(true).await;
                        break;
                    }
                    if let PodCommand::Delete { remove_logs } = cmd {
                        self.teardown(remove_logs).await;
                        break;
                    }
                }
            }
            self.refresh_phase();
            self.persist();
        }
        let st = self.lock_status().clone();
        st
    }

    /// Starts whatever comes next: the current init container, or all app containers.
    pub(super) async fn advance(&mut self) {
        if !self.init_done {
            if let Some(c) = self.pod.spec.init_containers.get(self.init_index).cloned() {
                if !self.running.contains_key(&c.name) {
                    self.start(&c.name).await;
                }
                return;
            }
            self.init_done = true;
        }
        let names: Vec<String> = self
            .pod
            .spec
            .containers
            .iter()
            .map(|c| c.name.clone())
            .collect();
        for n in names {
            let started = self.running.contains_key(&n)
                || self.pending_restarts.contains_key(&n)
                || !matches!(
                    self.lock_status().container(&n).map(|c| &c.state),
                    Some(ContainerState::Waiting { .. })
                );
            if !started {
                self.start(&n).await;
            }
            // Like kubelet, the next container starts once this one's postStart hook is done.
            if self.running.get(&n).is_some_and(|r| r.post_start_pending) {
                break;
            }
        }
    }

    async fn handle_event(&mut self, ev: PodEvent) {
        match ev {
            PodEvent::Exited { name, pid, exit } => {
                if self.running.get(&name).map(|r| r.pid) != Some(pid) {
                    return;
                }
                let code = self.record_exit(&name, exit).await;
                if self.stopping {
                    return;
                }
                self.after_exit(&name, code).await;
            }
            PodEvent::Probe(update) => self.on_probe(update),
            PodEvent::StartFailed { name } => {
                if !self.stopping && !self.running.contains_key(&name) {
                    self.after_exit(&name, 128).await;
                }
            }
            PodEvent::PostStartDone { name, pid, result } => {
                self.on_post_start_done(&name, pid, result).await
            }
            PodEvent::Restart { name } => {
                self.pending_restarts.remove(&name);
                if !self.stopping {
                    self.start(&name).await;
                }
            }
        }
    }

    /// Decides what follows a container's exit: next init container, restart, or nothing.
    pub(super) async fn after_exit(&mut self, name: &str, code: i32) {
        let Some((field, _, init)) = self.container_spec(name) else {
            return;
        };
        if field.starts_with("spec.ephemeralContainers") {
            return; // never restarted
        }
        let policy = self.pod.spec.restart_policy;
        if init {
            if code == 0 {
                self.crashes.remove(name);
                self.init_index += 1;
                self.advance().await;
            } else if policy == RestartPolicy::Never {
                let mut st = self.lock_status();
                st.phase = PodPhase::Failed;
                st.message = format!("init container {name} failed with exit code {code}");
            } else {
                self.schedule_restart(name);
            }
            return;
        }
        if should_restart(policy, code) {
            self.schedule_restart(name);
        }
    }

    /// Queues a restart after the CrashLoopBackOff delay (the first restart is immediate).
    pub(super) fn schedule_restart(&mut self, name: &str) {
        let ran_for = {
            let st = self.lock_status();
            match st.container(name).map(|c| &c.state) {
                Some(ContainerState::Terminated {
                    started_at,
                    finished_at,
                    ..
                }) => {
                    let parse = |s: &str| humantime::parse_rfc3339(s).ok();
                    match (parse(started_at), parse(finished_at)) {
                        (Some(a), Some(b)) => b.duration_since(a).unwrap_or_default(),
                        _ => Duration::ZERO,
                    }
                }
                _ => Duration::ZERO,
            }
        };
        let backoff = self.ctx.config.backoff;
        let count = backoff.next_count(self.crashes.get(name).copied().unwrap_or(0), ran_for);
        self.crashes.insert(name.to_string(), count);
        let delay = backoff.delay(count.saturating_sub(1));
        if !delay.is_zero() {
            let mut st = self.lock_status();
            if let Some(c) = st.container_mut(name) {
                let last = std::mem::replace(
                    &mut c.state,
                    ContainerState::waiting(
                        "CrashLoopBackOff",
                        format!(
                            "back-off {} restarting failed container={name} pod={}_{}({})",
                            crate::go_duration::go_duration(delay),
                            self.pod.metadata.name,
                            self.pod.metadata.namespace,
                            self.uid
                        ),
                    ),
                );
                c.last_state = Some(last);
            }
        }
        self.pending_restarts.insert(name.to_string(), ());
        let tx = self.events_tx.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(PodEvent::Restart { name });
        });
    }

    fn is_finished(&self) -> bool {
        matches!(
            self.lock_status().phase,
            PodPhase::Succeeded | PodPhase::Failed
        ) && self.is_idle()
    }

    /// No container runs and none is about to be restarted.
    pub(super) fn is_idle(&self) -> bool {
        self.running.is_empty() && self.pending_restarts.is_empty()
    }

    pub(super) fn refresh_phase(&self) {
        let mut st = self.lock_status();
        if st.phase == PodPhase::Failed && !st.message.is_empty() && self.running.is_empty() {
            return;
        }
        if !self.init_done {
            st.phase = PodPhase::Pending;
            st.ready = false;
            return;
        }
        let phase = app_phase(&st.container_statuses, !self.pending_restarts.is_empty());
        st.phase = phase;
        for c in st.container_statuses.iter_mut() {
            c.ready = c.state.is_running() && self.probe_ready(&c.name);
        }
        st.ready = phase == PodPhase::Running && st.container_statuses.iter().all(|c| c.ready);
    }
}
