//! API discovery, generated from the kinds table: the legacy documents (`/api`, `/apis`,
//! `/api/v1`, `/apis/<group>/<version>`) that kube-rs and older clients read, and aggregated
//! discovery (`apidiscovery.k8s.io/v2`), which kubectl 1.32 asks for first and which answers
//! everything in two requests (DESIGN.md §8). `metrics.k8s.io/v1beta1` (served from the
//! scraped window, not the store: `crate::metrics::api`) and the review groups
//! (`REVIEW_GROUPS`: SelfSubjectReviews, access and rules reviews) are listed after the
//! table's groups; ComponentStatuses (`api::component_status`) after the core kinds.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResource, APIResourceList, APIVersions, GroupVersionForDiscovery,
    ServerAddressByClientCIDR,
};
use serde_json::{json, Value};

use crate::kinds::{self, Resource};

/// The media type of aggregated discovery answers.
pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether an `Accept` header asks for aggregated discovery v2 (kubectl lists it first, with
/// the plain JSON fallback after it).
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|item| {
        let params: Vec<&str> = item.split(';').map(str::trim).collect();
        params.contains(&"g=apidiscovery.k8s.io")
            && params.contains(&"v=v2")
            && params.contains(&"as=APIGroupDiscoveryList")
    })
}

/// `/api`: the core group's versions.
pub fn api_versions(server_address: &str) -> APIVersions {
    APIVersions {
        versions: vec!["v1".to_owned()],
        server_address_by_client_cidrs: vec![ServerAddressByClientCIDR {
            client_cidr: "0.0.0.0/0".to_owned(),
            server_address: server_address.to_owned(),
        }],
    }
}

/// `/apis`: the named groups with their versions.
pub fn api_group_list() -> APIGroupList {
    let mut groups: Vec<APIGroup> = kinds::groups().iter().map(api_group).collect();
    groups.push(metrics_group());
    groups.extend(
        REVIEW_GROUPS
            .iter()
            .map(|(group, version, _)| single_version_group(group, version)),
    );
    APIGroupList { groups }
}

/// (group, version, (kind, plural) of each review).
pub type ReviewGroup = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// Groups of reviews, which are created and answered, never stored (so not in the kinds
/// table): (group, version, (kind, plural) of each). `authentication.k8s.io`:
/// SelfSubjectReviews (`api::self_subject_review`) and TokenReviews; `authorization.k8s.io`:
/// access and rules reviews (`api::access_review`), (Local)SubjectAccessReviews
/// (`api::delegated_review`).
pub const REVIEW_GROUPS: &[ReviewGroup] = &[
    (
        crate::api::self_subject_review::GROUP,
        crate::api::self_subject_review::VERSION,
        &[
            (
                crate::api::self_subject_review::KIND,
                crate::api::self_subject_review::PLURAL,
            ),
            crate::api::delegated_review::TOKEN,
        ],
    ),
    (
        crate::api::access_review::GROUP,
        crate::api::access_review::VERSION,
        &[
            crate::api::access_review::ACCESS,
            crate::api::access_review::RULES,
            crate::api::delegated_review::SUBJECT,
            crate::api::delegated_review::LOCAL,
        ],
    ),
];

/// Whether a review kind is asked in a namespace (a LocalSubjectAccessReview).
pub fn review_namespaced(kind: &str) -> bool {
    kind == crate::api::delegated_review::LOCAL.0
}

/// `/apis/<group>` of a review group.
pub fn review_group(name: &str) -> Option<APIGroup> {
    REVIEW_GROUPS
        .iter()
        .find(|(group, _, _)| *group == name)
        .map(|(group, version, _)| single_version_group(group, version))
}

/// A group served at one version, which is its preferred one.
fn single_version_group(group: &str, version: &str) -> APIGroup {
    let version = GroupVersionForDiscovery {
        group_version: format!("{group}/{version}"),
        version: version.to_owned(),
    };
    APIGroup {
        name: group.to_owned(),
        preferred_version: Some(version.clone()),
        versions: vec![version],
        server_address_by_client_cidrs: None,
    }
}

/// `/apis/<group>/<version>` of a review group.
fn review_resource_list(name: &str, served: &str) -> Option<APIResourceList> {
    let (group, version, reviews) = REVIEW_GROUPS
        .iter()
        .find(|(group, version, _)| (*group, *version) == (name, served))?;
    Some(APIResourceList {
        group_version: format!("{group}/{version}"),
        resources: reviews
            .iter()
            .map(|(kind, plural)| APIResource {
                name: (*plural).to_owned(),
                singular_name: String::new(),
                kind: (*kind).to_owned(),
                namespaced: review_namespaced(kind),
                verbs: strings(&["create"]),
                ..APIResource::default()
            })
            .collect(),
    })
}

