//! `slipway apply -f FILE|DIR|-`: server-side apply of every object in the manifests, saying
//! for each whether it was created, configured (and which fields changed) or unchanged.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use clap::Args;
use kube::api::{Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::discovery::{ApiCapabilities, Scope};
use serde_json::Value;

use super::{Conn, WaitArgs, wait};

/// The field manager of what `slipway apply` writes.
pub const MANAGER: &str = "slipway-cli";

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// Manifest files, directories (their `.yaml`, `.yml` and `.json` files) or `-` (stdin).
    #[arg(
        short = 'f',
        long = "filename",
        required = true,
        value_name = "FILE|DIR|-"
    )]
    files: Vec<String>,
    /// Descend into directories' subdirectories.
    #[arg(short = 'R', long)]
    recursive: bool,
    #[command(flatten)]
    wait: WaitArgs,
}

/// One object from a manifest, with where it came from.
pub struct Document {
    pub source: String,
    pub object: Value,
}

pub async fn run(conn: &Conn, args: &ApplyArgs) -> anyhow::Result<()> {
    let mut documents = Vec::new();
    for file in &args.files {
        documents.extend(read_manifests(file, args.recursive)?);
    }
    if documents.is_empty() {
        anyhow::bail!("no objects in {}", args.files.join(", "));
    }
    let applied_clusters = apply_documents(conn, &documents, true).await?;
    if args.wait.wait {
        for cluster in &applied_clusters {
            wait::converged(conn, cluster, args.wait.timeout).await?;
        }
    }
    Ok(())
}

/// Apply `documents` in order, printing what changed when `report`; the Clusters applied
/// come back. Every object is tried; any that failed make it an error.
pub async fn apply_documents(
    conn: &Conn,
    documents: &[Document],
    report: bool,
) -> anyhow::Result<Vec<slipway_api::cluster::Cluster>> {
    let mut kinds: HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)> = HashMap::new();
    let mut failed = 0;
    let mut clusters = Vec::new();
    for doc in documents {
        match apply_one(conn, &mut kinds, doc, report).await {
            Ok(Some(cluster)) => clusters.push(cluster),
            Ok(None) => {}
            Err(e) => {
                eprintln!("error: {e:#}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of the objects were not applied");
    }
    Ok(clusters)
}

/// Apply one object; a Cluster comes back, for `--wait`.
async fn apply_one(
    conn: &Conn,
    kinds: &mut HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)>,
    doc: &Document,
    report: bool,
) -> anyhow::Result<Option<slipway_api::cluster::Cluster>> {
    let object = &doc.object;
    let (api_version, kind) = match (
        object.get("apiVersion").and_then(Value::as_str),
        object.get("kind").and_then(Value::as_str),
    ) {
        (Some(a), Some(k)) => (a, k),
        _ => anyhow::bail!("{}: an object without apiVersion and kind", doc.source),
    };
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow::anyhow!("{}: a {kind} without metadata.name", doc.source))?;
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let gvk = GroupVersionKind::gvk(group, version, kind);
    if !kinds.contains_key(&gvk) {
        let found = kube::discovery::pinned_kind(&conn.client, &gvk)
            .await
            .map_err(|e| match e {
                kube::Error::Discovery(_) => anyhow::anyhow!(
                    "{}: the server does not serve {kind} in {api_version} (see `kubectl api-resources`)",
                    doc.source
                ),
                other => conn.explain(other, &format!("{}: looking up {kind}", doc.source)),
            })?;
        kinds.insert(gvk.clone(), found);
    }
    let (resource, caps) = &kinds[&gvk];
    let display = format!(
        "{}{}/{name}",
        kind.to_ascii_lowercase(),
        if group.is_empty() {
            String::new()
        } else {
            format!(".{group}")
        }
    );
    let api: kube::Api<DynamicObject> = if caps.scope == Scope::Namespaced {
        let namespace = match object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
        {
            Some(ns) if conn.explicit_namespace && ns != conn.namespace => anyhow::bail!(
                "{}: {display} is in namespace {ns:?}, not the {:?} that -n asks for",
                doc.source,
                conn.namespace
            ),
            Some(ns) => ns.to_string(),
            None => conn.namespace.clone(),
        };
        kube::Api::namespaced_with(conn.client.clone(), &namespace, resource)
    } else {
        kube::Api::all_with(conn.client.clone(), resource)
    };
    let before = api
        .get_opt(name)
        .await
        .map_err(|e| conn.explain(e, &format!("{}: reading {display}", doc.source)))?;
    let params = PatchParams::apply(MANAGER).force();
    let after = api
        .patch(name, &params, &Patch::Apply(object))
        .await
        .map_err(|e| conn.explain(e, &format!("{}: applying {display}", doc.source)))?;
    match &before {
        _ if !report => {}
        None => println!("{display} created"),
        Some(b) if b.metadata.resource_version == after.metadata.resource_version => {
            println!("{display} unchanged");
        }
        Some(b) => {
            println!("{display} configured");
            let old = comparable(serde_json::to_value(b)?);
            let new = comparable(serde_json::to_value(&after)?);
            let mut changes = Vec::new();
            diff("", &old, &new, &mut changes);
            const SHOWN: usize = 20;
            for change in changes.iter().take(SHOWN) {
                println!("  {change}");
            }
            if changes.len() > SHOWN {
                println!("  ... and {} more", changes.len() - SHOWN);
            }
        }
    }
    if group == "slipway.dev" && kind == "Cluster" {
        return Ok(Some(serde_json::from_value(serde_json::to_value(&after)?)?));
    }
    Ok(None)
}

