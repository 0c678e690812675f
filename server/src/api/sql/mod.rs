//! SQL over the PostgreSQL wire protocol: `psql`, drivers and BI tools reach the
//! [`opendata_sql`] engine on a port of its own (`[sql] listen`).
//!
//! The adapter speaks protocol 3.0 through `pgwire`: the simple and the extended
//! query protocol (prepared statements, typed parameters, binary results, portals
//! fetched in parts), TLS on the `SSLRequest` handshake with the server's `[tls]`
//! certificate, and cancel requests. With `[[auth.tokens]]` configured the client logs
//! in with a token as its password (any user name), and each statement needs the
//! token's scopes for what it touches: `<db>:read` for every table or table function
//! it reads, `log:write` for `INSERT INTO log.entries`. Without tokens, every login is
//! accepted (listen on loopback only, then).
//!
//! Statements run on the `sql` work pool, streaming their batches to the connection
//! through a channel of two, so a slow client holds back its own statement and
//! nothing else. A statement ends early on a cancel request, on `statement_timeout`
//! (default `sql.statement_timeout_secs`), or when the client goes away.
//!
//! Session statements are answered here: `BEGIN`/`COMMIT`/`ROLLBACK` (no
//! transactions: each statement applies when it runs, and `ROLLBACK` undoes nothing),
//! `SET` and `SHOW` of session parameters, `DISCARD`.

// Errors here are pgwire's `ErrorInfo` (about 400 bytes: every field of PostgreSQL's
// ErrorResponse), made once per failed statement and handed straight to pgwire,
// which takes them by value; boxing them would only add a conversion at each use.
#![allow(clippy::result_large_err)]

mod connection;
mod encode;
mod session;

use std::collections::HashMap;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::{Sink, SinkExt, StreamExt, stream};
use opendata_sql::SqlEngine;
use opendata_sql::datafusion::arrow::array::{Array, RecordBatch, UInt64Array};
use opendata_sql::datafusion::arrow::datatypes::DataType;
use opendata_sql::datafusion::common::{ParamValues, ScalarValue};
use opendata_sql::datafusion::logical_expr::LogicalPlan;
use opendata_sql::datafusion::sql::sqlparser::ast::{self, Statement};
use parking_lot::Mutex;
use pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::cancel::CancelHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{DataRowEncoder, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, PgWireConnectionState, PgWireServerHandlers,
    PidSecretKeyGenerator, RandomPidSecretKeyGenerator, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};

use self::encode::{engine_error, error};
use self::session::{Cancels, Session};
use crate::server::auth::{Access, Tokens};
use crate::server::pool::WorkPool;

/// `[sql]`: the PostgreSQL listener and the SQL engine's limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqlServerConfig {
    /// Address of the PostgreSQL listener; unset, SQL is not served.
    pub listen: Option<SocketAddr>,
    /// Client connections at once; further ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// Longest a statement may run, in seconds, unless the session sets
    /// `statement_timeout` (0: no limit).
    pub statement_timeout_secs: u64,
    /// Memory one statement's operators may hold, in bytes (also drawn from
    /// `limits.memory_budget_bytes`).
    pub max_query_memory_bytes: u64,
    /// Longest statement text, in bytes.
    pub max_statement_bytes: usize,
    /// Longest protocol message a client may send, in bytes (a statement with its
    /// parameters, for instance); a longer one closes the connection before it is
    /// read. At least `max_statement_bytes` plus 1 KiB.
    pub max_message_bytes: usize,
    /// Seconds a session may sit idle between statements before it is closed
    /// (0: no limit, PostgreSQL's default).
    pub idle_session_timeout_secs: u64,
    /// Refuse logins that did not negotiate TLS (needs `[tls]`), so tokens never
    /// cross the network in clear text; off by default, as in PostgreSQL, where TLS is
    /// offered and the client chooses.
    pub require_tls: bool,
    /// Rows per batch read from storage.
    pub batch_size: usize,
    /// Partitions a scan is split into (0: one per core).
    pub target_partitions: usize,
}

