//! What kubectl reads from the documents: the root's URLs, each kind's PATCH operation with its
//! parameters, the kind schemas' group-version-kind.

use super::*;

fn gv_path(r: &kinds::Resource) -> String {
    if r.group.is_empty() {
        format!("api/{}", r.version)
    } else {
        format!("apis/{}/{}", r.group, r.version)
    }
}

fn gvk_matches(ext: &Value, r: &kinds::Resource) -> bool {
    let one = |v: &Value| v["group"] == r.group && v["version"] == r.version && v["kind"] == r.kind;
    match ext {
        Value::Array(items) => items.iter().any(one),
        other => one(other),
    }
}

#[test]
fn root_lists_every_group_version_with_a_hash_of_its_document() {
    let root: Value = serde_json::from_slice(&documents().root).unwrap();
    for r in kinds::RESOURCES {
        let key = gv_path(r);
        let url = root["paths"][&key]["serverRelativeURL"].as_str().unwrap();
        let hash = url.split("?hash=").nth(1).unwrap();
        let doc = &documents().group_versions[&key];
        assert_eq!(hash, hex(&Sha256::digest(doc)), "{url}");
        assert!(respond(url.split('?').next().unwrap(), "").is_some());
    }
    assert!(respond("/openapi/v3/apis/nope/v1", "").is_none());
    assert!(respond("/openapi/v2", "").is_some());
}

#[test]
fn every_kind_has_a_patch_operation_with_field_validation_and_a_tagged_schema() {
    for r in kinds::RESOURCES {
        let doc = group_version_document(&gv_path(r)).unwrap();
        let patch = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(|p| p.get("patch"))
            .find(|op| gvk_matches(&op["x-kubernetes-group-version-kind"], r))
            .unwrap_or_else(|| panic!("no PATCH for {} {}", r.group_version(), r.kind));
        assert_eq!(patch["x-kubernetes-action"], "patch");
        let params: Vec<&str> = patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "query")
            .filter_map(|p| p["name"].as_str())
            .collect();
        for name in ["fieldValidation", "dryRun", "fieldManager", "force"] {
            assert!(params.contains(&name), "{} PATCH lacks {name}", r.kind);
        }
        let content = patch["requestBody"]["content"].as_object().unwrap();
        assert!(content.contains_key("application/merge-patch+json"));
        assert!(content.contains_key("application/strategic-merge-patch+json"));
        let tagged = doc["components"]["schemas"]
            .as_object()
            .unwrap()
            .values()
            .filter(|s| gvk_matches(&s["x-kubernetes-group-version-kind"], r))
            .count();
        assert_eq!(tagged, 1, "{} {} schema", r.group_version(), r.kind);
    }
}

#[test]
fn namespaced_and_cluster_paths_follow_kube_apiserver() {
    let apps = group_version_document("apis/apps/v1").unwrap();
    let paths = apps["paths"].as_object().unwrap();
    let one = &paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
    assert_eq!(
        one["patch"]["operationId"],
        "patchAppsV1NamespacedDeployment"
    );
    assert_eq!(one["get"]["x-kubernetes-action"], "get");
    assert_eq!(
        paths["/apis/apps/v1/deployments"]["get"]["operationId"],
        "listAppsV1DeploymentForAllNamespaces"
    );
    let core = group_version_document("api/v1").unwrap();
    let paths = core["paths"].as_object().unwrap();
    assert_eq!(
        paths["/api/v1/nodes/{name}"]["put"]["operationId"],
        "replaceCoreV1Node"
    );
    assert!(paths.contains_key("/api/v1/namespaces/{namespace}/pods"));
    let spec = &core["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"];
    assert!(spec["properties"]["containers"]["description"]
        .as_str()
        .is_some_and(|d| d.contains("containers")));
}

#[test]
fn generation_is_fast() {
    let start = std::time::Instant::now();
    let docs = generate();
    let took = start.elapsed();
    let bytes: usize = docs.group_versions.values().map(|b| b.len()).sum();
    eprintln!("generated {bytes} bytes of OpenAPI in {took:?}");
    assert!(took < std::time::Duration::from_secs(2), "{took:?}");
}

#[test]
fn fields_with_a_patch_strategy_carry_the_kubernetes_extensions() {
    let apps = group_version_document("apis/apps/v1").unwrap();
    let schemas = &apps["components"]["schemas"];
    let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["type"], "array");
    let strategy = &schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"];
    assert_eq!(strategy["x-kubernetes-patch-strategy"], "retainKeys");
    assert_eq!(
        strategy["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy"
    );
    assert!(strategy.get("$ref").is_none());
    let finalizers =
        &schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]["finalizers"];
    assert_eq!(finalizers["x-kubernetes-patch-strategy"], "merge");
    assert!(finalizers.get("x-kubernetes-patch-merge-key").is_none());
}

#[test]
fn self_subject_reviews_have_their_create_operation_and_schema() {
    let root: Value = serde_json::from_slice(&documents().root).unwrap();
    let url = root["paths"]["apis/authentication.k8s.io/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap();
    assert!(respond(url.split('?').next().unwrap(), "").is_some());
    let doc = group_version_document("apis/authentication.k8s.io/v1").unwrap();
    let path = &doc["paths"]["/apis/authentication.k8s.io/v1/selfsubjectreviews"];
    let post = &path["post"];
    assert_eq!(post["x-kubernetes-action"], "post");
    assert_eq!(
        post["operationId"],
        "createAuthenticationV1SelfSubjectReview"
    );
    assert_eq!(
        post["x-kubernetes-group-version-kind"]["kind"],
        "SelfSubjectReview"
    );
    assert!(path.get("get").is_none() && path.get("patch").is_none());
    let schema = &doc["components"]["schemas"]["io.k8s.api.authentication.v1.SelfSubjectReview"];
    assert_eq!(
        schema["x-kubernetes-group-version-kind"][0]["group"],
        "authentication.k8s.io"
    );
    let text = serde_json::to_string(&doc).unwrap();
    for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = &piece[..piece.find('"').unwrap()];
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "dangling $ref {name}"
        );
    }
}

#[test]
fn access_reviews_have_their_create_operations() {
    let doc = group_version_document("apis/authorization.k8s.io/v1").unwrap();
    for (plural, kind) in [
        ("selfsubjectaccessreviews", "SelfSubjectAccessReview"),
        ("selfsubjectrulesreviews", "SelfSubjectRulesReview"),
    ] {
        let post = &doc["paths"][format!("/apis/authorization.k8s.io/v1/{plural}")]["post"];
        assert_eq!(
            post["x-kubernetes-group-version-kind"]["kind"], kind,
            "{plural}"
        );
        let schema = format!("io.k8s.api.authorization.v1.{kind}");
        assert!(
            doc["components"]["schemas"].get(&schema).is_some(),
            "{schema}"
        );
    }
}
