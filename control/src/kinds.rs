//! The table of every resource the API serves: group, version, kind, plural and singular
//! names, scope, short names, categories and the subresources that work. Discovery, routing and
//! (later) validation and Table printing all read this one table, so a kind is added in one
//! place (the "registry per kind" of STYLE.md).
//!
//! Storage: an object lives under the key `/registry/<group>/<plural>/<namespace>/<name>`
//! (`/registry/<group>/<plural>/<name>` when cluster-scoped), with `core` as the core group's
//! name, e.g. `/registry/apps/deployments/default/web`; the value is the object's JSON without
//! `metadata.resourceVersion`, which is the key's mod revision. Kinds served at two versions
//! are one object in Kubernetes: HorizontalPodAutoscalers are stored as autoscaling/v2 and
//! converted for autoscaling/v1 requests (`api/convert`); Events are stored as core v1 (under
//! `/registry/core/events/`, like kube-apiserver's one `/registry/events`) and converted for
//! events.k8s.io/v1 requests, so both APIs show the same events.

/// Whether objects live in a namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Namespaced,
    Cluster,
}

/// One served resource (one group/version/kind).
#[derive(Clone, Copy, Debug)]
pub struct Resource {
    /// API group; `""` is the core group (`/api/v1`).
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// The URL segment: `pods`, `deployments`.
    pub plural: &'static str,
    pub singular: &'static str,
    pub scope: Scope,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Subresources that are implemented (and only those are advertised).
    pub subresources: &'static [Subresource],
    /// Defined by a CustomResourceDefinition (`crate::crd`), not by this table.
    pub custom: bool,
}

/// A subresource and the kind its requests and answers carry.
#[derive(Clone, Copy, Debug)]
pub struct Subresource {
    pub name: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub verbs: &'static [&'static str],
}

/// The verbs every collection resource supports.
pub const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Namespaces have no deletecollection (as in Kubernetes).
pub const NAMESPACE_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

impl Resource {
    /// `apps/v1`, or `v1` for the core group.
    pub fn group_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn namespaced(&self) -> bool {
        self.scope == Scope::Namespaced
    }

    /// Whether objects are read and written at this group/version (see the module docs).
    pub fn served(&self) -> bool {
        true
    }

    /// The store prefix of every object of this resource: `/registry/<group>/<plural>/`
    /// (events.k8s.io Events share the core group's).
    pub fn key_prefix(&self) -> String {
        format!("/registry/{}/{}/", self.key_group(), self.plural)
    }

