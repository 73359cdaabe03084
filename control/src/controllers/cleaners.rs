//! kube-controller-manager's two cleaners, as periodic passes through the API:
//! - the token cleaner deletes bootstrap-token Secrets (`kube-system`, type
//!   `bootstrap.kubernetes.io/token`) whose `expiration` has passed (or cannot be read);
//! - the CSR cleaner deletes CertificateSigningRequests that are done with: approved, denied or
//!   failed for more than an hour (from the condition's update time), pending for more than a
//!   day (from creation).
//!
//! A failed list or delete is logged and tried again at the next pass.

use std::time::Duration;

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::client::{resource_path, Loopback};
use crate::authn::bootstrap;
use crate::kinds;

const PASS: Duration = Duration::from_secs(5);
/// Approved, denied or failed CSRs are kept this long after their condition.
const DECIDED_KEEP: time::Duration = time::Duration::hours(1);
/// Pending CSRs are kept this long after their creation.
const PENDING_KEEP: time::Duration = time::Duration::hours(24);

/// Starts both cleaners.
pub fn spawn(client: Loopback) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let now = OffsetDateTime::now_utc();
            clean_tokens(&client, now).await;
            clean_csrs(&client, now).await;
            tokio::time::sleep(PASS).await;
        }
    })
}

fn time_of(value: &Value) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(value.as_str()?, &Rfc3339).ok()
}

/// Whether a CSR is done with at `now`.
pub fn csr_expired(csr: &Value, now: OffsetDateTime) -> bool {
    let conditions = csr["status"]["conditions"].as_array();
    let decided = conditions.into_iter().flatten().find(|c| {
        matches!(c["type"].as_str(), Some("Approved" | "Denied" | "Failed"))
            && c["status"] != "False"
    });
    match decided {
        Some(c) => {
            let at = time_of(&c["lastUpdateTime"]).or_else(|| time_of(&c["lastTransitionTime"]));
            at.is_some_and(|at| now - at > DECIDED_KEEP)
        }
        None => {
            time_of(&csr["metadata"]["creationTimestamp"]).is_some_and(|at| now - at > PENDING_KEEP)
        }
    }
}

async fn list(client: &Loopback, path: &str) -> Vec<Value> {
    match client
        .request(http::Method::GET, path, "application/json", None)
        .await
    {
        Ok(list) => list["items"].as_array().cloned().unwrap_or_default(),
        Err(e) => {
            tracing::warn!(%path, error = %e, "cleaner: listing");
            Vec::new()
        }
    }
}

async fn delete(
    client: &Loopback,
    resource: &kinds::Resource,
    namespace: Option<&str>,
    object: &Value,
) {
    let name = object["metadata"]["name"].as_str().unwrap_or("");
    let options = json!({"preconditions": {"uid": object["metadata"]["uid"]}});
    match client.delete(resource, namespace, name, &options).await {
        Ok(_) => tracing::info!(kind = resource.kind, %name, "cleaner: deleted"),
        Err(e) if e.is_not_found() || e.is_conflict() => {}
        Err(e) => tracing::warn!(kind = resource.kind, %name, error = %e, "cleaner: deleting"),
    }
}

async fn clean_tokens(client: &Loopback, now: OffsetDateTime) {
    let Some(secrets) = kinds::find("", "v1", "secrets") else {
        return;
    };
    let path = resource_path(secrets, Some(bootstrap::NAMESPACE), None);
    for secret in list(client, &path).await {
        if bootstrap::expired(&secret, now) {
            delete(client, secrets, Some(bootstrap::NAMESPACE), &secret).await;
        }
    }
}

async fn clean_csrs(client: &Loopback, now: OffsetDateTime) {
    let Some(csrs) = kinds::find("certificates.k8s.io", "v1", "certificatesigningrequests") else {
        return;
    };
    for csr in list(client, &resource_path(csrs, None, None)).await {
        if csr_expired(&csr, now) {
            delete(client, csrs, None, &csr).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> OffsetDateTime {
        OffsetDateTime::parse(text, &Rfc3339).unwrap()
    }

    #[test]
    fn decided_csrs_go_after_an_hour_pending_ones_after_a_day() {
        let now = at("2026-12-02T12:00:00Z");
        let approved = |when: &str| {
            json!({"metadata": {"creationTimestamp": "2026-12-01T00:00:00Z"},
                   "status": {"conditions": [{"type": "Approved", "status": "True",
                                              "lastUpdateTime": when}]}})
        };
        assert!(csr_expired(&approved("2026-12-02T10:59:00Z"), now));
        assert!(!csr_expired(&approved("2026-12-02T11:30:00Z"), now));
        let pending = |created: &str| json!({"metadata": {"creationTimestamp": created}});
        assert!(!csr_expired(&pending("2026-12-01T13:00:00Z"), now));
        assert!(csr_expired(&pending("2026-12-01T11:00:00Z"), now));
    }

    #[test]
    fn bootstrap_tokens_expire_at_their_expiration() {
        use base64::Engine;
        let encode = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let token = |expiration: &str| json!({"type": bootstrap::SECRET_TYPE, "data": {"expiration": encode(expiration)}});
        let now = at("2026-12-02T12:00:00Z");
        assert!(bootstrap::expired(&token("2026-12-02T11:00:00Z"), now));
        assert!(!bootstrap::expired(&token("2026-12-03T00:00:00Z"), now));
        assert!(
            bootstrap::expired(&token("tomorrow"), now),
            "unreadable counts as passed"
        );
        let other =
            json!({"type": "Opaque", "data": {"expiration": encode("2020-01-01T00:00:00Z")}});
        assert!(!bootstrap::expired(&other, now));
        let forever = json!({"type": bootstrap::SECRET_TYPE, "data": {}});
        assert!(!bootstrap::expired(&forever, now));
    }
}
