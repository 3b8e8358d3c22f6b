//! The Deployment controller's decisions: the pod-template-hash, the new ReplicaSet, the
//! rolling-update arithmetic (`maxSurge`/`maxUnavailable`) and Recreate, and the status with
//! its `Available` and `Progressing` conditions, as upstream's deployment controller computes
//! them.
//!
//! One pass: find the ReplicaSet whose template equals the Deployment's (ignoring the
//! `pod-template-hash` label) or plan to create it with 0 replicas; then scale. Rolling
//! update: the new set grows while the total stays within `replicas + maxSurge`; old sets
//! shrink while the available pods stay at least `replicas - maxUnavailable` (unhealthy old
//! pods go first). Recreate: old sets go to 0, and once none of their pods is active the new
//! set goes to `replicas`. A paused Deployment gets its status and nothing else (upstream
//! would still scale proportionally; Slipway's simulator does not need that).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use crate::common::{controlled_by, controller_ref, pod_active, time};

/// The label (and selector term) that tells the ReplicaSets of one Deployment apart.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// The revision annotation on Deployments and their ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// The desired-replicas annotation upstream writes on ReplicaSets.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// The max-replicas (replicas + surge) annotation upstream writes on ReplicaSets.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

/// FNV-1a (32 bit), upstream's template hasher.
fn fnv32a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The `pod-template-hash` of a template: FNV-1a of its JSON form and the collision count,
/// each decimal digit mapped into upstream's safe alphabet (no vowels, no ambiguous digits).
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut text = serde_json::to_string(template).unwrap_or_default();
    if let Some(c) = collision_count {
        text.push_str(&c.to_string());
    }
    fnv32a(text.as_bytes())
        .to_string()
        .bytes()
        .map(|b| ALPHABET[usize::from(b) % ALPHABET.len()] as char)
        .collect()
}

/// A template without the `pod-template-hash` label, for comparing.
fn without_hash(template: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = template.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH);
        if labels.is_empty()
            && let Some(m) = t.metadata.as_mut()
        {
            m.labels = None;
        }
    }
    t
}

/// Whether two templates are equal but for the hash label (upstream's `EqualIgnoreHash`).
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    without_hash(a) == without_hash(b)
}

/// `maxSurge` and `maxUnavailable` resolved against `replicas`: surge rounds up,
/// unavailability down; both zero becomes unavailability 1 (upstream's `ResolveFenceposts`).
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    replicas: i32,
) -> (i32, i32) {
    let scaled = |v: Option<&IntOrString>, default: &str, round_up: bool| -> i32 {
        let v = v
            .cloned()
            .unwrap_or_else(|| IntOrString::String(default.into()));
        match v {
            IntOrString::Int(n) => n.max(0),
            IntOrString::String(s) => {
                let p: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
                let total = i64::from(replicas) * p;
                let n = if round_up {
                    (total + 99) / 100
                } else {
                    total / 100
                };
                n.max(0) as i32
            }
        }
    };
    let surge = scaled(max_surge, "25%", true);
    let unavailable = scaled(max_unavailable, "25%", false);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// What one pass of the Deployment controller does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeploymentPlan {
    /// A new ReplicaSet to create (named `<deployment>-<hash>`, 0 replicas or more).
    pub create: Option<ReplicaSet>,
    /// New `spec.replicas` for existing ReplicaSets, by name.
    pub scale: BTreeMap<String, i32>,
    /// The status to write.
    pub status: DeploymentStatus,
}

