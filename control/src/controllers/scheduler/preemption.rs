//! kube-scheduler's DefaultPreemption, decided without I/O: for a pod that fits no node, on
//! every node where only resources stand in the way, remove every pod of lower priority; if
//! the pod then fits, give back as many of them as still leave it room — those whose
//! PodDisruptionBudget allows no disruption first, then the rest, most important (higher
//! priority, then longer running) first —; what is left are the victims. The node chosen has
//! the fewest budget violations, then the lowest highest victim priority, the smallest sum of
//! victim priorities, the fewest victims, the latest start of its most important victim.

use std::cmp::Reverse;
use std::sync::Arc;

use serde_json::Value;

use super::placement::{filter, requests_of, Candidate, Requests};

/// A pod placed on a node, as preemption sees it.
#[derive(Clone, Debug)]
pub struct Resident {
    pub key: String,
    pub pod: Arc<Value>,
    /// Whether evicting it would go past a PodDisruptionBudget's allowed disruptions.
    pub guarded: bool,
}

impl Resident {
    fn priority(&self) -> i64 {
        priority_of(&self.pod)
    }

    fn started(&self) -> &str {
        self.pod["status"]["startTime"].as_str().unwrap_or("")
    }
}

/// A pod's `spec.priority` (0 without one).
pub fn priority_of(pod: &Value) -> i64 {
    pod["spec"]["priority"].as_i64().unwrap_or(0)
}

/// The victims on one node, most important first.
#[derive(Debug)]
pub struct Victims {
    pub node: String,
    pub pods: Vec<Resident>,
    /// How many of them a budget guards.
    pub violations: usize,
}

/// What kube's preemption says of a node without pods of lower priority.
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

/// The victims `pod` needs on the node of `candidate` with `residents` on it; else why there
/// are none: no pod of lower priority, or the pod's misfit even without them.
pub fn victims_on(
    pod: &Value,
    candidate: &Candidate<'_>,
    residents: Vec<Resident>,
) -> Result<Victims, Vec<String>> {
    let wants = requests_of(pod);
    let priority = priority_of(pod);
    let mut lower: Vec<Resident> = residents
        .into_iter()
        .filter(|r| r.priority() < priority)
        .collect();
    let mut room = Candidate {
        node: candidate.node,
        requested: candidate.requested,
        pods: candidate.pods.saturating_sub(lower.len()),
        siblings: candidate.siblings,
    };
    if lower.is_empty() {
        return Err(vec![NO_VICTIMS.to_owned()]);
    }
    for resident in &lower {
        room.requested -= requests_of(&resident.pod);
    }
    let still = filter(pod, wants, &room);
    if !still.is_empty() {
        return Err(still);
    }
    // Most important first: higher priority, then the earlier start.
    lower.sort_by(|a, b| {
        b.priority()
            .cmp(&a.priority())
            .then_with(|| a.started().cmp(b.started()))
    });
    let (guarded, free): (Vec<Resident>, Vec<Resident>) =
        lower.into_iter().partition(|r| r.guarded);
    let mut victims = Vec::new();
    let mut violations = 0;
    for resident in guarded.into_iter().chain(free) {
        let takes: Requests = requests_of(&resident.pod);
        room.requested += takes;
        room.pods += 1;
        if filter(pod, wants, &room).is_empty() {
            continue; // reprieved
        }
        room.requested -= takes;
        room.pods -= 1;
        violations += usize::from(resident.guarded);
        victims.push(resident);
    }
    if victims.is_empty() {
        return Err(vec![NO_VICTIMS.to_owned()]);
    }
    victims.sort_by(|a, b| {
        b.priority()
            .cmp(&a.priority())
            .then_with(|| a.started().cmp(b.started()))
    });
    Ok(Victims {
        node: candidate.name().to_owned(),
        pods: victims,
        violations,
    })
}

