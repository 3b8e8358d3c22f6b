//! `slipway get`: clusters, machines, classes and pools as tables (`-o wide`), YAML or JSON,
//! filtered by `-l`, across namespaces with `-A`, and followed live with `-w`.

use clap::Args;
use futures::StreamExt as _;
use kube::ResourceExt as _;
use kube::api::ListParams;
use kube::runtime::watcher;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use slipway_api::cluster::{Cluster, Condition, ConditionStatus};
use slipway_api::clusterclass::ClusterClass;
use slipway_api::machine::Machine;

use super::Conn;
use super::kinds::Kind;
use super::table::{Table, age};

#[derive(Args, Debug)]
pub struct GetArgs {
    /// clusters (cl), machines (ma), classes (cc) or pools (np).
    kind: Kind,
    /// One object by name (pools: `CLUSTER` or `CLUSTER/POOL`).
    name: Option<String>,
    /// Output format: wide, yaml, json or name (default: a table).
    #[arg(short = 'o', long, value_parser = ["wide", "yaml", "json", "name"])]
    output: Option<String>,
    /// Label selector, e.g. `-l tier=production`.
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// After listing, print a row each time one changes (Ctrl-C to stop).
    #[arg(short = 'w', long)]
    watch: bool,
}

/// How objects are printed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table { wide: bool },
    Yaml,
    Json,
    Name,
}

/// One kind's table: headers and a row per object (several for pools).
pub trait Rows:
    kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug
{
    fn headers(wide: bool) -> Vec<&'static str>;
    fn rows(&self, wide: bool) -> Vec<Vec<String>>;

    /// The error for a `CLUSTER/POOL` that names no pool of this object.
    fn missing_pool(&self, _pool: &str) -> Option<anyhow::Error> {
        None
    }

    /// What `-o yaml|json|name` prints for this object: `(name, document)` pairs, and
    /// whether they are API objects (so that several print as a kubectl `List`).
    fn documents(&self, _pool: Option<&str>) -> anyhow::Result<(Vec<(String, Value)>, bool)> {
        let name = format!(
            "{}.{}/{}",
            Self::kind(&()).to_ascii_lowercase(),
            Self::group(&()),
            self.name_any()
        );
        Ok((vec![(name, serde_json::to_value(self)?)], true))
    }
}

pub async fn run(conn: &Conn, args: &GetArgs) -> anyhow::Result<()> {
    let format = match args.output.as_deref() {
        None => Format::Table { wide: false },
        Some("wide") => Format::Table { wide: true },
        Some("yaml") => Format::Yaml,
        Some("json") => Format::Json,
        _ => Format::Name,
    };
    match args.kind {
        Kind::Cluster => get::<Cluster>(conn, args, format, namespaced(conn)).await,
        Kind::Machine => get::<Machine>(conn, args, format, namespaced(conn)).await,
        Kind::Class => {
            get::<ClusterClass>(
                conn,
                args,
                format,
                (kube::Api::all(conn.client.clone()), false),
            )
            .await
        }
        Kind::Pool => get::<Pools>(conn, args, format, namespaced(conn)).await,
    }
}

/// A namespaced kind's API: one namespace, or all with `-A`.
fn namespaced<K>(conn: &Conn) -> (kube::Api<K>, bool)
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
{
    if conn.all_namespaces {
        (kube::Api::all(conn.client.clone()), true)
    } else {
        (
            kube::Api::namespaced(conn.client.clone(), &conn.namespace),
            true,
        )
    }
}

