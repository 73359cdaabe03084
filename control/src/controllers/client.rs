//! The controllers' client: requests go through the same router, validation, admission and
//! storage path as kubectl's, in process (no TLS, no socket), as the identity of the
//! controller manager. What a controller writes is therefore exactly what a user could have
//! written; only the transport is skipped.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::Value;

use crate::api::ApiState;
use crate::authn::Identity;
use crate::kinds::Resource;
use crate::router;

/// An answer other than 2xx, as the `Status` said it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ClientError {
    pub code: StatusCode,
    pub reason: String,
    pub message: String,
}

impl ClientError {
    pub fn is_already_exists(&self) -> bool {
        self.code == StatusCode::CONFLICT && self.reason == "AlreadyExists"
    }

    pub fn is_not_found(&self) -> bool {
        self.code == StatusCode::NOT_FOUND
    }

    pub fn is_conflict(&self) -> bool {
        self.code == StatusCode::CONFLICT
    }

    /// An error that only lacks the newest state: retry without a warning.
    pub fn is_transient(&self) -> bool {
        self.is_conflict() || self.is_not_found()
    }
}

/// The URL path of a resource's collection in `namespace`, or of one object when `name` is
/// given.
pub fn resource_path(resource: &Resource, namespace: Option<&str>, name: Option<&str>) -> String {
    let mut path = if resource.group.is_empty() {
        format!("/api/{}", resource.version)
    } else {
        format!("/apis/{}/{}", resource.group, resource.version)
    };
    if let Some(ns) = namespace.filter(|_| resource.namespaced()) {
        path.push_str("/namespaces/");
        path.push_str(ns);
    }
    path.push('/');
    path.push_str(resource.plural);
    if let Some(name) = name {
        path.push('/');
        path.push_str(name);
    }
    path
}

/// A client of this server's own API.
#[derive(Clone)]
pub struct Loopback {
    state: Arc<ApiState>,
    identity: Identity,
}

impl Loopback {
    /// A client acting as `user` with administrator rights (the controller manager's).
    pub fn new(state: Arc<ApiState>, user: &str) -> Loopback {
        Loopback {
            state,
            identity: Identity {
                user: user.to_owned(),
                groups: vec!["system:masters".to_owned()],
                ..Default::default()
            },
        }
    }

    /// `kube-controller-manager/bosun` for `system:kube-controller-manager`.
    fn agent(&self) -> String {
        let user = &self.identity.user;
        format!("{}/bosun", user.strip_prefix("system:").unwrap_or(user))
    }

    /// Sends one request; the answer's JSON on 2xx.
    pub async fn request(
        &self,
        method: Method,
        path_and_query: &str,
        content_type: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let request = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(header::CONTENT_TYPE, content_type)
            .header(header::ACCEPT, "application/json")
            // The field manager of its writes, as kube's controllers are named.
            .header(header::USER_AGENT, self.agent())
            .body(Full::new(bytes))
            .map_err(|e| ClientError {
                code: StatusCode::BAD_REQUEST,
                reason: "BadRequest".into(),
                message: format!("building the request for {path_and_query}: {e}"),
            })?;
        let response = router::route(&self.state, Some(&self.identity), request).await;
        let code = response.status();
        let body = match response.into_body().collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(never) => match never {},
        };
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if code.is_success() {
            return Ok(value);
        }
        Err(ClientError {
            code,
            reason: value["reason"].as_str().unwrap_or("Unknown").to_owned(),
            message: value["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned()),
        })
    }

    /// The store the API writes to (for reads a controller makes without a cache).
    pub fn store(&self) -> &Arc<dyn crate::store::Store> {
        &self.state.store
    }

    /// GET of one object.
    pub async fn get(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ClientError> {
        let path = resource_path(resource, namespace, Some(name));
        self.request(Method::GET, &path, "application/json", None)
            .await
    }

    /// A JSON merge patch of one object (put `metadata.resourceVersion` in it to make it
    /// conditional).
    pub async fn merge_patch(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> Result<Value, ClientError> {
        let path = resource_path(resource, namespace, Some(name));
        self.request(
            Method::PATCH,
            &path,
            "application/merge-patch+json",
            Some(patch),
        )
        .await
    }

    /// POST of a new object.
    pub async fn create(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
        object: &Value,
    ) -> Result<Value, ClientError> {
        let path = resource_path(resource, namespace, None);
        self.request(Method::POST, &path, "application/json", Some(object))
            .await
    }

    /// A JSON merge patch of one object's `status` subresource.
    pub async fn merge_patch_status(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> Result<Value, ClientError> {
        let path = format!("{}/status", resource_path(resource, namespace, Some(name)));
        self.request(
            Method::PATCH,
            &path,
            "application/merge-patch+json",
            Some(patch),
        )
        .await
    }

    /// DELETE of one object with DeleteOptions `options`.
    pub async fn delete(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
        name: &str,
        options: &Value,
    ) -> Result<Value, ClientError> {
        let path = resource_path(resource, namespace, Some(name));
        self.request(Method::DELETE, &path, "application/json", Some(options))
            .await
    }
}

/// The store revision an answer's `metadata.resourceVersion` names (0 if none).
pub fn revision_of(object: &Value) -> i64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds;

    #[test]
    fn paths_follow_the_api_layout() {
        let pods = kinds::find("", "v1", "pods").unwrap();
        let deployments = kinds::find("apps", "v1", "deployments").unwrap();
        let nodes = kinds::find("", "v1", "nodes").unwrap();
        assert_eq!(
            resource_path(pods, Some("ns"), Some("p")),
            "/api/v1/namespaces/ns/pods/p"
        );
        assert_eq!(
            resource_path(deployments, Some("ns"), None),
            "/apis/apps/v1/namespaces/ns/deployments"
        );
        assert_eq!(
            resource_path(nodes, Some("ignored"), Some("n1")),
            "/api/v1/nodes/n1"
        );
    }
}
