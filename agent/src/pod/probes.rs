//! The pod worker's side of probes: registers a container's probes when it starts (or is
//! adopted), turns readiness into the container's `ready`, and kills a container whose
//! liveness or startup probe failed (preStop, SIGTERM, the probe's or pod's grace period,
//! SIGKILL) so restartPolicy applies, with the probe's message recorded in its terminated state.
//! Also builds what probes and lifecycle hooks run against ([`ProbeTargets`]).

use std::sync::Arc;
use std::time::Duration;

use super::container_spec::{init_spec, ContainerInputs, ContainerPaths};
use super::event::PodEvent;
use super::node::NodeContext;
use super::worker::PodWorker;
use crate::probe::exec::ExecTarget;
use crate::probe::net::NetTarget;
use crate::probe::spec::container_probes;
use crate::probe::{ContainerProbes, ProbeKind, ProbeTargets, ProbeUpdate};
use crate::spec::{qos_class, Container, Pod};

/// How an exec (probe, hook, `kubectl exec`) enters container `container` (at `field`) of
/// `pod` whose PID 1 is `pid`: its namespaces, cgroup and identity (env, cwd, user,
/// capabilities; argv is the caller's).
pub fn exec_target(
    ctx: &NodeContext,
    pod: &Pod,
    uid: &str,
    field: &str,
    container: &Container,
    pid: i32,
) -> ExecTarget {
    let name = &container.name;
    let process = match ctx.images.resolve(&container.image) {
        Ok(image) => {
            let dir = ctx.container_dir(uid, name);
            let paths = ContainerPaths {
                stdout_fifo: dir.join("stdout.fifo"),
                stderr_fifo: dir.join("stderr.fifo"),
                dir,
            };
            let inputs = ContainerInputs {
                mounts: &[],
                // Literal values only: exec probes, hooks and `kubectl exec` do not see
                // valueFrom variables.
                env: &crate::spec::resolve_env(&container.env),
            };
            match init_spec(
                String::new(),
                pod,
                container,
                field,
                &image,
                &paths,
                &inputs,
            ) {
                Ok(spec) => spec.process,
                Err(_) => Default::default(),
            }
        }
        Err(_) => Default::default(),
    };
    let rel = ctx.pod_cgroup(uid, qos_class(&pod.spec)).join(name);
    let cgroup = ctx.cgroups.open(&rel);
    ExecTarget {
        init_exe: ctx.config.init_exe.clone(),
        pid,
        cgroup_tasks: cgroup.v1_task_files(),
        cgroup_v2_dir: cgroup.v2_dir(),
        process,
    }
}

/// [`exec_target`] for container `name` of `pod` (spec field found by name).
pub fn exec_target_by_name(
    ctx: &NodeContext,
    pod: &Pod,
    uid: &str,
    name: &str,
    pid: i32,
) -> Option<ExecTarget> {
    let (field, container) = pod.spec.all_containers().find(|(_, c)| c.name == name)?;
    Some(exec_target(ctx, pod, uid, &field, container, pid))
}

impl PodWorker {
    /// Registers the probes of running container `name` (none: it is ready once running).
    pub(super) fn register_probes(&mut self, name: &str) {
        let Some((field, container, init)) = self.container_spec(name) else {
            return;
        };
        let Some(pid) = self.running.get(name).map(|r| r.pid) else {
            return;
        };
        let specs = match container_probes(&container) {
            Ok(s) if !init => s,
            Ok(_) => Vec::new(),
            Err(e) => {
                tracing::warn!(pod = %self.pod.metadata.name, container = name, error = %e, "probes ignored");
                Vec::new()
            }
        };
        let has = |k: ProbeKind| specs.iter().any(|s| s.kind == k);
        let (has_ready, has_startup) = (has(ProbeKind::Readiness), has(ProbeKind::Startup));
        if let Some(r) = self.running.get_mut(name) {
            r.ready = !has_ready;
            r.startup_passed = !has_startup;
        }
        if specs.is_empty() {
            return;
        }
        let targets = self.container_targets(&field, &container, pid);
        let tx = self.events_tx.clone();
        let handle = self.ctx.probes().add(ContainerProbes {
            container: name.to_string(),
            pid,
            probes: specs,
            targets,
            updates: Arc::new(move |u| {
                let _ = tx.send(PodEvent::Probe(u));
            }),
        });
        if let Some(r) = self.running.get_mut(name) {
            r.probes = Some(handle);
        }
    }

