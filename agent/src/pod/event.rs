//! What a pod worker reacts to besides its owner's commands: container exits (from the pidfd
//! watchers), restart timers, start failures, probe verdicts and postStart hook results. Pure data, sent over the
//! worker's own channel by the tasks the worker spawned.

use crate::sys::pidfd::ProcessExit;

/// Events the worker reacts to.
#[derive(Debug)]
pub(super) enum PodEvent {
    Exited {
        name: String,
        pid: i32,
        exit: ProcessExit,
    },
    Restart {
        name: String,
    },
    /// The container could not exec (StartError): handled like an exit with code 128.
    StartFailed {
        name: String,
    },
    /// A probe verdict changed.
    Probe(crate::probe::ProbeUpdate),
    /// The postStart hook of instance `pid` of container `name` finished.
    PostStartDone {
        name: String,
        pid: i32,
        result: Result<(), String>,
    },
}
