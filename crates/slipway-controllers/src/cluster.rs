//! The Cluster controller: infrastructure, credentials, Machines and status of each Cluster.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use ipnet::Ipv4Net;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use serde_json::json;
use sha2::{Digest, Sha256};
use slipway_api::cluster::{Cluster, ClusterVersions, EndpointAccess, NodePoolStatus};
use slipway_api::machine::{
    CLUSTER_LABEL, Machine, MachinePhase, MachineRole, MachineSpec, POOL_LABEL, ROLE_LABEL,
};
use slipway_client::{Api, ListParams, Patch, PatchParams, PostParams};
use slipway_lifecycle::plan::Amount;
use slipway_lifecycle::{Desired, Group, Limits, Member, health, plan_group, resolve};
use slipway_provider::{
    CLUSTER_TAG, LoadBalancer, LoadBalancerScheme, LoadBalancerSpec, NetworkSpec, Subnet,
    SubnetSpec, Tags,
};
use slipway_runtime::{Action, Controller, InformerConfig};

use crate::events::{self, Kind};
use crate::expectations::Seen;
use crate::{
    CLUSTER_FINALIZER, Context, Error, INIT_ANNOTATION, MACHINE_FINALIZER, REMEDIATION_ANNOTATION,
    TEMPLATE_LABEL, delete_if_present, deleted, identity, is_true, set_condition, set_finalizer,
    write_status,
};

/// The Cluster controller, reconciling a Cluster when it or one of its Machines changes.
pub fn controller(
    ctx: Arc<Context>,
    machines: tokio::sync::mpsc::UnboundedReceiver<slipway_runtime::Event<Machine>>,
) -> Controller<Cluster> {
    let controller = Controller::new(
        "cluster",
        Api::all(Arc::clone(&ctx.client)),
        InformerConfig::default(),
    );
    let _ = ctx.clusters.set(controller.store());
    controller
        .owns_events(machines)
        .with_metrics(ctx.metrics.clone())
        .with_config(slipway_runtime::ControllerConfig {
            // Every result below asks for all the rechecks the Cluster still needs: the
            // not-Ready rechecks of a build-up do not run after it turned Ready (at 10,000
            // clusters they were about a third of the first idle minute).
            requeue_replaces: true,
            ..ctx.controller_config()
        })
}

/// After an error: the key's backoff.
pub fn error_policy(cluster: &Arc<Cluster>, error: &Error, _: &Arc<Context>) -> Action {
    tracing::warn!(cluster = %cluster.name_any(), namespace = ?cluster.namespace(), %error, "cluster reconcile failed");
    Action::backoff()
}

/// The Secret holding a cluster's kubeconfig (`value`), as Cluster API names it.
pub fn kubeconfig_secret_name(cluster: &str) -> String {
    format!("{cluster}-kubeconfig")
}

/// What a cluster's machines are bootstrapped with, kept in the kubeconfig Secret.
pub(crate) struct Credentials {
    pub kubeconfig: String,
    pub admin_token: String,
    pub admin_token_sha256: String,
    pub bootstrap_token: String,
}

impl Credentials {
    pub(crate) fn from_secret(secret: &Secret) -> Option<Self> {
        let data = secret.data.as_ref()?;
        let text = |k: &str| {
            data.get(k)
                .and_then(|b| String::from_utf8(b.0.clone()).ok())
        };
        let token = text("token")?;
        Some(Self {
            kubeconfig: text("value")?,
            admin_token_sha256: hex::encode(Sha256::digest(token.as_bytes())),
            admin_token: token,
            bootstrap_token: text("bootstrap-token")?,
        })
    }
}

/// What a cluster's `<name>-kubeconfig` Secret holds ([`Context::credentials`]).
pub(crate) enum SecretCredentials {
    Missing,
    /// It lacks `value`, `token` or `bootstrap-token`.
    Unreadable,
    Found(Arc<Credentials>),
}

