//! Watches (`?watch=true`): newline-delimited JSON `WatchEvent`s streamed with chunked
//! transfer. Without a resourceVersion (or with "0") the watch starts with synthetic ADDED
//! events for the objects that exist, as Kubernetes does; with one, it replays the changes
//! after it. Selectors filter events (an object that starts or stops matching is ADDED or
//! DELETED for this watcher); `allowWatchBookmarks` adds periodic BOOKMARKs; `timeoutSeconds`
//! ends the stream. A compacted resourceVersion ends it with an ERROR event holding a 410
//! Status.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::watch_renderings::event_line;
use super::{convert, crd_conversion, decode_stored, map_store_error, table_default, Call};
use crate::http_util::ResponseBody;
use crate::limits::WatchGuard;
use crate::status::ApiError;
use crate::store::{Event, EventKind, ListOptions};

/// The longest a watch runs when the client names no timeout (Kubernetes picks 30–60 min).
const MAX_WATCH: Duration = Duration::from_secs(1800);

/// Streams the watch; `slot` (the client's watch count) is held until the stream ends or the
/// client leaves.
pub async fn watch(call: Call, slot: Option<WatchGuard>) -> Response<ResponseBody> {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        if let Err(error) = run(&call, &tx).await {
            let _ = tx.send(line("ERROR", error.to_status())).await;
        }
    });
    let frames = futures::stream::unfold((rx, slot), |(mut rx, slot)| async move {
        let bytes = rx.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(bytes)), (rx, slot)))
    });
    let mut response = Response::new(StreamBody::new(frames).boxed());
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn line(kind: &str, object: Value) -> Bytes {
    let mut text = json!({"type": kind, "object": object}).to_string();
    text.push('\n');
    Bytes::from(text)
}

/// Streams events until the timeout, the client leaving, or an error (returned).
async fn run(call: &Call, tx: &mpsc::Sender<Bytes>) -> Result<(), ApiError> {
    let q = &call.query;
    let store = &call.state.store;
    let prefix = call.path.prefix();
    let table = table_default::wants_table(&call.accept);
    let mut first = true;
    let mut last = match q.resource_version.as_deref() {
        None | Some("0") => {
            let page = store
                .list(&prefix, &ListOptions::default())
                .await
                .map_err(map_store_error)?;
            for kv in &page.items {
                let object = decode_stored(kv)?;
                if matches(call, &object) {
                    let shown = encode(call, table, &mut first, object).await?;
                    if tx.send(line("ADDED", shown)).await.is_err() {
                        return Ok(());
                    }
                }
            }
            page.revision
        }
        Some(rv) => rv
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
    };
    let mut events = store.watch(&prefix, last).await.map_err(map_store_error)?;
    // Shown as stored at the call's version, with nothing to match: rendered once for all.
    let shared = !table
        && q.labels.is_empty()
        && q.fields.is_empty()
        && crd_conversion::converting(call.resource()).is_none();
    let timeout = q
        .timeout_seconds
        .map_or(MAX_WATCH, |s| Duration::from_secs(s).min(MAX_WATCH));
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut bookmarks = tokio::time::interval(call.state.bookmark_interval);
    bookmarks.tick().await;
    loop {
        let out = tokio::select! {
            () = &mut deadline => return Ok(()),
            () = tx.closed() => return Ok(()),
            _ = bookmarks.tick(), if q.allow_bookmarks => {
                let r = call.resource();
                line("BOOKMARK", json!({
                    "kind": r.kind,
                    "apiVersion": r.group_version(),
                    "metadata": {"resourceVersion": last.to_string()},
                }))
            }
            event = events.next() => {
                let event = match event {
                    None => return Ok(()),
                    Some(Err(error)) => {
                        return Err(match error {
                            crate::store::Error::WatchTooSlow { .. } => ApiError::gone(format!("too old resource version: {error}")),
                            other => map_store_error(other),
                        })
                    }
                    Some(Ok(event)) => event,
                };
                last = event.revision();
                if shared {
                    shared_line(call, &event)?
                } else {
                let object = decode_stored(&event.kv)?;
                let was = match (&event.prev, event.kind) {
                    (_, EventKind::Delete) => matches(call, &object),
                    (Some(prev), _) => matches(call, &decode_stored(prev)?),
                    (None, _) => false,
                };
                let is = event.kind == EventKind::Put && matches(call, &object);
                let kind = match (was, is, event.kind) {
                    (_, _, EventKind::Delete) if was => "DELETED",
                    (false, true, _) => "ADDED",
                    (true, true, _) => "MODIFIED",
                    (true, false, _) => "DELETED",
                    _ => continue,
                };
                line(kind, encode(call, table, &mut first, object).await?)
                }
            }
        };
        if tx.send(out).await.is_err() {
            return Ok(());
        }
    }
}

/// The line of `event` for a watch with no selector, Table or conversion webhook: every event
/// is the watch's (a Put that created its key is ADDED), its object rendered once for all
/// such watches of the version.
fn shared_line(call: &Call, event: &Event) -> Result<Bytes, ApiError> {
    let kind = match (event.kind, &event.prev) {
        (EventKind::Delete, _) => "DELETED",
        (EventKind::Put, Some(_)) => "MODIFIED",
        (EventKind::Put, None) => "ADDED",
    };
    let resource = call.resource();
    let object = call
        .state
        .watch_renderings
        .get_or_render(&event.kv, resource, || {
            let served = convert::to_served(decode_stored(&event.kv)?, resource);
            Ok(Bytes::from(served.to_string()))
        })?;
    Ok(event_line(kind, &object))
}

/// An event's object as the call shows it: at its version, or as a one-row Table (the
/// first one with the column definitions).
async fn encode(
    call: &Call,
    table: bool,
    first: &mut bool,
    object: Value,
) -> Result<Value, ApiError> {
    if !table {
        return call.shown(object).await;
    }
    let object = match call.converts_by_webhook() {
        true => call.shown(object).await?,
        false => object,
    };
    let q = &call.query;
    let row = table_default::to_event_table(call.resource(), object, &q.include_object, *first);
    *first = false;
    Ok(row)
}

fn matches(call: &Call, object: &Value) -> bool {
    call.query.labels.matches(object) && call.query.fields.matches(object)
}
