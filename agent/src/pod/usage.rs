//! The pods' resource usage for the kubelet API's `/metrics/resource`: every pod with a
//! running container, read from its pod cgroup and its running containers' cgroups (the
//! layout [`super::NodeContext::pod_cgroup`] names), plus the node's.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{ContainerState, NodeContext, PodStatus};
use crate::metrics::resource::{ContainerSample, PodSample, ResourceSample, ResourceSource};
use crate::runtime::cgroup_stats::node_usage;
use crate::spec::QosClass;

/// Reads the cgroups of the pods `statuses` lists, at each call.
pub fn resource_source(
    ctx: Arc<NodeContext>,
    statuses: Arc<dyn Fn() -> Vec<PodStatus> + Send + Sync>,
) -> ResourceSource {
    Arc::new(move || sample(&ctx, &statuses()))
}

fn qos(name: &str) -> QosClass {
    match name {
        "Guaranteed" => QosClass::Guaranteed,
        "Burstable" => QosClass::Burstable,
        _ => QosClass::BestEffort,
    }
}

fn sample(ctx: &NodeContext, statuses: &[PodStatus]) -> ResourceSample {
    let mut out = ResourceSample {
        timestamp_ms: epoch_secs(SystemTime::now()).map_or(0, |s| (s * 1000.0) as i64),
        ..ResourceSample::default()
    };
    match node_usage() {
        Ok(n) => out.node = Some(n),
        Err(e) => {
            tracing::debug!(error = %e, "node usage");
            out.errors += 1;
        }
    }
    for st in statuses {
        let running: Vec<_> = (st.container_statuses.iter())
            .filter_map(|c| match &c.state {
                ContainerState::Running { started_at } => Some((c, started_at)),
                _ => None,
            })
            .collect();
        if running.is_empty() {
            continue;
        }
        let pod_rel = ctx.pod_cgroup(&st.uid, qos(&st.qos_class));
        let usage = match ctx.cgroups.open(&pod_rel).usage() {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(pod = %st.name, error = %e, "pod usage");
                out.errors += 1;
                continue;
            }
        };
        let mut containers = Vec::new();
        for (c, started_at) in running {
            match ctx.cgroups.open(&pod_rel.join(&c.name)).usage() {
                Ok(usage) => containers.push(ContainerSample {
                    name: c.name.clone(),
                    usage,
                    start_time: humantime::parse_rfc3339_weak(started_at)
                        .ok()
                        .and_then(epoch_secs)
                        .map(f64::floor),
                }),
                Err(e) => {
                    tracing::debug!(pod = %st.name, container = %c.name, error = %e, "container usage");
                    out.errors += 1;
                }
            }
        }
        out.pods.push(PodSample {
            namespace: st.namespace.clone(),
            name: st.name.clone(),
            usage,
            containers,
        });
    }
    out
}

fn epoch_secs(t: SystemTime) -> Option<f64> {
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs_f64())
}
