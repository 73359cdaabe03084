//! The [`TokenSource`] of a joined node, kubelet's token manager: a TokenRequest
//! (`serviceaccounts/<name>/token`, bound to the pod by name and uid — all the Node authorizer
//! lets a node ask for) per pod, audience and lifetime, cached until [`requires_refresh`]
//! says it is due; expired entries are dropped on the next insert, so tokens of pods that are
//! gone do not pile up.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};

use crate::token_source::{requires_refresh, Token, TokenKey, TokenSource};

/// Requests tokens with the node's client.
pub struct ApiTokens {
    client: kube::Client,
    cache: Arc<Mutex<BTreeMap<TokenKey, Token>>>,
}

impl ApiTokens {
    pub fn new(client: kube::Client) -> Self {
        ApiTokens {
            client,
            cache: Arc::default(),
        }
    }
}

/// The TokenRequest kubelet sends for `key`.
pub fn request(key: &TokenKey) -> TokenRequest {
    TokenRequest {
        spec: TokenRequestSpec {
            audiences: match key.audience.is_empty() {
                true => Vec::new(),
                false => vec![key.audience.clone()],
            },
            expiration_seconds: Some(key.expiration_seconds),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(key.pod_name.clone()),
                uid: Some(key.pod_uid.clone()),
            }),
        },
        ..TokenRequest::default()
    }
}

/// The token of the API's answer, with when it expires and its granted lifetime.
pub fn token_of(answer: &TokenRequest, asked: i64) -> Result<Token, String> {
    let status = answer
        .status
        .as_ref()
        .ok_or("the TokenRequest answer has no status")?;
    if status.token.is_empty() {
        return Err("the TokenRequest answer has no token".into());
    }
    let expires_unix = status.expiration_timestamp.0.timestamp();
    let expires = SystemTime::UNIX_EPOCH
        + Duration::from_secs(u64::try_from(expires_unix).map_err(|_| "expiration before 1970")?);
    let seconds = answer.spec.expiration_seconds.unwrap_or(asked);
    Ok(Token {
        token: status.token.clone(),
        expires,
        lifetime: Duration::from_secs(u64::try_from(seconds).unwrap_or(0)),
    })
}

impl TokenSource for ApiTokens {
    fn token(&self, key: TokenKey) -> BoxFuture<'static, Result<String, String>> {
        let client = self.client.clone();
        let cache = self.cache.clone();
        Box::pin(async move {
            let now = SystemTime::now();
            let cached = lock(&cache).get(&key).cloned();
            if let Some(t) = cached.as_ref().filter(|t| !requires_refresh(t, now)) {
                return Ok(t.token.clone());
            }
            let api: Api<ServiceAccount> = Api::namespaced(client, &key.namespace);
            let answer = api
                .create_token_request(&key.service_account, &PostParams::default(), &request(&key))
                .await;
            let token = match answer
                .map_err(|e| e.to_string())
                .and_then(|a| token_of(&a, key.expiration_seconds))
            {
                Ok(token) => token,
                // A token still valid is used while the API does not answer (kubelet's way).
                Err(_) if cached.as_ref().is_some_and(|t| t.expires > now) => {
                    return Ok(cached.map(|t| t.token).unwrap_or_default());
                }
                Err(e) => return Err(format!("failed to fetch token: {e}")),
            };
            let mut cache = lock(&cache);
            cache.retain(|_, t| t.expires > now);
            cache.insert(key, token.clone());
            Ok(token.token)
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::authentication::v1::TokenRequestStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn requests_are_bound_to_the_pod_and_answers_give_the_expiry() {
        let key = TokenKey {
            namespace: "default".into(),
            service_account: "default".into(),
            audience: "vault".into(),
            expiration_seconds: 600,
            pod_name: "web".into(),
            pod_uid: "u1".into(),
        };
        let r = request(&key);
        assert_eq!(r.spec.audiences, ["vault"]);
        assert_eq!(r.spec.expiration_seconds, Some(600));
        let bound = r.spec.bound_object_ref.expect("bound");
        assert_eq!(
            (bound.kind.as_deref(), bound.uid.as_deref()),
            (Some("Pod"), Some("u1"))
        );
        assert!(request(&TokenKey {
            audience: String::new(),
            ..key
        })
        .spec
        .audiences
        .is_empty());
        let at = k8s_openapi::chrono::DateTime::from_timestamp(2_000_000_000, 0).expect("time");
        let answer = TokenRequest {
            spec: TokenRequestSpec {
                expiration_seconds: Some(1200),
                ..Default::default()
            },
            status: Some(TokenRequestStatus {
                token: "jwt".into(),
                expiration_timestamp: Time(at),
            }),
            ..Default::default()
        };
        let t = token_of(&answer, 600).expect("token");
        assert_eq!(t.token, "jwt");
        assert_eq!(t.lifetime, Duration::from_secs(1200));
        assert_eq!(
            t.expires,
            SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000)
        );
        assert!(token_of(&TokenRequest::default(), 600).is_err());
    }
}
