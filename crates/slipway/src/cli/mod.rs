//! The client commands of the `slipway` binary: `apply`, `get`, `describe`, `delete`, `scale`,
//! `kubeconfig` and `completion`. They talk to any Slipway server through a kubeconfig, found
//! as kubectl finds it, and are shaped for cluster fleets: pools as rows, a cluster as a tree,
//! and `--wait` with progress until a change has converged.

mod apply;
mod connect;
mod describe;
mod get;
mod kinds;
mod table;
mod wait;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

pub use apply::{apply_documents, parse_manifests};
pub use connect::Conn;
use kinds::Kind;

/// Flags every command takes, before or after the subcommand.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// The kubeconfig to use (default: `$KUBECONFIG`, then `~/.kube/config`, then the local
    /// server's `DATA_DIR/admin.kubeconfig`).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Where a local Slipway server keeps its state (`slipway serve`); the client commands use
    /// its `admin.kubeconfig` when no kubeconfig is given. Default `./slipway-data`.
    #[arg(long, global = true, env = "SLIPWAY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The namespace (default: the kubeconfig context's, else `default`).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Every namespace (get).
    #[arg(short = 'A', long, global = true)]
    pub all_namespaces: bool,
}

impl Global {
    /// `--data-dir`, or `./slipway-data`.
    pub fn data_dir_or_default(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("./slipway-data"))
    }
}

/// The client commands.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Create or update objects from manifests (`-f FILE|DIR|-`), reporting what changed.
    Apply(apply::ApplyArgs),
    /// List clusters, machines, classes or pools (or show one).
    Get(get::GetArgs),
    /// Show a cluster as a tree: control plane, pools and machines with their conditions.
    Describe(describe::DescribeArgs),
    /// Delete clusters, machines or classes.
    Delete(DeleteArgs),
    /// Set the size of a cluster's node pool.
    Scale(ScaleArgs),
    /// Print (or write) the kubeconfig of a workload cluster.
    Kubeconfig(KubeconfigArgs),
    /// Print a shell completion script (`source <(slipway completion bash)`).
    Completion(CompletionArgs),
}

/// How `--wait` waits.
#[derive(Args, Debug, Clone)]
pub struct WaitArgs {
    /// Wait until the change has converged, showing progress.
    #[arg(long)]
    pub wait: bool,
    /// How long `--wait` waits before giving up (non-zero exit, with what blocks).
    #[arg(long, default_value = "10m", value_parser = crate::parse_duration)]
    pub timeout: Duration,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// What to delete: cluster, machine or class.
    kind: Kind,
    /// Names.
    #[arg(required = true)]
    names: Vec<String>,
    #[command(flatten)]
    wait: WaitArgs,
}

#[derive(Args, Debug)]
pub struct ScaleArgs {
    /// What to scale: cluster.
    kind: Kind,
    /// The cluster.
    name: String,
    /// The node pool.
    #[arg(long)]
    pool: String,
    /// The pool's new size (replicas), within its minReplicas and maxReplicas.
    #[arg(long)]
    size: i32,
    #[command(flatten)]
    wait: WaitArgs,
}

#[derive(Args, Debug)]
pub struct KubeconfigArgs {
    /// cluster
    kind: Kind,
    /// The cluster.
    name: String,
    /// Write it to this file (mode 0600) instead of printing it.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CompletionArgs {
    /// bash, zsh, fish, elvish or powershell.
    shell: clap_complete::Shell,
}

/// Run one client command.
pub async fn run(command: ClientCommand, global: &Global) -> anyhow::Result<()> {
    if let ClientCommand::Completion(args) = &command {
        let mut cmd = <crate::Cli as clap::CommandFactory>::command();
        clap_complete::generate(args.shell, &mut cmd, "slipway", &mut std::io::stdout());
        return Ok(());
    }
    let conn = Conn::open(global).await?;
    match command {
        ClientCommand::Apply(args) => apply::run(&conn, &args).await,
        ClientCommand::Get(args) => get::run(&conn, &args).await,
        ClientCommand::Describe(args) => describe::run(&conn, &args).await,
        ClientCommand::Delete(args) => delete(&conn, &args).await,
        ClientCommand::Scale(args) => scale(&conn, &args).await,
        ClientCommand::Kubeconfig(args) => kubeconfig(&conn, &args).await,
        ClientCommand::Completion(_) => Ok(()),
    }
}