    /// The group segment of [`Resource::key_prefix`].
    fn key_group(&self) -> &'static str {
        match self.group {
            "" | "events.k8s.io" => "core",
            group => group,
        }
    }

    /// What follows [`Resource::key_prefix`] in `key`, if it starts with it (no allocation:
    /// the garbage collector asks this of every stored change, resource after resource).
    pub fn strip_key_prefix<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix("/registry/")?
            .strip_prefix(self.key_group())?
            .strip_prefix('/')?
            .strip_prefix(self.plural)?
            .strip_prefix('/')
    }

    /// Whether objects of this kind carry `metadata.generation`: 1 on create, one more on
    /// each change of their desired state. Kubernetes 1.32 keeps it only for the kinds
    /// whose strategy sets it (the workloads, ReplicationController, EndpointSlice, Ingress, IngressClass,
    /// PodDisruptionBudget); a ConfigMap, Service or Pod has none.
    pub fn tracks_generation(&self) -> bool {
        matches!(
            (self.group, self.kind),
            (
                "apps",
                "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet"
            ) | ("batch", "Job" | "CronJob")
                | ("", "ReplicationController")
                | ("discovery.k8s.io", "EndpointSlice")
                | ("networking.k8s.io", "Ingress" | "IngressClass")
                | ("policy", "PodDisruptionBudget")
        )
    }

    /// Whether bodies may come as Kubernetes protobuf: the built-in kinds of `k8s.io/api`
    /// (what `kubectl create` sends that way); not CRDs, not custom resources.
    pub fn takes_protobuf(&self) -> bool {
        !self.custom && self.group != "apiextensions.k8s.io"
    }

    /// Whether writes to the main resource leave `.status` alone (it has a `status`
    /// subresource).
    pub fn has_status(&self) -> bool {
        self.subresources.iter().any(|s| s.name == "status")
    }

    /// `deployments.apps`, or `pods` for the core group (Kubernetes' group-resource).
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Deployment.apps`, or `Pod` for the core group (Kubernetes' group-kind).
    pub fn group_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_owned()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    const fn with(mut self, subresources: &'static [Subresource]) -> Resource {
        self.subresources = subresources;
        self
    }

    pub fn verbs(&self) -> &'static [&'static str] {
        if self.group.is_empty() && self.plural == "namespaces" {
            NAMESPACE_VERBS
        } else {
            VERBS
        }
    }
}

#[allow(clippy::too_many_arguments)]
const fn res(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    scope: Scope,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
) -> Resource {
    Resource {
        group,
        version,
        kind,
        plural,
        singular,
        scope,
        short_names,
        categories,
        subresources: &[],
        custom: false,
    }
}

use Scope::{Cluster, Namespaced};

const ALL: &[&str] = &["all"];

pub const STATUS_VERBS: &[&str] = &["get", "patch", "update"];

const fn status(group: &'static str, version: &'static str, kind: &'static str) -> Subresource {
    Subresource {
        name: "status",
        group,
        version,
        kind,
        verbs: STATUS_VERBS,
    }
}

/// `scale` (autoscaling/v1 Scale) of the kinds with `spec.replicas`.
pub const fn scale() -> Subresource {
    Subresource {
        name: "scale",
        group: "autoscaling",
        version: "v1",
        kind: "Scale",
        verbs: STATUS_VERBS,
    }
}

/// `approval` of CertificateSigningRequests: the conditions an approver sets.
const fn approval() -> Subresource {
    Subresource {
        name: "approval",
        group: "certificates.k8s.io",
        version: "v1",
        kind: "CertificateSigningRequest",
        verbs: STATUS_VERBS,
    }
}

const CSR_SUB: &[Subresource] = &[
    status("certificates.k8s.io", "v1", "CertificateSigningRequest"),
    approval(),
];
const NAMESPACE_SUB: &[Subresource] = &[status("", "v1", "Namespace")];
/// `pods/binding`: assigns a pod to a node (the scheduler's write).
const BINDING: Subresource = Subresource {
    name: "binding",
    group: "",
    version: "v1",
    kind: "Binding",
    verbs: &["create"],
};
/// `pods/log`: the container's log, from the node's kubelet.
const LOG: Subresource = Subresource {
    name: "log",
    group: "",
    version: "v1",
    kind: "Pod",
    verbs: &["get"],
};
/// `pods/exec`: a command in a container, through the node's kubelet (an upgraded stream).
const EXEC: Subresource = Subresource {
    name: "exec",
    group: "",
    version: "v1",
    kind: "PodExecOptions",
    verbs: &["create", "get"],
};
/// `pods/portforward`: connections to the pod's ports, through the node's kubelet.
const PORT_FORWARD: Subresource = Subresource {
    name: "portforward",
    group: "",
    version: "v1",
    kind: "PodPortForwardOptions",
    verbs: &["create", "get"],
};
/// `pods/attach`: a running container's stdio, through the node's kubelet.
const ATTACH: Subresource = Subresource {
    name: "attach",
    group: "",
    version: "v1",
    kind: "PodAttachOptions",
    verbs: &["create", "get"],
};
/// `serviceaccounts/token`: a TokenRequest answered with a signed token.
const TOKEN: Subresource = Subresource {
    name: "token",
    group: "authentication.k8s.io",
    version: "v1",
    kind: "TokenRequest",
    verbs: &["create"],
};
const SERVICE_ACCOUNT_SUB: &[Subresource] = &[TOKEN];
/// `pods/eviction`: a delete that honours the PodDisruptionBudgets selecting the pod (what
/// `kubectl drain` asks for).
const EVICTION: Subresource = Subresource {
    name: "eviction",
    group: "policy",
    version: "v1",
    kind: "Eviction",
    verbs: &["create"],
};
/// `pods/ephemeralcontainers`: a write of it changes only the pod's
/// `spec.ephemeralContainers` (`kubectl debug`), the Pod its request and answer.
const EPHEMERAL_CONTAINERS: Subresource = Subresource {
    name: "ephemeralcontainers",
    group: "",
    version: "v1",
    kind: "Pod",
    verbs: STATUS_VERBS,
};
const POD_SUB: &[Subresource] = &[
    status("", "v1", "Pod"),
    EPHEMERAL_CONTAINERS,
    BINDING,
    LOG,
    EXEC,
    ATTACH,
    PORT_FORWARD,
    EVICTION,
    proxy("PodProxyOptions"),
];
const SERVICE_SUB: &[Subresource] = &[status("", "v1", "Service"), proxy("ServiceProxyOptions")];
const NODE_SUB: &[Subresource] = &[status("", "v1", "Node"), proxy("NodeProxyOptions")];
/// A `proxy` subresource: any request passed on, to the node's kubelet API
/// (`nodes/NAME/proxy/PATH`) or to a pod's port (`pods/`, `services/NAME/proxy/PATH`).
const fn proxy(kind: &'static str) -> Subresource {
    Subresource {
        name: "proxy",
        group: "",
        version: "v1",
        kind,
        verbs: &["create", "delete", "get", "patch", "update"],
    }
}
const PV_SUB: &[Subresource] = &[status("", "v1", "PersistentVolume")];
const PVC_SUB: &[Subresource] = &[status("", "v1", "PersistentVolumeClaim")];
const QUOTA_SUB: &[Subresource] = &[status("", "v1", "ResourceQuota")];
const DEPLOYMENT_SUB: &[Subresource] = &[status("apps", "v1", "Deployment"), scale()];
const REPLICASET_SUB: &[Subresource] = &[status("apps", "v1", "ReplicaSet"), scale()];
const RC_SUB: &[Subresource] = &[status("", "v1", "ReplicationController"), scale()];
const STATEFULSET_SUB: &[Subresource] = &[status("apps", "v1", "StatefulSet"), scale()];
const DAEMONSET_SUB: &[Subresource] = &[status("apps", "v1", "DaemonSet")];
const JOB_SUB: &[Subresource] = &[status("batch", "v1", "Job")];
const CRONJOB_SUB: &[Subresource] = &[status("batch", "v1", "CronJob")];
const INGRESS_SUB: &[Subresource] = &[status("networking.k8s.io", "v1", "Ingress")];
const HPA_SUB: &[Subresource] = &[status("autoscaling", "v2", "HorizontalPodAutoscaler")];
const HPA_V1_SUB: &[Subresource] = &[status("autoscaling", "v1", "HorizontalPodAutoscaler")];
const PDB_SUB: &[Subresource] = &[status("policy", "v1", "PodDisruptionBudget")];
const VAP_SUB: &[Subresource] = &[status(
    "admissionregistration.k8s.io",
    "v1",
    "ValidatingAdmissionPolicy",
)];
const CRD_SUB: &[Subresource] = &[status(
    "apiextensions.k8s.io",
    "v1",
    "CustomResourceDefinition",
)];

/// Every served resource, in discovery order.
#[rustfmt::skip]
pub const RESOURCES: &[Resource] = &[
    // core/v1
    res("", "v1", "Namespace", "namespaces", "namespace", Cluster, &["ns"], &[]).with(NAMESPACE_SUB),
    res("", "v1", "Pod", "pods", "pod", Namespaced, &["po"], ALL).with(POD_SUB),
    res("", "v1", "ReplicationController", "replicationcontrollers", "replicationcontroller", Namespaced, &["rc"], ALL).with(RC_SUB),
    res("", "v1", "Service", "services", "service", Namespaced, &["svc"], ALL).with(SERVICE_SUB),
    res("", "v1", "Endpoints", "endpoints", "endpoints", Namespaced, &["ep"], &[]),
    res("", "v1", "ConfigMap", "configmaps", "configmap", Namespaced, &["cm"], &[]),
    res("", "v1", "Secret", "secrets", "secret", Namespaced, &[], &[]),
    res("", "v1", "Node", "nodes", "node", Cluster, &["no"], &[]).with(NODE_SUB),
    res("", "v1", "Event", "events", "event", Namespaced, &["ev"], &[]),
    res("", "v1", "PersistentVolume", "persistentvolumes", "persistentvolume", Cluster, &["pv"], &[]).with(PV_SUB),
    res("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", "persistentvolumeclaim", Namespaced, &["pvc"], &[]).with(PVC_SUB),
    res("", "v1", "ResourceQuota", "resourcequotas", "resourcequota", Namespaced, &["quota"], &[]).with(QUOTA_SUB),
    res("", "v1", "LimitRange", "limitranges", "limitrange", Namespaced, &["limits"], &[]),
    res("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", Namespaced, &["sa"], &[]).with(SERVICE_ACCOUNT_SUB),
    // apps/v1
    res("apps", "v1", "Deployment", "deployments", "deployment", Namespaced, &["deploy"], ALL).with(DEPLOYMENT_SUB),
    res("apps", "v1", "ReplicaSet", "replicasets", "replicaset", Namespaced, &["rs"], ALL).with(REPLICASET_SUB),
    res("apps", "v1", "StatefulSet", "statefulsets", "statefulset", Namespaced, &["sts"], ALL).with(STATEFULSET_SUB),
    res("apps", "v1", "DaemonSet", "daemonsets", "daemonset", Namespaced, &["ds"], ALL).with(DAEMONSET_SUB),
    res("apps", "v1", "ControllerRevision", "controllerrevisions", "controllerrevision", Namespaced, &[], &[]),
    // batch/v1
    res("batch", "v1", "Job", "jobs", "job", Namespaced, &[], ALL).with(JOB_SUB),
    res("batch", "v1", "CronJob", "cronjobs", "cronjob", Namespaced, &["cj"], ALL).with(CRONJOB_SUB),
    // discovery.k8s.io/v1
    res("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", Namespaced, &[], &[]),
    // networking.k8s.io/v1
    res("networking.k8s.io", "v1", "Ingress", "ingresses", "ingress", Namespaced, &["ing"], &[]).with(INGRESS_SUB),
    res("networking.k8s.io", "v1", "IngressClass", "ingressclasses", "ingressclass", Cluster, &[], &[]),
    // storage.k8s.io/v1
    res("storage.k8s.io", "v1", "StorageClass", "storageclasses", "storageclass", Cluster, &["sc"], &[]),
    res("storage.k8s.io", "v1", "CSIDriver", "csidrivers", "csidriver", Cluster, &[], &[]),
    res("storage.k8s.io", "v1", "CSINode", "csinodes", "csinode", Cluster, &[], &[]),
    // coordination.k8s.io/v1
    res("coordination.k8s.io", "v1", "Lease", "leases", "lease", Namespaced, &[], &[]),
    // certificates.k8s.io/v1
    res("certificates.k8s.io", "v1", "CertificateSigningRequest", "certificatesigningrequests", "certificatesigningrequest", Cluster, &["csr"], &[]).with(CSR_SUB),
    // autoscaling/v2 (preferred) and v1
    res("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", "horizontalpodautoscaler", Namespaced, &["hpa"], ALL).with(HPA_SUB),
    res("autoscaling", "v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", "horizontalpodautoscaler", Namespaced, &["hpa"], ALL).with(HPA_V1_SUB),
    // scheduling.k8s.io/v1
    res("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", "priorityclass", Cluster, &["pc"], &[]),
    // rbac.authorization.k8s.io/v1
    res("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", Namespaced, &[], &[]),
    res("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", Cluster, &[], &[]),
    res("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", Namespaced, &[], &[]),
    res("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding", Cluster, &[], &[]),
    // policy/v1
    res("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", "poddisruptionbudget", Namespaced, &["pdb"], &[]).with(PDB_SUB),
    // events.k8s.io/v1
    res("events.k8s.io", "v1", "Event", "events", "event", Namespaced, &[], &[]),
    // admissionregistration.k8s.io/v1
    res("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy", "validatingadmissionpolicies", "validatingadmissionpolicy", Cluster, &[], &["api-extensions"]).with(VAP_SUB),
    res("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicyBinding", "validatingadmissionpolicybindings", "validatingadmissionpolicybinding", Cluster, &[], &["api-extensions"]),
    res("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", "mutatingwebhookconfiguration", Cluster, &[], &["api-extensions"]),
    res("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations", "validatingwebhookconfiguration", Cluster, &[], &["api-extensions"]),
    // apiextensions.k8s.io/v1
    res("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", "customresourcedefinition", Cluster, &["crd", "crds"], &["api-extensions"]).with(CRD_SUB),
];

/// One API group with its versions, preferred first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub name: &'static str,
    pub versions: Vec<&'static str>,
}

/// The named groups (not the core group), in first-seen order, each with its versions in the
/// table's order (the first is the preferred one).
pub fn groups() -> Vec<Group> {
    let mut out: Vec<Group> = Vec::new();
    let custom = crate::crd::registry::resources();
    for r in RESOURCES
        .iter()
        .chain(custom)
        .filter(|r| !r.group.is_empty())
    {
        match out.iter_mut().find(|g| g.name == r.group) {
            Some(g) if !g.versions.contains(&r.version) => g.versions.push(r.version),
            Some(_) => {}
            None => out.push(Group {
                name: r.group,
                versions: vec![r.version],
            }),
        }
    }
    out
}

/// The resources of one group/version (the table's, then those CustomResourceDefinitions
/// define).
pub fn in_group_version<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static Resource> + 'a {
    let custom = match crate::crd::registry::serves_group(group) {
        true => crate::crd::registry::resources(),
        false => Vec::new(),
    };
    RESOURCES
        .iter()
        .chain(custom)
        .filter(move |r| r.group == group && r.version == version)
}

/// Every served resource: the table's, then the custom ones.
pub fn all() -> impl Iterator<Item = &'static Resource> {
    RESOURCES.iter().chain(crate::crd::registry::resources())
}

/// The resource served at `/api[s]/<group>/<version>/<plural>`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
        .or_else(|| crate::crd::registry::find(group, version, plural))
}

/// The served resource a store key belongs to, with the object's namespace and name (a
/// custom resource at its storage version).
pub fn for_key(key: &str) -> Option<(&'static Resource, Option<&str>, &str)> {
    // The table first: the garbage collector maps every stored change through here, and
    // only keys of custom resources need the registry (its lock and a copy of its list).
    let split = |r: &'static Resource| {
        let rest = r.strip_key_prefix(key)?;
        if r.namespaced() {
            let (namespace, name) = rest.split_once('/')?;
            Some((r, Some(namespace), name))
        } else {
            Some((r, None, rest))
        }
    };
    RESOURCES
        .iter()
        .filter(|r| r.served())
        .find_map(split)
        .or_else(|| {
            crate::crd::registry::storage_resources()
                .into_iter()
                .find_map(split)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripping_a_key_prefix_agrees_with_the_prefix() {
        for r in RESOURCES {
            for key in [
                format!("{}ns/name", r.key_prefix()),
                format!("{}name", r.key_prefix()),
                format!("{}x/ns/name", r.key_prefix().trim_end_matches('/')),
                "/registry/core/".to_owned(),
            ] {
                assert_eq!(
                    r.strip_key_prefix(&key),
                    key.strip_prefix(r.key_prefix().as_str()),
                    "{key}"
                );
            }
        }
    }

    #[test]
    fn keys_map_back_to_their_resource() {
        let (r, ns, name) = for_key("/registry/apps/deployments/default/web").unwrap();
        assert_eq!((r.kind, ns, name), ("Deployment", Some("default"), "web"));
        let (r, ns, name) = for_key("/registry/core/nodes/n1").unwrap();
        assert_eq!((r.kind, ns, name), ("Node", None, "n1"));
        let (r, _, _) = for_key("/registry/core/serviceaccounts/default/x").unwrap();
        assert_eq!(r.kind, "ServiceAccount");
        assert!(for_key("/registry/core/pods/no-name").is_none());
        assert!(for_key("/elsewhere/x").is_none());
    }

    #[test]
    fn every_group_version_has_unique_plurals_and_kinds() {
        for (i, a) in RESOURCES.iter().enumerate() {
            for b in &RESOURCES[i + 1..] {
                if a.group == b.group && a.version == b.version {
                    assert_ne!(a.plural, b.plural);
                    assert_ne!(a.kind, b.kind);
                }
            }
        }
    }

    #[test]
    fn groups_list_preferred_versions_first() {
        let groups = groups();
        let autoscaling = groups.iter().find(|g| g.name == "autoscaling").unwrap();
        assert_eq!(autoscaling.versions, ["v2", "v1"]);
        assert!(groups.iter().all(|g| !g.name.is_empty()));
        assert_eq!(
            find("apps", "v1", "deployments").unwrap().kind,
            "Deployment"
        );
        assert_eq!(find("", "v1", "pods").unwrap().group_version(), "v1");
        assert!(find("apps", "v1", "pods").is_none());
    }
}
