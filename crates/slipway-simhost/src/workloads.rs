//! What runs inside a simulated workload cluster, as pure decisions over its objects: the
//! scheduler, the kubelet's pod lifecycle, the pod garbage collector, the ReplicaSet and
//! Deployment controllers and the disruption controller (PodDisruptionBudget status).
//!
//! Each function looks at a snapshot ([`Snapshot`]) and returns the writes that move the
//! cluster towards what its objects ask for ([`Write`]); the driver applies them with
//! optimistic concurrency and runs again on the next change, so a lost or conflicting write is
//! simply redone. Behaviour follows the real components where a client can see it: the
//! scheduler's `Unschedulable` message, `pod-template-hash`, rolling-update arithmetic,
//! `disruptionsAllowed`.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};
use slipway_apimachinery::selector::LabelSelector;

/// Everything a pass looks at.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub nodes: Vec<Value>,
    pub pods: Vec<Value>,
    pub replica_sets: Vec<Value>,
    pub deployments: Vec<Value>,
    pub pdbs: Vec<Value>,
    /// Now, RFC 3339.
    pub now: String,
}

/// The kinds a pass writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pod,
    ReplicaSet,
    Deployment,
    PodDisruptionBudget,
}

/// One write the driver makes.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Create {
        kind: Kind,
        namespace: String,
        object: Value,
    },
    /// Replace the object (resourceVersion inside is the precondition).
    Update { kind: Kind, object: Value },
    /// Replace the object's status.
    UpdateStatus { kind: Kind, object: Value },
    Delete {
        kind: Kind,
        namespace: String,
        name: String,
        uid: String,
    },
}

fn name(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or_default()
}

fn namespace(v: &Value) -> &str {
    v["metadata"]["namespace"].as_str().unwrap_or_default()
}

fn uid(v: &Value) -> &str {
    v["metadata"]["uid"].as_str().unwrap_or_default()
}

fn labels(v: &Value) -> Option<&Map<String, Value>> {
    v["metadata"]["labels"].as_object()
}

fn is_terminating(v: &Value) -> bool {
    v["metadata"]["deletionTimestamp"].is_string()
}

fn controller_uid(v: &Value) -> Option<&str> {
    v["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)
        .and_then(|r| r["uid"].as_str())
}

fn condition<'a>(v: &'a Value, type_: &str) -> Option<&'a Value> {
    v["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn condition_true(v: &Value, type_: &str) -> bool {
    condition(v, type_).is_some_and(|c| c["status"] == "True")
}

fn pod_phase(p: &Value) -> &str {
    p["status"]["phase"].as_str().unwrap_or("Pending")
}

/// A pod that still counts (not finished, not being deleted).
fn is_active(p: &Value) -> bool {
    !is_terminating(p) && !matches!(pod_phase(p), "Succeeded" | "Failed")
}

fn is_ready(p: &Value) -> bool {
    condition_true(p, "Ready")
}

fn node_ready(n: &Value) -> bool {
    condition_true(n, "Ready")
}

// ---------------------------------------------------------------------------------------------
// quantities

