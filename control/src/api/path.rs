//! Parses a resource path into what it addresses: the resource of the kinds table, the
//! namespace, the name and the subresource, and maps it to its store key. Owns no I/O.
//!
//! Paths: `/api/v1/...` (core) and `/apis/<group>/<version>/...`, then
//! `<plural>[/<name>[/<subresource>]]` for cluster-scoped resources and for lists and watches
//! across every namespace, or `namespaces/<ns>/<plural>[/<name>[/<subresource>]]`.
//! `/api/v1/namespaces/<name>` is the Namespace itself.

use crate::kinds::{self, Resource};

/// What a resource path addresses.
#[derive(Clone, Debug)]
pub struct ResourcePath {
    pub resource: &'static Resource,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Why a path addresses nothing.
#[derive(Clone, Debug)]
pub enum PathError {
    /// No resource is served at the path.
    NoRoute,
    /// A served kind at a version that does not read or write yet (see `kinds`).
    NotServed(&'static Resource),
}

/// Parses `path`.
pub fn parse(path: &str) -> Result<ResourcePath, PathError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments[..] {
        ["api", version, ref rest @ ..] => ("", version, rest),
        ["apis", group, version, ref rest @ ..] => (group, version, rest),
        _ => return Err(PathError::NoRoute),
    };
    if rest.iter().any(|s| s.is_empty()) {
        return Err(PathError::NoRoute);
    }
    let find = |plural: &str| kinds::find(group, version, plural).ok_or(PathError::NoRoute);
    let (resource, namespace, tail) = match rest {
        // The namespace itself, or one of its subresources.
        ["namespaces", name] | ["namespaces", name, "status"] if group.is_empty() => {
            return Ok(ResourcePath {
                resource: find("namespaces")?,
                namespace: None,
                name: Some((*name).to_owned()),
                subresource: rest.get(2).map(|s| (*s).to_owned()),
            });
        }
        ["namespaces", ns, plural, tail @ ..] => {
            let resource = find(plural)?;
            if !resource.namespaced() {
                return Err(PathError::NoRoute);
            }
            (resource, Some((*ns).to_owned()), tail)
        }
        [plural, tail @ ..] => (find(plural)?, None, tail),
        [] => return Err(PathError::NoRoute),
    };
    let (name, subresource) = match tail {
        [] => (None, None),
        // A named namespaced object needs its namespace.
        [_, ..] if resource.namespaced() && namespace.is_none() => return Err(PathError::NoRoute),
        [name] => (Some((*name).to_owned()), None),
        [name, sub] if resource.subresources.iter().any(|s| s.name == *sub) => {
            (Some((*name).to_owned()), Some((*sub).to_owned()))
        }
        // A proxy subresource takes the rest of the path as the path it proxies to.
        [name, "proxy", ..] if resource.subresources.iter().any(|s| s.name == "proxy") => {
            (Some((*name).to_owned()), Some("proxy".to_owned()))
        }
        _ => return Err(PathError::NoRoute),
    };
    if !resource.served() {
        return Err(PathError::NotServed(resource));
    }
    Ok(ResourcePath {
        resource,
        namespace,
        name,
        subresource,
    })
}

impl ResourcePath {
    /// The key of the named object.
    pub fn key(&self) -> Option<String> {
        let name = self.name.as_deref()?;
        Some(object_key(self.resource, self.namespace.as_deref(), name))
    }

    /// The prefix a list or watch covers: one namespace, or all of them.
    pub fn prefix(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}{ns}/", self.resource.key_prefix()),
            None => self.resource.key_prefix(),
        }
    }
}

/// The key of `name` in `namespace` (ignored for cluster-scoped resources).
pub fn object_key(resource: &Resource, namespace: Option<&str>, name: &str) -> String {
    match namespace.filter(|_| resource.namespaced()) {
        Some(ns) => format!("{}{ns}/{name}", resource.key_prefix()),
        None => format!("{}{name}", resource.key_prefix()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(path: &str) -> (String, Option<String>, Option<String>, Option<String>) {
        let p = parse(path).unwrap_or_else(|e| panic!("{path}: {e:?}"));
        (
            p.resource.kind.to_owned(),
            p.namespace,
            p.name,
            p.subresource,
        )
    }

    #[test]
    fn paths_name_resource_namespace_name_and_subresource() {
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(parts("/api/v1/pods"), ("Pod".into(), None, None, None));
        assert_eq!(
            parts("/api/v1/namespaces/default/pods/web"),
            ("Pod".into(), s("default"), s("web"), None)
        );
        assert_eq!(
            parts("/apis/apps/v1/namespaces/a/deployments/web/status"),
            ("Deployment".into(), s("a"), s("web"), s("status"))
        );
        assert_eq!(
            parts("/api/v1/namespaces/a"),
            ("Namespace".into(), None, s("a"), None)
        );
        assert_eq!(
            parts("/api/v1/namespaces"),
            ("Namespace".into(), None, None, None)
        );
        assert_eq!(
            parts("/api/v1/nodes/n1"),
            ("Node".into(), None, s("n1"), None)
        );
        assert_eq!(
            parts("/api/v1/namespaces/a/configmaps"),
            ("ConfigMap".into(), s("a"), None, None)
        );
    }

    #[test]
    fn node_proxy_paths_keep_the_node_and_any_rest() {
        let s = |v: &str| Some(v.to_owned());
        for path in [
            "/api/v1/nodes/n1/proxy",
            "/api/v1/nodes/n1/proxy/",
            "/api/v1/nodes/n1/proxy/metrics/resource",
        ] {
            assert_eq!(
                parts(path),
                ("Node".into(), None, s("n1"), s("proxy")),
                "{path}"
            );
        }
    }

    #[test]
    fn bad_paths_address_nothing() {
        for path in [
            "/api/v1/pods/web",
            "/api/v1/namespaces/a/nodes",
            "/api/v1/namespaces/a/configmaps/x/status",
            "/apis/apps/v1/pods",
            "/api/v1/namespaces/a/pods/web/exec/x",
            "/api/v1/namespaces/a/configmaps/web/proxy/x",
            "/api/v1/nodes/n1/proxy//x",
            "/api/v1/namespaces//pods",
            "/version",
        ] {
            assert!(matches!(parse(path), Err(PathError::NoRoute)), "{path}");
        }
        assert!(parse("/apis/events.k8s.io/v1/namespaces/a/events").is_ok());
    }

    #[test]
    fn keys_follow_the_registry_layout() {
        let p = parse("/apis/apps/v1/namespaces/a/deployments/web").unwrap();
        assert_eq!(p.key().unwrap(), "/registry/apps/deployments/a/web");
        assert_eq!(p.prefix(), "/registry/apps/deployments/a/");
        let p = parse("/api/v1/namespaces/a").unwrap();
        assert_eq!(p.key().unwrap(), "/registry/core/namespaces/a");
        assert_eq!(
            parse("/api/v1/configmaps").unwrap().prefix(),
            "/registry/core/configmaps/"
        );
    }
}
