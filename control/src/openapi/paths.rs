//! `paths` of one group-version document: the standard operations of each resource as
//! kube-apiserver describes them (list/create/deletecollection on the collection, read/
//! replace/patch/delete on one object, list across namespaces), each tagged with
//! `x-kubernetes-action` and `x-kubernetes-group-version-kind`. kubectl `apply` reads the PATCH
//! operation of a kind to learn it may send `fieldValidation=Strict`.

use serde_json::{json, Map, Value};

use super::schemas::{gvk, DELETE_OPTIONS, PATCH, STATUS};
use crate::kinds::Resource;

/// The patch content types the PATCH operations accept, as kube-apiserver lists them. Listing
/// strategic merge patch makes kubectl build its strategic merge patches from the OpenAPI v3
/// schemas, whose `x-kubernetes-patch-merge-key` extensions `schemas` adds.
pub const PATCH_CONTENT_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

/// The patch content types of a custom resource's PATCH operations: no strategic merge patch
/// (kubectl then sends a merge patch), as kube-apiserver lists them.
pub const CUSTOM_PATCH_CONTENT_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
];

/// Adds the paths of `resource` (whose kind schema is `schema`) to `paths`.
pub fn add(paths: &mut Map<String, Value>, resource: &Resource, schema: &str) {
    let prefix = if resource.group.is_empty() {
        format!("/api/{}", resource.version)
    } else {
        format!("/apis/{}/{}", resource.group, resource.version)
    };
    let op = Ops::new(resource, schema);
    let mut collection_params = vec![param(
        "pretty",
        "query",
        "If 'true', then the output is pretty printed.",
    )];
    let collection = if resource.namespaced() {
        collection_params.push(namespace_param());
        format!("{prefix}/namespaces/{{namespace}}/{}", resource.plural)
    } else {
        format!("{prefix}/{}", resource.plural)
    };
    let mut object_params = vec![param(
        "name",
        "path",
        &format!("name of the {}", resource.kind),
    )];
    object_params.extend(collection_params.iter().cloned());

    paths.insert(
        collection.clone(),
        json!({
            "get": op.list(),
            "post": op.create(),
            "delete": op.delete_collection(),
            "parameters": collection_params,
        }),
    );
    paths.insert(
        format!("{collection}/{{name}}"),
        json!({
            "get": op.read(),
            "put": op.replace(),
            "patch": op.patch(),
            "delete": op.delete(),
            "parameters": object_params,
        }),
    );
    if resource.namespaced() {
        let mut all = op.list();
        all["operationId"] = json!(format!("list{}{}ForAllNamespaces", op.id, resource.kind));
        paths.insert(
            format!("{prefix}/{}", resource.plural),
            json!({"get": all, "parameters": [param("pretty", "query", "If 'true', then the output is pretty printed.")]}),
        );
    }
}

/// Adds the two paths of a cluster-scoped read-only resource (computed on each read, as
/// ComponentStatuses are): list the collection, read one.
pub fn add_read_only(paths: &mut Map<String, Value>, resource: &Resource, schema: &str) {
    let collection = format!("/api/{}/{}", resource.version, resource.plural);
    let op = Ops::new(resource, schema);
    let pretty = param(
        "pretty",
        "query",
        "If 'true', then the output is pretty printed.",
    );
    let name = param("name", "path", &format!("name of the {}", resource.kind));
    paths.insert(
        collection.clone(),
        json!({"get": op.list(), "parameters": [pretty.clone()]}),
    );
    paths.insert(
        format!("{collection}/{{name}}"),
        json!({"get": op.read(), "parameters": [name, pretty]}),
    );
}

/// Adds the one path of a create-only resource (a review: nothing stored, only `POST` to the
/// collection), as kube-apiserver describes SelfSubjectReviews.
pub fn add_create_only(paths: &mut Map<String, Value>, resource: &Resource, schema: &str) {
    let namespace = match resource.namespaced() {
        true => "namespaces/{namespace}/",
        false => "",
    };
    let path = format!(
        "/apis/{}/{}/{namespace}{}",
        resource.group, resource.version, resource.plural
    );
    let create = Ops::new(resource, schema).create();
    let mut parameters = vec![param(
        "pretty",
        "query",
        "If 'true', then the output is pretty printed.",
    )];
    if resource.namespaced() {
        parameters.push(param(
            "namespace",
            "path",
            "object name and auth scope, such as for teams and projects",
        ));
    }
    paths.insert(path, json!({"post": create, "parameters": parameters}));
}

/// Builds the operations of one resource.
struct Ops<'a> {
    resource: &'a Resource,
    schema: &'a str,
    /// `AppsV1`, `CoreV1`, `NetworkingV1`: the operation id infix.
    id: String,
    /// `Namespaced` or empty.
    scope: &'static str,
}

impl<'a> Ops<'a> {
    fn new(resource: &'a Resource, schema: &'a str) -> Self {
        let group = if resource.group.is_empty() {
            "core"
        } else {
            resource.group
        };
        let group: String = group
            .split('.')
            .next()
            .unwrap_or(group)
            .split('-')
            .map(capitalize)
            .collect();
        Ops {
            resource,
            schema,
            id: format!("{group}{}", capitalize(resource.version)),
            scope: if resource.namespaced() {
                "Namespaced"
            } else {
                ""
            },
        }
    }

    fn base(&self, verb: &str, action: &str, description: String) -> Value {
        json!({
            "operationId": format!("{verb}{}{}{}", self.id, self.scope, self.resource.kind),
            "description": description,
            "tags": [self.id.clone()],
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk(self.resource, self.resource.kind),
            "parameters": [],
            "responses": {"401": {"description": "Unauthorized"}},
        })
    }

