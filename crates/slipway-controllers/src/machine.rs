//! The Machine controller: a provider machine per Machine, its node followed in the workload
//! cluster, and a drained, deleted node and machine when the Machine goes.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{
    EvictParams, ListParams as KubeListParams, Patch as KubePatch, PatchParams as KubePatchParams,
};
use kube::{Resource, ResourceExt};
use serde_json::json;
use slipway_api::cluster::{Cluster, ConditionStatus};
use slipway_api::machine::{Machine, MachinePhase, MachineRole};
use slipway_bootstrap::{MachineConfig, Role, render_user_data};
use slipway_client::{Api, Patch, PatchParams};
use slipway_provider::{
    CLUSTER_TAG, CapacityType, MACHINE_TAG, MachinePhase as CloudPhase, MachineReason, MachineSpec,
    POOL_TAG, ProviderError, Tags,
};
use slipway_runtime::{Action, Controller, InformerConfig};

use crate::cluster::{Credentials, SecretCredentials};
use crate::events::{self, Kind};
use crate::ipam::{self, Allocation};
use crate::workload::{CachedNode, NodeView};
use crate::{
    Context, Error, INIT_ANNOTATION, MACHINE_FINALIZER, identity, now, set_condition,
    set_finalizer, write_status,
};

/// Annotation recording when the drain of a deleted Machine's node began.
pub const DRAIN_STARTED_ANNOTATION: &str = "slipway.dev/drain-started";
/// The etcd version stacked control planes run.
pub const ETCD_VERSION: &str = "3.5.21";

/// The Machine controller.
///
/// Node events of the workload clusters requeue the Machine of the same name, so a Ready
/// machine is not polled: its node's changes come to it, and so do the provider's
/// interruptions of its instance ([`Provider::watch_interruptions`]).
///
/// [`Provider::watch_interruptions`]: slipway_provider::Provider::watch_interruptions
pub fn controller(ctx: Arc<Context>) -> Controller<Machine> {
    let (triggers, keys) = tokio::sync::mpsc::unbounded_channel();
    // A machine the cloud interrupts is looked at at once: a Ready one is not polled, and
    // its Node going away is the only other news of it.
    let interrupted = triggers.clone();
    ctx.provider.watch_interruptions(Box::new(move |m| {
        if let Some((ns, name)) = m.spec.tags.get(MACHINE_TAG).and_then(|t| t.split_once('/')) {
            let _ = interrupted.send(slipway_runtime::ObjectKey::namespaced(ns, name));
        }
    }));
    ctx.workloads.set_triggers(triggers);
    let controller = Controller::new(
        "machine",
        Api::all(Arc::clone(&ctx.client)),
        InformerConfig::default(),
    )
    .with_index(crate::REMEDIATIONS_INDEX, crate::remediation_on_record);
    // The one cache of Machines in the process: the Cluster controller reads it too, and
    // follows its events (`Controller::subscribe`).
    let _ = ctx.machines.set(controller.store());
    controller
        .reconcile_on(keys)
        .with_metrics(ctx.metrics.clone())
        .with_config(ctx.controller_config())
}

/// After an error: the key's backoff.
pub fn error_policy(machine: &Arc<Machine>, error: &Error, _: &Arc<Context>) -> Action {
    tracing::warn!(machine = %machine.name_any(), namespace = ?machine.namespace(), %error, "machine reconcile failed");
    Action::backoff()
}

fn machine_tag(m: &Machine) -> String {
    format!("{}/{}", m.namespace().unwrap_or_default(), m.name_any())
}

/// Whether Cluster `ns/name` exists: from the Cluster controller's cache once it has listed
/// (a Machine is created by a reconcile of its Cluster, so the cache has the Cluster by
/// then), else from the API.
async fn cluster_exists(ctx: &Context, ns: &str, name: &str) -> Result<bool, Error> {
    if let Some(cache) = ctx.clusters.get().filter(|c| c.has_synced()) {
        return Ok(cache
            .get(&slipway_runtime::ObjectKey::namespaced(ns, name))
            .is_some());
    }
    let clusters: Api<Cluster> = Api::namespaced(Arc::clone(&ctx.client), ns);
    Ok(clusters.get_opt(name).await?.is_some())
}

