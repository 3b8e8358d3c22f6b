//! The `pods/{name}/eviction` subresource (`policy/v1` Eviction), as kube-apiserver serves it:
//! a delete that honours PodDisruptionBudgets.
//!
//! An eviction finds the budgets in the pod's namespace whose selector matches the pod. More
//! than one is an error (upstream refuses too); none means a plain delete. With one, a pod that
//! cannot count towards the budget (Pending, Succeeded, Failed, or already being deleted) is
//! deleted without touching it; a Running pod that is not Ready is deleted without touching it
//! when the budget's `unhealthyPodEvictionPolicy` is `AlwaysAllow`, or (the default
//! `IfHealthyBudget`) when the budget currently has the healthy pods it needs. Otherwise the
//! budget must be current (`status.observedGeneration >= metadata.generation`) and allow a
//! disruption: `status.disruptionsAllowed` is decremented and the pod recorded in
//! `status.disruptedPods` with a compare-and-swap status update (retried on conflict), and the
//! pod is then deleted with a resourceVersion precondition, so a pod that changed in between
//! (became unready, was replaced) is re-checked. A budget that forbids it answers
//! `429 TooManyRequests` "Cannot evict pod as it would violate the pod's disruption budget.",
//! with a `DisruptionBudget` cause naming the budget. The PDB controller later recomputes the
//! status and clears `disruptedPods` entries for pods that are gone.

use serde_json::{Value, json};
use slipway_apimachinery::selector::LabelSelector;
use slipway_apimachinery::{ApiError, ResourceDef, StatusCause, meta};

use crate::{DeleteOptions, Deleted, ListParams, Propagation, Registry, Subresource, WriteOptions};

/// The message of the 429 an eviction gets when a budget forbids it (upstream's wording).
pub const VIOLATES_BUDGET: &str =
    "Cannot evict pod as it would violate the pod's disruption budget.";

/// The cause type upstream puts on that 429 (`policyv1.DisruptionBudgetCause`).
pub const DISRUPTION_BUDGET_CAUSE: &str = "DisruptionBudget";

/// The most pods a budget records as disrupted but not yet seen gone (upstream's
/// `MaxDisruptedPodSize`): beyond that, evictions are refused until the controller catches up.
pub const MAX_DISRUPTED_PODS: usize = 2000;

/// How often an eviction retries when the pod or the budget changed under it.
const MAX_ATTEMPTS: usize = 8;

/// An eviction request, decoded from its body.
#[derive(Debug, Clone, Default)]
pub struct Eviction {
    /// Dry run: check and answer as if evicted, change nothing.
    pub dry_run: bool,
    /// The `deleteOptions` of the eviction (preconditions, propagation).
    pub delete: DeleteOptions,
}

impl Eviction {
    /// Decode a `policy/v1` (or `v1beta1`) Eviction body for pod `name`: its kind must be
    /// Eviction, its `metadata.name` (when given) the pod's, and its `deleteOptions` valid.
    pub fn from_body(body: &Value, name: &str) -> Result<Self, ApiError> {
        if let Some(kind) = body.get("kind").and_then(Value::as_str)
            && kind != "Eviction"
        {
            return Err(ApiError::bad_request(format!(
                "expected an Eviction body, got kind {kind:?}"
            )));
        }
        if let Some(n) = meta::name(body)
            && !n.is_empty()
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "name in URL does not match name in Eviction object ({n} != {name})"
            )));
        }
        let opts = body.get("deleteOptions").filter(|o| !o.is_null());
        let text = |p: &str| {
            opts.and_then(|o| o.pointer(p))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let dry_run = opts
            .and_then(|o| o.get("dryRun"))
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|v| v == "All"));
        let propagation = match text("/propagationPolicy").as_deref() {
            None => None,
            Some("Background") => Some(Propagation::Background),
            Some("Foreground") => Some(Propagation::Foreground),
            Some("Orphan") => Some(Propagation::Orphan),
            Some(other) => {
                return Err(ApiError::unprocessable(format!(
                    "deleteOptions.propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
                )));
            }
        };
        Ok(Self {
            dry_run,
            delete: DeleteOptions {
                dry_run,
                precondition_uid: text("/preconditions/uid"),
                precondition_resource_version: text("/preconditions/resourceVersion"),
                propagation,
                fence: None,
            },
        })
    }
}

