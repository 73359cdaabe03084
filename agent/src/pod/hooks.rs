//! Container lifecycle hooks, with kubelet's semantics. `postStart` runs right after the
//! container's process started, in a task of its own: the container stays Waiting
//! (ContainerCreating, not started) until it finishes, the pod's next containers are started
//! only then, and a failed hook kills the container (reason FailedPostStartHook, preStop
//! first) so restartPolicy applies. `preStop` runs whenever the agent stops a container
//! (pod deletion or replacement, a failed liveness/startup probe or postStart) before its
//! SIGTERM, and counts against the grace period: the container gets SIGKILL when the grace
//! runs out, also in the middle of the hook. An exec hook runs inside the container (the exec
//! probe's spawner); httpGet dials the pod IP like the httpGet probe; sleep just waits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::event::PodEvent;
use super::status::ContainerState;
use super::worker::PodWorker;
use crate::probe::exec::exec_command;
use crate::probe::net::{http_probe, HttpRequest};
use crate::probe::ProbeTargets;
use crate::spec::{resolve_port, Container, HookAction, LifecycleHandler, UriScheme};
use crate::sys::pidfd::pidfd_send_signal;

/// Kubernetes sets no time limit on postStart; a hook still hanging after this long is failed
/// (and the container restarted) rather than holding the pod forever.
const POST_START_LIMIT: Duration = Duration::from_secs(3600);

/// How much longer than the grace period an exec preStop hook's helper may live.
const SPAWNER_SLACK: Duration = Duration::from_secs(5);

/// A hook resolved against its container: named ports looked up, the request built.
#[derive(Debug, Clone)]
pub(super) enum Hook {
    Exec(Vec<String>),
    HttpGet(HttpRequest),
    Sleep(Duration),
}

/// The action of `handler` (at `field`) for `container`, or why it cannot run.
pub(super) fn resolve_hook(
    field: &str,
    handler: &LifecycleHandler,
    container: &Container,
) -> Result<Hook, String> {
    match handler.action() {
        Some(HookAction::Exec(e)) => Ok(Hook::Exec(e.command.clone())),
        Some(HookAction::HttpGet(h)) => {
            let at = |e: crate::spec::SpecError| e.at(&format!("{field}.httpGet")).to_string();
            let port = resolve_port(&h.port, container)
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{field}.httpGet.port: not a number or a named port"))?;
            Ok(Hook::HttpGet(HttpRequest {
                host: h.host.clone(),
                port,
                target: h.request_target().map_err(at)?,
                headers: h.request_headers().map_err(at)?,
                https: h.scheme() == UriScheme::Https,
            }))
        }
        Some(HookAction::Sleep(s)) => Ok(Hook::Sleep(Duration::from_secs(
            u64::try_from(s.seconds).unwrap_or(0),
        ))),
        Some(HookAction::TcpSocket(_)) => Err(format!("{field}.tcpSocket: not supported")),
        None => Err(format!("{field}: exactly one handler is required")),
    }
}

impl Hook {
    /// Runs the hook, for at most `limit`; the error says what failed, as kubelet's would.
    pub(super) async fn run(&self, targets: &ProbeTargets, limit: Duration) -> Result<(), String> {
        match self {
            Hook::Exec(command) => {
                exec_command(&targets.exec, command, limit)
                    .await
                    .map_err(|failure| {
                        let e = failure.hook_text(command, limit);
                        format!("Exec lifecycle hook ({command:?}) failed - error: {e}")
                    })
            }
            Hook::HttpGet(req) => {
                let path = req.target.as_str();
                match tokio::time::timeout(limit, http_probe(&targets.net, req)).await {
                    Ok(r) => {
                        r.map_err(|e| format!("HTTP lifecycle hook ({path}) failed - error: {e}"))
                    }
                    Err(_) => Err(format!(
                        "HTTP lifecycle hook ({path}) failed - error: no response within {}s",
                        limit.as_secs_f64()
                    )),
                }
            }
            Hook::Sleep(d) => {
                tokio::time::sleep((*d).min(limit)).await;
                Ok(())
            }
        }
    }
}

impl PodWorker {
    /// The `postStart` or `preStop` hook of container `name` with what it runs against, if it
    /// has one; one that cannot be resolved is an error naming its field.
    fn hook(&self, name: &str, which: &str) -> Option<Result<(Hook, Arc<ProbeTargets>), String>> {
        let (field, container, _) = self.container_spec(name)?;
        let pid = self.running.get(name)?.pid;
        let lifecycle = container.lifecycle.as_ref()?;
        let handler = match which {
            "postStart" => lifecycle.post_start.as_ref()?,
            _ => lifecycle.pre_stop.as_ref()?,
        };
        let field = format!("{field}.lifecycle.{which}");
        Some(resolve_hook(&field, handler, &container).map(|hook| {
            let targets = self.container_targets(&field, &container, pid);
            (hook, targets)
        }))
    }

    /// Starts the postStart hook of the just started container `name`; false if it has none.
    /// Its verdict comes back as [`PodEvent::PostStartDone`].
    pub(super) fn start_post_start(&mut self, name: &str) -> bool {
        let Some(hook) = self.hook(name, "postStart") else {
            return false;
        };
        let Some(r) = self.running.get_mut(name) else {
            return false;
        };
        let pid = r.pid;
        r.post_start_pending = true;
        let tx = self.events_tx.clone();
        let container = name.to_string();
        let task = tokio::spawn(async move {
            let result = match hook {
                Ok((hook, targets)) => hook.run(&targets, POST_START_LIMIT).await,
                Err(e) => Err(e),
            };
            let _ = tx.send(PodEvent::PostStartDone {
                name: container,
                pid,
                result,
            });
        });
        r.hook_task = Some(task.abort_handle());
        true
    }