/// The aggregated entry of a review group.
fn review_discovery((group, version, reviews): &ReviewGroup) -> Value {
    let resources: Vec<Value> = reviews
        .iter()
        .map(|(kind, plural)| {
            json!({
                "resource": plural,
                "responseKind": {"group": group, "version": version, "kind": kind},
                "scope": if review_namespaced(kind) { "Namespaced" } else { "Cluster" },
                "singularResource": "",
                "verbs": ["create"],
            })
        })
        .collect();
    json!({"metadata": {"name": group}, "versions": [{"version": version,
        "resources": resources, "freshness": "Current"}]})
}

/// ComponentStatuses in `/api/v1` (served, never stored: `api::component_status`).
fn component_status_resource() -> APIResource {
    use crate::api::component_status::{KIND, PLURAL, SHORT_NAMES, SINGULAR};
    APIResource {
        name: PLURAL.to_owned(),
        singular_name: SINGULAR.to_owned(),
        namespaced: false,
        kind: KIND.to_owned(),
        verbs: strings(&["get", "list"]),
        short_names: non_empty(SHORT_NAMES),
        ..APIResource::default()
    }
}

/// The aggregated entry of ComponentStatuses.
fn component_status_discovery() -> Value {
    use crate::api::component_status::{KIND, PLURAL, SHORT_NAMES, SINGULAR};
    json!({
        "resource": PLURAL,
        "responseKind": {"group": "", "version": "v1", "kind": KIND},
        "scope": "Cluster",
        "singularResource": SINGULAR,
        "verbs": ["get", "list"],
        "shortNames": SHORT_NAMES,
    })
}

/// `/apis/metrics.k8s.io`.
pub fn metrics_group() -> APIGroup {
    use crate::metrics::api::{GROUP, VERSION};
    single_version_group(GROUP, VERSION)
}

/// `/apis/metrics.k8s.io/v1beta1`.
fn metrics_resource_list() -> APIResourceList {
    use crate::metrics::api::{GROUP, RESOURCES, VERSION};
    APIResourceList {
        group_version: format!("{GROUP}/{VERSION}"),
        resources: RESOURCES
            .iter()
            .map(|(plural, singular, kind, namespaced)| APIResource {
                name: (*plural).to_owned(),
                singular_name: (*singular).to_owned(),
                namespaced: *namespaced,
                kind: (*kind).to_owned(),
                verbs: strings(&["get", "list"]),
                ..APIResource::default()
            })
            .collect(),
    }
}

/// `/apis/<group>`.
pub fn api_group(group: &kinds::Group) -> APIGroup {
    let versions: Vec<GroupVersionForDiscovery> = group
        .versions
        .iter()
        .map(|v| GroupVersionForDiscovery {
            group_version: format!("{}/{v}", group.name),
            version: (*v).to_owned(),
        })
        .collect();
    APIGroup {
        name: group.name.to_owned(),
        preferred_version: versions.first().cloned(),
        versions,
        server_address_by_client_cidrs: None,
    }
}

/// `/api/v1` or `/apis/<group>/<version>`; `None` for a group/version we do not serve.
pub fn api_resource_list(group: &str, version: &str) -> Option<APIResourceList> {
    if (group, version) == (crate::metrics::api::GROUP, crate::metrics::api::VERSION) {
        return Some(metrics_resource_list());
    }
    if let Some(list) = review_resource_list(group, version) {
        return Some(list);
    }
    let mut resources = Vec::new();
    for r in kinds::in_group_version(group, version) {
        resources.push(APIResource {
            name: r.plural.to_owned(),
            singular_name: r.singular.to_owned(),
            namespaced: r.namespaced(),
            kind: r.kind.to_owned(),
            verbs: strings(r.verbs()),
            short_names: non_empty(r.short_names),
            categories: non_empty(r.categories),
            ..APIResource::default()
        });
        for sub in r.subresources {
            resources.push(APIResource {
                name: format!("{}/{}", r.plural, sub.name),
                singular_name: String::new(),
                namespaced: r.namespaced(),
                group: Some(sub.group.to_owned()).filter(|g| !g.is_empty()),
                version: Some(sub.version.to_owned()),
                kind: sub.kind.to_owned(),
                verbs: strings(sub.verbs),
                ..APIResource::default()
            });
        }
    }
    if (group, version) == ("", "v1") {
        resources.push(component_status_resource());
    }
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(APIResourceList {
        group_version,
        resources,
    })
}

