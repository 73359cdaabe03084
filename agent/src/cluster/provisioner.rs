//! The node's volume provisioner (kube's external-provisioner and external-resizer, run by
//! the agent because a `bosun-csi-local` volume lives on one node; ARCHITECTURE.md
//! "Volumes"). Every few seconds, for the drivers of this node ([`Drivers`]):
//! 1. a Pending claim whose `storage-provisioner` names one of them and whose
//!    `selected-node` is this node (an Immediate claim with none gets this node) gets a
//!    volume: CreateVolume `pvc-<claim uid>`, then the PV `pvc-<claim uid>` pre-bound to the
//!    claim (`pv_for`), or a `ProvisioningFailed` Warning event on the claim;
//! 2. a Released PV of reclaimPolicy Delete that one of them provisioned on this node is
//!    deleted: DeleteVolume, then the PV;
//! 3. a Bound claim whose request grew past its capacity is expanded: ControllerExpandVolume,
//!    the PV's capacity, NodeExpandVolume where the volume is staged here, the claim's
//!    `status.capacity`.
//!
//! What the API cannot be read for is left as it is until the next pass.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use bosun_csi::client::{Client, MountCapability};
use bosun_csi::proto;

use super::csi_drivers::{DriverInfo, Drivers};
use crate::pod::NodeContext;
use crate::spec::Quantity;

pub const STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
pub const BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";

const PASS: Duration = Duration::from_secs(2);
/// A pass (its API and driver calls) that takes longer is abandoned and made again.
const PASS_LIMIT: Duration = Duration::from_secs(30);

fn annotation<'a>(meta: &'a kube::api::ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// The claim's requested bytes.
fn requested(claim: &PersistentVolumeClaim) -> Option<i64> {
    let q = claim
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")?;
    Quantity::new(q.0.clone())
        .bytes()
        .ok()
        .and_then(|b| i64::try_from(b).ok())
}

fn capacity_of(claim: &PersistentVolumeClaim) -> Option<i64> {
    let q = claim.status.as_ref()?.capacity.as_ref()?.get("storage")?;
    Quantity::new(q.0.clone())
        .bytes()
        .ok()
        .and_then(|b| i64::try_from(b).ok())
}

/// The PV of a volume the driver made for `claim` (ARCHITECTURE.md "Volumes", step 2).
pub fn pv_for(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    driver: &str,
    volume: &proto::Volume,
) -> Result<PersistentVolume, serde_json::Error> {
    let meta = &claim.metadata;
    let spec = claim.spec.clone().unwrap_or_default();
    let fs_type = class
        .parameters
        .as_ref()
        .and_then(|p| p.get("csi.storage.k8s.io/fstype").cloned())
        .unwrap_or_else(|| "ext4".to_string());
    let terms: Vec<Value> = volume
        .accessible_topology
        .iter()
        .map(|t| {
            let exprs: Vec<Value> = t
                .segments
                .iter()
                .collect::<BTreeMap<_, _>>()
                .into_iter()
                .map(|(k, v)| json!({"key": k, "operator": "In", "values": [v]}))
                .collect();
            json!({"matchExpressions": exprs})
        })
        .collect();
    let mut pv = json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": format!("pvc-{}", meta.uid.as_deref().unwrap_or_default()),
            "annotations": {PROVISIONED_BY: driver},
        },
        "spec": {
            "capacity": {"storage": Quantity::from_bytes(volume.capacity_bytes)},
            "accessModes": spec.access_modes.clone().unwrap_or_default(),
            "volumeMode": spec.volume_mode.clone().unwrap_or_else(|| "Filesystem".into()),
            "storageClassName": class.metadata.name,
            "persistentVolumeReclaimPolicy": class.reclaim_policy.clone().unwrap_or_else(|| "Delete".into()),
            "csi": {
                "driver": driver,
                "volumeHandle": volume.volume_id,
                "fsType": fs_type,
                "volumeAttributes": volume.volume_context,
            },
            "claimRef": {
                "kind": "PersistentVolumeClaim",
                "apiVersion": "v1",
                "namespace": meta.namespace,
                "name": meta.name,
                "uid": meta.uid,
            },
        },
    });
    if !terms.is_empty() {
        pv["spec"]["nodeAffinity"] = json!({"required": {"nodeSelectorTerms": terms}});
    }
    if let Some(options) = &class.mount_options {
        pv["spec"]["mountOptions"] = json!(options);
    }
    serde_json::from_value(pv)
}