/// The node to preempt on, as kube's pickOneNodeForPreemption orders them.
pub fn choose(options: Vec<Victims>) -> Option<Victims> {
    options.into_iter().min_by_key(|v| {
        let highest = v.pods.first().map_or(i64::MIN, Resident::priority);
        // Shifted so that negative priorities do not make more victims look cheaper.
        let sum: i128 = v
            .pods
            .iter()
            .map(|p| i128::from(p.priority()) + (1i128 << 31))
            .sum();
        let first_start = v.pods.first().map_or("", Resident::started).to_owned();
        (
            v.violations,
            highest,
            sum,
            v.pods.len(),
            Reverse(first_start),
            v.node.clone(),
        )
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(name: &str) -> Value {
        json!({"metadata": {"name": name}, "spec": {},
            "status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]}})
    }

    fn pod(name: &str, cpu: &str, priority: i64, started: &str) -> Arc<Value> {
        Arc::new(json!({"metadata": {"name": name},
            "spec": {"priority": priority, "containers": [{"resources": {"requests": {"cpu": cpu}}}]},
            "status": {"startTime": started}}))
    }

    fn resident(p: &Arc<Value>, guarded: bool) -> Resident {
        Resident {
            key: p["metadata"]["name"].as_str().unwrap_or("").to_owned(),
            pod: Arc::clone(p),
            guarded,
        }
    }

    fn candidate<'a>(node: &'a Value, residents: &[Resident]) -> Candidate<'a> {
        let mut requested = Requests::default();
        for r in residents {
            requested += requests_of(&r.pod);
        }
        Candidate {
            node,
            requested,
            pods: residents.len(),
            siblings: 0,
        }
    }

    fn names(v: &Victims) -> Vec<&str> {
        v.pods.iter().map(|r| r.key.as_str()).collect()
    }

    #[test]
    fn the_fewest_lower_priority_pods_go_least_important_first() {
        let n = node("n1");
        let residents = vec![
            resident(&pod("low-old", "400m", 1, "2026-12-01T00:00:00Z"), false),
            resident(&pod("low-new", "400m", 1, "2026-12-02T00:00:00Z"), false),
            resident(&pod("high", "200m", 100, "2026-12-01T00:00:00Z"), false),
        ];
        let c = candidate(&n, &residents);
        let v = victims_on(&pod("p", "400m", 50, ""), &c, residents.clone()).unwrap();
        assert_eq!(
            names(&v),
            ["low-new"],
            "one 400m pod is enough; the older one is kept"
        );
        let v = victims_on(&pod("p", "800m", 50, ""), &c, residents.clone()).unwrap();
        assert_eq!(names(&v), ["low-old", "low-new"]);
        assert_eq!(
            victims_on(&pod("p", "900m", 50, ""), &c, residents.clone()).unwrap_err(),
            ["Insufficient cpu"],
            "high stays"
        );
        assert_eq!(
            victims_on(&pod("p", "400m", 1, ""), &c, residents).unwrap_err(),
            [NO_VICTIMS],
            "equal priority is no victim"
        );
    }

    #[test]
    fn pods_a_budget_guards_are_given_back_first_and_nodes_compare_as_kube_compares_them() {
        let n = node("n1");
        let residents = vec![
            resident(&pod("guarded", "500m", 1, "2026-12-02T00:00:00Z"), true),
            resident(&pod("free", "500m", 1, "2026-12-01T00:00:00Z"), false),
        ];
        let c = candidate(&n, &residents);
        let v = victims_on(&pod("p", "500m", 10, ""), &c, residents).unwrap();
        assert_eq!((names(&v), v.violations), (vec!["free"], 0));

        let m = node("n2");
        let other = vec![resident(
            &pod("other", "1", 5, "2026-12-01T00:00:00Z"),
            false,
        )];
        let w = victims_on(&pod("p", "500m", 10, ""), &candidate(&m, &other), other).unwrap();
        assert_eq!(
            choose(vec![w, v]).map(|v| v.node),
            Some("n1".to_owned()),
            "lower highest priority"
        );
    }
}
