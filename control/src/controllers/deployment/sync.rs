//! One pass over one Deployment: adopting and releasing ReplicaSets, the RollingUpdate and
//! Recreate steps, scaling with its event, creating the ReplicaSet of the current template,
//! keeping revisions and cleaning up old history. Every write is remembered so the caller can
//! wait until its cache has seen them.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::hash::{template_hash, HASH_LABEL};
use super::proportion;
use super::rollout::{self, Counts};
use super::{
    counts, replicas, revision, rs_name, Controller, COMPONENT, DESIRED, MAX, NOT_COPIED, REVISION,
};
use crate::api::selector::LabelSelector;
use crate::controllers::client::{revision_of, ClientError};
use crate::controllers::events::{record, EventType};
use crate::controllers::pods::controller_of;

/// One pass over one Deployment: what it wrote so far.
pub(super) struct Pass<'a> {
    pub c: &'a Controller,
    pub d: &'a Value,
    /// The newest revision written (to wait for in the cache).
    pub written: i64,
    pub created: Option<String>,
}

impl Pass<'_> {
    fn namespace(&self) -> Option<&str> {
        self.d["metadata"]["namespace"].as_str()
    }

    fn wrote(&mut self, object: &Value) {
        self.written = self.written.max(revision_of(object));
    }

    /// The ReplicaSets this Deployment controls, after adopting matching orphans and releasing
    /// the ones that no longer match.
    pub async fn owned_replicasets(
        &mut self,
        selector: &LabelSelector,
    ) -> Result<Vec<Arc<Value>>, ClientError> {
        let uid = &self.d["metadata"]["uid"];
        let namespace = &self.d["metadata"]["namespace"];
        let mut owned = Vec::new();
        for rs in self
            .c
            .replicasets
            .list(|rs| rs["metadata"]["namespace"] == *namespace)
        {
            let matches = selector.matches(&rs);
            match controller_of(&rs) {
                Some(o) if o["uid"] == *uid && matches => owned.push(rs),
                Some(o) if o["uid"] == *uid => {
                    let refs: Vec<&Value> = rs["metadata"]["ownerReferences"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|r| r["uid"] != *uid)
                        .collect();
                    let patch = json!({"metadata": {"ownerReferences": if refs.is_empty() { Value::Null } else { json!(refs) },
                                                    "resourceVersion": rs["metadata"]["resourceVersion"]}});
                    let out = self
                        .c
                        .client
                        .merge_patch(
                            self.c.replicasets.resource,
                            self.namespace(),
                            rs_name(&rs),
                            &patch,
                        )
                        .await?;
                    self.wrote(&out);
                }
                None if matches && rs["metadata"]["deletionTimestamp"].is_null() => {
                    let mut refs = rs["metadata"]["ownerReferences"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    refs.push(self.owner_reference());
                    let patch = json!({"metadata": {"ownerReferences": refs,
                                                    "resourceVersion": rs["metadata"]["resourceVersion"]}});
                    let out = self
                        .c
                        .client
                        .merge_patch(
                            self.c.replicasets.resource,
                            self.namespace(),
                            rs_name(&rs),
                            &patch,
                        )
                        .await?;
                    self.wrote(&out);
                    owned.push(Arc::new(out));
                }
                _ => {}
            }
        }
        Ok(owned)
    }

    fn owner_reference(&self) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": rs_name(self.d),
               "uid": self.d["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true})
    }

    pub async fn rolling(
        &mut self,
        new: Option<Arc<Value>>,
        olds: &[Arc<Value>],
        desired: i64,
        surge: i64,
        unavailable: i64,
    ) -> Result<Option<Arc<Value>>, ClientError> {
        let old_total: i64 = olds.iter().map(|rs| replicas(rs)).sum();
        let new = match new {
            Some(rs) => {
                let target =
                    rollout::new_replicas(desired, surge, &counts(&rs), old_total + replicas(&rs));
                Some(self.scale(&rs, target, desired + surge).await?)
            }
            None => {
                let start = rollout::new_replicas(
                    desired,
                    surge,
                    &Counts {
                        replicas: 0,
                        available: 0,
                    },
                    old_total,
                );
                Some(self.create_new(olds, start, desired + surge).await?)
            }
        };
        if let Some(rs) = &new {
            let old_counts: Vec<Counts> = olds.iter().map(|rs| counts(rs)).collect();
            for (i, target) in
                rollout::scale_down_olds(desired, unavailable, &counts(rs), &old_counts)
            {
                self.scale(&olds[i], target, desired + surge).await?;
            }
        }
        Ok(new)
    }

    /// Proportional scaling of the sets with replicas (`new` and `olds`, olds oldest first).
    pub async fn proportional(
        &mut self,
        new: Option<&Arc<Value>>,
        olds: &[Arc<Value>],
        desired: i64,
        surge: i64,
        status_replicas: i64,
    ) -> Result<(), ClientError> {
        let mut sets: Vec<&Arc<Value>> = olds.iter().chain(new).collect();
        sets.sort_by_key(|rs| {
            rs["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        });
        let active: Vec<&Arc<Value>> = sets.into_iter().filter(|rs| replicas(rs) > 0).collect();
        let sized: Vec<proportion::Sized> = active
            .iter()
            .enumerate()
            .map(|(age_rank, rs)| proportion::Sized {
                replicas: replicas(rs),
                max_annotation: rs["metadata"]["annotations"][MAX]
                    .as_str()
                    .and_then(|m| m.parse().ok()),
                age_rank,
            })
            .collect();
        let sizes = proportion::spread(&sized, desired, surge, status_replicas);
        for (rs, size) in active.into_iter().zip(sizes) {
            self.scale(rs, size, desired + surge).await?;
        }
        Ok(())
    }

    pub async fn recreate(
        &mut self,
        new: Option<Arc<Value>>,
        olds: &[Arc<Value>],
        desired: i64,
    ) -> Result<Option<Arc<Value>>, ClientError> {
        let mut waiting = false;
        for rs in olds {
            if replicas(rs) > 0 {
                self.scale(rs, 0, desired).await?;
                waiting = true;
            } else if rs["status"]["replicas"].as_i64().unwrap_or(0) > 0 {
                waiting = true; // its pods are still going
            }
        }
        if waiting {
            return Ok(new);
        }
        match new {
            Some(rs) => Ok(Some(self.scale(&rs, desired, desired).await?)),
            None => Ok(Some(self.create_new(olds, desired, desired).await?)),
        }
    }

    /// Sets a ReplicaSet's replicas (and the desired/max annotations), with an event.
    pub async fn scale(
        &mut self,
        rs: &Arc<Value>,
        target: i64,
        max: i64,
    ) -> Result<Arc<Value>, ClientError> {
        let desired = self.d["spec"]["replicas"].as_i64().unwrap_or(1).to_string();
        let annotations = &rs["metadata"]["annotations"];
        if replicas(rs) == target
            && annotations[DESIRED] == desired.as_str()
            && annotations[MAX] == max.to_string().as_str()
        {
            return Ok(Arc::clone(rs));
        }
        let patch = json!({"metadata": {"annotations": {DESIRED: desired, MAX: max.to_string()},
                                        "resourceVersion": rs["metadata"]["resourceVersion"]},
                           "spec": {"replicas": target}});
        let out = self
            .c
            .client
            .merge_patch(
                self.c.replicasets.resource,
                self.namespace(),
                rs_name(rs),
                &patch,
            )
            .await?;
        self.wrote(&out);
        let from = replicas(rs);
        if from != target {
            let way = if target > from { "up" } else { "down" };
            let message = format!(
                "Scaled {way} replica set {} from {from} to {target}",
                rs_name(rs)
            );
            record(
                &self.c.client,
                COMPONENT,
                self.d,
                EventType::Normal,
                "ScalingReplicaSet",
                &message,
            )
            .await;
        }
        Ok(Arc::new(out))
    }

    /// Creates the ReplicaSet of the current template with `start` replicas.
    async fn create_new(
        &mut self,
        olds: &[Arc<Value>],
        start: i64,
        max: i64,
    ) -> Result<Arc<Value>, ClientError> {
        let d = self.d;
        let collisions = d["status"]["collisionCount"].as_i64().unwrap_or(0);
        let hash = template_hash(&d["spec"]["template"], collisions);
        let name = format!("{}-{hash}", rs_name(d));
        let mut template = d["spec"]["template"].clone();
        template["metadata"]["labels"][HASH_LABEL] = json!(hash);
        let mut selector = d["spec"]["selector"].clone();
        selector["matchLabels"][HASH_LABEL] = json!(hash);
        let mut annotations: Map<String, Value> = d["metadata"]["annotations"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        annotations.retain(|k, _| !NOT_COPIED.contains(&k.as_str()));
        let next = olds.iter().map(|rs| revision(rs)).max().unwrap_or(0) + 1;
        annotations.insert(REVISION.into(), json!(next.to_string()));
        annotations.insert(
            DESIRED.into(),
            json!(d["spec"]["replicas"].as_i64().unwrap_or(1).to_string()),
        );
        annotations.insert(MAX.into(), json!(max.to_string()));
        let rs = json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": d["metadata"]["namespace"],
                         "labels": template["metadata"]["labels"], "annotations": annotations,
                         "ownerReferences": [self.owner_reference()]},
            "spec": {"replicas": start, "minReadySeconds": d["spec"]["minReadySeconds"].as_i64().unwrap_or(0),
                     "selector": selector, "template": template},
        });
        match self
            .c
            .client
            .create(self.c.replicasets.resource, self.namespace(), &rs)
            .await
        {
            Ok(created) => {
                self.wrote(&created);
                self.created = Some(name.clone());
                if start > 0 {
                    let message = format!("Scaled up replica set {name} from 0 to {start}");
                    record(
                        &self.c.client,
                        COMPONENT,
                        d,
                        EventType::Normal,
                        "ScalingReplicaSet",
                        &message,
                    )
                    .await;
                }
                Ok(Arc::new(created))
            }
            Err(e) if e.is_already_exists() => {
                // A ReplicaSet of another template has this name: count a collision, so the
                // next pass hashes differently (Kubernetes' collisionCount).
                let patch = json!({"status": {"collisionCount": collisions + 1}});
                self.c
                    .client
                    .merge_patch_status(
                        self.c.deployments.resource,
                        self.namespace(),
                        rs_name(d),
                        &patch,
                    )
                    .await?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// The new ReplicaSet has the highest revision, and the Deployment names it.
    pub async fn keep_revision(
        &mut self,
        new: &Arc<Value>,
        olds: &[Arc<Value>],
    ) -> Result<(), ClientError> {
        let highest = olds.iter().map(|rs| revision(rs)).max().unwrap_or(0);
        let mut current = revision(new);
        if current <= highest {
            current = highest + 1;
            let patch = json!({"metadata": {"annotations": {REVISION: current.to_string()}}});
            let out = self
                .c
                .client
                .merge_patch(
                    self.c.replicasets.resource,
                    self.namespace(),
                    rs_name(new),
                    &patch,
                )
                .await?;
            self.wrote(&out);
        }
        if self.d["metadata"]["annotations"][REVISION] != current.to_string().as_str() {
            // Through the status subresource, as kube's controller: the Deployment's
            // generation moves on its annotations, but not on this one.
            let patch = json!({"metadata": {"annotations": {REVISION: current.to_string()}}});
            self.c
                .client
                .merge_patch_status(
                    self.c.deployments.resource,
                    self.namespace(),
                    rs_name(self.d),
                    &patch,
                )
                .await?;
        }
        Ok(())
    }

    /// Deletes the oldest empty old ReplicaSets beyond revisionHistoryLimit.
    pub async fn cleanup(&mut self, olds: &[Arc<Value>]) -> Result<(), ClientError> {
        let limit = self.d["spec"]["revisionHistoryLimit"]
            .as_i64()
            .unwrap_or(10)
            .max(0) as usize;
        let mut empty: Vec<&Arc<Value>> = olds
            .iter()
            .filter(|rs| replicas(rs) == 0 && rs["status"]["replicas"].as_i64().unwrap_or(0) == 0)
            .filter(|rs| rs["metadata"]["deletionTimestamp"].is_null())
            .collect();
        if empty.len() <= limit {
            return Ok(());
        }
        empty.sort_by_key(|rs| revision(rs));
        for rs in &empty[..empty.len() - limit] {
            let options = json!({"propagationPolicy": "Background", "preconditions": {"uid": rs["metadata"]["uid"]}});
            match self
                .c
                .client
                .delete(
                    self.c.replicasets.resource,
                    self.namespace(),
                    rs_name(rs),
                    &options,
                )
                .await
            {
                Ok(out) => self.wrote(&out),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
