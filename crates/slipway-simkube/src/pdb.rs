//! The disruption controller's status for a PodDisruptionBudget, which the eviction
//! subresource spends.
//!
//! `expectedPods` is the scale the budget protects: the caller passes the sum of the desired
//! replicas of the controllers owning the selected pods (as upstream reads their scale), or
//! `None` to use the number of selected pods (upstream does this for an integer
//! `minAvailable`). `desiredHealthy` comes from `minAvailable` (integer, or a percentage of
//! the expected pods rounded up) or from `maxUnavailable` (expected minus the integer or the
//! percentage rounded up); `currentHealthy` counts selected pods that are Ready, not being
//! deleted and not recorded in `disruptedPods`; `disruptionsAllowed` is
//! `currentHealthy - desiredHealthy`, never negative. `disruptedPods` entries are dropped once
//! their pod is gone or being deleted, or after [`DELETION_TIMEOUT_SECONDS`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use crate::common::{pod_ready, selects, time};

/// How long an eviction's entry in `disruptedPods` waits for its pod to go (upstream's
/// `DeletionTimeout`).
pub const DELETION_TIMEOUT_SECONDS: i64 = 2 * 60;

/// An int-or-percent scaled against `total` (`GetScaledValueFromIntOrPercent`).
pub fn scaled(value: &IntOrString, total: i32, round_up: bool) -> i32 {
    match value {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => {
            let p: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let product = i64::from(total) * p;
            (if round_up {
                (product + 99) / 100
            } else {
                product / 100
            }) as i32
        }
    }
}

