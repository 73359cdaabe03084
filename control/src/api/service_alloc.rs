//! What kube-apiserver allocates for Services: a ClusterIP from the service CIDR
//! (`--service-cluster-ip-range`, default 10.96.0.0/12) and node ports from
//! `--service-node-port-range` (default 30000-32767) for NodePort and LoadBalancer Services.
//! Each address and port in use is a reservation key in the store (`/registry/bosun.internal/
//! …`, not an API resource), created atomically, so two creates — in one process or in several
//! over one etcd — never get the same one. Reservations go when the Service is deleted; an
//! update keeps what was allocated (a replace without `clusterIP` keeps the old one, as
//! kube-apiserver does) and refuses to change a ClusterIP.

use std::net::Ipv4Addr;

use bytes::Bytes;
use serde_json::{json, Value};

use crate::status::{ApiError, FieldCause};
use crate::store::{self, Store};

const IP_KEYS: &str = "/registry/bosun.internal/serviceips/";
const PORT_KEYS: &str = "/registry/bosun.internal/nodeports/";

/// The service address range and node port range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceNetwork {
    base: u32,
    prefix: u8,
    pub node_ports: (u16, u16),
}

impl Default for ServiceNetwork {
    fn default() -> Self {
        ServiceNetwork {
            base: u32::from(Ipv4Addr::new(10, 96, 0, 0)),
            prefix: 12,
            node_ports: (30000, 32767),
        }
    }
}

