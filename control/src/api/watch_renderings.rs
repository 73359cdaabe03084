//! Watch events' objects rendered once for every watch that shows them alike — as
//! kube-apiserver's watch cache serializes an event once per format for all its watchers
//! (`CachingObject`). With a hundred watches of one resource (each node's informers of
//! Services and EndpointSlices, say), each watch parsed the stored object, set its
//! resourceVersion and wrote it out again by itself: a hundred times the work for one write.
//!
//! The watches that can share are those that show the stored object as it is served at their
//! version, with no selector to test and no Table or conversion webhook in between (the
//! others render as before). The newest renderings are kept, keyed by the object's key, the
//! revision of the event and the resource (version) shown; the watches of one write take them
//! within moments of each other.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;

use crate::kinds::Resource;
use crate::status::ApiError;
use crate::store::KeyValue;

/// How many renderings are kept: the watches of one write all come within this many later
/// writes of one another unless they fell far behind (then they render for themselves).
const KEPT: usize = 64;

/// The newest renderings, shared by the server's watches.
#[derive(Default)]
pub(crate) struct WatchRenderings {
    recent: Mutex<VecDeque<Rendering>>,
}

struct Rendering {
    revision: i64,
    key: String,
    resource: &'static Resource,
    text: Bytes,
}

impl WatchRenderings {
    /// The JSON text of `kv` (an event's object) as `resource` shows it: the one rendered
    /// for another watch, else `render`'s (kept for the next ones).
    pub fn get_or_render(
        &self,
        kv: &KeyValue,
        resource: &'static Resource,
        render: impl FnOnce() -> Result<Bytes, ApiError>,
    ) -> Result<Bytes, ApiError> {
        let found = self.recent().iter().rev().find_map(|r| {
            let same = r.revision == kv.mod_revision
                && std::ptr::eq(r.resource, resource)
                && r.key == kv.key;
            same.then(|| r.text.clone())
        });
        if let Some(text) = found {
            return Ok(text);
        }
        // Rendered outside the lock: two watches may both render one event, never wait.
        let text = render()?;
        let mut recent = self.recent();
        if recent.len() >= KEPT {
            recent.pop_front();
        }
        recent.push_back(Rendering {
            revision: kv.mod_revision,
            key: kv.key.clone(),
            resource,
            text: text.clone(),
        });
        Ok(text)
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, VecDeque<Rendering>> {
        self.recent.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One line of a watch stream: `{"type":KIND,"object":OBJECT}` and a newline, with `object`
/// already JSON text.
pub(crate) fn event_line(kind: &str, object: &[u8]) -> Bytes {
    let mut line = Vec::with_capacity(object.len() + kind.len() + 24);
    line.extend_from_slice(br#"{"type":""#);
    line.extend_from_slice(kind.as_bytes());
    line.extend_from_slice(br#"","object":"#);
    line.extend_from_slice(object);
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn kv(key: &str, revision: i64) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Bytes::from_static(b"{}"),
            create_revision: 1,
            mod_revision: revision,
        }
    }

    fn resource(group: &str, version: &str, plural: &str) -> &'static Resource {
        crate::kinds::find(group, version, plural).expect("a served resource")
    }

    #[test]
    fn one_rendering_per_object_revision_and_version() {
        let renderings = WatchRenderings::default();
        let renders = Cell::new(0);
        let render = |text: &'static str| {
            let renders = &renders;
            move || {
                renders.set(renders.get() + 1);
                Ok(Bytes::from_static(text.as_bytes()))
            }
        };
        let v1 = resource("autoscaling", "v1", "horizontalpodautoscalers");
        let v2 = resource("autoscaling", "v2", "horizontalpodautoscalers");
        let a3 = kv("/registry/horizontalpodautoscalers/d/a", 3);
        for _ in 0..100 {
            let text = renderings.get_or_render(&a3, v2, render("a3-v2")).unwrap();
            assert_eq!(text, "a3-v2");
        }
        assert_eq!(renders.get(), 1, "a hundred watches, one rendering");
        let text = renderings.get_or_render(&a3, v1, render("a3-v1")).unwrap();
        assert_eq!(text, "a3-v1", "another version renders anew");
        let a4 = kv("/registry/horizontalpodautoscalers/d/a", 4);
        let text = renderings.get_or_render(&a4, v2, render("a4-v2")).unwrap();
        assert_eq!(text, "a4-v2", "another revision renders anew");
        let b3 = kv("/registry/horizontalpodautoscalers/d/b", 3);
        let text = renderings.get_or_render(&b3, v2, render("b3-v2")).unwrap();
        assert_eq!(text, "b3-v2", "another object of one revision renders anew");
        assert_eq!(renders.get(), 4);
    }

    #[test]
    fn only_the_newest_are_kept_and_errors_are_not() {
        let renderings = WatchRenderings::default();
        let cms = resource("", "v1", "configmaps");
        let failed = renderings.get_or_render(&kv("/c/x", 1), cms, || {
            Err(ApiError::internal("stored object /c/x is not JSON"))
        });
        assert!(failed.is_err());
        let ok = renderings.get_or_render(&kv("/c/x", 1), cms, || Ok(Bytes::from_static(b"x")));
        assert_eq!(ok.unwrap(), "x", "a failed rendering is not kept");
        for revision in 2..=(KEPT as i64 + 1) {
            renderings
                .get_or_render(&kv("/c/y", revision), cms, || Ok(Bytes::new()))
                .unwrap();
        }
        let again =
            renderings.get_or_render(&kv("/c/x", 1), cms, || Ok(Bytes::from_static(b"new")));
        assert_eq!(again.unwrap(), "new", "the oldest was dropped");
    }

    #[test]
    fn lines_are_the_watch_event_json() {
        let line = event_line("MODIFIED", br#"{"kind":"ConfigMap"}"#);
        assert!(line.ends_with(b"\n"));
        let event: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            event,
            serde_json::json!({"type": "MODIFIED", "object": {"kind": "ConfigMap"}})
        );
    }
}
