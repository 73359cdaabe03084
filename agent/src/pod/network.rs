//! The pod worker's side of networking: CNI ADD when the sandbox is created (pod IPs into the
//! status), DEL on teardown, always from the node's network namespace. With `--network none`
//! pods keep a private netns with only `lo`. A hostNetwork pod has no attachment: it lives in
//! the node's netns and its IP is the node's (`--node-ip`, else the node's first global
//! address, as kubelet reports it).

use std::net::IpAddr;
use std::path::PathBuf;

use super::node::NodeContext;
use super::worker::PodWorker;
use crate::network::{PodNetworkRef, PortMapping};
use crate::spec::{Pod, SpecError};
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
            netns: self.pod_netns(),
            ifname: "eth0".into(),
            namespace: self.pod.metadata.namespace.clone(),
            name: self.pod.metadata.name.clone(),
            port_mappings,
        }
    }
}

impl PodWorker {
    /// The network namespace the pod's containers live in.
    pub(super) fn pod_netns(&self) -> PathBuf {
        if !self.pod.spec.host_network {
            return self.sandbox.ns_path("net");
        }
        let node = self.ctx.config.node_netns.clone();
        node.unwrap_or_else(|| PathBuf::from("/proc/self/ns/net"))
    }
}

/// Refuses host ports when nothing would map them: without pod networking (`--network none`)
/// no CNI portmap runs (a hostNetwork pod listens on the node itself and needs none).
pub(super) fn check_host_ports(pod: &Pod, has_network: bool) -> Result<(), SpecError> {
    if has_network || pod.spec.host_network {
        return Ok(());
    }
    for (path, c) in pod.spec.all_containers() {
        for (i, port) in c.ports.iter().enumerate() {
            if port.host_port.is_some_and(|p| p != 0) {
                let field = format!("{path}.ports[{i}].hostPort");
                return Err(SpecError::new(
                    field,
                    "needs pod networking (--network cni)",
                ));
            }
        }
    }
    Ok(())
}

/// The IPs of a hostNetwork pod: the node's (blocking; call from a blocking task).
pub(super) fn node_ips(ctx: &NodeContext) -> Result<Vec<IpAddr>, String> {
    if let Some(ip) = ctx.config.node_ip {
        return Ok(vec![ip]);
    }
    let found = in_netns(ctx.config.node_netns.as_deref(), first_global_address)
        .map_err(|e| format!("entering the node netns: {e}"))?
        .map_err(|e| format!("listing the node's addresses: {e}"))?;
    if found.is_none() {
        tracing::warn!(
            "the node has no global address: hostNetwork pods get no IP (set --node-ip)"
        );
    }
    Ok(found.into_iter().collect())
}

/// The node's first global IPv4 address, preferring interfaces other than `lo`.
fn first_global_address() -> nix::Result<Option<IpAddr>> {
    let mut on_lo = None;
    for ifa in nix::ifaddrs::getifaddrs()? {
        let Some(v4) = ifa.address.as_ref().and_then(|a| a.as_sockaddr_in()) else {
            continue;
        };
        let ip = v4.ip();
        if ip.is_loopback() || ip.is_link_local() || ip.is_unspecified() {
            continue;
        }
        if ifa.interface_name != "lo" {
            return Ok(Some(IpAddr::V4(ip)));
        }
        on_lo.get_or_insert(IpAddr::V4(ip));
    }
    Ok(on_lo)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports_need_pod_networking() {
        let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a, image: x, ports: [{containerPort: 80}, {containerPort: 81, hostPort: 8081}]}]\n";
        let mut pod = crate::spec::parse_pod(yaml).expect("valid pod");
        let err = check_host_ports(&pod, false).expect_err("no network");
        assert_eq!(err.field, "spec.containers[0].ports[1].hostPort");
        assert_eq!(check_host_ports(&pod, true), Ok(()));
        pod.spec.containers[0].ports[1].host_port = Some(81);
        pod.spec.host_network = true;
        assert_eq!(check_host_ports(&pod, false), Ok(()));
    }
}
