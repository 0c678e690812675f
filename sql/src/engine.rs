//! The SQL engine: one DataFusion session over every database, with per-query memory
//! limits drawn from the server's memory budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::arrow::array::RecordBatch;
use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::catalog::{MemoryCatalogProvider, MemorySchemaProvider};
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{MemoryPool, MemoryReservation};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::{SendableRecordBatchStream, SessionState};
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use opendata_common::budget::{MemoryBudget, Reservation};
use opendata_log::LogHandle;
use opendata_timeseries::TimeSeriesHandle;
use opendata_timeseries::promql::Engine;
use opendata_vector::VectorHandle;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metrics::ScanCounters;
use crate::{log, timeseries, vector};

/// Binary operators (and `AND`, `OR`, ...) a statement may have: each nests its
/// expression one level deeper.
pub const MAX_OPERATORS: usize = 1024;

/// Counts the binary operators of `sql` on its tokens (no recursion, so any text is
/// safe to count): symbols and operator keywords that follow a value. A `-` or `+`
/// after a clause keyword, a comma, a parenthesis or another operator is a sign, which
/// the parser's recursion limit already bounds.
fn binary_operators(sql: &str) -> Result<usize> {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize()
        .map_err(|e| {
            Error::DataFusion(DataFusionError::SQL(
                Box::new(
                    datafusion::sql::sqlparser::parser::ParserError::TokenizerError(e.to_string()),
                ),
                None,
            ))
        })?;
    let operator_word = |k: Keyword| {
        matches!(
            k,
            Keyword::AND
                | Keyword::OR
                | Keyword::IS
                | Keyword::LIKE
                | Keyword::ILIKE
                | Keyword::SIMILAR
                | Keyword::BETWEEN
                | Keyword::IN
                | Keyword::COLLATE
                | Keyword::AT
                | Keyword::OVERLAPS
        )
    };
    let clause_word = |k: Keyword| {
        operator_word(k)
            || matches!(
                k,
                Keyword::SELECT
                    | Keyword::WHERE
                    | Keyword::VALUES
                    | Keyword::NOT
                    | Keyword::ON
                    | Keyword::WHEN
                    | Keyword::THEN
                    | Keyword::ELSE
                    | Keyword::BY
                    | Keyword::HAVING
                    | Keyword::LIMIT
                    | Keyword::OFFSET
                    | Keyword::RETURNING
                    | Keyword::SET
                    | Keyword::CASE
            )
    };
    let mut count = 0;
    // Whether the previous significant token ends a value (so a sign after it is a
    // binary operator).
    let mut after_value = false;
    for token in tokens {
        let (operator, value) = match &token {
            Token::Whitespace(_) => continue,
            Token::Word(w) if operator_word(w.keyword) => (true, false),
            Token::Word(w) => (false, !clause_word(w.keyword)),
            Token::Plus | Token::Minus => (after_value, false),
            Token::Comma
            | Token::LParen
            | Token::LBrace
            | Token::SemiColon
            | Token::EOF
            | Token::Colon
            | Token::Placeholder(_) => (false, matches!(token, Token::Placeholder(_))),
            Token::RParen | Token::RBracket | Token::RBrace => (false, true),
            Token::Number(..)
            | Token::Char(_)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedByteStringLiteral(_) => (false, true),
            // Every other symbol: comparison, arithmetic, concatenation, casts,
            // subscripts, field access, JSON operators.
            _ => (true, false),
        };
        if operator {
            count += 1;
        }
        after_value = value;
    }
    Ok(count)
}

/// The catalog (PostgreSQL "database") every table lives in.
pub const CATALOG: &str = "opendata";

