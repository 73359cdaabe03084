//! Proportional scaling, as kube-controller-manager's deployment controller does it: when a
//! RollingUpdate Deployment is scaled while several of its ReplicaSets have replicas (a
//! rollout in progress, or stuck), the change is spread over them in proportion to their
//! sizes — each ReplicaSet's share is its size scaled by (new desired + maxSurge) / the
//! `max-replicas` it was last sized for — rather than all going to the newest one; what
//! rounding leaves over goes to the largest. Pure.

/// One active ReplicaSet as the proportion needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sized {
    /// spec.replicas
    pub replicas: i64,
    /// The `deployment.kubernetes.io/max-replicas` annotation, when it has one.
    pub max_annotation: Option<i64>,
    /// Creation order (larger: newer), for ties between equal sizes.
    pub age_rank: usize,
}

/// Kubernetes' round-half-away-from-zero of `num / den`.
fn round_div(num: i64, den: i64) -> i64 {
    if den == 0 {
        return 0;
    }
    let (q, r) = (num / den, num % den);
    if 2 * r.abs() >= den.abs() {
        q + num.signum() * den.signum()
    } else {
        q
    }
}

/// How much one ReplicaSet would change, alone (`getReplicaSetFraction`).
fn fraction(rs: &Sized, desired: i64, surge: i64, status_replicas: i64) -> i64 {
    if desired == 0 {
        return -rs.replicas;
    }
    let annotated = rs.max_annotation.unwrap_or(status_replicas);
    round_div(rs.replicas * (desired + surge), annotated) - rs.replicas
}

/// The new size of each of `sets` (the Deployment's ReplicaSets with replicas) when the
/// Deployment now wants `desired` with `surge`; `status_replicas` is the Deployment's
/// `status.replicas` (for a ReplicaSet without the annotation). Same order as `sets`.
pub fn spread(sets: &[Sized], desired: i64, surge: i64, status_replicas: i64) -> Vec<i64> {
    let total: i64 = sets.iter().map(|s| s.replicas).sum();
    let to_add = desired + surge - total;
    let mut order: Vec<usize> = (0..sets.len()).collect();
    // Largest first; among equals the newer first when growing, the older when shrinking.
    order.sort_by(|&a, &b| {
        let (x, y) = (&sets[a], &sets[b]);
        y.replicas.cmp(&x.replicas).then_with(|| match to_add > 0 {
            true => y.age_rank.cmp(&x.age_rank),
            false => x.age_rank.cmp(&y.age_rank),
        })
    });
    let mut sizes: Vec<i64> = sets.iter().map(|s| s.replicas).collect();
    if to_add == 0 {
        return sizes;
    }
    let mut added = 0;
    for &i in &order {
        let rs = &sets[i];
        if rs.replicas == 0 || added == to_add {
            continue;
        }
        let share = fraction(rs, desired, surge, status_replicas);
        let allowed = to_add - added;
        let change = match to_add > 0 {
            true => share.min(allowed),
            false => share.max(allowed),
        };
        sizes[i] += change;
        added += change;
    }
    if let Some(&first) = order.first() {
        sizes[first] = (sizes[first] + to_add - added).max(0);
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(replicas: i64, max: i64, age_rank: usize) -> Sized {
        Sized {
            replicas,
            max_annotation: Some(max),
            age_rank,
        }
    }

    #[test]
    fn a_stuck_rollout_scaled_up_grows_both_sets_in_proportion() {
        // 10 replicas, maxSurge 3: old 8 and new 5 (stuck), sized for 13; scaled to 20.
        let sizes = spread(&[rs(8, 13, 0), rs(5, 13, 1)], 20, 3, 13);
        assert_eq!(sizes, [14, 9]);
        assert_eq!(sizes.iter().sum::<i64>(), 23);
    }

    #[test]
    fn scaling_down_shrinks_both_and_the_leftover_goes_to_the_largest() {
        let sizes = spread(&[rs(14, 23, 0), rs(9, 23, 1)], 5, 3, 23);
        assert_eq!(sizes.iter().sum::<i64>(), 8);
        assert_eq!(sizes, [5, 3]);
    }

    #[test]
    fn scaling_to_zero_empties_every_set() {
        assert_eq!(spread(&[rs(6, 8, 0), rs(2, 8, 1)], 0, 0, 8), [0, 0]);
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(round_div(5, 2), 3);
        assert_eq!(round_div(-5, 2), -3);
        assert_eq!(round_div(4, 3), 1);
    }
}