/// Bring one Cluster toward its spec.
pub async fn reconcile(cluster: Arc<Cluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let clusters: Api<Cluster> = Api::namespaced(Arc::clone(&ctx.client), &ns);
    if cluster.meta().deletion_timestamp.is_some() {
        return delete(&cluster, &ctx).await;
    }
    if !cluster.finalizers().iter().any(|f| f == CLUSTER_FINALIZER) {
        set_finalizer(&clusters, &cluster, CLUSTER_FINALIZER, true).await?;
        return Ok(Action::await_change());
    }
    // A cluster with a TTL is deleted when it runs out.
    let mut ttl_left = None;
    if let Some(ttl) = cluster.spec.ttl.as_deref()
        && let Ok(secs) = slipway_api::checks::parse_duration(ttl)
        && let Some(created) = cluster.meta().creation_timestamp.as_ref()
    {
        let age = jiff::Timestamp::now().as_second() - created.0.as_second();
        let left = i64::try_from(secs).unwrap_or(i64::MAX).saturating_sub(age);
        if left <= 0 {
            tracing::info!(cluster = %name, namespace = %ns, ttl, "TTL expired; deleting the cluster");
            events::record(
                &ctx,
                &*cluster,
                Kind::Normal,
                "TTLExpired",
                format!("its TTL of {ttl} ran out: deleting the cluster"),
            )
            .await;
            delete_if_present(&clusters, &name).await?;
            return Ok(Action::await_change());
        }
        ttl_left = Some(std::time::Duration::from_secs(
            u64::try_from(left).unwrap_or(0),
        ));
    }
    let generation = cluster.meta().generation;
    let mut status = cluster.status.clone().unwrap_or_default();
    let mut conditions = status.conditions.take().unwrap_or_default();

    let desired = match resolve(&cluster.spec, &ctx.catalog) {
        Ok(d) => d,
        Err(problems) => {
            let message = problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            set_condition(
                &mut conditions,
                "Ready",
                false,
                "InvalidSpec",
                message,
                generation,
            );
            status.conditions = Some(conditions);
            status.observed_generation = generation;
            write_status(&clusters, &*cluster, cluster.status.as_ref(), status).await?;
            return Ok(until_ttl(
                Action::await_change(),
                ttl_left,
                ctx.config.resync,
            ));
        }
    };

    let id = identity(&ns, &name);
    let lb = ensure_infrastructure(&ctx, &id, &cluster, &desired).await?;
    ensure_credentials(&ctx, &cluster, &lb).await?;

    let machines_api: Api<Machine> = Api::namespaced(Arc::clone(&ctx.client), &ns);
    let Some(machines) = owned_machines(&ctx, &machines_api, &cluster).await? else {
        // The cache does not show this controller's last writes yet; their events requeue.
        return Ok(until_ttl(
            Action::requeue(ctx.config.poll),
            ttl_left,
            ctx.config.resync,
        ));
    };
    let uid = cluster.uid().unwrap_or_default();

    // Failed machines are replaced, unless so much of the cluster is unhealthy that replacing
    // would only churn (a zone outage): then the unhealthy ones stay until it recovers or a
    // person acts. Machines whose instance is gone for good are replaced regardless.
    let live = machines
        .iter()
        .map(|m| &**m)
        .filter(|m| m.meta().deletion_timestamp.is_none());
    let failure = |m: &Machine| {
        m.status
            .as_ref()
            .filter(|s| s.phase == Some(MachinePhase::Failed))
            .map(|s| s.failure_reason.clone())
    };
    let (gone, unhealthy): (Vec<&Machine>, Vec<&Machine>) = live
        .clone()
        .filter(|m| failure(m).is_some())
        .partition(|m| health::instance_gone(failure(m).flatten().as_deref()));
    // Impaired: a node that had registered and is not Ready now, without having failed its
    // health check yet (a zone outage is seen machine by machine; it counts them all).
    let impaired = live
        .clone()
        .filter(|m| {
            failure(m).is_none()
                && m.status.as_ref().is_some_and(|s| s.node_name.is_some())
                && !is_true(
                    m.status.as_ref().and_then(|s| s.conditions.as_ref()),
                    "NodeReady",
                )
        })
        .count();
    let total = live.count().max(1);
    let mut remediating = Vec::new();
    let unhealthy_count = unhealthy.len() + impaired;
    #[allow(clippy::cast_precision_loss)]
    let unhealthy_share = unhealthy_count as f64 / total as f64;
    let held = !unhealthy.is_empty() && unhealthy_share > ctx.config.max_unhealthy;
    // When a hold ends (the zone is back), unhealthy machines get a while to show that they
    // recovered before any is replaced: machines are seen recovering one by one.
    let remediation = cluster
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "RemediationAllowed"));
    // How long the settling has left (a hold that just ended starts it).
    let settle = ctx.config.remediation_settle;
    let settle_left = remediation
        .filter(|_| !held)
        .and_then(|c| match c.reason.as_deref() {
            Some("TooManyUnhealthy") => Some(settle),
            Some("Settling") => match c.last_transition_time.as_ref() {
                None => Some(settle),
                Some(t) => {
                    let elapsed = jiff::Timestamp::now().duration_since(t.0).as_secs();
                    let left = i64::try_from(settle.as_secs())
                        .unwrap_or(i64::MAX)
                        .saturating_sub(elapsed);
                    u64::try_from(left)
                        .ok()
                        .filter(|l| *l > 0)
                        .map(std::time::Duration::from_secs)
                }
            },
            _ => None,
        });
    let settling = settle_left.is_some();
    let replace: Vec<&Machine> = if held || settling {
        if condition_reason(&cluster, "RemediationAllowed") != Some("TooManyUnhealthy") {
            events::record(
                &ctx,
                &*cluster,
                Kind::Warning,
                "RemediationBlocked",
                format!(
                    "{unhealthy_count} of {total} machines unhealthy: not replacing them until fewer than {:.0}% are",
                    ctx.config.max_unhealthy * 100.0
                ),
            )
            .await;
        }
        gone
    } else {
        gone.into_iter().chain(unhealthy.iter().copied()).collect()
    };
    let mut capped = 0;
    for m in &replace {
        if !ctx.start_remediation(&format!("{ns}/{}", m.name_any())) {
            capped += 1;
            continue;
        }
        remediating.push(m.name_any());
        let why = m.status.as_ref().and_then(|s| s.failure_reason.clone());
        // Marked first, so that its slot is on record before it starts going.
        if !m.annotations().contains_key(REMEDIATION_ANNOTATION) {
            machines_api
                .patch(
                    &m.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({"metadata": {"annotations": {
                        REMEDIATION_ANNOTATION: why.as_deref().unwrap_or("Failed")
                    }}})),
                )
                .await?;
        }
        delete_machine(&machines_api, m).await?;
        events::record(
            &ctx,
            &*cluster,
            Kind::Warning,
            "ReplacingMachine",
            format!(
                "machine {} failed ({}): replacing it",
                m.name_any(),
                why.as_deref().unwrap_or("unknown")
            ),
        )
        .await;
        ctx.expectations.deleted(&uid, &m.name_any());
    }
    if held {
        set_condition(
            &mut conditions,
            "RemediationAllowed",
            false,
            "TooManyUnhealthy",
            format!(
                "{unhealthy_count} of {total} machines unhealthy (more than {:.0}%): not replacing them",
                ctx.config.max_unhealthy * 100.0
            ),
            generation,
        );
    } else if settling {
        set_condition(
            &mut conditions,
            "RemediationAllowed",
            true,
            "Settling",
            format!(
                "fewer than {:.0}% of the machines are unhealthy again: replacing the failed ones after {}s unless they recover",
                ctx.config.max_unhealthy * 100.0,
                ctx.config.remediation_settle.as_secs()
            ),
            generation,
        );
    } else if capped > 0 {
        set_condition(
            &mut conditions,
            "RemediationAllowed",
            false,
            "FleetRemediationLimit",
            format!(
                "{capped} failed machines wait: {} machines are being replaced fleet-wide",
                ctx.config.max_remediating
            ),
            generation,
        );
    } else {
        set_condition(
            &mut conditions,
            "RemediationAllowed",
            true,
            "Healthy",
            "",
            generation,
        );
    }

    let control_plane_up = machines.iter().any(|m| {
        m.spec.role == MachineRole::ControlPlane
            && is_true(
                m.status.as_ref().and_then(|s| s.conditions.as_ref()),
                "NodeReady",
            )
    });
    let mut converging = !remediating.is_empty() || (settling && !unhealthy.is_empty());
    for group in desired.groups() {
        let members: Vec<(&Machine, Member)> = machines
            .iter()
            .map(|m| &**m)
            .filter(|m| in_group(m, group))
            .map(|m| (m, member(m, &remediating)))
            .collect();
        let limits = match group.role {
            MachineRole::ControlPlane => Limits {
                max_surge: 1,
                max_unavailable: 0,
            },
            MachineRole::Worker => pool_limits(&cluster, group.replicas),
        };
        let plain: Vec<Member> = members.iter().map(|(_, m)| m.clone()).collect();
        let mut plan = plan_group(
            group.replicas,
            &group.zones,
            &group.template_hash,
            &plain,
            limits,
        );
        let mut init = false;
        if group.role == MachineRole::ControlPlane {
            // kubeadm: one machine initialises the cluster; the others join it one at a time
            // once its API answers.
            let pending = plain.iter().any(|m| !m.deleting && !m.healthy);
            if plain.iter().all(|m| m.deleting) && !control_plane_up {
                plan.create.truncate(1);
                init = !plan.create.is_empty() && plain.is_empty();
            } else if !control_plane_up || pending {
                plan.create.clear();
            } else {
                plan.create.truncate(1);
            }
        }
        converging |= !plan.is_empty();
        for zone in &plan.create {
            let created =
                create_machine(&machines_api, &cluster, &desired, group, zone, init).await?;
            ctx.expectations.created(&uid, &created);
        }
        for victim in &plan.delete {
            if let Some((m, _)) = members.iter().find(|(m, _)| &m.name_any() == victim) {
                delete_machine(&machines_api, m).await?;
                ctx.expectations.deleted(&uid, victim);
            }
        }
        // Labels and taints follow the pool in place.
        for (m, mem) in &members {
            if mem.deleting || mem.template_hash != group.template_hash {
                continue;
            }
            let labels = (!group.node_labels.is_empty()).then(|| group.node_labels.clone());
            let taints = (!group.node_taints.is_empty()).then(|| group.node_taints.clone());
            if m.spec.node_labels != labels || m.spec.node_taints != taints {
                machines_api
                    .patch(
                        &m.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(
                            json!({"spec": {"nodeLabels": labels, "nodeTaints": taints}}),
                        ),
                    )
                    .await?;
                converging = true;
            }
        }
    }

    // Status.
    let summary = summarize(&desired, &machines, &ctx);
    status.endpoint = Some(lb.endpoint());
    status.node_pools = Some(summary.pools.clone());
    status.nodes = Some(summary.nodes);
    status.ready_nodes = Some(summary.ready_nodes);
    status.cost_per_hour = Some(summary.cost);
    status.versions = Some(ClusterVersions {
        control_plane: summary.control_plane_ready.then(|| desired.version.clone()),
        nodes: summary.oldest_node_version.clone(),
        ..status.versions.clone().unwrap_or_default()
    });
    let cp = &desired.control_plane;
    set_condition(
        &mut conditions,
        "ControlPlaneReady",
        summary.control_plane_ready,
        if summary.control_plane_ready {
            "Ready"
        } else {
            "WaitingForControlPlane"
        },
        format!(
            "{} of {} control-plane machines ready",
            summary.control_plane_healthy, cp.replicas
        ),
        generation,
    );
    let pools_ready = summary.pools_ready;
    let waiting: Vec<String> = summary
        .pools
        .iter()
        .zip(&desired.pools)
        .filter(|(s, g)| {
            s.ready_replicas.unwrap_or(0) != i32::try_from(g.replicas).unwrap_or(i32::MAX)
                || s.replicas.unwrap_or(0) != s.ready_replicas.unwrap_or(0)
        })
        .map(|(s, g)| {
            format!(
                "{} {}/{}",
                g.name,
                s.ready_replicas.unwrap_or(0),
                g.replicas
            )
        })
        .collect();
    set_condition(
        &mut conditions,
        "NodePoolsReady",
        pools_ready,
        if pools_ready {
            "Ready"
        } else {
            "WaitingForNodes"
        },
        if pools_ready {
            String::new()
        } else {
            format!("ready/desired: {}", waiting.join(", "))
        },
        generation,
    );
    let ready = summary.control_plane_ready && pools_ready && !converging;
    // A machine that cannot get an address names the pool that ran out; one the cloud has
    // no capacity for names the zone and type.
    let blocked = |type_: &str, reason: &str| {
        machines
            .iter()
            .filter(|m| m.meta().deletion_timestamp.is_none())
            .flat_map(|m| m.status.iter().flat_map(|s| s.conditions.iter().flatten()))
            .find(|c| {
                c.type_ == type_
                    && c.status == slipway_api::cluster::ConditionStatus::False
                    && c.reason.as_deref() == Some(reason)
            })
            .map(|c| c.message.clone().unwrap_or_default())
    };
    let exhausted = blocked("AddressAllocated", "IPPoolExhausted");
    let no_capacity = blocked("InfrastructureReady", "CapacityUnavailable");
    let (reason, message) = if ready {
        ("Ready", String::new())
    } else if let Some(message) = exhausted {
        ("IPPoolExhausted", message)
    } else if let Some(message) = no_capacity {
        ("CapacityUnavailable", message)
    } else if !summary.control_plane_ready {
        (
            "WaitingForControlPlane",
            "the control plane is not ready yet".to_string(),
        )
    } else {
        (
            "WaitingForNodes",
            format!("node pools converging: {}", waiting.join(", ")),
        )
    };
    let was_ready = is_true(
        cluster.status.as_ref().and_then(|s| s.conditions.as_ref()),
        "Ready",
    );
    if ready != was_ready {
        let (kind, event) = if ready {
            (Kind::Normal, "ClusterReady")
        } else {
            (Kind::Warning, reason)
        };
        let text = if ready {
            format!(
                "control plane and every node pool are ready ({} nodes)",
                summary.ready_nodes
            )
        } else {
            message.clone()
        };
        // A cluster that was never Ready is not news; one that stops being Ready is.
        if ready
            || cluster
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some()
        {
            events::record(&ctx, &*cluster, kind, event, text).await;
        }
    }
    set_condition(&mut conditions, "Ready", ready, reason, message, generation);
    status.conditions = Some(conditions);
    status.observed_generation = generation;
    let changed = write_status(&clusters, &*cluster, cluster.status.as_ref(), status).await?;
    // Each result asks for every recheck the Cluster still needs: the controller runs with
    // `requeue_replaces`, so it replaces what an earlier reconcile asked for.
    let action = if ready {
        Action::await_change()
    } else if let Some(left) = settle_left {
        // Failed machines wait out what is left of the settling time: nothing else wakes
        // the cluster then.
        Action::requeue(left)
    } else if capped > 0 || changed {
        // Failed machines wait for a fleet-wide remediation slot, which another cluster's
        // machine gives back (no event of this cluster's says when); or still moving: look
        // again soon.
        Action::requeue(ctx.config.poll)
    } else {
        // Not Ready and nothing changed: what can change it comes as an event (its Machines'
        // status, each polled by the Machine controller while it is not Ready, or the
        // Cluster's own spec), so this is only a safety net. Polled at `poll`, a
        // 10,000-cluster build-up asked for more reconciles than two cores can do.
        Action::requeue(NOT_READY_RECHECK.min(ctx.config.resync))
    };
    Ok(until_ttl(action, ttl_left, ctx.config.resync))
}

