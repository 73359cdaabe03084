//! What the scheduler writes when a pod fits nowhere (kube-scheduler's PostFilter): with
//! `preemptionPolicy: Never`, or where no node has victims to give, PodScheduled=False in
//! kube's words; else the pod is nominated to the chosen node (`status.nominatedNodeName`)
//! and the victims are evicted there — a DisruptionTarget condition (PreemptionByScheduler),
//! a graceful delete, a `Preempted` event. Until the victims are gone the pod waits without
//! preempting again, and the room it was given counts as taken for pods of no higher
//! priority (kube's nominated pods).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError};

use serde_json::{json, Value};

use super::placement::{requests_of, Candidate, Requests, Unfit, NOT_HELPFUL};
use super::preemption::{self, priority_of, Resident, Victims};
use super::{uid_of, Scheduler, SCHEDULER_NAME};
use crate::controllers::client::ClientError;
use crate::controllers::disruption::selected;
use crate::controllers::events::{record, EventType};
use crate::controllers::pods::is_active;

/// A pod nominated to a node, and the victims it waits for.
pub struct Nomination {
    node: String,
    uid: String,
    priority: i64,
    victims: Vec<String>,
}

impl Scheduler {
    /// The pods placed on `node`, each marked when a budget allows no more disruptions.
    fn residents(&self, node: &str) -> Vec<Resident> {
        let budgets = self.budgets.list(|b| {
            b["status"]["disruptionsAllowed"]
                .as_i64()
                .is_some_and(|n| n <= 0)
        });
        self.usage
            .keys_on(node)
            .into_iter()
            .filter_map(|key| {
                let pod = self.pods.get(&key)?;
                let namespace = &pod["metadata"]["namespace"];
                let guarded = budgets.iter().any(|b| {
                    &b["metadata"]["namespace"] == namespace
                        && !selected(b, std::slice::from_ref(&pod)).is_empty()
                });
                Some(Resident { key, pod, guarded })
            })
            .collect()
    }

    /// Whether the pod at `key` waits for victims it preempted, still there.
    fn awaiting_victims(&self, key: &str, pod: &Value) -> bool {
        let nominated = self
            .nominated
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        nominated.get(key).is_some_and(|n| {
            n.uid == uid_of(pod)
                && n.victims
                    .iter()
                    .any(|v| self.pods.get(v).is_some_and(|p| is_active(&p)))
        })
    }

    /// What pods nominated to each node, of at least `priority`, are given there (not `key`
    /// itself); nominations of pods no longer waiting are forgotten.
    pub(super) fn nominated_room(
        &self,
        key: &str,
        priority: i64,
    ) -> HashMap<String, (Requests, usize)> {
        let mut nominated = self
            .nominated
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        nominated.retain(|k, n| {
            self.pods
                .get(k)
                .is_some_and(|p| super::pending(&p) && uid_of(&p) == n.uid)
        });
        let mut out: HashMap<String, (Requests, usize)> = HashMap::new();
        for (k, n) in nominated.iter() {
            if k == key || n.priority < priority {
                continue;
            }
            if let Some(p) = self.pods.get(k) {
                let entry = out.entry(n.node.clone()).or_default();
                entry.0 += requests_of(&p);
                entry.1 += 1;
            }
        }
        out
    }

    /// A pod that fits nowhere: preempt for it where that makes room, else say why not.
    pub(super) async fn cannot_place(
        &self,
        key: &str,
        pod: &Value,
        candidates: &[Candidate<'_>],
        unfit: Unfit,
    ) -> Result<(), ClientError> {
        if pod["spec"]["preemptionPolicy"] == "Never" {
            let message = unfit.message(Some("not eligible due to preemptionPolicy=Never."));
            return self.unschedulable(pod, &message).await;
        }
        if self.awaiting_victims(key, pod) {
            return Ok(());
        }
        let helpful: HashSet<&str> = unfit.preemptible_nodes().collect();
        let mut options = Vec::new();
        let mut outcome = Unfit::default();
        for candidate in candidates {
            let name = candidate.name();
            let reasons = match helpful.contains(name) {
                false => vec![NOT_HELPFUL.to_owned()],
                true => match preemption::victims_on(pod, candidate, self.residents(name)) {
                    Ok(victims) => {
                        options.push(victims);
                        Vec::new()
                    }
                    Err(reasons) => reasons,
                },
            };
            outcome.nodes.push((name.to_owned(), reasons));
        }
        match preemption::choose(options) {
            Some(chosen) => self.preempt(key, pod, chosen, &unfit).await,
            None => {
                let message = unfit.message(Some(&outcome.summary()));
                self.unschedulable(pod, &message).await
            }
        }
    }

    /// Nominates `pod` to the chosen node and evicts the victims there.
    async fn preempt(
        &self,
        key: &str,
        pod: &Value,
        chosen: Victims,
        unfit: &Unfit,
    ) -> Result<(), ClientError> {
        let (namespace, name) = (
            pod["metadata"]["namespace"].as_str(),
            pod["metadata"]["name"].as_str().unwrap_or(""),
        );
        let nominate = json!({"status": {"nominatedNodeName": chosen.node}});
        self.client
            .merge_patch_status(self.pods.resource, namespace, name, &nominate)
            .await?;
        self.nominated
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                key.to_owned(),
                Nomination {
                    node: chosen.node.clone(),
                    uid: uid_of(pod).to_owned(),
                    priority: priority_of(pod),
                    victims: chosen.pods.iter().map(|v| v.key.clone()).collect(),
                },
            );
        let scheduler = pod["spec"]["schedulerName"]
            .as_str()
            .unwrap_or(SCHEDULER_NAME);
        for victim in &chosen.pods {
            self.evict(&victim.pod, pod, scheduler, &chosen.node)
                .await?;
        }
        tracing::info!(pod = %key, node = %chosen.node, victims = chosen.pods.len(), "scheduler: preempted");
        self.unschedulable(pod, &unfit.message(None)).await
    }

    async fn evict(
        &self,
        victim: &Arc<Value>,
        preemptor: &Value,
        scheduler: &str,
        node: &str,
    ) -> Result<(), ClientError> {
        let (namespace, name) = (
            victim["metadata"]["namespace"].as_str(),
            victim["metadata"]["name"].as_str().unwrap_or(""),
        );
        let mut conditions: Vec<Value> = victim["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        conditions.retain(|c| c["type"] != "DisruptionTarget");
        conditions.push(json!({"type": "DisruptionTarget", "status": "True",
            "reason": "PreemptionByScheduler",
            "message": format!("{scheduler}: preempting to accommodate a higher priority pod"),
            "lastProbeTime": null, "lastTransitionTime": crate::api::meta::now()}));
        let patch = json!({"status": {"conditions": conditions}});
        match self
            .client
            .merge_patch_status(self.pods.resource, namespace, name, &patch)
            .await
        {
            Err(e) if e.is_not_found() => return Ok(()),
            other => other.map(drop)?,
        }
        match self
            .client
            .delete(self.pods.resource, namespace, name, &json!({}))
            .await
        {
            Err(e) if e.is_not_found() => return Ok(()),
            other => other.map(drop)?,
        }
        let message = format!("Preempted by pod {} on node {node}", uid_of(preemptor));
        record(
            &self.client,
            SCHEDULER_NAME,
            victim,
            EventType::Normal,
            "Preempted",
            &message,
        )
        .await;
        Ok(())
    }
}
