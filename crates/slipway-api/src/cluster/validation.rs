//! Cluster validation on the typed spec and status: every rule the schema cannot express,
//! each error at the exact field path. Works on defaulted and undefaulted specs alike.

use std::collections::{BTreeSet, HashSet};

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use slipway_apimachinery::meta;
use slipway_apimachinery::{FieldError, FieldPath};

use super::defaults::DEFAULT_PROVIDER;
use super::types::{
    Addon, ClusterSpec, ClusterStatus, ControlPlane, Infrastructure, Maintenance, NodePool,
    UpgradePolicy, UpgradeStrategy,
};
use crate::checks;

const CONTROL_PLANE_REPLICAS: &[i32] = &[1, 3, 5];
const MAX_WINDOW_SECS: u64 = 24 * 3600;
const IMMUTABLE: &str = "field is immutable";

fn text(s: &str) -> Value {
    Value::String(s.to_string())
}

/// Every problem with `spec` (at `path`, normally `spec`).
pub fn validate_spec(spec: &ClusterSpec, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(class) = &spec.class
        && let Some(problem) = meta::check_dns1123_subdomain(class)
    {
        errs.push(FieldError::invalid(
            &path.child("class"),
            &text(class),
            problem,
        ));
    }
    validate_version(spec, path, &mut errs);
    validate_infrastructure(
        &spec.infrastructure,
        &path.child("infrastructure"),
        &mut errs,
    );
    if let Some(cp) = &spec.control_plane {
        validate_control_plane(cp, &path.child("controlPlane"), &mut errs);
    }
    if let Some(pools) = &spec.node_pools {
        validate_pools(
            pools,
            &spec.infrastructure,
            &path.child("nodePools"),
            &mut errs,
        );
    }
    if let Some(upgrade) = &spec.upgrade {
        validate_upgrade(upgrade, &path.child("upgrade"), &mut errs);
    }
    if let Some(maintenance) = &spec.maintenance {
        validate_maintenance(maintenance, &path.child("maintenance"), &mut errs);
    }
    if let Some(addons) = &spec.addons {
        validate_addons(addons, &path.child("addons"), &mut errs);
    }
    if let Some(tier) = &spec.tier
        && let Some(problem) = meta::check_dns1123_label(tier)
    {
        errs.push(FieldError::invalid(
            &path.child("tier"),
            &text(tier),
            problem,
        ));
    }
    if let Some(ttl) = &spec.ttl {
        checks::check_duration(&path.child("ttl"), ttl, None, &mut errs);
    }
    errs
}

fn validate_version(spec: &ClusterSpec, path: &FieldPath, errs: &mut Vec<FieldError>) {
    if let Some(version) = &spec.version
        && checks::parse_version(version).is_none()
    {
        let hint = if version.starts_with('v') {
            " without a leading 'v'"
        } else {
            ""
        };
        errs.push(FieldError::invalid(
            &path.child("version"),
            &text(version),
            format!("must be a Kubernetes version MAJOR.MINOR.PATCH{hint}, such as 1.33.4"),
        ));
    }
    if let Some(release) = &spec.release {
        if spec.version.is_some() {
            errs.push(FieldError::forbidden(
                &path.child("release"),
                "may not be set together with spec.version: a release pins the Kubernetes version",
            ));
        } else if checks::parse_version(release).is_none() {
            errs.push(FieldError::invalid(
                &path.child("release"),
                &text(release),
                "must be a platform release YEAR.MONTH.PATCH, such as 2026.11.0",
            ));
        }
    }
    if spec.version.is_none() && spec.release.is_none() && spec.class.is_none() {
        errs.push(FieldError::required(
            &path.child("version"),
            "one of spec.version or spec.release is required, unless spec.class provides a version",
        ));
    }
}

fn validate_infrastructure(infra: &Infrastructure, path: &FieldPath, errs: &mut Vec<FieldError>) {
    if let Some(provider) = &infra.provider
        && let Some(problem) = meta::check_dns1123_label(provider)
    {
        errs.push(FieldError::invalid(
            &path.child("provider"),
            &text(provider),
            problem,
        ));
    }
    let region = infra.region.as_str();
    let region_ok = if region.is_empty() {
        errs.push(FieldError::required(
            &path.child("region"),
            "the provider region, such as eu-west-1",
        ));
        false
    } else if let Some(problem) = meta::check_dns1123_label(region) {
        errs.push(FieldError::invalid(
            &path.child("region"),
            &text(region),
            problem,
        ));
        false
    } else {
        true
    };
    if let Some(zones) = &infra.zones {
        let mut seen = HashSet::new();
        for (i, zone) in zones.iter().enumerate() {
            let at = path.child("zones").index(i);
            if !seen.insert(zone.as_str()) {
                errs.push(FieldError::duplicate(&at, &text(zone)));
            } else if region_ok && let Some(problem) = zone_problem(zone, region) {
                errs.push(FieldError::invalid(&at, &text(zone), problem));
            }
        }
    }
}

