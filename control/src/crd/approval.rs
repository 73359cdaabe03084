//! kube's API approval rule for CRDs in the community's protected groups (`k8s.io`,
//! `kubernetes.io` and their subdomains, e.g. `gateway.networking.k8s.io`): such a CRD must
//! carry the `api-approved.kubernetes.io` annotation, a URL of the approving review or a
//! reason starting with "unapproved"; the CRD controller reports it in the
//! `KubernetesAPIApprovalPolicyConformant` condition.

use serde_json::Value;

use crate::status::FieldCause;

pub const ANNOTATION: &str = "api-approved.kubernetes.io";
pub const CONDITION: &str = "KubernetesAPIApprovalPolicyConformant";

const SEE: &str = "see https://github.com/kubernetes/enhancements/pull/1111";

/// A protected group's approval: the annotation's state and kube's words for it.
#[derive(Debug, PartialEq, Eq)]
pub enum Approval {
    Approved(String),
    Bypassed(String),
    Invalid(String),
    Missing(String),
}

/// Whether `group` is one the community's approval rule covers.
pub fn protected(group: &str) -> bool {
    matches!(group, "k8s.io" | "kubernetes.io")
        || group.ends_with(".k8s.io")
        || group.ends_with(".kubernetes.io")
}

/// The approval state of a CRD's annotations.
pub fn state(crd: &Value) -> Approval {
    match crd["metadata"]["annotations"][ANNOTATION].as_str() {
        None => Approval::Missing(format!(
            "protected groups must have approval annotation {ANNOTATION:?}, {SEE}"
        )),
        Some(text) if text.starts_with("unapproved") => {
            Approval::Bypassed(format!("not approved: {text:?}"))
        }
        Some(text) if request_uri(text) => Approval::Approved(format!("approved in {text}")),
        Some(_) => Approval::Invalid(format!(
            "protected groups must have approval annotation {ANNOTATION:?} with either a URL or a reason starting with \"unapproved\", {SEE}"
        )),
    }
}

/// Go's `url.ParseRequestURI` acceptance, roughly: an absolute URI (a scheme) or an
/// absolute path, without spaces.
fn request_uri(text: &str) -> bool {
    if text.is_empty() || text.contains(char::is_whitespace) {
        return false;
    }
    if text.starts_with('/') {
        return true;
    }
    match text.split_once(':') {
        Some((scheme, _)) => {
            let mut chars = scheme.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        }
        None => false,
    }
}

/// kube's `validateAPIApproval`: nothing for other groups or when the state did not change
/// on an update; otherwise a missing or invalid annotation is refused.
pub fn check(crd: &Value, old: Option<&Value>, causes: &mut Vec<FieldCause>) {
    if !protected(crd["spec"]["group"].as_str().unwrap_or("")) {
        return;
    }
    let now = state(crd);
    if old.is_some_and(|old| std::mem::discriminant(&state(old)) == std::mem::discriminant(&now)) {
        return;
    }
    let field = format!("metadata.annotations[{ANNOTATION}]");
    match now {
        Approval::Missing(why) => causes
            .push(FieldCause::required(&field).with_message(&format!("Required value: {why}"))),
        Approval::Invalid(why) => {
            let value = crd["metadata"]["annotations"][ANNOTATION].to_string();
            causes.push(FieldCause::invalid(&field, &value, &why));
        }
        Approval::Approved(_) | Approval::Bypassed(_) => {}
    }
}

/// The `KubernetesAPIApprovalPolicyConformant` condition a CRD of a protected group gets:
/// (status, reason, message); `None` for other groups.
pub fn condition(crd: &Value) -> Option<(bool, &'static str, String)> {
    if !protected(crd["spec"]["group"].as_str().unwrap_or("")) {
        return None;
    }
    Some(match state(crd) {
        Approval::Approved(why) => (true, "ApprovedAnnotation", why),
        Approval::Bypassed(why) => (false, "UnapprovedAnnotation", why),
        Approval::Invalid(why) => (false, "InvalidAnnotation", why),
        Approval::Missing(why) => (false, "MissingAnnotation", why),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd(group: &str, annotation: Option<&str>) -> Value {
        let mut crd = json!({"metadata": {"name": "x"}, "spec": {"group": group}});
        if let Some(text) = annotation {
            crd["metadata"]["annotations"] = json!({ANNOTATION: text});
        }
        crd
    }

    fn problems(crd: &Value, old: Option<&Value>) -> Vec<String> {
        let mut causes = Vec::new();
        check(crd, old, &mut causes);
        causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn protected_groups_need_the_annotation() {
        assert!(protected("gateway.networking.k8s.io") && protected("k8s.io"));
        assert!(!protected("example.com") && !protected("notk8s.io"));
        assert_eq!(
            problems(&crd("example.com", None), None),
            Vec::<String>::new()
        );
        assert_eq!(
            problems(&crd("gateway.networking.k8s.io", None), None),
            ["metadata.annotations[api-approved.kubernetes.io]: Required value: protected groups must have approval annotation \"api-approved.kubernetes.io\", see https://github.com/kubernetes/enhancements/pull/1111"]
        );
        let bad = crd("x.k8s.io", Some("yes please"));
        assert!(problems(&bad, None)[0].contains(
            "Invalid value: \"yes please\": protected groups must have approval annotation"
        ));
        let approved = crd(
            "x.k8s.io",
            Some("https://github.com/kubernetes-sigs/gateway-api/pull/2997"),
        );
        assert_eq!(problems(&approved, None), Vec::<String>::new());
        assert_eq!(
            problems(&crd("x.k8s.io", Some("unapproved, experimental")), None),
            Vec::<String>::new()
        );
        // an update that leaves the state alone is not refused
        let old = crd("x.k8s.io", None);
        assert_eq!(
            problems(&crd("x.k8s.io", None), Some(&old)),
            Vec::<String>::new()
        );
        assert_eq!(
            condition(&approved),
            Some((
                true,
                "ApprovedAnnotation",
                "approved in https://github.com/kubernetes-sigs/gateway-api/pull/2997".to_owned()
            ))
        );
        assert_eq!(condition(&crd("example.com", None)), None);
    }
}
