//! Authentication: who is calling. A verified client certificate (CN = user, O = groups), or
//! `Authorization: Bearer <token>` — a static token from `--token-auth-file`, a service-account
//! token (a JWT we signed, `service_account`), or a bootstrap token kept as a Secret in
//! kube-system (`bootstrap`). A certificate wins over a token, as in
//! kube-apiserver's union authenticator. A token that is malformed, unknown or expired is 401,
//! and so is no credential at all: never a silent anonymous user.

pub mod bootstrap;
pub mod identity;
pub mod sa_key;
pub mod service_account;
pub mod token_file;

use http::{header, HeaderMap};

use crate::store::Store;
pub use identity::Identity;
pub use service_account::ServiceAccountTokens;
pub use token_file::TokenFile;

/// The outcome of authenticating one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Authenticated {
    Yes(Identity),
    /// No credentials, or credentials that do not verify: 401.
    No,
}

/// The caller of a request: the certificate's identity, else the bearer token's.
pub async fn authenticate(
    certificate: Option<&Identity>,
    headers: &HeaderMap,
    tokens: &TokenFile,
    service_accounts: Option<&ServiceAccountTokens>,
    store: &dyn Store,
) -> Authenticated {
    if let Some(id) = certificate {
        return Authenticated::Yes(id.clone());
    }
    let Some(token) = bearer(headers) else {
        return Authenticated::No;
    };
    if let Some(id) = tokens.find(token) {
        return Authenticated::Yes(id.clone());
    }
    if let Some(issuer) = service_accounts.filter(|_| sa_key::looks_like_jwt(token)) {
        return match issuer.authenticate(store, token).await {
            Some(id) => Authenticated::Yes(id),
            None => Authenticated::No,
        };
    }
    match bootstrap::authenticate(store, token).await {
        Some(id) => Authenticated::Yes(id),
        None => Authenticated::No,
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}