/// Limits and tuning of the SQL engine (`[sql]` in the server's configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqlConfig {
    /// Memory one statement's operators (aggregations, sorts, joins) may hold, in
    /// bytes; drawn from the server's memory budget as well. A statement past it fails
    /// with SQLSTATE 53200.
    pub max_query_memory_bytes: u64,
    /// Longest statement text accepted, in bytes.
    pub max_statement_bytes: usize,
    /// Rows per batch read from storage and sent through the plan.
    pub batch_size: usize,
    /// Partitions a scan is split into (0: one per core).
    pub target_partitions: usize,
}

impl Default for SqlConfig {
    fn default() -> Self {
        Self {
            max_query_memory_bytes: 256 * 1024 * 1024,
            max_statement_bytes: 1024 * 1024,
            batch_size: 8192,
            target_partitions: 0,
        }
    }
}

impl SqlConfig {
    /// Checks the settings.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.max_query_memory_bytes < 1024 * 1024 {
            return Err("sql.max_query_memory_bytes must be at least 1 MiB".into());
        }
        if self.max_statement_bytes == 0 {
            return Err("sql.max_statement_bytes must be at least 1".into());
        }
        if !(1..=1_000_000).contains(&self.batch_size) {
            return Err("sql.batch_size must be from 1 to 1,000,000".into());
        }
        Ok(())
    }
}

/// The databases SQL reads.
#[derive(Clone)]
pub struct Sources {
    /// The log database.
    pub log: LogHandle,
    /// The time series database.
    pub timeseries: TimeSeriesHandle,
    /// The PromQL engine `promql(...)` evaluates with (its limits and memory budget).
    pub promql: Engine,
    /// The vector database.
    pub vector: VectorHandle,
}

/// The SQL engine. Cheap to clone; every clone shares the session and the counters.
#[derive(Clone)]
pub struct SqlEngine {
    inner: Arc<Inner>,
}

struct Inner {
    context: SessionContext,
    parser: PostgresCompatibilityParser,
    config: SqlConfig,
    budget: MemoryBudget,
    counters: ScanCounters,
    read_only: bool,
}

impl SqlEngine {
    /// An engine over `sources`: schemas `log`, `timeseries`, `vector` and
    /// `pg_catalog` in the catalog `opendata`, and the table functions `promql` and
    /// `vector_search`.
    pub fn new(sources: Sources, config: SqlConfig, budget: MemoryBudget) -> Result<Self> {
        config.validate().map_err(Error::Invalid)?;
        let partitions = if config.target_partitions == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            config.target_partitions
        };
        let session = SessionConfig::new()
            .with_default_catalog_and_schema(CATALOG, "public")
            .with_information_schema(true)
            .with_batch_size(config.batch_size)
            .with_target_partitions(partitions);
        let context = SessionContext::new_with_config(session);
        let counters = ScanCounters::default();
        let catalog = MemoryCatalogProvider::new();
        let public = MemorySchemaProvider::new();
        catalog.register_schema("public", Arc::new(public))?;

        let log_schema = MemorySchemaProvider::new();
        log_schema.register_table(
            "entries".into(),
            Arc::new(log::EntriesTable::new(
                sources.log.clone(),
                counters.clone(),
            )),
        )?;
        log_schema.register_table(
            "keys".into(),
            Arc::new(log::KeysTable::new(sources.log.clone())),
        )?;
        catalog.register_schema("log", Arc::new(log_schema))?;

        let ts_schema = MemorySchemaProvider::new();
        let max_series = sources.promql.config().max_series;
        ts_schema.register_table(
            "samples".into(),
            Arc::new(timeseries::SamplesTable::new(
                sources.timeseries.clone(),
                counters.clone(),
                max_series,
            )),
        )?;
        ts_schema.register_table(
            "series".into(),
            Arc::new(timeseries::SeriesTable::new(
                sources.timeseries.clone(),
                max_series,
            )),
        )?;
        catalog.register_schema("timeseries", Arc::new(ts_schema))?;

        catalog.register_schema(
            "vector",
            Arc::new(vector::VectorSchema::new(
                sources.vector.clone(),
                counters.clone(),
            )),
        )?;
        context.register_catalog(CATALOG, Arc::new(catalog));

