//! The events kubelet records about a pod's containers (`kubectl describe pod`, `kubectl get
//! events`), derived from the change between two of the agent's own statuses of the pod:
//! a registry pull that begins → `Pulling`; a container that starts (again) → `Pulled`, `Created`, `Started`; one that waits in a
//! failure → `Failed` or `BackOff` (Warning); a pod being deleted → `Killing` for each running
//! container. Pure: [`diff`] decides, `status.rs` posts them as core/v1 Events.

use std::time::SystemTime;

use crate::pod::{ContainerState, ContainerStatus, PodStatus};

/// Normal or Warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Normal,
    Warning,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Normal => "Normal",
            Kind::Warning => "Warning",
        }
    }
}

/// One event about a container of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEvent {
    pub kind: Kind,
    pub reason: &'static str,
    pub message: String,
    /// `spec.containers{NAME}` (`spec.initContainers{NAME}`, `spec.ephemeralContainers{NAME}`);
    /// empty for the pod itself.
    pub field_path: String,
    /// How many times it happened since the last report (kubelet's recorder counts repeats
    /// of one event in its `count`).
    pub times: u32,
}

/// The pod's container statuses, each with the spec list it is in.
fn statuses(st: &PodStatus) -> impl Iterator<Item = (&'static str, &ContainerStatus)> + '_ {
    let init = st.init_container_statuses.iter();
    let app = st.container_statuses.iter();
    let ephemeral = st.ephemeral_container_statuses.iter();
    init.map(|c| ("spec.initContainers", c))
        .chain(app.map(|c| ("spec.containers", c)))
        .chain(ephemeral.map(|c| ("spec.ephemeralContainers", c)))
}

/// The start time of a running container, or of the last run of a terminated one.
fn started_at(state: &ContainerState) -> Option<&str> {
    match state {
        ContainerState::Running { started_at } => Some(started_at),
        ContainerState::Terminated { started_at, .. } if !started_at.is_empty() => Some(started_at),
        _ => None,
    }
}

/// The events kubelet records when a container enters the Waiting `reason` (with `message`),
/// in its texts: a pull failure is `Failed to pull image …` then `Error: ErrImagePull`, its
/// retries `Back-off pulling image …` then `Error: ImagePullBackOff`, a crash loop
/// `Back-off restarting failed container …`, any other failure `Error: <message>`.
fn failure_events(
    reason: &str,
    message: &str,
    container: &ContainerStatus,
    pod: &PodStatus,
) -> Vec<(Kind, &'static str, String)> {
    let image = &container.image;
    let error = |what: &str| (Kind::Warning, "Failed", format!("Error: {what}"));
    match reason {
        "CrashLoopBackOff" => vec![(
            Kind::Warning,
            "BackOff",
            format!(
                "Back-off restarting failed container {} in pod {}_{}({})",
                container.name, pod.name, pod.namespace, pod.uid
            ),
        )],
        "ErrImagePull" => vec![
            (
                Kind::Warning,
                "Failed",
                format!("Failed to pull image \"{image}\": {message}"),
            ),
            error(reason),
        ],
        "ImagePullBackOff" => vec![
            (
                Kind::Normal,
                "BackOff",
                format!("Back-off pulling image \"{image}\""),
            ),
            error(reason),
        ],
        "ErrImageNeverPull" => vec![
            (Kind::Warning, "ErrImageNeverPull", message.to_owned()),
            error(reason),
        ],
        "InvalidImageName"
        | "CreateContainerConfigError"
        | "CreateContainerError"
        | "RunContainerError" => match message.is_empty() {
            true => vec![error(reason)],
            false => vec![error(message)],
        },
        _ => Vec::new(),
    }
}

/// The start time of the container's newest run: its current state's, else its last state's
/// (a run that ended and now waits to restart).
fn latest_start(c: &ContainerStatus) -> Option<&str> {
    started_at(&c.state).or_else(|| c.last_state.as_ref().and_then(started_at))
}

/// Whether an RFC 3339 time is at or after `since`.
fn after(time: &str, since: SystemTime) -> bool {
    humantime::parse_rfc3339_weak(time.trim_end_matches('Z')).is_ok_and(|t| t >= since)
}

/// The events between `before` (None: first seen by this agent, which started at
/// `agent_start`: containers started before that are not announced again) and `now`;
/// `terminating`: the pod became terminating since `before`.
pub fn diff(
    before: Option<&PodStatus>,
    now: &PodStatus,
    terminating: bool,
    agent_start: SystemTime,
) -> Vec<PodEvent> {
    let mut out = Vec::new();
    for (list, c) in statuses(now) {
        let prev = before.and_then(|b| {
            statuses(b)
                .find(|(l, p)| *l == list && p.name == c.name)
                .map(|(_, p)| p)
        });
        let path = format!("{list}{{{}}}", c.name);
        let event = |kind, reason, message: String| PodEvent {
            kind,
            reason,
            message,
            field_path: path.clone(),
            times: 1,
        };
        // kubelet tells a pull as it begins, whatever its outcome.
        let begun = now.pulls_begun.get(&c.name).copied().unwrap_or(0);
        let told = before
            .and_then(|b| b.pulls_begun.get(&c.name).copied())
            .unwrap_or(0);
        if begun > told {
            let mut pulling = event(
                Kind::Normal,
                "Pulling",
                format!("Pulling image \"{}\"", c.image),
            );
            pulling.times = begun - told;
            out.push(pulling);
        }
        let started = latest_start(c);
        let was_started = prev.and_then(latest_start);
        let new_start = match (before, started) {
            (_, None) => false,
            (None, Some(s)) => after(s, agent_start),
            (Some(_), Some(s)) => was_started != Some(s),
        };
        if new_start {
            let image = &c.image;
            match now.pulls.get(&c.name) {
                Some(pulled) => out.push(event(Kind::Normal, "Pulled", pulled.clone())),
                None => out.push(event(
                    Kind::Normal,
                    "Pulled",
                    format!("Container image \"{image}\" already present on machine"),
                )),
            }
            out.push(event(
                Kind::Normal,
                "Created",
                format!("Created container: {}", c.name),
            ));
            out.push(event(
                Kind::Normal,
                "Started",
                format!("Started container {}", c.name),
            ));
        }
        if let ContainerState::Waiting { reason, message } = &c.state {
            let was = prev.map(|p| &p.state);
            // Again after a run that started since (one too short for any report to see it
            // running: it is only in lastState now).
            let same = !new_start
                && matches!(was, Some(ContainerState::Waiting { reason: r, .. }) if r == reason);
            if !same {
                for (kind, reason, message) in failure_events(reason, message, c, now) {
                    out.push(event(kind, reason, message));
                }
            }
        }
        if terminating && c.state.is_running() {
            out.push(event(
                Kind::Normal,
                "Killing",
                format!("Stopping container {}", c.name),
            ));
        }
    }
    for w in &now.warnings {
        let seen = before.is_some_and(|b| b.warnings.contains(w));
        let old = before.is_none() && !after(&w.at, agent_start);
        if seen || old {
            continue;
        }
        // The times told since the last report: the count beyond the one reported.
        let reported = before
            .and_then(|b| {
                b.warnings.iter().find(|e| {
                    (&e.reason, &e.field_path, &e.message) == (&w.reason, &w.field_path, &w.message)
                })
            })
            .map_or(0, |e| e.count);
        let times = w
            .count
            .checked_sub(reported)
            .filter(|n| *n > 0)
            .unwrap_or(w.count);
        let reason = match w.reason.as_str() {
            "FailedToRetrieveImagePullSecret" => "FailedToRetrieveImagePullSecret",
            "Unhealthy" => "Unhealthy",
            "Killing" => "Killing",
            _ => continue,
        };
        out.push(PodEvent {
            kind: if w.normal {
                Kind::Normal
            } else {
                Kind::Warning
            },
            reason,
            message: w.message.clone(),
            field_path: w.field_path.clone(),
            times,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(state: ContainerState) -> ContainerStatus {
        ContainerStatus {
            name: "web".into(),
            image: "bosun.test/busybox:1".into(),
            init: false,
            state,
            last_state: None,
            restart_count: 0,
            ready: false,
            pid: None,
        }
    }

    fn pod(state: ContainerState) -> PodStatus {
        PodStatus {
            namespace: "default".into(),
            name: "web".into(),
            uid: "u1".into(),
            container_statuses: vec![container(state)],
            ..PodStatus::default()
        }
    }

    fn running(at: &str) -> ContainerState {
        ContainerState::Running {
            started_at: at.into(),
        }
    }

    fn diff(b: Option<&PodStatus>, n: &PodStatus, t: bool) -> Vec<PodEvent> {
        let start = humantime::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        super::diff(b, n, t, start)
    }

    fn reasons(events: &[PodEvent]) -> Vec<&str> {
        events.iter().map(|e| e.reason).collect()
    }

    #[test]
    fn a_start_and_a_restart_are_announced_once() {
        let waiting = pod(ContainerState::waiting("ContainerCreating", ""));
        let up = pod(running("T1"));
        let events = diff(Some(&waiting), &up, false);
        assert_eq!(reasons(&events), ["Pulled", "Created", "Started"]);
        assert_eq!(events[2].message, "Started container web");
        assert_eq!(events[2].field_path, "spec.containers{web}");
        assert!(diff(Some(&up), &up, false).is_empty(), "nothing new");
        let again = pod(running("T2"));
        assert_eq!(
            reasons(&diff(Some(&up), &again, false)),
            ["Pulled", "Created", "Started"]
        );
    }

    #[test]
    fn a_pull_is_told_as_it_begins_and_its_start_tells_the_pull() {
        let waiting = pod(ContainerState::waiting("ContainerCreating", ""));
        let mut pulling = waiting.clone();
        pulling.pulls_begun.insert("web".into(), 1);
        let events = diff(Some(&waiting), &pulling, false);
        assert_eq!(
            told(&events),
            [(
                Kind::Normal,
                "Pulling",
                "Pulling image \"bosun.test/busybox:1\""
            )]
        );
        assert!(
            diff(Some(&pulling), &pulling, false).is_empty(),
            "told once"
        );

        let mut up = pod(running("T1"));
        up.pulls_begun.insert("web".into(), 1);
        let pulled = "Successfully pulled image \"bosun.test/busybox:1\" in 1.2s (1.3s including waiting). Image size: 1024 bytes.";
        up.pulls.insert("web".into(), pulled.into());
        let events = diff(Some(&pulling), &up, false);
        assert_eq!(reasons(&events), ["Pulled", "Created", "Started"]);
        assert_eq!(events[0].message, pulled);
        // A pull begun and done between two reports: both told, in order.
        assert_eq!(
            reasons(&diff(Some(&waiting), &up, false)),
            ["Pulling", "Pulled", "Created", "Started"]
        );
        // A failed pull was begun too: Pulling, then kubelet's failure pair.
        let mut failed = pod(ContainerState::waiting("ErrImagePull", "not found"));
        failed.pulls_begun.insert("web".into(), 2);
        let events = diff(Some(&pulling), &failed, false);
        assert_eq!(reasons(&events), ["Pulling", "Failed", "Failed"]);
    }

    #[test]
    fn a_run_too_short_to_be_seen_running_is_announced_from_its_last_state() {
        let waiting = |started: &str| {
            let mut p = pod(ContainerState::waiting("CrashLoopBackOff", "back-off 10s"));
            p.container_statuses[0].last_state = Some(ContainerState::Terminated {
                exit_code: 1,
                reason: "Error".into(),
                message: String::new(),
                started_at: started.into(),
                finished_at: started.into(),
            });
            p
        };
        let first = waiting("T1");
        let second = waiting("T2");
        assert_eq!(
            reasons(&diff(Some(&first), &second, false)),
            ["Pulled", "Created", "Started", "BackOff"]
        );
        assert!(diff(Some(&second), &second, false).is_empty());
    }

    #[test]
    fn an_ephemeral_container_is_announced_under_its_own_list() {
        let up = pod(running("T1"));
        let mut debugged = up.clone();
        let mut debugger = container(running("T2"));
        debugger.name = "debugger".into();
        debugged.ephemeral_container_statuses.push(debugger);
        let events = diff(Some(&up), &debugged, false);
        assert_eq!(reasons(&events), ["Pulled", "Created", "Started"]);
        assert_eq!(events[2].field_path, "spec.ephemeralContainers{debugger}");
    }

    #[test]
    fn containers_running_before_the_agent_started_are_not_announced() {
        assert!(diff(None, &pod(running("2025-12-31T23:59:59.5Z")), false).is_empty());
        let new = pod(running("2026-01-01T00:00:00.123456789Z"));
        assert_eq!(
            reasons(&diff(None, &new, false)),
            ["Pulled", "Created", "Started"]
        );
    }

    #[test]
    fn failures_are_warnings_once_and_deletion_kills_running_containers() {
        let up = pod(running("T1"));
        let backoff = pod(ContainerState::waiting("CrashLoopBackOff", "back-off 10s"));
        let events = diff(Some(&up), &backoff, false);
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].kind, events[0].reason),
            (Kind::Warning, "BackOff")
        );
        assert_eq!(
            events[0].message,
            "Back-off restarting failed container web in pod web_default(u1)"
        );
        assert!(diff(Some(&backoff), &backoff, false).is_empty());
        let config = pod(ContainerState::waiting(
            "CreateContainerConfigError",
            "configmap \"x\" not found",
        ));
        let events = diff(None, &config, false);
        assert_eq!(events[0].message, "Error: configmap \"x\" not found");
        let events = diff(Some(&up), &up, true);
        assert_eq!(reasons(&events), ["Killing"]);
        assert_eq!(events[0].message, "Stopping container web");
    }

    fn told(events: &[PodEvent]) -> Vec<(Kind, &str, &str)> {
        events
            .iter()
            .map(|e| (e.kind, e.reason, e.message.as_str()))
            .collect()
    }

    #[test]
    fn a_failed_pull_and_its_back_off_are_told_as_kubelet_tells_them() {
        let creating = pod(ContainerState::waiting("ContainerCreating", ""));
        let failed = pod(ContainerState::waiting("ErrImagePull", "manifest unknown"));
        let events = diff(Some(&creating), &failed, false);
        let said = told(&events);
        assert_eq!(
            said,
            [
                (
                    Kind::Warning,
                    "Failed",
                    "Failed to pull image \"bosun.test/busybox:1\": manifest unknown"
                ),
                (Kind::Warning, "Failed", "Error: ErrImagePull"),
            ]
        );
        let backoff = pod(ContainerState::waiting(
            "ImagePullBackOff",
            "Back-off pulling image \"bosun.test/busybox:1\": ErrImagePull: manifest unknown",
        ));
        let events = diff(Some(&failed), &backoff, false);
        let said = told(&events);
        assert_eq!(
            said,
            [
                (
                    Kind::Normal,
                    "BackOff",
                    "Back-off pulling image \"bosun.test/busybox:1\""
                ),
                (Kind::Warning, "Failed", "Error: ImagePullBackOff"),
            ]
        );
        assert!(diff(Some(&backoff), &backoff, false).is_empty());
    }

    #[test]
    fn a_missing_pull_secret_is_a_pod_warning_once_per_attempt() {
        let mut first = pod(ContainerState::waiting("ContainerCreating", ""));
        first.warn(
            "FailedToRetrieveImagePullSecret",
            "Unable to retrieve some image pull secrets (regcred); attempting to pull the image may not succeed.".into(),
        );
        let events = diff(
            Some(&pod(ContainerState::waiting("ContainerCreating", ""))),
            &first,
            false,
        );
        assert_eq!(reasons(&events), ["FailedToRetrieveImagePullSecret"]);
        assert_eq!(events[0].kind, Kind::Warning);
        assert_eq!(events[0].field_path, "", "about the pod, not a container");
        assert!(
            events[0].message.contains("(regcred)"),
            "{}",
            events[0].message
        );
        assert!(diff(Some(&first), &first, false).is_empty(), "nothing new");
        let mut again = first.clone();
        again.warn("FailedToRetrieveImagePullSecret", events[0].message.clone());
        assert_eq!(again.warnings.len(), 1, "the last of each reason");
        assert_eq!(
            reasons(&diff(Some(&first), &again, false)),
            ["FailedToRetrieveImagePullSecret"],
            "a later attempt is a new event"
        );
        assert_eq!(diff(Some(&first), &again, false)[0].times, 1);
    }

    #[test]
    fn repeated_probe_failures_are_counted_since_the_last_report() {
        let up = pod(running("T1"));
        let failed = "Liveness probe failed: dial tcp 10.0.0.5:9: connect: connection refused";
        let field = "spec.containers{web}".to_owned();
        let mut once = up.clone();
        once.tell("Unhealthy", failed.into(), field.clone(), false);
        let events = diff(Some(&up), &once, false);
        assert_eq!(reasons(&events), ["Unhealthy"]);
        assert_eq!(
            (events[0].times, events[0].field_path.as_str()),
            (1, "spec.containers{web}")
        );

        // Two more failed attempts before the next report: one event, told twice more.
        let mut thrice = once.clone();
        thrice.tell("Unhealthy", failed.into(), field.clone(), false);
        thrice.tell("Unhealthy", failed.into(), field.clone(), false);
        assert_eq!(thrice.warnings.len(), 1, "one entry, counted");
        assert_eq!(thrice.warnings[0].count, 3);
        let events = diff(Some(&once), &thrice, false);
        assert_eq!((events.len(), events[0].times), (1, 2));

        // Another message is another event, kept beside the first for its container.
        let mut other = thrice.clone();
        let refused = "Readiness probe failed: HTTP probe failed with statuscode: 503";
        other.tell("Unhealthy", refused.into(), field, false);
        assert_eq!(other.warnings.len(), 2);
        let events = diff(Some(&thrice), &other, false);
        assert_eq!(told(&events), [(Kind::Warning, "Unhealthy", refused)]);
        assert_eq!(events[0].times, 1);
        assert!(diff(Some(&other), &other, false).is_empty());
    }
}