async fn delete(conn: &Conn, args: &DeleteArgs) -> anyhow::Result<()> {
    let resource = args.kind.deletable()?;
    for name in &args.names {
        let api = conn.dynamic(&resource);
        match api.delete(name, &kube::api::DeleteParams::default()).await {
            Ok(_) => println!("{} {name:?} deleted", resource.display()),
            Err(e) => return Err(conn.explain(e, &format!("deleting {name}"))),
        }
    }
    if args.wait.wait {
        for name in &args.names {
            wait::gone(conn, &resource, name, args.wait.timeout).await?;
        }
    }
    Ok(())
}

/// The error for a pool name `cluster` does not have, listing the ones it has.
pub(crate) fn missing_pool(
    cluster: &slipway_api::cluster::Cluster,
    pool: &str,
) -> Option<anyhow::Error> {
    let pools = cluster.spec.node_pools.as_deref().unwrap_or_default();
    if pools.iter().any(|p| p.name == pool) {
        return None;
    }
    let names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
    Some(anyhow::anyhow!(
        "cluster {} has no pool {pool:?}; its pools are: {}",
        kube::ResourceExt::name_any(cluster),
        if names.is_empty() {
            "(none)".to_string()
        } else {
            names.join(", ")
        }
    ))
}

async fn scale(conn: &Conn, args: &ScaleArgs) -> anyhow::Result<()> {
    args.kind.expect(Kind::Cluster, "scale")?;
    let api = conn.clusters();
    let cluster = api
        .get(&args.name)
        .await
        .map_err(|e| conn.explain(e, &format!("reading cluster {}", args.name)))?;
    if let Some(error) = missing_pool(&cluster, &args.pool) {
        return Err(error);
    }
    let pools = cluster.spec.node_pools.clone().unwrap_or_default();
    let index = pools
        .iter()
        .position(|p| p.name == args.pool)
        .unwrap_or_default();
    let before = pools[index].replicas.unwrap_or(0);
    // The pool is named in a test operation: a concurrent edit that reorders the pools fails
    // the patch instead of resizing another pool.
    let patch = serde_json::json!([
        {"op": "test", "path": format!("/spec/nodePools/{index}/name"), "value": args.pool},
        {"op": "replace", "path": format!("/spec/nodePools/{index}/replicas"), "value": args.size},
    ]);
    let patched = api
        .patch(
            &args.name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::<serde_json::Value>::Json(serde_json::from_value(patch)?),
        )
        .await
        .map_err(|e| conn.explain(e, &format!("scaling cluster {}", args.name)))?;
    if before == args.size {
        println!(
            "cluster.slipway.dev/{} pool {} unchanged ({} replicas)",
            args.name, args.pool, args.size
        );
    } else {
        println!(
            "cluster.slipway.dev/{} pool {} scaled: {before} -> {} replicas",
            args.name, args.pool, args.size
        );
    }
    if args.wait.wait {
        wait::converged(conn, &patched, args.wait.timeout).await?;
    }
    Ok(())
}

async fn kubeconfig(conn: &Conn, args: &KubeconfigArgs) -> anyhow::Result<()> {
    args.kind.expect(Kind::Cluster, "kubeconfig")?;
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(conn.client.clone(), &conn.namespace);
    let name = format!("{}-kubeconfig", args.name);
    let secret = match secrets.get_opt(&name).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            // Say which: no such cluster, or not ready yet.
            let cluster = conn
                .clusters()
                .get_opt(&args.name)
                .await
                .map_err(|e| conn.explain(e, &format!("reading cluster {}", args.name)))?;
            anyhow::bail!(match cluster {
                None => format!(
                    "cluster {:?} not found in namespace {:?}",
                    args.name, conn.namespace
                ),
                Some(_) => format!(
                    "cluster {} has no kubeconfig yet (its control plane is still coming up); try again with `slipway get cluster {} -w`",
                    args.name, args.name
                ),
            });
        }
        Err(e) => return Err(conn.explain(e, &format!("reading secret {name}"))),
    };
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get("value"))
        .map(|b| b.0.clone())
        .ok_or_else(|| anyhow::anyhow!("secret {name} has no `value` key"))?;
    match &args.file {
        None => {
            use std::io::Write as _;
            std::io::stdout().write_all(&value)?;
        }
        Some(path) => {
            write_private(path, &value)?;
            eprintln!(
                "wrote {}: kubectl --kubeconfig {} get nodes",
                path.display(),
                path.display()
            );
        }
    }
    Ok(())
}

/// Write `bytes` to `path`, readable by its owner only (it holds credentials).
fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    file.write_all(bytes)?;
    Ok(())
}
