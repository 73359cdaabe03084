//! The [`ClaimSource`] of a joined node: a pod's PersistentVolumeClaim and its bound
//! PersistentVolume read from the API when the pod's volumes are set up (again on each retry
//! while the claim is not Bound). A failed read is a wait, never "no volume".

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::Api;

use crate::volume::claims::{bound_volume_name, claimed_volume, pvc_error};
use crate::volume::{ClaimError, ClaimSource, ResolvedClaim};

/// Reads claims and volumes with the node's client.
pub struct ApiClaims {
    pub client: kube::Client,
}

fn read_error(ns: &str, claim: &str, what: &str, e: kube::Error) -> ClaimError {
    let why = match &e {
        kube::Error::Api(s) if s.code == 404 => format!("{what} not found: {}", s.message),
        _ => format!("failed to fetch {what} from API server: {e}"),
    };
    ClaimError::Waiting(pvc_error(ns, claim, why))
}

impl ClaimSource for ApiClaims {
    fn resolve(
        &self,
        namespace: String,
        claim: String,
    ) -> BoxFuture<'static, Result<ResolvedClaim, ClaimError>> {
        let client = self.client.clone();
        Box::pin(async move {
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
            let pvc = claims
                .get(&claim)
                .await
                .map_err(|e| read_error(&namespace, &claim, "PVC", e))?;
            let pv_name = bound_volume_name(&pvc)?;
            let volumes: Api<PersistentVolume> = Api::all(client);
            let pv = volumes
                .get(&pv_name)
                .await
                .map_err(|e| read_error(&namespace, &claim, "PV", e))?;
            claimed_volume(&pvc, &pv)
        })
    }
}
