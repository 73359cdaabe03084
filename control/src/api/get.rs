//! GET of one object and of a collection (list): selectors, `limit` with continue tokens
//! that carry the list's revision and last key (every page reads the same snapshot), the
//! list's resourceVersion, and Tables when the client asks for `as=Table`.

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{json, Value};

use super::query::Continue;
use super::{decode_stored, map_store_error, object_response, table_default, Call};
use crate::http_util::{json_response, ResponseBody};
use crate::status::ApiError;
use crate::store::ListOptions;

/// GET of the named object (or its status).
pub async fn get(call: &Call) -> Result<Response<ResponseBody>, ApiError> {
    let mut object = read(call).await?;
    if call.converts_by_webhook() {
        object = call.shown(object).await?;
    }
    if table_default::wants_table(&call.accept) {
        let rv = object["metadata"]["resourceVersion"].clone();
        let mut table =
            table_default::to_table(call.resource(), &[object], &call.query.include_object);
        table["metadata"] = json!({"resourceVersion": rv});
        return Ok(object_response(StatusCode::OK, &table, &[]));
    }
    Ok(object_response(
        StatusCode::OK,
        &call.shown(object).await?,
        &[],
    ))
}

/// The named object, or 404.
pub async fn read(call: &Call) -> Result<Value, ApiError> {
    let (Some(key), Some(name)) = (call.path.key(), call.path.name.as_deref()) else {
        return Err(ApiError::bad_request("no object named"));
    };
    stored(call, &key, name)
        .await?
        .ok_or_else(|| call.not_found(name))
}

/// The stored core/v1 `plural` object `name` (in `namespace`), or 404.
pub(super) async fn read_core(
    call: &Call,
    plural: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<Value, ApiError> {
    let resource = crate::kinds::find("", "v1", plural)
        .ok_or_else(|| ApiError::internal(format!("{plural} are not served")))?;
    let key = super::path::object_key(resource, namespace, name);
    stored(call, &key, name)
        .await?
        .ok_or_else(|| ApiError::not_found("", plural, name))
}

/// The object stored at `key` (named `name` in errors), if any.
async fn stored(call: &Call, key: &str, name: &str) -> Result<Option<Value>, ApiError> {
    let kv = call
        .state
        .store
        .get(key)
        .await
        .map_err(|e| call.store_error(name, e))?;
    kv.map(|kv| decode_stored(&kv)).transpose()
}

/// One page of matching objects and where the next starts.
pub struct Page {
    pub objects: Vec<Value>,
    pub revision: i64,
    pub next: Option<Continue>,
}

/// Lists the matching objects of the call's collection, one page (or all with `limit` 0).
pub async fn list_page(call: &Call) -> Result<Page, ApiError> {
    let mut objects = Vec::new();
    let (revision, next) = list_each(call, &mut objects).await?;
    Ok(Page {
        objects,
        revision,
        next,
    })
}

/// Objects read from the store at a time when a list wants them all: a list of many objects
/// holds one chunk of stored values at a time, not all of them.
const LIST_CHUNK: usize = 1000;

/// Times a whole list starts again on a newer snapshot when its revision was compacted
/// between two of its chunks.
const LIST_RESTARTS: usize = 5;

/// Where a list's objects go as they are read.
trait ListItems {
    fn take(&mut self, object: Value) -> Result<(), ApiError>;
    /// Forgets every object taken: the list starts again.
    fn restart(&mut self);
}

impl ListItems for Vec<Value> {
    fn take(&mut self, object: Value) -> Result<(), ApiError> {
        self.push(object);
        Ok(())
    }

    fn restart(&mut self) {
        self.clear();
    }
}

/// A JSON list's body being written: `head`, then the items written so far.
struct JsonItems<'a> {
    call: &'a Call,
    out: Vec<u8>,
    head: usize,
}

impl ListItems for JsonItems<'_> {
    fn take(&mut self, object: Value) -> Result<(), ApiError> {
        if self.out.len() > self.head {
            self.out.push(b',');
        }
        let shown = super::convert::to_served(object, self.call.resource());
        serde_json::to_writer(&mut self.out, &shown)
            .map_err(|e| ApiError::internal(format!("encoding a list item: {e}")))
    }

    fn restart(&mut self) {
        self.out.truncate(self.head);
    }
}

