//! Clients of the workload clusters, built from the kubeconfigs the platform wrote for them
//! and kept while the kubeconfig stays the same.

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// kube-rs clients by cluster identity.
#[derive(Default)]
pub struct WorkloadClients {
    clients: Mutex<HashMap<String, (String, kube::Client)>>,
}

impl WorkloadClients {
    /// The client of cluster `identity` for `kubeconfig` (built on first use or when the
    /// kubeconfig changed).
    pub async fn get(&self, identity: &str, kubeconfig: &str) -> Result<kube::Client, String> {
        let digest = hex::encode(Sha256::digest(kubeconfig.as_bytes()));
        if let Some((d, client)) = self.lock().get(identity)
            && *d == digest
        {
            return Ok(client.clone());
        }
        let parsed = kube::config::Kubeconfig::from_yaml(kubeconfig).map_err(|e| e.to_string())?;
        let config = kube::Config::from_custom_kubeconfig(
            parsed,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let mut config = config;
        config.connect_timeout = Some(std::time::Duration::from_secs(5));
        config.read_timeout = Some(std::time::Duration::from_secs(15));
        let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
        self.lock()
            .insert(identity.to_string(), (digest, client.clone()));
        Ok(client)
    }

    /// Forget cluster `identity` (deleted).
    pub fn forget(&self, identity: &str) {
        self.lock().remove(identity);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, kube::Client)>> {
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
