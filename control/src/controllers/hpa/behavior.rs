//! From the metrics' proposal to the replicas set, as kube-controller-manager normalises it:
//! stabilisation windows over past recommendations (scale-up: the lowest in its window,
//! scale-down: the highest), rate limits of the `behavior` policies over the scale events of
//! their periods, and min/max replicas — with Kubernetes' defaults (scale-up: no window, the
//! most of 4 pods or 100% per 15 s; scale-down: 300 s window, 100% per 15 s). An HPA without
//! `behavior` uses the controller's `--horizontal-pod-autoscaler-downscale-stabilization`
//! window and a scale-up limit of max(2 × current, 4). Pure: times are passed in (seconds).

use serde_json::Value;

/// A past recommendation or scale event, at a time in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timed {
    pub at: f64,
    pub replicas: i64,
}

/// One `behavior.scaleUp` or `scaleDown` rule set.
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    pub window_s: i64,
    /// (Pods | Percent, value, periodSeconds).
    pub policies: Vec<(String, i64, i64)>,
    /// Max, Min or Disabled.
    pub select: String,
}

impl Rules {
    fn from(v: &Value, default_window: i64, default_policies: Vec<(String, i64, i64)>) -> Rules {
        let policies = v["policies"].as_array().map(|ps| {
            ps.iter()
                .map(|p| {
                    (
                        p["type"].as_str().unwrap_or("Pods").to_owned(),
                        p["value"].as_i64().unwrap_or(0),
                        p["periodSeconds"].as_i64().unwrap_or(15),
                    )
                })
                .collect()
        });
        Rules {
            window_s: v["stabilizationWindowSeconds"]
                .as_i64()
                .unwrap_or(default_window),
            policies: policies.unwrap_or(default_policies),
            select: v["selectPolicy"].as_str().unwrap_or("Max").to_owned(),
        }
    }
}

/// The HPA's behaviour, with Kubernetes' defaults; None when `spec.behavior` is unset.
pub fn behavior(spec: &Value) -> Option<(Rules, Rules)> {
    let b = spec.get("behavior").filter(|b| b.is_object())?;
    let up = Rules::from(
        &b["scaleUp"],
        0,
        vec![("Pods".into(), 4, 15), ("Percent".into(), 100, 15)],
    );
    let down = Rules::from(&b["scaleDown"], 300, vec![("Percent".into(), 100, 15)]);
    Some((up, down))
}

/// Why the count was limited, for the ScalingLimited condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    None,
    TooMany,
    TooFew,
    /// Held by the scale-up rate (ScaleUpLimit).
    UpRate,
    /// Held by the scale-down rate (ScaleDownLimit).
    DownRate,
}

/// What the HPA remembers between passes.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub recommendations: Vec<Timed>,
    /// Replicas added (+) or removed (-) at each rescale.
    pub events: Vec<Timed>,
}

/// The replicas to set, and the limit that applied.
pub struct Normalised {
    pub replicas: i64,
    pub limit: Limit,
}

fn changed_within(events: &[Timed], now: f64, period: i64, up: bool) -> i64 {
    events
        .iter()
        .filter(|e| e.at > now - period as f64 && (e.replicas > 0) == up)
        .map(|e| e.replicas.abs())
        .sum()
}

/// Normalises `proposed` for an HPA now at `current` replicas.
#[allow(clippy::too_many_arguments)]
pub fn normalise(
    history: &mut History,
    now: f64,
    current: i64,
    proposed: i64,
    min: i64,
    max: i64,
    rules: Option<&(Rules, Rules)>,
    default_down_window_s: i64,
) -> Normalised {
    let (up_window, down_window) = match rules {
        Some((up, down)) => (up.window_s, down.window_s),
        None => (0, default_down_window_s),
    };
    // Stabilise: within the windows, scale up only to the lowest and down only to the highest
    // recommendation.
    let (mut up_rec, mut down_rec) = (proposed, proposed);
    for r in &history.recommendations {
        if r.at > now - up_window as f64 {
            up_rec = up_rec.min(r.replicas);
        }
        if r.at > now - down_window as f64 {
            down_rec = down_rec.max(r.replicas);
        }
    }
    let keep = up_window.max(down_window) as f64;
    history.recommendations.retain(|r| r.at > now - keep);
    history.recommendations.push(Timed {
        at: now,
        replicas: proposed,
    });
    let stabilised = current.max(up_rec).min(down_rec);
    // Rate limits.
    let (up_limit, down_limit) = match rules {
        None => ((2 * current).max(4), i64::MIN),
        Some((up, down)) => (
            up_limit(&up.policies, &up.select, current, &history.events, now),
            down_limit(&down.policies, &down.select, current, &history.events, now),
        ),
    };
    let (mut replicas, mut limit) = (stabilised, Limit::None);
    if stabilised > current {
        let ceiling = up_limit.min(max);
        if stabilised > ceiling {
            replicas = ceiling;
            limit = if up_limit < max {
                Limit::UpRate
            } else {
                Limit::TooMany
            };
        }
    } else if stabilised < current {
        let floor = down_limit.max(min);
        if stabilised < floor {
            replicas = floor;
            limit = if down_limit > min {
                Limit::DownRate
            } else {
                Limit::TooFew
            };
        }
    }
    if replicas > max {
        (replicas, limit) = (max, Limit::TooMany);
    } else if replicas < min {
        (replicas, limit) = (min, Limit::TooFew);
    }
    Normalised { replicas, limit }
}

