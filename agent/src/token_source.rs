//! The seam through which pods get service-account tokens for their projected
//! `serviceAccountToken` sources, kubelet's token manager: a [`TokenSource`] answers a pod's
//! request from its cache while the token is fresh and asks the API (TokenRequest, bound to
//! the pod) otherwise — [`requires_refresh`] is kubelet's rule: once 80% of the lifetime has
//! passed, or 24 h after issue. The cluster module implements it; standalone agents have none
//! (static manifests may not ask for tokens, refused at parse).

use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;

/// What one token projection of one pod asks for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenKey {
    pub namespace: String,
    pub service_account: String,
    /// Empty: the API server's audiences.
    pub audience: String,
    pub expiration_seconds: i64,
    pub pod_name: String,
    pub pod_uid: String,
}

/// A token as the API issued it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub token: String,
    pub expires: SystemTime,
    /// The lifetime the API granted (`spec.expirationSeconds` of its answer).
    pub lifetime: Duration,
}

/// The longest a token is used without asking again (kubelet's maxTTL).
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// Whether `token` must be requested again at `now`: 80% of its lifetime passed, or 24 h
/// since it was issued (kubelet's `requiresRefresh`, without its jitter).
pub fn requires_refresh(token: &Token, now: SystemTime) -> bool {
    let issued = token
        .expires
        .checked_sub(token.lifetime)
        .unwrap_or(token.expires);
    if now >= issued + MAX_TTL {
        return true;
    }
    let fifth = token.lifetime / 5;
    now >= token.expires.checked_sub(fifth).unwrap_or(token.expires)
}

/// Requests and caches tokens for the pods of this node.
pub trait TokenSource: Send + Sync {
    /// A fresh token for `key`; the error says why none could be had.
    fn token(&self, key: TokenKey) -> BoxFuture<'static, Result<String, String>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_renewed_after_80_percent_of_their_life_or_a_day() {
        let issued = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let hour = Token {
            token: "t".into(),
            expires: issued + Duration::from_secs(3600),
            lifetime: Duration::from_secs(3600),
        };
        assert!(!requires_refresh(&hour, issued));
        assert!(!requires_refresh(&hour, issued + Duration::from_secs(2879)));
        assert!(requires_refresh(&hour, issued + Duration::from_secs(2880)));
        assert!(requires_refresh(&hour, issued + Duration::from_secs(4000)));
        let week = Token {
            token: "t".into(),
            expires: issued + Duration::from_secs(7 * 24 * 3600),
            lifetime: Duration::from_secs(7 * 24 * 3600),
        };
        assert!(!requires_refresh(
            &week,
            issued + Duration::from_secs(23 * 3600)
        ));
        assert!(requires_refresh(
            &week,
            issued + Duration::from_secs(24 * 3600)
        ));
    }
}
