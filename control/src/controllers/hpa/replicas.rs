//! The replica count one metric asks for, as kube-controller-manager's `ReplicaCalculator`
//! computes it for Resource metrics: the usage ratio over the pods with metrics, a tolerance of
//! 0.1 around the target, and the rebalance for pods without metrics (counted at 100% of their
//! request when scaling down, 0 when scaling up) and not-ready pods (CPU only: counted at 0
//! when scaling up, left out otherwise). Pure.

/// Kubernetes' default `--horizontal-pod-autoscaler-tolerance`.
pub const TOLERANCE: f64 = 0.1;

/// One pod as the calculation sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PodSample {
    /// The pod's usage (sum of its containers'): millicores or bytes; None: no metrics.
    pub usage: Option<f64>,
    /// The pod's request (sum of its containers'), same unit.
    pub request: f64,
    /// Whether the pod counts as ready (CPU: Ready condition True).
    pub ready: bool,
}

/// What the metric targets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// Percent of the pods' requests.
    Utilization(f64),
    /// Per pod, in the usage's unit.
    AverageValue(f64),
}

/// The outcome: the proposal and the current value for `status.currentMetrics`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Proposal {
    pub replicas: i64,
    /// Percent of requests (Utilization targets only).
    pub utilization: Option<i64>,
    /// Average usage per pod with metrics.
    pub average: f64,
}

/// Why no proposal can be made.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CalcError {
    #[error("did not receive metrics for targeted pods (pods might be unready)")]
    NoMetrics,
    #[error("missing request for {0}")]
    MissingRequest(String),
}

/// The replicas `pods` (the target's, `current` of them wanted now) need for `target`.
/// `unready_ignored`: not-ready pods are set aside (CPU), else they count like ready ones.
pub fn propose(
    current: i64,
    pods: &[PodSample],
    target: Target,
    unready_ignored: bool,
) -> Result<Proposal, CalcError> {
    let counted = |p: &&PodSample| p.usage.is_some() && (p.ready || !unready_ignored);
    let with_metrics: Vec<&PodSample> = pods.iter().filter(counted).collect();
    if with_metrics.is_empty() {
        return Err(CalcError::NoMetrics);
    }
    let missing: Vec<&PodSample> = pods.iter().filter(|p| p.usage.is_none()).collect();
    let unready: Vec<&PodSample> = pods
        .iter()
        .filter(|p| p.usage.is_some() && !p.ready && unready_ignored)
        .collect();
    let ratio_of =
        |ps: &[&PodSample], extra: &[(f64, f64)]| -> Result<(f64, f64, f64), CalcError> {
            let usage: f64 = ps.iter().filter_map(|p| p.usage).sum::<f64>()
                + extra.iter().map(|e| e.0).sum::<f64>();
            let request: f64 =
                ps.iter().map(|p| p.request).sum::<f64>() + extra.iter().map(|e| e.1).sum::<f64>();
            let n = (ps.len() + extra.len()) as f64;
            Ok(match target {
                Target::Utilization(t) => {
                    if request <= 0.0 {
                        return Err(CalcError::MissingRequest("the pods".into()));
                    }
                    let util = usage * 100.0 / request;
                    (util / t, util, usage / n)
                }
                Target::AverageValue(t) => {
                    let avg = usage / n;
                    (avg / t, 0.0, avg)
                }
            })
        };
    let (ratio, util, average) = ratio_of(&with_metrics, &[])?;
    let proposal = |replicas: i64| Proposal {
        replicas,
        utilization: matches!(target, Target::Utilization(_)).then_some(util.round() as i64),
        average,
    };
    if missing.is_empty() && unready.is_empty() {
        if (ratio - 1.0).abs() <= TOLERANCE {
            return Ok(proposal(current));
        }
        return Ok(proposal((ratio * with_metrics.len() as f64).ceil() as i64));
    }
    // Rebalance: missing pods at 100% of their request (or the target value) when scaling
    // down and at 0 when scaling up; unready pods at 0 when scaling up.
    let mut extra: Vec<(f64, f64)> = Vec::new();
    let full = |p: &PodSample| match target {
        Target::Utilization(t) => p.request * t / 100.0,
        Target::AverageValue(t) => t,
    };
    for p in &missing {
        extra.push(if ratio < 1.0 {
            (full(p), p.request)
        } else {
            (0.0, p.request)
        });
    }
    if ratio > 1.0 {
        extra.extend(unready.iter().map(|p| (0.0, p.request)));
    }
    let (new_ratio, _, _) = ratio_of(&with_metrics, &extra)?;
    if (new_ratio - 1.0).abs() <= TOLERANCE
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Ok(proposal(current));
    }
    let n = (with_metrics.len() + extra.len()) as i64;
    let replicas = (new_ratio * n as f64).ceil() as i64;
    // A rebalanced proposal never goes against the direction the measured pods asked for.
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return Ok(proposal(current));
    }
    Ok(proposal(replicas))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(usage: Option<f64>, request: f64, ready: bool) -> PodSample {
        PodSample {
            usage,
            request,
            ready,
        }
    }

    #[test]
    fn within_tolerance_keeps_the_count() {
        let pods = [pod(Some(105.0), 200.0, true), pod(Some(100.0), 200.0, true)];
        let p = propose(2, &pods, Target::Utilization(50.0), true).unwrap();
        assert_eq!((p.replicas, p.utilization), (2, Some(51)));
    }

    #[test]
    fn scales_by_the_usage_ratio() {
        // 190% of request with a 50% target: ceil(3.8 * 1) = 4.
        let pods = [pod(Some(190.0), 100.0, true)];
        assert_eq!(
            propose(1, &pods, Target::Utilization(50.0), true)
                .unwrap()
                .replicas,
            4
        );
        // Idle: 2% of request over 3 pods → ceil(0.04 * 3) = 1.
        let idle = [pod(Some(2.0), 100.0, true); 3];
        assert_eq!(
            propose(3, &idle, Target::Utilization(50.0), true)
                .unwrap()
                .replicas,
            1
        );
        // AverageValue: 300m average against 100m → 3 per pod.
        let avg = [pod(Some(300.0), 0.0, true)];
        assert_eq!(
            propose(1, &avg, Target::AverageValue(100.0), false)
                .unwrap()
                .replicas,
            3
        );
    }

    #[test]
    fn missing_and_unready_pods_damp_the_change() {
        // Scale up with one pod without metrics: it counts as 0, (190 + 0) / 200 = 0.95 of
        // request → 1.9 ratio → ceil(1.9 * 2) = 4.
        let pods = [pod(Some(190.0), 100.0, true), pod(None, 100.0, false)];
        assert_eq!(
            propose(2, &pods, Target::Utilization(50.0), true)
                .unwrap()
                .replicas,
            4
        );
        // Scale down with a missing pod: it counts at the target, 10+50 / 200 = 30% → 0.6.
        let pods = [pod(Some(10.0), 100.0, true), pod(None, 100.0, true)];
        assert_eq!(
            propose(2, &pods, Target::Utilization(50.0), true)
                .unwrap()
                .replicas,
            2
        );
        // An unready pod is left out of a scale-down.
        let pods = [pod(Some(5.0), 100.0, true), pod(Some(500.0), 100.0, false)];
        assert_eq!(
            propose(2, &pods, Target::Utilization(50.0), true)
                .unwrap()
                .replicas,
            1
        );
        assert_eq!(
            propose(
                1,
                &[pod(None, 100.0, true)],
                Target::Utilization(50.0),
                true
            ),
            Err(CalcError::NoMetrics)
        );
    }
}
