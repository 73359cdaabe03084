//! Graceful deletion of pods, as kube-apiserver's `rest.BeforeDelete` with the pod strategy's
//! `CheckGracefulDelete`: the grace is DeleteOptions' `gracePeriodSeconds`, else the pod's
//! `spec.terminationGracePeriodSeconds` (30); a pod that is not bound to a node or has
//! finished (Succeeded/Failed) gets 0. A pod with a grace above 0 is marked
//! (`deletionTimestamp` = now + grace, `deletionGracePeriodSeconds` = grace) and stays until its
//! kubelet, once its containers stopped, deletes it again with grace 0. A later delete may
//! shorten the grace, never lengthen it. Pure: it only rewrites the object it is given; the
//! caller (`delete`) writes or deletes.

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// kube's default `terminationGracePeriodSeconds`.
pub const DEFAULT_GRACE_SECONDS: i64 = 30;

/// What the grace step decided for one delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grace {
    /// Not a graceful delete (not a pod, or a pod marked with grace 0 already): delete now
    /// unless finalizers hold it.
    None,
    /// A graceful deletion is under way and this delete does not shorten it: the object is
    /// answered as it is.
    Pending,
    /// The object was marked (or its grace shortened) with this many seconds; 0 deletes now
    /// unless finalizers hold it.
    Marked(i64),
}

/// Whether graceful deletion applies to `object` (pods only, as in Kubernetes).
pub fn applies(object: &Value) -> bool {
    object["kind"] == "Pod" && object["apiVersion"] == "v1"
}

/// Applies a delete asking for `requested` seconds (`None`: not given) to the pod `object`,
/// at `now`.
pub fn before_delete(object: &mut Value, requested: Option<i64>, now: OffsetDateTime) -> Grace {
    // A negative grace means 1 s on the delete path.
    let requested = requested.map(|g| if g < 0 { 1 } else { g });
    let meta = &object["metadata"];
    if let Some(marked_at) = parse(&meta["deletionTimestamp"]) {
        let current = meta["deletionGracePeriodSeconds"].as_i64().unwrap_or(0);
        if current <= 0 {
            return Grace::None;
        }
        let Some(period) = requested.filter(|p| *p < current) else {
            return Grace::Pending;
        };
        let at = marked_at - time::Duration::seconds(current) + time::Duration::seconds(period);
        set(object, at, period);
        return Grace::Marked(period);
    }
    let spec_grace = object["spec"]["terminationGracePeriodSeconds"]
        .as_i64()
        .unwrap_or(DEFAULT_GRACE_SECONDS);
    let mut period = requested.unwrap_or(spec_grace).max(0);
    let bound = object["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        object["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    if !bound || finished {
        period = 0;
    }
    set(object, now + time::Duration::seconds(period), period);
    super::meta::bump_generation_on_delete(object);
    Grace::Marked(period)
}

/// The requested grace of a DeleteOptions body (`gracePeriodSeconds`).
pub fn requested(options: &Value) -> Option<i64> {
    options["gracePeriodSeconds"].as_i64()
}

fn parse(time: &Value) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(time.as_str()?, &Rfc3339).ok()
}

fn set(object: &mut Value, at: OffsetDateTime, period: i64) {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    let at = at
        .to_offset(time::UtcOffset::UTC)
        .format(format)
        .unwrap_or_else(|_| super::meta::now());
    object["metadata"]["deletionTimestamp"] = json!(at);
    object["metadata"]["deletionGracePeriodSeconds"] = json!(period);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::parse("2026-12-02T12:00:00Z", &Rfc3339).unwrap()
    }

    fn pod(node: &str, spec_grace: Option<i64>, phase: &str) -> Value {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "generation": 1},
            "spec": {"nodeName": node}, "status": {"phase": phase}});
        if let Some(g) = spec_grace {
            pod["spec"]["terminationGracePeriodSeconds"] = json!(g);
        }
        pod
    }

    fn marked(pod: &Value) -> (&str, i64) {
        (
            pod["metadata"]["deletionTimestamp"].as_str().unwrap_or(""),
            pod["metadata"]["deletionGracePeriodSeconds"]
                .as_i64()
                .unwrap_or(-1),
        )
    }

    #[test]
    fn a_bound_pod_gets_its_own_grace_or_the_requested_one() {
        let mut p = pod("n1", None, "Running");
        assert_eq!(before_delete(&mut p, None, now()), Grace::Marked(30));
        assert_eq!(marked(&p), ("2026-12-02T12:00:30Z", 30));
        assert_eq!(p["metadata"]["generation"], 2);

        let mut p = pod("n1", Some(5), "Running");
        assert_eq!(before_delete(&mut p, None, now()), Grace::Marked(5));
        let mut p = pod("n1", Some(5), "Running");
        assert_eq!(before_delete(&mut p, Some(60), now()), Grace::Marked(60));
        let mut p = pod("n1", Some(5), "Running");
        assert_eq!(before_delete(&mut p, Some(-3), now()), Grace::Marked(1));
        let mut p = pod("n1", Some(5), "Running");
        assert_eq!(before_delete(&mut p, Some(0), now()), Grace::Marked(0));
    }

    #[test]
    fn unbound_and_finished_pods_go_at_once() {
        let mut p = pod("", Some(30), "Pending");
        assert_eq!(before_delete(&mut p, Some(10), now()), Grace::Marked(0));
        for phase in ["Succeeded", "Failed"] {
            let mut p = pod("n1", Some(30), phase);
            assert_eq!(before_delete(&mut p, None, now()), Grace::Marked(0));
        }
    }

    #[test]
    fn a_later_delete_only_shortens() {
        let mut p = pod("n1", Some(30), "Running");
        before_delete(&mut p, None, now());
        let later = now() + time::Duration::seconds(10);
        assert_eq!(before_delete(&mut p, None, later), Grace::Pending);
        assert_eq!(before_delete(&mut p, Some(30), later), Grace::Pending);
        assert_eq!(before_delete(&mut p, Some(90), later), Grace::Pending);
        assert_eq!(marked(&p), ("2026-12-02T12:00:30Z", 30));
        assert_eq!(before_delete(&mut p, Some(10), later), Grace::Marked(10));
        assert_eq!(marked(&p), ("2026-12-02T12:00:10Z", 10));
        assert_eq!(before_delete(&mut p, Some(0), later), Grace::Marked(0));
        assert_eq!(marked(&p), ("2026-12-02T12:00:00Z", 0));
        // Marked with 0 (finalizers hold it): no longer graceful.
        assert_eq!(before_delete(&mut p, Some(5), later), Grace::None);
    }

    #[test]
    fn only_pods_are_graceful() {
        assert!(applies(&pod("n1", None, "Running")));
        assert!(!applies(&json!({"apiVersion": "v1", "kind": "ConfigMap"})));
    }
}
