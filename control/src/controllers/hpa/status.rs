//! The HPA's status as kube-controller-manager writes it: currentReplicas, desiredReplicas,
//! currentMetrics, lastScaleTime, and the AbleToScale, ScalingActive and ScalingLimited
//! conditions (a condition keeps its lastTransitionTime while its status stays). Pure.

use serde_json::{json, Value};

use super::behavior::Limit;

/// One condition: type, status, reason, message.
pub type Condition = (&'static str, bool, &'static str, String);

/// The conditions of `old` (the stored status) with `new` set, keeping transition times.
pub fn conditions(old: &Value, new: &[Condition], now: &str) -> Value {
    let mut out: Vec<Value> = Vec::new();
    for (kind, ok, reason, message) in new {
        let status = if *ok { "True" } else { "False" };
        let previous = old["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == *kind));
        let since = previous
            .filter(|c| c["status"] == status)
            .and_then(|c| c["lastTransitionTime"].as_str())
            .unwrap_or(now);
        out.push(json!({
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": since,
        }));
    }
    Value::Array(out)
}

/// The ScalingLimited condition for `limit`.
pub fn limited(limit: Limit) -> Condition {
    match limit {
        Limit::None => (
            "ScalingLimited",
            false,
            "DesiredWithinRange",
            "the desired count is within the acceptable range".into(),
        ),
        Limit::TooMany => (
            "ScalingLimited",
            true,
            "TooManyReplicas",
            "the desired replica count is more than the maximum replica count".into(),
        ),
        Limit::TooFew => (
            "ScalingLimited",
            true,
            "TooFewReplicas",
            "the desired replica count is less than the minimum replica count".into(),
        ),
        Limit::UpRate => (
            "ScalingLimited",
            true,
            "ScaleUpLimit",
            "the desired replica count is increasing faster than the maximum scale rate".into(),
        ),
        Limit::DownRate => (
            "ScalingLimited",
            true,
            "ScaleDownLimit",
            "the desired replica count is decreasing faster than the maximum scale rate".into(),
        ),
    }
}

/// `currentMetrics[]` entry of a Resource metric.
pub fn current_metric(resource: &str, utilization: Option<i64>, average: &str) -> Value {
    let mut current = json!({"averageValue": average});
    if let Some(u) = utilization {
        current["averageUtilization"] = json!(u);
    }
    json!({"type": "Resource", "resource": {"name": resource, "current": current}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_stays_while_the_status_does() {
        let old = json!({"conditions": [
            {"type": "AbleToScale", "status": "True", "lastTransitionTime": "T0"},
            {"type": "ScalingActive", "status": "False", "lastTransitionTime": "T0"},
        ]});
        let new = conditions(
            &old,
            &[
                ("AbleToScale", true, "ReadyForNewScale", String::new()),
                ("ScalingActive", true, "ValidMetricFound", String::new()),
            ],
            "T1",
        );
        assert_eq!(new[0]["lastTransitionTime"], "T0");
        assert_eq!(new[1]["lastTransitionTime"], "T1");
        assert_eq!(limited(Limit::TooMany).2, "TooManyReplicas");
    }
}