/// `action`, or a requeue for when the Cluster's TTL runs out (`ttl_left`) if that comes
/// first (at most a resync away): whatever else a Cluster waits for, the result must ask for
/// its expiry, since it replaces the requeue an earlier reconcile asked for.
fn until_ttl(
    action: Action,
    ttl_left: Option<std::time::Duration>,
    resync: std::time::Duration,
) -> Action {
    match ttl_left {
        Some(left) if action.requeue_after().is_none_or(|d| d > left) => {
            Action::requeue(left.min(resync))
        }
        _ => action,
    }
}

/// How often a Cluster that is not Ready, and did not change in its last reconcile, is
/// looked at without an event.
const NOT_READY_RECHECK: std::time::Duration = std::time::Duration::from_secs(60);

/// The Machines `cluster` controls (owned by its uid: a Cluster recreated under the same name
/// does not adopt its predecessor's). Read from the controller's cache when it has one, and
/// `None` while that cache does not show every create and delete made for the cluster yet.
async fn owned_machines(
    ctx: &Context,
    api: &Api<Machine>,
    cluster: &Cluster,
) -> Result<Option<Vec<Arc<Machine>>>, Error> {
    let uid = cluster.uid().unwrap_or_default();
    if let Some(cache) = ctx.machines.get().filter(|c| c.has_synced()) {
        let machines = cache.controlled_by(&uid);
        let seen = |name: &str| match machines.iter().find(|m| m.name_any() == name) {
            None => Seen::Absent,
            Some(m) if m.meta().deletion_timestamp.is_some() => Seen::Deleting,
            Some(_) => Seen::Present,
        };
        return Ok(ctx.expectations.satisfied(&uid, seen).then_some(machines));
    }
    Ok(Some(
        api.list(&ListParams::default().labels(&format!("{CLUSTER_LABEL}={}", cluster.name_any())))
            .await?
            .items
            .into_iter()
            .filter(|m| owned_by(m, &uid))
            .map(Arc::new)
            .collect(),
    ))
}

