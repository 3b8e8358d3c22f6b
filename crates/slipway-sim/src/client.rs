//! [`HttpProvider`]: the [`Provider`] trait over the simulated cloud's HTTP API
//! ([`crate::http`]), for a simulator running as its own process (`slipway sim serve`).
//!
//! Plain HTTP/1.1 through hyper-util's pooled client: the simulator is a test and demo
//! component reached on loopback or a private network.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;
use slipway_provider::{
    Catalog, LoadBalancer, LoadBalancerSpec, Machine, MachinePatch, MachineSpec, Network,
    NetworkSpec, Provider, ProviderError, Result, Subnet, SubnetSpec, Tags,
};

use crate::config::TimeScale;
use crate::faults::{Faults, FaultsPatch};
use crate::http::{CreateMachineRequest, ErrorBody};

/// How long one call may take before it fails with `Transport`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A [`Provider`] talking to a simulated cloud's `/cloud/v1` API.
#[derive(Clone, Debug)]
pub struct HttpProvider {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved characters).
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn query(selector: &Tags) -> String {
    if selector.is_empty() {
        return String::new();
    }
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in selector {
        q.append_pair(&format!("tag.{k}"), v);
    }
    format!("?{}", q.finish())
}

impl HttpProvider {
    /// A provider for the simulator at `base_url` (e.g. `http://127.0.0.1:7443`; only
    /// `http://` is supported).
    pub fn new(base_url: &str) -> Result<HttpProvider> {
        let base = base_url.trim_end_matches('/').to_string();
        let uri: http::Uri = base
            .parse()
            .map_err(|e| ProviderError::invalid("baseUrl", format!("{base_url:?}: {e}")))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(ProviderError::invalid(
                "baseUrl",
                format!("{base_url:?}: expected http://host[:port]"),
            ));
        }
        Ok(HttpProvider {
            base,
            client: Client::builder(TokioExecutor::new()).build_http(),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The same provider with another per-call timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> HttpProvider {
        self.timeout = timeout;
        self
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    async fn send(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<Bytes> {
        let mut req = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.base))
            .header(header::ACCEPT, "application/json");
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ProviderError::Transport(format!("{method} {path}: {e}")))?;
        let call = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| ProviderError::Transport(format!("{method} {path}: {e}")))?;
            let status = resp.status();
            let retry_after = resp
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_secs);
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| ProviderError::Transport(format!("{method} {path}: {e}")))?
                .to_bytes();
            Ok::<_, ProviderError>((status, retry_after, bytes))
        };
        let (status, retry_after, bytes) = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| {
                ProviderError::Transport(format!(
                    "{method} {path}: timed out after {:?}",
                    self.timeout
                ))
            })??;
        if status.is_success() {
            return Ok(bytes);
        }
        if let Ok(err) = serde_json::from_slice::<ErrorBody>(&bytes) {
            return Err(err.error);
        }
        Err(match status {
            StatusCode::TOO_MANY_REQUESTS => ProviderError::Throttled {
                retry_after: retry_after.unwrap_or(Duration::from_secs(1)),
            },
            _ => ProviderError::Transport(format!(
                "{method} {path}: {status}: {}",
                String::from_utf8_lossy(&bytes)
            )),
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + Sync)>,
    ) -> Result<T> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| ProviderError::Internal(format!("encoding a request: {e}")))?;
        let bytes = self.send(method.clone(), path, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            ProviderError::Transport(format!("{method} {path}: undecodable response: {e}"))
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call(Method::GET, path, None::<&()>).await
    }

    async fn delete_empty(&self, path: &str) -> Result<()> {
        self.send(Method::DELETE, path, None).await.map(|_| ())
    }

    /// The simulator's fault settings.
    pub async fn faults(&self) -> Result<Faults> {
        self.get("/cloud/v1/faults").await
    }

    /// Replaces the simulator's fault settings.
    pub async fn set_faults(&self, faults: &Faults) -> Result<Faults> {
        self.call(Method::PUT, "/cloud/v1/faults", Some(faults))
            .await
    }

    /// Changes some fault settings.
    pub async fn patch_faults(&self, patch: &FaultsPatch) -> Result<Faults> {
        self.call(Method::PATCH, "/cloud/v1/faults", Some(patch))
            .await
    }

    /// Sets the simulator's time scale.
    pub async fn set_time_scale(&self, scale: TimeScale) -> Result<TimeScale> {
        self.call(Method::PUT, "/cloud/v1/time-scale", Some(&scale))
            .await
    }
}

