//! What an update of a pod may not change, of kube-apiserver's `ValidatePodUpdate`: the mirror
//! pod annotation (`kubernetes.io/config.mirror`) may be neither added, changed nor removed —
//! a node agent tells the static pods it mirrors from the pods it runs by it, so a pod must
//! not turn into a mirror pod (and be stopped) or out of one (and be run twice); nor may the
//! ephemeral containers change but through their subresource, which may only add them
//! (`pod_ephemeral`); nor the rest of the spec but what `pod_spec_update` lets through. Pure.

use serde_json::Value;

use super::pod_ephemeral;
use crate::kinds::Resource;
use crate::status::{ApiError, FieldCause};

pub(super) const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// 422 when the update of `old` into `new` (a pod; `subresource` the one written, `None`
/// for the pod itself) touches its mirror pod annotation or changes its ephemeral
/// containers in a way the write may not.
pub fn check(
    old: &Value,
    new: &Value,
    resource: &Resource,
    subresource: Option<&str>,
) -> Result<(), ApiError> {
    if (resource.group, resource.plural) != ("", "pods") {
        return Ok(());
    }
    let mut causes = Vec::new();
    let annotation = |pod: &Value| pod["metadata"]["annotations"][MIRROR_ANNOTATION].clone();
    let (was, is) = (annotation(old), annotation(new));
    let why = match (was.is_null(), is.is_null()) {
        (true, false) => Some("may not add mirror pod annotation"),
        (false, _) if was != is => Some("may not remove or update mirror pod annotation"),
        _ => None,
    };
    if let Some(why) = why {
        causes.push(FieldCause {
            field: format!("metadata.annotations[{MIRROR_ANNOTATION}]"),
            reason: "FieldValueForbidden",
            message: format!("Forbidden: {why}"),
        });
    }
    match subresource {
        None => {
            pod_ephemeral::check_pod_update(old, new, &mut causes);
            super::pod_spec_update::check(old, new, &mut causes);
        }
        Some(pod_ephemeral::SUBRESOURCE) => pod_ephemeral::check_subresource(old, new, &mut causes),
        Some(_) => {}
    }
    if causes.is_empty() {
        return Ok(());
    }
    let name = new["metadata"]["name"].as_str().unwrap_or("");
    Err(ApiError::invalid("Pod", "Pod", name, &causes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(annotations: Value) -> Value {
        json!({"metadata": {"name": "p", "annotations": annotations}})
    }

    #[test]
    fn the_mirror_annotation_is_neither_added_nor_changed_nor_removed() {
        let pods = crate::kinds::find("", "v1", "pods").expect("pods");
        let plain = pod(json!({"a": "b"}));
        let mirror = pod(json!({MIRROR_ANNOTATION: "h1", "a": "b"}));
        assert!(check(&plain, &pod(json!({"a": "c"})), pods, None).is_ok());
        assert!(check(&mirror, &pod(json!({MIRROR_ANNOTATION: "h1"})), pods, None).is_ok());
        let e = check(&plain, &mirror, pods, None).unwrap_err();
        assert_eq!(e.code, http::StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            e.message,
            "Pod \"p\" is invalid: metadata.annotations[kubernetes.io/config.mirror]: Forbidden: may not add mirror pod annotation"
        );
        for changed in [plain, pod(json!({MIRROR_ANNOTATION: "h2"}))] {
            let e = check(&mirror, &changed, pods, None).unwrap_err();
            assert!(
                e.message
                    .ends_with("may not remove or update mirror pod annotation"),
                "{}",
                e.message
            );
        }
        let other = crate::kinds::find("", "v1", "configmaps").expect("configmaps");
        assert!(check(&pod(json!({})), &mirror, other, None).is_ok());
    }
}
