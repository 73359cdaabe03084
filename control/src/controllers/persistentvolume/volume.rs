//! A volume's half of the PV binder (kube's syncVolume): a volume nobody claims is Available,
//! one whose claim holds it is Bound, one whose claim is gone is Released — and stays so:
//! reclaimPolicy Retain leaves it to the administrator, Delete to the provisioner that made it
//! (`pv.kubernetes.io/provisioned-by`: for `bosun-csi-local`, the agent of the volume's node
//! calls DeleteVolume and deletes the PV). A volume this controller bound to a claim that has
//! since bound another volume is unbound.

use serde_json::{json, Value};

use super::{annotated, Binder, BOUND_BY_CONTROLLER, PROVISIONED_BY};
use crate::controllers::client::ClientError;
use crate::controllers::events::EventType;

pub async fn sync(b: &Binder, volume: &Value) -> Result<(), ClientError> {
    let reference = &volume["spec"]["claimRef"];
    let uid = reference["uid"].as_str().unwrap_or("");
    if !reference.is_object() || uid.is_empty() {
        // Free, or pre-bound by an administrator to a claim that may not exist yet.
        return phase(b, volume, "Available").await;
    }
    let claim = b
        .claim(
            reference["namespace"].as_str().unwrap_or(""),
            reference["name"].as_str().unwrap_or(""),
        )
        .filter(|c| c["metadata"]["uid"] == uid);
    let Some(claim) = claim else {
        return release(b, volume).await;
    };
    let bound_to = claim["spec"]["volumeName"].as_str().unwrap_or("");
    if bound_to == volume["metadata"]["name"].as_str().unwrap_or("") {
        return phase(b, volume, "Bound").await;
    }
    if bound_to.is_empty() {
        // The claim's half of the binding is still to come (its pass finishes it).
        return Ok(());
    }
    if annotated(volume, BOUND_BY_CONTROLLER) {
        let patch = json!({"spec": {"claimRef": null},
            "metadata": {"annotations": {BOUND_BY_CONTROLLER: null}}});
        let volume = b.patch_volume(volume, patch, false).await?;
        return phase(b, &volume, "Available").await;
    }
    Ok(())
}

/// The claim is gone: Released, once; what happens to the data is the reclaim policy's.
async fn release(b: &Binder, volume: &Value) -> Result<(), ClientError> {
    if matches!(
        volume["status"]["phase"].as_str(),
        Some("Released" | "Failed")
    ) {
        return Ok(());
    }
    phase(b, volume, "Released").await?;
    let policy = volume["spec"]["persistentVolumeReclaimPolicy"]
        .as_str()
        .unwrap_or("Retain");
    if policy == "Delete" && !annotated(volume, PROVISIONED_BY) {
        let name = volume["metadata"]["name"].as_str().unwrap_or("");
        let why = format!("error getting deleter volume plugin for volume \"{name}\": no deletable volume plugin matched");
        b.tell(volume, EventType::Warning, "VolumeFailedDelete", &why)
            .await;
    }
    Ok(())
}

async fn phase(b: &Binder, volume: &Value, phase: &str) -> Result<(), ClientError> {
    if volume["status"]["phase"] != phase {
        b.patch_volume(volume, json!({"status": {"phase": phase}}), true)
            .await?;
    }
    Ok(())
}