/// The aggregated discovery document of the core group (`/api`, `core == true`) or of the
/// named groups (`/apis`).
pub fn aggregated(core: bool) -> Value {
    let items: Vec<Value> = if core {
        vec![group_discovery("", &["v1"])]
    } else {
        let mut items: Vec<Value> = kinds::groups()
            .iter()
            .map(|g| group_discovery(g.name, &g.versions))
            .collect();
        items.push(metrics_discovery());
        items.extend(REVIEW_GROUPS.iter().map(review_discovery));
        items
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

fn group_discovery(group: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|version| {
            let mut resources: Vec<Value> = kinds::in_group_version(group, version)
                .map(resource_discovery)
                .collect();
            if (group, *version) == ("", "v1") {
                resources.push(component_status_discovery());
            }
            json!({"version": version, "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": group}, "versions": versions})
}

/// The aggregated entry of `metrics.k8s.io` (metrics-server's, as kube-aggregator lists it).
fn metrics_discovery() -> Value {
    use crate::metrics::api::{GROUP, RESOURCES, VERSION};
    let resources: Vec<Value> = RESOURCES
        .iter()
        .map(|(plural, singular, kind, namespaced)| {
            json!({
                "resource": plural,
                "responseKind": {"group": GROUP, "version": VERSION, "kind": kind},
                "scope": if *namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": singular,
                "verbs": ["get", "list"],
            })
        })
        .collect();
    json!({"metadata": {"name": GROUP}, "versions": [
        {"version": VERSION, "resources": resources, "freshness": "Current"}
    ]})
}

fn resource_discovery(r: &Resource) -> Value {
    let mut out = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced() { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs(),
    });
    if !r.short_names.is_empty() {
        out["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        out["categories"] = json!(r.categories);
    }
    if !r.subresources.is_empty() {
        let subs: Vec<Value> = r
            .subresources
            .iter()
            .map(|s| {
                json!({
                    "subresource": s.name,
                    "responseKind": {"group": s.group, "version": s.version, "kind": s.kind},
                    "verbs": s.verbs,
                })
            })
            .collect();
        out["subresources"] = json!(subs);
    }
    out
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn non_empty(items: &[&str]) -> Option<Vec<String>> {
    (!items.is_empty()).then(|| strings(items))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectls_accept_header_selects_aggregated_discovery() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert!(wants_aggregated(kubectl));
        assert!(!wants_aggregated("application/json"));
        assert!(!wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
        ));
    }

    #[test]
    fn legacy_lists_name_every_resource_of_a_group_version() {
        let core = api_resource_list("", "v1").unwrap();
        assert_eq!(core.group_version, "v1");
        let pods = core.resources.iter().find(|r| r.name == "pods").unwrap();
        assert!(pods.namespaced);
        assert_eq!(pods.short_names.as_deref(), Some(&["po".to_owned()][..]));
        let ns = core
            .resources
            .iter()
            .find(|r| r.name == "namespaces")
            .unwrap();
        assert!(!ns.namespaced && !ns.verbs.contains(&"deletecollection".to_owned()));
        assert!(api_resource_list("apps", "v2").is_none());
        let debug = core
            .resources
            .iter()
            .find(|r| r.name == "pods/ephemeralcontainers")
            .unwrap();
        assert_eq!((debug.kind.as_str(), debug.namespaced), ("Pod", true));
        assert_eq!(debug.verbs, ["get", "patch", "update"]);
        let groups = api_group_list();
        let autoscaling = groups
            .groups
            .iter()
            .find(|g| g.name == "autoscaling")
            .unwrap();
        assert_eq!(
            autoscaling
                .preferred_version
                .as_ref()
                .unwrap()
                .group_version,
            "autoscaling/v2"
        );
    }

    #[test]
    fn aggregated_documents_hold_the_core_and_the_named_groups() {
        let core = aggregated(true);
        assert_eq!(core["items"][0]["metadata"]["name"], "");
        let apis = aggregated(false);
        let names: Vec<&str> = apis["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["metadata"]["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"apps") && names.contains(&"events.k8s.io"));
        assert!(names.contains(&"metrics.k8s.io"));
        assert!(api_group_list()
            .groups
            .iter()
            .any(|g| g.name == "metrics.k8s.io"));
        let metrics = api_resource_list("metrics.k8s.io", "v1beta1").unwrap();
        assert_eq!(metrics.resources[1].kind, "PodMetrics");
        let core_resources = core["items"][0]["versions"][0]["resources"]
            .as_array()
            .unwrap();
        let pods = core_resources
            .iter()
            .find(|r| r["resource"] == "pods")
            .unwrap();
        let debug = pods["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["subresource"] == "ephemeralcontainers")
            .unwrap();
        assert_eq!(debug["responseKind"]["kind"], "Pod");
        assert_eq!(debug["verbs"], json!(["get", "patch", "update"]));
        let deployments = &apis["items"][0]["versions"][0]["resources"][0];
        assert_eq!(deployments["resource"], "deployments");
        assert_eq!(deployments["scope"], "Namespaced");
    }
}