    /// How probes and hooks reach container `container` (at `field`) whose PID 1 is `pid`:
    /// the pod IP or netns for network actions, its namespaces, cgroup and identity for exec.
    pub(super) fn container_targets(
        &self,
        field: &str,
        container: &crate::spec::Container,
        pid: i32,
    ) -> Arc<ProbeTargets> {
        Arc::new(ProbeTargets {
            net: NetTarget {
                pod_ip: self.pod_ip(),
                netns: self.pod_netns(),
                node_netns: self.ctx.config.node_netns.clone(),
            },
            exec: exec_target(&self.ctx, &self.pod, &self.uid, field, container, pid),
        })
    }

    /// The pod IP probes dial from the node (none without pod networking: they then dial
    /// 127.0.0.1 inside the pod's netns).
    pub(super) fn pod_ip(&self) -> Option<std::net::IpAddr> {
        self.lock_status()
            .pod_ip
            .as_deref()
            .and_then(|ip| ip.parse().ok())
    }

    /// Whether container `name` passes its readiness and startup probes.
    pub(super) fn probe_ready(&self, name: &str) -> bool {
        self.running
            .get(name)
            .is_some_and(|r| r.ready && r.startup_passed)
    }

    pub(super) fn on_probe(&mut self, u: ProbeUpdate) {
        let pod = self.pod.metadata.name.clone();
        let grace = self.probe_grace(&u.container, u.kind);
        let Some(r) = self.running.get_mut(&u.container) else {
            return;
        };
        if r.pid != u.pid {
            return;
        }
        // Updates are verdict changes and failed attempts: only a change to healthy passed.
        if !(u.changed && u.healthy) {
            self.tell_unhealthy(&u);
        }
        if !u.changed {
            return;
        }
        tracing::info!(pod = %pod, container = %u.container, probe = u.kind.name(), healthy = u.healthy, message = %u.message, "probe verdict");
        let Some(r) = self.running.get_mut(&u.container) else {
            return;
        };
        match (u.kind, u.healthy) {
            (ProbeKind::Readiness, ready) => r.ready = ready,
            (ProbeKind::Startup, true) => r.startup_passed = true,
            (ProbeKind::Liveness | ProbeKind::Startup, false) => {
                if r.kill_reason.is_some() {
                    return;
                }
                r.kill_reason = Some(format!("{}; container will be restarted", u.message));
                r.ready = false;
                // preStop, SIGTERM, then SIGKILL at the end of the probe's grace period.
                self.spawn_stop(&u.container, grace);
            }
            (ProbeKind::Liveness, true) => {}
        }
    }

    /// kubelet's events of a failed probe attempt: `Unhealthy` (`Liveness probe failed: …`),
    /// and when it fails a liveness or startup probe whose container is not being killed yet,
    /// `Killing`.
    fn tell_unhealthy(&self, u: &ProbeUpdate) {
        let field = self
            .container_spec(&u.container)
            .map(|(_, _, init)| match init {
                true => format!("spec.initContainers{{{}}}", u.container),
                false => format!("spec.containers{{{}}}", u.container),
            })
            .unwrap_or_default();
        let mut message = u.message.clone();
        if let Some(first) = message.get(..1).map(str::to_uppercase) {
            message.replace_range(..1, &first);
        }
        let killing = u.changed
            && !u.healthy
            && u.kind != ProbeKind::Readiness
            && self
                .running
                .get(&u.container)
                .is_some_and(|r| r.kill_reason.is_none());
        let mut st = self.lock_status();
        st.tell("Unhealthy", message, field.clone(), false);
        if killing {
            let text = format!(
                "Container {} failed {} probe, will be restarted",
                u.container,
                u.kind.name()
            );
            st.tell("Killing", text, field, true);
        }
    }

    /// Probe-level terminationGracePeriodSeconds, else the pod's.
    fn probe_grace(&self, name: &str, kind: ProbeKind) -> Duration {
        let probe_level = self.container_spec(name).and_then(|(_, c, _)| {
            let p = match kind {
                ProbeKind::Liveness => c.liveness_probe,
                ProbeKind::Startup => c.startup_probe,
                ProbeKind::Readiness => None,
            };
            p.and_then(|p| p.termination_grace_period_seconds)
        });
        let secs = probe_level.unwrap_or_else(|| self.pod.spec.termination_grace_period_seconds());
        Duration::from_secs(u64::try_from(secs).unwrap_or(0))
    }
}
