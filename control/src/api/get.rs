//! GET of one object and of a collection (list): selectors, `limit` with continue tokens
//! that carry the list's revision and last key (every page reads the same snapshot), the
//! list's resourceVersion, and Tables when the client asks for `as=Table`.

use http::{Response, StatusCode};
use serde_json::{json, Value};

use super::query::Continue;
use super::{decode_stored, map_store_error, object_response, table_default, Call};
use crate::http_util::ResponseBody;
use crate::status::ApiError;
use crate::store::ListOptions;

/// GET of the named object (or its status).
pub async fn get(call: &Call) -> Result<Response<ResponseBody>, ApiError> {
    let object = read(call).await?;
    if table_default::wants_table(&call.accept) {
        let rv = object["metadata"]["resourceVersion"].clone();
        let table = table_default::to_table(call.resource(), &[object], &call.query.include_object);
        return Ok(object_response(
            StatusCode::OK,
            &with_list_meta(table, rv, None),
            &[],
        ));
    }
    Ok(object_response(StatusCode::OK, &call.shown(object), &[]))
}

/// The named object, or 404.
pub async fn read(call: &Call) -> Result<Value, ApiError> {
    let (Some(key), Some(name)) = (call.path.key(), call.path.name.as_deref()) else {
        return Err(ApiError::bad_request("no object named"));
    };
    let kv = call
        .state
        .store
        .get(&key)
        .await
        .map_err(|e| call.store_error(name, e))?
        .ok_or_else(|| call.not_found(name))?;
    decode_stored(&kv)
}

/// One page of matching objects and where the next starts.
pub struct Page {
    pub objects: Vec<Value>,
    pub revision: i64,
    pub next: Option<Continue>,
}

/// Lists the matching objects of the call's collection, one page (or all with `limit` 0).
pub async fn list_page(call: &Call) -> Result<Page, ApiError> {
    let q = &call.query;
    // A list pinned to one name (`rollout status`, `get NAME -w`) reads only the keys starting
    // with it, still as one consistent list; the selector drops longer names.
    let prefix = match (q.fields.name(), &call.path.namespace) {
        (Some(name), Some(ns)) => super::path::object_key(call.resource(), Some(ns), name),
        (Some(name), None) if !call.resource().namespaced() => {
            super::path::object_key(call.resource(), None, name)
        }
        _ => call.path.prefix(),
    };
    let (mut revision, mut after) = match &q.continue_token {
        Some(c) if c.start.starts_with(&prefix) => (Some(c.revision), Some(c.start.clone())),
        Some(_) => {
            return Err(ApiError::bad_request(
                "continue key is not valid for this list",
            ))
        }
        None => (None, None),
    };
    let mut objects = Vec::new();
    loop {
        // Selectors filter after reading: read what is still wanted, at least a small batch.
        let want = if q.limit == 0 {
            0
        } else {
            (q.limit - objects.len()).max(50)
        };
        let options = ListOptions {
            after_key: after.clone(),
            limit: want,
            revision,
        };
        let page = call
            .state
            .store
            .list(&prefix, &options)
            .await
            .map_err(map_store_error)?;
        revision = Some(page.revision);
        let mut last_key = None;
        let mut taken_all = true;
        for (i, kv) in page.items.iter().enumerate() {
            last_key = Some(kv.key.clone());
            let object = decode_stored(kv)?;
            if q.labels.matches(&object) && q.fields.matches(&object) {
                objects.push(object);
            }
            if q.limit != 0 && objects.len() == q.limit {
                taken_all = i + 1 == page.items.len();
                break;
            }
        }
        let more = page.more || !taken_all;
        let full = q.limit != 0 && objects.len() == q.limit;
        let revision = page.revision;
        match (more, full, last_key) {
            (true, true, Some(start)) => {
                return Ok(Page {
                    objects,
                    revision,
                    next: Some(Continue { revision, start }),
                })
            }
            (true, false, Some(start)) => after = Some(start),
            _ => {
                return Ok(Page {
                    objects,
                    revision,
                    next: None,
                })
            }
        }
    }
}

/// GET of a collection.
pub async fn list(call: &Call) -> Result<Response<ResponseBody>, ApiError> {
    let page = list_page(call).await?;
    let rv = json!(page.revision.to_string());
    let token = page.next.map(|c| c.encode());
    let r = call.resource();
    let body = if table_default::wants_table(&call.accept) {
        table_default::to_table(r, &page.objects, &call.query.include_object)
    } else {
        json!({
            "kind": format!("{}List", r.kind),
            "apiVersion": r.group_version(),
            "items": page.objects.into_iter().map(|o| call.shown(o)).collect::<Vec<_>>(),
        })
    };
    Ok(object_response(
        StatusCode::OK,
        &with_list_meta(body, rv, token),
        &[],
    ))
}

fn with_list_meta(mut body: Value, rv: Value, token: Option<String>) -> Value {
    body["metadata"] = json!({"resourceVersion": rv});
    if let Some(token) = token {
        body["metadata"]["continue"] = json!(token);
    }
    body
}