/// What of an object a person changes: no status, and of the metadata only labels and
/// annotations.
fn comparable(mut object: Value) -> Value {
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.retain(|k, _| k == "labels" || k == "annotations");
        }
    }
    object
}

/// The changes from `old` to `new` as `path: old -> new` lines.
pub fn diff(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                diff(
                    &p,
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), x, y, out);
            }
        }
        (a, b) if a != b => out.push(format!("{path}: {} -> {}", brief(a), brief(b))),
        _ => {}
    }
}

fn brief(v: &Value) -> String {
    let text = match v {
        Value::Null => "(unset)".to_string(),
        other => other.to_string(),
    };
    if text.chars().count() > 60 {
        format!("{}...", text.chars().take(57).collect::<String>())
    } else {
        text
    }
}

/// The objects of `file` (a file, a directory, or `-` for stdin), `List`s unrolled.
pub fn read_manifests(file: &str, recursive: bool) -> anyhow::Result<Vec<Document>> {
    if file == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        return parse_manifests("(stdin)", &text);
    }
    let path = Path::new(file);
    let meta = std::fs::metadata(path).map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
    if !meta.is_dir() {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
        return parse_manifests(file, &text);
    }
    let mut files = Vec::new();
    collect(path, recursive, &mut files)?;
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(&f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        out.extend(parse_manifests(&f.display().to_string(), &text)?);
    }
    Ok(out)
}

fn collect(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            if recursive {
                collect(&path, recursive, out)?;
            }
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// The objects of one manifest text: YAML documents (JSON is YAML), `List`s unrolled, empty
/// documents skipped.
pub fn parse_manifests(source: &str, text: &str) -> anyhow::Result<Vec<Document>> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text)
        .map_err(|e| anyhow::anyhow!("{source}: not valid YAML: {e}"))?;
    let mut out = Vec::new();
    for (i, doc) in docs.into_iter().enumerate() {
        let source = format!("{source}#{}", i + 1);
        match doc {
            Value::Null => {}
            Value::Object(ref map)
                if map.get("kind").and_then(Value::as_str) == Some("List")
                    || map
                        .get("kind")
                        .and_then(Value::as_str)
                        .is_some_and(|k| k.ends_with("List") && map.contains_key("items")) =>
            {
                for item in map
                    .get("items")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    out.push(Document {
                        source: source.clone(),
                        object: item.clone(),
                    });
                }
            }
            Value::Object(_) => out.push(Document {
                source,
                object: doc,
            }),
            _ => anyhow::bail!("{source}: a document that is not an object"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_split_into_objects_and_lists_unroll() {
        let text = "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: b}}\n- {apiVersion: v1, kind: Namespace, metadata: {name: c}}\n";
        let docs = parse_manifests("f.yaml", text).expect("parse");
        let names: Vec<&str> = docs
            .iter()
            .filter_map(|d| d.object.pointer("/metadata/name").and_then(Value::as_str))
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(docs[0].source, "f.yaml#1");
        assert!(parse_manifests("g", "- 1\n- 2\n").is_err());
    }

    #[test]
    fn changes_are_listed_by_field_path() {
        let old =
            serde_json::json!({"spec": {"nodePools": [{"name": "a", "replicas": 2}], "ttl": "1h"}});
        let new = serde_json::json!({"spec": {"nodePools": [{"name": "a", "replicas": 4}], "version": "1.33.4"}});
        let mut out = Vec::new();
        diff("", &old, &new, &mut out);
        assert_eq!(
            out,
            [
                "spec.nodePools[0].replicas: 2 -> 4",
                "spec.ttl: \"1h\" -> (unset)",
                "spec.version: (unset) -> \"1.33.4\""
            ]
        );
    }
}