impl Default for SqlServerConfig {
    fn default() -> Self {
        let engine = opendata_sql::SqlConfig::default();
        Self {
            listen: None,
            max_connections: 256,
            statement_timeout_secs: 300,
            max_query_memory_bytes: engine.max_query_memory_bytes,
            max_statement_bytes: engine.max_statement_bytes,
            max_message_bytes: 4 * 1024 * 1024,
            idle_session_timeout_secs: 0,
            require_tls: false,
            batch_size: engine.batch_size,
            target_partitions: engine.target_partitions,
        }
    }
}

impl SqlServerConfig {
    /// The engine's part of the settings.
    pub fn engine(&self) -> opendata_sql::SqlConfig {
        opendata_sql::SqlConfig {
            max_query_memory_bytes: self.max_query_memory_bytes,
            max_statement_bytes: self.max_statement_bytes,
            batch_size: self.batch_size,
            target_partitions: self.target_partitions,
        }
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_connections == 0 {
            return Err("sql.max_connections must be at least 1".into());
        }
        if self.max_message_bytes < self.max_statement_bytes.saturating_add(1024) {
            return Err(format!(
                "sql.max_message_bytes ({}) must be at least sql.max_statement_bytes ({}) plus 1024",
                self.max_message_bytes, self.max_statement_bytes
            ));
        }
        self.engine().validate()
    }
}

/// Counters of the SQL service, for `/metrics`.
#[derive(Debug, Default)]
pub struct SqlStats {
    statements: AtomicU64,
    errors: AtomicU64,
    rows_sent: AtomicU64,
    cancelled: AtomicU64,
}

/// What every connection shares.
struct Shared {
    engine: SqlEngine,
    pool: Arc<WorkPool>,
    tokens: Arc<Tokens>,
    cancels: Arc<Cancels>,
    stats: Arc<SqlStats>,
    default_timeout: Duration,
    keys: RandomPidSecretKeyGenerator,
    parameters: DefaultServerParameterProvider,
    limits: connection::ConnectionLimits,
    require_tls: bool,
}

/// The SQL service: the engine, its pool and counters; [`SqlService::listen`] serves
/// it.
#[derive(Clone)]
pub struct SqlService {
    shared: Arc<Shared>,
}