/// `(api, namespaced)`.
async fn get<K>(
    conn: &Conn,
    args: &GetArgs,
    format: Format,
    (api, namespaced): (kube::Api<K>, bool),
) -> anyhow::Result<()>
where
    K: Rows<DynamicType = ()> + Send + Sync + 'static,
{
    let all = namespaced && conn.all_namespaces;
    let what = K::plural(&()).to_string();
    // Pools are addressed as CLUSTER/POOL: the object is the cluster.
    let (name, pool) = match (&args.name, args.kind) {
        (Some(n), Kind::Pool) => match n.split_once('/') {
            Some((c, p)) => (Some(c.to_string()), Some(p.to_string())),
            None => (Some(n.clone()), None),
        },
        (n, _) => (n.clone(), None),
    };
    let mut objects: Vec<K> = match &name {
        Some(n) => vec![
            api.get(n)
                .await
                .map_err(|e| conn.explain(e, &format!("getting {} {n}", K::kind(&()))))?,
        ],
        None => {
            let mut params = ListParams::default();
            if let Some(s) = &args.selector {
                params = params.labels(s);
            }
            api.list(&params)
                .await
                .map_err(|e| conn.explain(e, &format!("listing {what}")))?
                .items
        }
    };
    objects.sort_by_key(|o| (o.namespace(), o.name_any()));
    if let Some(error) = pool
        .as_deref()
        .and_then(|p| objects.iter().find_map(|o| o.missing_pool(p)))
    {
        return Err(error);
    }
    let keep_pool = |row: &Vec<String>| {
        pool.as_ref()
            .is_none_or(|p| row.get(usize::from(all) + 1) == Some(p))
    };
    let table = |objects: &[K], wide: bool| {
        let mut headers = K::headers(wide);
        if all {
            headers.insert(0, "NAMESPACE");
        }
        let mut t = Table::new(&headers);
        for o in objects {
            for mut row in o.rows(wide) {
                if all {
                    row.insert(0, o.namespace().unwrap_or_default());
                }
                if keep_pool(&row) {
                    t.rows.push(row);
                }
            }
        }
        t
    };
    let mut widths = None;
    match format {
        Format::Table { wide } => {
            let t = table(&objects, wide);
            if t.rows.is_empty() && !args.watch {
                if all || !namespaced {
                    eprintln!("No {what} found.");
                } else {
                    eprintln!("No {what} found in {} namespace.", conn.namespace);
                }
            }
            let w = t.widths();
            if !t.rows.is_empty() || args.watch {
                print!("{}", t.render(&w, true));
            }
            widths = Some(w);
        }
        Format::Yaml | Format::Json | Format::Name => {
            print_objects(
                &objects,
                pool.as_deref(),
                format,
                name.is_some() && !args.watch,
            )?;
        }
    }
    if !args.watch {
        return Ok(());
    }
    // Follow: the watcher lists again (its initial events are what was just printed) and
    // then streams changes.
    let mut config = watcher::Config::default();
    if let Some(s) = &args.selector {
        config = config.labels(s);
    }
    let stream = watcher(api, config);
    let mut stream = std::pin::pin!(stream);
    let mut listed = false;
    while let Some(event) = stream.next().await {
        let changed = match event.map_err(|e| anyhow::anyhow!("watching {what}: {e}"))? {
            watcher::Event::Init | watcher::Event::InitApply(_) => continue,
            watcher::Event::InitDone => {
                listed = true;
                continue;
            }
            watcher::Event::Apply(o) | watcher::Event::Delete(o) => o,
        };
        if !listed || name.as_ref().is_some_and(|n| *n != changed.name_any()) {
            continue;
        }
        match format {
            Format::Table { wide } => {
                let t = table(std::slice::from_ref(&changed), wide);
                let w = widths.get_or_insert_with(|| t.widths());
                print!("{}", t.render(w, false));
            }
            _ => print_objects(
                std::slice::from_ref(&changed),
                pool.as_deref(),
                format,
                true,
            )?,
        }
        use std::io::Write as _;
        std::io::stdout().flush()?;
    }
    Ok(())
}

fn print_objects<K: Rows<DynamicType = ()>>(
    objects: &[K],
    pool: Option<&str>,
    format: Format,
    single: bool,
) -> anyhow::Result<()> {
    let mut documents = Vec::new();
    let mut api_objects = true;
    for o in objects {
        let (docs, api) = o.documents(pool)?;
        documents.extend(docs);
        api_objects = api;
    }
    if format == Format::Name {
        for (name, _) in &documents {
            println!("{name}");
        }
        return Ok(());
    }
    let mut items: Vec<Value> = documents.into_iter().map(|(_, d)| d).collect();
    let value = if single && items.len() == 1 {
        items.remove(0)
    } else if api_objects {
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "List",
            "metadata": {"resourceVersion": ""},
            "items": items,
        })
    } else {
        Value::Array(items)
    };
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&value)?),
        _ => print!("{}", serde_saphyr::to_string(&value)?),
    }
    Ok(())
}

/// A machine's phase as a person reads it: `Deleting` once it is being deleted.
pub fn machine_phase(m: &Machine) -> String {
    if m.metadata.deletion_timestamp.is_some() {
        "Deleting".to_string()
    } else {
        m.status
            .as_ref()
            .and_then(|s| s.phase)
            .map_or_else(|| "Pending".into(), |p| p.to_string())
    }
}

