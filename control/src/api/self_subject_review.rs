//! `authentication.k8s.io/v1` SelfSubjectReview (`kubectl auth whoami`): a POST to
//! `selfsubjectreviews` answers with the caller's user name, uid, groups and extra, as the
//! authenticator found them (plus `system:authenticated`, which kube adds to every
//! authenticated user). Any authenticated caller may ask (kube's `system:basic-user`). Nothing
//! is stored; the body (protobuf from kubectl) carries nothing the answer needs. Also the
//! group's discovery entries and its OpenAPI document (`openapi_paths`).

use http::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::authn::service_account::AUTHENTICATED_GROUP;
use crate::authn::Identity;
use crate::http_util::{json_response, ResponseBody};
use crate::status::ApiError;

pub const GROUP: &str = "authentication.k8s.io";
pub const VERSION: &str = "v1";
pub const PLURAL: &str = "selfsubjectreviews";
pub const KIND: &str = "SelfSubjectReview";
const PATH: &str = "/apis/authentication.k8s.io/v1/selfsubjectreviews";

/// The review of `identity`.
pub fn review(identity: &Identity) -> Value {
    let mut groups = identity.groups.clone();
    if !groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
        groups.push(AUTHENTICATED_GROUP.to_owned());
    }
    let mut user_info = json!({"username": identity.user, "groups": groups});
    if !identity.uid.is_empty() {
        user_info["uid"] = json!(identity.uid);
    }
    if !identity.extra.is_empty() {
        user_info["extra"] = json!(identity.extra);
    }
    json!({"kind": KIND, "apiVersion": format!("{GROUP}/{VERSION}"),
        "metadata": {"creationTimestamp": null},
        "status": {"userInfo": user_info}})
}

/// Answers `POST .../selfsubjectreviews`; `None` for any other path.
pub fn handle(identity: &Identity, method: &Method, path: &str) -> Option<Response<ResponseBody>> {
    if path.trim_end_matches('/') != PATH {
        return None;
    }
    if method != Method::POST {
        let e = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
        );
        return Some(e.into_response());
    }
    let body = serde_json::to_vec(&review(identity)).unwrap_or_default();
    Some(json_response(StatusCode::CREATED, body.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_review_names_the_caller_and_its_groups() {
        let admin = Identity {
            user: "kubernetes-admin".into(),
            groups: vec!["system:masters".into()],
            ..Default::default()
        };
        let r = review(&admin);
        assert_eq!(r["status"]["userInfo"]["username"], "kubernetes-admin");
        assert_eq!(
            r["status"]["userInfo"]["groups"],
            json!(["system:masters", "system:authenticated"])
        );
        assert!(r["status"]["userInfo"].get("uid").is_none());
        assert!(r["status"]["userInfo"].get("extra").is_none());
        let mut sa = crate::authn::service_account::identity("ns", "app");
        sa.uid = "u-1".into();
        sa.extra.insert("k".into(), vec!["v".into()]);
        assert_eq!(review(&sa)["status"]["userInfo"]["uid"], "u-1");
        assert_eq!(
            review(&sa)["status"]["userInfo"]["extra"],
            json!({"k": ["v"]})
        );
        assert_eq!(
            review(&sa)["status"]["userInfo"]["groups"],
            json!([
                "system:serviceaccounts",
                "system:serviceaccounts:ns",
                "system:authenticated"
            ])
        );
        assert!(handle(&admin, &Method::GET, PATH).is_some());
        assert!(handle(&admin, &Method::POST, "/apis/authentication.k8s.io/v1/x").is_none());
    }
}