        context.register_udtf(
            "promql",
            Arc::new(timeseries::PromqlFunction::new(
                sources.timeseries.clone(),
                sources.promql.clone(),
            )),
        );
        context.register_udtf(
            "vector_search",
            Arc::new(vector::VectorSearchFunction::new(sources.vector.clone())),
        );
        datafusion_pg_catalog::pg_catalog::setup_pg_catalog(
            &context,
            CATALOG,
            EmptyContextProvider,
        )
        .map_err(|e| Error::DataFusion(*e))?;
        let read_only = sources.log.is_replica();
        Ok(Self {
            inner: Arc::new(Inner {
                context,
                parser: PostgresCompatibilityParser::new(),
                config,
                budget,
                counters,
                read_only,
            }),
        })
    }

    /// The engine's settings.
    pub fn config(&self) -> &SqlConfig {
        &self.inner.config
    }

    /// Rows and bytes read by scans so far.
    pub fn counters(&self) -> &ScanCounters {
        &self.inner.counters
    }

    /// True on a read-only replica (writes are refused).
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    /// Parses `sql` (PostgreSQL dialect, with the rewrites PostgreSQL clients'
    /// catalog queries need) into statements. Nesting deeper than 50 levels is refused
    /// by the parser, and text with more than [`MAX_OPERATORS`] binary operators
    /// before parsing: a chain `a + b + c + ...` nests one level per operator, and
    /// planning recurses along it.
    pub fn parse(&self, sql: &str) -> Result<Vec<Statement>> {
        if sql.len() > self.inner.config.max_statement_bytes {
            return Err(Error::Limit(format!(
                "the statement is {} bytes; sql.max_statement_bytes is {}",
                sql.len(),
                self.inner.config.max_statement_bytes
            )));
        }
        let operators = binary_operators(sql)?;
        if operators > MAX_OPERATORS {
            return Err(Error::TooComplex(format!(
                "the statement has {operators} operators; at most {MAX_OPERATORS} are allowed \
                 (split it, or use IN lists)"
            )));
        }
        self.inner
            .parser
            .parse(sql)
            .map_err(|e| Error::DataFusion(DataFusionError::SQL(Box::new(e), None)))
    }

    /// A session state for one statement: the shared catalog, with a memory pool of
    /// its own.
    fn state(&self) -> Result<SessionState> {
        let pool = Arc::new(BudgetPool::new(
            self.inner.budget.clone(),
            self.inner.config.max_query_memory_bytes as usize,
        ));
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(pool)
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .build_arc()?;
        Ok(
            SessionStateBuilder::new_from_existing(self.inner.context.state())
                .with_runtime_env(runtime)
                .build(),
        )
    }

    /// Plans one statement. Placeholders (`$1`...) stay in the plan until
    /// [`LogicalPlan::with_param_values`] fills them.
    pub async fn plan(&self, statement: &Statement) -> Result<LogicalPlan> {
        let state = self.state()?;
        let plan = state
            .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(
                statement.clone(),
            )))
            .await?;
        if matches!(plan, LogicalPlan::Ddl(_) | LogicalPlan::Copy(_)) {
            return Err(Error::Unsupported(
                "the tables are defined by the databases: CREATE, DROP and COPY are not supported"
                    .into(),
            ));
        }
        if let LogicalPlan::Dml(dml) = &plan
            && dml.op
                != datafusion::logical_expr::WriteOp::Insert(
                    datafusion::logical_expr::dml::InsertOp::Append,
                )
        {
            return Err(Error::Unsupported(format!(
                "{} is not supported: log.entries takes INSERT, and the other tables are read-only",
                dml.op
            )));
        }
        Ok(plan)
    }

    /// Optimizes and runs a planned statement, streaming its result.
    pub async fn execute(&self, plan: LogicalPlan) -> Result<SendableRecordBatchStream> {
        let state = self.state()?;
        let plan = state.optimize(&plan)?;
        let physical = cooperative(state.create_physical_plan(&plan).await?)?;
        Ok(datafusion::physical_plan::execute_stream(
            physical,
            state.task_ctx(),
        )?)
    }

    /// Parses, plans and runs `sql` (one statement), collecting the result.
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let statements = self.parse(sql)?;
        let [statement] = statements.as_slice() else {
            return Err(Error::Invalid(format!(
                "expected one statement, got {}",
                statements.len()
            )));
        };
        let plan = self.plan(statement).await?;
        let stream = self.execute(plan).await?;
        Ok(datafusion::physical_plan::common::collect(stream).await?)
    }
}