/// The status of condition `type_`, or empty.
pub fn condition<'a>(conditions: Option<&'a Vec<Condition>>, type_: &str) -> Option<&'a Condition> {
    conditions.and_then(|cs| cs.iter().find(|c| c.type_ == type_))
}

fn status_text(c: Option<&Condition>) -> String {
    c.map(|c| c.status.to_string()).unwrap_or_default()
}

impl Rows for Cluster {
    fn headers(wide: bool) -> Vec<&'static str> {
        let mut h = vec![
            "NAME",
            "CLASS",
            "VERSION",
            "REGION",
            "CONTROL PLANE",
            "NODES",
            "READY",
            "AGE",
        ];
        if wide {
            h.extend(["REASON", "ZONES", "POOLS", "COST/H"]);
        }
        h
    }

    fn rows(&self, wide: bool) -> Vec<Vec<String>> {
        let status = self.status.as_ref();
        let ready = condition(status.and_then(|s| s.conditions.as_ref()), "Ready");
        let nodes = match status.and_then(|s| s.nodes) {
            Some(n) => format!("{}/{n}", status.and_then(|s| s.ready_nodes).unwrap_or(0)),
            None => String::new(),
        };
        let mut row = vec![
            self.name_any(),
            self.spec.class.clone().unwrap_or_default(),
            self.spec.version.clone().unwrap_or_default(),
            self.spec.infrastructure.region.clone(),
            self.spec
                .control_plane
                .as_ref()
                .and_then(|c| c.replicas)
                .map(|r| r.to_string())
                .unwrap_or_default(),
            nodes,
            status_text(ready),
            age(self.metadata.creation_timestamp.as_ref()),
        ];
        if wide {
            let reason = match ready {
                Some(c) if c.status != ConditionStatus::True => {
                    c.reason.clone().unwrap_or_default()
                }
                _ => String::new(),
            };
            row.extend([
                reason,
                self.spec
                    .infrastructure
                    .zones
                    .clone()
                    .unwrap_or_default()
                    .join(","),
                self.spec
                    .node_pools
                    .iter()
                    .flatten()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                status
                    .and_then(|s| s.cost_per_hour)
                    .map(|c| format!("${c:.2}"))
                    .unwrap_or_default(),
            ]);
        }
        vec![row]
    }
}

impl Rows for Machine {
    fn headers(wide: bool) -> Vec<&'static str> {
        let mut h = vec![
            "NAME", "CLUSTER", "ROLE", "POOL", "ZONE", "PHASE", "NODE", "VERSION", "AGE",
        ];
        if wide {
            h.extend(["TYPE", "CAPACITY", "ADDRESS", "PROVIDER ID", "REASON"]);
        }
        h
    }

    fn rows(&self, wide: bool) -> Vec<Vec<String>> {
        let status = self.status.as_ref();
        let phase = machine_phase(self);
        let mut row = vec![
            self.name_any(),
            self.spec.cluster_name.clone(),
            self.spec.role.to_string(),
            self.spec.pool.clone().unwrap_or_default(),
            self.spec.zone.clone(),
            phase,
            status.and_then(|s| s.node_name.clone()).unwrap_or_default(),
            self.spec.version.clone(),
            age(self.metadata.creation_timestamp.as_ref()),
        ];
        if wide {
            row.extend([
                self.spec.machine_type.clone(),
                status
                    .and_then(|s| s.capacity_type)
                    .or(self.spec.capacity_type)
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
                status.and_then(|s| s.address.clone()).unwrap_or_default(),
                status
                    .and_then(|s| s.provider_id.clone())
                    .unwrap_or_default(),
                status
                    .and_then(|s| s.failure_reason.clone())
                    .unwrap_or_default(),
            ]);
        }
        vec![row]
    }
}