    /// The postStart hook of instance `pid` of `name` finished: the container is started,
    /// or killed with FailedPostStartHook. Either way the next containers may start.
    pub(super) async fn on_post_start_done(
        &mut self,
        name: &str,
        pid: i32,
        result: Result<(), String>,
    ) {
        let pod = self.pod.metadata.name.clone();
        let Some(r) = self.running.get_mut(name).filter(|r| r.pid == pid) else {
            // That instance is gone already; its exit was handled.
            if !self.stopping {
                self.advance().await;
            }
            return;
        };
        r.post_start_pending = false;
        r.hook_task = None;
        match result {
            Ok(()) => {
                tracing::info!(pod = %pod, container = name, pid, "postStart hook done");
                self.container_running(name);
            }
            Err(message) => {
                tracing::warn!(pod = %pod, container = name, pid, %message, "FailedPostStartHook");
                r.kill_reason = Some(format!("FailedPostStartHook: {message}"));
                if let Some(c) = self.lock_status().container_mut(name) {
                    c.state = ContainerState::waiting("PostStartHookError", message);
                }
                let grace = self.pod.spec.termination_grace_period_seconds();
                self.spawn_stop(name, Duration::from_secs(u64::try_from(grace).unwrap_or(0)));
            }
        }
        if !self.stopping {
            self.advance().await;
        }
    }

    /// Stops container `name` in a task of its own: its preStop hook (bounded by `grace`), then
    /// SIGTERM, then SIGKILL once `grace` is over, counted from now. The exit arrives as usual
    /// from the pidfd watcher. A second call while a stop is under way does nothing.
    pub(super) fn spawn_stop(&mut self, name: &str, grace: Duration) {
        let pre_stop = self.hook(name, "preStop");
        let pod = self.pod.metadata.name.clone();
        let Some(r) = self.running.get_mut(name) else {
            return;
        };
        if r.stop_task.is_some() || r.stand_in {
            return;
        }
        let pidfd = r.pidfd.clone();
        let container = name.to_string();
        let task = tokio::spawn(async move {
            let begun = Instant::now();
            match pre_stop {
                Some(Ok((hook, targets))) => {
                    // The exec spawner's own deadline comes after the SIGKILL: the command
                    // must end with the container's PID namespace, while its helper still
                    // reaps it. A helper killed first would leave the command a zombie for
                    // the host's init to reap, and the namespace's end waits for that.
                    let run = hook.run(&targets, grace + SPAWNER_SLACK);
                    match tokio::time::timeout(grace, run).await {
                        Ok(Ok(())) => {
                            tracing::info!(pod = %pod, container = %container, "preStop hook done")
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(pod = %pod, container = %container, error = %e, "FailedPreStopHook")
                        }
                        Err(_) => {
                            tracing::warn!(pod = %pod, container = %container, grace_s = grace.as_secs(), "preStop hook not completed within the grace period")
                        }
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(pod = %pod, container = %container, error = %e, "FailedPreStopHook")
                }
                None => {}
            }
            // The pidfd names this instance even after it exited: signals then do nothing.
            let left = grace.saturating_sub(begun.elapsed());
            if !left.is_zero() {
                let _ = pidfd_send_signal(&*pidfd, Signal::SIGTERM);
                tokio::time::sleep(left).await;
            }
            let _ = pidfd_send_signal(&*pidfd, Signal::SIGKILL);
        });
        r.stop_task = Some(task.abort_handle());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(yaml: &str) -> Container {
        serde_yaml::from_str(yaml).expect("container")
    }

    #[test]
    fn hooks_resolve_named_ports_and_refuse_what_cannot_run() {
        let c = container(
            "name: c\nimage: x\nports: [{name: web, containerPort: 8080}]\nlifecycle:\n  preStop: {httpGet: {port: web, path: drain}}\n  postStart: {sleep: {seconds: 3}}\n",
        );
        let l = c.lifecycle.clone().expect("lifecycle");
        let pre = l.pre_stop.expect("preStop");
        match resolve_hook("f", &pre, &c) {
            Ok(Hook::HttpGet(req)) => {
                assert_eq!(req.port, 8080);
                assert_eq!(req.target, "/drain");
            }
            other => panic!("{other:?}"),
        }
        let post = l.post_start.expect("postStart");
        assert!(matches!(
            resolve_hook("f", &post, &c),
            Ok(Hook::Sleep(d)) if d == Duration::from_secs(3)
        ));
        let unknown = container("name: c\nimage: x\nlifecycle: {preStop: {httpGet: {port: nope}}}");
        let handler = unknown
            .lifecycle
            .clone()
            .and_then(|l| l.pre_stop)
            .expect("hook");
        let err = resolve_hook("f", &handler, &unknown).expect_err("no such port");
        assert!(err.starts_with("f.httpGet.port"), "{err}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_sleep_hook_is_cut_at_its_limit() {
        let targets = ProbeTargets {
            net: crate::probe::net::NetTarget {
                pod_ip: None,
                netns: Default::default(),
                node_netns: None,
            },
            exec: crate::probe::exec::ExecTarget {
                init_exe: Default::default(),
                pid: 0,
                cgroup_tasks: Vec::new(),
                cgroup_v2_dir: None,
                process: Default::default(),
            },
        };
        let begun = Instant::now();
        let hook = Hook::Sleep(Duration::from_secs(100));
        assert_eq!(hook.run(&targets, Duration::from_millis(200)).await, Ok(()));
        let took = begun.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(10),
            "{took:?}"
        );
    }
}
