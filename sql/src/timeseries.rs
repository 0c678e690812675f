//! `timeseries.samples`, `timeseries.series` and the `promql(...)` table function.
//!
//! `samples` and `series` push down `metric = ...` / `metric IN (...)`, label
//! comparisons written as map access (`labels['job'] = 'api'`), and time bounds on
//! `timestamp`; they become the label matchers and the time range of one index
//! lookup, so only the matching series' chunks of the buckets in range are read.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, Float64Builder, MapBuilder, RecordBatch, RecordBatchOptions, StringBuilder,
    TimestampMillisecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{Session, TableFunctionImpl};
use datafusion::common::ScalarValue;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::streaming::PartitionStream;
use opendata_timeseries::model::{Labels, METRIC_NAME, MatchKind, Matcher, is_stale_marker};
use opendata_timeseries::promql::{Engine, QueryOptions, Value};
use opendata_timeseries::{Querier, SeriesSet, TimeSeriesHandle, TimeSeriesRead};

use crate::error::TableError;
use crate::filters::{self, Cmp, IntRange};
use crate::metrics::ScanCounters;
use crate::scan::{BatchReader, batch_stream, streaming_scan};

fn utc() -> Option<Arc<str>> {
    Some("UTC".into())
}

/// The type of the `labels` column: a map from label name to value.
pub fn labels_type() -> DataType {
    use datafusion::arrow::array::Array;
    MapBuilder::new(None, StringBuilder::new(), StringBuilder::new())
        .finish()
        .data_type()
        .clone()
}

/// The schema of `timeseries.samples` (and of `promql(...)`).
pub fn samples_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("metric", DataType::Utf8, false),
        Field::new("labels", labels_type(), false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, utc()),
            false,
        ),
        Field::new("value", DataType::Float64, false),
    ]))
}

/// The schema of `timeseries.series`.
pub fn series_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("metric", DataType::Utf8, false),
        Field::new("labels", labels_type(), false),
    ]))
}

/// `labels['name']`: the label name.
fn label_access(e: &Expr) -> Option<&str> {
    let e = match e {
        Expr::Cast(c) => c.expr.as_ref(),
        other => other,
    };
    let Expr::ScalarFunction(f) = e else {
        return None;
    };
    if f.func.name() != "get_field" || f.args.len() != 2 {
        return None;
    }
    if filters::column_of(&f.args[0]) != Some("labels") {
        return None;
    }
    filters::literal_of(&f.args[1]).and_then(filters::string_of)
}