fn up_limit(
    policies: &[(String, i64, i64)],
    select: &str,
    current: i64,
    ev: &[Timed],
    now: f64,
) -> i64 {
    if select == "Disabled" {
        return current;
    }
    let limits = policies.iter().map(|(kind, value, period)| {
        let start = current - changed_within(ev, now, *period, true);
        match kind.as_str() {
            "Percent" => (start as f64 * (1.0 + *value as f64 / 100.0)).ceil() as i64,
            _ => start + value,
        }
    });
    let pick = if select == "Min" {
        limits.min()
    } else {
        limits.max()
    };
    pick.unwrap_or(current)
}

fn down_limit(
    policies: &[(String, i64, i64)],
    select: &str,
    current: i64,
    ev: &[Timed],
    now: f64,
) -> i64 {
    if select == "Disabled" {
        return current;
    }
    let limits = policies.iter().map(|(kind, value, period)| {
        let start = current + changed_within(ev, now, *period, false);
        match kind.as_str() {
            "Percent" => (start as f64 * (1.0 - *value as f64 / 100.0)) as i64,
            _ => start - value,
        }
    });
    // "Max" is the largest change: the lowest count.
    let pick = if select == "Min" {
        limits.max()
    } else {
        limits.min()
    };
    pick.unwrap_or(current)
}

/// Records a rescale from `from` to `to` at `now`; events older than an hour are dropped.
pub fn record_rescale(history: &mut History, now: f64, from: i64, to: i64) {
    history.events.retain(|e| e.at > now - 3600.0);
    history.events.push(Timed {
        at: now,
        replicas: to - from,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scale_down_waits_for_the_window() {
        let mut h = History::default();
        // Without behavior: the flag's window (300 s here).
        let n =
            |h: &mut History, t: f64, cur: i64, p: i64| normalise(h, t, cur, p, 1, 10, None, 300);
        assert_eq!(n(&mut h, 0.0, 1, 3).replicas, 3, "scale-up is immediate");
        assert_eq!(
            n(&mut h, 15.0, 3, 1).replicas,
            3,
            "held by the 3 of 15 s ago"
        );
        assert_eq!(n(&mut h, 299.0, 3, 1).replicas, 3);
        assert_eq!(n(&mut h, 316.0, 3, 1).replicas, 1, "the window has passed");
    }

    #[test]
    fn scale_up_is_rate_limited_and_clamped() {
        let mut h = History::default();
        // Without behavior: at most max(2 × 1, 4) = 4 at once.
        let r = normalise(&mut h, 0.0, 1, 9, 1, 10, None, 0);
        assert_eq!((r.replicas, r.limit), (4, Limit::UpRate));
        let r = normalise(&mut h, 1.0, 4, 20, 1, 10, None, 0);
        assert_eq!((r.replicas, r.limit), (8, Limit::UpRate));
        let r = normalise(&mut h, 2.0, 8, 20, 1, 10, None, 0);
        assert_eq!((r.replicas, r.limit), (10, Limit::TooMany));
        let r = normalise(&mut h, 3.0, 2, 0, 1, 10, None, 0);
        assert_eq!((r.replicas, r.limit), (1, Limit::TooFew));
    }

    #[test]
    fn behavior_policies_count_the_period_s_events() {
        let spec = json!({"behavior": {
            "scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
            "scaleDown": {"stabilizationWindowSeconds": 0,
                          "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]},
        }});
        let rules = behavior(&spec["spec"].clone())
            .or_else(|| behavior(&spec))
            .unwrap();
        assert_eq!(rules.1.window_s, 0);
        assert_eq!(rules.0.window_s, 0, "scale-up defaults to no window");
        let mut h = History::default();
        let r = normalise(&mut h, 0.0, 2, 5, 1, 10, Some(&rules), 300);
        assert_eq!((r.replicas, r.limit), (3, Limit::UpRate));
        record_rescale(&mut h, 0.0, 2, 3);
        // The period started at 2: still 3 allowed.
        assert_eq!(
            normalise(&mut h, 30.0, 3, 5, 1, 10, Some(&rules), 300).replicas,
            3
        );
        assert_eq!(
            normalise(&mut h, 61.0, 3, 5, 1, 10, Some(&rules), 300).replicas,
            4
        );
        // Scale-down: 50% of the period's start.
        let mut h = History::default();
        assert_eq!(
            normalise(&mut h, 0.0, 8, 1, 1, 10, Some(&rules), 300).replicas,
            4
        );
        let defaults = behavior(&json!({"behavior": {}})).unwrap();
        assert_eq!(defaults.1.window_s, 300);
        assert_eq!(defaults.0.policies.len(), 2);
    }
}