/// The reason of condition `type_` in the cluster's recorded status.
fn condition_reason<'a>(cluster: &'a Cluster, type_: &str) -> Option<&'a str> {
    cluster
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)?
        .reason
        .as_deref()
}

fn owned_by(m: &Machine, uid: &str) -> bool {
    m.owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

fn in_group(m: &Machine, group: &Group) -> bool {
    match group.role {
        MachineRole::ControlPlane => m.spec.role == MachineRole::ControlPlane,
        MachineRole::Worker => {
            m.spec.role == MachineRole::Worker
                && m.spec.pool.as_deref() == Some(group.name.as_str())
        }
    }
}

fn member(m: &Machine, remediating: &[String]) -> Member {
    let status = m.status.as_ref();
    let name = m.name_any();
    Member {
        deleting: m.meta().deletion_timestamp.is_some() || remediating.contains(&name),
        healthy: is_true(status.and_then(|s| s.conditions.as_ref()), "NodeReady"),
        template_hash: m.labels().get(TEMPLATE_LABEL).cloned().unwrap_or_default(),
        zone: m.spec.zone.clone(),
        created: m
            .meta()
            .creation_timestamp
            .as_ref()
            .map_or(0, |t| u64::try_from(t.0.as_second()).unwrap_or(0)),
        name,
    }
}

fn amount(v: Option<&IntOrString>, default: usize) -> Amount {
    match v {
        Some(IntOrString::Int(n)) => Amount::Count(usize::try_from(*n).unwrap_or(0)),
        Some(IntOrString::String(s)) => s
            .trim_end_matches('%')
            .parse()
            .map_or(Amount::Count(default), Amount::Percent),
        None => Amount::Count(default),
    }
}

fn pool_limits(cluster: &Cluster, desired: usize) -> Limits {
    let upgrade = cluster.spec.upgrade.as_ref();
    Limits::resolve(
        desired,
        amount(upgrade.and_then(|u| u.max_surge.as_ref()), 1),
        amount(upgrade.and_then(|u| u.max_unavailable.as_ref()), 0),
    )
}

/// A Machine name: `<cluster>-<group>-<5 random characters>`, short enough to be a hostname.
fn machine_name(cluster: &str, group: &str) -> String {
    let suffix: String = uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .chars()
        .take(5)
        .collect();
    let mut prefix = format!("{cluster}-{group}");
    prefix.truncate(57);
    format!("{}-{suffix}", prefix.trim_end_matches('-'))
}

async fn create_machine(
    api: &Api<Machine>,
    cluster: &Cluster,
    desired: &Desired,
    group: &Group,
    zone: &str,
    init: bool,
) -> Result<String, Error> {
    let name = cluster.name_any();
    let mut labels = BTreeMap::from([
        (CLUSTER_LABEL.to_string(), name.clone()),
        (TEMPLATE_LABEL.to_string(), group.template_hash.clone()),
    ]);
    match group.role {
        MachineRole::ControlPlane => {
            labels.insert(ROLE_LABEL.to_string(), "control-plane".to_string());
        }
        MachineRole::Worker => {
            labels.insert(POOL_LABEL.to_string(), group.name.clone());
        }
    }
    let mut machine = Machine::new(
        &machine_name(&name, &group.name),
        MachineSpec {
            cluster_name: name.clone(),
            role: group.role,
            pool: (group.role == MachineRole::Worker).then(|| group.name.clone()),
            zone: zone.to_string(),
            machine_type: group.machine_type.clone(),
            capacity_type: Some(match group.capacity_type {
                slipway_provider::CapacityType::OnDemand => {
                    slipway_api::cluster::CapacityType::OnDemand
                }
                slipway_provider::CapacityType::Spot => slipway_api::cluster::CapacityType::Spot,
            }),
            fallback_to_on_demand: group.fallback_to_on_demand.then_some(true),
            version: desired.version.clone(),
            node_labels: (!group.node_labels.is_empty()).then(|| group.node_labels.clone()),
            node_taints: (!group.node_taints.is_empty()).then(|| group.node_taints.clone()),
        },
    );
    machine.metadata = ObjectMeta {
        name: machine.metadata.name.take(),
        namespace: cluster.namespace(),
        labels: Some(labels),
        annotations: init
            .then(|| BTreeMap::from([(INIT_ANNOTATION.to_string(), "true".to_string())])),
        owner_references: Some(vec![OwnerReference {
            api_version: Cluster::api_version(&()).into_owned(),
            kind: Cluster::kind(&()).into_owned(),
            name,
            uid: cluster.uid().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]),
        // Born with the Machine controller's finalizer: one write less per machine than
        // adding it afterwards (the Machine controller still adds it when missing).
        finalizers: Some(vec![MACHINE_FINALIZER.to_string()]),
        ..ObjectMeta::default()
    };
    let created = api.create(&PostParams::default(), &machine).await?;
    Ok(created.name_any())
}

async fn delete_machine(api: &Api<Machine>, m: &Machine) -> Result<(), Error> {
    delete_if_present(api, &m.name_any()).await.map(|_| ())
}

/// The cluster's network, a subnet per zone and the API server load balancer, found by tag or
/// created.
async fn ensure_infrastructure(
    ctx: &Context,
    id: &str,
    cluster: &Cluster,
    desired: &Desired,
) -> Result<LoadBalancer, Error> {
    let uid = cluster.uid().unwrap_or_default();
    let generation = cluster.meta().generation.unwrap_or_default();
    if let Some(lb) = ctx.verified_infrastructure(&uid, generation) {
        return Ok(lb);
    }
    let p = &ctx.provider;
    let tags = Tags::from([(CLUSTER_TAG.to_string(), id.to_string())]);
    // A /16 per cluster; clusters' networks are isolated, so sharing a range is harmless.
    let octet = Sha256::digest(id.as_bytes())[0];
    let network = match p.list_networks(&tags).await?.into_iter().next() {
        Some(n) => n,
        None => {
            p.create_network(NetworkSpec {
                name: format!("{id}-vpc"),
                region: desired.region.clone(),
                cidr: cidr(&format!("10.{octet}.0.0/16"))?,
                tags: tags.clone(),
            })
            .await?
        }
    };
    let mut subnets: HashMap<String, Subnet> = p
        .list_subnets(&tags)
        .await?
        .into_iter()
        .map(|s| (s.spec.zone.clone(), s))
        .collect();
    let region_zones: Vec<String> = ctx
        .catalog
        .region(&desired.region)
        .map(|r| r.zones.iter().map(|z| z.name.clone()).collect())
        .unwrap_or_default();
    for zone in &desired.zones {
        if subnets.contains_key(zone) {
            continue;
        }
        let index = region_zones.iter().position(|z| z == zone).unwrap_or(0);
        let subnet = p
            .create_subnet(SubnetSpec {
                name: format!("{id}-{zone}"),
                network_id: network.id.clone(),
                zone: zone.clone(),
                cidr: cidr(&format!("10.{octet}.{}.0/20", (index % 16) * 16))?,
                tags: tags.clone(),
            })
            .await?;
        subnets.insert(zone.clone(), subnet);
    }
    let lb = match p.list_load_balancers(&tags).await?.into_iter().next() {
        Some(lb) => lb,
        None => {
            let public = cluster.spec.control_plane.as_ref().and_then(|c| c.endpoint)
                == Some(EndpointAccess::Public);
            let mut subnet_ids: Vec<String> = subnets.values().map(|s| s.id.clone()).collect();
            subnet_ids.sort();
            p.create_load_balancer(LoadBalancerSpec {
                name: format!("{id}-apiserver"),
                region: desired.region.clone(),
                scheme: if public {
                    LoadBalancerScheme::InternetFacing
                } else {
                    LoadBalancerScheme::Internal
                },
                port: 6443,
                subnet_ids,
                tags,
            })
            .await?
        }
    };
    ctx.infrastructure_verified(&uid, generation, &lb);
    Ok(lb)
}

fn cidr(s: &str) -> Result<Ipv4Net, Error> {
    s.parse()
        .map_err(|e| Error::Invalid(format!("CIDR {s}: {e}")))
}

/// The admin token, the machines' bootstrap token and the kubeconfig, in the
/// `<name>-kubeconfig` Secret: created once, read back after.
async fn ensure_credentials(
    ctx: &Context,
    cluster: &Cluster,
    lb: &LoadBalancer,
) -> Result<Arc<Credentials>, Error> {
    let ns = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let secrets: Api<Secret> = Api::namespaced(Arc::clone(&ctx.client), &ns);
    let secret_name = kubeconfig_secret_name(&name);
    let credentials = match ctx.credentials(&ns, &name).await? {
        SecretCredentials::Found(c) => Some(c),
        SecretCredentials::Unreadable => {
            return Err(Error::Invalid(format!(
                "Secret {ns}/{secret_name} lacks value, token or bootstrap-token"
            )));
        }
        SecretCredentials::Missing => None,
    };
    if let Some(credentials) = credentials {
        // The load balancer's address or CA changed (a new listener, a rotated CA): the
        // kubeconfig follows it, with the same credentials.
        let endpoint = lb.endpoint();
        let ca = lb.ca_pem.as_deref().unwrap_or_default();
        let current = slipway_apiserver::pki::render_kubeconfig(
            &format!("{ns}-{name}"),
            &endpoint,
            ca,
            "admin",
            &credentials.admin_token,
        );
        if credentials.kubeconfig != current {
            tracing::info!(cluster = %name, namespace = %ns, %endpoint, "the API endpoint changed; rewriting the kubeconfig");
            let mut secret = secrets.get(&secret_name).await?;
            if let Some(data) = secret.data.as_mut() {
                data.insert("value".to_string(), ByteString(current.into_bytes()));
            }
            let stored = secrets
                .replace(&secret_name, &PostParams::default(), &secret)
                .await?;
            return Credentials::from_secret(&stored)
                .map(Arc::new)
                .ok_or_else(|| Error::Invalid("kubeconfig Secret unreadable".into()));
        }
        return Ok(credentials);
    }
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let raw = uuid::Uuid::new_v4().simple().to_string();
    let bootstrap_token = format!("{}.{}", &raw[..6], &raw[6..22]);
    let kubeconfig = slipway_apiserver::pki::render_kubeconfig(
        &format!("{ns}-{name}"),
        &lb.endpoint(),
        lb.ca_pem.as_deref().unwrap_or_default(),
        "admin",
        &token,
    );
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(secret_name),
            namespace: Some(ns),
            labels: Some(BTreeMap::from([(CLUSTER_LABEL.to_string(), name.clone())])),
            owner_references: Some(vec![OwnerReference {
                api_version: Cluster::api_version(&()).into_owned(),
                kind: Cluster::kind(&()).into_owned(),
                name,
                uid: cluster.uid().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        type_: Some("cluster.x-k8s.io/secret".to_string()),
        data: Some(BTreeMap::from([
            ("value".to_string(), ByteString(kubeconfig.into_bytes())),
            ("token".to_string(), ByteString(token.into_bytes())),
            (
                "bootstrap-token".to_string(),
                ByteString(bootstrap_token.into_bytes()),
            ),
        ])),
        ..Secret::default()
    };
    // A concurrent create (another replica, a retried reconcile) wins; read what it wrote.
    let stored = match secrets.create(&PostParams::default(), &secret).await {
        Ok(s) => s,
        Err(e) if e.is_already_exists() => {
            secrets
                .get(&kubeconfig_secret_name(&cluster.name_any()))
                .await?
        }
        Err(e) => return Err(e.into()),
    };
    Credentials::from_secret(&stored)
        .map(Arc::new)
        .ok_or_else(|| Error::Invalid("kubeconfig Secret unreadable".into()))
}

struct Summary {
    pools: Vec<NodePoolStatus>,
    nodes: i32,
    ready_nodes: i32,
    control_plane_healthy: usize,
    control_plane_ready: bool,
    pools_ready: bool,
    oldest_node_version: Option<String>,
    cost: f64,
}

fn summarize(desired: &Desired, machines: &[Arc<Machine>], ctx: &Context) -> Summary {
    let live: Vec<&Machine> = machines
        .iter()
        .map(|m| &**m)
        .filter(|m| m.meta().deletion_timestamp.is_none())
        .collect();
    let healthy = |m: &Machine| {
        is_true(
            m.status.as_ref().and_then(|s| s.conditions.as_ref()),
            "NodeReady",
        )
    };
    let cp = &desired.control_plane;
    let cp_members: Vec<&&Machine> = live.iter().filter(|m| in_group(m, cp)).collect();
    let control_plane_healthy = cp_members
        .iter()
        .filter(|m| healthy(m) && m.labels().get(TEMPLATE_LABEL) == Some(&cp.template_hash))
        .count();
    let mut pools = Vec::new();
    let mut pools_ready = true;
    let (mut nodes, mut ready_nodes) = (0, 0);
    for g in &desired.pools {
        let members: Vec<&&Machine> = live.iter().filter(|m| in_group(m, g)).collect();
        let ready = members.iter().filter(|m| healthy(m)).count();
        let current_ready = members
            .iter()
            .filter(|m| healthy(m) && m.labels().get(TEMPLATE_LABEL) == Some(&g.template_hash))
            .count();
        pools_ready &= current_ready == g.replicas && members.len() == g.replicas;
        let n = i32::try_from(members.len()).unwrap_or(i32::MAX);
        let r = i32::try_from(ready).unwrap_or(i32::MAX);
        nodes += n;
        ready_nodes += r;
        pools.push(NodePoolStatus {
            name: g.name.clone(),
            replicas: Some(n),
            ready_replicas: Some(r),
        });
    }
    let oldest_node_version = live
        .iter()
        .filter(|m| m.spec.role == MachineRole::Worker)
        .map(|m| m.spec.version.clone())
        .min_by_key(|v| slipway_api::checks::parse_version(v));
    let cost = slipway_lifecycle::cost(
        &ctx.catalog,
        live.iter().map(|m| {
            (
                m.spec.machine_type.as_str(),
                // What was bought (a spot machine may have fallen back to on-demand).
                match m
                    .status
                    .as_ref()
                    .and_then(|s| s.capacity_type)
                    .or(m.spec.capacity_type)
                {
                    Some(slipway_api::cluster::CapacityType::Spot) => {
                        slipway_provider::CapacityType::Spot
                    }
                    _ => slipway_provider::CapacityType::OnDemand,
                },
            )
        }),
    );
    Summary {
        pools,
        nodes,
        ready_nodes,
        control_plane_healthy,
        control_plane_ready: control_plane_healthy >= cp.replicas
            && cp_members.len() == cp.replicas,
        pools_ready,
        oldest_node_version,
        cost,
    }
}

/// Delete the Machines, then the infrastructure, then the Secret; then let the Cluster go.
async fn delete(cluster: &Cluster, ctx: &Context) -> Result<Action, Error> {
    let ns = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    if !cluster.finalizers().iter().any(|f| f == CLUSTER_FINALIZER) {
        return Ok(Action::await_change());
    }
    let machines_api: Api<Machine> = Api::namespaced(Arc::clone(&ctx.client), &ns);
    let uid = cluster.uid().unwrap_or_default();
    let Some(machines) = owned_machines(ctx, &machines_api, cluster).await? else {
        return Ok(Action::requeue(ctx.config.poll));
    };
    if !machines.is_empty() {
        for m in machines
            .iter()
            .filter(|m| m.meta().deletion_timestamp.is_none())
        {
            delete_machine(&machines_api, m).await?;
            ctx.expectations.deleted(&uid, &m.name_any());
        }
        return Ok(Action::requeue(ctx.config.poll));
    }
    let id = identity(&ns, &name);
    let tags = Tags::from([(CLUSTER_TAG.to_string(), id.clone())]);
    let p = &ctx.provider;
    for lb in p.list_load_balancers(&tags).await? {
        deleted(p.delete_load_balancer(&lb.id).await)?;
    }
    for subnet in p.list_subnets(&tags).await? {
        deleted(p.delete_subnet(&subnet.id).await)?;
    }
    for network in p.list_networks(&tags).await? {
        deleted(p.delete_network(&network.id).await)?;
    }
    ctx.workloads.forget(&id);
    ctx.expectations.forget(&uid);
    ctx.forget_infrastructure(&uid);
    let secrets: Api<Secret> = Api::namespaced(Arc::clone(&ctx.client), &ns);
    delete_if_present(&secrets, &kubeconfig_secret_name(&name)).await?;
    ctx.forget_credentials(&ns, &name);
    let clusters: Api<Cluster> = Api::namespaced(Arc::clone(&ctx.client), &ns);
    set_finalizer(&clusters, cluster, CLUSTER_FINALIZER, false).await?;
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn every_result_asks_for_the_ttl_expiry_when_it_comes_first() {
        let secs = Duration::from_secs;
        let resync = secs(600);
        let after = |a: Action| a.requeue_after();
        // No TTL: the action as it is.
        assert_eq!(
            until_ttl(Action::await_change(), None, resync),
            Action::await_change()
        );
        // Waiting for a change, or for longer than the TTL has left: the expiry.
        assert_eq!(
            after(until_ttl(Action::await_change(), Some(secs(30)), resync)),
            Some(secs(30))
        );
        assert_eq!(
            after(until_ttl(Action::requeue(secs(60)), Some(secs(30)), resync)),
            Some(secs(30))
        );
        // A sooner recheck stands; a far expiry is looked at after a resync at most.
        assert_eq!(
            after(until_ttl(Action::requeue(secs(10)), Some(secs(30)), resync)),
            Some(secs(10))
        );
        assert_eq!(
            after(until_ttl(Action::await_change(), Some(secs(7200)), resync)),
            Some(resync)
        );
    }
}
