//! The HTTP server: databases, shared routes, middleware and lifecycle.

pub mod auth;
mod databases;
pub mod listener;
pub mod memory;
pub mod pool;
mod runtime;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use opendata_common::StorageRoot;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::ApiError;

pub use self::databases::Databases;
use self::runtime::{AppState, HttpMetrics};
use crate::config::ServerConfig;
use crate::error::{Result, ServerError};

/// A running server: listening, with every database open.
pub struct Server {
    addr: SocketAddr,
    state: AppState,
    shutdown: watch::Sender<bool>,
    serve: tokio::task::JoinHandle<std::io::Result<()>>,
    shutdown_timeout: Duration,
}

impl Server {
    /// Opens every database and starts listening on `config.listen`.
    pub async fn start(config: ServerConfig) -> Result<Self> {
        config.validate()?;
        let root = StorageRoot::new(config.storage.clone())?;
        let tokens = Arc::new(auth::Tokens::new(&config.auth).map_err(ServerError::Config)?);
        let tls = config
            .tls
            .as_ref()
            .map(listener::tls_acceptor)
            .transpose()?;
        let databases = Databases::open(&root, &config).await?;
        let tcp = TcpListener::bind(config.listen)
            .await
            .map_err(|e| ServerError::Config(format!("cannot listen on {}: {e}", config.listen)))?;
        let addr = tcp.local_addr()?;
        if tokens.is_empty() && !addr.ip().is_loopback() {
            tracing::warn!(
                %addr,
                "LISTENING BEYOND LOOPBACK WITHOUT AUTHENTICATION: anyone who can reach \
                 this address can read, write and drop every database. Configure \
                 [[auth.tokens]] (and [tls]) or listen on 127.0.0.1"
            );
        }
        let listener = listener::ServerListener::start(tcp, tls, &config.http)?;
        let state = AppState {
            root,
            databases: Arc::new(databases),
            http: Arc::new(HttpMetrics::default()),
            started: Instant::now(),
            read_only: config.read_only,
            usage: Default::default(),
        };
        let app = build_router(state.clone(), &config, tokens);
        let (shutdown, mut rx) = watch::channel(false);
        let serve = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                })
                .await
        });
        tracing::info!(
            %addr,
            read_only = config.read_only,
            tls = config.tls.is_some(),
            tokens = config.auth.tokens.len(),
            "opendata is serving"
        );
        Ok(Self {
            addr,
            state,
            shutdown,
            serve,
            shutdown_timeout: Duration::from_secs(config.shutdown_timeout_secs),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The open databases.
    pub fn databases(&self) -> &Databases {
        &self.state.databases
    }

    /// Serves until SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn run_until_signal(self) -> Result<()> {
        wait_for_signal().await;
        self.shutdown().await
    }

    /// Stops accepting connections, lets in-flight requests finish (up to the shutdown
    /// timeout), then flushes and closes every database.
    pub async fn shutdown(self) -> Result<()> {
        tracing::info!("shutting down");
        let _ = self.shutdown.send(true);
        let mut serve = self.serve;
        match tokio::time::timeout(self.shutdown_timeout, &mut serve).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "server error during shutdown"),
            Ok(Err(e)) => tracing::warn!(error = %e, "server task failed"),
            Err(_) => {
                tracing::warn!("in-flight requests did not finish in time; closing anyway");
                serve.abort();
            }
        }
        self.state.databases.close().await?;
        tracing::info!("every database flushed and closed");
        Ok(())
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
            _ = term.recv() => tracing::info!("SIGTERM received"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Every route: the runtime's and each database's, with the shared middleware. A
/// request passes, in order: the body limit, timing and tracing, authentication, the
/// request timeout, and the panic guard.
pub fn build_router(state: AppState, config: &ServerConfig, tokens: Arc<auth::Tokens>) -> Router {
    let mut app = runtime::routes(state.clone());
    app = app.merge(state.databases.apis().routes());
    app = app.merge(crate::console::router());
    let timeout = Duration::from_secs(config.http.request_timeout_secs.max(1));
    app.fallback(not_found)
        .layer(axum::middleware::from_fn(runtime::catch_panic))
        .layer(axum::middleware::from_fn_with_state(
            timeout,
            runtime::request_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            tokens,
            auth::authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state,
            runtime::observe,
        ))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {}", uri.path()))
}
