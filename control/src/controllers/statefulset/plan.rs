//! What one pass of the StatefulSet controller does, decided purely from the pods it owns
//! (kube's `updateStatefulSet` in `stateful_set_control.go`):
//! 1. every ordinal below `replicas` gets its pod (a Failed one is deleted and made again);
//!    under OrderedReady one at a time, only once every lower ordinal is Running and Ready,
//!    and the pass stops at a pod that is terminating or not Running and Ready;
//! 2. pods at ordinals from `replicas` up are deleted highest first (OrderedReady: one at a
//!    time, only when it is healthy or the first unhealthy one);
//! 3. RollingUpdate: from the highest ordinal down to `partition`, the first pod of an old
//!    revision is deleted (its replacement is made from the update revision) and the pass
//!    stops at a pod that is not healthy; OnDelete leaves old pods alone.

/// A pod the set owns, as the plan sees it.
#[derive(Clone, Debug)]
pub struct Member {
    pub ordinal: usize,
    pub terminating: bool,
    pub failed: bool,
    /// Phase Running and condition Ready.
    pub running_and_ready: bool,
    pub revision: String,
}

impl Member {
    fn healthy(&self) -> bool {
        self.running_and_ready && !self.terminating
    }
}

/// The set's spec as far as the plan needs it.
#[derive(Clone, Debug)]
pub struct Spec {
    pub replicas: usize,
    /// OrderedReady (true) or Parallel.
    pub ordered: bool,
    /// `Some(partition)` for RollingUpdate, `None` for OnDelete.
    pub rolling: Option<usize>,
    pub update_revision: String,
}

/// One write of the pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Make the claims and the pod of this ordinal.
    Create(usize),
    /// Delete the pod of this ordinal.
    Delete(usize),
}

/// The steps of one pass, in order.
pub fn plan(spec: &Spec, members: &[Member]) -> Vec<Step> {
    let mut steps = Vec::new();
    let at = |ordinal: usize| members.iter().find(|m| m.ordinal == ordinal);
    for ordinal in 0..spec.replicas {
        let Some(pod) = at(ordinal) else {
            steps.push(Step::Create(ordinal));
            if spec.ordered {
                return steps;
            }
            continue;
        };
        if pod.failed && !pod.terminating {
            // Deleted now, made again in the pass that sees it gone.
            steps.push(Step::Delete(ordinal));
            if spec.ordered {
                return steps;
            }
            continue;
        }
        if spec.ordered && !pod.healthy() {
            return steps;
        }
    }
    let mut condemned: Vec<&Member> = members
        .iter()
        .filter(|m| m.ordinal >= spec.replicas)
        .collect();
    condemned.sort_by_key(|m| m.ordinal);
    let first_unhealthy = members
        .iter()
        .filter(|m| m.ordinal < spec.replicas)
        .chain(condemned.iter().copied())
        .find(|m| !m.healthy())
        .map(|m| m.ordinal);
    for pod in condemned.iter().rev() {
        if pod.terminating {
            if spec.ordered {
                return steps;
            }
            continue;
        }
        if spec.ordered && !pod.running_and_ready && Some(pod.ordinal) != first_unhealthy {
            return steps;
        }
        steps.push(Step::Delete(pod.ordinal));
        if spec.ordered {
            return steps;
        }
    }
    let Some(partition) = spec.rolling else {
        return steps;
    };
    for ordinal in (partition..spec.replicas).rev() {
        let Some(pod) = at(ordinal) else {
            return steps; // being made in this pass
        };
        if steps.contains(&Step::Delete(ordinal)) {
            return steps; // a failed pod, deleted above: made again from the update revision
        }
        if pod.revision != spec.update_revision && !pod.terminating {
            steps.push(Step::Delete(ordinal));
            return steps;
        }
        if !pod.healthy() {
            return steps;
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(ordinal: usize, revision: &str) -> Member {
        Member {
            ordinal,
            terminating: false,
            failed: false,
            running_and_ready: true,
            revision: revision.into(),
        }
    }

    fn spec(replicas: usize, ordered: bool, rolling: Option<usize>) -> Spec {
        Spec {
            replicas,
            ordered,
            rolling,
            update_revision: "new".into(),
        }
    }

    #[test]
    fn ordered_ready_makes_one_pod_after_the_lower_ones_are_ready() {
        let s = spec(3, true, Some(0));
        assert_eq!(plan(&s, &[]), [Step::Create(0)]);
        let mut web0 = ready(0, "new");
        web0.running_and_ready = false;
        assert_eq!(plan(&s, &[web0.clone()]), []);
        web0.running_and_ready = true;
        assert_eq!(plan(&s, &[web0]), [Step::Create(1)]);
    }

    #[test]
    fn parallel_makes_every_missing_pod_at_once() {
        let s = spec(3, false, Some(0));
        let mut web1 = ready(1, "new");
        web1.running_and_ready = false;
        assert_eq!(plan(&s, &[web1]), [Step::Create(0), Step::Create(2)]);
    }

    #[test]
    fn scale_down_takes_the_highest_ordinal_first() {
        let pods: Vec<Member> = (0..4).map(|o| ready(o, "new")).collect();
        assert_eq!(plan(&spec(1, true, Some(0)), &pods), [Step::Delete(3)]);
        let mut pods = pods;
        pods[3].terminating = true;
        assert_eq!(plan(&spec(1, true, Some(0)), &pods), []);
        assert_eq!(
            plan(&spec(1, false, Some(0)), &pods),
            [Step::Delete(2), Step::Delete(1)]
        );
    }

    #[test]
    fn a_rolling_update_replaces_the_highest_old_pod_down_to_the_partition() {
        let s = spec(4, true, Some(2));
        let pods: Vec<Member> = (0..4).map(|o| ready(o, "old")).collect();
        assert_eq!(plan(&s, &pods), [Step::Delete(3)]);
        let mut pods = pods;
        pods[3] = ready(3, "new");
        assert_eq!(plan(&s, &pods), [Step::Delete(2)]);
        // The updated pod is not ready yet: wait for it.
        pods[3].running_and_ready = false;
        assert_eq!(plan(&spec(4, false, Some(2)), &pods), []);
        // Below the partition old pods stay.
        pods[3].running_and_ready = true;
        pods[2] = ready(2, "new");
        assert_eq!(plan(&s, &pods), []);
        // OnDelete never deletes for an update.
        let old: Vec<Member> = (0..4).map(|o| ready(o, "old")).collect();
        assert_eq!(plan(&spec(4, true, None), &old), []);
    }

    #[test]
    fn a_failed_pod_is_deleted_to_be_made_again() {
        let mut web0 = ready(0, "new");
        web0.failed = true;
        web0.running_and_ready = false;
        assert_eq!(
            plan(&spec(2, true, Some(0)), &[web0.clone()]),
            [Step::Delete(0)]
        );
        // Parallel: deleted once, not a second time for being old.
        web0.revision = "old".into();
        let web1 = ready(1, "new");
        assert_eq!(
            plan(&spec(2, false, Some(0)), &[web0, web1]),
            [Step::Delete(0)]
        );
    }
}
