//! Pod and container status as Kubernetes reports it (phase, container states with reasons,
//! restart counts, times). Pure data plus the phase rule; shown by `bosun-agent ps`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::spec::RestartPolicy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum PodPhase {
    #[default]
    Pending,
    Running,
    Succeeded,
    Failed,
}

/// One container's state, as in `containerStatuses[].state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum ContainerState {
    Waiting {
        reason: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        message: String,
    },
    Running {
        started_at: String,
    },
    Terminated {
        exit_code: i32,
        reason: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        message: String,
        started_at: String,
        finished_at: String,
    },
}

impl ContainerState {
    pub fn waiting(reason: &str, message: impl Into<String>) -> Self {
        ContainerState::Waiting {
            reason: reason.to_string(),
            message: message.into(),
        }
    }
    pub fn is_running(&self) -> bool {
        matches!(self, ContainerState::Running { .. })
    }
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            ContainerState::Terminated { exit_code, .. } => Some(*exit_code),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    pub name: String,
    pub image: String,
    pub init: bool,
    pub state: ContainerState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_state: Option<ContainerState>,
    pub restart_count: u32,
    pub ready: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub phase: PodPhase,
    /// Why the pod is in its phase, when the agent decided it (`DeadlineExceeded`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// When the agent first started working on the pod (RFC 3339); activeDeadlineSeconds
    /// counts from here, across agent restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, rename = "podIP", skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
    #[serde(default, rename = "podIPs", skip_serializing_if = "Vec::is_empty")]
    pub pod_ips: Vec<String>,
    /// Guaranteed, Burstable or BestEffort.
    #[serde(default)]
    pub qos_class: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    pub ready: bool,
    pub init_container_statuses: Vec<ContainerStatus>,
    pub container_statuses: Vec<ContainerStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ephemeral_container_statuses: Vec<ContainerStatus>,
    /// Warnings about the pod itself, for its events: the last of each reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<PodWarning>,
    /// Container name → kubelet's `Pulled` text of the pull its current start made; no entry
    /// when the image was already present (kubelet's "already present on machine").
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pulls: BTreeMap<String, String>,
    /// Container name → the registry pulls begun for it so far, for kubelet's `Pulling`
    /// event when one begins.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pulls_begun: BTreeMap<String, u32>,
}

/// A Warning event about the pod (not one of its containers), e.g. kubelet's
/// FailedToRetrieveImagePullSecret; `at` (RFC 3339) tells one occurrence from the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodWarning {
    pub reason: String,
    pub message: String,
    pub at: String,
    /// The container it is about (`spec.containers{NAME}`); empty for the pod itself.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field_path: String,
    /// A Normal event (kubelet's `Killing` of a container that failed its liveness probe).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub normal: bool,
    /// How many times it was told with this message, `at` being the last.
    #[serde(default = "first_time")]
    pub count: u32,
}

fn first_time() -> u32 {
    1
}

/// The most events about a pod kept for reporting at once; the oldest go first.
const WARNINGS_KEPT: usize = 16;

impl PodStatus {
    /// Records warning `reason` with `message`, now; replaces the last one of that reason.
    pub fn warn(&mut self, reason: &str, message: String) {
        self.tell(reason, message, String::new(), false);
    }

    /// Records event `reason` with `message` about container `field_path` (empty: the pod),
    /// now. It replaces an earlier one with the same reason and container, and the same
    /// message for a container, counting the times told with that message.
    pub fn tell(&mut self, reason: &str, message: String, field_path: String, normal: bool) {
        let at = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
        let earlier = self.warnings.iter().position(|w| {
            let same = w.reason == reason && w.field_path == field_path;
            same && (field_path.is_empty() || w.message == message)
        });
        let count = match earlier.map(|i| self.warnings.remove(i)) {
            Some(w) if w.message == message => w.count.saturating_add(1),
            _ => 1,
        };
        if self.warnings.len() >= WARNINGS_KEPT {
            self.warnings.remove(0);
        }
        self.warnings.push(PodWarning {
            reason: reason.to_owned(),
            message,
            at,
            field_path,
            normal,
            count,
        });
    }
}

impl PodStatus {
    pub fn container_mut(&mut self, name: &str) -> Option<&mut ContainerStatus> {
        self.init_container_statuses
            .iter_mut()
            .chain(self.container_statuses.iter_mut())
            .chain(self.ephemeral_container_statuses.iter_mut())
            .find(|c| c.name == name)
    }
    pub fn container(&self, name: &str) -> Option<&ContainerStatus> {
        self.init_container_statuses
            .iter()
            .chain(self.container_statuses.iter())
            .chain(self.ephemeral_container_statuses.iter())
            .find(|c| c.name == name)
    }
}

/// Whether a container that ended with `exit_code` is started again under `policy`.
pub fn should_restart(policy: RestartPolicy, exit_code: i32) -> bool {
    match policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => exit_code != 0,
        RestartPolicy::Never => false,
    }
}

/// The phase of a pod whose init containers are done, from its app containers' states and
/// whether any of them will be restarted.
pub fn app_phase(containers: &[ContainerStatus], restart_pending: bool) -> PodPhase {
    if containers.iter().any(|c| c.state.is_running()) || restart_pending {
        return PodPhase::Running;
    }
    let codes: Vec<Option<i32>> = containers.iter().map(|c| c.state.exit_code()).collect();
    if codes.iter().any(Option::is_none) {
        return PodPhase::Pending;
    }
    if codes.iter().all(|c| *c == Some(0)) {
        PodPhase::Succeeded
    } else {
        PodPhase::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: ContainerState) -> ContainerStatus {
        ContainerStatus {
            name: "c".into(),
            image: "i".into(),
            init: false,
            state,
            last_state: None,
            restart_count: 0,
            ready: false,
            pid: None,
        }
    }
    fn done(code: i32) -> ContainerState {
        ContainerState::Terminated {
            exit_code: code,
            reason: String::new(),
            message: String::new(),
            started_at: String::new(),
            finished_at: String::new(),
        }
    }

    #[test]
    fn restart_policy_table() {
        assert!(should_restart(RestartPolicy::Always, 0));
        assert!(should_restart(RestartPolicy::OnFailure, 1));
        assert!(!should_restart(RestartPolicy::OnFailure, 0));
        assert!(!should_restart(RestartPolicy::Never, 1));
    }

    #[test]
    fn phase_follows_container_states() {
        let running = ContainerState::Running {
            started_at: String::new(),
        };
        assert_eq!(
            app_phase(&[status(running), status(done(1))], false),
            PodPhase::Running
        );
        assert_eq!(
            app_phase(&[status(done(0)), status(done(0))], false),
            PodPhase::Succeeded
        );
        assert_eq!(
            app_phase(&[status(done(0)), status(done(2))], false),
            PodPhase::Failed
        );
        assert_eq!(app_phase(&[status(done(2))], true), PodPhase::Running);
        let waiting = ContainerState::waiting("ContainerCreating", "");
        assert_eq!(app_phase(&[status(waiting)], false), PodPhase::Pending);
    }
}
