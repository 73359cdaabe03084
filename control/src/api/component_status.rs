//! `/api/v1/componentstatuses` (`kubectl get cs`), as kube-apiserver still serves it: the
//! scheduler and the controller manager — tasks of this process, healthy while it answers —
//! and each member of the store (`etcd-0`, `etcd-1`, … asked one by one; `embedded-store`
//! for the embedded one). Computed on each read, never stored: get and list only, every
//! answer with kube's deprecation warning. Tables print NAME STATUS MESSAGE ERROR. Only
//! administrators may read them (kube grants them to cluster-admin alone).

use http::{Method, Response, StatusCode};
use serde_json::{json, Value};

use super::{object_response, table_default, ApiState};
use crate::authn::Identity;
use crate::http_util::ResponseBody;
use crate::kinds::{Resource, Scope};
use crate::status::ApiError;
use crate::table::{self, IncludeObject, TableOptions};

pub const KIND: &str = "ComponentStatus";
pub const PLURAL: &str = "componentstatuses";
pub const SINGULAR: &str = "componentstatus";
pub const SHORT_NAMES: &[&str] = &["cs"];
/// The resource, as OpenAPI describes it (it is not in the kinds table: nothing is stored).
pub const RESOURCE: Resource = Resource {
    group: "",
    version: "v1",
    kind: KIND,
    plural: PLURAL,
    singular: SINGULAR,
    scope: Scope::Cluster,
    short_names: SHORT_NAMES,
    categories: &[],
    subresources: &[],
    custom: false,
};
const COLLECTION: &str = "/api/v1/componentstatuses";
/// kube-apiserver's warning on every ComponentStatus answer.
pub const DEPRECATION: &str = "v1 ComponentStatus is deprecated in v1.19+";
/// The components that run inside bosun-control.
const IN_PROCESS: &[&str] = &["scheduler", "controller-manager"];

/// Answers the ComponentStatus paths; `None` for any other path.
pub async fn handle(
    state: &ApiState,
    identity: &Identity,
    method: &Method,
    path: &str,
    query: &str,
    accept: &str,
) -> Option<Response<ResponseBody>> {
    let rest = path.strip_prefix(COLLECTION)?;
    let name = match rest.trim_end_matches('/') {
        "" => None,
        named => Some(named.strip_prefix('/')?)
            .filter(|n| !n.contains('/'))?
            .into(),
    };
    let answer = match Options::parse(query) {
        // Read-only, and nothing to watch.
        Ok(options) if method == Method::GET && !options.watch => {
            answer(state, identity, name, &options, accept).await
        }
        Ok(_) => Err(ApiError::method_not_allowed(method, path)),
        Err(error) => Err(error),
    };
    Some(answer.unwrap_or_else(|e| e.into_response()))
}

async fn answer(
    state: &ApiState,
    identity: &Identity,
    name: Option<&str>,
    options: &Options,
    accept: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    if !identity.is_admin() {
        let verb = if name.is_some() { "get" } else { "list" };
        return Err(ApiError::forbidden(format!(
            "{PLURAL}{} is forbidden: User \"{}\" cannot {verb} resource \"{PLURAL}\" in API group \"\" at the cluster scope",
            name.map(|n| format!(" \"{n}\"")).unwrap_or_default(),
            identity.user
        )));
    }
    let wanted = name.or(options.name.as_deref());
    let mut items = statuses(state, wanted).await;
    if let Some(n) = name {
        if items.is_empty() {
            return Err(ApiError::not_found("", PLURAL, n));
        }
        items.truncate(1);
    }
    let body = if table_default::wants_table(accept) {
        let table_options = TableOptions {
            include_object: IncludeObject::parse(&options.include_object).unwrap_or_default(),
            no_headers: false,
            now: time::OffsetDateTime::now_utc(),
        };
        table::component_status_table(&items, &table_options)
    } else if name.is_some() {
        items.swap_remove(0)
    } else {
        json!({"kind": "ComponentStatusList", "apiVersion": "v1", "metadata": {}, "items": items})
    };
    Ok(object_response(
        StatusCode::OK,
        &body,
        &[DEPRECATION.to_owned()],
    ))
}

