//! CertificateSigningRequests (certificates.k8s.io/v1): what the server does that kube-
//! apiserver and kube-controller-manager do for them. At create, `spec.username`/`groups` come
//! from the requester (never the body) and the PKCS#10 request must parse and carry a valid
//! signature. A node-client request (signer `kubernetes.io/kube-apiserver-client-kubelet`,
//! subject `CN=system:node:<name>, O=system:nodes`, client usages, no SANs) from a bootstrapper,
//! or from that very node renewing, is approved at once (`AutoApproved`, as csrapproving does);
//! every other request stays pending until an administrator approves it through the
//! `approval` subresource. Approved requests of the two client signers are signed by the
//! cluster CA (`status.certificate`), as csrsigning does; one that fails its signer's checks
//! gets a `Failed` condition instead.

use base64::{engine::general_purpose::STANDARD, Engine};
use rcgen::CertificateSigningRequestParams;
use rustls::pki_types::{pem::PemObject, CertificateSigningRequestDer};
use serde_json::{json, Value};
use x509_parser::prelude::FromDer;

use crate::authn::identity::{NODES_GROUP, NODE_PREFIX};
use crate::authn::Identity;
use crate::pki::{Ca, Subject};
use crate::status::{ApiError, FieldCause};

/// Client certificates for nodes.
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// Client certificates for anyone an administrator approves.
pub const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";

/// How long issued certificates live unless `spec.expirationSeconds` asks for less.
const DEFAULT_LIFETIME_SECONDS: i64 = 365 * 24 * 3600;

/// A parsed and signature-checked PKCS#10 request.
pub struct ParsedRequest {
    pub params: CertificateSigningRequestParams,
    pub common_name: String,
    pub organizations: Vec<String>,
}

/// Parses `spec.request` (base64 of a PEM `CERTIFICATE REQUEST`) and checks its signature.
pub fn parse_request(spec_request: &str) -> Result<ParsedRequest, String> {
    let pem = STANDARD
        .decode(spec_request)
        .map_err(|e| format!("not base64: {e}"))?;
    let der = CertificateSigningRequestDer::from_pem_slice(&pem)
        .map_err(|_| "PEM block type must be CERTIFICATE REQUEST".to_owned())?;
    let params = CertificateSigningRequestParams::from_der(&der)
        .map_err(|e| format!("not a valid certificate request: {e}"))?;
    let (_, parsed) =
        x509_parser::certification_request::X509CertificationRequest::from_der(der.as_ref())
            .map_err(|e| format!("not a valid certificate request: {e}"))?;
    let subject = &parsed.certification_request_info.subject;
    let common_name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or("")
        .to_owned();
    let organizations = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    Ok(ParsedRequest {
        params,
        common_name,
        organizations,
    })
}

/// Why `request` with `usages` is not a node client request, or `None` if it is one
/// (Kubernetes' `ValidateKubeletClientCSR`).
pub fn node_client_problem(request: &ParsedRequest, usages: &[&str]) -> Option<String> {
    if request.organizations != [NODES_GROUP] {
        return Some(format!("subject organization is not {NODES_GROUP}"));
    }
    if !request.common_name.starts_with(NODE_PREFIX) || request.common_name == NODE_PREFIX {
        return Some(format!(
            "subject common name does not begin with {NODE_PREFIX}"
        ));
    }
    if !request.params.params.subject_alt_names.is_empty() {
        return Some("subject alternative names are not allowed".into());
    }
    client_usage_problem(request, usages)
}

fn client_usage_problem(request: &ParsedRequest, usages: &[&str]) -> Option<String> {
    const ALLOWED: &[&str] = &["digital signature", "key encipherment", "client auth"];
    if let Some(u) = usages.iter().find(|u| !ALLOWED.contains(u)) {
        return Some(format!(
            "usage {u:?} is not allowed for a client certificate"
        ));
    }
    if !usages.contains(&"client auth") {
        return Some("usages must include \"client auth\"".into());
    }
    if !matches!(
        request.params.params.is_ca,
        rcgen::IsCa::NoCa | rcgen::IsCa::ExplicitNoCa
    ) {
        return Some("a client certificate cannot be a CA".into());
    }
    None
}