/// What a statement does to one database: the scope a client needs to run it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Access {
    /// `log`, `timeseries` or `vector`.
    pub database: &'static str,
    /// True for a write (`INSERT INTO log.entries`), false for a read.
    pub write: bool,
}

/// The database a table of ours reads, or `None` for the catalog's own tables
/// (`pg_catalog`, `information_schema`) and constants.
fn database_of(provider: &dyn datafusion::catalog::TableProvider) -> Option<&'static str> {
    if provider.is::<log::EntriesTable>() || provider.is::<log::KeysTable>() {
        Some("log")
    } else if provider.is::<timeseries::SamplesTable>()
        || provider.is::<timeseries::SeriesTable>()
        || provider.is::<timeseries::PromqlTable>()
    {
        Some("timeseries")
    } else if provider.is::<vector::CollectionTable>() || provider.is::<vector::SearchTable>() {
        Some("vector")
    } else {
        None
    }
}

/// Every database a planned statement reads or writes, subqueries included, sorted
/// and without repeats.
pub fn accesses(plan: &LogicalPlan) -> Vec<Access> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let mut found = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        match node {
            LogicalPlan::TableScan(scan) => {
                if let Ok(provider) =
                    datafusion::catalog::default_table_source::source_as_provider(&scan.source)
                    && let Some(database) = database_of(provider.as_ref())
                {
                    found.push(Access {
                        database,
                        write: false,
                    });
                }
            }
            LogicalPlan::Dml(dml) => {
                if let Ok(provider) =
                    datafusion::catalog::default_table_source::source_as_provider(&dml.target)
                    && let Some(database) = database_of(provider.as_ref())
                {
                    found.push(Access {
                        database,
                        write: true,
                    });
                }
            }
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found.sort();
    found.dedup();
    found
}

/// `plan` with every operator's output made cooperative: each batch spends the task's
/// scheduling budget, so an operator that makes many batches from one input batch (a
/// nested-loop join, say) still yields, and a statement that is cancelled or times
/// out stops at its next batch instead of running on. DataFusion's own rule covers
/// only the leaves.
fn cooperative(
    plan: std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>,
) -> Result<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::physical_plan::ExecutionPlan;
    use datafusion::physical_plan::coop::CooperativeExec;
    Ok(plan
        .transform_up(|node| {
            if node.is::<CooperativeExec>() {
                return Ok(Transformed::no(node));
            }
            let wrapped: Arc<dyn ExecutionPlan> = Arc::new(CooperativeExec::new(node));
            Ok(Transformed::yes(wrapped))
        })?
        .data)
}

/// A constant expression folded to its value (`now() - interval '1 hour'`,
/// `make_array(0.1, 0.2)`), or `None` when it is not constant.
pub(crate) fn fold_literal(e: &Expr) -> Option<ScalarValue> {
    if let Expr::Literal(v, _) = e {
        return Some(v.clone());
    }
    let simplifier = ExprSimplifier::new(SimplifyContext::builder().with_current_time().build());
    match simplifier.simplify(e.clone()).ok()? {
        Expr::Literal(v, _) => Some(v),
        _ => None,
    }
}