/// Bring one Machine toward its spec.
pub async fn reconcile(machine: Arc<Machine>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = machine.namespace().unwrap_or_default();
    let name = machine.name_any();
    let api: Api<Machine> = Api::namespaced(Arc::clone(&ctx.client), &ns);
    if machine.meta().deletion_timestamp.is_some() {
        return delete(&machine, &ctx, &api).await;
    }
    if !machine.finalizers().iter().any(|f| f == MACHINE_FINALIZER) {
        set_finalizer(&api, &machine, MACHINE_FINALIZER, true).await?;
        return Ok(Action::await_change());
    }
    if !cluster_exists(&ctx, &ns, &machine.spec.cluster_name).await? {
        // The garbage collector deletes machines of a cluster that is gone.
        return Ok(Action::requeue(ctx.config.poll));
    }
    let id = identity(&ns, &machine.spec.cluster_name);
    let SecretCredentials::Found(credentials) =
        ctx.credentials(&ns, &machine.spec.cluster_name).await?
    else {
        return Ok(Action::requeue(ctx.config.poll));
    };
    let generation = machine.meta().generation;
    let mut status = machine.status.clone().unwrap_or_default();
    let mut conditions = status.conditions.take().unwrap_or_default();

    // The provider machine: by recorded id, else by tag (a create whose answer was lost),
    // else created with the Machine's uid as idempotency key.
    let uid = machine.uid().unwrap_or_default();
    let found = match status.provider_id.as_deref() {
        Some(pid) => match ctx.provider.get_machine(pid).await {
            Ok(m) => Some(m),
            Err(ProviderError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        },
        None => ctx
            .provider
            .list_machines(&Tags::from([(
                MACHINE_TAG.to_string(),
                machine_tag(&machine),
            )]))
            .await?
            .into_iter()
            .find(|m| m.idempotency_key == uid),
    };
    if found.is_none()
        && let Some(pid) = status.provider_id.take()
    {
        // It was created and the provider no longer has it at all (not even terminated):
        // the Machine still stands, so its instance is created again.
        events::record(
            &ctx,
            &*machine,
            Kind::Warning,
            "InstanceGone",
            format!("provider machine {pid} vanished: creating it again"),
        )
        .await;
        status.address = None;
    }
    let cloud = match found {
        Some(m) => m,
        None => {
            let region = subnet_region(&ctx, &machine.spec.zone);
            let address = match ipam::allocate(&ctx, &machine, &region).await? {
                Allocation::NoPool => None,
                Allocation::Held { address, pool } => {
                    set_condition(
                        &mut conditions,
                        "AddressAllocated",
                        true,
                        "Allocated",
                        format!("{address} from IPPool {pool}"),
                        generation,
                    );
                    Some(address)
                }
                Allocation::Exhausted(pools) => {
                    let was = conditions
                        .iter()
                        .find(|c| c.type_ == "AddressAllocated")
                        .and_then(|c| c.reason.clone());
                    if was.as_deref() != Some("IPPoolExhausted") {
                        events::record(
                            &ctx,
                            &*machine,
                            Kind::Warning,
                            "IPPoolExhausted",
                            format!("no free address in IPPool {}", pools.join(", ")),
                        )
                        .await;
                    }
                    status.phase = Some(MachinePhase::Pending);
                    set_condition(
                        &mut conditions,
                        "AddressAllocated",
                        false,
                        "IPPoolExhausted",
                        format!("no free address in IPPool {}", pools.join(", ")),
                        generation,
                    );
                    status.conditions = Some(conditions);
                    write_status(&api, &*machine, machine.status.as_ref(), status).await?;
                    return Ok(Action::requeue(ctx.config.poll));
                }
            };
            let mut spec = provider_spec(&ctx, &machine, &id, &credentials).await?;
            spec.private_ip = address;
            match ctx.provider.create_machine(&uid, spec.clone()).await {
                Ok(m) => m,
                Err(ProviderError::CapacityUnavailable { .. })
                    if spec.capacity_type == CapacityType::Spot
                        && machine.spec.fallback_to_on_demand == Some(true) =>
                {
                    // The pool's policy: no spot in this zone now, so on demand. The same
                    // idempotency key: a failed create recorded nothing.
                    events::record(
                        &ctx,
                        &*machine,
                        Kind::Warning,
                        "SpotUnavailable",
                        format!(
                            "no spot capacity for {} in {}: buying it on demand",
                            spec.machine_type, spec.zone
                        ),
                    )
                    .await;
                    spec.capacity_type = CapacityType::OnDemand;
                    ctx.provider.create_machine(&uid, spec).await?
                }
                Err(ProviderError::CapacityUnavailable { zone, machine_type }) => {
                    // Shown on the Machine (and so on its Cluster) while it waits.
                    status.phase = Some(MachinePhase::Pending);
                    set_condition(
                        &mut conditions,
                        "InfrastructureReady",
                        false,
                        "CapacityUnavailable",
                        format!(
                            "no {} capacity for {machine_type} in {zone}",
                            match spec.capacity_type {
                                CapacityType::Spot => "spot",
                                CapacityType::OnDemand => "on-demand",
                            }
                        ),
                        generation,
                    );
                    status.conditions = Some(conditions);
                    write_status(&api, &*machine, machine.status.as_ref(), status).await?;
                    return Ok(Action::requeue(ctx.config.poll));
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    status.provider_id = Some(cloud.id.clone());
    status.capacity_type = Some(match cloud.spec.capacity_type {
        CapacityType::Spot => slipway_api::cluster::CapacityType::Spot,
        CapacityType::OnDemand => slipway_api::cluster::CapacityType::OnDemand,
    });
    status.address = cloud.status.private_ip.map(|ip| ip.to_string());
    // A machine in a zone that is out is impaired, not gone: the zone may come back. It fails
    // only through the health check, like a node that went NotReady, so that a cluster's
    // machines in that zone are all seen impaired before any is judged (the share of
    // unhealthy machines that holds replacement back then counts them all).
    let zone_out = cloud.status.phase == CloudPhase::Failed
        && cloud.status.reason == Some(MachineReason::ZoneOutage);
    let ran = cloud.status.running_at.is_some();
    let (phase, infra_ready) = match cloud.status.phase {
        CloudPhase::Pending => (MachinePhase::Pending, false),
        CloudPhase::Provisioning => (MachinePhase::Provisioning, false),
        CloudPhase::Running => (MachinePhase::Running, true),
        CloudPhase::Failed if zone_out && ran => (MachinePhase::Running, false),
        CloudPhase::Failed if zone_out => (MachinePhase::Provisioning, false),
        CloudPhase::Failed | CloudPhase::Terminating | CloudPhase::Terminated => {
            (MachinePhase::Failed, false)
        }
    };
    status.phase = Some(phase);
    if phase != MachinePhase::Failed {
        // A machine the cloud brought back (a zone that recovered) is no longer failed.
        status.failure_reason = None;
        status.failure_message = None;
    }
    if phase == MachinePhase::Failed {
        let reason = match cloud.status.reason {
            Some(MachineReason::SpotInterruption) => "SpotInterruption",
            Some(MachineReason::ZoneOutage) => "ZoneOutage",
            Some(MachineReason::ProvisioningFailed) => "ProvisioningFailed",
            _ => "InstanceTerminated",
        };
        status.failure_reason = Some(reason.into());
        status.failure_message = cloud.status.message.clone();
    }
    if let Some(t) = cloud.status.running_at {
        status.running_since = Some(crate::api_time(t));
    }
    set_condition(
        &mut conditions,
        "InfrastructureReady",
        infra_ready,
        if infra_ready {
            "Running"
        } else if zone_out {
            "ZoneOutage"
        } else {
            phase.as_str()
        },
        if zone_out {
            format!("zone {} is out", machine.spec.zone)
        } else {
            String::new()
        },
        generation,
    );

    // The node, once the machine runs.
    let mut node_ready = false;
    // Whether the workload cluster answered about the node: an unreachable control plane says
    // nothing about the health of a worker, so it is not judged then.
    let mut observed = false;
    // Whether the answer came from the cluster's Node watch (then the node's changes will
    // come to this Machine, and only the health check's clock needs a timer).
    let mut watched = false;
    // When the health check would fail the node if nothing changes.
    let mut judged_at = None;
    if infra_ready {
        match node_state(&ctx, &id, &credentials, &name, &machine).await {
            Ok((Some(ready), from_watch)) => {
                observed = true;
                watched = from_watch;
                node_ready = ready;
                status.node_name = Some(name.clone());
                set_condition(
                    &mut conditions,
                    "NodeReady",
                    ready,
                    if ready {
                        "KubeletReady"
                    } else {
                        "KubeletNotReady"
                    },
                    "",
                    generation,
                );
            }
            Ok((None, from_watch)) => {
                observed = true;
                watched = from_watch;
                set_condition(
                    &mut conditions,
                    "NodeReady",
                    false,
                    "WaitingForNode",
                    "the node has not registered yet",
                    generation,
                );
            }
            Err(message) => {
                set_condition(
                    &mut conditions,
                    "NodeReady",
                    false,
                    "ClusterUnreachable",
                    message,
                    generation,
                );
            }
        }
    } else if zone_out && ran {
        // The node cannot be Ready (its workload cluster may not have noticed yet).
        observed = true;
        set_condition(
            &mut conditions,
            "NodeReady",
            false,
            "ZoneOutage",
            format!("zone {} is out", machine.spec.zone),
            generation,
        );
    } else {
        set_condition(
            &mut conditions,
            "NodeReady",
            false,
            "WaitingForInfrastructure",
            "",
            generation,
        );
    }
    if node_ready && status.first_node_ready_time.is_none() {
        status.first_node_ready_time = Some(crate::now());
    }
    // Health: a node that never joined, or stayed NotReady too long, fails the machine.
    if observed
        && !node_ready
        && let Some(running) = cloud.status.running_at
    {
        let since = conditions
            .iter()
            .find(|c| c.type_ == "NodeReady")
            .and_then(|c| c.last_transition_time.as_ref())
            .map_or(running.as_second(), |t| t.0.as_second());
        let observed = slipway_lifecycle::health::NodeObservation {
            running_since: running.as_second(),
            registered: status.node_name.is_some(),
            ready: false,
            was_ready: status.first_node_ready_time.is_some(),
            since,
        };
        judged_at = Some(slipway_lifecycle::health::judged_at(
            observed,
            ctx.config.health,
        ));
        if let Some((reason, message)) = slipway_lifecycle::health::unhealthy(
            observed,
            jiff::Timestamp::now().as_second(),
            ctx.config.health,
        ) {
            status.phase = Some(MachinePhase::Failed);
            status.failure_reason = Some(reason.to_string());
            status.failure_message = Some(message);
        }
    }
    set_condition(
        &mut conditions,
        "Ready",
        node_ready,
        if node_ready { "Ready" } else { "NotReady" },
        "",
        generation,
    );
    status.conditions = Some(conditions);
    status.observed_generation = generation;
    let was_failed = machine.status.as_ref().and_then(|s| s.phase) == Some(MachinePhase::Failed);
    if status.phase == Some(MachinePhase::Failed) && !was_failed {
        events::record(
            &ctx,
            &*machine,
            Kind::Warning,
            status.failure_reason.as_deref().unwrap_or("Failed"),
            status
                .failure_message
                .clone()
                .unwrap_or_else(|| "the machine failed".to_string()),
        )
        .await;
    }
    let failed = status.phase == Some(MachinePhase::Failed);
    let joining = status.node_name.is_none();
    write_status(&api, &*machine, machine.status.as_ref(), status).await?;
    // A Ready machine waits for a change (its Node's come through the Node watch; the
    // controller's resync is the safety net). A failed machine is still looked at: the cloud
    // may bring it back (a zone outage ends) before the Cluster controller replaces it, or
    // while replacing is held back.
    // A node that has not joined yet, watched through the Node watch: its registration comes
    // as an event, so it is looked at less often (the cloud may still take its machine away
    // meanwhile), and no later than the health check's deadline. A registered node that is
    // not Ready is polled: its machine's state may be changing at the provider.
    Ok(if node_ready {
        Action::await_change()
    } else if let (true, true, Some(at), false) = (watched, joining, judged_at, failed) {
        let wait = at.saturating_sub(jiff::Timestamp::now().as_second()).max(1);
        Action::requeue(
            Duration::from_secs(u64::try_from(wait).unwrap_or(1))
                .min(ctx.config.poll * 10)
                .min(ctx.config.resync),
        )
    } else {
        Action::requeue(ctx.config.poll)
    })
}

/// What to ask the provider for.
async fn provider_spec(
    ctx: &Context,
    machine: &Machine,
    id: &str,
    credentials: &Credentials,
) -> Result<MachineSpec, Error> {
    let tags = Tags::from([(CLUSTER_TAG.to_string(), id.to_string())]);
    let subnet = ctx
        .provider
        .list_subnets(&tags)
        .await?
        .into_iter()
        .find(|s| s.spec.zone == machine.spec.zone)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "no subnet of cluster {id} in zone {}",
                machine.spec.zone
            ))
        })?;
    let lb = ctx
        .provider
        .list_load_balancers(&tags)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Invalid(format!("cluster {id} has no load balancer yet")))?;
    let control_plane = machine.spec.role == MachineRole::ControlPlane;
    // Joins pin the CA the cluster's API presents behind its load balancer.
    let ca_cert_hash = slipway_bootstrap::ca_cert_hash(lb.ca_pem.as_deref().unwrap_or_default())
        .map_err(|e| Error::Invalid(format!("cluster {id}: load balancer CA: {e}")))?;
    let user_data = render_user_data(&MachineConfig {
        cluster: id.to_string(),
        node_name: machine.name_any(),
        role: if control_plane {
            Role::ControlPlane
        } else {
            Role::Worker
        },
        init: control_plane
            && machine
                .annotations()
                .get(INIT_ANNOTATION)
                .is_some_and(|v| v == "true"),
        kubernetes_version: machine.spec.version.clone(),
        control_plane_endpoint: format!("{}:{}", lb.dns_name, lb.spec.port),
        pod_subnet: "100.64.0.0/16".into(),
        service_subnet: "10.96.0.0/12".into(),
        pool: machine.spec.pool.clone(),
        node_labels: machine.spec.node_labels.clone().unwrap_or_default(),
        node_taints: machine
            .spec
            .node_taints
            .iter()
            .flatten()
            .map(|t| slipway_bootstrap::Taint {
                key: t.key.clone(),
                value: t.value.clone(),
                effect: t.effect.as_str().to_string(),
            })
            .collect(),
        admin_token_sha256: control_plane.then(|| credentials.admin_token_sha256.clone()),
        bootstrap_token: credentials.bootstrap_token.clone(),
        ca_cert_hash,
        etcd_version: control_plane.then(|| ETCD_VERSION.to_string()),
    })?;
    let mut machine_tags = tags;
    machine_tags.insert(MACHINE_TAG.to_string(), machine_tag(machine));
    machine_tags.insert(
        POOL_TAG.to_string(),
        machine
            .spec
            .pool
            .clone()
            .unwrap_or_else(|| "control-plane".to_string()),
    );
    Ok(MachineSpec {
        region: subnet_region(ctx, &machine.spec.zone),
        zone: machine.spec.zone.clone(),
        machine_type: machine.spec.machine_type.clone(),
        capacity_type: match machine.spec.capacity_type {
            Some(slipway_api::cluster::CapacityType::Spot) => CapacityType::Spot,
            _ => CapacityType::OnDemand,
        },
        subnet_id: subnet.id,
        image: format!("slipway-node-{}", machine.spec.version),
        kubelet_version: format!("v{}", machine.spec.version),
        tags: machine_tags,
        user_data: user_data.into(),
        private_ip: None,
    })
}

