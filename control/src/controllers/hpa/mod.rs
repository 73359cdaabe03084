//! The HorizontalPodAutoscaler controller, as kube-controller-manager's: every sync period
//! each HPA (stored as autoscaling/v2; v1 objects from `kubectl autoscale` are converted by the
//! API) reads its target's `scale` subresource (Deployments, StatefulSets, ReplicaSets,
//! ReplicationControllers), the
//! pods its selector picks, and their usage from the metrics window (`crate::metrics`); each
//! Resource metric (cpu or memory; Utilization of the pods' requests or AverageValue)
//! proposes a count (`replicas`), the highest wins, `behavior` normalises it (`behavior`), the
//! scale is patched with a `SuccessfulRescale` event, and the status is written (`status`).
//! Other metric types are refused by the API's validation. No metrics: the count stays and
//! ScalingActive is False — never "scale to nothing".

mod behavior;
mod replicas;
mod status;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use serde_json::{json, Value};

use super::client::{resource_path, Loopback};
use super::events::{record, EventType};
use super::informer::Informer;
use super::scheduler::quantity::milli;
use crate::api::selector::LabelSelector;
use crate::metrics::Metrics;
use behavior::{History, Limit};
use replicas::{PodSample, Target};
use status::Condition;

const COMPONENT: &str = "horizontal-pod-autoscaler";

/// The controller's flags.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub sync_period: Duration,
    pub downscale_stabilization: Duration,
}

/// Starts the controller.
pub fn spawn(
    client: Loopback,
    hpas: Arc<Informer>,
    pods: Arc<Informer>,
    metrics: Arc<Metrics>,
    config: Config,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut histories: HashMap<String, History> = HashMap::new();
        let started = std::time::Instant::now();
        loop {
            tokio::time::sleep(config.sync_period).await;
            let now = started.elapsed().as_secs_f64();
            let all = hpas.list(|_| true);
            let keys: Vec<String> = all.iter().map(|h| key(h)).collect();
            histories.retain(|k, _| keys.contains(k));
            for hpa in all {
                let history = histories.entry(key(&hpa)).or_default();
                let pass = Pass {
                    client: &client,
                    pods: &pods,
                    metrics: &metrics,
                    config,
                    now,
                };
                pass.reconcile(&hpa, history).await;
            }
        }
    })
}

fn key(hpa: &Value) -> String {
    format!(
        "{}/{}/{}",
        hpa["metadata"]["namespace"].as_str().unwrap_or_default(),
        hpa["metadata"]["name"].as_str().unwrap_or_default(),
        hpa["metadata"]["uid"].as_str().unwrap_or_default()
    )
}

struct Pass<'a> {
    client: &'a Loopback,
    pods: &'a Informer,
    metrics: &'a Metrics,
    config: Config,
    now: f64,
}

/// One metric's proposal and its name in a rescale reason.
struct Measured {
    replicas: i64,
    name: String,
}

/// The served custom resource a `scaleTargetRef` names by apiVersion and kind, when it has a
/// `scale` subresource (from its CRD).
fn custom_scale_target(target: &Value) -> Option<&'static crate::kinds::Resource> {
    let api_version = target["apiVersion"].as_str()?;
    let (group, version) = api_version.split_once('/')?;
    let kind = target["kind"].as_str()?;
    crate::kinds::all().find(|r| {
        r.custom
            && (r.group, r.version, r.kind) == (group, version, kind)
            && r.subresources.iter().any(|s| s.name == "scale")
    })
}