/// A label predicate as a matcher, and whether the matcher is exactly the predicate.
fn label_matcher(e: &Expr) -> Option<(Matcher, bool)> {
    if let Some(values) = filters::string_set(e, "metric") {
        let matcher = if values.len() == 1 {
            Matcher::equal(METRIC_NAME, values[0].clone())
        } else {
            let alternatives: Vec<String> = values.iter().map(|v| regex_escape(v)).collect();
            Matcher::new(MatchKind::Regex, METRIC_NAME, alternatives.join("|")).ok()?
        };
        // An empty name would select series without one, which a row never shows.
        return (!values.iter().any(String::is_empty)).then_some((matcher, true));
    }
    if let Some((lhs, cmp, v)) = filters::comparison(e)
        && let Some(name) = label_access(lhs)
        && let Some(value) = filters::string_of(v)
        && !value.is_empty()
        && name != METRIC_NAME
    {
        return match cmp {
            Cmp::Eq => Some((Matcher::equal(name, value), true)),
            // `labels['x'] <> 'v'` is NULL for series without `x`; the matcher keeps
            // them, so SQL filters again above.
            Cmp::NotEq => Matcher::new(MatchKind::NotEqual, name, value)
                .ok()
                .map(|m| (m, false)),
            _ => None,
        };
    }
    // `labels['x'] ~ 're'`: unanchored in SQL, so pushed as `.*(?:re).*`, rechecked.
    if let Expr::BinaryExpr(b) = e
        && b.op == Operator::RegexMatch
        && let Some(name) = label_access(&b.left)
        && let Some(re) = filters::literal_of(&b.right).and_then(filters::string_of)
    {
        return Matcher::new(MatchKind::Regex, name, format!(".*(?:{re}).*"))
            .ok()
            .map(|m| (m, false));
    }
    None
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn pushdown(e: &Expr, with_time: bool) -> TableProviderFilterPushDown {
    if let Some((_, exact)) = label_matcher(e) {
        return if exact {
            TableProviderFilterPushDown::Exact
        } else {
            TableProviderFilterPushDown::Inexact
        };
    }
    if with_time && filters::is_range(e, "timestamp", true) {
        return TableProviderFilterPushDown::Exact;
    }
    TableProviderFilterPushDown::Unsupported
}

/// Matchers and the time range the filters allow.
fn selection(filters: &[Expr]) -> (Vec<Matcher>, IntRange) {
    let mut matchers = Vec::new();
    let mut time = IntRange::default();
    for f in filters {
        if let Some((m, _)) = label_matcher(f) {
            matchers.push(m);
        } else {
            filters::narrow_range(f, "timestamp", true, &mut time);
        }
    }
    (matchers, time)
}

/// The time range to read: the filters' bounds within the data's.
fn bounds(querier: &Querier, time: IntRange) -> Option<(i64, i64)> {
    let (lo, hi) = querier.time_bounds()?;
    let start = time.lo.max(lo);
    let end = time.hi.min(hi);
    (start <= end && !time.is_empty()).then_some((start, end))
}

/// Builds `metric`, `labels`, `timestamp`, `value` columns (those projected).
struct RowBuilder {
    projection: Vec<usize>,
    metric: StringBuilder,
    labels: MapBuilder<StringBuilder, StringBuilder>,
    timestamp: TimestampMillisecondBuilder,
    value: Float64Builder,
    rows: usize,
}

impl RowBuilder {
    fn new(projection: Vec<usize>) -> Self {
        Self {
            projection,
            metric: StringBuilder::new(),
            labels: MapBuilder::new(None, StringBuilder::new(), StringBuilder::new()),
            timestamp: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            value: Float64Builder::new(),
            rows: 0,
        }
    }

    fn wants(&self, column: usize) -> bool {
        self.projection.contains(&column)
    }

    /// The `metric` and `labels` columns of `n` rows of the series `labels`.
    fn push_labels(&mut self, labels: &Labels, n: usize) -> Result<()> {
        if self.wants(0) {
            let metric = labels.metric_name().unwrap_or("");
            for _ in 0..n {
                self.metric.append_value(metric);
            }
        }
        if self.wants(1) {
            for _ in 0..n {
                for l in labels.as_slice() {
                    if l.name != METRIC_NAME {
                        self.labels.keys().append_value(&l.name);
                        self.labels.values().append_value(&l.value);
                    }
                }
                self.labels.append(true)?;
            }
        }
        Ok(())
    }

    /// Appends one row per sample of `samples`, all of the series `labels`.
    fn push_samples(&mut self, labels: &Labels, samples: &[(i64, f64)]) -> Result<()> {
        self.push_labels(labels, samples.len())?;
        if self.wants(2) {
            for &(t, _) in samples {
                self.timestamp.append_value(t);
            }
        }
        if self.wants(3) {
            for &(_, v) in samples {
                self.value.append_value(v);
            }
        }
        self.rows += samples.len();
        Ok(())
    }

    /// Appends one row: a series (`sample` None, `timeseries.series`) or a sample.
    fn push(&mut self, labels: &Labels, sample: Option<(i64, f64)>) -> Result<()> {
        match sample {
            Some(sample) => self.push_samples(labels, &[sample]),
            None => {
                self.push_labels(labels, 1)?;
                self.rows += 1;
                Ok(())
            }
        }
    }

    fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.projection.len());
        for &c in &self.projection {
            columns.push(match c {
                0 => Arc::new(self.metric.finish()),
                1 => Arc::new(self.labels.finish()),
                2 => Arc::new(self.timestamp.finish()),
                _ => Arc::new(self.value.finish()),
            });
        }
        let options = RecordBatchOptions::new().with_row_count(Some(self.rows));
        self.rows = 0;
        Ok(RecordBatch::try_new_with_options(
            schema.clone(),
            columns,
            &options,
        )?)
    }
}

/// `timeseries.samples`.
pub struct SamplesTable {
    db: TimeSeriesHandle,
    schema: SchemaRef,
    counters: ScanCounters,
    max_series: u64,
}

impl fmt::Debug for SamplesTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timeseries.samples")
    }
}

impl SamplesTable {
    /// The table over `db`; a scan selecting more than `max_series` series fails
    /// (0: no limit).
    pub fn new(db: TimeSeriesHandle, counters: ScanCounters, max_series: u64) -> Self {
        Self {
            db,
            schema: samples_schema(),
            counters,
            max_series,
        }
    }
}