    fn respond(op: &mut Value, codes: &[&str], schema: &str) {
        for code in codes {
            op["responses"][*code] = json!({
                "description": if *code == "201" { "Created" } else if *code == "202" { "Accepted" } else { "OK" },
                "content": {"application/json": {"schema": reference(schema)}},
            });
        }
    }

    fn list(&self) -> Value {
        let kind = self.resource.kind;
        let mut op = self.base(
            "list",
            "list",
            format!("list or watch objects of kind {kind}"),
        );
        op["parameters"] = json!([
            query("allowWatchBookmarks", "boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\"."),
            query("continue", "string", "The continue option should be set when retrieving more results from the server."),
            query("fieldSelector", "string", "A selector to restrict the list of returned objects by their fields."),
            query("labelSelector", "string", "A selector to restrict the list of returned objects by their labels."),
            query("limit", "integer", "limit is a maximum number of responses to return for a list call."),
            query("resourceVersion", "string", "resourceVersion sets a constraint on what resource versions a request may be served from."),
            query("resourceVersionMatch", "string", "resourceVersionMatch determines how resourceVersion is applied to list calls."),
            query("sendInitialEvents", "boolean", "`sendInitialEvents=true` may be set together with `watch=true`."),
            query("timeoutSeconds", "integer", "Timeout for the list/watch call."),
            query("watch", "boolean", "Watch for changes to the described resources."),
        ]);
        Self::respond(&mut op, &["200"], &format!("{}List", self.schema));
        op
    }

    fn create(&self) -> Value {
        let mut op = self.base("create", "post", format!("create a {}", self.resource.kind));
        op["parameters"] = json!(write_params());
        op["requestBody"] =
            json!({"required": true, "content": {"*/*": {"schema": reference(self.schema)}}});
        Self::respond(&mut op, &["200", "201", "202"], self.schema);
        op
    }

    fn read(&self) -> Value {
        let mut op = self.base(
            "read",
            "get",
            format!("read the specified {}", self.resource.kind),
        );
        Self::respond(&mut op, &["200"], self.schema);
        op
    }

    fn replace(&self) -> Value {
        let mut op = self.base(
            "replace",
            "put",
            format!("replace the specified {}", self.resource.kind),
        );
        op["parameters"] = json!(write_params());
        op["requestBody"] =
            json!({"required": true, "content": {"*/*": {"schema": reference(self.schema)}}});
        Self::respond(&mut op, &["200", "201"], self.schema);
        op
    }

    fn patch(&self) -> Value {
        let mut op = self.base(
            "patch",
            "patch",
            format!("partially update the specified {}", self.resource.kind),
        );
        let mut params = write_params();
        params.push(query("force", "boolean", "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people."));
        op["parameters"] = json!(params);
        let types = match self.resource.custom {
            true => CUSTOM_PATCH_CONTENT_TYPES,
            false => PATCH_CONTENT_TYPES,
        };
        let content: Map<String, Value> = types
            .iter()
            .map(|t| ((*t).to_owned(), json!({"schema": reference(PATCH)})))
            .collect();
        op["requestBody"] = json!({"required": true, "content": content});
        Self::respond(&mut op, &["200", "201"], self.schema);
        op
    }

    fn delete(&self) -> Value {
        let mut op = self.base(
            "delete",
            "delete",
            format!("delete a {}", self.resource.kind),
        );
        op["parameters"] = json!(delete_params());
        op["requestBody"] = json!({"content": {"*/*": {"schema": reference(DELETE_OPTIONS)}}});
        Self::respond(&mut op, &["200", "202"], STATUS);
        op
    }

    fn delete_collection(&self) -> Value {
        let kind = self.resource.kind;
        let mut op = self.base(
            "deletecollection",
            "deletecollection",
            format!("delete collection of {kind}"),
        );
        let mut params = delete_params();
        params.extend([
            query(
                "fieldSelector",
                "string",
                "A selector to restrict the list of deleted objects by their fields.",
            ),
            query(
                "labelSelector",
                "string",
                "A selector to restrict the list of deleted objects by their labels.",
            ),
        ]);
        op["parameters"] = json!(params);
        op["requestBody"] = json!({"content": {"*/*": {"schema": reference(DELETE_OPTIONS)}}});
        Self::respond(&mut op, &["200"], STATUS);
        op
    }
}

fn write_params() -> Vec<Value> {
    vec![
        query("dryRun", "string", "When present, indicates that modifications should not be persisted. Valid value: All."),
        query("fieldManager", "string", "fieldManager is a name associated with the actor or entity that is making these changes."),
        query("fieldValidation", "string", "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values: Ignore, Warn, Strict."),
    ]
}

fn delete_params() -> Vec<Value> {
    vec![
        query("dryRun", "string", "When present, indicates that modifications should not be persisted. Valid value: All."),
        query("gracePeriodSeconds", "integer", "The duration in seconds before the object should be deleted."),
        query("propagationPolicy", "string", "Whether and how garbage collection will be performed: Orphan, Background or Foreground."),
    ]
}

fn query(name: &str, kind: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": kind, "uniqueItems": true}})
}

fn param(name: &str, location: &str, description: &str) -> Value {
    let mut p = json!({"name": name, "in": location, "description": description, "schema": {"type": "string", "uniqueItems": true}});
    if location == "path" {
        p["required"] = json!(true);
    }
    p
}

fn namespace_param() -> Value {
    param(
        "namespace",
        "path",
        "object name and auth scope, such as for teams and projects",
    )
}

fn reference(schema: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{schema}")})
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
