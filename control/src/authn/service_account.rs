//! Service-account tokens as Kubernetes issues them (TokenRequest, `api/token_request.rs`) and
//! authenticates them: an ES256 JWT (`sa_key`) with kube's claims — `iss`, `sub`
//! `system:serviceaccount:<ns>:<name>`, `aud`, `exp`, `iat`, `nbf`, `jti` and the private
//! `kubernetes.io` claim {namespace, serviceaccount {name, uid}, pod {name, uid}}. A token
//! authenticates while its signature, issuer, audience (one of the API server's,
//! `--api-audiences`) and lifetime verify, its ServiceAccount still exists with the same uid,
//! and, when bound to a pod, that pod still exists with the same uid: deleting the pod (or the
//! account) revokes it. The identity is `system:serviceaccount:<ns>:<name>` in
//! `system:serviceaccounts`, `system:serviceaccounts:<ns>` and `system:authenticated`.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::identity::Identity;
use super::sa_key::{looks_like_jwt, SigningKey, TokenError};
use crate::api::decode_stored;
use crate::api::path::object_key;
use crate::kinds;
use crate::pki::PkiError;
use crate::store::Store;

/// kubeadm's `--service-account-issuer`.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The user-name prefix of service accounts.
pub const USER_PREFIX: &str = "system:serviceaccount:";
/// The group of every service account.
pub const ALL_GROUP: &str = "system:serviceaccounts";
/// The group of every authenticated caller.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// A token's claims.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    #[serde(default)]
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: Private,
}

/// The `kubernetes.io` claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Private {
    pub namespace: String,
    pub serviceaccount: Ref,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnafter: Option<i64>,
}

/// An object a token names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    pub name: String,
    pub uid: String,
}

/// The service account a pod runs as (`default` when the spec names none: kube's
/// ServiceAccount admission sets it).
pub fn pod_service_account(pod: &Value) -> &str {
    match pod["spec"]["serviceAccountName"].as_str() {
        Some(name) if !name.is_empty() => name,
        _ => "default",
    }
}

/// The user name of a service account.
pub fn user_name(namespace: &str, name: &str) -> String {
    format!("{USER_PREFIX}{namespace}:{name}")
}

/// The identity of a service account.
pub fn identity(namespace: &str, name: &str) -> Identity {
    Identity {
        user: user_name(namespace, name),
        groups: vec![
            ALL_GROUP.to_owned(),
            format!("{ALL_GROUP}:{namespace}"),
            AUTHENTICATED_GROUP.to_owned(),
        ],
        ..Default::default()
    }
}

/// Extra keys kube-apiserver gives a service-account token's user (`kubectl auth whoami`).
pub const EXTRA_CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";
pub const EXTRA_POD_NAME: &str = "authentication.kubernetes.io/pod-name";
pub const EXTRA_POD_UID: &str = "authentication.kubernetes.io/pod-uid";

/// The identity a verified token carries: the account's, with its uid, the token's id
/// (`JTI=…`) and, for a pod-bound token, the pod's name and uid as extra.
fn token_identity(claims: &Claims) -> Identity {
    let private = &claims.kubernetes;
    let mut id = identity(&private.namespace, &private.serviceaccount.name);
    id.uid = private.serviceaccount.uid.clone();
    let mut extra = |key: &str, value: String| id.extra.insert(key.to_owned(), vec![value]);
    if !claims.jti.is_empty() {
        extra(EXTRA_CREDENTIAL_ID, format!("JTI={}", claims.jti));
    }
    if let Some(pod) = &private.pod {
        extra(EXTRA_POD_NAME, pod.name.clone());
        extra(EXTRA_POD_UID, pod.uid.clone());
    }
    id
}

/// The server's token issuer: its key, `iss` and the audiences it accepts.
#[derive(Debug)]
pub struct ServiceAccountTokens {
    key: SigningKey,
    pub issuer: String,
    /// What a token must be meant for to authenticate here (and what a TokenRequest without
    /// audiences gets).
    pub api_audiences: Vec<String>,
    /// Whether a pod-bound 3607 s token lives a year ([`ServiceAccountTokens::lifetime`]).
    pub extend_expiration: bool,
}

/// kube's `WarnOnlyBoundTokenExpirationSeconds`: what kubelet asks for the kube-api-access
/// token, and the one request kube-apiserver extends.
pub const EXTENDED_REQUEST_SECONDS: i64 = 3607;
/// kube's `ExpirationExtensionSeconds`: a year.
pub const EXTENSION_SECONDS: i64 = 365 * 24 * 3600;

impl ServiceAccountTokens {
    /// The issuer with the key of `pki_dir` (made there on first start).
    pub fn load(
        pki_dir: &Path,
        issuer: &str,
        api_audiences: Vec<String>,
    ) -> Result<ServiceAccountTokens, PkiError> {
        let api_audiences = match api_audiences.is_empty() {
            true => vec![issuer.to_owned()],
            false => api_audiences,
        };
        Ok(ServiceAccountTokens {
            key: SigningKey::load_or_create(pki_dir)?,
            issuer: issuer.to_owned(),
            api_audiences,
            extend_expiration: true,
        })
    }