/// What the budget check decided for one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// Delete without touching any budget.
    Delete,
    /// Take one disruption from this budget, then delete.
    Decrement(Box<Value>),
}

impl Registry {
    /// Evict pod `name` in `ns` (see the module docs). Returns the `Status` kube-apiserver
    /// answers with (`Success`, served as 201).
    pub async fn evict(
        &self,
        pods: &ResourceDef,
        ns: &str,
        name: &str,
        eviction: &Eviction,
    ) -> Result<Value, ApiError> {
        if !pods.eviction {
            return Err(ApiError::path_not_found(&format!(
                "{}/eviction",
                pods.plural
            )));
        }
        let pdbs = self.resource("policy", "v1", "poddisruptionbudgets");
        for _ in 0..MAX_ATTEMPTS {
            let pod = self.get(pods, Some(ns), name).await?;
            if let Some(uid) = &eviction.delete.precondition_uid
                && meta::uid(&pod) != Some(uid.as_str())
            {
                return Err(ApiError::conflict(
                    &pods.plural,
                    &pods.group,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta::uid(&pod).unwrap_or_default()
                    ),
                ));
            }
            let verdict = match &pdbs {
                Some(pdbs) => self.budget_verdict(pdbs, ns, &pod).await?,
                None => Verdict::Delete,
            };
            if let (Verdict::Decrement(pdb), Some(pdbs)) = (&verdict, &pdbs) {
                match self
                    .take_disruption(pdbs, pdb, name, eviction.dry_run)
                    .await
                {
                    Ok(()) => {}
                    // The budget changed since it was read: decide again.
                    Err(e) if e.code == 409 => continue,
                    Err(e) => return Err(e),
                }
            }
            let mut delete = eviction.delete.clone();
            let own_precondition = delete.precondition_resource_version.is_none()
                && matches!(verdict, Verdict::Decrement(_));
            if own_precondition {
                delete.precondition_resource_version =
                    meta::resource_version(&pod).map(str::to_string);
            }
            match self.delete(pods, Some(ns), name, &delete).await {
                Ok(Deleted::Gone(_) | Deleted::Pending(_)) => {
                    return Ok(json!({
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Success",
                        "code": 201,
                    }));
                }
                // The pod changed after the budget was charged: check it again. The charge
                // stays in disruptedPods until the PDB controller sees the pod is still there.
                Err(e) if e.code == 409 && own_precondition => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ApiError::too_many_requests(
            format!("Cannot evict pod {name}: the pod or its disruption budget kept changing"),
            1,
        ))
    }

    /// Which budget (if any) this eviction must charge.
    async fn budget_verdict(
        &self,
        pdbs: &ResourceDef,
        ns: &str,
        pod: &Value,
    ) -> Result<Verdict, ApiError> {
        if !counts_towards_budget(pod) {
            return Ok(Verdict::Delete);
        }
        let list = self.list(pdbs, Some(ns), &ListParams::default()).await?;
        let labels = meta::labels(pod);
        let matching: Vec<&Value> = list
            .items
            .iter()
            .map(AsRef::as_ref)
            .filter(|pdb| budget_selects(pdb, labels))
            .collect();
        let pdb = match matching.as_slice() {
            [] => return Ok(Verdict::Delete),
            [one] => *one,
            _ => {
                return Err(ApiError::internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ));
            }
        };
        if !is_ready(pod) {
            let policy = pdb
                .pointer("/spec/unhealthyPodEvictionPolicy")
                .and_then(Value::as_str)
                .unwrap_or("IfHealthyBudget");
            let healthy = int(pdb, "/status/currentHealthy") >= int(pdb, "/status/desiredHealthy")
                && int(pdb, "/status/desiredHealthy") > 0;
            if policy == "AlwaysAllow" || healthy {
                return Ok(Verdict::Delete);
            }
        }
        check_budget(pdb)?;
        Ok(Verdict::Decrement(Box::new(pdb.clone())))
    }

    /// Decrement the budget's `disruptionsAllowed` and record the pod, at the revision read.
    async fn take_disruption(
        &self,
        pdbs: &ResourceDef,
        pdb: &Value,
        pod_name: &str,
        dry_run: bool,
    ) -> Result<(), ApiError> {
        let updated = charge(pdb, pod_name, &crate::ops::now());
        if dry_run {
            return Ok(());
        }
        let name = meta::name(pdb).unwrap_or_default();
        self.update(
            pdbs,
            meta::namespace(pdb),
            name,
            updated,
            Subresource::Status,
            &WriteOptions {
                field_manager: Some("eviction".into()),
                ..WriteOptions::default()
            },
        )
        .await
        .map(|_| ())
    }
}