/// Whether `pv`'s node affinity names this node's topology of `driver`.
fn on_this_node(pv: &PersistentVolume, driver: &DriverInfo) -> bool {
    let Some(terms) = pv
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
    else {
        return driver.topology.is_empty();
    };
    terms.node_selector_terms.iter().any(|t| {
        t.match_expressions.iter().flatten().all(|e| {
            driver.topology.get(&e.key).is_some_and(|v| {
                e.operator == "In" && e.values.as_ref().is_some_and(|vs| vs.contains(v))
            })
        })
    })
}

struct Provisioner {
    client: kube::Client,
    node: String,
}

impl Provisioner {
    async fn event(&self, claim: &PersistentVolumeClaim, kind: &str, reason: &str, message: &str) {
        let ns = claim.metadata.namespace.clone().unwrap_or_default();
        let name = claim.metadata.name.clone().unwrap_or_default();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let now = super::now_rfc3339();
        let value = json!({
            "metadata": {"name": format!("{name}.{nanos:x}"), "namespace": ns},
            "involvedObject": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "name": name, "namespace": ns, "uid": claim.metadata.uid},
            "reason": reason, "message": message, "type": kind,
            "source": {"component": "bosun-agent-provisioner", "host": self.node},
            "reportingComponent": "bosun-agent-provisioner", "reportingInstance": self.node,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        });
        let Ok(event) = serde_json::from_value::<Event>(value) else {
            return;
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        if let Err(e) = api.create(&PostParams::default(), &event).await {
            tracing::debug!(claim = %name, error = %e, "posting an event");
        }
    }

    async fn pass(&self, drivers: &BTreeMap<String, DriverInfo>, ctx: &NodeContext) {
        let lp = ListParams::default();
        let claims_api: Api<PersistentVolumeClaim> = Api::all(self.client.clone());
        let pvs_api: Api<PersistentVolume> = Api::all(self.client.clone());
        let classes_api: Api<StorageClass> = Api::all(self.client.clone());
        let (claims, pvs, classes) = match tokio::join!(
            claims_api.list(&lp),
            pvs_api.list(&lp),
            classes_api.list(&lp)
        ) {
            (Ok(c), Ok(p), Ok(s)) => (c.items, p.items, s.items),
            (c, p, s) => {
                let e = [c.err(), p.err(), s.err()].into_iter().flatten().next();
                tracing::debug!(error = ?e, "provisioner: listing claims, volumes and classes");
                return;
            }
        };
        let pv_names: std::collections::BTreeSet<&str> = pvs
            .iter()
            .filter_map(|p| p.metadata.name.as_deref())
            .collect();
        for claim in &claims {
            if claim.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let phase = claim.status.as_ref().and_then(|s| s.phase.as_deref());
            let Some(driver_name) = annotation(&claim.metadata, STORAGE_PROVISIONER)
                .or_else(|| annotation(&claim.metadata, BETA_STORAGE_PROVISIONER))
            else {
                continue;
            };
            let Some(driver) = drivers.get(driver_name) else {
                continue;
            };
            let class_name = claim
                .spec
                .as_ref()
                .and_then(|s| s.storage_class_name.as_deref())
                .unwrap_or_default();
            let Some(class) = classes
                .iter()
                .find(|c| c.metadata.name.as_deref() == Some(class_name))
            else {
                continue;
            };
            let uid = claim.metadata.uid.as_deref().unwrap_or_default();
            let pv_name = format!("pvc-{uid}");
            if phase == Some("Bound") {
                if let Some(pv) = pvs.iter().find(|p| {
                    p.metadata.name.as_deref()
                        == claim.spec.as_ref().and_then(|s| s.volume_name.as_deref())
                }) {
                    self.expand(claim, pv, driver_name, driver, ctx).await;
                }
                continue;
            }
            if pv_names.contains(pv_name.as_str()) {
                continue;
            }
            match annotation(&claim.metadata, SELECTED_NODE) {
                Some(n) if n == self.node => {
                    self.provision(claim, class, driver_name, driver).await;
                }
                Some(_) => {}
                None if class.volume_binding_mode.as_deref() != Some("WaitForFirstConsumer") => {
                    // An Immediate claim of a one-node driver: this node takes it, once.
                    let patch = json!({"metadata": {
                        "resourceVersion": claim.metadata.resource_version,
                        "annotations": {SELECTED_NODE: self.node}}});
                    let api: Api<PersistentVolumeClaim> = Api::namespaced(
                        self.client.clone(),
                        claim.metadata.namespace.as_deref().unwrap_or_default(),
                    );
                    let name = claim.metadata.name.as_deref().unwrap_or_default();
                    if let Err(e) = api
                        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                    {
                        tracing::debug!(claim = %name, error = %e, "selecting this node");
                    }
                }
                None => {}
            }
        }
        for pv in &pvs {
            self.reclaim(pv, drivers).await;
        }
    }

