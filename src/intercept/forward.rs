//! The HTTPS forward proxy on `listen.forward_proxy`: what a client with
//! `HTTPS_PROXY` set reaches.
//!
//! `CONNECT` to one of Zoom's intercepted hosts is answered 200; grantmux then
//! terminates TLS with that name's leaf (from its own CA) and serves the
//! requests inside exactly as the plain proxy listener does. `CONNECT` to a
//! host in `intercept.tunnel` is passed through untouched. Anything else gets
//! 403: never an open proxy.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::body::{self, Body};
use crate::config::{Config, TunnelRule};
use crate::proxy::Proxy;
use crate::serve::{serve_connection, ConnectionActivity, Incoming, ServerLimits, Tunnel};

/// The forward proxy's shared state.
pub struct ForwardProxy {
    proxy: Arc<Proxy>,
    acceptor: TlsAcceptor,
    /// Intercepted names, lowercase; always on port 443.
    hosts: Vec<String>,
    tunnel: Vec<TunnelRule>,
    limits: ServerLimits,
    connect_timeout: Duration,
    shutdown: watch::Receiver<bool>,
}

impl std::fmt::Debug for ForwardProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardProxy")
            .field("hosts", &self.hosts)
            .field("tunnel", &self.tunnel)
            .finish_non_exhaustive()
    }
}

/// What a `CONNECT` target gets.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Intercept,
    Tunnel,
    Refuse,
}

// === impl ForwardProxy ===

impl ForwardProxy {
    pub fn new(
        config: &Config,
        proxy: Arc<Proxy>,
        tls: Arc<rustls::ServerConfig>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            proxy,
            acceptor: TlsAcceptor::from(tls),
            hosts: config.intercept.hosts.clone(),
            tunnel: config.intercept.tunnel.clone(),
            limits: ServerLimits::from(config),
            connect_timeout: config.zoom.connect_timeout,
            shutdown,
        }
    }

    /// The service function for [`crate::serve::serve`] on the forward-proxy
    /// listener (with [`ServerLimits::tunnels`] on).
    pub async fn handle(
        self: Arc<Self>,
        mut req: Request<Incoming>,
    ) -> Result<Response<Body>, Infallible> {
        if req.method() != Method::CONNECT {
            return Ok(refusal(
                StatusCode::METHOD_NOT_ALLOWED,
                "this is grantmux's HTTPS proxy: it serves CONNECT to Zoom's hosts only",
            ));
        }
        let Some((host, port)) = target(&req) else {
            return Ok(refusal(
                StatusCode::BAD_REQUEST,
                "CONNECT needs a host:port target",
            ));
        };
        let Some(conn) = req.extensions().get::<ConnectionActivity>().cloned() else {
            // Only a listener built without `tunnels` lacks it: a wiring error.
            tracing::error!("forward proxy listener without connection tracking");
            return Ok(refusal(StatusCode::INTERNAL_SERVER_ERROR, "not available"));
        };
        match self.verdict(&host, port) {
            Verdict::Intercept => {
                let tunnel = conn.tunnel();
                let upgrade = hyper::upgrade::on(&mut req);
                let this = self.clone();
                tokio::spawn(async move {
                    match upgrade.await {
                        Ok(io) => this.intercept(TokioIo::new(io), conn, &tunnel).await,
                        Err(error) => tracing::debug!(%error, "CONNECT upgrade failed"),
                    }
                    drop(tunnel);
                });
                Ok(Response::new(body::empty()))
            }
            Verdict::Tunnel => {
                // Connect first, so that a target that is down gets 502, not a dead tunnel.
                let addr = format!("{host}:{port}");
                let upstream =
                    match tokio::time::timeout(self.connect_timeout, TcpStream::connect(&addr))
                        .await
                    {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(error)) => {
                            tracing::info!(target = %addr, %error, "tunnel target unreachable");
                            return Ok(refusal(
                                StatusCode::BAD_GATEWAY,
                                "tunnel target unreachable",
                            ));
                        }
                        Err(_) => {
                            return Ok(refusal(
                                StatusCode::GATEWAY_TIMEOUT,
                                "tunnel target too slow",
                            ));
                        }
                    };
                let tunnel = conn.tunnel();
                // A blind tunnel's traffic is not HTTP we can see: it counts as
                // in flight for as long as it lasts, and ends when either side does.
                let in_flight = conn.request();
                let upgrade = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    if let Ok(io) = upgrade.await {
                        let mut io = TokioIo::new(io);
                        let mut upstream = upstream;
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut io, &mut upstream) => {}
                            () = tunnel.cut() => {}
                        }
                    }
                    drop((in_flight, tunnel));
                });
                tracing::debug!(target = %addr, "tunnelling untouched");
                Ok(Response::new(body::empty()))
            }
            Verdict::Refuse => {
                tracing::info!(%host, port, "CONNECT refused: not an intercepted or tunnelled host");
                let why = format!(
                    "grantmux: CONNECT to {host}:{port} is not allowed. Only Zoom's hosts \
                     (intercept.hosts, port 443) are served; add \"{host}:{port}\" to \
                     intercept.tunnel to pass it through untouched."
                );
                Ok(refusal(StatusCode::FORBIDDEN, &why))
            }
        }
    }

    fn verdict(&self, host: &str, port: u16) -> Verdict {
        if port == 443 && self.hosts.iter().any(|h| h == host) {
            Verdict::Intercept
        } else if self.tunnel.iter().any(|t| t.matches(host, port)) {
            Verdict::Tunnel
        } else {
            Verdict::Refuse
        }
    }

    /// Terminates TLS as the intercepted host and serves the requests inside
    /// as the plain proxy listener would, each one in flight on the outer
    /// connection, until it ends, the watchdog cuts it, or shutdown.
    async fn intercept(
        &self,
        io: TokioIo<hyper::upgrade::Upgraded>,
        conn: ConnectionActivity,
        tunnel: &Tunnel,
    ) {
        let tls = tokio::select! {
            accepted = self.acceptor.accept(io) => match accepted {
                Ok(tls) => tls,
                Err(error) => {
                    // Typically a client that does not trust grantmux's CA yet.
                    tracing::info!(%error, "TLS handshake inside CONNECT failed");
                    return;
                }
            },
            () = tunnel.cut() => return,
        };
        let proxy = self.proxy.clone();
        let service = move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(super::Intercepted);
            let in_flight = conn.request();
            let answer = proxy.clone().handle(req);
            async move {
                let answer = answer.await;
                drop(in_flight);
                answer
            }
        };
        let mut shutdown = self.shutdown.clone();
        let stop = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        tokio::select! {
            () = serve_connection(tls, &self.limits, service, stop) => {}
            () = tunnel.cut() => {}
        }
    }
}

/// A `CONNECT` request's `host:port`, host lowercase.
fn target(req: &Request<Incoming>) -> Option<(String, u16)> {
    let authority = req.uri().authority()?;
    let port = authority.port_u16()?;
    Some((authority.host().to_ascii_lowercase(), port))
}

/// An error in Zoom's JSON shape; the proxy's refusals are read by people
/// setting up `HTTPS_PROXY`, so the text says what to change.
fn refusal(status: StatusCode, message: &str) -> Response<Body> {
    body::json(
        status,
        &serde_json::json!({ "code": status.as_u16(), "message": message }),
    )
}