fn projected(
    schema: &SchemaRef,
    projection: Option<&Vec<usize>>,
) -> Result<(SchemaRef, Vec<usize>)> {
    let projection: Vec<usize> = match projection {
        Some(p) => p.clone(),
        None => (0..schema.fields().len()).collect(),
    };
    Ok((Arc::new(schema.project(&projection)?), projection))
}

#[async_trait]
impl TableProvider for SamplesTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters.iter().map(|f| pushdown(f, true)).collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (schema, projection) = projected(&self.schema, projection)?;
        let (matchers, time) = selection(filters);
        let querier = self.db.querier();
        let stream = Arc::new(SamplesPartition {
            querier,
            matchers,
            time,
            schema: schema.clone(),
            projection,
            batch_size: state.config().batch_size().max(1),
            counters: self.counters.clone(),
            max_series: self.max_series,
        });
        streaming_scan(schema, vec![stream], limit)
    }
}

struct SamplesPartition {
    querier: Querier,
    matchers: Vec<Matcher>,
    time: IntRange,
    schema: SchemaRef,
    projection: Vec<usize>,
    batch_size: usize,
    counters: ScanCounters,
    max_series: u64,
}

impl fmt::Debug for SamplesPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timeseries.samples {:?} {:?}", self.matchers, self.time)
    }
}

/// A series being emitted: its labels, its samples, and how many are out.
type Emitting = (Labels, Vec<(i64, f64)>, usize);

struct SamplesStream {
    querier: Querier,
    matchers: Vec<Matcher>,
    time: IntRange,
    opened: bool,
    set: Option<SeriesSet>,
    current: Option<Emitting>,
    rows: RowBuilder,
    schema: SchemaRef,
    batch_size: usize,
    counters: ScanCounters,
    max_series: u64,
    reservation: MemoryReservation,
}

/// Fails when a selection of `count` series holding `bytes` is over the series
/// limit or cannot be reserved from the statement's memory pool.
fn admit(
    table: &str,
    count: usize,
    bytes: usize,
    max_series: u64,
    reservation: &mut MemoryReservation,
) -> Result<()> {
    if max_series > 0 && count as u64 > max_series {
        return Err(DataFusionError::ResourcesExhausted(format!(
            "{table} selects {count} series, more than the limit of {max_series} \
             (timeseries.query.max_series); narrow it with metric or labels['name'] filters"
        )));
    }
    reservation.try_grow(bytes)
}

#[async_trait]
impl BatchReader for SamplesStream {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        if !self.opened {
            self.opened = true;
            if let Some((start, end)) = bounds(&self.querier, self.time) {
                let set = self
                    .querier
                    .select(&self.matchers, start, end)
                    .await
                    .map_err(|e| TableError::storage(e, false))?;
                admit(
                    "timeseries.samples",
                    set.series_count(),
                    set.memory_size(),
                    self.max_series,
                    &mut self.reservation,
                )?;
                self.set = Some(set);
            }
        }
        let Some(set) = self.set.as_mut() else {
            return Ok(None);
        };
        while self.rows.rows < self.batch_size {
            if self.current.is_none() {
                match set
                    .next()
                    .await
                    .map_err(|e| TableError::storage(e, false))?
                {
                    Some(series) => {
                        let samples: Vec<(i64, f64)> = series
                            .samples
                            .iter()
                            .filter(|s| !is_stale_marker(s.value))
                            .map(|s| (s.timestamp_ms, s.value))
                            .collect();
                        self.counters
                            .add_read(series.samples.len() as u64, series.samples.len() * 16);
                        self.current = Some((series.labels, samples, 0));
                    }
                    None => {
                        self.set = None;
                        break;
                    }
                }
            }
            let Some((labels, samples, next)) = self.current.as_mut() else {
                break;
            };
            let take = (samples.len() - *next).min(self.batch_size - self.rows.rows);
            self.rows
                .push_samples(labels, &samples[*next..*next + take])?;
            *next += take;
            if *next >= samples.len() {
                self.current = None;
            }
        }
        if self.rows.rows == 0 {
            return Ok(None);
        }
        self.rows.finish(&self.schema).map(Some)
    }
}

