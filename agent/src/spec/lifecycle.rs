//! Container lifecycle hooks (`lifecycle.postStart`, `lifecycle.preStop`): the manifest shape
//! and the API server's checks of it. The handlers are the probes' `exec` and `httpGet`, plus
//! `sleep` (Kubernetes 1.30+); the deprecated `tcpSocket` parses so it can be refused by name
//! (see `unsupported`), as kubelet never runs it. It never runs a hook; the pod worker does.

use serde::{Deserialize, Serialize};

use super::error::SpecError;
use super::probe::{ExecAction, HttpGetAction, IntOrString, TcpSocketAction};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Lifecycle {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_start: Option<LifecycleHandler>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_stop: Option<LifecycleHandler>,
}

impl Lifecycle {
    /// The hooks that are set, with their field names.
    pub fn hooks(&self) -> impl Iterator<Item = (&'static str, &LifecycleHandler)> {
        [("postStart", &self.post_start), ("preStop", &self.pre_stop)]
            .into_iter()
            .filter_map(|(name, h)| h.as_ref().map(|h| (name, h)))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LifecycleHandler {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGetAction>,
    /// Deprecated in Kubernetes and refused here: kubelet fails such a hook as invalid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<TcpSocketAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sleep: Option<SleepAction>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SleepAction {
    pub seconds: i64,
}

/// The one action a valid hook performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookAction<'a> {
    Exec(&'a ExecAction),
    HttpGet(&'a HttpGetAction),
    TcpSocket(&'a TcpSocketAction),
    Sleep(&'a SleepAction),
}

impl LifecycleHandler {
    /// Every action that is set; a valid hook has exactly one.
    pub fn actions(&self) -> Vec<HookAction<'_>> {
        let mut found = Vec::new();
        found.extend(self.exec.as_ref().map(HookAction::Exec));
        found.extend(self.http_get.as_ref().map(HookAction::HttpGet));
        found.extend(self.tcp_socket.as_ref().map(HookAction::TcpSocket));
        found.extend(self.sleep.as_ref().map(HookAction::Sleep));
        found
    }

    /// The hook's action, if exactly one is set.
    pub fn action(&self) -> Option<HookAction<'_>> {
        match self.actions().as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }
}

/// The API server's checks of `lifecycle` at `path` in a pod whose grace period is `grace`
/// seconds: one handler per hook, a command for exec, a valid port and request for httpGet, a
/// sleep within `0..=grace`.
pub fn validate_lifecycle(path: &str, lifecycle: &Lifecycle, grace: i64) -> Result<(), SpecError> {
    for (name, hook) in lifecycle.hooks() {
        let field = format!("{path}.{name}");
        let action = match hook.actions().as_slice() {
            [one] => *one,
            [] => return Err(SpecError::new(field, "must specify a handler type")),
            _ => {
                let message = "may not specify more than 1 handler type";
                return Err(SpecError::new(field, message));
            }
        };
        match action {
            HookAction::Exec(exec) if exec.command.is_empty() => {
                let message = "must be non-empty";
                return Err(SpecError::new(format!("{field}.exec.command"), message));
            }
            HookAction::Exec(_) | HookAction::TcpSocket(_) => {}
            HookAction::HttpGet(get) => {
                check_port(&format!("{field}.httpGet.port"), &get.port)?;
                get.validate_request()
                    .map_err(|e| e.at(&format!("{field}.httpGet")))?;
            }
            HookAction::Sleep(sleep) if !(0..=grace).contains(&sleep.seconds) => {
                let message = format!(
                    "{} must be non-negative and less than terminationGracePeriodSeconds ({grace})",
                    sleep.seconds
                );
                return Err(SpecError::new(format!("{field}.sleep.seconds"), message));
            }
            HookAction::Sleep(_) => {}
        }
    }
    Ok(())
}

fn check_port(field: &str, port: &IntOrString) -> Result<(), SpecError> {
    let problem = match port {
        IntOrString::Int(n) if !(1..=65535).contains(n) => {
            Some(format!("{n} must be between 1 and 65535, inclusive"))
        }
        IntOrString::Int(_) => None,
        IntOrString::String(name) => super::names::iana_svc_name_error(name),
    };
    match problem {
        Some(message) => Err(SpecError::new(field, message)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lifecycle(yaml: &str) -> Lifecycle {
        serde_yaml::from_str(yaml).expect("lifecycle")
    }

    #[test]
    fn each_handler_parses_and_is_the_hooks_action() {
        let l =
            lifecycle("postStart: {exec: {command: [touch, /x]}}\npreStop: {sleep: {seconds: 5}}");
        assert!(matches!(
            l.post_start.as_ref().and_then(|h| h.action()),
            Some(HookAction::Exec(e)) if e.command == ["touch", "/x"]
        ));
        assert!(matches!(
            l.pre_stop.as_ref().and_then(|h| h.action()),
            Some(HookAction::Sleep(SleepAction { seconds: 5 }))
        ));
        let l = lifecycle("preStop: {httpGet: {port: web, path: /drain}}");
        let Some(HookAction::HttpGet(get)) = l.pre_stop.as_ref().and_then(|h| h.action()) else {
            panic!("{l:?}");
        };
        assert_eq!(get.path(), "/drain");
        assert_eq!(validate_lifecycle("l", &l, 30), Ok(()));
    }

    #[test]
    fn invalid_hooks_are_refused_naming_the_field() {
        let cases = [
            ("preStop: {}", "l.preStop", "must specify a handler type"),
            (
                "postStart: {exec: {command: [a]}, sleep: {seconds: 1}}",
                "l.postStart",
                "more than 1",
            ),
            (
                "postStart: {exec: {command: []}}",
                "l.postStart.exec.command",
                "non-empty",
            ),
            (
                "preStop: {httpGet: {port: 0}}",
                "l.preStop.httpGet.port",
                "between 1 and 65535",
            ),
            (
                "preStop: {httpGet: {port: 80, path: \"/a b\"}}",
                "l.preStop.httpGet.path",
                "request target",
            ),
            (
                "preStop: {sleep: {seconds: 31}}",
                "l.preStop.sleep.seconds",
                "terminationGracePeriodSeconds (30)",
            ),
            (
                "preStop: {sleep: {seconds: -1}}",
                "l.preStop.sleep.seconds",
                "non-negative",
            ),
        ];
        for (yaml, field, message) in cases {
            let err = validate_lifecycle("l", &lifecycle(yaml), 30).expect_err(yaml);
            assert_eq!(err.field, field, "{yaml}: {err}");
            assert!(err.message.contains(message), "{yaml}: {err}");
        }
        let zero = lifecycle("preStop: {sleep: {seconds: 0}}");
        assert_eq!(validate_lifecycle("l", &zero, 0), Ok(()));
    }
}
