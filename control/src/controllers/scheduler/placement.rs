//! Where a pod goes, decided without I/O, as kube-scheduler's default plugins decide it.
//! Filters: the node is Ready and schedulable (or the pod tolerates the `not-ready` /
//! `unschedulable` taints that stand for it), every NoSchedule/NoExecute taint is tolerated,
//! `nodeSelector` and required node affinity match, and the pod's requests fit the node's
//! allocatable CPU, memory and pod count next to what is placed there already. Scores: least
//! allocated (CPU and memory), spreading the pods of one owner over nodes, and preferred node
//! affinity weights. A pod that fits nowhere gets kube-scheduler's message
//! (`0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {…}. …`).

use std::collections::BTreeMap;

use serde_json::Value;

use super::quantity::{milli, units};

/// What a pod asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Requests {
    pub cpu_milli: i128,
    pub memory: i128,
}

impl std::ops::AddAssign for Requests {
    fn add_assign(&mut self, other: Requests) {
        self.cpu_milli += other.cpu_milli;
        self.memory += other.memory;
    }
}

impl std::ops::SubAssign for Requests {
    fn sub_assign(&mut self, other: Requests) {
        self.cpu_milli -= other.cpu_milli;
        self.memory -= other.memory;
    }
}

/// A pod's requests: its containers' sum, or the largest init container if that is more
/// (a request missing where a limit is set counts as the limit, as API defaulting does).
pub fn requests_of(pod: &Value) -> Requests {
    let one = |c: &Value| {
        let get = |name: &str| {
            let text = c["resources"]["requests"][name]
                .as_str()
                .or_else(|| c["resources"]["limits"][name].as_str());
            text.and_then(|t| if name == "cpu" { milli(t) } else { units(t) })
                .unwrap_or(0)
        };
        Requests {
            cpu_milli: get("cpu"),
            memory: get("memory"),
        }
    };
    let mut sum = Requests::default();
    for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
        sum += one(c);
    }
    for c in pod["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let init = one(c);
        sum.cpu_milli = sum.cpu_milli.max(init.cpu_milli);
        sum.memory = sum.memory.max(init.memory);
    }
    sum
}

/// A node with what is already placed on it.
pub struct Candidate<'a> {
    pub node: &'a Value,
    pub requested: Requests,
    pub pods: usize,
    /// Pods on the node with the same controller as the pod being placed.
    pub siblings: usize,
}

impl Candidate<'_> {
    pub fn name(&self) -> &str {
        self.node["metadata"]["name"].as_str().unwrap_or("")
    }
}

