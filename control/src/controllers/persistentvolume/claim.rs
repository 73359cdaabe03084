//! A claim's half of the PV binder (kube's syncClaim): an unbound claim that names no class
//! gets the default one (kube's retroactive default StorageClass assignment), then its best volume
//! (`matching`) bound both ways, or waits — for its first consumer, for its class's
//! provisioner, or for an administrator — with kube's event saying which; a bound claim is
//! checked against its volume (a bind cut short is finished, a lost volume is reported).

use serde_json::{json, Value};

use super::matching::{best_match, class_of, mismatch, names_claim, BETA_CLASS};
use super::{
    annotated, Binder, BETA_STORAGE_PROVISIONER, BIND_COMPLETED, BOUND_BY_CONTROLLER,
    SELECTED_NODE, STORAGE_PROVISIONER,
};
use crate::api::volume_claims::default_class;
use crate::controllers::client::ClientError;
use crate::controllers::events::EventType;

/// The provisioner kube uses for classes of statically made volumes only.
const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";

pub async fn sync(b: &Binder, claim: &Value) -> Result<(), ClientError> {
    let volume_name = claim["spec"]["volumeName"].as_str().unwrap_or("");
    if !annotated(claim, BIND_COMPLETED) {
        return if volume_name.is_empty() {
            unbound(b, claim).await
        } else {
            prebound(b, claim, volume_name).await
        };
    }
    if volume_name.is_empty() {
        let why = "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!";
        return lost(b, claim, "ClaimLost", why).await;
    }
    let Some(volume) = b.volume(volume_name) else {
        let why = "Bound claim has lost its PersistentVolume. Data on the volume is lost!";
        return lost(b, claim, "ClaimLost", why).await;
    };
    if volume["spec"]["claimRef"].is_null() || names_claim(&volume, claim) {
        bind(b, &volume, claim).await
    } else {
        let why = "Two claims are bound to the same volume, this one is bound incorrectly";
        lost(b, claim, "ClaimMisbound", why).await
    }
}

/// A claim with no volume named: the best match, else why it waits.
async fn unbound(b: &Binder, claim: &Value) -> Result<(), ClientError> {
    if claim["spec"]["storageClassName"].is_null()
        && claim["metadata"]["annotations"][BETA_CLASS].is_null()
    {
        // kube's retroactive default class: a claim made before any class was the default.
        let classes = b.caches.classes.list(|_| true);
        if let Some(name) = default_class(classes.iter().map(|c| c.as_ref())) {
            let patch = json!({"spec": {"storageClassName": name}});
            return b.patch_claim(claim, patch, false).await.map(drop);
        }
    }
    let class_name = class_of(claim);
    let class = (!class_name.is_empty())
        .then(|| b.class(class_name))
        .flatten();
    let delayed = class
        .as_ref()
        .is_some_and(|c| c["volumeBindingMode"] == "WaitForFirstConsumer");
    let selected = claim["metadata"]["annotations"][SELECTED_NODE].as_str();
    let node = selected.and_then(|n| b.node(n));
    let volumes = b.caches.volumes.list(|_| true);
    if let Some(volume) = best_match(claim, &volumes, delayed, node.as_deref()) {
        return bind(b, volume, claim).await;
    }
    if delayed && selected.is_none() {
        let why = "waiting for first consumer to be created before binding";
        b.tell(claim, EventType::Normal, "WaitForFirstConsumer", why)
            .await;
    } else if class_name.is_empty() {
        let why = "no persistent volumes available for this claim and no storage class is set";
        b.tell(claim, EventType::Normal, "FailedBinding", why).await;
    } else {
        let claim = provision(b, claim, class_name, class.as_deref()).await?;
        return pending(b, &claim).await;
    }
    pending(b, claim).await
}

/// Hands the claim to its class's provisioner, as kube does for an external one: the
/// `storage-provisioner` annotations name it, an `ExternalProvisioning` event says so. The
/// provisioner (for `bosun-csi-local`, the agent of the selected node) creates a volume
/// pre-bound to the claim; the next pass binds it.
async fn provision(
    b: &Binder,
    claim: &Value,
    class_name: &str,
    class: Option<&Value>,
) -> Result<Value, ClientError> {
    let Some(class) = class else {
        let why = format!("storageclass.storage.k8s.io \"{class_name}\" not found");
        b.tell(claim, EventType::Warning, "ProvisioningFailed", &why)
            .await;
        return Ok(claim.clone());
    };
    let provisioner = class["provisioner"].as_str().unwrap_or("");
    if provisioner == NO_PROVISIONER {
        let why = "no volume plugin matched name: kubernetes.io/no-provisioner";
        b.tell(claim, EventType::Warning, "ProvisioningFailed", why)
            .await;
        return Ok(claim.clone());
    }
    let mut claim = claim.clone();
    let annotations = &claim["metadata"]["annotations"];
    if annotations[STORAGE_PROVISIONER] != provisioner
        || annotations[BETA_STORAGE_PROVISIONER] != provisioner
    {
        let patch = json!({"metadata": {"annotations": {
            STORAGE_PROVISIONER: provisioner, BETA_STORAGE_PROVISIONER: provisioner}}});
        claim = b.patch_claim(&claim, patch, false).await?;
    }
    let why = format!("Waiting for a volume to be created either by the external provisioner '{provisioner}' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.");
    b.tell(&claim, EventType::Normal, "ExternalProvisioning", &why)
        .await;
    Ok(claim)
}