/// A statement's memory pool: at most `limit` bytes, each also reserved from the
/// server's memory budget, so SQL and PromQL share one budget.
#[derive(Debug)]
struct BudgetPool {
    limit: usize,
    used: AtomicUsize,
    reservation: Mutex<Reservation>,
}

impl BudgetPool {
    fn new(budget: MemoryBudget, limit: usize) -> Self {
        Self {
            limit,
            used: AtomicUsize::new(0),
            reservation: Mutex::new(Reservation::empty(&budget)),
        }
    }
}

impl std::fmt::Display for BudgetPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "statement memory: {} of {} bytes",
            self.used.load(Ordering::Relaxed),
            self.limit
        )
    }
}

impl MemoryPool for BudgetPool {
    fn name(&self) -> &str {
        "opendata-budget"
    }

    fn grow(&self, _reservation: &MemoryReservation, additional: usize) {
        self.used.fetch_add(additional, Ordering::Relaxed);
        self.reservation.lock().force_grow(additional as u64);
    }

    fn shrink(&self, _reservation: &MemoryReservation, shrink: usize) {
        self.used.fetch_sub(shrink, Ordering::Relaxed);
        self.reservation.lock().shrink(shrink as u64);
    }

    fn try_grow(
        &self,
        reservation: &MemoryReservation,
        additional: usize,
    ) -> datafusion::error::Result<()> {
        let before = self.used.fetch_add(additional, Ordering::Relaxed);
        if before + additional > self.limit {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(DataFusionError::ResourcesExhausted(format!(
                "the statement needs more than sql.max_query_memory_bytes ({} bytes): \
                 {} asked for {additional} more",
                self.limit,
                reservation.consumer().name()
            )));
        }
        if let Err(e) = self.reservation.lock().grow(additional as u64) {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(DataFusionError::ResourcesExhausted(e.to_string()));
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_count_binary_operators_but_not_signs() {
        assert_eq!(binary_operators("SELECT 1").unwrap(), 0);
        assert_eq!(binary_operators("SELECT -1, +2, (-3)").unwrap(), 0);
        assert_eq!(
            binary_operators("SELECT a - 1 FROM t WHERE b = -2").unwrap(),
            2
        );
        assert_eq!(
            binary_operators("SELECT timestamp - timestamp - timestamp").unwrap(),
            2
        );
        assert_eq!(
            binary_operators("SELECT x FROM t WHERE a AND b OR c").unwrap(),
            2
        );
        assert_eq!(binary_operators("SELECT labels['job'] || 'x'").unwrap(), 2);
        assert_eq!(
            binary_operators("INSERT INTO t VALUES (1, -1), (2, -2)").unwrap(),
            0
        );
        let chain = format!("SELECT {}", vec!["1"; 5000].join(" + "));
        assert_eq!(binary_operators(&chain).unwrap(), 4999);
    }

    #[test]
    fn should_refuse_growth_past_the_statement_limit_and_the_budget() {
        let budget = MemoryBudget::new(10_000);
        let pool = Arc::new(BudgetPool::new(budget.clone(), 4_000));
        let pool_dyn: Arc<dyn MemoryPool> = pool.clone();
        let r = datafusion::execution::memory_pool::MemoryConsumer::new("t").register(&pool_dyn);
        assert!(r.try_grow(3_000).is_ok());
        assert_eq!(budget.used(), 3_000);
        assert!(r.try_grow(2_000).is_err());
        let _held = budget.reserve(6_500).expect("room");
        assert!(r.try_grow(600).is_err(), "the budget is spent");
        r.shrink(3_000);
        assert_eq!(budget.used(), 6_500);
    }

    #[test]
    fn should_refuse_oversized_statements_before_parsing() {
        let config = SqlConfig {
            max_statement_bytes: 10,
            ..SqlConfig::default()
        };
        assert!(config.validate().is_ok());
        assert!(
            SqlConfig {
                batch_size: 0,
                ..SqlConfig::default()
            }
            .validate()
            .is_err()
        );
    }
}