#[async_trait]
impl Provider for HttpProvider {
    fn name(&self) -> &str {
        "sim-http"
    }

    async fn catalog(&self) -> Result<Catalog> {
        self.get("/cloud/v1/catalog").await
    }

    async fn create_network(&self, spec: NetworkSpec) -> Result<Network> {
        self.call(Method::POST, "/cloud/v1/networks", Some(&spec))
            .await
    }

    async fn get_network(&self, id: &str) -> Result<Network> {
        self.get(&format!("/cloud/v1/networks/{}", segment(id)))
            .await
    }

    async fn list_networks(&self, selector: &Tags) -> Result<Vec<Network>> {
        self.get(&format!("/cloud/v1/networks{}", query(selector)))
            .await
    }

    async fn delete_network(&self, id: &str) -> Result<()> {
        self.delete_empty(&format!("/cloud/v1/networks/{}", segment(id)))
            .await
    }

    async fn create_subnet(&self, spec: SubnetSpec) -> Result<Subnet> {
        self.call(Method::POST, "/cloud/v1/subnets", Some(&spec))
            .await
    }

    async fn get_subnet(&self, id: &str) -> Result<Subnet> {
        self.get(&format!("/cloud/v1/subnets/{}", segment(id)))
            .await
    }

    async fn list_subnets(&self, selector: &Tags) -> Result<Vec<Subnet>> {
        self.get(&format!("/cloud/v1/subnets{}", query(selector)))
            .await
    }

    async fn delete_subnet(&self, id: &str) -> Result<()> {
        self.delete_empty(&format!("/cloud/v1/subnets/{}", segment(id)))
            .await
    }

    async fn create_load_balancer(&self, spec: LoadBalancerSpec) -> Result<LoadBalancer> {
        self.call(Method::POST, "/cloud/v1/load-balancers", Some(&spec))
            .await
    }

    async fn get_load_balancer(&self, id: &str) -> Result<LoadBalancer> {
        self.get(&format!("/cloud/v1/load-balancers/{}", segment(id)))
            .await
    }

    async fn list_load_balancers(&self, selector: &Tags) -> Result<Vec<LoadBalancer>> {
        self.get(&format!("/cloud/v1/load-balancers{}", query(selector)))
            .await
    }

    async fn delete_load_balancer(&self, id: &str) -> Result<()> {
        self.delete_empty(&format!("/cloud/v1/load-balancers/{}", segment(id)))
            .await
    }

    async fn create_machine(&self, idempotency_key: &str, spec: MachineSpec) -> Result<Machine> {
        let req = CreateMachineRequest {
            idempotency_key: idempotency_key.to_string(),
            spec,
        };
        self.call(Method::POST, "/cloud/v1/machines", Some(&req))
            .await
    }

    async fn get_machine(&self, id: &str) -> Result<Machine> {
        self.get(&format!("/cloud/v1/machines/{}", segment(id)))
            .await
    }

    async fn list_machines(&self, selector: &Tags) -> Result<Vec<Machine>> {
        self.get(&format!("/cloud/v1/machines{}", query(selector)))
            .await
    }

    async fn delete_machine(&self, id: &str) -> Result<Machine> {
        self.call(
            Method::DELETE,
            &format!("/cloud/v1/machines/{}", segment(id)),
            None::<&()>,
        )
        .await
    }

    async fn patch_machine(&self, id: &str, patch: MachinePatch) -> Result<Machine> {
        self.call(
            Method::PATCH,
            &format!("/cloud/v1/machines/{}", segment(id)),
            Some(&patch),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(segment("i-0abc"), "i-0abc");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn base_urls_are_checked() {
        assert!(HttpProvider::new("http://127.0.0.1:8080/").is_ok());
        assert!(HttpProvider::new("https://127.0.0.1:8080").is_err());
        assert!(HttpProvider::new("not a url").is_err());
    }

    #[test]
    fn selectors_become_tag_parameters() {
        let sel: Tags = [("slipway.dev/cluster".to_string(), "team/a".to_string())]
            .into_iter()
            .collect();
        assert_eq!(query(&sel), "?tag.slipway.dev%2Fcluster=team%2Fa");
        assert_eq!(query(&Tags::new()), "");
    }
}
