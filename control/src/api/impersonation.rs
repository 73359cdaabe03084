//! User impersonation, as kube-apiserver's filter: `Impersonate-User`, `Impersonate-Group`
//! (repeated), `Impersonate-Uid` and `Impersonate-Extra-<key>` headers (`kubectl --as
//! --as-group --as-uid`) make the request one of another identity, when the caller may
//! `impersonate` each of them — `users`, `groups` or the `serviceaccounts` of a
//! `system:serviceaccount:<ns>:<name>` user in core, `uids` and `userextras/<key>` in
//! `authentication.k8s.io` — as administrators may and RBAC grants. The impersonated user is
//! in `system:authenticated` (unless a group says otherwise), a service account also in its
//! service-account groups when no group is named.

use http::HeaderMap;

use super::ApiState;
use crate::authn::Identity;
use crate::authz::rbac::Request;
use crate::status::ApiError;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";
const AUTHENTICATED: &str = "system:authenticated";
const UNAUTHENTICATED: &str = "system:unauthenticated";

/// What the headers ask to impersonate, if anything.
#[derive(Debug, Default, PartialEq, Eq)]
struct Asked {
    user: Option<String>,
    groups: Vec<String>,
    uid: Option<String>,
    extra: Vec<(String, String)>,
}

fn asked(headers: &HeaderMap) -> Result<Asked, ApiError> {
    let text = |v: &http::HeaderValue| {
        v.to_str()
            .map(str::to_owned)
            .map_err(|_| ApiError::bad_request("an impersonation header is not text"))
    };
    let mut out = Asked::default();
    for (name, value) in headers {
        let name = name.as_str();
        match name {
            USER => out.user = Some(text(value)?),
            GROUP => out.groups.push(text(value)?),
            UID => out.uid = Some(text(value)?),
            _ => {
                if let Some(key) = name.strip_prefix(EXTRA_PREFIX) {
                    let key = percent_encoding::percent_decode_str(key)
                        .decode_utf8_lossy()
                        .into_owned();
                    out.extra.push((key, text(value)?));
                }
            }
        }
    }
    let others = !out.groups.is_empty() || out.uid.is_some() || !out.extra.is_empty();
    if out.user.is_none() && others {
        return Err(ApiError::bad_request(
            "requested impersonation of groups, a uid or extra fields without impersonating a user",
        ));
    }
    Ok(out)
}

/// The identity the request acts as: `identity` itself, or the one it may impersonate.
pub async fn apply(
    state: &ApiState,
    identity: Identity,
    headers: &HeaderMap,
) -> Result<Identity, ApiError> {
    let asked = asked(headers)?;
    let Some(user) = asked.user else {
        return Ok(identity);
    };
    let account = user
        .strip_prefix(SERVICE_ACCOUNT_PREFIX)
        .and_then(|rest| rest.split_once(':'));
    let mut checks: Vec<Check> = Vec::new();
    match account {
        Some((namespace, name)) => {
            checks.push(Check::new("", "serviceaccounts", Some(namespace), name))
        }
        None => checks.push(Check::new("", "users", None, &user)),
    }
    for group in &asked.groups {
        checks.push(Check::new("", "groups", None, group));
    }
    if let Some(uid) = &asked.uid {
        checks.push(Check::new("authentication.k8s.io", "uids", None, uid));
    }
    for (key, value) in &asked.extra {
        let mut check = Check::new("authentication.k8s.io", "userextras", None, value);
        check.subresource = Some(key.clone());
        checks.push(check);
    }
    if !identity.is_admin() {
        let policy = state.rbac.policy(&state.store).await?;
        for check in &checks {
            if !policy.allows(&identity, &check.request()) {
                return Err(check.refusal(&identity));
            }
        }
    }
    let mut groups = asked.groups.clone();
    if let (Some((namespace, _)), true) = (account, groups.is_empty()) {
        groups = vec![
            "system:serviceaccounts".to_owned(),
            format!("system:serviceaccounts:{namespace}"),
        ];
    }
    if user != "system:anonymous"
        && !groups
            .iter()
            .any(|g| g == AUTHENTICATED || g == UNAUTHENTICATED)
    {
        groups.push(AUTHENTICATED.to_owned());
    }
    let mut extra = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (key, value) in asked.extra {
        extra.entry(key).or_default().push(value);
    }
    Ok(Identity {
        user,
        uid: asked.uid.unwrap_or_default(),
        groups,
        extra,
    })
}

/// One `impersonate` permission a request needs.
struct Check {
    group: &'static str,
    resource: &'static str,
    subresource: Option<String>,
    namespace: Option<String>,
    name: String,
}

impl Check {
    fn new(
        group: &'static str,
        resource: &'static str,
        namespace: Option<&str>,
        name: &str,
    ) -> Check {
        Check {
            group,
            resource,
            subresource: None,
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        }
    }

    fn request(&self) -> Request<'_> {
        Request::Resource {
            verb: "impersonate",
            group: self.group,
            resource: self.resource,
            subresource: self.subresource.as_deref(),
            namespace: self.namespace.as_deref(),
            name: Some(&self.name),
        }
    }

    /// kube's refusal: `users "jane" is forbidden: User "bob" cannot impersonate resource
    /// "users" in API group "" at the cluster scope`.
    fn refusal(&self, identity: &Identity) -> ApiError {
        let full = match &self.subresource {
            Some(sub) => format!("{}/{sub}", self.resource),
            None => self.resource.to_owned(),
        };
        let group_resource = match self.group {
            "" => full.clone(),
            g => format!("{full}.{g}"),
        };
        let scope = match &self.namespace {
            Some(ns) => format!("in the namespace {ns:?}"),
            None => "at the cluster scope".to_owned(),
        };
        ApiError::forbidden(format!(
            "{group_resource} {:?} is forbidden: User {:?} cannot impersonate resource {full:?} in API group {:?} {scope}",
            self.name, identity.user, self.group
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn headers_name_the_user_groups_uid_and_extras() {
        let got = asked(&headers(&[
            ("Impersonate-User", "jane"),
            ("Impersonate-Group", "dev"),
            ("Impersonate-Group", "ops"),
            ("Impersonate-Extra-Scopes%2Fview", "a"),
        ]))
        .unwrap();
        assert_eq!(got.user.as_deref(), Some("jane"));
        assert_eq!(got.groups, ["dev", "ops"]);
        assert_eq!(got.extra, [("scopes/view".to_owned(), "a".to_owned())]);
        let e = asked(&headers(&[("Impersonate-Group", "dev")])).unwrap_err();
        assert_eq!(e.code, http::StatusCode::BAD_REQUEST);
        assert_eq!(asked(&HeaderMap::new()).unwrap(), Asked::default());
    }
}
