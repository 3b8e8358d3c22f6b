//! Finding the server, as kubectl does, and saying what went wrong in words a person can act on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::DynamicObject;
use slipway_api::cluster::Cluster;

use super::Global;
use super::kinds::Resource;

/// A connection to a Slipway server.
pub struct Conn {
    pub client: kube::Client,
    /// `-n`, else the context's namespace, else `default`.
    pub namespace: String,
    pub all_namespaces: bool,
    /// Whether `-n` was given.
    pub explicit_namespace: bool,
    /// The server's URL, for messages.
    pub server: String,
    /// Where the kubeconfig came from, for messages.
    pub source: String,
}

impl Conn {
    /// Connect as `global` says: `--kubeconfig`, `--data-dir`, `$KUBECONFIG`, `~/.kube/config`,
    /// then `./slipway-data/admin.kubeconfig`.
    pub async fn open(global: &Global) -> anyhow::Result<Self> {
        let (kubeconfig, source) = find_kubeconfig(global)?;
        let options = KubeConfigOptions {
            context: global.context.clone(),
            ..KubeConfigOptions::default()
        };
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| anyhow::anyhow!("reading kubeconfig {source}: {e}"))?;
        config.connect_timeout = Some(Duration::from_secs(5));
        let namespace = global
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let server = config.cluster_url.to_string();
        let client = kube::Client::try_from(config)
            .map_err(|e| anyhow::anyhow!("kubeconfig {source}: {e}"))?;
        Ok(Self {
            client,
            namespace,
            all_namespaces: global.all_namespaces,
            explicit_namespace: global.namespace.is_some(),
            server,
            source,
        })
    }

    /// The Clusters of the namespace.
    pub fn clusters(&self) -> kube::Api<Cluster> {
        kube::Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// `resource` in the namespace (or cluster-scoped).
    pub fn dynamic(&self, resource: &Resource) -> kube::Api<DynamicObject> {
        if resource.namespaced {
            kube::Api::namespaced_with(self.client.clone(), &self.namespace, &resource.api)
        } else {
            kube::Api::all_with(self.client.clone(), &resource.api)
        }
    }

    /// What went wrong `doing` something, for a person.
    pub fn explain(&self, error: kube::Error, doing: &str) -> anyhow::Error {
        anyhow::anyhow!(explain(&error, doing, &self.server, &self.source))
    }
}

/// The message for `error`.
pub fn explain(error: &kube::Error, doing: &str, server: &str, source: &str) -> String {
    match error {
        kube::Error::Api(status) => {
            let causes = status
                .details
                .as_ref()
                .map(|d| d.causes.as_slice())
                .unwrap_or_default();
            // An invalid object: what the server said, then each field and why, one per line.
            let mut text = match status.message.split_once(": [") {
                Some((head, _)) if !causes.is_empty() => format!("{doing}: {head}:"),
                _ => format!("{doing}: {}", status.message),
            };
            if status.message.contains(": [") {
                for cause in causes {
                    text.push_str("\n  - ");
                    if !cause.field.is_empty() && !cause.message.starts_with(&cause.field) {
                        text.push_str(&cause.field);
                        text.push_str(": ");
                    }
                    text.push_str(&cause.message);
                }
            }
            match status.code {
                401 => format!(
                    "{text}\nthe server at {server} does not accept the credentials in {source}"
                ),
                403 => format!("{text}\nthe credentials in {source} may not do this"),
                _ => text,
            }
        }
        other => {
            let chain = error_chain(other);
            if chain.contains("Connection refused")
                || chain.contains("tcp connect error")
                || chain.contains("timed out")
                || chain.contains("dns error")
            {
                format!(
                    "{doing}: cannot reach the Slipway server at {server} ({source}): {chain}\n\
                     start one with `slipway serve` (it writes ./slipway-data/admin.kubeconfig), or point --kubeconfig or --data-dir at a running one"
                )
            } else {
                format!("{doing}: {chain}")
            }
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = e.source();
    }
    text
}

fn find_kubeconfig(global: &Global) -> anyhow::Result<(Kubeconfig, String)> {
    let read = |path: &Path| {
        Kubeconfig::read_from(path)
            .map(|k| (k, path.display().to_string()))
            .map_err(|e| anyhow::anyhow!("reading kubeconfig {}: {e}", path.display()))
    };
    if let Some(path) = &global.kubeconfig {
        return read(path);
    }
    if let Some(dir) = &global.data_dir {
        let path = dir.join("admin.kubeconfig");
        if !path.exists() {
            anyhow::bail!(
                "no Slipway server has used {}: {} is missing; start one with `slipway serve --data-dir {}`",
                dir.display(),
                path.display(),
                dir.display()
            );
        }
        return read(&path);
    }
    if std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty()) {
        return Kubeconfig::read()
            .map(|k| (k, "$KUBECONFIG".to_string()))
            .map_err(|e| anyhow::anyhow!("reading $KUBECONFIG: {e}"));
    }
    if let Some(home) = std::env::var_os("HOME").map(PathBuf::from) {
        let path = home.join(".kube").join("config");
        if path.exists() {
            return read(&path);
        }
    }
    let local = PathBuf::from("./slipway-data/admin.kubeconfig");
    if local.exists() {
        return read(&local);
    }
    anyhow::bail!(
        "no kubeconfig found: pass --kubeconfig FILE or --data-dir DIR, set KUBECONFIG, or start a local server with `slipway serve` (it writes ./slipway-data/admin.kubeconfig)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_objects_list_one_field_per_line() {
        let cause = |field: &str, message: &str| kube::core::response::StatusCause {
            reason: "FieldValueInvalid".into(),
            message: message.into(),
            field: field.into(),
        };
        let status = kube::core::Status::failure(
            r#"Cluster.slipway.dev "x" is invalid: [spec.version: Invalid value: "1.2": bad, spec.infrastructure.region: Required value]"#,
            "Invalid",
        )
        .with_code(422)
        .with_details(kube::core::response::StatusDetails {
            causes: vec![
                cause("spec.version", r#"Invalid value: "1.2": bad"#),
                cause("spec.infrastructure.region", "Required value"),
            ],
            name: "x".into(),
            group: "slipway.dev".into(),
            kind: "Cluster".into(),
            uid: String::new(),
            retry_after_seconds: 0,
        });
        let error = kube::Error::Api(status.boxed());
        assert_eq!(
            explain(&error, "applying x", "https://s", "k"),
            "applying x: Cluster.slipway.dev \"x\" is invalid:\n  - spec.version: Invalid value: \"1.2\": bad\n  - spec.infrastructure.region: Required value"
        );
    }
}