    async fn provision(
        &self,
        claim: &PersistentVolumeClaim,
        class: &StorageClass,
        driver_name: &str,
        driver: &DriverInfo,
    ) {
        let name = claim.metadata.name.clone().unwrap_or_default();
        let result = self.create(claim, class, driver_name, driver).await;
        match result {
            Ok(pv) => {
                tracing::info!(claim = %name, pv = %pv, "provisioned a volume");
                let msg = format!("Successfully provisioned volume {pv}");
                self.event(claim, "Normal", "ProvisioningSucceeded", &msg)
                    .await;
            }
            Err(why) => {
                tracing::warn!(claim = %name, error = %why, "provisioning");
                let msg = format!(
                    "failed to provision volume with StorageClass {:?}: {why}",
                    class.metadata.name.as_deref().unwrap_or_default()
                );
                self.event(claim, "Warning", "ProvisioningFailed", &msg)
                    .await;
            }
        }
    }

    async fn create(
        &self,
        claim: &PersistentVolumeClaim,
        class: &StorageClass,
        driver_name: &str,
        driver: &DriverInfo,
    ) -> Result<String, String> {
        let uid = claim.metadata.uid.as_deref().unwrap_or_default();
        let bytes = requested(claim).ok_or("the claim requests no storage")?;
        let modes = claim
            .spec
            .as_ref()
            .and_then(|s| s.access_modes.clone())
            .unwrap_or_default();
        let capability = MountCapability {
            access_mode: if modes.iter().any(|m| m == "ReadWriteOncePod") {
                proto::volume_capability::access_mode::Mode::SingleNodeSingleWriter
            } else {
                proto::volume_capability::access_mode::Mode::SingleNodeWriter
            },
            ..MountCapability::default()
        };
        let topology = proto::Topology {
            segments: driver.topology.clone().into_iter().collect(),
        };
        let request = proto::CreateVolumeRequest {
            name: format!("pvc-{uid}"),
            capacity_range: Some(proto::CapacityRange {
                required_bytes: bytes,
                limit_bytes: 0,
            }),
            volume_capabilities: vec![capability.to_proto()],
            parameters: class
                .parameters
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|(k, _)| !k.starts_with("csi.storage.k8s.io/"))
                .collect(),
            accessibility_requirements: (!driver.topology.is_empty()).then(|| {
                proto::TopologyRequirement {
                    requisite: vec![topology.clone()],
                    preferred: vec![topology],
                }
            }),
            ..Default::default()
        };
        let mut c = Client::connect(&driver.socket)
            .await
            .map_err(|e| e.to_string())?;
        let volume = c
            .create_volume_with(request)
            .await
            .map_err(|e| e.to_string())?;
        let pv = pv_for(claim, class, driver_name, &volume).map_err(|e| e.to_string())?;
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        match api.create(&PostParams::default(), &pv).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(format!("creating the PersistentVolume: {e}")),
        }
        Ok(pv.metadata.name.unwrap_or_default())
    }

    /// Step 3: a Released Delete-policy volume this node's driver made.
    async fn reclaim(&self, pv: &PersistentVolume, drivers: &BTreeMap<String, DriverInfo>) {
        let phase = pv.status.as_ref().and_then(|s| s.phase.as_deref());
        let spec = pv.spec.clone().unwrap_or_default();
        if phase != Some("Released")
            || spec.persistent_volume_reclaim_policy.as_deref() != Some("Delete")
            || pv.metadata.deletion_timestamp.is_some()
        {
            return;
        }
        let Some(by) = annotation(&pv.metadata, PROVISIONED_BY) else {
            return;
        };
        let Some(driver) = drivers.get(by) else {
            return;
        };
        let Some(csi) = spec.csi.as_ref().filter(|c| c.driver == by) else {
            return;
        };
        if !on_this_node(pv, driver) {
            return;
        }
        let name = pv.metadata.name.clone().unwrap_or_default();
        let deleted = match Client::connect(&driver.socket).await {
            Ok(mut c) => c
                .delete_volume(&csi.volume_handle)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = deleted {
            tracing::warn!(pv = %name, error = %e, "DeleteVolume; retried");
            return;
        }
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => tracing::info!(pv = %name, "deleted a released volume"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => tracing::warn!(pv = %name, error = %e, "deleting the PersistentVolume"),
        }
    }

    /// Step 4: a Bound claim asking for more than it has.
    async fn expand(
        &self,
        claim: &PersistentVolumeClaim,
        pv: &PersistentVolume,
        driver_name: &str,
        driver: &DriverInfo,
        ctx: &NodeContext,
    ) {
        let (Some(want), Some(have)) = (requested(claim), capacity_of(claim)) else {
            return;
        };
        let Some(csi) = pv.spec.as_ref().and_then(|s| s.csi.as_ref()) else {
            return;
        };
        if want <= have
            || csi.driver != driver_name
            || annotation(&pv.metadata, PROVISIONED_BY) != Some(driver_name)
            || !on_this_node(pv, driver)
        {
            return;
        }
        let name = claim.metadata.name.clone().unwrap_or_default();
        let ns = claim.metadata.namespace.clone().unwrap_or_default();
        tracing::debug!(claim = %name, from = have, to = want, "expanding");
        let result: Result<Option<String>, String> = async {
            let mut c = Client::connect(&driver.socket)
                .await
                .map_err(|e| e.to_string())?;
            let r = c
                .controller_expand_volume(&csi.volume_handle, want)
                .await
                .map_err(|e| e.to_string())?;
            let bytes = r.capacity_bytes.max(want);
            let pvs: Api<PersistentVolume> = Api::all(self.client.clone());
            let patch = json!({"spec": {"capacity": {"storage": Quantity::from_bytes(bytes)}}});
            let pv_name = pv.metadata.name.clone().unwrap_or_default();
            pvs.patch(&pv_name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| format!("raising the PV's capacity: {e}"))?;
            tracing::debug!(claim = %name, bytes, "PV capacity raised");
            let staged = ctx
                .csi
                .staged()
                .into_iter()
                .find(|(d, id, _)| d == driver_name && *id == csi.volume_handle);
            if let Some((_, _, staging)) = staged {
                if let Err(e) = c
                    .node_expand(&csi.volume_handle, &staging, Some(&staging), want)
                    .await
                {
                    // Offline expansion: the filesystem grows when the volume is staged again.
                    return Ok(Some(e.to_string()));
                }
            }
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &ns);
            let patch =
                json!({"status": {"capacity": {"storage": Quantity::from_bytes(bytes)}, "conditions": null}});
            claims
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| format!("setting the claim's capacity: {e}"))?;
            Ok(None)
        }
        .await;
        match result {
            Ok(None) => {
                tracing::info!(claim = %name, bytes = want, "expanded a volume");
                let msg = format!(
                    "resize volume {} finished",
                    pv.metadata.name.as_deref().unwrap_or_default()
                );
                self.event(claim, "Normal", "FileSystemResizeSuccessful", &msg)
                    .await;
            }
            Ok(Some(pending)) => {
                tracing::info!(claim = %name, why = %pending, "filesystem resize pending");
                let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &ns);
                let patch = json!({"status": {"capacity": {"storage": Quantity::from_bytes(have)}, "conditions": [{
                    "type": "FileSystemResizePending", "status": "True",
                    "message": format!("Waiting for user to (re-)start a pod to finish file system resize of volume on node: {pending}"),
                    "lastTransitionTime": super::now_rfc3339(),
                }]}});
                let _ = claims
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
            }
            Err(e) => {
                tracing::warn!(claim = %name, error = %e, "expanding");
                self.event(claim, "Warning", "VolumeResizeFailed", &e).await;
            }
        }
    }
}