impl SqlService {
    /// A service over `engine`, running statements on `pool`.
    pub fn new(
        engine: SqlEngine,
        pool: Arc<WorkPool>,
        tokens: Arc<Tokens>,
        config: &SqlServerConfig,
    ) -> Self {
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.server_version = format!("16.6 (OpenData {})", env!("CARGO_PKG_VERSION"));
        parameters.is_superuser = false;
        parameters.in_hot_standby = engine.is_read_only();
        parameters.default_transaction_read_only = engine.is_read_only();
        parameters.time_zone = "UTC".into();
        Self {
            shared: Arc::new(Shared {
                engine,
                pool,
                tokens,
                cancels: Arc::new(Cancels::default()),
                stats: Arc::new(SqlStats::default()),
                default_timeout: Duration::from_secs(config.statement_timeout_secs),
                keys: RandomPidSecretKeyGenerator::default(),
                parameters,
                limits: connection::ConnectionLimits {
                    max_message_bytes: config.max_message_bytes,
                    idle_timeout: (config.idle_session_timeout_secs > 0)
                        .then(|| Duration::from_secs(config.idle_session_timeout_secs)),
                },
                require_tls: config.require_tls,
            }),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &SqlEngine {
        &self.shared.engine
    }

    /// Appends the service's metrics in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let s = &self.shared.stats;
        let counters = self.shared.engine.counters();
        for (metric, kind, help, value) in [
            (
                "opendata_sql_connections",
                "gauge",
                "PostgreSQL clients connected.",
                self.shared.cancels.len() as u64,
            ),
            (
                "opendata_sql_statements_total",
                "counter",
                "SQL statements run.",
                s.statements.load(Ordering::Relaxed),
            ),
            (
                "opendata_sql_errors_total",
                "counter",
                "SQL statements that failed (any SQLSTATE).",
                s.errors.load(Ordering::Relaxed),
            ),
            (
                "opendata_sql_cancelled_total",
                "counter",
                "SQL statements ended by a cancel request or statement_timeout.",
                s.cancelled.load(Ordering::Relaxed),
            ),
            (
                "opendata_sql_rows_sent_total",
                "counter",
                "Result rows sent to SQL clients.",
                s.rows_sent.load(Ordering::Relaxed),
            ),
            (
                "opendata_sql_rows_read_total",
                "counter",
                "Rows SQL scans read from storage (after push-down).",
                counters.rows(),
            ),
            (
                "opendata_sql_bytes_read_total",
                "counter",
                "Bytes SQL scans read from storage (after push-down).",
                counters.bytes(),
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {metric} {help}\n# TYPE {metric} {kind}\n{metric} {value}"
            );
        }
    }

    /// Serves PostgreSQL clients on `tcp` until `stop` turns true; then the open
    /// connections are closed.
    pub fn listen(
        &self,
        tcp: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        max_connections: usize,
        mut stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let handlers = Arc::new(Handlers {
            backend: Arc::new(Backend {
                shared: self.shared.clone(),
            }),
        });
        let slots = Arc::new(Semaphore::new(max_connections.max(1)));
        let limits = self.shared.limits;
        tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                while connections.try_join_next().is_some() {}
                let slot = tokio::select! {
                    _ = stop.wait_for(|s| *s) => break,
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                };
                let accepted = tokio::select! {
                    _ = stop.wait_for(|s| *s) => break,
                    accepted = tcp.accept() => accepted,
                };
                let (socket, addr) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a SQL connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let handlers = handlers.clone();
                let tls = tls.clone();
                connections.spawn(async move {
                    let _slot = slot;
                    if let Err(e) = connection::serve(socket, tls, handlers, limits).await {
                        tracing::debug!(%addr, error = %e, "SQL connection ended with an error");
                    }
                });
            }
            connections.shutdown().await;
        })
    }
}

/// The handler set `pgwire` asks for.
struct Handlers {
    backend: Arc<Backend>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.backend.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.backend.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.backend.clone()
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.backend.clone()
    }
}

/// Answers every message of a connection.
struct Backend {
    shared: Arc<Shared>,
}