/// Whether a pod's eviction must be paid for by a budget: upstream lets pods that are
/// Pending, Succeeded, Failed or already being deleted go without one.
fn counts_towards_budget(pod: &Value) -> bool {
    let phase = pod.pointer("/status/phase").and_then(Value::as_str);
    let deleting = meta::deletion_timestamp(pod).is_some();
    !deleting && !matches!(phase, Some("Pending" | "Succeeded" | "Failed") | None)
}

fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            c.get("type").and_then(Value::as_str) == Some("Ready")
                && c.get("status").and_then(Value::as_str) == Some("True")
        })
}

/// `policy/v1` semantics: an empty selector selects every pod of the namespace, a missing
/// one none.
fn budget_selects(pdb: &Value, labels: Option<&serde_json::Map<String, Value>>) -> bool {
    match pdb.pointer("/spec/selector") {
        None | Some(Value::Null) => false,
        Some(sel) => LabelSelector::from_json(sel).is_ok_and(|s| s.matches(labels)),
    }
}

fn int(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn too_many(detail: String) -> ApiError {
    let mut err = ApiError::too_many_requests(VIOLATES_BUDGET, 0);
    err.retry_after_seconds = None;
    err.causes.push(StatusCause {
        reason: DISRUPTION_BUDGET_CAUSE.into(),
        message: detail,
        field: String::new(),
    });
    err
}

/// Whether the budget allows one more disruption now (upstream's `checkAndDecrement` checks).
fn check_budget(pdb: &Value) -> Result<(), ApiError> {
    let name = meta::name(pdb).unwrap_or_default();
    let generation = int(pdb, "/metadata/generation");
    if int(pdb, "/status/observedGeneration") < generation {
        return Err(too_many(format!(
            "The disruption budget {name} is still being processed by the server."
        )));
    }
    let allowed = int(pdb, "/status/disruptionsAllowed");
    if allowed < 0 {
        return Err(ApiError::forbidden(format!(
            "poddisruptionbudgets.policy \"{name}\" is forbidden: pdb disruptions allowed is negative"
        )));
    }
    let disrupted = pdb
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object)
        .map_or(0, serde_json::Map::len);
    if disrupted > MAX_DISRUPTED_PODS {
        return Err(ApiError::forbidden(format!(
            "poddisruptionbudgets.policy \"{name}\" is forbidden: DisruptedPods map too big - too many evictions not confirmed by PDB controller"
        )));
    }
    if allowed == 0 {
        return Err(too_many(format!(
            "The disruption budget {name} needs {} healthy pods and has {} currently",
            int(pdb, "/status/desiredHealthy"),
            int(pdb, "/status/currentHealthy")
        )));
    }
    Ok(())
}