impl PartitionStream for SamplesPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let reservation = MemoryConsumer::new("timeseries.samples").register(ctx.memory_pool());
        let state = SamplesStream {
            querier: self.querier.clone(),
            matchers: self.matchers.clone(),
            time: self.time,
            opened: false,
            set: None,
            current: None,
            rows: RowBuilder::new(self.projection.clone()),
            schema: self.schema.clone(),
            batch_size: self.batch_size,
            counters: self.counters.clone(),
            max_series: self.max_series,
            reservation,
        };
        batch_stream(self.schema.clone(), state)
    }
}

/// `timeseries.series`.
pub struct SeriesTable {
    db: TimeSeriesHandle,
    schema: SchemaRef,
    max_series: u64,
}

impl fmt::Debug for SeriesTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timeseries.series")
    }
}

impl SeriesTable {
    /// The table over `db`; a scan selecting more than `max_series` series fails
    /// (0: no limit).
    pub fn new(db: TimeSeriesHandle, max_series: u64) -> Self {
        Self {
            db,
            schema: series_schema(),
            max_series,
        }
    }
}

#[async_trait]
impl TableProvider for SeriesTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters.iter().map(|f| pushdown(f, false)).collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (schema, projection) = projected(&self.schema, projection)?;
        let (matchers, _) = selection(filters);
        let stream = Arc::new(SeriesPartition {
            querier: self.db.querier(),
            matchers,
            schema: schema.clone(),
            projection,
            batch_size: state.config().batch_size().max(1),
            limit,
            max_series: self.max_series,
        });
        streaming_scan(schema, vec![stream], limit)
    }
}

struct SeriesPartition {
    querier: Querier,
    matchers: Vec<Matcher>,
    schema: SchemaRef,
    projection: Vec<usize>,
    batch_size: usize,
    limit: Option<usize>,
    max_series: u64,
}

impl fmt::Debug for SeriesPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timeseries.series {:?}", self.matchers)
    }
}

/// The label sets of `timeseries.series`, emitted a batch at a time; the set is held
/// under a reservation from the statement's memory pool.
struct SeriesStream {
    partition: Arc<SeriesPartition>,
    selected: Option<Box<dyn Iterator<Item = Labels> + Send>>,
    rows: RowBuilder,
    reservation: MemoryReservation,
}

#[async_trait]
impl BatchReader for SeriesStream {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let p = self.partition.clone();
        if self.selected.is_none() {
            let selected: Box<dyn Iterator<Item = Labels> + Send> =
                match bounds(&p.querier, IntRange::default()) {
                    Some((start, end)) => {
                        let set = p
                            .querier
                            .select(&p.matchers, start, end)
                            .await
                            .map_err(|e| TableError::storage(e, false))?;
                        admit(
                            "timeseries.series",
                            set.series_count(),
                            set.memory_size(),
                            p.max_series,
                            &mut self.reservation,
                        )?;
                        let labels = set.into_labels();
                        match p.limit {
                            Some(n) => Box::new(labels.take(n)),
                            None => Box::new(labels),
                        }
                    }
                    None => Box::new(std::iter::empty()),
                };
            self.selected = Some(selected);
        }
        let Some(selected) = self.selected.as_mut() else {
            return Ok(None);
        };
        for labels in selected.by_ref().take(p.batch_size) {
            self.rows.push(&labels, None)?;
        }
        if self.rows.rows == 0 {
            return Ok(None);
        }
        self.rows.finish(&p.schema).map(Some)
    }
}

impl PartitionStream for SeriesPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let partition = Arc::new(SeriesPartition {
            querier: self.querier.clone(),
            matchers: self.matchers.clone(),
            schema: self.schema.clone(),
            projection: self.projection.clone(),
            batch_size: self.batch_size,
            limit: self.limit,
            max_series: self.max_series,
        });
        let state = SeriesStream {
            rows: RowBuilder::new(self.projection.clone()),
            partition,
            selected: None,
            reservation: MemoryConsumer::new("timeseries.series").register(ctx.memory_pool()),
        };
        batch_stream(self.schema.clone(), state)
    }
}

/// `promql(query [, start, end, step])` and `promql(query, time)`: the engine's
/// result as rows of `(metric, labels, timestamp, value)`.
pub struct PromqlFunction {
    db: TimeSeriesHandle,
    engine: Engine,
}

impl fmt::Debug for PromqlFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("promql()")
    }
}

impl PromqlFunction {
    /// The function over `db`, evaluating with `engine` (its limits and budget).
    pub fn new(db: TimeSeriesHandle, engine: Engine) -> Self {
        Self { db, engine }
    }
}

