//! The RBAC authorizer's copy of the cluster's Roles, ClusterRoles, RoleBindings and
//! ClusterRoleBindings: each kind followed from the store ([`ObjectCopy`]), the [`Policy`] built
//! again only after one of them changed. Like kube-apiserver's RBAC informers it trails the
//! store by a watch event; while a kind is not listed (start, a broken watch) the policy is
//! read from the store.

use std::sync::Arc;

use super::store_mirror::Derived;
use super::{decode_stored, map_store_error, validate_rbac::GROUP};
use crate::authz::rbac::Policy;
use crate::kinds::{self, Resource};
use crate::status::ApiError;
use crate::store::{ListOptions, Store};

const PLURALS: [&str; 4] = [
    "roles",
    "clusterroles",
    "rolebindings",
    "clusterrolebindings",
];

fn resources() -> Result<[&'static Resource; 4], ApiError> {
    let find = |plural| {
        kinds::find(GROUP, "v1", plural)
            .ok_or_else(|| ApiError::internal(format!("the kinds table has no {plural}")))
    };
    Ok([
        find(PLURALS[0])?,
        find(PLURALS[1])?,
        find(PLURALS[2])?,
        find(PLURALS[3])?,
    ])
}

/// The four kinds' copies and the policy last built from them.
#[derive(Default)]
pub struct RbacCache {
    copies: Derived<Policy, 4>,
}

impl RbacCache {
    /// The policy as the copies know it; `None` while one of them is not listed. The first
    /// call starts following the store.
    fn known(&self, store: &Arc<dyn Store>) -> Option<Arc<Policy>> {
        let resources = resources().ok()?;
        self.copies
            .get(store, resources.map(|r| r.key_prefix()), |maps| {
                let mut policy = Policy::default();
                for (objects, resource) in maps.iter().zip(resources) {
                    for object in objects.values() {
                        policy.add_object(resource.kind, object);
                    }
                }
                policy
            })
    }

    /// The cluster's RBAC policy: the copies', or the store's while they do not know it.
    pub async fn policy(&self, store: &Arc<dyn Store>) -> Result<Arc<Policy>, ApiError> {
        if let Some(policy) = self.known(store) {
            return Ok(policy);
        }
        let mut policy = Policy::default();
        for resource in resources()? {
            let page = store
                .list(&resource.key_prefix(), &ListOptions::default())
                .await
                .map_err(map_store_error)?;
            for kv in &page.items {
                policy.add_object(resource.kind, &decode_stored(kv)?);
            }
        }
        Ok(Arc::new(policy))
    }
}