/// The node for `pod`, or kube-scheduler's "0/N nodes are available" message.
#[cfg(test)]
pub fn place(pod: &Value, candidates: &[Candidate<'_>]) -> Result<String, String> {
    place_or_unfit(pod, candidates, |_| None)
        .map_err(|unfit| unfit.message(Some(&unfit.not_helpful().summary())))
}

/// kube-scheduler's message when a PreFilter plugin turned the pod down (`why`) before any
/// node was looked at.
pub fn unschedulable_everywhere(total: usize, why: &str) -> String {
    format!("0/{total} nodes are available: {why}. preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling.")
}

/// Why a pod fits no node: each node's reasons.
#[derive(Debug, Default)]
pub struct Unfit {
    /// (node name, its reasons), for every node.
    pub nodes: Vec<(String, Vec<String>)>,
}

/// Reasons only fewer pods on the node can fix (what preemption may help with).
fn resource_reason(reason: &str) -> bool {
    matches!(
        reason,
        "Insufficient cpu" | "Insufficient memory" | "Too many pods"
    )
}

impl Unfit {
    /// The nodes where removing pods could make room: every reason is about resources.
    pub fn preemptible_nodes(&self) -> impl Iterator<Item = &str> {
        self.nodes
            .iter()
            .filter(|(_, reasons)| reasons.iter().all(|r| resource_reason(r)))
            .map(|(name, _)| name.as_str())
    }

    /// `0/N nodes are available: <each reason with how many nodes gave it>.`
    pub fn summary(&self) -> String {
        let total = self.nodes.len();
        let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
        for reason in self.nodes.iter().flat_map(|(_, r)| r) {
            *reasons.entry(reason).or_default() += 1;
        }
        let mut parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
        parts.sort();
        match parts.is_empty() {
            true => format!("0/{total} nodes are available:"),
            false => format!("0/{total} nodes are available: {}.", parts.join(", ")),
        }
    }

    /// kube-scheduler's message: the summary, then what preemption found (`None` when it
    /// nominated a node).
    pub fn message(&self, preemption: Option<&str>) -> String {
        if self.nodes.is_empty() {
            // kube-scheduler's ErrNoNodesAvailable: no node was looked at, preemption neither.
            return NO_NODES.to_owned();
        }
        match preemption {
            Some(why) => format!("{} preemption: {why}", self.summary()),
            None => self.summary(),
        }
    }

    /// Every node answering that preemption cannot help.
    #[cfg(test)]
    pub fn not_helpful(&self) -> Unfit {
        Unfit {
            nodes: self
                .nodes
                .iter()
                .map(|(name, _)| (name.clone(), vec![NOT_HELPFUL.to_owned()]))
                .collect(),
        }
    }
}

/// kube-scheduler's message when the cluster has no node at all.
pub const NO_NODES: &str = "no nodes available to schedule pods";

/// What kube-scheduler's preemption says of a node where removing pods cannot help.
pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";

/// The node for `pod`, or why it fits none.
pub fn place_or_unfit(
    pod: &Value,
    candidates: &[Candidate<'_>],
    reject: impl Fn(&Value) -> Option<&'static str>,
) -> Result<String, Unfit> {
    let wants = requests_of(pod);
    let mut unfit = Unfit::default();
    let mut fitting = Vec::new();
    for candidate in candidates {
        let mut rejected = filter(pod, wants, candidate);
        rejected.extend(reject(candidate.node).map(str::to_owned));
        if rejected.is_empty() {
            fitting.push(candidate);
        }
        unfit.nodes.push((candidate.name().to_owned(), rejected));
    }
    let max_siblings = fitting.iter().map(|c| c.siblings).max().unwrap_or(0);
    let best = fitting.iter().max_by(|a, b| {
        let (sa, sb) = (
            score(pod, wants, a, max_siblings),
            score(pod, wants, b, max_siblings),
        );
        sa.cmp(&sb)
            .then_with(|| b.pods.cmp(&a.pods))
            .then_with(|| b.name().cmp(a.name()))
    });
    match best {
        Some(best) => Ok(best.name().to_owned()),
        None => Err(unfit),
    }
}

/// Every reason the node does not fit (empty: it fits).
pub(super) fn filter(pod: &Value, wants: Requests, c: &Candidate<'_>) -> Vec<String> {
    let node = c.node;
    let tolerations = pod["spec"]["tolerations"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut out = Vec::new();
    if node["spec"]["unschedulable"] == true
        && !tolerated(
            tolerations,
            "node.kubernetes.io/unschedulable",
            "",
            "NoSchedule",
        )
    {
        out.push("node(s) were unschedulable".to_owned());
    }
    let ready = node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    if !ready
        && !tolerated(
            tolerations,
            "node.kubernetes.io/not-ready",
            "",
            "NoSchedule",
        )
    {
        out.push("node(s) had untolerated taint {node.kubernetes.io/not-ready: }".to_owned());
    }
    for taint in node["spec"]["taints"].as_array().into_iter().flatten() {
        let effect = taint["effect"].as_str().unwrap_or("");
        if effect == "PreferNoSchedule" {
            continue;
        }
        let key = taint["key"].as_str().unwrap_or("");
        let value = taint["value"].as_str().unwrap_or("");
        if !tolerated(tolerations, key, value, effect) {
            out.push(format!("node(s) had untolerated taint {{{key}: {value}}}"));
        }
    }
    if !selector_matches(pod, node) {
        out.push("node(s) didn't match Pod's node affinity/selector".to_owned());
    }
    let allocatable = &node["status"]["allocatable"];
    let max_pods = allocatable["pods"].as_str().and_then(units).unwrap_or(110);
    if c.pods as i128 + 1 > max_pods {
        out.push("Too many pods".to_owned());
    }
    let cpu = allocatable["cpu"].as_str().and_then(milli).unwrap_or(0);
    if wants.cpu_milli > 0 && c.requested.cpu_milli + wants.cpu_milli > cpu {
        out.push("Insufficient cpu".to_owned());
    }
    let memory = allocatable["memory"].as_str().and_then(units).unwrap_or(0);
    if wants.memory > 0 && c.requested.memory + wants.memory > memory {
        out.push("Insufficient memory".to_owned());
    }
    out
}

/// Whether `pod` may run on `node` by its node selector, required node affinity and the
/// node's NoSchedule/NoExecute taints (what the DaemonSet controller asks; resources and
/// readiness aside).
pub fn fits_node(pod: &Value, node: &Value) -> bool {
    let tolerations = pod["spec"]["tolerations"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let taints_ok = node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|taint| {
            let effect = taint["effect"].as_str().unwrap_or("");
            effect == "PreferNoSchedule"
                || tolerated(
                    tolerations,
                    taint["key"].as_str().unwrap_or(""),
                    taint["value"].as_str().unwrap_or(""),
                    effect,
                )
        });
    let unschedulable_ok = node["spec"]["unschedulable"] != true
        || tolerated(
            tolerations,
            "node.kubernetes.io/unschedulable",
            "",
            "NoSchedule",
        );
    taints_ok && unschedulable_ok && selector_matches(pod, node)
}

/// Whether some toleration tolerates the taint (key, value, effect).
fn tolerated(tolerations: &[Value], key: &str, value: &str, effect: &str) -> bool {
    tolerations.iter().any(|t| {
        let t_effect = t["effect"].as_str().unwrap_or("");
        let t_key = t["key"].as_str().unwrap_or("");
        let exists = t["operator"] == "Exists";
        (t_effect.is_empty() || t_effect == effect)
            && (t_key == key || (t_key.is_empty() && exists))
            && (exists || t["value"].as_str().unwrap_or("") == value)
    })
}

/// `nodeSelector` and required node affinity.
fn selector_matches(pod: &Value, node: &Value) -> bool {
    let labels = &node["metadata"]["labels"];
    let selector_ok = pod["spec"]["nodeSelector"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let required =
        &pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
    let affinity_ok = match required["nodeSelectorTerms"].as_array() {
        Some(terms) => terms.iter().any(|term| term_matches(term, node)),
        None => true,
    };
    selector_ok && affinity_ok
}

/// One NodeSelectorTerm: every expression and field requirement holds (an empty term matches
/// nothing, as in Kubernetes).
pub(crate) fn term_matches(term: &Value, node: &Value) -> bool {
    let exprs = term["matchExpressions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let fields = term["matchFields"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = &node["metadata"]["labels"];
    exprs
        .iter()
        .all(|e| requirement(e, labels[e["key"].as_str().unwrap_or("")].as_str()))
        && fields.iter().all(|f| {
            let value = match f["key"].as_str() {
                Some("metadata.name") => node["metadata"]["name"].as_str(),
                _ => None,
            };
            requirement(f, value)
        })
}

fn requirement(expr: &Value, have: Option<&str>) -> bool {
    let values: Vec<&str> = expr["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let number = |s: &str| s.parse::<i64>().ok();
    match expr["operator"].as_str().unwrap_or("") {
        "In" => have.is_some_and(|h| values.contains(&h)),
        "NotIn" => have.is_none_or(|h| !values.contains(&h)),
        "Exists" => have.is_some(),
        "DoesNotExist" => have.is_none(),
        "Gt" => {
            matches!((have.and_then(number), values.first().and_then(|v| number(v))), (Some(h), Some(v)) if h > v)
        }
        "Lt" => {
            matches!((have.and_then(number), values.first().and_then(|v| number(v))), (Some(h), Some(v)) if h < v)
        }
        _ => false,
    }
}

/// Higher is better.
fn score(pod: &Value, wants: Requests, c: &Candidate<'_>, max_siblings: usize) -> i64 {
    let allocatable = &c.node["status"]["allocatable"];
    let free = |total: i128, used: i128| -> i64 {
        if total <= 0 {
            return 0;
        }
        (((total - used).max(0) * 100) / total) as i64
    };
    let cpu = allocatable["cpu"].as_str().and_then(milli).unwrap_or(0);
    let memory = allocatable["memory"].as_str().and_then(units).unwrap_or(0);
    let least_allocated = (free(cpu, c.requested.cpu_milli + wants.cpu_milli)
        + free(memory, c.requested.memory + wants.memory))
        / 2;
    let spread = if max_siblings == 0 {
        100
    } else {
        100 - (c.siblings as i64 * 100) / max_siblings as i64
    };
    let labels = &c.node["metadata"]["labels"];
    let preferred: i64 = pod["spec"]["affinity"]["nodeAffinity"]
        ["preferredDuringSchedulingIgnoredDuringExecution"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            p["preference"]["matchExpressions"]
                .as_array()
                .is_some_and(|e| {
                    e.iter()
                        .all(|e| requirement(e, labels[e["key"].as_str().unwrap_or("")].as_str()))
                })
        })
        .map(|p| p["weight"].as_i64().unwrap_or(0))
        .sum();
    least_allocated + 2 * spread + preferred
}

#[cfg(test)]
#[path = "placement_tests.rs"]
mod tests;
