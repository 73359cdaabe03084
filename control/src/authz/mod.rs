//! Authorization: may this identity do this verb on this resource? One function,
//! [`authorize`], decides for every resource request before the handler acts:
//!
//! - administrators (`system:masters`) may do everything;
//! - nodes (`system:node:<name>` in `system:nodes`) get Kubernetes' Node authorizer and
//!   NodeRestriction admission rules in one place (`node`): read nodes, pods, services,
//!   endpoints, endpointslices and namespaces; write only their own Node and Lease, the status
//!   of pods bound to them, and events; create only mirror pods bound to and owned by
//!   themselves and delete only pods bound to them (`node_pods`, refused in
//!   NodeRestriction's words); read a Secret, ConfigMap or
//!   PersistentVolumeClaim only while a pod bound to them uses it; request a token for a
//!   ServiceAccount only bound to a pod bound to them that runs as it (`node_tokens`); create
//!   and read CSRs;
//! - bootstrappers (`system:bootstrappers`) may create and read CSRs only;
//! - anyone else (service accounts included), and a node or bootstrapper beyond those rules,
//!   may do what the cluster's RBAC roles and bindings grant it (`rbac`).
//!
//! A refusal is 403 Forbidden in kube-apiserver's words (`secrets "s" is forbidden: User
//! "system:node:n1" cannot get resource "secrets" in API group "" in the namespace "default":
//! no relationship found between node 'n1' and this object`).
//! `admit` then checks what a node's write of its Node would store (labels, taints), as
//! NodeRestriction admission does.
//! What a rule needs from the store (the stored pod, the pods bound to a node) comes through
//! the small [`Facts`] seam, so the rule table is tested without a store.

pub(crate) mod admission;
mod node;
mod node_pods;
mod node_tokens;
mod pod_index;
pub mod rbac;
pub mod store_facts;

use serde_json::Value;

use crate::authn::Identity;
use crate::kinds::Resource;
use crate::status::ApiError;

pub use admission::admit;
pub use pod_index::PodIndex;
pub use store_facts::StoreFacts;

/// What a request asks to do (Kubernetes' authorizer attributes).
#[derive(Clone, Copy, Debug)]
pub struct Attributes<'a> {
    /// get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: &'a str,
    pub resource: &'static Resource,
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    /// The object's name: the path's, the body's on create, or the `metadata.name` field
    /// selector of a list or watch (as kube-apiserver's request info does).
    pub name: Option<&'a str>,
    /// The request body's object, on create.
    pub object: Option<&'a Value>,
}

impl Attributes<'_> {
    fn is(&self, group: &str, plural: &str) -> bool {
        self.resource.group == group && self.resource.plural == plural
    }

    /// The request as RBAC matches it: a create of a new object has no name (resourceNames
    /// cannot limit creates).
    pub fn rbac_request(&self) -> rbac::Request<'_> {
        let creating = self.verb == "create" && self.subresource.is_none();
        rbac::Request::Resource {
            verb: self.verb,
            group: self.resource.group,
            resource: self.resource.plural,
            subresource: self.subresource,
            namespace: self.namespace,
            name: if creating { None } else { self.name },
        }
    }

    fn reading(&self) -> bool {
        matches!(self.verb, "get" | "list" | "watch")
    }
}

/// A question a rule asks of each pod bound to a node.
pub type PodTest<'a> = dyn for<'v> Fn(&'v Value) -> bool + Send + Sync + 'a;

/// What the store knows that a rule needs.
#[async_trait::async_trait]
pub trait Facts: Send + Sync {
    /// The stored object, if any.
    async fn stored(
        &self,
        resource: &'static Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, ApiError>;

    /// The cluster's RBAC roles and bindings.
    async fn policy(&self) -> Result<std::sync::Arc<rbac::Policy>, ApiError>;

    /// Whether a pod of `namespace` bound to `node` passes `test`.
    async fn any_pod_on_node(
        &self,
        namespace: &str,
        node: &str,
        test: &PodTest<'_>,
    ) -> Result<bool, ApiError>;
}

/// A refusal, with the authorizer's reason (may be empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied(pub String);

/// Allows the request, or answers 403 in Kubernetes' words.
pub async fn authorize(
    identity: &Identity,
    attrs: &Attributes<'_>,
    facts: &dyn Facts,
) -> Result<(), ApiError> {
    match decide(identity, attrs, facts).await? {
        None => Ok(()),
        Some(Denied(reason)) => Err(forbidden(identity, attrs, &reason)),
    }
}

/// `None` to allow, or why not (also what an access review answers).
pub async fn decide(
    identity: &Identity,
    attrs: &Attributes<'_>,
    facts: &dyn Facts,
) -> Result<Option<Denied>, ApiError> {
    if identity.is_admin() {
        return Ok(None);
    }
    if let Some(node) = identity.node_name() {
        let denied = node::decide(node, attrs, facts).await?;
        if denied.is_none() || rbac_allows(identity, attrs, facts).await? {
            return Ok(None);
        }
        return Ok(denied);
    }
    if identity.is_bootstrapper() && csr_self_service(attrs) {
        return Ok(None);
    }
    match rbac_allows(identity, attrs, facts).await? {
        true => Ok(None),
        false => Ok(Some(Denied(String::new()))),
    }
}

/// Whether the cluster's RBAC policy allows the request (after the node and bootstrap rules,
/// as kube-apiserver's authorizer chain `Node,RBAC` asks).
async fn rbac_allows(
    identity: &Identity,
    attrs: &Attributes<'_>,
    facts: &dyn Facts,
) -> Result<bool, ApiError> {
    let policy = facts.policy().await?;
    Ok(policy.allows(identity, &attrs.rbac_request()))
}

/// Creating and reading CertificateSigningRequests (Kubernetes' system:node-bootstrapper).
fn csr_self_service(attrs: &Attributes<'_>) -> bool {
    attrs.is("certificates.k8s.io", "certificatesigningrequests")
        && attrs.subresource.is_none()
        && matches!(attrs.verb, "create" | "get" | "list" | "watch")
}

/// The 403 `Status` kube-apiserver answers.
pub fn forbidden(identity: &Identity, attrs: &Attributes<'_>, reason: &str) -> ApiError {
    let r = attrs.resource;
    let resource = match attrs.subresource {
        Some(sub) => format!("{}/{sub}", r.plural),
        None => r.plural.to_owned(),
    };
    let scope = match attrs.namespace {
        Some(ns) => format!("in the namespace {ns:?}"),
        None => "at the cluster scope".to_owned(),
    };
    let mut why = format!(
        "User {:?} cannot {} resource {resource:?} in API group {:?} {scope}",
        identity.user, attrs.verb, r.group
    );
    if !reason.is_empty() {
        why = format!("{why}: {reason}");
    }
    let name = attrs.name.unwrap_or("");
    let message = if name.is_empty() {
        format!("{} is forbidden: {why}", r.group_resource())
    } else {
        format!("{} {name:?} is forbidden: {why}", r.group_resource())
    };
    let mut e = ApiError::forbidden(message);
    e.details = Some(serde_json::json!({"name": name, "group": r.group, "kind": r.plural}));
    e
}

#[cfg(test)]
mod tests;