impl Pass<'_> {
    async fn reconcile(&self, hpa: &Value, history: &mut History) {
        let ns = hpa["metadata"]["namespace"].as_str().unwrap_or("default");
        let spec = &hpa["spec"];
        let target = &spec["scaleTargetRef"];
        let builtin = match target["kind"].as_str() {
            Some("Deployment") => crate::kinds::find("apps", "v1", "deployments"),
            Some("StatefulSet") => crate::kinds::find("apps", "v1", "statefulsets"),
            Some("ReplicaSet") => crate::kinds::find("apps", "v1", "replicasets"),
            Some("ReplicationController") => crate::kinds::find("", "v1", "replicationcontrollers"),
            _ => None,
        };
        let target_name = target["name"].as_str().unwrap_or_default();
        let scale_path = builtin
            .or_else(|| custom_scale_target(target))
            .map(|r| format!("{}/scale", resource_path(r, Some(ns), Some(target_name))));
        let scale = match scale_path.as_ref() {
            Some(path) => self
                .client
                .request(Method::GET, path, "application/json", None)
                .await
                .map_err(|e| e.message),
            None => Err(format!(
                "kind {:?} has no scale subresource here",
                target["kind"]
            )),
        };
        let (Ok(scale), Some(scale_path)) = (scale, scale_path) else {
            let why = "the HPA controller was unable to get the target's current scale";
            self.write_status(
                hpa,
                None,
                None,
                vec![],
                &[("AbleToScale", false, "FailedGetScale", why.into())],
            )
            .await;
            record(
                self.client,
                COMPONENT,
                hpa,
                EventType::Warning,
                "FailedGetScale",
                why,
            )
            .await;
            return;
        };
        let current = scale["spec"]["replicas"].as_i64().unwrap_or(0);
        let min = spec["minReplicas"].as_i64().unwrap_or(1);
        let max = spec["maxReplicas"].as_i64().unwrap_or(min);
        let able = (
            "AbleToScale",
            true,
            "ReadyForNewScale",
            "recommended size matches current size".to_owned(),
        );
        if current == 0 && min != 0 {
            let off = (
                "ScalingActive",
                false,
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero".to_owned(),
            );
            self.write_status(hpa, Some(current), Some(current), vec![], &[able, off])
                .await;
            return;
        }
        let selector = scale["status"]["selector"].as_str().unwrap_or_default();
        let measured = match LabelSelector::parse(selector) {
            Ok(sel) if !selector.is_empty() => self.measure(hpa, ns, &sel, current),
            _ => Err((
                "InvalidSelector",
                format!("the target's selector {selector:?} is not usable"),
            )),
        };
        let (measured, currents) = match measured {
            Ok(m) => m,
            Err((reason, message)) => {
                let inactive = ("ScalingActive", false, reason, message.clone());
                self.write_status(hpa, Some(current), Some(current), vec![], &[able, inactive])
                    .await;
                record(
                    self.client,
                    COMPONENT,
                    hpa,
                    EventType::Warning,
                    reason,
                    &message,
                )
                .await;
                return;
            }
        };
        let best = measured.iter().max_by_key(|m| m.replicas);
        let proposed = best.map_or(current, |m| m.replicas);
        let rules = behavior::behavior(spec);
        let window = self.config.downscale_stabilization.as_secs() as i64;
        let out = if current > max {
            behavior::Normalised {
                replicas: max,
                limit: Limit::TooMany,
            }
        } else if current < min {
            behavior::Normalised {
                replicas: min,
                limit: Limit::TooFew,
            }
        } else {
            behavior::normalise(
                history,
                self.now,
                current,
                proposed,
                min,
                max,
                rules.as_ref(),
                window,
            )
        };
        let desired = out.replicas;
        let active = (
            "ScalingActive",
            true,
            "ValidMetricFound",
            "the HPA was able to successfully calculate a replica count".to_owned(),
        );
        let mut scaled = false;
        let mut able = able;
        if desired != current {
            let reason = if current > max {
                "Current number of replicas above Spec.MaxReplicas".to_owned()
            } else if current < min {
                "Current number of replicas below Spec.MinReplicas".to_owned()
            } else if desired > current {
                format!("{} above target", best.map_or("", |m| m.name.as_str()))
            } else {
                "All metrics below target".to_owned()
            };
            let patch = json!({"spec": {"replicas": desired}});
            match self
                .client
                .request(
                    Method::PATCH,
                    &scale_path,
                    "application/merge-patch+json",
                    Some(&patch),
                )
                .await
            {
                Ok(_) => {
                    behavior::record_rescale(history, self.now, current, desired);
                    scaled = true;
                    let message = format!("New size: {desired}; reason: {reason}");
                    record(
                        self.client,
                        COMPONENT,
                        hpa,
                        EventType::Normal,
                        "SuccessfulRescale",
                        &message,
                    )
                    .await;
                    able = (
                        "AbleToScale",
                        true,
                        "SucceededRescale",
                        format!(
                            "the HPA controller was able to update the target scale to {desired}"
                        ),
                    );
                }
                Err(e) => {
                    let message = format!("failed to rescale {target_name}: {}", e.message);
                    record(
                        self.client,
                        COMPONENT,
                        hpa,
                        EventType::Warning,
                        "FailedRescale",
                        &message,
                    )
                    .await;
                    able = ("AbleToScale", false, "FailedUpdateScale", message);
                }
            }
        }
        let conditions = [able, active, status::limited(out.limit)];
        self.write_status_scaled(hpa, current, desired, currents, &conditions, scaled)
            .await;
    }

    /// Every metric's proposal, or why none can be made.
    #[allow(clippy::type_complexity)]
    fn measure(
        &self,
        hpa: &Value,
        ns: &str,
        selector: &LabelSelector,
        current: i64,
    ) -> Result<(Vec<Measured>, Vec<Value>), (&'static str, String)> {
        let pods = self.pods.list(|p| {
            p["metadata"]["namespace"] == ns
                && selector.matches(p)
                && p["metadata"]["deletionTimestamp"].is_null()
                && !matches!(p["status"]["phase"].as_str(), Some("Failed" | "Succeeded"))
        });
        let default = [
            json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}),
        ];
        let specs = match hpa["spec"]["metrics"].as_array() {
            Some(m) if !m.is_empty() => m.as_slice(),
            _ => &default[..],
        };
        let window = self.metrics.lock();
        let mut measured = Vec::new();
        let mut currents = Vec::new();
        for (i, m) in specs.iter().enumerate() {
            let resource = m["resource"]["name"].as_str().unwrap_or_default();
            let t = &m["resource"]["target"];
            let target = match (t["type"].as_str(), resource) {
                (Some("Utilization"), _) => {
                    Target::Utilization(t["averageUtilization"].as_f64().unwrap_or(80.0))
                }
                (Some("AverageValue"), "cpu") => Target::AverageValue(
                    t["averageValue"].as_str().and_then(milli).unwrap_or(0) as f64,
                ),
                (Some("AverageValue"), _) => Target::AverageValue(
                    t["averageValue"].as_str().and_then(milli).unwrap_or(0) as f64 / 1000.0,
                ),
                _ => {
                    return Err((
                        "InvalidMetricSourceType",
                        format!("spec.metrics[{i}]: unsupported metric target"),
                    ))
                }
            };
            let mut samples = Vec::new();
            for p in &pods {
                let name = p["metadata"]["name"].as_str().unwrap_or_default();
                let usage = window.pod(ns, name).map(|cs| {
                    cs.values()
                        .map(|u| {
                            if resource == "cpu" {
                                u.cpu_cores * 1000.0
                            } else {
                                u.memory_bytes as f64
                            }
                        })
                        .sum::<f64>()
                });
                let mut request = 0.0;
                for c in p["spec"]["containers"].as_array().into_iter().flatten() {
                    match c["resources"]["requests"][resource]
                        .as_str()
                        .and_then(milli)
                    {
                        Some(v) => {
                            request += if resource == "cpu" {
                                v as f64
                            } else {
                                v as f64 / 1000.0
                            }
                        }
                        None if matches!(target, Target::Utilization(_)) => {
                            return Err(("FailedGetResourceMetric", format!(
                                "failed to get {resource} utilization: missing request for {resource} in container {} of Pod {name}",
                                c["name"].as_str().unwrap_or_default()
                            )));
                        }
                        None => {}
                    }
                }
                let ready = p["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                });
                samples.push(PodSample {
                    usage,
                    request,
                    ready,
                });
            }
            let proposal = replicas::propose(current, &samples, target, resource == "cpu")
                .map_err(|e| ("FailedGetResourceMetric", format!("failed to get {resource} utilization: unable to get metrics for resource {resource}: {e}")))?;
            let average = if resource == "cpu" {
                format!("{}m", proposal.average.round() as i64)
            } else {
                (proposal.average.round() as i64).to_string()
            };
            let name = match target {
                Target::Utilization(_) => {
                    format!("{resource} resource utilization (percentage of request)")
                }
                Target::AverageValue(_) => format!("{resource} resource"),
            };
            currents.push(status::current_metric(
                resource,
                proposal.utilization,
                &average,
            ));
            measured.push(Measured {
                replicas: proposal.replicas,
                name,
            });
        }
        Ok((measured, currents))
    }

    async fn write_status(
        &self,
        hpa: &Value,
        current: Option<i64>,
        desired: Option<i64>,
        metrics: Vec<Value>,
        conditions: &[Condition],
    ) {
        let mut patch = json!({"status": {
            "conditions": status::conditions(&hpa["status"], conditions, &crate::api::meta::now()),
        }});
        if let (Some(c), Some(d)) = (current, desired) {
            patch["status"]["currentReplicas"] = json!(c);
            patch["status"]["desiredReplicas"] = json!(d);
        }
        if !metrics.is_empty() {
            patch["status"]["currentMetrics"] = json!(metrics);
        }
        self.patch_status(hpa, &patch).await;
    }

    async fn write_status_scaled(
        &self,
        hpa: &Value,
        current: i64,
        desired: i64,
        metrics: Vec<Value>,
        conditions: &[Condition],
        scaled: bool,
    ) {
        let now = crate::api::meta::now();
        let mut patch = json!({"status": {
            "currentReplicas": current,
            "desiredReplicas": desired,
            "currentMetrics": metrics,
            "conditions": status::conditions(&hpa["status"], conditions, &now),
        }});
        if scaled {
            patch["status"]["lastScaleTime"] = json!(now);
        }
        self.patch_status(hpa, &patch).await;
    }

    async fn patch_status(&self, hpa: &Value, patch: &Value) {
        let Some(r) = crate::kinds::find("autoscaling", "v2", "horizontalpodautoscalers") else {
            return;
        };
        let ns = hpa["metadata"]["namespace"].as_str();
        let name = hpa["metadata"]["name"].as_str().unwrap_or_default();
        if let Err(e) = self.client.merge_patch_status(r, ns, name, patch).await {
            tracing::debug!(hpa = name, error = %e.message, "writing the HPA status");
        }
    }
}