/// The ComponentStatuses, in kube's order (scheduler, controller-manager, the store's
/// members); only `wanted` when given (the store is asked only when a member is wanted).
async fn statuses(state: &ApiState, wanted: Option<&str>) -> Vec<Value> {
    let mut out: Vec<Value> = IN_PROCESS
        .iter()
        .filter(|n| wanted.is_none_or(|w| w == **n))
        .map(|n| status(n, None))
        .collect();
    if wanted.is_none_or(|w| !IN_PROCESS.contains(&w)) {
        let members = state.store.members_health().await;
        out.extend(
            members
                .iter()
                .filter(|m| wanted.is_none_or(|w| w == m.name))
                .map(|m| status(&m.name, m.error.as_deref())),
        );
    }
    out
}

/// One ComponentStatus: Healthy with message `ok`, or not with the error.
fn status(name: &str, error: Option<&str>) -> Value {
    let condition = match error {
        None => json!({"type": "Healthy", "status": "True", "message": "ok"}),
        Some(error) => json!({"type": "Healthy", "status": "False", "error": error}),
    };
    json!({
        "kind": KIND,
        "apiVersion": "v1",
        "metadata": {"name": name},
        "conditions": [condition],
    })
}

/// The query parameters a ComponentStatus read honours; any other selector is refused.
#[derive(Debug, Default, PartialEq)]
struct Options {
    watch: bool,
    /// From `fieldSelector=metadata.name=<name>`.
    name: Option<String>,
    include_object: String,
}

impl Options {
    fn parse(query: &str) -> Result<Options, ApiError> {
        let mut options = Options::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match (&*key, &*value) {
                ("watch", v) => options.watch = v == "true" || v == "1",
                ("includeObject", v) => options.include_object = v.to_owned(),
                ("fieldSelector" | "labelSelector", "") => {}
                ("fieldSelector", v) => {
                    let name = v
                        .strip_prefix("metadata.name=")
                        .or_else(|| v.strip_prefix("metadata.name=="))
                        .filter(|n| !n.contains(','))
                        .ok_or_else(|| {
                            ApiError::bad_request(format!(
                                "fieldSelector {v:?}: componentstatuses are selected by metadata.name only"
                            ))
                        })?;
                    options.name = Some(name.to_owned());
                }
                ("labelSelector", v) => {
                    return Err(ApiError::bad_request(format!(
                        "labelSelector {v:?}: componentstatuses have no labels to select by"
                    )))
                }
                _ => {}
            }
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_say_healthy_or_carry_the_error() {
        let healthy = status("etcd-0", None);
        assert_eq!(healthy["conditions"][0]["status"], "True");
        assert_eq!(healthy["conditions"][0]["message"], "ok");
        let sick = status("etcd-1", Some("http://127.0.0.1:1: no leader"));
        assert_eq!(sick["conditions"][0]["status"], "False");
        assert_eq!(
            sick["conditions"][0]["error"],
            "http://127.0.0.1:1: no leader"
        );
        let now = time::OffsetDateTime::now_utc();
        let options = TableOptions {
            include_object: IncludeObject::None,
            no_headers: false,
            now,
        };
        let table = table::component_status_table(&[healthy, sick], &options);
        let names: Vec<&str> = table["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Name", "Status", "Message", "Error"]);
        assert_eq!(
            table["rows"][0]["cells"],
            json!(["etcd-0", "Healthy", "ok", ""])
        );
        assert_eq!(
            table["rows"][1]["cells"],
            json!(["etcd-1", "Unhealthy", "", "http://127.0.0.1:1: no leader"])
        );
    }

    #[test]
    fn options_take_a_name_selector_and_refuse_other_selectors() {
        let options = Options::parse("fieldSelector=metadata.name%3Detcd-0&watch=true").unwrap();
        assert_eq!(options.name.as_deref(), Some("etcd-0"));
        assert!(options.watch);
        assert!(Options::parse("labelSelector=").unwrap().name.is_none());
        let error = Options::parse("labelSelector=a%3Db").unwrap_err();
        assert_eq!(error.code, 400);
        assert!(Options::parse("fieldSelector=status.phase%3DOk").is_err());
    }
}