/// Runs the provisioner of this node's drivers.
pub async fn run(
    client: kube::Client,
    node: String,
    drivers: Drivers,
    ctx: std::sync::Arc<NodeContext>,
) {
    let p = Provisioner { client, node };
    loop {
        let snapshot = drivers.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if !snapshot.is_empty()
            && tokio::time::timeout(PASS_LIMIT, p.pass(&snapshot, &ctx))
                .await
                .is_err()
        {
            tracing::warn!("a provisioner pass took longer than {PASS_LIMIT:?}; starting again");
        }
        tokio::time::sleep(PASS).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pv_of_a_provisioned_volume_is_prebound_and_pinned_to_the_node() {
        let claim: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": "data", "uid": "u1"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local",
                     "resources": {"requests": {"storage": "64Mi"}}},
        }))
        .expect("claim");
        let class: StorageClass = serde_json::from_value(json!({
            "metadata": {"name": "local"}, "provisioner": "d", "reclaimPolicy": "Retain",
        }))
        .expect("class");
        let volume = proto::Volume {
            capacity_bytes: 64 << 20,
            volume_id: "pvc-u1".into(),
            accessible_topology: vec![proto::Topology {
                segments: [("topology.bosun.dev/node".to_string(), "n1".to_string())].into(),
            }],
            ..Default::default()
        };
        assert_eq!(requested(&claim), Some(64 << 20));
        let pv = pv_for(&claim, &class, "d", &volume).expect("pv");
        assert_eq!(pv.metadata.name.as_deref(), Some("pvc-u1"));
        assert_eq!(annotation(&pv.metadata, PROVISIONED_BY), Some("d"));
        let spec = pv.spec.clone().expect("spec");
        assert_eq!(
            spec.persistent_volume_reclaim_policy.as_deref(),
            Some("Retain")
        );
        assert_eq!(spec.storage_class_name.as_deref(), Some("local"));
        let claim_ref = spec.claim_ref.expect("claimRef");
        assert_eq!(claim_ref.uid.as_deref(), Some("u1"));
        assert_eq!(spec.csi.expect("csi").volume_handle, "pvc-u1");
        let driver = DriverInfo {
            socket: "/s".into(),
            node_id: "n1".into(),
            topology: [("topology.bosun.dev/node".to_string(), "n1".to_string())].into(),
        };
        assert!(on_this_node(&pv, &driver));
        let other = DriverInfo {
            topology: [("topology.bosun.dev/node".to_string(), "n2".to_string())].into(),
            ..driver
        };
        assert!(!on_this_node(&pv, &other));
    }
}
