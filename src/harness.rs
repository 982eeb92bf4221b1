//! The simulator and grantmux wired together on loopback, sharing one clock:
//! what `grantmux demo`, the integration tests and the benchmarks run.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::app::{Running, StartError, StartOptions};
use crate::clock::Clock;
use crate::config::{App, Config, RevokePolicy};
use crate::sim::{Sim, SimConfig, SimError, SimHandle};
use crate::store::GrantStore;

/// A running simulator, a grantmux in front of it, and a plain HTTP client.
#[derive(Debug)]
pub struct Harness {
    pub sim: SimHandle,
    pub gmx: Running,
    pub clock: Clock,
    pub config: Config,
    pub http: Client<HttpConnector, Full<Bytes>>,
}

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("simulator: {0}")]
    Sim(#[from] SimError),
    #[error("grantmux: {0}")]
    Start(#[from] StartError),
    #[error("simulator URL: {0}")]
    Uri(#[from] http::uri::InvalidUri),
}

/// An answer read to the end.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

// === impl Harness ===

impl Harness {
    /// Starts the simulator from `sim`, then grantmux configured for it with one
    /// app (the simulator's first), a memory store, and `tweak` applied last.
    pub async fn start(
        sim: SimConfig,
        tweak: impl FnOnce(&mut Config),
    ) -> Result<Self, HarnessError> {
        Self::start_with_store(sim, None, tweak).await
    }

    /// [`Harness::start`], on `store` instead of a fresh memory store (a test
    /// that makes the store fail mid-run keeps its own handle on it).
    pub async fn start_with_store(
        sim: SimConfig,
        store: Option<Arc<dyn GrantStore>>,
        tweak: impl FnOnce(&mut Config),
    ) -> Result<Self, HarnessError> {
        let clock = sim.clock.clone();
        let apps = sim
            .apps
            .iter()
            .map(|a| App {
                client_id: a.client_id.clone(),
                client_secret: (!a.public).then(|| a.client_secret.clone().into()),
                revoke_upstream: RevokePolicy::Never,
                weight: crate::config::DEFAULT_WEIGHT,
                webhook_secret: None,
            })
            .collect();
        let ca = sim.tls.clone();
        let sim = Sim::start(sim).await?;
        let mut config = Config::for_upstream(sim.base_url().parse()?, apps);
        config.zoom.ca_file = ca;
        // Short backoff so outage tests recover quickly.
        config.refresh.backoff_min = Duration::from_millis(50);
        config.refresh.backoff_max = Duration::from_millis(500);
        tweak(&mut config);
        let options = StartOptions {
            clock: clock.clone(),
            store,
            reload: None,
        };
        let gmx = Running::start(config.clone(), options).await?;
        let http = Client::builder(TokioExecutor::new()).build_http();
        Ok(Self {
            sim,
            gmx,
            clock,
            config,
            http,
        })
    }

    pub fn proxy_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gmx.proxy_addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gmx.admin_addr)
    }

    /// Sends a request and reads the whole answer.
    pub async fn call(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Answer, String> {
        let mut req = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req
            .body(Full::new(body.into()))
            .map_err(|e| e.to_string())?;
        let resp = self.http.request(req).await.map_err(|e| format!("{e:?}"))?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// Stops grantmux, then the simulator. A token left unsaved is logged by
    /// grantmux; [`Harness::stop`] returns it instead.
    pub async fn shutdown(self) {
        if let Err(unsaved) = self.stop().await {
            tracing::error!(%unsaved, "harness stopped with unsaved grants");
        }
    }

    /// Stops grantmux, then the simulator; says which grants were left unsaved.
    pub async fn stop(self) -> Result<(), crate::app::Unsaved> {
        let result = self.gmx.shutdown().await;
        self.sim.shutdown().await;
        result
    }
}

// === impl Answer ===

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}