    /// With `--service-account-extend-token-expiration` as given.
    pub fn with_extended_expiration(mut self, extend: bool) -> ServiceAccountTokens {
        self.extend_expiration = extend;
        self
    }

    /// A token's real lifetime and its `warnafter` (seconds from its issue) for a request of
    /// `seconds`: a pod-bound request of exactly 3607 s lives a year and warns after the
    /// 3607 s, as kube-apiserver's extended expiration; any other as asked.
    pub fn lifetime(&self, seconds: i64, pod_bound: bool) -> (i64, Option<i64>) {
        match self.extend_expiration && pod_bound && seconds == EXTENDED_REQUEST_SECONDS {
            true => (EXTENSION_SECONDS, Some(seconds)),
            false => (seconds, None),
        }
    }

    /// A signed token for these claims (`iss` is set here).
    pub fn sign(&self, mut claims: Claims) -> Result<String, TokenError> {
        claims.iss = self.issuer.clone();
        self.key.sign(&claims)
    }

    /// The identity of `token`, if it is one of our service-account tokens for the API and
    /// still valid.
    pub async fn authenticate(&self, store: &dyn Store, token: &str) -> Option<Identity> {
        self.authenticate_for(store, token, &self.api_audiences)
            .await
            .map(|(identity, _)| identity)
    }

    /// The identity of `token` for one of `audiences` (a TokenReview's), with those of them
    /// the token is meant for.
    pub async fn authenticate_for(
        &self,
        store: &dyn Store,
        token: &str,
        audiences: &[String],
    ) -> Option<(Identity, Vec<String>)> {
        if !looks_like_jwt(token) {
            return None;
        }
        let claims = self.key.verify(token, &self.issuer, audiences).ok()?;
        let meant: Vec<String> = audiences
            .iter()
            .filter(|a| claims.aud.contains(a))
            .cloned()
            .collect();
        let private = &claims.kubernetes;
        let (ns, account) = (&private.namespace, &private.serviceaccount);
        if claims.sub != user_name(ns, &account.name) {
            return None;
        }
        let stored = |plural: &'static str, name: String| async move {
            let resource = kinds::find("", "v1", plural)?;
            let kv = store
                .get(&object_key(resource, Some(ns), &name))
                .await
                .ok()??;
            decode_stored(&kv).ok()
        };
        let sa = stored("serviceaccounts", account.name.clone()).await?;
        if !same_live_object(&sa, &account.uid) {
            return None;
        }
        if let Some(pod_ref) = &private.pod {
            let pod = stored("pods", pod_ref.name.clone()).await?;
            if pod["metadata"]["uid"] != pod_ref.uid.as_str() {
                return None;
            }
        }
        Some((token_identity(&claims), meant))
    }
}

/// Whether `object` has uid `uid` and is not being deleted.
fn same_live_object(object: &Value, uid: &str) -> bool {
    object["metadata"]["uid"] == uid && object["metadata"]["deletionTimestamp"].is_null()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_service_account_is_a_user_in_three_groups() {
        let id = identity("team", "builder");
        assert_eq!(id.user, "system:serviceaccount:team:builder");
        assert_eq!(
            id.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:team",
                "system:authenticated"
            ]
        );
        assert!(!id.is_admin());
        assert!(id.uid.is_empty() && id.extra.is_empty());
        assert_eq!(id.node_name(), None);
        assert_eq!(pod_service_account(&json!({"spec": {}})), "default");
        let account = Ref {
            name: "builder".into(),
            uid: "sa-uid".into(),
        };
        let mut claims = Claims {
            iss: DEFAULT_ISSUER.into(),
            sub: user_name("team", "builder"),
            aud: vec![DEFAULT_ISSUER.into()],
            exp: 2,
            iat: 1,
            nbf: 1,
            jti: "j1".into(),
            kubernetes: Private {
                namespace: "team".into(),
                serviceaccount: account,
                pod: None,
                warnafter: None,
            },
        };
        let unbound = token_identity(&claims);
        assert_eq!(
            (unbound.user.as_str(), unbound.uid.as_str()),
            (id.user.as_str(), "sa-uid")
        );
        assert_eq!(unbound.groups, id.groups);
        assert_eq!(unbound.extra.len(), 1);
        assert_eq!(unbound.extra[EXTRA_CREDENTIAL_ID], ["JTI=j1"]);
        claims.kubernetes.pod = Some(Ref {
            name: "web-0".into(),
            uid: "pod-uid".into(),
        });
        let bound = token_identity(&claims);
        assert_eq!(bound.extra[EXTRA_POD_NAME], ["web-0"]);
        assert_eq!(bound.extra[EXTRA_POD_UID], ["pod-uid"]);
        assert_eq!(
            pod_service_account(&json!({"spec": {"serviceAccountName": "b"}})),
            "b"
        );
    }
}
