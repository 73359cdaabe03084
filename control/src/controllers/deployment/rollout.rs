//! The arithmetic of a rollout, without I/O, as kube-controller-manager's deployment controller
//! does it: resolving maxSurge/maxUnavailable (percentages of the desired count, surge rounded
//! up, unavailable rounded down, never both zero), how far the new ReplicaSet may grow, and which
//! old ReplicaSets shrink by how much (unhealthy replicas first, then available ones down to the
//! minimum availability), oldest first.

use serde_json::Value;

/// What the rollout needs of one ReplicaSet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counts {
    /// spec.replicas
    pub replicas: i64,
    /// status.availableReplicas
    pub available: i64,
}

/// An `IntOrString` like `25%` or `1` resolved against `total`.
fn resolve(value: &Value, default: &str, total: i64, round_up: bool) -> i64 {
    let text = match value {
        Value::Number(n) => return n.as_i64().unwrap_or(0).max(0),
        Value::String(s) => s.as_str(),
        _ => default,
    };
    let Some(percent) = text.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) else {
        return text.parse::<i64>().unwrap_or(0).max(0);
    };
    let scaled = percent * total;
    if round_up {
        (scaled + 99) / 100
    } else {
        scaled / 100
    }
    .max(0)
}

/// maxSurge and maxUnavailable of a RollingUpdate strategy for `desired` replicas.
pub fn surge_and_unavailable(rolling: &Value, desired: i64) -> (i64, i64) {
    let surge = resolve(&rolling["maxSurge"], "25%", desired, true);
    let unavailable = resolve(&rolling["maxUnavailable"], "25%", desired, false);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable.min(desired))
    }
}

/// The replicas the new ReplicaSet should have now.
pub fn new_replicas(desired: i64, surge: i64, new: &Counts, all_replicas: i64) -> i64 {
    if new.replicas >= desired {
        return desired;
    }
    let room = desired + surge - all_replicas;
    if room <= 0 {
        return new.replicas;
    }
    new.replicas + room.min(desired - new.replicas)
}

/// New spec.replicas for the old ReplicaSets (given oldest first): only those that change.
pub fn scale_down_olds(
    desired: i64,
    unavailable: i64,
    new: &Counts,
    olds: &[Counts],
) -> Vec<(usize, i64)> {
    let original = olds;
    let mut olds: Vec<Counts> = olds.to_vec();
    let old_total: i64 = olds.iter().map(|o| o.replicas).sum();
    if old_total == 0 {
        return Vec::new();
    }
    let min_available = desired - unavailable;
    let all_total = old_total + new.replicas;
    let new_unavailable = (new.replicas - new.available).max(0);
    let max_scaled_down = all_total - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Vec::new();
    }
    // Unhealthy replicas of old ReplicaSets go first: removing them costs no availability.
    let mut cleaned = 0;
    for old in olds.iter_mut() {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = (old.replicas - old.available).max(0);
        if old.replicas == 0 || unhealthy == 0 {
            continue;
        }
        let down = (max_scaled_down - cleaned).min(unhealthy);
        old.replicas -= down;
        cleaned += down;
    }
    // Then available ones, as far as the minimum availability allows.
    let available: i64 = olds
        .iter()
        .map(|o| o.available.min(o.replicas))
        .sum::<i64>()
        + new.available;
    if available > min_available {
        let mut budget = available - min_available;
        for old in olds.iter_mut() {
            if budget <= 0 {
                break;
            }
            let down = old.replicas.min(budget);
            old.replicas -= down;
            budget -= down;
        }
    }
    olds.iter()
        .zip(original)
        .enumerate()
        .filter(|(_, (now, was))| now.replicas != was.replicas)
        .map(|(i, (now, _))| (i, now.replicas))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn c(replicas: i64, available: i64) -> Counts {
        Counts {
            replicas,
            available,
        }
    }

    #[test]
    fn percentages_round_like_kubernetes() {
        assert_eq!(surge_and_unavailable(&json!({}), 4), (1, 1));
        assert_eq!(surge_and_unavailable(&json!({}), 3), (1, 0));
        assert_eq!(surge_and_unavailable(&json!({}), 1), (1, 0));
        assert_eq!(
            surge_and_unavailable(&json!({"maxSurge": 0, "maxUnavailable": "0%"}), 5),
            (0, 1)
        );
        assert_eq!(
            surge_and_unavailable(&json!({"maxSurge": "50%", "maxUnavailable": 2}), 5),
            (3, 2)
        );
    }

    #[test]
    fn the_new_set_grows_within_the_surge() {
        assert_eq!(new_replicas(4, 1, &c(0, 0), 4), 1);
        assert_eq!(new_replicas(4, 1, &c(1, 0), 5), 1);
        assert_eq!(new_replicas(4, 1, &c(1, 1), 4), 2);
        assert_eq!(new_replicas(4, 1, &c(0, 0), 0), 4);
        assert_eq!(new_replicas(4, 1, &c(6, 6), 6), 4);
    }

    #[test]
    fn olds_shrink_unhealthy_first_then_down_to_min_availability() {
        // 4 desired, old has 4 available, new has 1 not yet available: min available 3.
        assert_eq!(scale_down_olds(4, 1, &c(1, 0), &[c(4, 4)]), [(0, 3)]);
        // Nothing may go while the new pod is not available and the old is at the minimum.
        assert!(scale_down_olds(4, 1, &c(1, 0), &[c(3, 3)]).is_empty());
        // Unhealthy old replicas go first, oldest set first.
        assert_eq!(
            scale_down_olds(4, 1, &c(1, 1), &[c(2, 0), c(3, 3)]),
            [(0, 0), (1, 2)]
        );
        assert!(scale_down_olds(4, 1, &c(4, 4), &[c(0, 0)]).is_empty());
        // Everything available: the olds go down as far as availability allows.
        assert_eq!(scale_down_olds(2, 0, &c(2, 2), &[c(2, 2)]), [(0, 0)]);
    }
}