/// Hands each matching object of the call's collection to `items`, in key order, one page (or
/// all with `limit` 0); returns the list's revision and where the next page starts. The
/// chunks after the first read at its revision; if the compactor passes it meanwhile, a list
/// without a continue token (whose revision is the list's own choice) starts again, as the
/// one read it replaces never failed that way.
async fn list_each(
    call: &Call,
    items: &mut impl ListItems,
) -> Result<(i64, Option<Continue>), ApiError> {
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
    let mut taken = 0;
    let mut restarts = 0;
    loop {
        // Selectors filter after reading: read what is still wanted, at least a small batch.
        // Every chunk reads the first one's revision: one consistent list.
        let want = if q.limit == 0 {
            LIST_CHUNK
        } else {
            (q.limit - taken).max(50)
        };
        let options = ListOptions {
            after_key: after.clone(),
            limit: want,
            revision,
        };
        let page = match call.state.store.list(&prefix, &options).await {
            Ok(page) => page,
            Err(crate::store::Error::Compacted { .. })
                if q.continue_token.is_none() && after.is_some() && restarts < LIST_RESTARTS =>
            {
                restarts += 1;
                items.restart();
                (revision, after, taken) = (None, None, 0);
                continue;
            }
            Err(error) => return Err(map_store_error(error)),
        };
        revision = Some(page.revision);
        let mut last_key = None;
        let mut taken_all = true;
        for (i, kv) in page.items.iter().enumerate() {
            last_key = Some(kv.key.clone());
            let object = decode_stored(kv)?;
            if q.labels.matches(&object) && q.fields.matches(&object) {
                items.take(object)?;
                taken += 1;
            }
            if q.limit != 0 && taken == q.limit {
                taken_all = i + 1 == page.items.len();
                break;
            }
        }
        let more = page.more || !taken_all;
        let full = q.limit != 0 && taken == q.limit;
        let revision = page.revision;
        match (more, full, last_key) {
            (true, true, Some(start)) => return Ok((revision, Some(Continue { revision, start }))),
            (true, false, Some(start)) => after = Some(start),
            _ => return Ok((revision, None)),
        }
    }
}

/// GET of a collection. A JSON list is written object by object as the store is read, so a
/// list of many objects never holds them all decoded at once; a Table is built whole.
pub async fn list(call: &Call) -> Result<Response<ResponseBody>, ApiError> {
    let r = call.resource();
    let table = table_default::wants_table(&call.accept);
    if table || call.converts_by_webhook() {
        // A webhook converts the page's objects in one call, before they are shown.
        let page = list_page(call).await?;
        let objects = match call.converts_by_webhook() {
            true => call.shown_all(page.objects).await?,
            false => page.objects,
        };
        let meta = list_meta(page.revision, page.next);
        if table {
            let mut table = table_default::to_table(r, &objects, &call.query.include_object);
            table["metadata"] = meta;
            return Ok(object_response(StatusCode::OK, &table, &[]));
        }
        let list = json!({"kind": format!("{}List", r.kind), "apiVersion": r.group_version(),
            "metadata": meta, "items": objects});
        return Ok(object_response(StatusCode::OK, &list, &[]));
    }
    let head = json!({"kind": format!("{}List", r.kind), "apiVersion": r.group_version()});
    // `{"apiVersion":…,"kind":…` without its closing brace, then the items.
    let mut out = head.to_string().into_bytes();
    out.pop();
    out.extend_from_slice(br#","items":["#);
    let head = out.len();
    let mut items = JsonItems { call, out, head };
    let (revision, next) = list_each(call, &mut items).await?;
    let mut out = items.out;
    out.extend_from_slice(br#"],"metadata":"#);
    out.extend_from_slice(list_meta(revision, next).to_string().as_bytes());
    out.push(b'}');
    Ok(json_response(StatusCode::OK, Bytes::from(out)))
}

/// A list's metadata: its resourceVersion, and the continue token of the next page if any.
fn list_meta(revision: i64, next: Option<Continue>) -> Value {
    let mut meta = json!({"resourceVersion": revision.to_string()});
    if let Some(next) = next {
        meta["continue"] = json!(next.encode());
    }
    meta
}