fn usages(object: &Value) -> Vec<&str> {
    object["spec"]["usages"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn invalid(name: &str, field: &str, value: &str, why: &str) -> ApiError {
    ApiError::invalid(
        "CertificateSigningRequest.certificates.k8s.io",
        "CertificateSigningRequest",
        name,
        &[FieldCause::invalid(field, value, why)],
    )
}

/// Create: records the requester, checks the request, and approves and signs a node client
/// request that `requester` may have at once.
pub fn prepare_create(
    object: &mut Value,
    requester: &Identity,
    ca: Option<&Ca>,
    now: &str,
) -> Result<(), ApiError> {
    let name = object["metadata"]["name"].as_str().unwrap_or("").to_owned();
    object["spec"]["username"] = json!(requester.user);
    object["spec"]["groups"] = json!(requester.groups);
    if let Some(spec) = object["spec"].as_object_mut() {
        spec.remove("uid");
        spec.remove("extra");
    }
    let signer = object["spec"]["signerName"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    if signer.is_empty() {
        return Err(ApiError::invalid(
            "CertificateSigningRequest.certificates.k8s.io",
            "CertificateSigningRequest",
            &name,
            &[FieldCause::required("spec.signerName")],
        ));
    }
    let request = parse_request(object["spec"]["request"].as_str().unwrap_or(""))
        .map_err(|why| invalid(&name, "spec.request", "[]byte{...}", &why))?;
    if let Some(seconds) = object["spec"]["expirationSeconds"].as_i64() {
        if seconds < 600 {
            return Err(invalid(
                &name,
                "spec.expirationSeconds",
                &seconds.to_string(),
                "may not specify a duration less than 600 seconds (10 minutes)",
            ));
        }
    }
    object["status"] = json!({});
    let eligible = requester.is_bootstrapper()
        || requester.node_name().map(|n| format!("{NODE_PREFIX}{n}"))
            == Some(request.common_name.clone());
    if signer == KUBELET_CLIENT_SIGNER
        && eligible
        && node_client_problem(&request, &usages(object)).is_none()
    {
        object["status"]["conditions"] = json!([condition(
            "Approved",
            "AutoApproved",
            "Auto approving kubelet client certificate after SubjectAccessReview.",
            now,
        )]);
        sign(object, &request, ca, now);
    }
    Ok(())
}

fn condition(kind: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({
        "type": kind, "status": "True", "reason": reason, "message": message,
        "lastUpdateTime": now, "lastTransitionTime": now,
    })
}

fn has_condition(object: &Value, kind: &str) -> bool {
    object["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == kind && c["status"] != "False")
    })
}

/// The approval subresource: `old` with the conditions of `new` (Approved, Denied, Failed),
/// and signed if now approved.
pub fn apply_approval(
    old: &Value,
    new: &Value,
    ca: Option<&Ca>,
    now: &str,
) -> Result<Value, ApiError> {
    let name = old["metadata"]["name"].as_str().unwrap_or("");
    let mut conditions = new["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (i, c) in conditions.iter_mut().enumerate() {
        let kind = c["type"].as_str().unwrap_or("");
        if !matches!(kind, "Approved" | "Denied" | "Failed") {
            return Err(invalid(
                name,
                &format!("status.conditions[{i}].type"),
                &format!("{kind:?}"),
                "supported values: \"Approved\", \"Denied\", \"Failed\"",
            ));
        }
        if c["status"].as_str().unwrap_or("").is_empty() {
            c["status"] = json!("True");
        }
        for stamp in ["lastUpdateTime", "lastTransitionTime"] {
            if c[stamp].is_null() {
                c[stamp] = json!(now);
            }
        }
    }
    let mut out = old.clone();
    out["status"]["conditions"] = json!(conditions);
    if has_condition(&out, "Approved") && has_condition(&out, "Denied") {
        return Err(invalid(
            name,
            "status.conditions",
            "Approved",
            "Approved and Denied conditions are mutually exclusive",
        ));
    }
    for kind in ["Approved", "Denied"] {
        if has_condition(old, kind) && !has_condition(&out, kind) {
            return Err(invalid(
                name,
                "status.conditions",
                kind,
                "updates may not remove a condition of type \"Approved\" or \"Denied\"",
            ));
        }
    }
    if has_condition(&out, "Approved") && out["status"]["certificate"].is_null() {
        match parse_request(old["spec"]["request"].as_str().unwrap_or("")) {
            Ok(request) => sign(&mut out, &request, ca, now),
            Err(why) => fail(&mut out, &why, now),
        }
    }
    Ok(out)
}

/// Signs an approved request of a signer we own, or marks it Failed when it does not meet
/// the signer's rules. Requests for other signers are left for their signer.
fn sign(object: &mut Value, request: &ParsedRequest, ca: Option<&Ca>, now: &str) {
    let Some(ca) = ca else { return };
    let signer = object["spec"]["signerName"].as_str().unwrap_or("");
    let problem = match signer {
        KUBELET_CLIENT_SIGNER => node_client_problem(request, &usages(object)),
        CLIENT_SIGNER if request.organizations.len() > 1 => {
            Some("more than one subject organization is not supported yet".into())
        }
        CLIENT_SIGNER if request.common_name.is_empty() => {
            Some("the subject has no common name".into())
        }
        CLIENT_SIGNER => client_usage_problem(request, &usages(object)),
        _ => return,
    };
    if let Some(why) = problem {
        return fail(object, &why, now);
    }
    let seconds = object["spec"]["expirationSeconds"]
        .as_i64()
        .unwrap_or(DEFAULT_LIFETIME_SECONDS)
        .clamp(600, DEFAULT_LIFETIME_SECONDS);
    let subject = Subject {
        user: request.common_name.clone(),
        groups: request.organizations.clone(),
    };
    match ca.sign_client_request(&request.params, &subject, time::Duration::seconds(seconds)) {
        Ok(pem) => object["status"]["certificate"] = json!(STANDARD.encode(pem)),
        Err(e) => fail(object, &e.to_string(), now),
    }
}

fn fail(object: &mut Value, why: &str, now: &str) {
    let failed = condition("Failed", "SignerValidationFailure", why, now);
    match object["status"]["conditions"].as_array_mut() {
        Some(list) => list.push(failed),
        None => object["status"]["conditions"] = json!([failed]),
    }
}

#[cfg(test)]
mod tests;