/// A Kubernetes quantity in base units (cores, bytes, counts): `100m`, `2`, `1.5`, `128Mi`,
/// `1G`, `1e3`.
pub fn parse_quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let suffixes: [(&str, f64); 13] = [
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("Ti", 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("Pi", 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("Ei", 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    for (suffix, factor) in suffixes {
        if let Some(number) = q.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    q.parse::<f64>().ok()
}

fn quantity_of(v: &Value) -> f64 {
    match v {
        Value::String(s) => parse_quantity(s).unwrap_or(0.0),
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// What a pod requests (the sum over its containers; an init container's larger request
/// wins, as the scheduler computes it).
pub fn pod_requests(pod: &Value) -> BTreeMap<String, f64> {
    let mut total: BTreeMap<String, f64> = BTreeMap::new();
    for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
        let requests = c["resources"]["requests"]
            .as_object()
            .or_else(|| c["resources"]["limits"].as_object());
        for (k, v) in requests.into_iter().flatten() {
            *total.entry(k.clone()).or_default() += quantity_of(v);
        }
    }
    for c in pod["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for (k, v) in c["resources"]["requests"].as_object().into_iter().flatten() {
            let e = total.entry(k.clone()).or_default();
            *e = e.max(quantity_of(v));
        }
    }
    total
}

// ---------------------------------------------------------------------------------------------
// scheduler

fn tolerates(pod: &Value, taint: &Value) -> bool {
    let effect = taint["effect"].as_str().unwrap_or_default();
    if effect == "PreferNoSchedule" {
        return true;
    }
    pod["spec"]["tolerations"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| {
            let key_ok = match t["key"].as_str() {
                None | Some("") => t["operator"] == "Exists",
                Some(k) => k == taint["key"].as_str().unwrap_or_default(),
            };
            let value_ok = t["operator"] == "Exists"
                || t["value"].as_str().unwrap_or_default()
                    == taint["value"].as_str().unwrap_or_default();
            let effect_ok = match t["effect"].as_str() {
                None | Some("") => true,
                Some(e) => e == effect,
            };
            key_ok && value_ok && effect_ok
        })
}

fn node_affinity_matches(pod: &Value, node_labels: Option<&Map<String, Value>>) -> bool {
    let label = |k: &str| node_labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let selector_ok = pod["spec"]["nodeSelector"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| label(k) == v.as_str());
    let terms = pod["spec"]["affinity"]["nodeAffinity"]
        ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        .as_array();
    let affinity_ok = match terms {
        None => true,
        Some(terms) if terms.is_empty() => true,
        Some(terms) => terms.iter().any(|term| {
            term["matchExpressions"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|e| {
                    let key = e["key"].as_str().unwrap_or_default();
                    let values: Vec<&str> = e["values"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    let have = label(key);
                    match e["operator"].as_str().unwrap_or_default() {
                        "In" => have.is_some_and(|h| values.contains(&h)),
                        "NotIn" => have.is_none_or(|h| !values.contains(&h)),
                        "Exists" => have.is_some(),
                        "DoesNotExist" => have.is_none(),
                        _ => false,
                    }
                })
        }),
    };
    selector_ok && affinity_ok
}

/// Where a pod can go, or why it cannot go anywhere.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    Node(String),
    /// The scheduler's message for `PodScheduled=False`, reason `Unschedulable`.
    Unschedulable(String),
}

/// What is already on each node.
struct NodeLoad {
    requested: BTreeMap<String, f64>,
    pods: usize,
}

fn loads(pods: &[Value]) -> HashMap<String, NodeLoad> {
    let mut out: HashMap<String, NodeLoad> = HashMap::new();
    for p in pods.iter().filter(|p| is_active(p)) {
        if let Some(node) = p["spec"]["nodeName"].as_str() {
            let load = out.entry(node.to_string()).or_insert(NodeLoad {
                requested: BTreeMap::new(),
                pods: 0,
            });
            load.pods += 1;
            for (k, v) in pod_requests(p) {
                *load.requested.entry(k).or_default() += v;
            }
        }
    }
    out
}

fn zone_of(node: &Value) -> &str {
    node["metadata"]["labels"]["topology.kubernetes.io/zone"]
        .as_str()
        .unwrap_or_default()
}

/// Choose a node for `pod` (filter, then score like the default profile: spread pods of the
/// same owner across zones and nodes, then prefer the least allocated node).
fn place(
    pod: &Value,
    nodes: &[Value],
    loads: &HashMap<String, NodeLoad>,
    pods: &[Value],
) -> Placement {
    let requests = pod_requests(pod);
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut feasible: Vec<&Value> = Vec::new();
    for node in nodes {
        let node_name = name(node);
        let load = loads.get(node_name);
        let mut why: Vec<String> = Vec::new();
        if node["spec"]["unschedulable"] == true {
            why.push("node(s) were unschedulable".into());
        } else if let Some(taint) = node["spec"]["taints"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| {
                matches!(t["effect"].as_str(), Some("NoSchedule" | "NoExecute"))
                    && !tolerates(pod, t)
            })
        {
            why.push(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint["key"].as_str().unwrap_or_default(),
                taint["value"].as_str().unwrap_or_default()
            ));
        } else if !node_affinity_matches(pod, labels(node)) {
            why.push("node(s) didn't match Pod's node affinity/selector".into());
        } else {
            let allocatable = node["status"]["allocatable"].as_object();
            let max_pods = allocatable
                .and_then(|a| a.get("pods"))
                .map_or(110.0, quantity_of);
            if load.map_or(0, |l| l.pods) as f64 + 1.0 > max_pods {
                why.push("Too many pods".into());
            }
            for (resource, wanted) in &requests {
                if *wanted <= 0.0 {
                    continue;
                }
                let have = allocatable
                    .and_then(|a| a.get(resource))
                    .map_or(0.0, quantity_of);
                let used = load
                    .and_then(|l| l.requested.get(resource))
                    .copied()
                    .unwrap_or(0.0);
                if used + wanted > have + 1e-9 {
                    why.push(format!("Insufficient {resource}"));
                }
            }
        }
        if why.is_empty() {
            feasible.push(node);
        }
        for w in why {
            *reasons.entry(w).or_default() += 1;
        }
    }
    if feasible.is_empty() {
        let total = nodes.len();
        let detail: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!(" {}.", detail.join(", "))
        };
        return Placement::Unschedulable(format!(
            "0/{total} nodes are available:{detail} preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling."
        ));
    }
    // Spread: pods of the same controller (or the same labels, without one) per zone and node.
    let owner = controller_uid(pod);
    let same = |p: &Value| match owner {
        Some(o) => controller_uid(p) == Some(o),
        None => labels(p).is_some() && labels(p) == labels(pod),
    };
    let node_zone: HashMap<&str, &str> = nodes.iter().map(|n| (name(n), zone_of(n))).collect();
    let mut per_zone: HashMap<&str, usize> = HashMap::new();
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for p in pods.iter().filter(|p| is_active(p) && same(p)) {
        if let Some(n) = p["spec"]["nodeName"].as_str() {
            *per_node.entry(n).or_default() += 1;
            if let Some(z) = node_zone.get(n) {
                *per_zone.entry(z).or_default() += 1;
            }
        }
    }
    let utilisation = |node: &Value| -> f64 {
        let alloc = node["status"]["allocatable"].as_object();
        let load = loads.get(name(node));
        ["cpu", "memory"]
            .iter()
            .map(|r| {
                let have = alloc.and_then(|a| a.get(*r)).map_or(0.0, quantity_of);
                let used = load
                    .and_then(|l| l.requested.get(*r))
                    .copied()
                    .unwrap_or(0.0)
                    + requests.get(*r).copied().unwrap_or(0.0);
                if have > 0.0 { used / have } else { 1.0 }
            })
            .sum()
    };
    let best = feasible.into_iter().min_by(|a, b| {
        let key = |n: &Value| {
            (
                per_zone.get(zone_of(n)).copied().unwrap_or(0),
                per_node.get(name(n)).copied().unwrap_or(0),
            )
        };
        key(a)
            .cmp(&key(b))
            .then(utilisation(a).total_cmp(&utilisation(b)))
            .then(name(a).cmp(name(b)))
    });
    match best {
        Some(n) => Placement::Node(name(n).to_string()),
        None => Placement::Unschedulable("0/0 nodes are available.".into()),
    }
}

/// Bind pending pods, one at a time against the load including earlier bindings of the pass;
/// report the ones that fit nowhere.
pub fn schedule(s: &Snapshot) -> Vec<Write> {
    let mut writes = Vec::new();
    let mut pods = s.pods.clone();
    let mut load = loads(&pods);
    for i in 0..pods.len() {
        let pod = &pods[i];
        if !is_active(pod) || pod["spec"]["nodeName"].is_string() {
            continue;
        }
        if pod["spec"]["schedulerName"]
            .as_str()
            .is_some_and(|n| n != "default-scheduler")
        {
            continue;
        }
        match place(pod, &s.nodes, &load, &pods) {
            Placement::Node(node) => {
                let mut bound = pod.clone();
                bound["spec"]["nodeName"] = json!(node);
                let entry = load.entry(node.clone()).or_insert(NodeLoad {
                    requested: BTreeMap::new(),
                    pods: 0,
                });
                entry.pods += 1;
                for (k, v) in pod_requests(&bound) {
                    *entry.requested.entry(k).or_default() += v;
                }
                pods[i] = bound.clone();
                writes.push(Write::Update {
                    kind: Kind::Pod,
                    object: bound,
                });
            }
            Placement::Unschedulable(message) => {
                let current = condition(pod, "PodScheduled");
                if current.is_some_and(|c| c["status"] == "False" && c["message"] == json!(message))
                {
                    continue;
                }
                let mut status = pod.clone();
                set_condition(
                    &mut status,
                    json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}),
                    &s.now,
                );
                status["status"]["phase"] = json!("Pending");
                writes.push(Write::UpdateStatus {
                    kind: Kind::Pod,
                    object: status,
                });
            }
        }
    }
    writes
}

