//! What a node may ask of `serviceaccounts/token`, as the Node authorizer and NodeRestriction
//! admission allow it: a token only for a ServiceAccount that a pod bound to the node runs as
//! (else "no relationship found"), and only bound to a Pod (`boundObjectRef` v1 Pod with a
//! name and uid) that exists with that uid and is bound to the node — refused in
//! NodeRestriction's words (`serviceaccounts "default" is forbidden: node requested token not
//! bound to a pod`). So a node's tokens die with its pods and name no pod of another node.

use serde_json::Value;

use super::admission::admission_forbidden;
use super::{Attributes, Denied, Facts};
use crate::authn::service_account::pod_service_account;
use crate::kinds;
use crate::status::ApiError;

pub async fn decide(
    node: &str,
    attrs: &Attributes<'_>,
    facts: &dyn Facts,
) -> Result<Option<Denied>, ApiError> {
    let (Some(ns), Some(name)) = (attrs.namespace, attrs.name) else {
        return Ok(Some(Denied(String::new())));
    };
    if attrs.verb != "create" {
        return Ok(Some(Denied(String::new())));
    }
    let runs_as = |p: &Value| pod_service_account(p) == name;
    if !facts.any_pod_on_node(ns, node, &runs_as).await? {
        return Ok(Some(Denied(format!(
            "no relationship found between node '{node}' and this object"
        ))));
    }
    let refuse = |why: String| Err(admission_forbidden(attrs.resource, name, &why));
    let request = attrs.object.unwrap_or(&Value::Null);
    let bound = &request["spec"]["boundObjectRef"];
    let pod_name = bound["name"].as_str().unwrap_or("");
    if bound["apiVersion"] != "v1" || bound["kind"] != "Pod" || pod_name.is_empty() {
        return refuse("node requested token not bound to a pod".to_owned());
    }
    let uid = bound["uid"].as_str().unwrap_or("");
    if uid.is_empty() {
        return refuse("node requested token with a pod binding without a uid".to_owned());
    }
    let pods_resource = kinds::find("", "v1", "pods")
        .ok_or_else(|| ApiError::internal("the kinds table has no pods"))?;
    let Some(pod) = facts.stored(pods_resource, Some(ns), pod_name).await? else {
        return Err(ApiError::not_found("", "pods", pod_name));
    };
    if pod["metadata"]["uid"] != uid {
        return refuse(format!("the UID in the bound object reference ({uid}) does not match the UID in record. The object might have been deleted and then recreated"));
    }
    if pod["spec"]["nodeName"] != node {
        return refuse(
            "node requested token bound to a pod scheduled on a different node".to_owned(),
        );
    }
    Ok(None)
}