/// A time argument in milliseconds: a timestamp, RFC 3339 text, or Unix seconds.
pub(crate) fn time_arg(v: &ScalarValue, what: &str) -> Result<i64> {
    if let Some((n, per)) = filters::int_literal(v, true)
        && !matches!(
            v,
            ScalarValue::Int8(_)
                | ScalarValue::Int16(_)
                | ScalarValue::Int32(_)
                | ScalarValue::Int64(_)
                | ScalarValue::UInt8(_)
                | ScalarValue::UInt16(_)
                | ScalarValue::UInt32(_)
                | ScalarValue::UInt64(_)
        )
    {
        return Ok((n / per) as i64);
    }
    let seconds = |s: f64| -> Result<i64> {
        if !s.is_finite() || s.abs() > 9.2e15 {
            return Err(TableError::invalid(format!(
                "promql: {what} {s} is out of range"
            )));
        }
        Ok((s * 1000.0).round() as i64)
    };
    match v {
        ScalarValue::Int64(Some(n)) => seconds(*n as f64),
        ScalarValue::Int32(Some(n)) => seconds(*n as f64),
        ScalarValue::Float64(Some(f)) => seconds(*f),
        other => {
            let Some(s) = filters::string_of(other) else {
                return Err(TableError::invalid(format!(
                    "promql: {what} must be a timestamp, RFC 3339 text or Unix seconds, not {}",
                    other.data_type()
                )));
            };
            if let Ok(f) = s.trim().parse::<f64>() {
                return seconds(f);
            }
            datafusion::arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(s.trim())
                .map(|ns| ns.div_euclid(1_000_000))
                .map_err(|_| {
                    TableError::invalid(format!(
                        "promql: {what} {s:?} is not a timestamp, RFC 3339 text or Unix seconds"
                    ))
                })
        }
    }
}

/// A step argument in milliseconds: an interval, a PromQL duration (`"30s"`, `"1m30s"`)
/// or seconds.
pub(crate) fn step_arg(v: &ScalarValue) -> Result<i64> {
    let bad = || {
        TableError::invalid(
            "promql: step must be an interval, a duration such as '30s', or seconds",
        )
    };
    let ms = match v {
        ScalarValue::IntervalMonthDayNano(Some(i)) if i.months == 0 => {
            i.days as i64 * 86_400_000 + i.nanoseconds / 1_000_000
        }
        ScalarValue::IntervalDayTime(Some(i)) => i.days as i64 * 86_400_000 + i.milliseconds as i64,
        ScalarValue::DurationMillisecond(Some(n)) => *n,
        ScalarValue::DurationSecond(Some(n)) => n.saturating_mul(1000),
        ScalarValue::Int64(Some(n)) => n.saturating_mul(1000),
        ScalarValue::Int32(Some(n)) => *n as i64 * 1000,
        ScalarValue::Float64(Some(f)) if f.is_finite() && *f > 0.0 && *f < 1e12 => {
            (f * 1000.0).round() as i64
        }
        other => {
            let s = filters::string_of(other).ok_or_else(bad)?.trim();
            if let Ok(f) = s.parse::<f64>() {
                if !(f.is_finite() && f > 0.0 && f < 1e12) {
                    return Err(bad());
                }
                (f * 1000.0).round() as i64
            } else {
                parse_duration(s).ok_or_else(bad)?
            }
        }
    };
    if ms <= 0 {
        return Err(TableError::invalid("promql: step must be positive"));
    }
    Ok(ms)
}

/// A PromQL duration (`1h30m`, `500ms`) in milliseconds.
fn parse_duration(s: &str) -> Option<i64> {
    let mut total: i64 = 0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (1, 2)
        } else {
            let ms = match rest.chars().next()? {
                's' => 1_000,
                'm' => 60_000,
                'h' => 3_600_000,
                'd' => 86_400_000,
                'w' => 604_800_000,
                'y' => 31_536_000_000,
                _ => return None,
            };
            (ms, 1)
        };
        rest = &rest[len..];
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    Some(total)
}