impl ServiceNetwork {
    /// `10.96.0.0/12` and `30000-32767`.
    pub fn parse(cidr: &str, ports: &str) -> Result<ServiceNetwork, String> {
        let (ip, prefix) = cidr
            .split_once('/')
            .ok_or_else(|| format!("{cidr:?} is not a CIDR (a.b.c.d/n)"))?;
        let ip: Ipv4Addr = ip.parse().map_err(|e| format!("{cidr:?}: {e}"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (8..=30).contains(p))
            .ok_or_else(|| format!("{cidr:?}: the prefix must be 8 to 30"))?;
        let (low, high) = ports
            .split_once('-')
            .and_then(|(l, h)| Some((l.parse::<u16>().ok()?, h.parse::<u16>().ok()?)))
            .filter(|(l, h)| l <= h && *l > 0)
            .ok_or_else(|| format!("{ports:?} is not a port range (low-high)"))?;
        let mask = u32::MAX << (32 - prefix);
        Ok(ServiceNetwork {
            base: u32::from(ip) & mask,
            prefix,
            node_ports: (low, high),
        })
    }

    fn size(&self) -> u32 {
        1 << (32 - self.prefix)
    }

    /// The range as text, for messages.
    pub fn cidr(&self) -> String {
        format!("{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }

    /// The first usable address: the `kubernetes` Service's.
    pub fn first(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base + 1)
    }

    /// The tenth address: the `kube-dns` Service's (kubeadm's choice), which every node's
    /// agent serves as the cluster DNS address (`--cluster-dns`).
    pub fn dns(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base + 10)
    }

    fn contains(&self, ip: Ipv4Addr) -> bool {
        let offset = u32::from(ip).wrapping_sub(self.base);
        u32::from(ip) >= self.base && offset > 0 && offset < self.size() - 1
    }
}

/// Whether `object` is a Service.
pub fn is_service(object: &Value) -> bool {
    object["kind"] == "Service" && object["apiVersion"] == "v1"
}

fn owner(object: &Value) -> Bytes {
    Bytes::from(format!(
        "{}/{}",
        object["metadata"]["namespace"].as_str().unwrap_or(""),
        object["metadata"]["name"].as_str().unwrap_or("")
    ))
}

fn uses_node_ports(spec: &Value) -> bool {
    matches!(spec["type"].as_str(), Some("NodePort" | "LoadBalancer"))
}

/// The reservation keys a stored Service holds.
fn held_keys(object: &Value) -> Vec<String> {
    let spec = &object["spec"];
    let mut keys = Vec::new();
    if let Some(ip) = spec["clusterIP"]
        .as_str()
        .filter(|ip| ip.parse::<Ipv4Addr>().is_ok())
    {
        keys.push(format!("{IP_KEYS}{ip}"));
    }
    for port in spec["ports"].as_array().into_iter().flatten() {
        if let Some(n) = port["nodePort"].as_u64().filter(|n| *n != 0) {
            keys.push(format!("{PORT_KEYS}{n}"));
        }
    }
    keys
}

/// Allocations of one request: released again if the request fails.
#[derive(Default)]
pub struct Reserved(Vec<String>);

impl Reserved {
    /// Gives back what this request reserved.
    pub async fn release(self, store: &dyn Store) {
        for key in self.0 {
            let _ = store.delete(&key, None).await;
        }
    }
}

async fn reserve(store: &dyn Store, key: String, holder: Bytes) -> Result<bool, ApiError> {
    match store.create(&key, holder).await {
        Ok(_) => Ok(true),
        Err(store::Error::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(super::map_store_error(e)),
    }
}

fn invalid(object: &Value, field: &str, value: &str, why: &str) -> ApiError {
    ApiError::invalid(
        "Service",
        "Service",
        object["metadata"]["name"].as_str().unwrap_or(""),
        &[FieldCause::invalid(field, value, why)],
    )
}

/// Fills in and reserves the ClusterIP and node ports of a Service being created (or the ones
/// an update adds). `old` is the stored Service for an update.
pub async fn allocate(
    store: &dyn Store,
    network: &ServiceNetwork,
    object: &mut Value,
    old: Option<&Value>,
) -> Result<Reserved, ApiError> {
    let mut reserved = Reserved::default();
    match allocate_into(store, network, object, old, &mut reserved).await {
        Ok(()) => Ok(reserved),
        Err(e) => {
            reserved.release(store).await;
            Err(e)
        }
    }
}

async fn allocate_into(
    store: &dyn Store,
    network: &ServiceNetwork,
    object: &mut Value,
    old: Option<&Value>,
    reserved: &mut Reserved,
) -> Result<(), ApiError> {
    let holder = owner(object);
    let external = object["spec"]["type"] == "ExternalName";
    if let Some(old) = old {
        let had = old["spec"]["clusterIP"].as_str().unwrap_or("");
        match object["spec"]["clusterIP"].as_str() {
            None | Some("") if !had.is_empty() && !external => {
                object["spec"]["clusterIP"] = json!(had);
                object["spec"]["clusterIPs"] = old["spec"]["clusterIPs"].clone();
            }
            Some(new) if !had.is_empty() && new != had && !external => {
                return Err(invalid(
                    object,
                    "spec.clusterIPs[0]",
                    new,
                    "may not change once set",
                ));
            }
            _ => {}
        }
        // Ports keep their node port when the update names none.
        let old_ports = old["spec"]["ports"].as_array().cloned().unwrap_or_default();
        if uses_node_ports(&object["spec"]) {
            for port in object["spec"]["ports"].as_array_mut().into_iter().flatten() {
                if port["nodePort"].as_u64().unwrap_or(0) == 0 {
                    if let Some(was) = old_ports
                        .iter()
                        .find(|o| o["port"] == port["port"] && o["protocol"] == port["protocol"])
                    {
                        port["nodePort"] = was["nodePort"].clone();
                    }
                }
            }
        }
    }
    let kept = old.map(held_keys).unwrap_or_default();
    if external {
        if let Some(spec) = object["spec"].as_object_mut() {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
    } else {
        match object["spec"]["clusterIP"].as_str().unwrap_or("") {
            "None" => object["spec"]["clusterIPs"] = json!(["None"]),
            "" => {
                let ip = pick_ip(store, network, &holder, reserved).await?;
                object["spec"]["clusterIP"] = json!(ip.to_string());
                object["spec"]["clusterIPs"] = json!([ip.to_string()]);
            }
            text => {
                let key = format!("{IP_KEYS}{text}");
                if !kept.contains(&key) {
                    let ip: Ipv4Addr = text.parse().map_err(|_| {
                        invalid(
                            object,
                            "spec.clusterIPs[0]",
                            text,
                            "must be a valid IP address",
                        )
                    })?;
                    if !network.contains(ip) {
                        let why = format!("failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}", network.cidr());
                        return Err(invalid(
                            object,
                            "spec.clusterIPs",
                            &format!("[]string{{\"{ip}\"}}"),
                            &why,
                        ));
                    }
                    if !reserve(store, key.clone(), holder.clone()).await? {
                        let why =
                            format!("failed to allocate IP {ip}: provided IP is already allocated");
                        return Err(invalid(
                            object,
                            "spec.clusterIPs",
                            &format!("[]string{{\"{ip}\"}}"),
                            &why,
                        ));
                    }
                    reserved.0.push(key);
                }
                object["spec"]["clusterIPs"] = json!([text]);
            }
        }
        if object["spec"]["clusterIP"] != "None" || old.is_none() {
            object["spec"]["ipFamilies"] = json!(["IPv4"]);
            object["spec"]["ipFamilyPolicy"] = json!("SingleStack");
        }
    }
    if uses_node_ports(&object["spec"]) {
        let count = object["spec"]["ports"].as_array().map_or(0, Vec::len);
        for i in 0..count {
            // 0 is unset (protobuf bodies carry it for every port).
            let wanted = object["spec"]["ports"][i]["nodePort"]
                .as_u64()
                .filter(|n| *n != 0);
            let port = match wanted {
                Some(n) => {
                    let key = format!("{PORT_KEYS}{n}");
                    let (low, high) = network.node_ports;
                    if !(u64::from(low)..=u64::from(high)).contains(&n) {
                        let why = format!("provided port is not in the valid range. The range of valid ports is {low}-{high}");
                        return Err(invalid(
                            object,
                            &format!("spec.ports[{i}].nodePort"),
                            &n.to_string(),
                            &why,
                        ));
                    }
                    if !kept.contains(&key) {
                        if !reserve(store, key.clone(), holder.clone()).await? {
                            return Err(invalid(
                                object,
                                &format!("spec.ports[{i}].nodePort"),
                                &n.to_string(),
                                "provided port is already allocated",
                            ));
                        }
                        reserved.0.push(key);
                    }
                    n
                }
                None => pick_port(store, network, &holder, reserved).await?,
            };
            object["spec"]["ports"][i]["nodePort"] = json!(port);
        }
    } else if let Some(ports) = object["spec"]["ports"].as_array_mut() {
        for port in ports {
            if let Some(p) = port.as_object_mut() {
                p.remove("nodePort");
            }
        }
    }
    Ok(())
}

async fn pick_ip(
    store: &dyn Store,
    network: &ServiceNetwork,
    holder: &Bytes,
    reserved: &mut Reserved,
) -> Result<Ipv4Addr, ApiError> {
    // Offsets 2.. (1 is the `kubernetes` Service's, the last is broadcast), from a random start.
    let usable = network.size() - 3;
    let start = fastrand::u32(0..usable);
    for step in 0..usable.min(4096) {
        let ip = Ipv4Addr::from(network.base + 2 + (start + step) % usable);
        let key = format!("{IP_KEYS}{ip}");
        if reserve(store, key.clone(), holder.clone()).await? {
            reserved.0.push(key);
            return Ok(ip);
        }
    }
    Err(ApiError::internal(format!(
        "failed to allocate a serviceIP: range is full ({})",
        network.cidr()
    )))
}

async fn pick_port(
    store: &dyn Store,
    network: &ServiceNetwork,
    holder: &Bytes,
    reserved: &mut Reserved,
) -> Result<u64, ApiError> {
    let (low, high) = network.node_ports;
    let count = u32::from(high - low) + 1;
    let start = fastrand::u32(0..count);
    for step in 0..count {
        let port = u64::from(low) + u64::from((start + step) % count);
        let key = format!("{PORT_KEYS}{port}");
        if reserve(store, key.clone(), holder.clone()).await? {
            reserved.0.push(key);
            return Ok(port);
        }
    }
    Err(ApiError::internal(
        "failed to allocate a nodePort: range is full",
    ))
}

/// Releases what `old` held and `new` (the Service after an update; `None` after a delete)
/// no longer does.
pub async fn release(store: &dyn Store, old: &Value, new: Option<&Value>) {
    let keep = new.map(held_keys).unwrap_or_default();
    for key in held_keys(old) {
        if !keep.contains(&key) {
            if let Err(error) = store.delete(&key, None).await {
                if !matches!(error, store::Error::NotFound { .. }) {
                    tracing::warn!(%key, %error, "releasing a service allocation");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_bound_the_addresses() {
        let n = ServiceNetwork::parse("10.96.5.7/12", "30000-30010").unwrap();
        assert_eq!(n.cidr(), "10.96.0.0/12");
        assert_eq!(n.first(), Ipv4Addr::new(10, 96, 0, 1));
        assert!(n.contains(Ipv4Addr::new(10, 100, 1, 1)));
        assert!(!n.contains(Ipv4Addr::new(10, 96, 0, 0)));
        assert!(!n.contains(Ipv4Addr::new(10, 111, 255, 255)));
        assert!(!n.contains(Ipv4Addr::new(10, 112, 0, 1)));
        assert_eq!(n.node_ports, (30000, 30010));
        assert!(ServiceNetwork::parse("10.96.0.0", "1-2").is_err());
        assert!(ServiceNetwork::parse("10.96.0.0/40", "1-2").is_err());
        assert!(ServiceNetwork::parse("10.96.0.0/16", "9-2").is_err());
    }
}