/// A zone is its region's name followed by a lower-case letter or digits, e.g. `eu-west-1a`.
fn zone_problem(zone: &str, region: &str) -> Option<String> {
    let suffix_ok = zone.strip_prefix(region).is_some_and(|suffix| {
        !suffix.is_empty()
            && suffix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    (!suffix_ok).then(|| format!("must be a zone of region {region}: the region name followed by a letter, such as {region}a"))
}

fn validate_control_plane(cp: &ControlPlane, path: &FieldPath, errs: &mut Vec<FieldError>) {
    if let Some(replicas) = cp.replicas
        && !CONTROL_PLANE_REPLICAS.contains(&replicas)
    {
        errs.push(FieldError::not_supported(
            &path.child("replicas"),
            &Value::from(replicas),
            &["1", "3", "5"],
        ));
    }
    if let Some(machine_type) = &cp.machine_type {
        check_machine_type(machine_type, &path.child("machineType"), errs);
    }
}

fn check_machine_type(machine_type: &str, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let ok = !machine_type.is_empty()
        && machine_type.len() <= 63
        && machine_type
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if !ok {
        errs.push(FieldError::invalid(
            path,
            &text(machine_type),
            "must be a machine type name of at most 63 letters, digits, '.', '-' or '_', such as m5.large",
        ));
    }
}

fn validate_pools(
    pools: &[NodePool],
    infra: &Infrastructure,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    let mut names = HashSet::new();
    for (i, pool) in pools.iter().enumerate() {
        let at = path.index(i);
        if let Some(problem) = meta::check_dns1123_label(&pool.name) {
            errs.push(FieldError::invalid(
                &at.child("name"),
                &text(&pool.name),
                problem,
            ));
        } else if !names.insert(pool.name.as_str()) {
            errs.push(FieldError::duplicate(&at.child("name"), &text(&pool.name)));
        }
        if let Some(machine_type) = &pool.machine_type {
            check_machine_type(machine_type, &at.child("machineType"), errs);
        }
        if let Some(gpu) = &pool.gpu {
            if gpu.count < 1 {
                errs.push(FieldError::invalid(
                    &at.child("gpu").child("count"),
                    &Value::from(gpu.count),
                    "must be at least 1",
                ));
            }
            if gpu.type_.as_deref() == Some("") {
                errs.push(FieldError::invalid(
                    &at.child("gpu").child("type"),
                    &text(""),
                    "must not be empty when set",
                ));
            }
        }
        validate_pool_sizes(pool, &at, errs);
        if pool.fallback_to_on_demand == Some(true)
            && pool.capacity_type != Some(super::CapacityType::Spot)
        {
            errs.push(FieldError::invalid(
                &at.child("fallbackToOnDemand"),
                &Value::Bool(true),
                "only a spot pool (capacityType: spot) can fall back to on-demand",
            ));
        }
        if let Some(zones) = &pool.zones {
            let mut seen = HashSet::new();
            for (z, zone) in zones.iter().enumerate() {
                let zat = at.child("zones").index(z);
                if !seen.insert(zone.as_str()) {
                    errs.push(FieldError::duplicate(&zat, &text(zone)));
                } else if let Some(allowed) = infra.zones.as_ref().filter(|zs| !zs.is_empty()) {
                    if !allowed.contains(zone) {
                        let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
                        errs.push(FieldError::not_supported(&zat, &text(zone), &allowed));
                    }
                } else if !infra.region.is_empty()
                    && let Some(problem) = zone_problem(zone, &infra.region)
                {
                    errs.push(FieldError::invalid(&zat, &text(zone), problem));
                }
            }
        }
        if let Some(labels) = &pool.labels {
            checks::check_labels(&at.child("labels"), labels, errs);
        }
        if let Some(taints) = &pool.taints {
            let mut seen = HashSet::new();
            for (t, taint) in taints.iter().enumerate() {
                let tat = at.child("taints").index(t);
                if let Some(problem) = meta::check_qualified_name(&taint.key) {
                    errs.push(FieldError::invalid(
                        &tat.child("key"),
                        &text(&taint.key),
                        problem,
                    ));
                }
                if let Some(value) = &taint.value
                    && let Some(problem) = meta::check_label_value(value)
                {
                    errs.push(FieldError::invalid(
                        &tat.child("value"),
                        &text(value),
                        problem,
                    ));
                }
                if !seen.insert((taint.key.as_str(), taint.effect)) {
                    errs.push(FieldError::duplicate(
                        &tat,
                        &Value::String(format!("{}:{}", taint.key, taint.effect)),
                    ));
                }
            }
        }
    }
}

fn validate_pool_sizes(pool: &NodePool, at: &FieldPath, errs: &mut Vec<FieldError>) {
    let mut sizes_ok = true;
    for (field, value) in [
        ("replicas", pool.replicas),
        ("minReplicas", pool.min_replicas),
        ("maxReplicas", pool.max_replicas),
    ] {
        if let Some(n) = value
            && n < 0
        {
            errs.push(FieldError::invalid(
                &at.child(field),
                &Value::from(n),
                "must be greater than or equal to 0",
            ));
            sizes_ok = false;
        }
    }
    if !sizes_ok {
        return;
    }
    if let (Some(min), Some(max)) = (pool.min_replicas, pool.max_replicas)
        && min > max
    {
        errs.push(FieldError::invalid(
            &at.child("minReplicas"),
            &Value::from(min),
            format!("must be less than or equal to maxReplicas ({max})"),
        ));
        return;
    }
    let Some(replicas) = pool.replicas else {
        return;
    };
    if let Some(min) = pool.min_replicas
        && replicas < min
    {
        errs.push(FieldError::invalid(
            &at.child("replicas"),
            &Value::from(replicas),
            format!("must be greater than or equal to minReplicas ({min})"),
        ));
    }
    if let Some(max) = pool.max_replicas
        && replicas > max
    {
        errs.push(FieldError::invalid(
            &at.child("replicas"),
            &Value::from(replicas),
            format!("must be less than or equal to maxReplicas ({max})"),
        ));
    }
}

fn validate_upgrade(upgrade: &UpgradePolicy, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let surge_at = path.child("maxSurge");
    let unavailable_at = path.child("maxUnavailable");
    let surge_zero = upgrade
        .max_surge
        .as_ref()
        .and_then(|v| checks::int_or_percent(&surge_at, v, None, errs));
    let unavailable_zero = upgrade
        .max_unavailable
        .as_ref()
        .and_then(|v| checks::int_or_percent(&unavailable_at, v, Some(100), errs));
    let shown = || match &upgrade.max_unavailable {
        Some(IntOrString::Int(n)) => Value::from(*n),
        Some(IntOrString::String(s)) => text(s),
        None => Value::Null,
    };
    if upgrade.strategy == Some(UpgradeStrategy::InPlace) {
        if unavailable_zero == Some(true) {
            errs.push(FieldError::invalid(
                &unavailable_at,
                &shown(),
                "may not be 0 with strategy InPlace: machines are updated where they stand, one unavailable at a time",
            ));
        }
    } else if surge_zero == Some(true) && unavailable_zero == Some(true) {
        errs.push(FieldError::invalid(
            &unavailable_at,
            &shown(),
            "may not be 0 when maxSurge is 0",
        ));
    }
    if let Some(timeout) = &upgrade.drain_timeout {
        checks::check_duration(&path.child("drainTimeout"), timeout, None, errs);
    }
}

fn validate_maintenance(maintenance: &Maintenance, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let Some(window) = &maintenance.window else {
        return;
    };
    let path = path.child("window");
    if let Some(days) = &window.days {
        let mut seen = HashSet::new();
        for (i, day) in days.iter().enumerate() {
            if !seen.insert(*day) {
                errs.push(FieldError::duplicate(
                    &path.child("days").index(i),
                    &text(day.as_str()),
                ));
            }
        }
    }
    if let Some(problem) = checks::check_time_of_day(&window.start) {
        errs.push(FieldError::invalid(
            &path.child("start"),
            &text(&window.start),
            problem,
        ));
    }
    if let Some(duration) = &window.duration {
        checks::check_duration(
            &path.child("duration"),
            duration,
            Some(MAX_WINDOW_SECS),
            errs,
        );
    }
    if let Some(zone) = &window.time_zone
        && let Some(problem) = checks::check_time_zone(zone)
    {
        errs.push(FieldError::invalid(
            &path.child("timeZone"),
            &text(zone),
            problem,
        ));
    }
}

fn validate_addons(addons: &[Addon], path: &FieldPath, errs: &mut Vec<FieldError>) {
    let mut names = HashSet::new();
    for (i, addon) in addons.iter().enumerate() {
        let at = path.index(i);
        if let Some(problem) = meta::check_dns1123_label(&addon.name) {
            errs.push(FieldError::invalid(
                &at.child("name"),
                &text(&addon.name),
                problem,
            ));
        } else if !names.insert(addon.name.as_str()) {
            errs.push(FieldError::duplicate(&at.child("name"), &text(&addon.name)));
        }
        if addon.version.as_deref() == Some("") {
            errs.push(FieldError::invalid(
                &at.child("version"),
                &text(""),
                "must not be empty when set",
            ));
        }
    }
}

/// What may not change on update: the provider and region (the machines live there), and
/// the Kubernetes minor version may not go down (patch downgrades are how a bad patch is
/// rolled back, and are allowed).
pub fn validate_spec_update(
    new: &ClusterSpec,
    old: &ClusterSpec,
    path: &FieldPath,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let infra = path.child("infrastructure");
    let provider = |s: &ClusterSpec| {
        s.infrastructure
            .provider
            .clone()
            .unwrap_or_else(|| DEFAULT_PROVIDER.into())
    };
    if provider(new) != provider(old) {
        errs.push(FieldError::invalid(
            &infra.child("provider"),
            &text(&provider(new)),
            IMMUTABLE,
        ));
    }
    if new.infrastructure.region != old.infrastructure.region {
        errs.push(FieldError::invalid(
            &infra.child("region"),
            &text(&new.infrastructure.region),
            IMMUTABLE,
        ));
    }
    let parsed = |s: &ClusterSpec| s.version.as_deref().and_then(checks::parse_version);
    if let (Some(new_v), Some(old_v)) = (parsed(new), parsed(old))
        && (new_v.0, new_v.1) < (old_v.0, old_v.1)
    {
        let mut err = FieldError::forbidden(
            &path.child("version"),
            format!(
                "the Kubernetes minor version may not be lowered (from {}.{} to {}.{})",
                old_v.0, old_v.1, new_v.0, new_v.1
            ),
        );
        err.value = new.version.as_deref().map(text);
        errs.push(err);
    }
    errs
}

/// Every problem with `status` (at `path`, normally `status`).
pub fn validate_status(status: &ClusterStatus, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(conditions) = &status.conditions {
        let mut types = BTreeSet::new();
        for (i, c) in conditions.iter().enumerate() {
            let at = path.child("conditions").index(i).child("type");
            if c.type_.is_empty() {
                errs.push(FieldError::required(&at, "a condition type such as Ready"));
            } else if !types.insert(c.type_.as_str()) {
                errs.push(FieldError::duplicate(&at, &text(&c.type_)));
            }
            if let Some(g) = c.observed_generation
                && g < 0
            {
                errs.push(FieldError::invalid(
                    &path
                        .child("conditions")
                        .index(i)
                        .child("observedGeneration"),
                    &Value::from(g),
                    "must be greater than or equal to 0",
                ));
            }
        }
    }
    let non_negative = [
        ("observedGeneration", status.observed_generation),
        ("nodes", status.nodes.map(i64::from)),
        ("readyNodes", status.ready_nodes.map(i64::from)),
    ];
    for (field, value) in non_negative {
        if let Some(n) = value
            && n < 0
        {
            errs.push(FieldError::invalid(
                &path.child(field),
                &Value::from(n),
                "must be greater than or equal to 0",
            ));
        }
    }
    if let Some(cost) = status.cost_per_hour
        && !(cost >= 0.0 && cost.is_finite())
    {
        errs.push(FieldError::invalid(
            &path.child("costPerHour"),
            &Value::from(cost),
            "must be a non-negative number",
        ));
    }
    if let Some(pools) = &status.node_pools {
        let mut names = HashSet::new();
        for (i, pool) in pools.iter().enumerate() {
            let at = path.child("nodePools").index(i);
            if !names.insert(pool.name.as_str()) {
                errs.push(FieldError::duplicate(&at.child("name"), &text(&pool.name)));
            }
            for (field, value) in [
                ("replicas", pool.replicas),
                ("readyReplicas", pool.ready_replicas),
            ] {
                if let Some(n) = value
                    && n < 0
                {
                    errs.push(FieldError::invalid(
                        &at.child(field),
                        &Value::from(n),
                        "must be greater than or equal to 0",
                    ));
                }
            }
        }
    }
    errs
}