impl Rows for ClusterClass {
    fn headers(wide: bool) -> Vec<&'static str> {
        let mut h = vec!["NAME", "TIER", "VERSION", "TTL", "AGE"];
        if wide {
            h.extend(["VERSIONS ALLOWED", "DESCRIPTION"]);
        }
        h
    }

    fn rows(&self, wide: bool) -> Vec<Vec<String>> {
        let defaults = self.spec.defaults.as_ref();
        let mut row = vec![
            self.name_any(),
            self.spec.tier.clone().unwrap_or_default(),
            defaults.and_then(|d| d.version.clone()).unwrap_or_default(),
            defaults.and_then(|d| d.ttl.clone()).unwrap_or_default(),
            age(self.metadata.creation_timestamp.as_ref()),
        ];
        if wide {
            row.extend([
                self.spec
                    .policy
                    .as_ref()
                    .and_then(|p| p.allowed_versions.clone())
                    .unwrap_or_default()
                    .join(","),
                self.spec.description.clone().unwrap_or_default(),
            ]);
        }
        vec![row]
    }
}

/// Clusters seen as their node pools.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Pools(Cluster);

impl kube::Resource for Pools {
    type DynamicType = ();
    type Scope = kube::core::NamespaceResourceScope;

    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        Cluster::kind(&())
    }
    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        Cluster::group(&())
    }
    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        Cluster::version(&())
    }
    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        Cluster::plural(&())
    }
    fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        self.0.meta()
    }
    fn meta_mut(&mut self) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        self.0.meta_mut()
    }
}

impl Rows for Pools {
    fn missing_pool(&self, pool: &str) -> Option<anyhow::Error> {
        super::missing_pool(&self.0, pool)
    }

    /// A pool is not an API object: each prints as its cluster, the pool's spec and its
    /// observed status.
    fn documents(&self, pool: Option<&str>) -> anyhow::Result<(Vec<(String, Value)>, bool)> {
        let cluster = &self.0;
        let observed = cluster.status.as_ref().and_then(|s| s.node_pools.as_ref());
        let docs = cluster
            .spec
            .node_pools
            .iter()
            .flatten()
            .filter(|p| pool.is_none_or(|want| p.name == want))
            .map(|p| {
                let status = observed.and_then(|o| o.iter().find(|s| s.name == p.name));
                let doc = serde_json::json!({
                    "cluster": cluster.name_any(),
                    "namespace": cluster.namespace(),
                    "pool": p,
                    "status": status,
                });
                Ok((format!("pool/{}/{}", cluster.name_any(), p.name), doc))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok((docs, false))
    }

    fn headers(wide: bool) -> Vec<&'static str> {
        let mut h = vec![
            "CLUSTER", "POOL", "TYPE", "CAPACITY", "READY", "MIN", "MAX", "ZONES",
        ];
        if wide {
            h.extend(["ARCH", "GPU", "LABELS", "TAINTS"]);
        }
        h
    }

    fn rows(&self, wide: bool) -> Vec<Vec<String>> {
        let cluster = &self.0;
        let zones = cluster
            .spec
            .infrastructure
            .zones
            .clone()
            .unwrap_or_default();
        let observed = cluster.status.as_ref().and_then(|s| s.node_pools.as_ref());
        cluster
            .spec
            .node_pools
            .iter()
            .flatten()
            .map(|p| {
                let st = observed.and_then(|o| o.iter().find(|s| s.name == p.name));
                let mut row = vec![
                    cluster.name_any(),
                    p.name.clone(),
                    p.machine_type.clone().unwrap_or_default(),
                    p.capacity_type
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "on-demand".into()),
                    format!(
                        "{}/{}",
                        st.and_then(|s| s.ready_replicas).unwrap_or(0),
                        p.replicas.unwrap_or(0)
                    ),
                    p.min_replicas.map(|n| n.to_string()).unwrap_or_default(),
                    p.max_replicas.map(|n| n.to_string()).unwrap_or_default(),
                    p.zones.clone().unwrap_or_else(|| zones.clone()).join(","),
                ];
                if wide {
                    row.extend([
                        p.arch.map(|a| a.to_string()).unwrap_or_default(),
                        p.gpu
                            .as_ref()
                            .map(|g| match &g.type_ {
                                Some(t) => format!("{}x{t}", g.count),
                                None => g.count.to_string(),
                            })
                            .unwrap_or_default(),
                        p.labels
                            .iter()
                            .flatten()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(","),
                        p.taints
                            .iter()
                            .flatten()
                            .map(|t| match &t.value {
                                Some(v) => format!("{}={v}:{}", t.key, t.effect),
                                None => format!("{}:{}", t.key, t.effect),
                            })
                            .collect::<Vec<_>>()
                            .join(","),
                    ]);
                }
                row
            })
            .collect()
    }
}
