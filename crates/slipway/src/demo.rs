//! `slipway serve --demo`: the example fleet in `examples/` (built into the binary), applied to
//! the server just started, through its own API like any client.

use std::path::Path;

use crate::cli::{self, Conn};

/// The manifests of `examples/`, in the order they apply (namespaces, classes, then clusters
/// tier by tier).
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "00-namespaces.yaml",
        include_str!("../../../examples/00-namespaces.yaml"),
    ),
    (
        "10-classes.yaml",
        include_str!("../../../examples/10-classes.yaml"),
    ),
    (
        "20-testing.yaml",
        include_str!("../../../examples/20-testing.yaml"),
    ),
    (
        "30-development.yaml",
        include_str!("../../../examples/30-development.yaml"),
    ),
    (
        "40-staging.yaml",
        include_str!("../../../examples/40-staging.yaml"),
    ),
    (
        "50-production.yaml",
        include_str!("../../../examples/50-production.yaml"),
    ),
];

/// How fast the simulator runs in the demo unless `--time-scale` says otherwise: a 40 s boot
/// takes 4 s, so clusters come up in seconds and their progress can be watched.
pub const TIME_SCALE: f64 = 10.0;

/// Apply the example fleet through the server's admin kubeconfig. Returns how many clusters
/// it declares.
pub async fn load(kubeconfig: &Path) -> anyhow::Result<usize> {
    let conn = Conn::open(&cli::Global {
        kubeconfig: Some(kubeconfig.to_path_buf()),
        context: None,
        data_dir: None,
        namespace: None,
        all_namespaces: false,
    })
    .await?;
    let mut documents = Vec::new();
    for (name, text) in EXAMPLES {
        documents.extend(cli::parse_manifests(&format!("examples/{name}"), text)?);
    }
    let clusters = cli::apply_documents(&conn, &documents, false).await?;
    Ok(clusters.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_manifest_in_examples_is_built_in() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("examples/")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".yaml"))
            .collect();
        on_disk.sort();
        let built_in: Vec<String> = EXAMPLES.iter().map(|(n, _)| (*n).to_string()).collect();
        assert_eq!(built_in, on_disk);
        for (name, text) in EXAMPLES {
            let docs = cli::parse_manifests(name, text).expect("parses");
            assert!(!docs.is_empty(), "{name}");
        }
    }
}
