//! `POST pods/NAME/eviction` (policy/v1 Eviction, JSON or protobuf: what `kubectl drain`
//! sends): a delete of the pod that honours the PodDisruptionBudget selecting it, as
//! kube-apiserver's eviction REST does. A pod that is not running (Pending, Succeeded,
//! Failed) or already being deleted goes without a budget check; more than one budget is
//! refused (500, kube's text); a budget with no disruption allowed — or whose status has not
//! caught up with its spec — refuses with 429 TooManyRequests and a DisruptionBudget cause,
//! which kubectl drain retries. A running pod that is not Ready goes without taking a disruption
//! under `unhealthyPodEvictionPolicy: AlwaysAllow`, or under the default IfHealthyBudget while the
//! budget has its desired healthy pods. Otherwise the budget's status takes the disruption
//! (`disruptionsAllowed` − 1, the pod in `disruptedPods`, compare-and-swap on its revision)
//! before the pod is deleted with the Eviction's `deleteOptions`.

use http::{Response, StatusCode};
use serde_json::{json, Value};

use super::path::{object_key, ResourcePath};
use super::query::Query;
use super::{decode_stored, delete, meta, object_response, validate, Call};
use crate::controllers::disruption::{is_healthy, selected};
use crate::http_util::ResponseBody;
use crate::kinds;
use crate::status::ApiError;
use crate::store::{self, ListOptions};

/// Conflicting budget writes (another eviction at the same time) tried again this often.
const CAS_ATTEMPTS: usize = 5;

pub async fn create(call: &Call, body: &[u8]) -> Result<Response<ResponseBody>, ApiError> {
    let name = call.path.name.clone().unwrap_or_default();
    let ns = call.path.namespace.clone().unwrap_or_default();
    let eviction = validate::decode_body(&call.content_type, body)?.object;
    if eviction["kind"] != "Eviction" {
        return Err(ApiError::bad_request(format!(
            "the body of an eviction is an Eviction, not a {}",
            eviction["kind"].as_str().unwrap_or("")
        )));
    }
    if eviction["metadata"]["name"].as_str() != Some(name.as_str()) {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let store = call.state.store.as_ref();
    let pod_key = object_key(call.resource(), Some(&ns), &name);
    let pod = match store.get(&pod_key).await.map_err(store_error)? {
        Some(kv) => decode_stored(&kv)?,
        None => return Err(ApiError::not_found("", "pods", &name)),
    };
    let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
    let budgeted = pod["metadata"]["deletionTimestamp"].is_null() && phase == "Running";
    if budgeted && !call.query.dry_run {
        take_disruption(call, &ns, &pod).await?;
    }
    delete_pod(call, &eviction["deleteOptions"]).await?;
    Ok(object_response(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        &[],
    ))
}

fn store_error(e: store::Error) -> ApiError {
    ApiError::internal(e.to_string())
}

/// Takes one allowed disruption from the budget selecting `pod`, if there is one.
async fn take_disruption(call: &Call, ns: &str, pod: &Value) -> Result<(), ApiError> {
    let budgets = match kinds::find("policy", "v1", "poddisruptionbudgets") {
        Some(r) => r,
        None => return Err(ApiError::internal("PodDisruptionBudgets are not served")),
    };
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let store = call.state.store.as_ref();
    for _ in 0..CAS_ATTEMPTS {
        let page = store
            .list(&object_key(budgets, Some(ns), ""), &ListOptions::default())
            .await
            .map_err(store_error)?;
        let one = [std::sync::Arc::new(pod.clone())];
        let mut matching = Vec::new();
        for kv in &page.items {
            let budget = decode_stored(kv)?;
            if !selected(&budget, &one).is_empty() {
                matching.push((kv, budget));
            }
        }
        let (kv, mut budget) = match matching.len() {
            0 => return Ok(()),
            1 => matching.remove(0),
            _ => {
                return Err(ApiError::internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ))
            }
        };
        let status = &budget["status"];
        let budget_name = budget["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let generation = budget["metadata"]["generation"].as_i64().unwrap_or(0);
        if status["observedGeneration"].as_i64().unwrap_or(0) < generation {
            return Err(refused(format!(
                "The disruption budget {budget_name} is still being processed by the server."
            )));
        }
        // A running pod that is not Ready (kube's unhealthyPodEvictionPolicy): AlwaysAllow
        // evicts it, the default IfHealthyBudget while the budget has its desired healthy pods;
        // neither takes a disruption.
        if !is_healthy(pod) {
            let desired = status["desiredHealthy"].as_i64().unwrap_or(0);
            let always = budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow";
            if always || (desired > 0 && status["currentHealthy"].as_i64().unwrap_or(0) >= desired)
            {
                return Ok(());
            }
        }
        let allowed = status["disruptionsAllowed"].as_i64().unwrap_or(0);
        if allowed <= 0 {
            return Err(refused(format!(
                "The disruption budget {budget_name} needs {} healthy pods and has {} currently",
                status["desiredHealthy"].as_i64().unwrap_or(0),
                status["currentHealthy"].as_i64().unwrap_or(0)
            )));
        }
        budget["status"]["disruptionsAllowed"] = json!(allowed - 1);
        budget["status"]["disruptedPods"][pod_name] = json!(meta::now());
        match store
            .update(&kv.key, meta::to_stored(&budget)?, kv.mod_revision)
            .await
        {
            Ok(_) => return Ok(()),
            Err(store::Error::Conflict { .. }) => continue,
            Err(e) => return Err(store_error(e)),
        }
    }
    Err(refused(
        "The disruption budget changed while the eviction was considered; try again.".to_owned(),
    ))
}

/// kube's 429 for an eviction a budget does not allow now.
fn refused(cause: String) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequests",
        "Cannot evict pod as it would violate the pod's disruption budget.",
    );
    e.details = Some(json!({"causes": [{"reason": "DisruptionBudget", "message": cause}]}));
    e
}

/// Deletes the evicted pod with the Eviction's `deleteOptions`, as a DELETE of the pod would.
async fn delete_pod(call: &Call, options: &Value) -> Result<(), ApiError> {
    let path = ResourcePath {
        subresource: None,
        ..call.path.clone()
    };
    let mut query = Query::parse("", path.resource)?;
    query.dry_run = call.query.dry_run;
    let pod_call = Call {
        state: call.state.clone(),
        identity: call.identity.clone(),
        path,
        query,
        accept: "application/json".into(),
        content_type: "application/json".into(),
        user_agent: call.user_agent.clone(),
        warnings: std::sync::Mutex::default(),
        audit: call.audit.clone(),
    };
    let body = match options {
        Value::Null => Vec::new(),
        other => other.to_string().into_bytes(),
    };
    delete::delete(&pod_call, &body).await.map(drop)
}
