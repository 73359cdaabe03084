//! Ephemeral containers (`kubectl debug POD`): added to a running pod through the API's
//! `pods/ephemeralcontainers`, handed to the worker by the daemon without replacing the pod
//! (they are not part of its `manifest_hash`). Each starts once — never restarted, whatever
//! the pod's restartPolicy — and counts for neither the pod's phase nor its readiness; its
//! status is in `ephemeralContainerStatuses`. With `targetContainerName` it runs in that
//! container's PID namespace (`start.rs`), so a debugger sees the target's processes.

use super::status::{ContainerState, ContainerStatus, PodPhase};
use super::worker::PodWorker;
use crate::spec::Pod;

impl PodWorker {
    /// The pod as its source now has it: labels and annotations (for downwardAPI files) and
    /// ephemeral containers (the new ones start).
    pub(super) async fn pod_updated(&mut self, pod: Pod) {
        let md = &mut self.pod.metadata;
        if md.labels != pod.metadata.labels || md.annotations != pod.metadata.annotations {
            md.labels = pod.metadata.labels;
            md.annotations = pod.metadata.annotations;
            self.refresh_file_volumes().await;
        }
        for c in pod.spec.ephemeral_containers {
            let known = self.pod.spec.ephemeral_containers.iter();
            if !known.clone().any(|e| e.name == c.name) {
                self.pod.spec.ephemeral_containers.push(c);
            }
        }
        self.start_ephemeral().await;
    }

    /// Starts the ephemeral containers that have not been started (those without a status):
    /// not in a pod that is stopping or has finished.
    pub(super) async fn start_ephemeral(&mut self) {
        let finished = matches!(
            self.lock_status().phase,
            PodPhase::Succeeded | PodPhase::Failed
        );
        if self.stopping || finished {
            return;
        }
        let new: Vec<(String, String)> = {
            let st = self.lock_status();
            self.pod
                .spec
                .ephemeral_containers
                .iter()
                .filter(|c| st.container(&c.name).is_none())
                .map(|c| (c.name.clone(), c.image.clone()))
                .collect()
        };
        for (name, image) in new {
            tracing::info!(pod = %self.pod.metadata.name, container = %name, "starting ephemeral container");
            self.lock_status()
                .ephemeral_container_statuses
                .push(ContainerStatus {
                    name: name.clone(),
                    image,
                    init: false,
                    state: ContainerState::waiting("ContainerCreating", ""),
                    last_state: None,
                    restart_count: 0,
                    ready: false,
                    pid: None,
                });
            self.start(&name).await;
        }
    }
}