/// The status of `pdb` over the pods of its namespace, at `now`.
pub fn status(
    pdb: &PodDisruptionBudget,
    pods: &[Pod],
    expected_pods: Option<i32>,
    now: Timestamp,
) -> PodDisruptionBudgetStatus {
    let spec = pdb.spec.clone().unwrap_or_default();
    let previous = pdb.status.clone().unwrap_or_default();
    let selected: Vec<&Pod> = match &spec.selector {
        None => Vec::new(),
        Some(sel) => pods
            .iter()
            .filter(|p| p.metadata.namespace == pdb.metadata.namespace)
            .filter(|p| selects(sel, p.metadata.labels.as_ref()))
            .collect(),
    };
    let expected = expected_pods.unwrap_or(selected.len() as i32).max(0);
    let desired = match (&spec.min_available, &spec.max_unavailable) {
        (Some(min), _) => scaled(min, expected, true),
        (None, Some(max)) => expected - scaled(max, expected, true),
        (None, None) => 0,
    }
    .max(0);
    // Keep the recent evictions whose pods are still there and not yet being deleted.
    let disrupted: BTreeMap<String, Time> = previous
        .disrupted_pods
        .unwrap_or_default()
        .into_iter()
        .filter(|(name, at)| {
            now.as_second() - at.0.as_second() < DELETION_TIMEOUT_SECONDS
                && selected.iter().any(|p| {
                    p.metadata.name.as_deref() == Some(name.as_str())
                        && p.metadata.deletion_timestamp.is_none()
                })
        })
        .collect();
    let healthy = selected
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && pod_ready(p)
                && !disrupted.contains_key(p.metadata.name.as_deref().unwrap_or(""))
        })
        .count() as i32;
    let allowed = (healthy - desired).max(0);
    let generation = pdb.metadata.generation.unwrap_or(0);
    let (cond_status, reason) = if allowed > 0 {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    let transition = previous
        .conditions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|c| c.type_ == "DisruptionAllowed" && c.status == cond_status)
        .map_or_else(|| time(now), |c| c.last_transition_time.clone());
    PodDisruptionBudgetStatus {
        observed_generation: Some(generation),
        expected_pods: expected,
        desired_healthy: desired,
        current_healthy: healthy,
        disruptions_allowed: allowed,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        conditions: Some(vec![Condition {
            type_: "DisruptionAllowed".into(),
            status: cond_status.into(),
            reason: reason.into(),
            message: String::new(),
            observed_generation: Some(generation),
            last_transition_time: transition,
        }]),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
    use proptest::prelude::*;

    use super::*;
    use crate::testutil::{pod, t};

    fn budget(min: Option<IntOrString>, max: Option<IntOrString>) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                generation: Some(4),
                ..ObjectMeta::default()
            },
            spec: Some(PodDisruptionBudgetSpec {
                min_available: min,
                max_unavailable: max,
                selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
                    ..LabelSelector::default()
                }),
                ..PodDisruptionBudgetSpec::default()
            }),
            status: None,
        }
    }

    fn ready_pods(n: usize, ready: usize) -> Vec<Pod> {
        (0..n)
            .map(|i| {
                let mut p = pod(&format!("web-{i}"), "1m", "web", None);
                p.status = Some(PodStatus {
                    phase: Some("Running".into()),
                    conditions: Some(vec![PodCondition {
                        type_: "Ready".into(),
                        status: if i < ready { "True" } else { "False" }.into(),
                        ..PodCondition::default()
                    }]),
                    ..PodStatus::default()
                });
                p
            })
            .collect()
    }

    #[test]
    fn budgets_from_min_available_and_max_unavailable() {
        let pct = |s: &str| Some(IntOrString::String(s.into()));
        let int = |n: i32| Some(IntOrString::Int(n));
        // (min, max, pods, ready, expected) -> (desired, healthy, allowed)
        let cases = [
            (int(2), None, 3, 3, None, (2, 3, 1)),
            (int(2), None, 3, 2, None, (2, 2, 0)),
            (pct("50%"), None, 3, 3, None, (2, 3, 1)),
            (None, int(1), 3, 3, None, (2, 3, 1)),
            (None, pct("34%"), 3, 3, None, (1, 3, 2)),
            (None, int(0), 3, 3, None, (3, 3, 0)),
            (int(5), None, 3, 3, None, (5, 3, 0)),
            (None, int(1), 2, 2, Some(4), (3, 2, 0)),
        ];
        for (min, max, n, ready, expected, want) in cases {
            let s = status(
                &budget(min.clone(), max.clone()),
                &ready_pods(n, ready),
                expected,
                t(0),
            );
            assert_eq!(
                (s.desired_healthy, s.current_healthy, s.disruptions_allowed),
                want,
                "{min:?} {max:?} {n} {ready} {expected:?}"
            );
            assert_eq!(s.observed_generation, Some(4));
            let c = &s.conditions.unwrap()[0];
            assert_eq!(c.status == "True", want.2 > 0);
        }
    }

    #[test]
    fn disrupted_pods_count_as_unhealthy_until_gone_or_timed_out() {
        let mut pdb = budget(Some(IntOrString::Int(1)), None);
        pdb.status = Some(PodDisruptionBudgetStatus {
            disrupted_pods: Some(BTreeMap::from([
                ("web-0".to_string(), Time(t(0))),
                ("gone".to_string(), Time(t(0))),
            ])),
            ..PodDisruptionBudgetStatus::default()
        });
        let pods = ready_pods(3, 3);
        let s = status(&pdb, &pods, None, t(30));
        assert_eq!(s.current_healthy, 2);
        assert_eq!(
            s.disrupted_pods.as_ref().unwrap().len(),
            1,
            "the gone pod's entry is dropped"
        );
        let s = status(&pdb, &pods, None, t(DELETION_TIMEOUT_SECONDS + 1));
        assert_eq!(s.current_healthy, 3);
        assert!(s.disrupted_pods.is_none());
    }

    proptest! {
        #[test]
        fn never_negative_and_never_more_than_healthy(min in 0i32..10, n in 0usize..10, ready in 0usize..10) {
            let s = status(&budget(Some(IntOrString::Int(min)), None), &ready_pods(n, ready.min(n)), None, t(0));
            prop_assert!(s.disruptions_allowed >= 0);
            prop_assert!(s.disruptions_allowed <= s.current_healthy);
            prop_assert_eq!(s.disruptions_allowed, (s.current_healthy - s.desired_healthy).max(0));
        }
    }
}