/// The budget with one disruption taken by `pod_name` at `now`: `disruptionsAllowed` one
/// lower, the pod in `disruptedPods`, and `DisruptionAllowed=False` when none is left.
fn charge(pdb: &Value, pod_name: &str, now: &str) -> Value {
    let mut out = pdb.clone();
    let allowed = int(pdb, "/status/disruptionsAllowed") - 1;
    let status = &mut out["status"];
    status["disruptionsAllowed"] = json!(allowed);
    if !status.get("disruptedPods").is_some_and(Value::is_object) {
        status["disruptedPods"] = json!({});
    }
    status["disruptedPods"][pod_name] = json!(now);
    if allowed == 0 {
        let generation = int(pdb, "/metadata/generation");
        let condition = json!({
            "type": "DisruptionAllowed",
            "status": "False",
            "reason": "InsufficientPods",
            "message": "",
            "observedGeneration": generation,
            "lastTransitionTime": now,
        });
        let conditions = status
            .get_mut("conditions")
            .and_then(Value::as_array_mut)
            .map(std::mem::take)
            .unwrap_or_default();
        let mut conditions: Vec<Value> = conditions
            .into_iter()
            .filter(|c| c.get("type").and_then(Value::as_str) != Some("DisruptionAllowed"))
            .collect();
        conditions.push(condition);
        status["conditions"] = Value::Array(conditions);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdb(allowed: i64, observed: i64, generation: i64) -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "default", "generation": generation},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"disruptionsAllowed": allowed, "observedGeneration": observed,
                       "desiredHealthy": 2, "currentHealthy": 2 + allowed, "expectedPods": 3},
        })
    }

    #[test]
    fn budget_checks_like_upstream() {
        assert!(check_budget(&pdb(1, 1, 1)).is_ok());
        let err = check_budget(&pdb(0, 1, 1)).unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (429, VIOLATES_BUDGET));
        assert_eq!(
            err.causes[0].message,
            "The disruption budget web needs 2 healthy pods and has 2 currently"
        );
        let stale = check_budget(&pdb(5, 1, 2)).unwrap_err();
        assert_eq!(stale.code, 429);
        assert!(stale.causes[0].message.contains("still being processed"));
        assert_eq!(check_budget(&pdb(-1, 1, 1)).unwrap_err().code, 403);
    }

    #[test]
    fn charging_records_the_pod() {
        let charged = charge(&pdb(1, 1, 1), "web-1", "2026-01-01T00:00:00Z");
        assert_eq!(charged["status"]["disruptionsAllowed"], 0);
        assert_eq!(
            charged["status"]["disruptedPods"]["web-1"],
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(charged["status"]["conditions"][0]["status"], "False");
        let twice = charge(&pdb(3, 1, 1), "web-2", "t");
        assert_eq!(twice["status"]["disruptionsAllowed"], 2);
        assert!(twice["status"].get("conditions").is_none());
    }

    #[test]
    fn which_pods_need_a_budget() {
        let pod = |phase: &str, deleting: bool| {
            let mut p = json!({"metadata": {"name": "p"}, "status": {"phase": phase}});
            if deleting {
                p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            }
            p
        };
        assert!(counts_towards_budget(&pod("Running", false)));
        assert!(!counts_towards_budget(&pod("Running", true)));
        for phase in ["Pending", "Succeeded", "Failed"] {
            assert!(!counts_towards_budget(&pod(phase, false)), "{phase}");
        }
        let labels = json!({"app": "web"});
        let labels = labels.as_object();
        assert!(budget_selects(&pdb(1, 1, 1), labels));
        let mut all = pdb(1, 1, 1);
        all["spec"]["selector"] = json!({});
        assert!(budget_selects(&all, labels));
        all["spec"]["selector"] = Value::Null;
        assert!(!budget_selects(&all, labels));
    }

    #[test]
    fn eviction_bodies() {
        let e = Eviction::from_body(
            &json!({"kind": "Eviction", "apiVersion": "policy/v1", "metadata": {"name": "p"},
                    "deleteOptions": {"dryRun": ["All"], "preconditions": {"uid": "u"}}}),
            "p",
        )
        .unwrap();
        assert!(e.dry_run && e.delete.dry_run);
        assert_eq!(e.delete.precondition_uid.as_deref(), Some("u"));
        assert_eq!(
            Eviction::from_body(&json!({"metadata": {"name": "q"}}), "p")
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            Eviction::from_body(&json!({"kind": "Pod"}), "p")
                .unwrap_err()
                .code,
            400
        );
    }
}
