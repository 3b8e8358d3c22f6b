//! The ReplicaSet controller's decisions: which pods to create and delete so that the
//! number of active pods it controls equals `spec.replicas`, which orphans to adopt, and the
//! status to report.
//!
//! As upstream: pods are the set's when their controller reference has its uid; orphans whose
//! labels match the selector are adopted; active pods exclude finished and deleting ones; at
//! most [`BURST`] pods are created or deleted per pass; and the pods deleted first are those
//! least useful (upstream's `ActivePods` order): unscheduled before scheduled, Pending before
//! Unknown before Running, not Ready before Ready, more restarts first, newest first.

use std::cmp::Ordering;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;

use crate::common::{
    controlled_by, controller_of, controller_ref, pod_active, pod_available, pod_phase, pod_ready,
    selects,
};

/// The most pods one pass creates or deletes (upstream's `burstReplicas`).
pub const BURST: usize = 500;

/// What one pass of the ReplicaSet controller does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplicaSetPlan {
    /// Pods to create (from the template, with `generateName`).
    pub create: Vec<Pod>,
    /// Names of pods to delete.
    pub delete: Vec<String>,
    /// Names of orphan pods to adopt (add the set as their controller owner).
    pub adopt: Vec<String>,
    /// The status to write.
    pub status: ReplicaSetStatus,
}

/// Decide one pass for `rs` given every pod in its namespace, at `now`.
pub fn reconcile(rs: &ReplicaSet, pods: &[Pod], now: Timestamp) -> ReplicaSetPlan {
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    let spec = rs.spec.as_ref();
    let desired = spec.and_then(|s| s.replicas).unwrap_or(1).max(0) as usize;
    let selector = spec.map(|s| &s.selector);
    let deleting = rs.metadata.deletion_timestamp.is_some();
    let mut adopt = Vec::new();
    let mut owned: Vec<&Pod> = Vec::new();
    for pod in pods {
        if controlled_by(&pod.metadata, &uid) {
            owned.push(pod);
        } else if !deleting
            && controller_of(&pod.metadata).is_none()
            && pod_active(pod)
            && selector.is_some_and(|s| selects(s, pod.metadata.labels.as_ref()))
        {
            adopt.push(pod.metadata.name.clone().unwrap_or_default());
            owned.push(pod);
        }
    }
    let mut active: Vec<&Pod> = owned.iter().copied().filter(|p| pod_active(p)).collect();
    let mut plan = ReplicaSetPlan {
        adopt,
        ..ReplicaSetPlan::default()
    };
    if !deleting {
        if active.len() < desired {
            let n = (desired - active.len()).min(BURST);
            plan.create = (0..n).map(|_| pod_from_template(rs)).collect();
        } else if active.len() > desired {
            active.sort_by(|a, b| deletion_order(a, b));
            plan.delete = active
                .iter()
                .take((active.len() - desired).min(BURST))
                .map(|p| p.metadata.name.clone().unwrap_or_default())
                .collect();
        }
    }
    plan.status = status(rs, &owned, now);
    plan
}

/// A new pod from the set's template: `generateName` `<rs>-`, the template's labels and
/// annotations, the set as controller owner, the template's spec.
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let name = rs.metadata.name.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: rs.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![controller_ref("apps/v1", "ReplicaSet", &rs.metadata)]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}

fn phase_rank(pod: &Pod) -> u8 {
    match pod_phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    }
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default()
        .iter()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0)
}

