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
    /// The SQL listener's address and task, when `[sql] listen` is set.
    sql: Option<(SocketAddr, tokio::task::JoinHandle<()>)>,
    /// The Kafka listener's address and task, when `[kafka] listen` is set.
    kafka: Option<(SocketAddr, tokio::task::JoinHandle<()>)>,
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
        let (shutdown, mut rx) = watch::channel(false);
        let (sql_service, sql) = match config.sql.listen {
            None => (None, None),
            Some(at) => {
                let (service, addr, task) = start_sql(
                    &config,
                    &databases,
                    tokens.clone(),
                    at,
                    shutdown.subscribe(),
                )
                .await?;
                (Some(service), Some((addr, task)))
            }
        };
        let kafka = match config.kafka.listen {
            None => None,
            Some(at) => {
                let tcp = TcpListener::bind(at).await.map_err(|e| {
                    ServerError::Config(format!("cannot listen on {at} (kafka.listen): {e}"))
                })?;
                let bound = tcp.local_addr()?;
                if tokens.is_empty() && !bound.ip().is_loopback() {
                    tracing::warn!(
                        addr = %bound,
                        "KAFKA LISTENING BEYOND LOOPBACK WITHOUT AUTHENTICATION: configure \
                         [[auth.tokens]] (clients then use SASL PLAIN with a token as the \
                         password) or listen on 127.0.0.1"
                    );
                }
                Some(crate::api::kafka::listen(
                    tcp,
                    databases.apis().log.clone(),
                    config.kafka.clone(),
                    tokens.clone(),
                    databases.apis().budget.clone(),
                    shutdown.subscribe(),
                )?)
            }
        };
        let state = AppState {
            root,
            databases: Arc::new(databases),
            http: Arc::new(HttpMetrics::default()),
            started: Instant::now(),
            read_only: config.read_only,
            usage: Default::default(),
            sql: sql_service,
        };
        let app = build_router(state.clone(), &config, tokens);
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
            sql = ?sql.as_ref().map(|(a, _)| *a),
            kafka = ?kafka.as_ref().map(|(a, _)| *a),
            "opendata is serving"
        );
        Ok(Self {
            addr,
            state,
            shutdown,
            serve,
            sql,
            kafka,
            shutdown_timeout: Duration::from_secs(config.shutdown_timeout_secs),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the SQL (PostgreSQL protocol) listener, when `[sql] listen` is set.
    pub fn sql_addr(&self) -> Option<SocketAddr> {
        self.sql.as_ref().map(|(a, _)| *a)
    }

    /// The address of the Kafka listener, when `[kafka] listen` is set.
    pub fn kafka_addr(&self) -> Option<SocketAddr> {
        self.kafka.as_ref().map(|(a, _)| *a)
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
        if let Some((_, sql)) = self.sql {
            // The listener stops accepting and closes its connections.
            let _ = sql.await;
        }
        if let Some((_, kafka)) = self.kafka {
            let _ = kafka.await;
        }
        self.state.databases.close().await?;
        tracing::info!("every database flushed and closed");
        Ok(())
    }
}

/// Starts the SQL service and its PostgreSQL listener on `at`.
async fn start_sql(
    config: &ServerConfig,
    databases: &Databases,
    tokens: Arc<auth::Tokens>,
    at: SocketAddr,
    stop: watch::Receiver<bool>,
) -> Result<(
    crate::api::sql::SqlService,
    SocketAddr,
    tokio::task::JoinHandle<()>,
)> {
    let apis = databases.apis();
    let engine = opendata_sql::SqlEngine::new(
        opendata_sql::Sources {
            log: apis.log.clone(),
            timeseries: apis.timeseries.clone(),
            promql: apis.query_engine.clone(),
            vector: apis.vector.clone(),
        },
        config.sql.engine(),
        apis.budget.clone(),
    )
    .map_err(|e| ServerError::Config(format!("[sql] {e}")))?;
    let tls = config
        .tls
        .as_ref()
        .map(|t| listener::tls_acceptor_for(t, b"postgresql"))
        .transpose()?;
    if config.sql.require_tls && tls.is_none() {
        return Err(ServerError::Config(
            "sql.require_tls needs a certificate: set [tls] cert_file and key_file".into(),
        ));
    }
    let tcp = TcpListener::bind(at)
        .await
        .map_err(|e| ServerError::Config(format!("cannot listen on {at} (sql.listen): {e}")))?;
    let addr = tcp.local_addr()?;
    if tokens.is_empty() && !addr.ip().is_loopback() {
        tracing::warn!(
            %addr,
            "SQL LISTENING BEYOND LOOPBACK WITHOUT AUTHENTICATION: configure [[auth.tokens]] \
             (and [tls]) or listen on 127.0.0.1"
        );
    }
    let service =
        crate::api::sql::SqlService::new(engine, apis.pools.sql.clone(), tokens, &config.sql);
    let task = service.listen(tcp, tls, config.sql.max_connections, stop);
    Ok((service, addr, task))
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
