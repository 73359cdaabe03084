//! kube's pvc-protection and pv-protection controllers: a claim being deleted keeps its
//! `kubernetes.io/pvc-protection` finalizer while a pod that has not finished uses it, a volume
//! being deleted keeps `kubernetes.io/pv-protection` while it is Bound; then the finalizer goes
//! and the API finishes the deletion.

use serde_json::{json, Value};

use super::Binder;
use crate::api::volume_claims::{PVC_PROTECTION, PV_PROTECTION};
use crate::controllers::client::ClientError;

/// Whether a pod that has not finished names the claim.
fn in_use(b: &Binder, claim: &Value) -> bool {
    let namespace = &claim["metadata"]["namespace"];
    let name = &claim["metadata"]["name"];
    !b.caches
        .pods
        .list(|pod| {
            pod["metadata"]["namespace"] == *namespace
                && !matches!(
                    pod["status"]["phase"].as_str(),
                    Some("Succeeded" | "Failed")
                )
                && pod["spec"]["volumes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|v| v["persistentVolumeClaim"]["claimName"] == *name)
        })
        .is_empty()
}

/// A claim being deleted: lets it go once no pod uses it.
pub async fn claim(b: &Binder, claim: &Value) -> Result<(), ClientError> {
    if !has(claim, PVC_PROTECTION) || in_use(b, claim) {
        return Ok(());
    }
    b.patch_claim(claim, without(claim, PVC_PROTECTION), false)
        .await
        .map(drop)
}

/// A volume being deleted: lets it go once it is not Bound.
pub async fn volume(b: &Binder, volume: &Value) -> Result<(), ClientError> {
    if !has(volume, PV_PROTECTION) || volume["status"]["phase"] == "Bound" {
        return Ok(());
    }
    b.patch_volume(volume, without(volume, PV_PROTECTION), false)
        .await
        .map(drop)
}

fn has(object: &Value, finalizer: &str) -> bool {
    object["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|l| l.iter().any(|f| f == finalizer))
}

/// A merge patch setting the finalizers to all but `finalizer`.
fn without(object: &Value, finalizer: &str) -> Value {
    let rest: Vec<&Value> = object["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| *f != finalizer)
        .collect();
    json!({"metadata": {"finalizers": rest}})
}