fn replicas_of(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn status_int(
    rs: &ReplicaSet,
    f: fn(&k8s_openapi::api::apps::v1::ReplicaSetStatus) -> Option<i32>,
) -> i32 {
    rs.status.as_ref().and_then(f).unwrap_or(0)
}

fn available(rs: &ReplicaSet) -> i32 {
    status_int(rs, |s| s.available_replicas)
}

fn revision(meta: &ObjectMeta) -> i64 {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The ReplicaSet the Deployment would create for its current template.
pub fn new_replica_set(d: &Deployment, replicas: i32, revision: i64, surge: i32) -> ReplicaSet {
    let spec = d.spec.clone().unwrap_or_default();
    let collision = d.status.as_ref().and_then(|s| s.collision_count);
    let hash = pod_template_hash(&spec.template, collision);
    let mut template = spec.template.clone();
    let tmeta = template.metadata.get_or_insert_with(ObjectMeta::default);
    tmeta
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(POD_TEMPLATE_HASH.into(), hash.clone());
    let mut selector: LabelSelector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(POD_TEMPLATE_HASH.into(), hash.clone());
    let name = d.metadata.name.clone().unwrap_or_default();
    let desired = spec.replicas.unwrap_or(1);
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{name}-{hash}")),
            namespace: d.metadata.namespace.clone(),
            labels: tmeta.labels.clone(),
            annotations: Some(BTreeMap::from([
                (REVISION.to_string(), revision.to_string()),
                (DESIRED_REPLICAS.to_string(), desired.to_string()),
                (MAX_REPLICAS.to_string(), (desired + surge).to_string()),
            ])),
            owner_references: Some(vec![controller_ref("apps/v1", "Deployment", &d.metadata)]),
            ..ObjectMeta::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

/// Decide one pass for `d` given the ReplicaSets in its namespace (those it controls are
/// picked out by owner reference) and the pods of those sets, at `now`.
pub fn reconcile(
    d: &Deployment,
    replica_sets: &[ReplicaSet],
    pods: &[Pod],
    now: Timestamp,
) -> DeploymentPlan {
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let spec = d.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let owned: Vec<&ReplicaSet> = replica_sets
        .iter()
        .filter(|rs| controlled_by(&rs.metadata, &uid))
        .collect();
    let new = owned
        .iter()
        .copied()
        .filter(|rs| {
            rs.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| equal_ignore_hash(t, &spec.template))
        })
        .min_by_key(|rs| rs.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let mut olds: Vec<&ReplicaSet> = owned
        .iter()
        .copied()
        .filter(|rs| new.is_none_or(|n| n.metadata.name != rs.metadata.name))
        .collect();
    olds.sort_by_key(|rs| rs.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let strategy = spec.strategy.clone().unwrap_or_default();
    let recreate = strategy.type_.as_deref() == Some("Recreate");
    let rolling = strategy.rolling_update.unwrap_or_default();
    let (surge, max_unavailable) = if recreate {
        (0, 0)
    } else {
        resolve_fenceposts(
            rolling.max_surge.as_ref(),
            rolling.max_unavailable.as_ref(),
            replicas,
        )
    };
    let paused = spec.paused == Some(true);
    let mut plan = DeploymentPlan::default();
    // Desired replicas per set, starting from what they have.
    let mut sizes: BTreeMap<String, i32> = owned
        .iter()
        .map(|rs| {
            (
                rs.metadata.name.clone().unwrap_or_default(),
                replicas_of(rs),
            )
        })
        .collect();
    let new_name = match new {
        Some(rs) => rs.metadata.name.clone().unwrap_or_default(),
        None => {
            let next_revision = owned
                .iter()
                .map(|rs| revision(&rs.metadata))
                .max()
                .unwrap_or(0)
                + 1;
            let rs = new_replica_set(d, 0, next_revision, surge);
            let name = rs.metadata.name.clone().unwrap_or_default();
            sizes.insert(name.clone(), 0);
            if !paused {
                plan.create = Some(rs);
            }
            name
        }
    };
    if !paused {
        let new_available = new.map_or(0, available);
        if recreate {
            let old_active = pods.iter().any(|p| {
                pod_active(p)
                    && olds.iter().any(|rs| {
                        controlled_by(&p.metadata, rs.metadata.uid.as_deref().unwrap_or(""))
                    })
            });
            for rs in &olds {
                sizes.insert(rs.metadata.name.clone().unwrap_or_default(), 0);
            }
            if !old_active
                && olds
                    .iter()
                    .all(|rs| status_int(rs, |s| Some(s.replicas)) == 0)
            {
                sizes.insert(new_name.clone(), replicas);
            }
        } else {
            rolling_sizes(
                &mut sizes,
                &new_name,
                new_available,
                &olds,
                replicas,
                surge,
                max_unavailable,
            );
        }
    }
    for rs in &owned {
        let name = rs.metadata.name.clone().unwrap_or_default();
        if let Some(&size) = sizes.get(&name)
            && size != replicas_of(rs)
        {
            plan.scale.insert(name, size);
        }
    }
    if let Some(create) = plan.create.as_mut()
        && let Some(&size) = sizes.get(&new_name)
        && let Some(s) = create.spec.as_mut()
    {
        s.replicas = Some(size);
    }
    plan.status = status(d, new, &owned, max_unavailable, plan.create.is_some(), now);
    plan
}

/// Upstream's `reconcileNewReplicaSet` and `reconcileOldReplicaSets` on the set sizes.
fn rolling_sizes(
    sizes: &mut BTreeMap<String, i32>,
    new_name: &str,
    new_available: i32,
    olds: &[&ReplicaSet],
    replicas: i32,
    surge: i32,
    max_unavailable: i32,
) {
    let total = |sizes: &BTreeMap<String, i32>| sizes.values().sum::<i32>();
    let new_size = sizes.get(new_name).copied().unwrap_or(0);
    // Scale the new set up within the surge, or down to the desired count.
    if new_size > replicas {
        sizes.insert(new_name.into(), replicas);
    } else if new_size < replicas {
        let max_total = replicas + surge;
        let all = total(sizes);
        if all < max_total {
            let up = (max_total - all).min(replicas - new_size);
            sizes.insert(new_name.into(), new_size + up);
        }
    }
    // Scale old sets down while enough pods stay available.
    let old_total: i32 = olds
        .iter()
        .map(|rs| {
            sizes
                .get(rs.metadata.name.as_deref().unwrap_or(""))
                .copied()
                .unwrap_or(0)
        })
        .sum();
    if old_total == 0 {
        return;
    }
    let min_available = replicas - max_unavailable;
    let new_size = sizes.get(new_name).copied().unwrap_or(0);
    let new_unavailable = (new_size - new_available).max(0);
    let mut budget = total(sizes) - min_available - new_unavailable;
    // First the old sets' unhealthy pods, which cost no availability.
    for rs in olds {
        if budget <= 0 {
            break;
        }
        let name = rs.metadata.name.clone().unwrap_or_default();
        let size = sizes.get(&name).copied().unwrap_or(0);
        let unhealthy = (size - available(rs)).max(0).min(budget);
        if unhealthy > 0 {
            sizes.insert(name, size - unhealthy);
            budget -= unhealthy;
        }
    }
    // Then available old pods, oldest sets first, as far as availability allows.
    let available_total: i32 = new_available
        + olds
            .iter()
            .map(|rs| {
                available(rs).min(
                    sizes
                        .get(rs.metadata.name.as_deref().unwrap_or(""))
                        .copied()
                        .unwrap_or(0),
                )
            })
            .sum::<i32>();
    let mut can_remove = (available_total - min_available).min(budget.max(0));
    for rs in olds {
        if can_remove <= 0 {
            break;
        }
        let name = rs.metadata.name.clone().unwrap_or_default();
        let size = sizes.get(&name).copied().unwrap_or(0);
        let down = size.min(can_remove);
        if down > 0 {
            sizes.insert(name, size - down);
            can_remove -= down;
        }
    }
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(time(now)),
        last_transition_time: Some(time(now)),
    }
}

/// The Deployment's status: counts summed over its sets, `updatedReplicas` from the new one,
/// and the conditions upstream writes:
/// - `Available`: True `MinimumReplicasAvailable` when at least `replicas - maxUnavailable`
///   pods are available, else False `MinimumReplicasUnavailable`;
/// - `Progressing`: True `NewReplicaSetCreated` when the new set is created in this pass,
///   True `NewReplicaSetAvailable` once the rollout is complete, True `ReplicaSetUpdated` while
///   it moves, False `ProgressDeadlineExceeded` when it has not moved for
///   `progressDeadlineSeconds`.
pub fn status(
    d: &Deployment,
    new: Option<&ReplicaSet>,
    owned: &[&ReplicaSet],
    max_unavailable: i32,
    creating: bool,
    now: Timestamp,
) -> DeploymentStatus {
    let spec = d.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let sum = |f: fn(&ReplicaSet) -> i32| owned.iter().map(|rs| f(rs)).sum::<i32>();
    let total = sum(|rs| status_int(rs, |s| Some(s.replicas)));
    let ready = sum(|rs| status_int(rs, |s| s.ready_replicas));
    let avail = sum(available);
    let updated = new.map_or(0, |rs| status_int(rs, |s| Some(s.replicas)));
    let previous = d.status.clone().unwrap_or_default();
    let old_conditions = previous.conditions.clone().unwrap_or_default();
    let keep_transition = |mut c: DeploymentCondition| {
        if let Some(old) = old_conditions.iter().find(|o| o.type_ == c.type_)
            && old.status == c.status
        {
            c.last_transition_time = old.last_transition_time.clone();
            if old.reason == c.reason {
                c.last_update_time = old.last_update_time.clone();
            }
        }
        c
    };
    let available_condition = if avail >= replicas - max_unavailable {
        condition(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
            now,
        )
    } else {
        condition(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
            now,
        )
    };
    let name = new
        .and_then(|rs| rs.metadata.name.clone())
        .unwrap_or_else(|| {
            let hash = pod_template_hash(&spec.template, previous.collision_count);
            format!("{}-{hash}", d.metadata.name.clone().unwrap_or_default())
        });
    let new_replicas = new.map_or(0, replicas_of);
    let complete = new.is_some()
        && updated == replicas
        && total == replicas
        && new.map_or(0, available) >= replicas
        && new_replicas == replicas;
    let progressing = if creating {
        condition(
            "Progressing",
            "True",
            "NewReplicaSetCreated",
            format!("Created new replica set \"{name}\""),
            now,
        )
    } else if complete {
        condition(
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{name}\" has successfully progressed."),
            now,
        )
    } else {
        let moving = condition(
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{name}\" is progressing."),
            now,
        );
        let deadline = i64::from(spec.progress_deadline_seconds.unwrap_or(600));
        let stuck_since = old_conditions
            .iter()
            .find(|c| c.type_ == "Progressing" && c.status == "True")
            .filter(|c| c.reason.as_deref() != Some("NewReplicaSetAvailable"))
            .and_then(|c| c.last_update_time.as_ref())
            .map(|t| t.0);
        // Progress (more updated or available pods than last observed) resets the clock.
        let moved = updated != previous.updated_replicas.unwrap_or(0)
            || avail != previous.available_replicas.unwrap_or(0);
        match stuck_since {
            Some(since) if !moved && now.as_second() - since.as_second() > deadline => condition(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                format!("ReplicaSet \"{name}\" has timed out progressing."),
                now,
            ),
            _ => {
                let mut c = keep_transition(moving);
                if moved {
                    c.last_update_time = Some(time(now));
                }
                c
            }
        }
    };
    DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(total),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(avail),
        unavailable_replicas: Some((replicas - avail).max(0)),
        terminating_replicas: None,
        collision_count: previous.collision_count,
        conditions: Some(vec![keep_transition(available_condition), progressing]),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, DeploymentStrategy, ReplicaSetStatus, RollingUpdateDeployment,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use proptest::prelude::*;

    use super::*;
    use crate::testutil::{pod, t};

    fn deploy(replicas: i32, image: &str, surge: i32, unavailable: i32) -> Deployment {
        let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        let mut spec = pod("x", "100m", "web", None).spec;
        if let Some(s) = spec.as_mut() {
            s.containers[0].image = Some(image.into());
        }
        Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("uid-web".into()),
                generation: Some(2),
                ..ObjectMeta::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                selector: LabelSelector {
                    match_labels: Some(labels.clone()),
                    ..LabelSelector::default()
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..ObjectMeta::default()
                    }),
                    spec,
                },
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(IntOrString::Int(surge)),
                        max_unavailable: Some(IntOrString::Int(unavailable)),
                    }),
                }),
                ..DeploymentSpec::default()
            }),
            status: None,
        }
    }

    /// The set as its controller and pods would have made it: `size` pods, all available.
    fn settled(mut rs: ReplicaSet, size: i32, created: i64) -> ReplicaSet {
        rs.metadata.uid = Some(format!(
            "uid-{}",
            rs.metadata.name.clone().unwrap_or_default()
        ));
        rs.metadata.creation_timestamp = Some(Time(t(created)));
        if let Some(s) = rs.spec.as_mut() {
            s.replicas = Some(size);
        }
        rs.status = Some(ReplicaSetStatus {
            replicas: size,
            ready_replicas: Some(size),
            available_replicas: Some(size),
            ..ReplicaSetStatus::default()
        });
        rs
    }

    #[test]
    fn hash_is_stable_and_template_sensitive() {
        let a = deploy(3, "nginx:1", 1, 0);
        let b = deploy(3, "nginx:2", 1, 0);
        let h = |d: &Deployment| pod_template_hash(&d.spec.as_ref().unwrap().template, None);
        assert_eq!(h(&a), h(&a.clone()));
        assert_ne!(h(&a), h(&b));
        assert!(
            h(&a)
                .bytes()
                .all(|c| b"bcdfghjklmnpqrstvwxz2456789".contains(&c))
        );
        assert_ne!(
            pod_template_hash(&a.spec.as_ref().unwrap().template, Some(1)),
            h(&a)
        );
    }

    #[test]
    fn fenceposts_like_upstream() {
        let pct = |s: &str| IntOrString::String(s.into());
        let cases = [
            (Some(pct("25%")), Some(pct("25%")), 10, (3, 2)),
            (
                Some(IntOrString::Int(0)),
                Some(IntOrString::Int(0)),
                5,
                (0, 1),
            ),
            (None, None, 4, (1, 1)),
            (Some(pct("0%")), Some(pct("10%")), 5, (0, 1)),
        ];
        for (surge, unavailable, replicas, want) in cases {
            assert_eq!(
                resolve_fenceposts(surge.as_ref(), unavailable.as_ref(), replicas),
                want,
                "{surge:?} {unavailable:?} {replicas}"
            );
        }
    }

    #[test]
    fn first_pass_creates_the_new_set_scaled_within_surge() {
        let d = deploy(3, "nginx:1", 1, 0);
        let plan = reconcile(&d, &[], &[], t(0));
        let rs = plan.create.expect("new set");
        let hash = pod_template_hash(&d.spec.as_ref().unwrap().template, None);
        assert_eq!(
            rs.metadata.name.as_deref(),
            Some(format!("web-{hash}").as_str())
        );
        assert_eq!(rs.spec.as_ref().unwrap().replicas, Some(3));
        assert_eq!(
            rs.spec
                .as_ref()
                .unwrap()
                .selector
                .match_labels
                .as_ref()
                .unwrap()[POD_TEMPLATE_HASH],
            hash
        );
        assert_eq!(rs.metadata.annotations.as_ref().unwrap()[REVISION], "1");
        let conditions = plan.status.conditions.unwrap();
        assert_eq!(
            conditions[1].reason.as_deref(),
            Some("NewReplicaSetCreated")
        );
        assert_eq!(conditions[0].status, "False");
    }

    /// A whole rolling update of 3 replicas with maxSurge 1, maxUnavailable 0, one pass at a
    /// time, the sets' pods becoming available between passes.
    #[test]
    fn rolling_update_steps() {
        let v1 = deploy(3, "nginx:1", 1, 0);
        let old = settled(new_replica_set(&v1, 3, 1, 1), 3, 0);
        let v2 = deploy(3, "nginx:2", 1, 0);
        let plan = reconcile(&v2, std::slice::from_ref(&old), &[], t(10));
        let new = plan.create.clone().expect("new set for the new template");
        assert_eq!(new.spec.as_ref().unwrap().replicas, Some(1), "surge by one");
        assert!(
            plan.scale.is_empty(),
            "no old pod goes before a new one is available"
        );
        assert_eq!(new.metadata.annotations.as_ref().unwrap()[REVISION], "2");

        let old_name = old.metadata.name.clone().unwrap();
        let new_name = new.metadata.name.clone().unwrap();
        let mut sets = vec![old.clone(), settled(new, 1, 10)];
        let mut steps = Vec::new();
        for pass in 0..10 {
            let plan = reconcile(&v2, &sets, &[], t(20 + pass));
            if plan.scale.is_empty() {
                break;
            }
            for rs in &mut sets {
                let name = rs.metadata.name.clone().unwrap();
                if let Some(&n) = plan.scale.get(&name) {
                    let created = rs
                        .metadata
                        .creation_timestamp
                        .as_ref()
                        .unwrap()
                        .0
                        .as_second()
                        - 1_800_000_000;
                    *rs = settled(rs.clone(), n, created);
                }
            }
            steps.push((replicas_of(&sets[0]), replicas_of(&sets[1])));
        }
        // Old shrinks by one as each new pod is available, never below 3 available in all.
        assert_eq!(steps, [(2, 1), (2, 2), (1, 2), (1, 3), (0, 3)]);
        let done = reconcile(&v2, &sets, &[], t(100));
        assert!(done.scale.is_empty() && done.create.is_none());
        let conditions = done.status.conditions.unwrap();
        assert_eq!(
            conditions[0].reason.as_deref(),
            Some("MinimumReplicasAvailable")
        );
        assert_eq!(
            conditions[1].reason.as_deref(),
            Some("NewReplicaSetAvailable")
        );
        assert_eq!(done.status.updated_replicas, Some(3));
        assert_eq!(done.status.observed_generation, Some(2));
        let _ = (old_name, new_name);
    }

    #[test]
    fn recreate_waits_for_old_pods_to_go() {
        let mut v2 = deploy(2, "nginx:2", 1, 0);
        v2.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        });
        let old = settled(new_replica_set(&deploy(2, "nginx:1", 1, 0), 2, 1, 0), 2, 0);
        let old_pod = crate::testutil::pod(
            "old-1",
            "1m",
            "web",
            Some(old.metadata.name.as_deref().unwrap()),
        );
        let mut old_pod = old_pod;
        old_pod.metadata.owner_references.as_mut().unwrap()[0].uid =
            old.metadata.uid.clone().unwrap();
        let plan = reconcile(
            &v2,
            std::slice::from_ref(&old),
            std::slice::from_ref(&old_pod),
            t(0),
        );
        assert_eq!(
            plan.scale.get(old.metadata.name.as_deref().unwrap()),
            Some(&0)
        );
        assert_eq!(plan.create.unwrap().spec.unwrap().replicas, Some(0));
        // Old pods gone: the new set gets every replica.
        let emptied = settled(old, 0, 0);
        let plan = reconcile(&v2, &[emptied], &[], t(5));
        assert_eq!(plan.create.unwrap().spec.unwrap().replicas, Some(2));
    }

    #[test]
    fn progress_deadline() {
        let d = deploy(3, "nginx:1", 1, 0);
        let stuck = settled(new_replica_set(&d, 3, 1, 1), 1, 0);
        let mut d = d;
        let first = reconcile(&d, std::slice::from_ref(&stuck), &[], t(0));
        assert_eq!(
            first.status.conditions.as_ref().unwrap()[1]
                .reason
                .as_deref(),
            Some("ReplicaSetUpdated")
        );
        d.status = Some(first.status);
        let later = reconcile(&d, std::slice::from_ref(&stuck), &[], t(300));
        assert_eq!(later.status.conditions.as_ref().unwrap()[1].status, "True");
        d.status = Some(later.status);
        let late = reconcile(&d, &[stuck], &[], t(700));
        let c = &late.status.conditions.unwrap()[1];
        assert_eq!(
            (c.status.as_str(), c.reason.as_deref()),
            ("False", Some("ProgressDeadlineExceeded"))
        );
    }

    proptest! {
        /// During a rolling update the planned sizes never exceed replicas + surge in total,
        /// and never plan away more available pods than maxUnavailable allows.
        #[test]
        fn rolling_bounds(replicas in 1i32..12, surge in 0i32..4, unavailable in 0i32..4,
                          old_size in 0i32..12, new_size in 0i32..12, new_avail in 0i32..12) {
            let new_avail = new_avail.min(new_size);
            let v2 = deploy(replicas, "nginx:2", surge, unavailable);
            let (s, u) = resolve_fenceposts(Some(&IntOrString::Int(surge)), Some(&IntOrString::Int(unavailable)), replicas);
            let old = settled(new_replica_set(&deploy(replicas, "nginx:1", surge, unavailable), old_size, 1, s), old_size, 0);
            let mut new = settled(new_replica_set(&v2, new_size, 2, s), new_size, 1);
            new.status.as_mut().unwrap().available_replicas = Some(new_avail);
            let plan = reconcile(&v2, &[old.clone(), new.clone()], &[], t(5));
            let size = |rs: &ReplicaSet| plan.scale.get(rs.metadata.name.as_deref().unwrap()).copied().unwrap_or(replicas_of(rs));
            let (o, n) = (size(&old), size(&new));
            prop_assert!(o >= 0 && n >= 0);
            prop_assert!(n <= replicas.max(new_size));
            if old_size + new_size <= replicas + s {
                prop_assert!(o + n <= replicas + s);
            }
            // Available pods kept: old pods kept (all available) plus new available.
            let kept = o.min(old_size) + new_avail;
            let before = old_size + new_avail;
            prop_assert!(kept >= (replicas - u).min(before));
        }
    }
}