fn set_condition(obj: &mut Value, mut cond: Value, now: &str) {
    let type_ = cond["type"].clone();
    let conditions = obj["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let previous = conditions.iter().find(|c| c["type"] == type_);
    let since = match previous {
        Some(p) if p["status"] == cond["status"] => p["lastTransitionTime"].clone(),
        _ => json!(now),
    };
    cond["lastTransitionTime"] = since;
    let mut out: Vec<Value> = conditions
        .into_iter()
        .filter(|c| c["type"] != type_)
        .collect();
    out.push(cond);
    if !obj["status"].is_object() {
        obj["status"] = json!({});
    }
    obj["status"]["conditions"] = Value::Array(out);
}

// ---------------------------------------------------------------------------------------------
// kubelet and pod garbage collection

/// The pod IP a kubelet would give: from the node's range, by a stable hash of the pod uid.
fn pod_ip(node: &Value, pod: &Value) -> String {
    let base = node["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .and_then(|a| a.parse::<std::net::Ipv4Addr>().ok())
        .map_or([10, 0, 0, 0], |ip| ip.octets());
    let h = uid(pod)
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    format!("100.{}.{}.{}", base[3], (h >> 8) % 256, h % 254 + 1)
}

/// Start pods bound to Ready nodes, mark pods on NotReady nodes not ready (and ready again
/// when the node comes back), and delete pods bound to nodes that no longer exist.
pub fn kubelet(s: &Snapshot) -> Vec<Write> {
    let nodes: HashMap<&str, &Value> = s.nodes.iter().map(|n| (name(n), n)).collect();
    let mut writes = Vec::new();
    for pod in &s.pods {
        let Some(node_name) = pod["spec"]["nodeName"].as_str() else {
            continue;
        };
        let Some(node) = nodes.get(node_name) else {
            // Pod garbage collection: the node is gone, so is the pod.
            writes.push(Write::Delete {
                kind: Kind::Pod,
                namespace: namespace(pod).to_string(),
                name: name(pod).to_string(),
                uid: uid(pod).to_string(),
            });
            continue;
        };
        if is_terminating(pod) || matches!(pod_phase(pod), "Succeeded" | "Failed") {
            continue;
        }
        let ready_node = node_ready(node);
        let running = pod_phase(pod) == "Running";
        if running && is_ready(pod) == ready_node {
            continue;
        }
        if !running && !ready_node {
            continue;
        }
        let mut p = pod.clone();
        if !running {
            let ip = pod_ip(node, pod);
            let host_ip = node["status"]["addresses"][0]["address"].clone();
            p["status"]["phase"] = json!("Running");
            p["status"]["podIP"] = json!(ip);
            p["status"]["podIPs"] = json!([{"ip": ip}]);
            p["status"]["hostIP"] = host_ip.clone();
            p["status"]["hostIPs"] = json!([{"ip": host_ip}]);
            p["status"]["startTime"] = json!(s.now);
            p["status"]["qosClass"] = json!(qos_class(pod));
            for t in ["PodReadyToStartContainers", "Initialized", "PodScheduled"] {
                set_condition(&mut p, json!({"type": t, "status": "True"}), &s.now);
            }
        }
        let ready = if ready_node { "True" } else { "False" };
        for t in ["ContainersReady", "Ready"] {
            set_condition(&mut p, json!({"type": t, "status": ready}), &s.now);
        }
        let statuses: Vec<Value> = pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                json!({
                    "name": c["name"],
                    "image": c["image"],
                    "imageID": format!("{}@sha256:{:064x}", c["image"].as_str().unwrap_or_default(), 0),
                    "containerID": format!("containerd://{}", uid(pod).replace('-', "")),
                    "ready": ready_node,
                    "started": true,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": p["status"]["startTime"]}},
                })
            })
            .collect();
        p["status"]["containerStatuses"] = Value::Array(statuses);
        writes.push(Write::UpdateStatus {
            kind: Kind::Pod,
            object: p,
        });
    }
    writes
}

fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let any = containers.iter().any(|c| {
        c["resources"]["requests"]
            .as_object()
            .is_some_and(|r| !r.is_empty())
            || c["resources"]["limits"]
                .as_object()
                .is_some_and(|r| !r.is_empty())
    });
    if !any {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        let limits = c["resources"]["limits"].as_object();
        ["cpu", "memory"].iter().all(|r| {
            let l = limits.and_then(|l| l.get(*r));
            let q = c["resources"]["requests"].get(*r).or(l);
            l.is_some() && q.map(quantity_of) == l.map(quantity_of)
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

// ---------------------------------------------------------------------------------------------
// ReplicaSet

fn owned_by<'a>(pods: &'a [Value], owner: &Value) -> Vec<&'a Value> {
    let owner_uid = uid(owner);
    pods.iter()
        .filter(|p| namespace(p) == namespace(owner) && controller_uid(p) == Some(owner_uid))
        .collect()
}

fn owner_ref(owner: &Value, kind: &str, api_version: &str) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": name(owner),
        "uid": uid(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

fn replicas_of(obj: &Value) -> i64 {
    obj["spec"]["replicas"].as_i64().unwrap_or(1)
}

/// Pods to create or delete so each ReplicaSet has `spec.replicas` active pods, and its status.
pub fn replica_sets(s: &Snapshot) -> Vec<Write> {
    let mut writes = Vec::new();
    for rs in &s.replica_sets {
        if is_terminating(rs) {
            continue;
        }
        let owned = owned_by(&s.pods, rs);
        let mut active: Vec<&Value> = owned.iter().copied().filter(|p| is_active(p)).collect();
        let want = replicas_of(rs).max(0) as usize;
        if active.len() < want {
            let template = &rs["spec"]["template"];
            for _ in active.len()..want {
                let mut pod = json!({
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "generateName": format!("{}-", name(rs)),
                        "namespace": namespace(rs),
                        "labels": template["metadata"]["labels"],
                        "ownerReferences": [owner_ref(rs, "ReplicaSet", "apps/v1")],
                    },
                    "spec": template["spec"],
                });
                if let Some(a) = template["metadata"]["annotations"].as_object() {
                    pod["metadata"]["annotations"] = Value::Object(a.clone());
                }
                writes.push(Write::Create {
                    kind: Kind::Pod,
                    namespace: namespace(rs).to_string(),
                    object: pod,
                });
            }
        } else if active.len() > want {
            // Delete the least useful first: unscheduled, then pending, then not ready, then
            // the newest.
            active.sort_by_key(|p| {
                (
                    p["spec"]["nodeName"].is_string(),
                    pod_phase(p) == "Running",
                    is_ready(p),
                    std::cmp::Reverse(
                        p["metadata"]["creationTimestamp"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    ),
                )
            });
            for p in &active[..active.len() - want] {
                writes.push(Write::Delete {
                    kind: Kind::Pod,
                    namespace: namespace(p).to_string(),
                    name: name(p).to_string(),
                    uid: uid(p).to_string(),
                });
            }
            active.truncate(active.len().min(want));
        }
        let counted: Vec<&Value> = owned.iter().copied().filter(|p| is_active(p)).collect();
        let ready = counted.iter().filter(|p| is_ready(p)).count();
        let selector = LabelSelector::from_json(&rs["spec"]["selector"]).ok();
        let fully_labeled = counted
            .iter()
            .filter(|p| selector.as_ref().is_none_or(|s| s.matches(labels(p))))
            .count();
        let status = json!({
            "replicas": counted.len(),
            "fullyLabeledReplicas": fully_labeled,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"]["generation"],
        });
        if !status_matches(&rs["status"], &status) {
            let mut updated = rs.clone();
            updated["status"] = status;
            writes.push(Write::UpdateStatus {
                kind: Kind::ReplicaSet,
                object: updated,
            });
        }
    }
    writes
}

/// True when every field of `want` equals the one in `have` (zero counts may be absent).
fn status_matches(have: &Value, want: &Value) -> bool {
    want.as_object().into_iter().flatten().all(|(k, v)| {
        let h = &have[k];
        h == v || (h.is_null() && v.as_i64() == Some(0))
    })
}

// ---------------------------------------------------------------------------------------------
// Deployment

/// A stable hash of a pod template, like the Deployment controller's `pod-template-hash`.
pub fn template_hash(template: &Value) -> String {
    let text = serde_json::to_string(template).unwrap_or_default();
    // FNV-1a, rendered in the controller's alphabet (no vowels, so no words).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut out = String::new();
    for _ in 0..10 {
        out.push(char::from(ALPHABET[(h % ALPHABET.len() as u64) as usize]));
        h /= ALPHABET.len() as u64;
    }
    out
}

/// An int-or-percent of `total`, rounded up or down.
fn int_or_percent(v: &Value, total: i64, round_up: bool, default: &str) -> i64 {
    let v = if v.is_null() {
        json!(default)
    } else {
        v.clone()
    };
    match &v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => match s.strip_suffix('%').and_then(|p| p.parse::<f64>().ok()) {
            Some(pct) => {
                let x = pct * total as f64 / 100.0;
                if round_up {
                    x.ceil() as i64
                } else {
                    x.floor() as i64
                }
            }
            None => s.parse().unwrap_or(0),
        },
        _ => 0,
    }
}

/// ReplicaSets for each Deployment's template, rolled with maxSurge/maxUnavailable, and the
/// Deployment's status.
pub fn deployments(s: &Snapshot) -> Vec<Write> {
    let mut writes = Vec::new();
    for d in &s.deployments {
        if is_terminating(d) {
            continue;
        }
        let desired = replicas_of(d).max(0);
        let mut template = d["spec"]["template"].clone();
        let hash = template_hash(&template);
        template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
        let owned: Vec<&Value> = s
            .replica_sets
            .iter()
            .filter(|rs| namespace(rs) == namespace(d) && controller_uid(rs) == Some(uid(d)))
            .collect();
        let new_rs = owned
            .iter()
            .find(|rs| rs["metadata"]["labels"]["pod-template-hash"] == json!(hash));
        let old: Vec<&&Value> = owned
            .iter()
            .filter(|rs| rs["metadata"]["labels"]["pod-template-hash"] != json!(hash))
            .collect();
        let recreate = d["spec"]["strategy"]["type"] == "Recreate";
        let rolling = &d["spec"]["strategy"]["rollingUpdate"];
        let mut surge = if recreate {
            0
        } else {
            int_or_percent(&rolling["maxSurge"], desired, true, "25%")
        };
        let mut unavailable = if recreate {
            desired
        } else {
            int_or_percent(&rolling["maxUnavailable"], desired, false, "25%")
        };
        if surge == 0 && unavailable == 0 {
            unavailable = 1;
        }
        surge = surge.max(0);
        let available = |rs: &Value| rs["status"]["availableReplicas"].as_i64().unwrap_or(0);
        let spec_total: i64 = owned.iter().map(|rs| replicas_of(rs)).sum();
        let old_spec: i64 = old.iter().map(|rs| replicas_of(rs)).sum();
        let Some(new_rs) = new_rs else {
            let mut selector = d["spec"]["selector"].clone();
            selector["matchLabels"]["pod-template-hash"] = json!(hash);
            let room = (desired + surge - spec_total).max(0);
            let start = if old.is_empty() {
                desired
            } else {
                desired.min(room)
            };
            let start = if recreate && old_spec > 0 { 0 } else { start };
            let rs = json!({
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": format!("{}-{hash}", name(d)),
                    "namespace": namespace(d),
                    "labels": template["metadata"]["labels"],
                    "annotations": {"deployment.kubernetes.io/revision": (old.len() + 1).to_string(), "deployment.kubernetes.io/desired-replicas": desired.to_string()},
                    "ownerReferences": [owner_ref(d, "Deployment", "apps/v1")],
                },
                "spec": {"replicas": start, "selector": selector, "template": template},
            });
            writes.push(Write::Create {
                kind: Kind::ReplicaSet,
                namespace: namespace(d).to_string(),
                object: rs,
            });
            continue;
        };
        // Scale the new ReplicaSet up within the surge.
        let new_spec = replicas_of(new_rs);
        let target_new = if new_spec > desired {
            desired
        } else if recreate {
            if old.iter().all(|rs| {
                replicas_of(rs) == 0 && rs["status"]["replicas"].as_i64().unwrap_or(0) == 0
            }) {
                desired
            } else {
                0
            }
        } else {
            (new_spec + (desired + surge - spec_total).max(0)).min(desired)
        };
        if target_new != new_spec {
            let mut rs = (*new_rs).clone();
            rs["spec"]["replicas"] = json!(target_new);
            writes.push(Write::Update {
                kind: Kind::ReplicaSet,
                object: rs,
            });
        }
        // Scale old ReplicaSets down, keeping at least desired - maxUnavailable available.
        let total_available: i64 = owned.iter().map(|rs| available(rs)).sum();
        let min_available = desired - unavailable;
        let mut can_remove = (total_available - min_available).max(0);
        let mut olds: Vec<&&&Value> = old.iter().collect();
        olds.sort_by_key(|rs| {
            rs["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        });
        for rs in olds {
            let spec = replicas_of(rs);
            if spec == 0 {
                continue;
            }
            // Replicas that are not available can always go.
            let unavailable_here = (spec - available(rs)).max(0);
            let remove = if recreate {
                spec
            } else {
                (unavailable_here + can_remove).min(spec)
            };
            can_remove -= (remove - unavailable_here).max(0);
            if remove > 0 {
                let mut updated = (**rs).clone();
                updated["spec"]["replicas"] = json!(spec - remove);
                writes.push(Write::Update {
                    kind: Kind::ReplicaSet,
                    object: updated,
                });
            }
        }
        // Status.
        let replicas: i64 = owned
            .iter()
            .map(|rs| rs["status"]["replicas"].as_i64().unwrap_or(0))
            .sum();
        let ready: i64 = owned
            .iter()
            .map(|rs| rs["status"]["readyReplicas"].as_i64().unwrap_or(0))
            .sum();
        let updated_replicas = new_rs["status"]["replicas"].as_i64().unwrap_or(0);
        let complete = updated_replicas == desired
            && replicas == desired
            && available(new_rs) == desired
            && new_rs["status"]["observedGeneration"] == new_rs["metadata"]["generation"];
        let mut status = json!({
            "observedGeneration": d["metadata"]["generation"],
            "replicas": replicas,
            "updatedReplicas": updated_replicas,
            "readyReplicas": ready,
            "availableReplicas": total_available,
            "unavailableReplicas": (desired - total_available).max(0),
        });
        let mut updated = d.clone();
        let available_ok = total_available >= min_available;
        set_condition(
            &mut updated,
            json!({
                "type": "Available",
                "status": if available_ok { "True" } else { "False" },
                "reason": if available_ok { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
                "message": if available_ok { "Deployment has minimum availability." } else { "Deployment does not have minimum availability." },
                "lastUpdateTime": s.now,
            }),
            &s.now,
        );
        set_condition(
            &mut updated,
            json!({
                "type": "Progressing",
                "status": "True",
                "reason": if complete { "NewReplicaSetAvailable" } else { "ReplicaSetUpdated" },
                "message": if complete {
                    format!("ReplicaSet \"{}\" has successfully progressed.", name(new_rs))
                } else {
                    format!("ReplicaSet \"{}\" is progressing.", name(new_rs))
                },
                "lastUpdateTime": s.now,
            }),
            &s.now,
        );
        status["conditions"] = updated["status"]["conditions"].clone();
        if !status_matches_ignoring_times(&d["status"], &status) {
            updated["status"] = status;
            writes.push(Write::UpdateStatus {
                kind: Kind::Deployment,
                object: updated,
            });
        }
    }
    writes
}

fn strip_times(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(cs) = v["conditions"].as_array_mut() {
        for c in cs {
            if let Some(o) = c.as_object_mut() {
                o.remove("lastUpdateTime");
                o.remove("lastTransitionTime");
                o.remove("lastProbeTime");
            }
        }
    }
    v
}

fn status_matches_ignoring_times(have: &Value, want: &Value) -> bool {
    status_matches(&strip_times(have), &strip_times(want))
}

// ---------------------------------------------------------------------------------------------
// PodDisruptionBudget

/// Each budget's status, as the disruption controller computes it.
pub fn disruption_budgets(s: &Snapshot) -> Vec<Write> {
    let mut writes = Vec::new();
    for pdb in &s.pdbs {
        let Ok(selector) = LabelSelector::from_json(&pdb["spec"]["selector"]) else {
            continue;
        };
        let matching: Vec<&Value> = s
            .pods
            .iter()
            .filter(|p| {
                namespace(p) == namespace(pdb) && is_active(p) && selector.matches(labels(p))
            })
            .collect();
        let expected = matching.len() as i64;
        let healthy = matching.iter().filter(|p| is_ready(p)).count() as i64;
        let desired_healthy = if !pdb["spec"]["minAvailable"].is_null() {
            int_or_percent(&pdb["spec"]["minAvailable"], expected, true, "0")
        } else if !pdb["spec"]["maxUnavailable"].is_null() {
            (expected - int_or_percent(&pdb["spec"]["maxUnavailable"], expected, true, "0")).max(0)
        } else {
            expected
        };
        let allowed = (healthy - desired_healthy).max(0);
        let mut updated = pdb.clone();
        let ok = allowed > 0;
        set_condition(
            &mut updated,
            json!({
                "type": "DisruptionAllowed",
                "status": if ok { "True" } else { "False" },
                "reason": if ok { "SufficientPods" } else { "InsufficientPods" },
                "message": "",
                "observedGeneration": pdb["metadata"]["generation"],
            }),
            &s.now,
        );
        let mut status = json!({
            "observedGeneration": pdb["metadata"]["generation"],
            "expectedPods": expected,
            "currentHealthy": healthy,
            "desiredHealthy": desired_healthy,
            "disruptionsAllowed": allowed,
        });
        status["conditions"] = updated["status"]["conditions"].clone();
        // Evictions record the pods they are about to delete; those are kept until gone.
        if let Some(disrupted) = pdb["status"]["disruptedPods"].as_object() {
            let still: Map<String, Value> = disrupted
                .iter()
                .filter(|(pod, _)| matching.iter().any(|p| name(p) == pod.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if !still.is_empty() {
                status["disruptedPods"] = Value::Object(still);
            }
        }
        let mut have = strip_times(&pdb["status"]);
        if let Some(o) = have.as_object_mut()
            && status.get("disruptedPods").is_none()
        {
            o.remove("disruptedPods");
        }
        if have != strip_times(&status) {
            updated["status"] = status;
            writes.push(Write::UpdateStatus {
                kind: Kind::PodDisruptionBudget,
                object: updated,
            });
        }
    }
    writes
}

/// Every controller's writes for one pass, in the order the real components would act.
pub fn reconcile(s: &Snapshot) -> Vec<Write> {
    let mut writes = deployments(s);
    writes.extend(replica_sets(s));
    writes.extend(schedule(s));
    writes.extend(kubelet(s));
    writes.extend(disruption_budgets(s));
    writes
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-11-21T12:00:00Z";

    fn node(name: &str, zone: &str, cpu: &str, ready: bool) -> Value {
        json!({
            "metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone, "kubernetes.io/arch": "amd64"}},
            "spec": {},
            "status": {
                "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "Unknown" }}],
                "addresses": [{"type": "InternalIP", "address": "10.0.1.5"}],
            }
        })
    }

    fn pod(name: &str, cpu: &str) -> Value {
        json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx", "resources": {"requests": {"cpu": cpu}}}]},
            "status": {"phase": "Pending"},
        })
    }

    fn bound_to(writes: &[Write]) -> Vec<(String, String)> {
        writes
            .iter()
            .filter_map(|w| match w {
                Write::Update {
                    kind: Kind::Pod,
                    object,
                } => Some((
                    name(object).to_string(),
                    object["spec"]["nodeName"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("100m"), Some(0.1));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("1Gi"), Some(1073741824.0));
        assert_eq!(parse_quantity("128Mi"), Some(134217728.0));
        assert_eq!(parse_quantity("1G"), Some(1e9));
        assert_eq!(parse_quantity("x"), None);
    }

    #[test]
    fn scheduler_fits_by_resources_and_spreads_across_zones() {
        let s = Snapshot {
            nodes: vec![node("a1", "z-a", "2", true), node("b1", "z-b", "2", true)],
            pods: vec![
                pod("p1", "1"),
                pod("p2", "1"),
                pod("p3", "1"),
                pod("p4", "1"),
                pod("p5", "1"),
            ],
            now: NOW.into(),
            ..Default::default()
        };
        let writes = schedule(&s);
        let bound = bound_to(&writes);
        assert_eq!(bound.len(), 4, "two 1-CPU pods fit on each 2-CPU node");
        let zones: Vec<&str> = bound.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(zones.iter().filter(|n| **n == "a1").count(), 2);
        let unschedulable: Vec<&Value> = writes
            .iter()
            .filter_map(|w| match w {
                Write::UpdateStatus { object, .. } => Some(object),
                _ => None,
            })
            .collect();
        assert_eq!(unschedulable.len(), 1);
        let cond = condition(unschedulable[0], "PodScheduled").expect("condition");
        assert_eq!(cond["reason"], "Unschedulable");
        assert!(
            cond["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("0/2 nodes are available: 2 Insufficient cpu.")),
            "{cond}"
        );
    }

    #[test]
    fn scheduler_honours_taints_selectors_and_cordons() {
        let mut tainted = node("gpu", "z-a", "8", true);
        tainted["spec"]["taints"] =
            json!([{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]);
        let mut cordoned = node("cordoned", "z-a", "8", true);
        cordoned["spec"]["unschedulable"] = json!(true);
        let down = {
            let mut n = node("down", "z-b", "8", false);
            n["spec"]["taints"] =
                json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}]);
            n
        };
        let mut arm = pod("arm", "1");
        arm["spec"]["nodeSelector"] = json!({"kubernetes.io/arch": "arm64"});
        let mut tolerant = pod("tolerant", "1");
        tolerant["spec"]["tolerations"] =
            json!([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]);
        let s = Snapshot {
            nodes: vec![tainted, cordoned, down],
            pods: vec![pod("plain", "1"), arm, tolerant],
            now: NOW.into(),
            ..Default::default()
        };
        let writes = schedule(&s);
        assert_eq!(
            bound_to(&writes),
            [("tolerant".to_string(), "gpu".to_string())]
        );
        let messages: Vec<String> = writes
            .iter()
            .filter_map(|w| match w {
                Write::UpdateStatus { object, .. } => condition(object, "PodScheduled")
                    .and_then(|c| c["message"].as_str())
                    .map(str::to_string),
                _ => None,
            })
            .collect();
        assert_eq!(messages.len(), 2);
        assert!(
            messages[0].contains("1 node(s) had untolerated taint {nvidia.com/gpu: true}"),
            "{}",
            messages[0]
        );
        assert!(
            messages[0].contains("1 node(s) were unschedulable"),
            "{}",
            messages[0]
        );
        assert!(
            messages[0]
                .contains("1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }")
        );
    }

    #[test]
    fn kubelet_runs_bound_pods_and_collects_orphans() {
        let mut on_ready = pod("on-ready", "1");
        on_ready["spec"]["nodeName"] = json!("n1");
        let mut on_gone = pod("on-gone", "1");
        on_gone["spec"]["nodeName"] = json!("gone");
        let s = Snapshot {
            nodes: vec![node("n1", "z", "4", true)],
            pods: vec![on_ready, on_gone],
            now: NOW.into(),
            ..Default::default()
        };
        let writes = kubelet(&s);
        assert_eq!(writes.len(), 2);
        match &writes[0] {
            Write::UpdateStatus { object, .. } => {
                assert_eq!(object["status"]["phase"], "Running");
                assert!(is_ready(object));
                assert!(object["status"]["podIP"].is_string());
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(&writes[1], Write::Delete { name, .. } if name == "on-gone"));
        // Running and ready: nothing more to do.
        let running = match &writes[0] {
            Write::UpdateStatus { object, .. } => object.clone(),
            _ => unreachable!(),
        };
        let s = Snapshot {
            nodes: vec![node("n1", "z", "4", true)],
            pods: vec![running.clone()],
            now: NOW.into(),
            ..Default::default()
        };
        assert!(kubelet(&s).is_empty());
        // The node stops: the pod is no longer ready.
        let s = Snapshot {
            nodes: vec![node("n1", "z", "4", false)],
            pods: vec![running],
            now: NOW.into(),
            ..Default::default()
        };
        match kubelet(&s).as_slice() {
            [Write::UpdateStatus { object, .. }] => assert!(!is_ready(object)),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn rs(replicas: i64) -> Value {
        json!({
            "metadata": {"name": "web-abc", "namespace": "default", "uid": "rs-uid", "generation": 1},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
            "status": {},
        })
    }

    fn owned_pod(name: &str, running: bool) -> Value {
        let mut p = pod(name, "100m");
        p["metadata"]["ownerReferences"] =
            json!([{"uid": "rs-uid", "controller": true, "kind": "ReplicaSet", "name": "web-abc"}]);
        if running {
            p["spec"]["nodeName"] = json!("n1");
            p["status"] =
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]});
        }
        p
    }

    #[test]
    fn replica_sets_create_and_delete_pods() {
        let s = Snapshot {
            replica_sets: vec![rs(3)],
            pods: vec![owned_pod("a", true)],
            now: NOW.into(),
            ..Default::default()
        };
        let writes = replica_sets(&s);
        let creates = writes
            .iter()
            .filter(|w| {
                matches!(
                    w,
                    Write::Create {
                        kind: Kind::Pod,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(creates, 2);
        match writes.last() {
            Some(Write::UpdateStatus { object, .. }) => {
                assert_eq!(object["status"]["replicas"], 1);
                assert_eq!(object["status"]["readyReplicas"], 1);
            }
            other => panic!("unexpected {other:?}"),
        }
        // Scale down prefers the pod that is not running.
        let s = Snapshot {
            replica_sets: vec![rs(1)],
            pods: vec![owned_pod("running", true), owned_pod("pending", false)],
            now: NOW.into(),
            ..Default::default()
        };
        let writes = replica_sets(&s);
        let deleted: Vec<&str> = writes
            .iter()
            .filter_map(|w| match w {
                Write::Delete { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(deleted, ["pending"]);
    }

    #[test]
    fn deployments_roll_within_surge_and_unavailability() {
        let template = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:2"}]}});
        let d = json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 2},
            "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}}, "template": template, "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}},
            "status": {},
        });
        let old = json!({
            "metadata": {"name": "web-old", "namespace": "default", "uid": "old", "labels": {"pod-template-hash": "old"}, "ownerReferences": [{"uid": "d-uid", "controller": true}], "creationTimestamp": "2026-01-01T00:00:00Z", "generation": 1},
            "spec": {"replicas": 4},
            "status": {"replicas": 4, "readyReplicas": 4, "availableReplicas": 4, "observedGeneration": 1},
        });
        // First pass: the new ReplicaSet is created with room for the surge only.
        let s = Snapshot {
            deployments: vec![d.clone()],
            replica_sets: vec![old.clone()],
            now: NOW.into(),
            ..Default::default()
        };
        let writes = deployments(&s);
        let created = writes
            .iter()
            .find_map(|w| match w {
                Write::Create {
                    kind: Kind::ReplicaSet,
                    object,
                    ..
                } => Some(object.clone()),
                _ => None,
            })
            .expect("new replica set");
        assert_eq!(created["spec"]["replicas"], 1);
        let hash = template_hash(&template);
        assert_eq!(created["metadata"]["name"], format!("web-{hash}"));
        assert_eq!(
            created["spec"]["template"]["metadata"]["labels"]["pod-template-hash"],
            json!(hash)
        );
        // With the new pod available, one old replica may go (maxUnavailable 0).
        let mut new_rs = created;
        new_rs["metadata"]["uid"] = json!("new");
        new_rs["metadata"]["generation"] = json!(1);
        new_rs["status"] = json!({"replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "observedGeneration": 1});
        let s = Snapshot {
            deployments: vec![d],
            replica_sets: vec![old, new_rs],
            now: NOW.into(),
            ..Default::default()
        };
        let writes = deployments(&s);
        let old_target = writes.iter().find_map(|w| match w {
            Write::Update { object, .. } if name(object) == "web-old" => {
                object["spec"]["replicas"].as_i64()
            }
            _ => None,
        });
        assert_eq!(old_target, Some(3));
    }

    #[test]
    fn budgets_count_healthy_pods() {
        let pdb = json!({
            "metadata": {"name": "web", "namespace": "default", "generation": 1},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
        });
        let s = Snapshot {
            pdbs: vec![pdb],
            pods: vec![
                owned_pod("a", true),
                owned_pod("b", true),
                owned_pod("c", true),
                owned_pod("d", false),
            ],
            now: NOW.into(),
            ..Default::default()
        };
        match disruption_budgets(&s).as_slice() {
            [Write::UpdateStatus { object, .. }] => {
                assert_eq!(object["status"]["expectedPods"], 4);
                assert_eq!(object["status"]["currentHealthy"], 3);
                assert_eq!(object["status"]["desiredHealthy"], 2);
                assert_eq!(object["status"]["disruptionsAllowed"], 1);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
