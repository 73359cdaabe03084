//! `GET /containerLogs/{ns}/{pod}/{container}`: picks the log file kubelet would (the current
//! instance, or with `previous` the one before it) from the container's status, answers with
//! kubelet's texts when there is nothing to show, and streams the file (`log_stream.rs`).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use http::{header, Response, StatusCode};

use super::{log_options, log_stream, text, Body, KubeletApi, Statuses};
use crate::pod::{ContainerState, ContainerStatus, PodStatus};

/// Answers one log request.
pub fn respond(
    api: &KubeletApi,
    ns: &str,
    pod: &str,
    container: &str,
    query: &str,
) -> Response<Body> {
    let opts = match log_options::parse(query, SystemTime::now()) {
        Ok(o) => o,
        Err(e) => return text(StatusCode::BAD_REQUEST, &e),
    };
    let statuses = (api.statuses)();
    let Some(status) = statuses.iter().find(|p| p.namespace == ns && p.name == pod) else {
        return text(
            StatusCode::NOT_FOUND,
            &format!("pod {pod:?} does not exist"),
        );
    };
    let Some(c) = find_container(status, container) else {
        return text(
            StatusCode::NOT_FOUND,
            &format!("container {container:?} not found in pod {pod:?}"),
        );
    };
    let dir = crate::pod::node::log_dir(&api.root, ns, pod, &status.uid).join(container);
    let file = match pick(&dir, c, opts.previous) {
        Ok(file) => file,
        Err(why) => {
            let message = why.message(container, pod);
            return text(StatusCode::BAD_REQUEST, &message);
        }
    };
    let running = still_running(
        api.statuses.clone(),
        status.uid.clone(),
        container.to_owned(),
        c.restart_count,
    );
    let mut resp = Response::new(log_stream::body(file, opts, running));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    resp
}

pub(super) fn find_container<'a>(status: &'a PodStatus, name: &str) -> Option<&'a ContainerStatus> {
    status.container(name)
}

/// Why there is no log file to show (kubelet's `validateContainerLogStatus`).
#[derive(Debug, PartialEq)]
pub enum NoLog {
    NoPrevious,
    Waiting(String),
}

impl NoLog {
    pub fn message(&self, container: &str, pod: &str) -> String {
        match self {
            NoLog::NoPrevious => {
                format!("previous terminated container {container:?} in pod {pod:?} not found")
            }
            NoLog::Waiting(reason) => {
                format!("container {container:?} in pod {pod:?} is waiting to start: {reason}")
            }
        }
    }
}

/// The log files of a container directory with their instance (restart count), oldest first.
fn instances(dir: &Path) -> Vec<(u32, PathBuf)> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.strip_suffix(".log")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    found.sort();
    found
}

/// The file to serve. Running: the instance the status names by its restart count, even
/// before its file exists (`previous`: the newest one before it) — the newest file may still
/// be the one before while the new instance starts. Terminated: the newest instance (`previous`: the one
/// before). Waiting after an exit: the newest is the exited one (also for `previous`).
pub fn pick(dir: &Path, c: &ContainerStatus, previous: bool) -> Result<PathBuf, NoLog> {
    let numbered = instances(dir);
    if matches!(c.state, ContainerState::Running { .. }) {
        if !previous {
            // Not written yet reads as empty (and is followed until it is).
            return Ok(dir.join(format!("{}.log", c.restart_count)));
        }
        let before = numbered.iter().rev().find(|(n, _)| *n < c.restart_count);
        if let Some((_, file)) = before {
            return Ok(file.clone());
        }
    }
    let files: Vec<PathBuf> = numbered.into_iter().map(|(_, p)| p).collect();
    let waiting = match &c.state {
        ContainerState::Waiting { reason, .. } => Some(reason.clone()),
        _ => None,
    };
    let exited_before = matches!(c.last_state, Some(ContainerState::Terminated { .. }));
    let from_end = match (previous, &waiting) {
        (true, _) if !exited_before => return Err(NoLog::NoPrevious),
        (true, Some(_)) => 1,
        (true, None) => 2,
        (false, Some(reason)) if !exited_before => return Err(NoLog::Waiting(reason.clone())),
        (false, _) => 1,
    };
    let index = files.len().checked_sub(from_end);
    match index.and_then(|i| files.get(i)) {
        Some(f) => Ok(f.clone()),
        None if previous => Err(NoLog::NoPrevious),
        None => Err(NoLog::Waiting(
            waiting.unwrap_or_else(|| "ContainerCreating".into()),
        )),
    }
}

/// Whether the container instance being followed still runs: same pod, same restart count,
/// state Running.
pub(super) fn still_running(
    statuses: Statuses,
    uid: String,
    container: String,
    restarts: u32,
) -> log_stream::StillRunning {
    Box::new(move || {
        statuses().iter().filter(|p| p.uid == uid).any(|p| {
            find_container(p, &container).is_some_and(|c| {
                c.restart_count == restarts && matches!(c.state, ContainerState::Running { .. })
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: ContainerState, last: Option<ContainerState>) -> ContainerStatus {
        ContainerStatus {
            name: "c".into(),
            image: String::new(),
            init: false,
            state,
            last_state: last,
            restart_count: 1,
            ready: false,
            pid: None,
        }
    }

    fn terminated() -> ContainerState {
        ContainerState::Terminated {
            exit_code: 1,
            reason: "Error".into(),
            message: String::new(),
            started_at: String::new(),
            finished_at: String::new(),
        }
    }

    #[test]
    fn kubelets_choice_of_instance() {
        let dir = tempfile::tempdir().expect("tempdir");
        let running = ContainerState::Running {
            started_at: String::new(),
        };
        let waiting = ContainerState::Waiting {
            reason: "ContainerCreating".into(),
            message: String::new(),
        };
        let fresh = status(waiting.clone(), None);
        assert_eq!(
            pick(dir.path(), &fresh, false)
                .expect_err("nothing yet")
                .message("c", "p"),
            "container \"c\" in pod \"p\" is waiting to start: ContainerCreating"
        );
        assert_eq!(
            pick(dir.path(), &fresh, true)
                .expect_err("no previous")
                .message("c", "p"),
            "previous terminated container \"c\" in pod \"p\" not found"
        );
        for n in [0, 1] {
            std::fs::write(dir.path().join(format!("{n}.log")), "").expect("write");
        }
        let restarted = status(running, Some(terminated()));
        assert!(pick(dir.path(), &restarted, false)
            .expect("current")
            .ends_with("1.log"));
        assert!(pick(dir.path(), &restarted, true)
            .expect("previous")
            .ends_with("0.log"));
        // The status's instance, not the newest file: a 2.log does not make 2 current, and
        // while 1.log is not written yet, 0 is still not served as current.
        std::fs::write(dir.path().join("2.log"), "").expect("write");
        assert!(pick(dir.path(), &restarted, false)
            .expect("current")
            .ends_with("1.log"));
        assert!(pick(dir.path(), &restarted, true)
            .expect("previous")
            .ends_with("0.log"));
        std::fs::remove_file(dir.path().join("2.log")).expect("remove");
        std::fs::remove_file(dir.path().join("1.log")).expect("remove");
        assert!(pick(dir.path(), &restarted, false)
            .expect("current")
            .ends_with("1.log"));
        std::fs::write(dir.path().join("1.log"), "").expect("write");
        let backing_off = status(waiting, Some(terminated()));
        assert!(pick(dir.path(), &backing_off, false)
            .expect("last")
            .ends_with("1.log"));
        assert!(pick(dir.path(), &backing_off, true)
            .expect("last")
            .ends_with("1.log"));
    }
}