fn subnet_region(ctx: &Context, zone: &str) -> String {
    ctx.catalog
        .zone(zone)
        .map(|(r, _)| r.name.clone())
        .unwrap_or_default()
}

/// Whether the machine's node is Ready (`None`: not registered), and whether that came from
/// the cluster's Node watch; its labels and taints brought to the Machine's.
async fn node_state(
    ctx: &Context,
    id: &str,
    credentials: &Credentials,
    node_name: &str,
    machine: &Machine,
) -> Result<(Option<bool>, bool), String> {
    let client = ctx.workloads.get(id, &credentials.kubeconfig).await?;
    let nodes: kube::Api<Node> = kube::Api::all(client);
    let ns = machine.namespace().unwrap_or_default();
    let node = match ctx
        .workloads
        .node(id, &credentials.kubeconfig, &ns, node_name)
        .await?
    {
        CachedNode::Known(node) => (node, true),
        // Not watched yet, or the watch is failing: the API says how things stand.
        CachedNode::Unknown => (
            nodes
                .get_opt(node_name)
                .await
                .map_err(|e| e.to_string())?
                .map(|n| Arc::new(NodeView::of(&n))),
            false,
        ),
    };
    let (Some(node), watched) = node else {
        return Ok((None, node.1));
    };
    let ready = node.ready;
    // Labels and taints the pool manages, in place.
    let wanted = machine.spec.node_labels.clone().unwrap_or_default();
    let labels_ok = wanted
        .iter()
        .all(|(k, v)| node.label(k) == Some(v.as_str()));
    let taints: Vec<(String, Option<String>, String)> = node
        .taints
        .iter()
        .map(|t| (t.key.clone(), t.value.clone(), t.effect.clone()))
        .collect();
    let wanted_taints: Vec<(String, Option<String>, String)> = machine
        .spec
        .node_taints
        .iter()
        .flatten()
        .map(|t| {
            (
                t.key.clone(),
                t.value.clone(),
                t.effect.as_str().to_string(),
            )
        })
        .collect();
    let taints_ok = wanted_taints.iter().all(|t| taints.contains(t));
    if !labels_ok || !taints_ok {
        let mut merged: Vec<serde_json::Value> = node
            .taints
            .iter()
            .filter(|t| {
                !wanted_taints
                    .iter()
                    .any(|w| w.0 == t.key && w.2 == t.effect)
            })
            .map(|t| json!(t))
            .collect();
        merged.extend(
            wanted_taints
                .iter()
                .map(|(k, v, e)| json!({"key": k, "value": v, "effect": e})),
        );
        let patch = json!({"metadata": {"labels": wanted}, "spec": {"taints": merged}});
        nodes
            .patch(
                node_name,
                &KubePatchParams::default(),
                &KubePatch::Merge(&patch),
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok((Some(ready), watched))
}

/// Drain the node (unless the whole cluster goes), delete it, delete the provider machine,
/// wait until it is gone, then let the Machine go.
async fn delete(machine: &Machine, ctx: &Context, api: &Api<Machine>) -> Result<Action, Error> {
    if !machine.finalizers().iter().any(|f| f == MACHINE_FINALIZER) {
        return Ok(Action::await_change());
    }
    let ns = machine.namespace().unwrap_or_default();
    let name = machine.name_any();
    let id = identity(&ns, &machine.spec.cluster_name);
    let clusters: Api<Cluster> = Api::namespaced(Arc::clone(&ctx.client), &ns);
    let cluster = clusters.get_opt(&machine.spec.cluster_name).await?;
    let cluster_going = cluster
        .as_ref()
        .is_none_or(|c| c.meta().deletion_timestamp.is_some());
    let mut status = machine.status.clone().unwrap_or_default();
    if status.phase != Some(MachinePhase::Deleting) {
        status.phase = Some(MachinePhase::Deleting);
        write_status(api, machine, machine.status.as_ref(), status.clone()).await?;
    }

    let running = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "NodeReady" && c.status == ConditionStatus::True);
    if !cluster_going
        && running
        && machine.spec.role == MachineRole::Worker
        && let SecretCredentials::Found(credentials) =
            ctx.credentials(&ns, &machine.spec.cluster_name).await?
    {
        let timeout = cluster
            .as_ref()
            .and_then(|c| c.spec.upgrade.as_ref())
            .and_then(|u| u.drain_timeout.as_deref())
            .and_then(|d| slipway_api::checks::parse_duration(d).ok())
            .map_or(Duration::from_secs(1800), Duration::from_secs);
        let started = machine
            .annotations()
            .get(DRAIN_STARTED_ANNOTATION)
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        let Some(started) = started else {
            api.patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {DRAIN_STARTED_ANNOTATION: now().0.to_string()}}})),
            )
            .await?;
            return Ok(Action::await_change());
        };
        let elapsed = jiff::Timestamp::now().duration_since(started);
        let expired = elapsed.as_secs() >= i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX);
        if !expired {
            match drain(ctx, &id, &credentials, &name).await {
                Ok(true) => {}
                Ok(false) => return Ok(Action::requeue(ctx.config.poll)),
                Err(message) => {
                    tracing::info!(machine = %name, %message, "drain blocked; retrying until the drain timeout");
                    return Ok(Action::requeue(ctx.config.poll));
                }
            }
        } else {
            // Policy when the timeout expires: the machine goes anyway; whatever still
            // runs there is lost (its controllers recreate it elsewhere).
            tracing::warn!(machine = %name, timeout = ?timeout, "drain timed out; deleting the machine anyway");
        }
        if let Ok(client) = ctx.workloads.get(&id, &credentials.kubeconfig).await {
            let nodes: kube::Api<Node> = kube::Api::all(client);
            let _ = nodes.delete(&name, &Default::default()).await;
        }
    }

    // The provider machine, by recorded id and by tag (a create in flight may have landed).
    let uid = machine.uid().unwrap_or_default();
    let mut remaining = Vec::new();
    if let Some(pid) = status.provider_id.as_deref() {
        match ctx.provider.get_machine(pid).await {
            Ok(m) => remaining.push(m),
            Err(ProviderError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    for m in ctx
        .provider
        .list_machines(&Tags::from([(
            MACHINE_TAG.to_string(),
            machine_tag(machine),
        )]))
        .await?
    {
        if m.idempotency_key == uid && !remaining.iter().any(|r| r.id == m.id) {
            remaining.push(m);
        }
    }
    let mut waiting = false;
    for m in remaining {
        if m.status.phase == CloudPhase::Terminated {
            continue;
        }
        waiting = true;
        if m.status.phase != CloudPhase::Terminating {
            match ctx.provider.delete_machine(&m.id).await {
                Ok(_) | Err(ProviderError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    if waiting {
        return Ok(Action::requeue(ctx.config.poll));
    }
    // Its address goes back only now: the provider no longer has a machine holding it.
    ipam::release(ctx, &uid).await?;
    set_finalizer(api, machine, MACHINE_FINALIZER, false).await?;
    ctx.end_remediation(&machine_tag(machine));
    Ok(Action::await_change())
}

/// Cordon the node and evict its pods; true once nothing but mirror and DaemonSet pods is left.
async fn drain(
    ctx: &Context,
    id: &str,
    credentials: &Credentials,
    node_name: &str,
) -> Result<bool, String> {
    let client = ctx.workloads.get(id, &credentials.kubeconfig).await?;
    let nodes: kube::Api<Node> = kube::Api::all(client.clone());
    match nodes
        .patch(
            node_name,
            &KubePatchParams::default(),
            &KubePatch::Merge(&json!({"spec": {"unschedulable": true}})),
        )
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(true),
        Err(e) => return Err(e.to_string()),
    }
    let pods: kube::Api<Pod> = kube::Api::all(client.clone());
    let on_node = pods
        .list(&KubeListParams::default().fields(&format!("spec.nodeName={node_name}")))
        .await
        .map_err(|e| e.to_string())?;
    let mut left = 0;
    for pod in on_node.items {
        let mirror = pod
            .annotations()
            .contains_key("kubernetes.io/config.mirror");
        let daemon = pod.owner_references().iter().any(|o| o.kind == "DaemonSet");
        let done = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Succeeded" || p == "Failed");
        if mirror || daemon || done {
            continue;
        }
        left += 1;
        let ns = pod.namespace().unwrap_or_default();
        let api: kube::Api<Pod> = kube::Api::namespaced(client.clone(), &ns);
        match api.evict(&pod.name_any(), &EvictParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            // 429: a PodDisruptionBudget forbids it now; try again later.
            Err(kube::Error::Api(e)) if e.code == 429 => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(left == 0)
}