fn created(pod: &Pod) -> Option<Timestamp> {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// The order pods are deleted in when scaling down: the first is deleted first.
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    let assigned = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    assigned(a)
        .cmp(&assigned(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| pod_ready(a).cmp(&pod_ready(b)))
        .then_with(|| restarts(b).cmp(&restarts(a)))
        // Newer first: a missing timestamp counts as newest.
        .then_with(|| match (created(a), created(b)) {
            (Some(x), Some(y)) => y.cmp(&x),
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// The status of a set over the pods it owns.
pub fn status(rs: &ReplicaSet, owned: &[&Pod], now: Timestamp) -> ReplicaSetStatus {
    let active: Vec<&&Pod> = owned.iter().filter(|p| pod_active(p)).collect();
    let template_labels = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = i64::from(
        rs.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0),
    );
    let count = |f: &dyn Fn(&Pod) -> bool| active.iter().filter(|p| f(p)).count() as i32;
    ReplicaSetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: Some(count(&|p| {
            let labels = p.metadata.labels.clone().unwrap_or_default();
            template_labels
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
        })),
        ready_replicas: Some(count(&|p| pod_ready(p))),
        available_replicas: Some(count(&|p| pod_available(p, min_ready, now))),
        observed_generation: rs.metadata.generation,
        conditions: None,
        terminating_replicas: Some(
            owned
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_some())
                .count() as i32,
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
    use proptest::prelude::*;

    use super::*;
    use crate::testutil::{on, pod, t};

    fn rs(replicas: i32) -> ReplicaSet {
        let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some("rs".into()),
                namespace: Some("default".into()),
                uid: Some("uid-rs".into()),
                generation: Some(3),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                selector: LabelSelector {
                    match_labels: Some(labels.clone()),
                    ..LabelSelector::default()
                },
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..ObjectMeta::default()
                    }),
                    spec: pod("x", "100m", "web", None).spec,
                }),
                ..ReplicaSetSpec::default()
            }),
            status: None,
        }
    }

    fn ready(mut p: Pod, since: i64) -> Pod {
        p.status = Some(PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(Time(t(since))),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        });
        p
    }

    #[test]
    fn creates_from_the_template() {
        let plan = reconcile(
            &rs(3),
            &[ready(on(pod("rs-a", "100m", "web", Some("rs")), "n"), 0)],
            t(100),
        );
        assert_eq!(plan.create.len(), 2);
        let new = &plan.create[0];
        assert_eq!(new.metadata.generate_name.as_deref(), Some("rs-"));
        assert_eq!(new.metadata.labels.as_ref().unwrap()["app"], "web");
        let owner = &new.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("ReplicaSet", "uid-rs", Some(true))
        );
        assert_eq!(plan.status.replicas, 1);
        assert_eq!(plan.status.ready_replicas, Some(1));
        assert_eq!(plan.status.observed_generation, Some(3));
    }

    #[test]
    fn deletes_the_least_useful_pods_first() {
        let owned = |n: &str| pod(n, "100m", "web", Some("rs"));
        let mut old_ready = ready(on(owned("ready-old"), "n"), 0);
        old_ready.metadata.creation_timestamp = Some(Time(t(0)));
        let mut new_ready = ready(on(owned("ready-new"), "n"), 0);
        new_ready.metadata.creation_timestamp = Some(Time(t(50)));
        let pods = vec![
            old_ready,
            new_ready,
            on(owned("bound-pending"), "n"),
            owned("unscheduled"),
        ];
        let cases = [
            (3, vec!["unscheduled"]),
            (2, vec!["unscheduled", "bound-pending"]),
            (1, vec!["unscheduled", "bound-pending", "ready-new"]),
            (4, vec![]),
        ];
        for (replicas, want) in cases {
            let plan = reconcile(&rs(replicas), &pods, t(100));
            assert_eq!(plan.delete, want, "replicas {replicas}");
            assert!(plan.create.is_empty());
        }
    }

    #[test]
    fn adopts_orphans_and_ignores_others() {
        let pods = vec![
            pod("orphan", "100m", "web", None),
            pod("someone-elses", "100m", "web", Some("other")),
            pod("unrelated", "100m", "db", None),
        ];
        let plan = reconcile(&rs(1), &pods, t(0));
        assert_eq!(plan.adopt, ["orphan"]);
        assert!(plan.create.is_empty() && plan.delete.is_empty());
        assert_eq!(plan.status.replicas, 1);
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let mut set = rs(1);
        set.spec.as_mut().unwrap().min_ready_seconds = Some(30);
        let p = ready(on(pod("rs-a", "1m", "web", Some("rs")), "n"), 100);
        assert_eq!(
            reconcile(&set, std::slice::from_ref(&p), t(110))
                .status
                .available_replicas,
            Some(0)
        );
        assert_eq!(
            reconcile(&set, &[p], t(130)).status.available_replicas,
            Some(1)
        );
    }

    proptest! {
        /// Whatever pods exist, one pass moves the active count to the desired count
        /// (within the burst), never deletes what it does not own, and never both creates
        /// and deletes.
        #[test]
        fn converges_in_one_pass(replicas in 0i32..20, owned in 0usize..25, foreign in 0usize..5) {
            let mut pods: Vec<Pod> = (0..owned).map(|i| pod(&format!("o{i}"), "1m", "web", Some("rs"))).collect();
            pods.extend((0..foreign).map(|i| pod(&format!("f{i}"), "1m", "web", Some("other"))));
            let plan = reconcile(&rs(replicas), &pods, t(0));
            prop_assert!(plan.create.is_empty() || plan.delete.is_empty());
            let after = owned + plan.create.len() - plan.delete.len();
            prop_assert_eq!(after, replicas as usize);
            prop_assert!(plan.delete.iter().all(|n| n.starts_with('o')));
        }
    }
}