/// A claim naming its volume (`spec.volumeName`) before any binding.
async fn prebound(b: &Binder, claim: &Value, volume_name: &str) -> Result<(), ClientError> {
    let Some(volume) = b.volume(volume_name) else {
        return pending(b, claim).await;
    };
    let reference = &volume["spec"]["claimRef"];
    if reference.is_object() && !names_claim(&volume, claim) {
        let why = format!("volume \"{volume_name}\" already bound to a different claim.");
        b.tell(claim, EventType::Warning, "FailedBinding", &why)
            .await;
        return pending(b, claim).await;
    }
    if let Some(why) = mismatch(&volume, claim) {
        let why = format!("Cannot bind to requested volume \"{volume_name}\": {why}");
        b.tell(claim, EventType::Warning, "VolumeMismatch", &why)
            .await;
        return pending(b, claim).await;
    }
    bind(b, &volume, claim).await
}

/// Binds both ways, each step only if not done yet: the volume's claimRef (with the claim's
/// uid) and phase Bound, then the claim's volumeName, annotations and status.
async fn bind(b: &Binder, volume: &Value, claim: &Value) -> Result<(), ClientError> {
    let meta = &claim["metadata"];
    let reference = &volume["spec"]["claimRef"];
    let mut volume = volume.clone();
    if reference["uid"] != meta["uid"]
        || reference["name"] != meta["name"]
        || reference["namespace"] != meta["namespace"]
    {
        let mut patch = json!({"spec": {"claimRef": {
            "kind": "PersistentVolumeClaim", "apiVersion": "v1",
            "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"]}}});
        if !names_claim(&volume, claim) && !annotated(&volume, BOUND_BY_CONTROLLER) {
            patch["metadata"]["annotations"][BOUND_BY_CONTROLLER] = json!("yes");
        }
        volume = b.patch_volume(&volume, patch, false).await?;
    }
    if volume["status"]["phase"] != "Bound" {
        let patch = json!({"status": {"phase": "Bound"}});
        volume = b.patch_volume(&volume, patch, true).await?;
    }
    let name = volume["metadata"]["name"].clone();
    let mut claim = claim.clone();
    if claim["spec"]["volumeName"] != name || !annotated(&claim, BIND_COMPLETED) {
        let mut patch = json!({"spec": {"volumeName": name},
            "metadata": {"annotations": {BIND_COMPLETED: "yes"}}});
        if claim["spec"]["volumeName"]
            .as_str()
            .is_none_or(str::is_empty)
        {
            patch["metadata"]["annotations"][BOUND_BY_CONTROLLER] = json!("yes");
        }
        claim = b.patch_claim(&claim, patch, false).await?;
    }
    let status = &claim["status"];
    let capacity = &volume["spec"]["capacity"];
    let modes = &volume["spec"]["accessModes"];
    if status["phase"] != "Bound"
        || status["capacity"] != *capacity
        || status["accessModes"] != *modes
    {
        let patch =
            json!({"status": {"phase": "Bound", "capacity": capacity, "accessModes": modes}});
        b.patch_claim(&claim, patch, true).await?;
    }
    b.forget(&claim);
    Ok(())
}

async fn pending(b: &Binder, claim: &Value) -> Result<(), ClientError> {
    if claim["status"]["phase"] != "Pending" {
        b.patch_claim(claim, json!({"status": {"phase": "Pending"}}), true)
            .await?;
    }
    Ok(())
}

/// A bound claim whose volume is gone or belongs to another claim: phase Lost, a warning.
async fn lost(b: &Binder, claim: &Value, reason: &str, why: &str) -> Result<(), ClientError> {
    if claim["status"]["phase"] != "Lost" {
        b.patch_claim(claim, json!({"status": {"phase": "Lost"}}), true)
            .await?;
    }
    b.tell(claim, EventType::Warning, reason, why).await;
    Ok(())
}