/// A statement, parsed and classified (and, for the engine's statements, planned).
#[derive(Clone, Debug)]
pub(crate) enum Command {
    /// `BEGIN` / `START TRANSACTION`.
    Begin,
    /// `COMMIT` / `END`.
    Commit,
    /// `ROLLBACK` / `ABORT`.
    Rollback,
    /// `SET name = value`.
    Set { name: String, value: String },
    /// A session statement accepted with no effect, answered with this tag.
    Ignored(&'static str),
    /// `SHOW name`.
    Show(String),
    /// A query or an insert, for the engine.
    Plan(Box<Planned>),
}

/// A statement the engine planned, with what the adapter needs to know of it without
/// walking the plan again on the connection's runtime.
#[derive(Clone, Debug)]
pub(crate) struct Planned {
    plan: LogicalPlan,
    /// The parameters' types as the plan infers them, `$1` first.
    params: Vec<Option<DataType>>,
    /// The databases it reads and writes.
    accesses: Vec<opendata_sql::Access>,
    /// An `INSERT`: answered with a count, not rows.
    insert: bool,
}

/// Lower-case name of a (possibly qualified) variable.
fn variable_name(parts: &[ast::Ident]) -> String {
    parts
        .iter()
        .map(|p| p.value.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A `SET` value as text: literals without their quotes.
fn set_value(values: &[ast::Expr]) -> String {
    values
        .iter()
        .map(|v| match v {
            ast::Expr::Value(v) => match &v.value {
                ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => s.clone(),
                other => other.to_string(),
            },
            ast::Expr::Identifier(i) => i.value.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn user_error(e: ErrorInfo) -> PgWireError {
    PgWireError::UserError(Box::new(e))
}

impl SqlStats {
    /// Counts a failed statement (and a cancelled one, by its SQLSTATE).
    fn failed(&self, e: &ErrorInfo) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if e.code == "57014" {
            self.cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Backend {
    /// A session statement answered here (`None`: one for the engine).
    fn session_command(statement: &Statement) -> Option<Result<Command, ErrorInfo>> {
        Some(Ok(match statement {
            Statement::StartTransaction { .. } => Command::Begin,
            Statement::Commit { .. } => Command::Commit,
            Statement::Rollback { .. } => Command::Rollback,
            Statement::Set(ast::Set::SingleAssignment {
                variable, values, ..
            }) => {
                let parts: Vec<ast::Ident> = variable
                    .0
                    .iter()
                    .filter_map(|p| p.as_ident().cloned())
                    .collect();
                let name = variable_name(&parts);
                let value = set_value(values);
                if name == "statement_timeout"
                    && !value.eq_ignore_ascii_case("default")
                    && let Err(e) = session::parse_timeout(&value)
                {
                    return Some(Err(e));
                }
                Command::Set { name, value }
            }
            Statement::Set(ast::Set::SetTimeZone { value, .. }) => Command::Set {
                name: "timezone".into(),
                value: set_value(std::slice::from_ref(value)),
            },
            Statement::Set(_) => Command::Ignored("SET"),
            Statement::ShowVariable { variable } => Command::Show(variable_name(variable)),
            Statement::Discard { .. } => Command::Ignored("DISCARD ALL"),
            Statement::Deallocate { .. } => Command::Ignored("DEALLOCATE"),
            Statement::Prepare { .. }
            | Statement::Execute { .. }
            | Statement::Declare { .. }
            | Statement::Fetch { .. }
            | Statement::Close { .. } => {
                return Some(Err(error(
                    "0A000",
                    "PREPARE, EXECUTE and cursors in SQL text are not supported: use the \
                     extended query protocol (every driver's prepared statements)",
                )));
            }
            _ => return None,
        }))
    }

    /// Plans one of the engine's statements on the `sql` pool: planning a large
    /// statement is real work, which must not hold up the connection's runtime.
    async fn plan_on_pool(&self, statement: Statement) -> Result<Command, ErrorInfo> {
        let engine = self.shared.engine.clone();
        let work = async move {
            let plan = engine
                .plan(&statement)
                .await
                .map_err(|e| engine_error(&e))?;
            Ok(Command::Plan(Box::new(Planned {
                params: parameter_types(&plan),
                accesses: opendata_sql::accesses(&plan),
                insert: matches!(plan, LogicalPlan::Dml(_)),
                plan,
            })))
        };
        match self.shared.pool.run(work).await {
            Ok(result) => result,
            Err(e) => Err(pool_error(e)),
        }
    }

    /// Parses `sql` (here: parsing is linear, and the engine bounds its nesting and
    /// operators), then classifies each statement, planning the engine's on the pool.
    /// Stops at the first statement that fails.
    async fn parse_and_plan(
        &self,
        sql: &str,
        control: Option<&mut session::Control>,
    ) -> Result<Vec<Result<Command, ErrorInfo>>, ErrorInfo> {
        let statements = self
            .shared
            .engine
            .parse(sql)
            .map_err(|e| engine_error(&e))?;
        let mut control = control;
        let mut out = Vec::with_capacity(statements.len());
        for statement in statements {
            let command = match Self::session_command(&statement) {
                Some(c) => c,
                None => {
                    let planning = self.plan_on_pool(statement);
                    match control.as_deref_mut() {
                        // Planning counts against the statement timeout, and can be
                        // cancelled.
                        Some(c) => c.guard(planning).await.and_then(|r| r),
                        None => planning.await,
                    }
                }
            };
            let failed = command.is_err();
            out.push(command);
            if failed {
                break;
            }
        }
        Ok(out)
    }

    /// Checks that the session's token may do what `plan` does.
    fn authorize(&self, session: &Session, planned: &Planned) -> Result<(), ErrorInfo> {
        let Some(grant) = &session.grant else {
            return Ok(());
        };
        for a in &planned.accesses {
            let need = if a.write { Access::Write } else { Access::Read };
            if !grant.allows(a.database, need) {
                return Err(error(
                    "42501",
                    format!(
                        "token {:?} does not have the {}:{} scope this statement needs",
                        grant.name,
                        a.database,
                        need.name()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Runs one classified statement.
    async fn run(
        &self,
        session: &Session,
        metadata: &HashMap<String, String>,
        command: Arc<Command>,
        params: Option<ParamValues>,
        format: &Format,
    ) -> Result<Response, ErrorInfo> {
        self.shared.stats.statements.fetch_add(1, Ordering::Relaxed);
        let result = match command.as_ref() {
            Command::Begin => Ok(Response::TransactionStart(Tag::new("BEGIN"))),
            Command::Commit => Ok(Response::TransactionEnd(Tag::new("COMMIT"))),
            Command::Rollback => Ok(Response::TransactionEnd(Tag::new("ROLLBACK"))),
            Command::Ignored(tag) => Ok(Response::Execution(Tag::new(tag))),
            Command::Set { name, value } => {
                let mut settings = session.settings.lock();
                if value.eq_ignore_ascii_case("default") {
                    settings.remove(name);
                } else {
                    settings.insert(name.clone(), value.clone());
                }
                Ok(Response::Execution(Tag::new("SET")))
            }
            Command::Show(name) => self.show(session, metadata, name, format),
            Command::Plan(_) => {
                self.run_plan(session, command.clone(), params, format)
                    .await
            }
        };
        if let Err(e) = &result {
            self.shared.stats.failed(e);
        }
        result
    }

    /// `SHOW name`: a session setting, a startup parameter or a server constant.
    fn show(
        &self,
        session: &Session,
        metadata: &HashMap<String, String>,
        name: &str,
        format: &Format,
    ) -> Result<Response, ErrorInfo> {
        let set = session.settings.lock().get(name).cloned();
        let value = match set {
            Some(v) => v,
            None => match name {
                "server_version" => self.shared.parameters.server_version.clone(),
                "server_encoding" | "client_encoding" => "UTF8".into(),
                "timezone" => "UTC".into(),
                "datestyle" => self.shared.parameters.date_style.clone(),
                "intervalstyle" => self.shared.parameters.interval_style.clone(),
                "standard_conforming_strings" | "integer_datetimes" => "on".into(),
                "search_path" => "public".into(),
                "transaction isolation level"
                | "transaction_isolation"
                | "default_transaction_isolation" => "read committed".into(),
                "transaction_read_only" | "default_transaction_read_only" => {
                    if self.shared.engine.is_read_only() {
                        "on"
                    } else {
                        "off"
                    }
                    .into()
                }
                "is_superuser" => "off".into(),
                "max_identifier_length" => "63".into(),
                "statement_timeout" => match session.timeout() {
                    Some(d) => format!("{}ms", d.as_millis()),
                    None => "0".into(),
                },
                "application_name" => metadata
                    .get("application_name")
                    .cloned()
                    .unwrap_or_default(),
                "session_authorization" | "user" => {
                    metadata.get("user").cloned().unwrap_or_default()
                }
                other => {
                    return Err(error(
                        "42704",
                        format!("unrecognized configuration parameter \"{other}\""),
                    ));
                }
            },
        };
        let field = FieldInfo::new(
            name.replace(' ', "_"),
            None,
            None,
            Type::TEXT,
            format.format_for(0),
        );
        let fields = Arc::new(vec![field]);
        let mut encoder = DataRowEncoder::new(fields.clone());
        encoder
            .encode_field(&Some(value))
            .map_err(|e| error("XX000", e.to_string()))?;
        let row = encoder.take_row();
        Ok(Response::Query(QueryResponse::new(
            fields,
            stream::iter([Ok(row)]),
        )))
    }

    /// Runs a planned statement on the `sql` pool, streaming its batches.
    async fn run_plan(
        &self,
        session: &Session,
        command: Arc<Command>,
        params: Option<ParamValues>,
        format: &Format,
    ) -> Result<Response, ErrorInfo> {
        let Command::Plan(planned) = command.as_ref() else {
            return Err(error("XX000", "not a planned statement"));
        };
        self.authorize(session, planned)?;
        let insert = planned.insert;
        let fields = if insert {
            None
        } else {
            Some(encode::fields(planned.plan.schema().as_arrow(), format)?)
        };
        let mut control = session.control();
        let (tx, mut rx) = mpsc::channel::<Result<RecordBatch, ErrorInfo>>(2);
        let engine = self.shared.engine.clone();
        let pool = self.shared.pool.clone();
        let refused = tx.clone();
        tokio::spawn(async move {
            let result = pool
                .run(async move {
                    // Cloned, bound and dropped here: each walks the whole plan.
                    let Command::Plan(planned) = command.as_ref() else {
                        return;
                    };
                    let mut plan = planned.plan.clone();
                    if let Some(params) = params {
                        plan = match plan.with_param_values(params) {
                            Ok(p) => p,
                            Err(e) => {
                                let _ = tx.send(Err(engine_error(&e.into()))).await;
                                return;
                            }
                        };
                    }
                    let mut batches = match engine.execute(plan).await {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = tx.send(Err(engine_error(&e))).await;
                            return;
                        }
                    };
                    loop {
                        tokio::select! {
                            // The client went away, cancelled or timed out.
                            _ = tx.closed() => return,
                            next = batches.next() => {
                                let Some(next) = next else { return };
                                let item = next.map_err(|e| engine_error(&e.into()));
                                let failed = item.is_err();
                                if tx.send(item).await.is_err() || failed {
                                    return;
                                }
                            }
                        }
                    }
                })
                .await;
            if let Err(e) = result {
                let _ = refused.send(Err(pool_error(e))).await;
            }
        });
        let first = control.guard(rx.recv()).await?;
        if insert {
            let mut count = 0u64;
            let mut next = first;
            while let Some(batch) = next {
                count += inserted(&batch?);
                next = control.guard(rx.recv()).await?;
            }
            return Ok(Response::Execution(
                Tag::new("INSERT").with_oid(0).with_rows(count as usize),
            ));
        }
        let first = first.transpose()?;
        let fields = fields.unwrap_or_default();
        let stats = self.shared.stats.clone();
        struct Rows {
            rx: mpsc::Receiver<Result<RecordBatch, ErrorInfo>>,
            control: session::Control,
            first: Option<RecordBatch>,
            done: bool,
        }
        let state = Rows {
            rx,
            control,
            first,
            done: false,
        };
        let row_fields = fields.clone();
        type RowIter =
            Box<dyn Iterator<Item = PgWireResult<pgwire::messages::data::DataRow>> + Send + Sync>;
        let rows = stream::unfold(state, move |mut st| {
            let fields = row_fields.clone();
            let stats = stats.clone();
            async move {
                if st.done {
                    return None;
                }
                let next = match st.first.take() {
                    Some(b) => Ok(b),
                    None => match st.control.guard(st.rx.recv()).await {
                        Ok(Some(item)) => item,
                        Ok(None) => return None,
                        Err(e) => Err(e),
                    },
                };
                let rows: RowIter = match next.and_then(encode::wire_batch) {
                    Ok(batch) => {
                        stats
                            .rows_sent
                            .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                        encode::rows(fields, batch)
                    }
                    Err(e) => {
                        st.done = true;
                        stats.failed(&e);
                        Box::new(std::iter::once(Err(user_error(e))))
                    }
                };
                Some((stream::iter(rows), st))
            }
        })
        .flatten();
        Ok(Response::Query(QueryResponse::new(fields, rows)))
    }

    /// The session of a connection that logged in.
    fn session<C: ClientInfo>(client: &C) -> PgWireResult<Arc<Session>> {
        client
            .session_extensions()
            .get::<Session>()
            .ok_or_else(|| user_error(error("08P01", "the connection has not logged in")))
    }

    /// Logs a client in: cancel key, session, parameters, ready.
    async fn accept<C>(
        &self,
        client: &mut C,
        grant: Option<crate::server::auth::Grant>,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (pid, secret) = self.shared.keys.generate(client);
        client.set_pid_and_secret_key(pid, secret.clone());
        let (cancel, registration) = self.shared.cancels.register(pid, secret.to_bytes());
        let mut settings = HashMap::new();
        if let Some(name) = client.metadata().get("application_name") {
            settings.insert("application_name".to_string(), name.clone());
        }
        client.session_extensions().insert(Session {
            grant,
            settings: Mutex::new(settings),
            cancel,
            default_timeout: self.shared.default_timeout,
            _registration: registration,
        });
        finish_authentication(client, &self.shared.parameters).await
    }
}

/// A refusal or failure of the `sql` pool as the client sees it.
fn pool_error(e: crate::api::ApiError) -> ErrorInfo {
    let code = if e.status.as_u16() == 503 {
        "53000"
    } else {
        "XX000"
    };
    error(code, e.message)
}

/// Rows an `INSERT` reports (its one `count` column).
fn inserted(batch: &RecordBatch) -> u64 {
    batch
        .columns()
        .first()
        .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
        .map_or(0, |c| (0..c.len()).map(|i| c.value(i)).sum())
}

#[async_trait]
impl StartupHandler for Backend {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                if self.shared.require_tls && !client.is_secure() {
                    return Err(user_error(ErrorInfo::new(
                        "FATAL".to_owned(),
                        "28000".to_owned(),
                        "this server accepts SQL logins over TLS only (sql.require_tls): \
                         connect with sslmode=require"
                            .to_owned(),
                    )));
                }
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if self.shared.tokens.is_empty() {
                    self.accept(client, None).await?;
                } else {
                    client.set_state(PgWireConnectionState::AuthenticationInProgress);
                    client
                        .send(PgWireBackendMessage::Authentication(
                            Authentication::CleartextPassword,
                        ))
                        .await?;
                }
            }
            PgWireFrontendMessage::PasswordMessageFamily(password) => {
                let password = password.into_password()?;
                match self.shared.tokens.grant(password.password.as_bytes()) {
                    Some(grant) => self.accept(client, Some(grant)).await?,
                    None => {
                        let user = client.metadata().get("user").cloned().unwrap_or_default();
                        // PostgreSQL's words, which clients and people search for.
                        return Err(user_error(ErrorInfo::new(
                            "FATAL".to_owned(),
                            "28P01".to_owned(),
                            format!(
                                "password authentication failed for user \"{user}\": the password must be a token of [[auth.tokens]]"
                            ),
                        )));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[async_trait]
impl CancelHandler for Backend {
    async fn on_cancel_request(&self, request: CancelRequest) {
        if !self
            .shared
            .cancels
            .cancel(request.pid, request.secret_key.to_bytes())
        {
            tracing::debug!(pid = request.pid, "cancel request for no connection");
        }
    }
}

#[async_trait]
impl SimpleQueryHandler for Backend {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = Self::session(client)?;
        let mut control = session.control();
        let commands = match self.parse_and_plan(query, Some(&mut control)).await {
            Ok(c) => c,
            Err(e) => {
                self.shared.stats.failed(&e);
                return Ok(vec![Response::Error(Box::new(e))]);
            }
        };
        let metadata = client.metadata().clone();
        let mut out = Vec::with_capacity(commands.len());
        for command in commands {
            let result = match command {
                Ok(command) => {
                    self.run(
                        &session,
                        &metadata,
                        Arc::new(command),
                        None,
                        &Format::UnifiedText,
                    )
                    .await
                }
                Err(e) => {
                    self.shared.stats.failed(&e);
                    Err(e)
                }
            };
            match result {
                Ok(response) => out.push(response),
                Err(e) => {
                    // Like PostgreSQL: the statements after a failed one do not run.
                    out.push(Response::Error(Box::new(e)));
                    break;
                }
            }
        }
        Ok(out)
    }
}

/// The parameter types a plan infers, in `$1, $2, ...` order.
fn parameter_types(plan: &LogicalPlan) -> Vec<Option<DataType>> {
    let Ok(types) = plan.get_parameter_types() else {
        return Vec::new();
    };
    let mut ordered: Vec<(usize, Option<DataType>)> = types
        .into_iter()
        .filter_map(|(name, t)| {
            name.strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .map(|n| (n, t))
        })
        .collect();
    ordered.sort_by_key(|(n, _)| *n);
    let len = ordered.last().map_or(0, |(n, _)| *n);
    let mut out = vec![None; len];
    for (n, t) in ordered {
        if n >= 1 {
            out[n - 1] = t;
        }
    }
    out
}

/// The statement the extended protocol stores: a classified statement.
#[derive(Clone, Debug)]
pub(crate) struct Prepared(Arc<Command>);

/// Parses the statements of the extended protocol.
struct Parser {
    backend: Backend,
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let session = client.session_extensions().get::<Session>();
        let mut control = session.as_ref().map(|s| s.control());
        let stats = &self.backend.shared.stats;
        let mut commands = self
            .backend
            .parse_and_plan(sql, control.as_mut())
            .await
            .inspect_err(|e| stats.failed(e))
            .map_err(user_error)?;
        match commands.len() {
            0 => Ok(None),
            1 => {
                let command = commands
                    .pop()
                    .expect("one")
                    .inspect_err(|e| stats.failed(e))
                    .map_err(user_error)?;
                Ok(Some(Prepared(Arc::new(command))))
            }
            _ => Err(user_error(error(
                "42601",
                "cannot insert multiple commands into a prepared statement",
            ))),
        }
    }

    fn get_parameter_types(&self, statement: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(match statement.0.as_ref() {
            Command::Plan(planned) => planned
                .params
                .iter()
                .map(|t| {
                    t.as_ref()
                        .and_then(|t| arrow_pg::datatypes::into_pg_type(t).ok())
                        .unwrap_or(Type::UNKNOWN)
                })
                .collect(),
            _ => Vec::new(),
        })
    }

    fn get_result_schema(
        &self,
        statement: &Prepared,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let format = format.cloned().unwrap_or_default();
        match statement.0.as_ref() {
            Command::Plan(planned) if !planned.insert => {
                encode::fields(planned.plan.schema().as_arrow(), &format)
                    .map(|f| f.as_ref().clone())
                    .map_err(user_error)
            }
            Command::Show(name) => Ok(vec![FieldInfo::new(
                name.replace(' ', "_"),
                None,
                None,
                Type::TEXT,
                format.format_for(0),
            )]),
            _ => Ok(Vec::new()),
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for Backend {
    type Statement = Prepared;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        Arc::new(Parser {
            backend: Backend {
                shared: self.shared.clone(),
            },
        })
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = Self::session(client)?;
        let command = portal.statement.statement.0.clone();
        let params = match command.as_ref() {
            Command::Plan(planned) if portal.parameter_len() > 0 => {
                let types = &planned.params;
                let refs: Vec<Option<&DataType>> = types.iter().map(|t| t.as_ref()).collect();
                let mut values = arrow_pg::datatypes::df::deserialize_parameters(portal, &refs)?;
                if let ParamValues::List(list) = &mut values {
                    for (i, v) in list.iter_mut().enumerate() {
                        if let Some(Some(want)) = types.get(i)
                            && &v.value.data_type() != want
                            && !matches!(v.value, ScalarValue::Null)
                        {
                            v.value = v.value.cast_to(want).map_err(|e| {
                                user_error(error("22P02", format!("parameter ${}: {e}", i + 1)))
                            })?;
                        }
                    }
                }
                Some(values)
            }
            _ => None,
        };
        let metadata = client.metadata().clone();
        match self
            .run(
                &session,
                &metadata,
                command,
                params,
                &portal.result_column_format,
            )
            .await
        {
            Ok(r) => Ok(r),
            Err(e) => Err(user_error(e)),
        }
    }
}
