//! CSI driver discovery and registration: every few seconds the agent looks for driver
//! sockets `<plugin dir>/<name>/csi.sock`, asks each its name (GetPluginInfo) and its node
//! id and topology (NodeGetInfo), and records them on the node's CSINode
//! (`storage.k8s.io/v1`, named like the node: `spec.drivers[{name, nodeID, topologyKeys}]`)
//! and as the Node's topology labels. The drivers found are shared with the provisioner
//! ([`Drivers`]). A driver that does not answer is left out until it does; nothing is
//! removed from the API while the API cannot be read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::storage::v1::{CSINode, CSINodeDriver, CSINodeSpec};
use kube::api::{Api, Patch, PatchParams, PostParams};

use bosun_csi::client::Client;

/// A driver running on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverInfo {
    pub socket: PathBuf,
    pub node_id: String,
    /// NodeGetInfo's accessible topology: the segments volumes made here carry.
    pub topology: BTreeMap<String, String>,
}

/// The drivers of this node, by name.
pub type Drivers = Arc<Mutex<BTreeMap<String, DriverInfo>>>;

/// How often the plugin directory is looked at.
const SCAN: Duration = Duration::from_secs(3);

/// Asks the driver listening on `socket` who it is.
async fn probe(socket: &Path) -> Result<(String, DriverInfo), bosun_csi::client::ClientError> {
    let mut c = Client::connect(socket).await?;
    let name = c.get_plugin_info().await?.name;
    let info = c.node_get_info().await?;
    let topology = info
        .accessible_topology
        .map(|t| t.segments.into_iter().collect())
        .unwrap_or_default();
    Ok((
        name,
        DriverInfo {
            socket: socket.to_path_buf(),
            node_id: info.node_id,
            topology,
        },
    ))
}

/// The drivers answering under `dir` now.
async fn scan(dir: &Path) -> BTreeMap<String, DriverInfo> {
    let mut found = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in rd.flatten() {
        let socket = entry.path().join("csi.sock");
        if !socket.exists() {
            continue;
        }
        let probed = tokio::time::timeout(Duration::from_secs(5), probe(&socket)).await;
        match probed {
            Ok(Ok((name, info))) => {
                let dir_name = entry.file_name().to_string_lossy().into_owned();
                if name != dir_name {
                    tracing::warn!(socket = %socket.display(), %name, "a CSI driver's name differs from its directory; using its name");
                }
                found.insert(name, info);
            }
            Ok(Err(e)) => {
                tracing::debug!(socket = %socket.display(), error = %e, "CSI driver not answering")
            }
            Err(_) => tracing::debug!(socket = %socket.display(), "CSI driver timed out"),
        }
    }
    found
}

/// The CSINode's `spec.drivers` for `drivers`.
pub fn csinode_drivers(drivers: &BTreeMap<String, DriverInfo>) -> Vec<CSINodeDriver> {
    drivers
        .iter()
        .map(|(name, d)| CSINodeDriver {
            name: name.clone(),
            node_id: d.node_id.clone(),
            topology_keys: (!d.topology.is_empty()).then(|| d.topology.keys().cloned().collect()),
            allocatable: None,
        })
        .collect()
}

/// Writes the CSINode and the Node's topology labels for `drivers`.
async fn register(
    client: &kube::Client,
    node: &str,
    drivers: &BTreeMap<String, DriverInfo>,
) -> Result<(), kube::Error> {
    let api: Api<CSINode> = Api::all(client.clone());
    let spec = CSINodeSpec {
        drivers: csinode_drivers(drivers),
    };
    match api.get_opt(node).await? {
        Some(mut existing) if existing.spec != spec => {
            existing.spec = spec;
            api.replace(node, &PostParams::default(), &existing).await?;
        }
        Some(_) => {}
        None => {
            let mut object = CSINode::default();
            object.metadata.name = Some(node.to_string());
            object.spec = spec;
            api.create(&PostParams::default(), &object).await?;
        }
    }
    let labels: BTreeMap<&String, &String> =
        drivers.values().flat_map(|d| d.topology.iter()).collect();
    if !labels.is_empty() {
        let nodes: Api<Node> = Api::all(client.clone());
        let patch = serde_json::json!({"metadata": {"labels": labels}});
        nodes
            .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    Ok(())
}

/// Keeps `drivers` and the node's CSINode up to date with the sockets under `dir`.
pub async fn run(client: kube::Client, node: String, dir: PathBuf, drivers: Drivers) {
    let mut registered: Option<BTreeMap<String, DriverInfo>> = None;
    let mut last_error = String::new();
    loop {
        let found = scan(&dir).await;
        {
            let mut shared = drivers.lock().unwrap_or_else(|p| p.into_inner());
            if *shared != found {
                tracing::info!(drivers = ?found.keys().collect::<Vec<_>>(), "CSI drivers on this node");
                *shared = found.clone();
            }
        }
        if registered.as_ref() != Some(&found) {
            match register(&client, &node, &found).await {
                Ok(()) => registered = Some(found),
                Err(e) => {
                    let e = e.to_string();
                    if e != last_error {
                        tracing::warn!(error = %e, "registering CSI drivers on the CSINode; retrying");
                        last_error = e;
                    }
                }
            }
        }
        tokio::time::sleep(SCAN).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csinode_lists_each_driver_with_its_topology_keys() {
        let mut drivers = BTreeMap::new();
        drivers.insert(
            "local.csi.bosun.dev".to_string(),
            DriverInfo {
                socket: "/s".into(),
                node_id: "n1".into(),
                topology: [("topology.bosun.dev/node".to_string(), "n1".to_string())].into(),
            },
        );
        let got = csinode_drivers(&drivers);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].name, "local.csi.bosun.dev");
        assert_eq!(got[0].node_id, "n1");
        assert_eq!(
            got[0].topology_keys,
            Some(vec!["topology.bosun.dev/node".to_string()])
        );
    }
}