impl TableFunctionImpl for PromqlFunction {
    fn call(&self, args: &[Expr]) -> Result<Arc<dyn TableProvider>> {
        let literal = |i: usize, what: &str| -> Result<ScalarValue> {
            let e = &args[i];
            crate::engine::fold_literal(e).ok_or_else(|| {
                TableError::invalid(format!("promql: {what} must be a constant, not {e}"))
            })
        };
        if args.is_empty() || args.len() == 3 || args.len() > 4 {
            return Err(TableError::invalid(
                "promql takes (query), (query, time) or (query, start, end, step)",
            ));
        }
        let query = literal(0, "the query")?;
        let query = filters::string_of(&query)
            .ok_or_else(|| TableError::invalid("promql: the query must be text"))?
            .to_string();
        let now = opendata_timeseries::storage::now_ms();
        let range = match args.len() {
            1 => (now, now, 0),
            2 => {
                let t = time_arg(&literal(1, "time")?, "time")?;
                (t, t, 0)
            }
            _ => (
                time_arg(&literal(1, "start")?, "start")?,
                time_arg(&literal(2, "end")?, "end")?,
                step_arg(&literal(3, "step")?)?,
            ),
        };
        // Parse now, so a bad query fails at planning with the engine's message.
        let parsed = self
            .engine
            .parse(&query)
            .map_err(|e| TableError::invalid(format!("promql: {e}")))?;
        Ok(Arc::new(PromqlTable {
            db: self.db.clone(),
            engine: self.engine.clone(),
            query: parsed,
            range,
            schema: samples_schema(),
        }))
    }
}

pub(crate) struct PromqlTable {
    db: TimeSeriesHandle,
    engine: Engine,
    query: opendata_timeseries::promql::Query,
    range: (i64, i64, i64),
    schema: SchemaRef,
}

impl fmt::Debug for PromqlTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "promql({:?}, {:?})", self.query.text(), self.range)
    }
}

#[async_trait]
impl TableProvider for PromqlTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (schema, projection) = projected(&self.schema, projection)?;
        let querier = self.db.querier();
        let (start, end, step) = self.range;
        let options = QueryOptions::default();
        let result = if step == 0 {
            self.engine
                .instant(&querier, &self.query, start, &options)
                .await
        } else {
            self.engine
                .range(&querier, &self.query, start, end, step, &options)
                .await
        };
        let result = result.map_err(|e| {
            let invalid = matches!(
                e,
                opendata_timeseries::promql::QueryError::Parse(_)
                    | opendata_timeseries::promql::QueryError::BadData(_)
            );
            match e {
                opendata_timeseries::promql::QueryError::Unavailable(m)
                | opendata_timeseries::promql::QueryError::Timeout(m) => {
                    DataFusionError::ResourcesExhausted(format!("promql: {m}"))
                }
                other => TableError::storage(format!("promql: {other}"), invalid),
            }
        })?;
        let batch_size = state.config().batch_size().max(1);
        let mut rows = RowBuilder::new(projection);
        let mut batches = Vec::new();
        let mut push = |rows: &mut RowBuilder, labels: &Labels, t: i64, f: f64| -> Result<()> {
            rows.push(labels, Some((t, f)))?;
            if rows.rows >= batch_size {
                batches.push(rows.finish(&schema)?);
            }
            Ok(())
        };
        let empty = Labels::default();
        match &result.value {
            Value::Scalar { t, f } => push(&mut rows, &empty, *t, *f)?,
            Value::String { .. } => {
                return Err(TableError::invalid(
                    "promql: a string result has no rows; use a scalar or vector query",
                ));
            }
            Value::Vector(samples) => {
                for s in samples {
                    push(&mut rows, &s.labels, s.t, s.f)?;
                }
            }
            Value::Matrix(series) => {
                for s in series {
                    for (t, f) in &s.floats {
                        push(&mut rows, &s.labels, *t, *f)?;
                    }
                }
            }
        }
        if rows.rows > 0 {
            batches.push(rows.finish(&schema)?);
        }
        let table = datafusion::datasource::MemTable::try_new(schema, vec![batches])?;
        table.scan(state, None, &[], limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    #[test]
    fn should_parse_promql_durations() {
        assert_eq!(parse_duration("1m30s"), Some(90_000));
        assert_eq!(parse_duration("500ms"), Some(500));
        assert_eq!(parse_duration("1x"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn should_turn_metric_predicates_into_exact_matchers() {
        let (m, exact) = label_matcher(&col("metric").eq(lit("up"))).expect("matcher");
        assert!(exact);
        assert_eq!(m.name, METRIC_NAME);
        let (m, _) =
            label_matcher(&col("metric").in_list(vec![lit("a.b"), lit("c")], false)).expect("in");
        assert_eq!(m.kind, MatchKind::Regex);
        assert_eq!(m.value, "a\\.b|c");
        assert!(label_matcher(&col("metric").eq(lit(""))).is_none());
    }
}
