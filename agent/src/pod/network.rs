//! The pod worker's side of networking: CNI ADD when the sandbox is created (pod IPs into the
//! status), DEL on teardown, always from the node's network namespace. With `--network none`
//! pods keep a private netns with only `lo`.

use std::net::IpAddr;

use super::node::NodeContext;
use super::worker::PodWorker;
use crate::network::{PodNetworkRef, PortMapping};
use crate::sys::netns_exec::in_netns;

impl PodWorker {
    /// This pod's attachment, as the CNI plugins see it.
    pub fn network_ref(&self) -> PodNetworkRef {
        let port_mappings = self
            .pod
            .spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter())
            .filter_map(|p| {
                let host_port = u16::try_from(p.host_port?).ok().filter(|h| *h > 0)?;
                Some(PortMapping {
                    host_port,
                    container_port: u16::try_from(p.container_port).ok()?,
                    protocol: format!("{:?}", p.protocol).to_lowercase(),
                    host_ip: p.host_ip.clone().filter(|h| !h.is_empty()),
                })
            })
            .collect();
        PodNetworkRef {
            container_id: self.uid.clone(),
            netns: self.sandbox.ns_path("net"),
            ifname: "eth0".into(),
            namespace: self.pod.metadata.namespace.clone(),
            name: self.pod.metadata.name.clone(),
            port_mappings,
        }
    }
}

/// CNI ADD (blocking; call from a blocking task). Returns the pod's IPs.
pub(super) fn network_add(ctx: &NodeContext, pod: &PodNetworkRef) -> Result<Vec<IpAddr>, String> {
    let Some(net) = &ctx.network else {
        return Ok(Vec::new());
    };
    in_netns(ctx.config.node_netns.as_deref(), || net.add(pod))
        .map_err(|e| format!("entering the node netns: {e}"))?
        .map(|s| s.ips)
        .map_err(|e| format!("CNI ADD: {e}"))
}

/// CNI DEL (blocking); errors are logged, teardown goes on.
pub(super) fn network_del(ctx: &NodeContext, pod: &PodNetworkRef) {
    let Some(net) = &ctx.network else { return };
    match in_netns(ctx.config.node_netns.as_deref(), || net.del(pod)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(pod = %pod.name, error = %e, "CNI DEL failed"),
        Err(e) => tracing::warn!(pod = %pod.name, error = %e, "entering the node netns"),
    }
}
