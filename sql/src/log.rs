//! `log.entries` and `log.keys`: the log database as tables.
//!
//! `log.entries` pushes down `key = ...`, `key IN (...)`, `key LIKE 'prefix%'`,
//! comparisons and `BETWEEN` on `sequence` and on `timestamp` (the time bounds also
//! skip whole segments), and `LIMIT`. `INSERT INTO log.entries (key, value)` appends
//! durably, acknowledged once the log's group commit is in the object store.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, Int64Builder, LargeBinaryArray, LargeStringArray,
    RecordBatch, StringArray, StringBuilder, StringViewArray, TimestampMillisecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::Session;
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan};
use futures::StreamExt;
use opendata_log::{LogHandle, LogIterator, LogRead, Record};

use crate::error::TableError;
use crate::filters::{self, IntRange};
use crate::metrics::ScanCounters;
use crate::scan::{BatchReader, batch_stream, streaming_scan};

/// Keys listed per storage read when a scan walks every key.
const KEY_PAGE: usize = 1_000;
/// A batch is cut at this many value bytes, whatever the batch size.
const BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Records appended per `append` call by an `INSERT`.
const INSERT_CHUNK: usize = 8_192;

fn utc() -> Option<Arc<str>> {
    Some("UTC".into())
}

/// The schema of `log.entries`.
pub fn entries_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Utf8, false),
        // Assigned by the log: nullable only so that an INSERT may leave them out.
        Field::new("sequence", DataType::Int64, true),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, utc()),
            true,
        ),
        Field::new("value", DataType::Binary, false),
    ]))
}

/// The schema of `log.keys`.
pub fn keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("last_sequence", DataType::Int64, false),
    ]))
}

/// `log.entries`.
pub struct EntriesTable {
    log: LogHandle,
    schema: SchemaRef,
    counters: ScanCounters,
}

impl fmt::Debug for EntriesTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("log.entries")
    }
}

impl EntriesTable {
    /// The table over `log`.
    pub fn new(log: LogHandle, counters: ScanCounters) -> Self {
        Self {
            log,
            schema: entries_schema(),
            counters,
        }
    }
}

/// Which keys a scan reads.
#[derive(Debug, Clone)]
enum Keys {
    /// Exactly these (from `=` and `IN`; intersected when several).
    Set(Vec<Bytes>),
    /// Every key with this prefix (empty: every key).
    Prefix(Vec<u8>),
}

/// What the pushed-down filters leave to read.
#[derive(Debug, Clone)]
struct EntryScan {
    keys: Keys,
    sequence: IntRange,
    time: IntRange,
}

impl EntryScan {
    fn from_filters(filters: &[Expr]) -> Self {
        let mut set: Option<Vec<Bytes>> = None;
        let mut prefix = Vec::new();
        let mut sequence = IntRange::default();
        let mut time = IntRange::default();
        for f in filters {
            if let Some(values) = filters::string_set(f, "key") {
                let values: Vec<Bytes> = values.into_iter().map(Bytes::from).collect();
                set = Some(match set {
                    None => values,
                    Some(prev) => prev.into_iter().filter(|k| values.contains(k)).collect(),
                });
            } else if let Some(p) = filters::string_prefix(f, "key") {
                if p.len() > prefix.len() {
                    prefix = p.into_bytes();
                }
            } else if !filters::narrow_range(f, "sequence", false, &mut sequence) {
                filters::narrow_range(f, "timestamp", true, &mut time);
            }
        }
        let keys = match set {
            Some(mut keys) => {
                keys.retain(|k| k.starts_with(&prefix));
                keys.sort();
                keys.dedup();
                Keys::Set(keys)
            }
            None => Keys::Prefix(prefix),
        };
        Self {
            keys,
            sequence,
            time,
        }
    }
}

fn pushdown(f: &Expr) -> TableProviderFilterPushDown {
    if filters::string_set(f, "key").is_some()
        || filters::is_range(f, "sequence", false)
        || filters::is_range(f, "timestamp", true)
    {
        TableProviderFilterPushDown::Exact
    } else if filters::string_prefix(f, "key").is_some() {
        TableProviderFilterPushDown::Inexact
    } else {
        TableProviderFilterPushDown::Unsupported
    }
}

#[async_trait]
impl TableProvider for EntriesTable {
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
        Ok(filters.iter().map(|f| pushdown(f)).collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let scan = EntryScan::from_filters(filters);
        let projection: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let schema = Arc::new(self.schema.project(&projection)?);
        // The sequence range as the log takes it, `[start, end)`, narrowed by the time
        // range's upper bound: every entry of a segment is older than the next
        // segment's start, so segments opened after it hold nothing in range.
        let mut start = scan.sequence.lo.max(0) as u64;
        let mut end = if scan.sequence.hi < 0 {
            Some(0)
        } else if scan.sequence.hi == i64::MAX {
            None
        } else {
            Some(scan.sequence.hi as u64 + 1)
        };
        if scan.time.hi < i64::MAX {
            let segments = self
                .log
                .list_segments()
                .await
                .map_err(|e| TableError::storage(e, false))?;
            if let Some(after) = segments
                .iter()
                .find(|s| (s.start_time_ms as i128) > scan.time.hi as i128)
            {
                end = Some(end.map_or(after.start_sequence, |e| e.min(after.start_sequence)));
            }
        }
        let empty = scan.sequence.is_empty()
            || scan.time.is_empty()
            || end.is_some_and(|e| e <= start)
            || matches!(&scan.keys, Keys::Set(k) if k.is_empty());
        if empty {
            start = 0;
            end = Some(0);
        }
        let partitions = match &scan.keys {
            Keys::Set(keys) => keys
                .len()
                .clamp(1, state.config().target_partitions().max(1)),
            Keys::Prefix(_) => state.config().target_partitions().max(1),
        };
        let streams: Vec<Arc<dyn PartitionStream>> = (0..partitions)
            .map(|partition| {
                Arc::new(EntryPartition {
                    log: self.log.clone(),
                    scan: scan.clone(),
                    schema: schema.clone(),
                    projection: projection.clone(),
                    start,
                    end,
                    empty,
                    partition,
                    partitions,
                    batch_size: state.config().batch_size(),
                    limit,
                    counters: self.counters.clone(),
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        streaming_scan(schema, streams, limit)
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if insert_op != InsertOp::Append {
            return Err(TableError::invalid(
                "log.entries only takes INSERT: a log is append-only",
            ));
        }
        if self.log.is_replica() {
            return Err(TableError::read_only(
                "cannot INSERT INTO log.entries: this instance is a read-only replica",
            ));
        }
        Ok(Arc::new(DataSinkExec::new(
            input,
            Arc::new(LogSink {
                log: self.log.clone(),
                schema: self.schema.clone(),
            }),
            None,
        )))
    }
}

/// One partition of an entries scan: keys `i`, `i + n`, `i + 2n`... of the listing, or
/// of the pushed-down key set.
struct EntryPartition {
    log: LogHandle,
    scan: EntryScan,
    schema: SchemaRef,
    projection: Vec<usize>,
    start: u64,
    end: Option<u64>,
    empty: bool,
    partition: usize,
    partitions: usize,
    batch_size: usize,
    limit: Option<usize>,
    counters: ScanCounters,
}

impl fmt::Debug for EntryPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "log.entries partition {}/{} sequences {}..{:?}",
            self.partition, self.partitions, self.start, self.end
        )
    }
}

impl PartitionStream for EntryPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let keys = match &self.scan.keys {
            Keys::Set(keys) => KeySource::Set(
                keys.iter()
                    .skip(self.partition)
                    .step_by(self.partitions)
                    .cloned()
                    .collect(),
            ),
            Keys::Prefix(prefix) => KeySource::Listed {
                prefix: prefix.clone(),
                after: None,
                page: VecDeque::new(),
                exhausted: false,
                index: 0,
            },
        };
        let state = EntryStream {
            log: self.log.clone(),
            keys,
            current: None,
            start: self.start,
            end: self.end,
            time: self.scan.time,
            schema: self.schema.clone(),
            projection: self.projection.clone(),
            partition: self.partition,
            partitions: self.partitions,
            batch_size: self.batch_size.max(1),
            remaining: self.limit,
            done: self.empty,
            counters: self.counters.clone(),
        };
        batch_stream(self.schema.clone(), state)
    }
}

enum KeySource {
    Set(VecDeque<Bytes>),
    Listed {
        prefix: Vec<u8>,
        after: Option<Bytes>,
        page: VecDeque<Bytes>,
        exhausted: bool,
        index: u64,
    },
}

struct EntryStream {
    log: LogHandle,
    keys: KeySource,
    /// The key being read, and its name for the `key` column.
    current: Option<(LogIterator, String)>,
    start: u64,
    end: Option<u64>,
    time: IntRange,
    schema: SchemaRef,
    projection: Vec<usize>,
    partition: usize,
    partitions: usize,
    batch_size: usize,
    remaining: Option<usize>,
    done: bool,
    counters: ScanCounters,
}

impl EntryStream {
    async fn next_key(&mut self) -> Result<Option<Bytes>> {
        match &mut self.keys {
            KeySource::Set(keys) => Ok(keys.pop_front()),
            KeySource::Listed {
                prefix,
                after,
                page,
                exhausted,
                index,
            } => loop {
                if let Some(k) = page.pop_front() {
                    return Ok(Some(k));
                }
                if *exhausted {
                    return Ok(None);
                }
                let listed = self
                    .log
                    .list_keys(prefix, after.as_deref(), KEY_PAGE)
                    .await
                    .map_err(|e| TableError::storage(e, false))?;
                for k in listed.keys {
                    if (*index % self.partitions as u64) as usize == self.partition {
                        page.push_back(k.key);
                    }
                    *index += 1;
                }
                match listed.next_after {
                    Some(a) => *after = Some(a),
                    None => *exhausted = true,
                }
            },
        }
    }

    async fn open(&mut self, key: Bytes) -> Result<LogIterator> {
        let range = (
            std::ops::Bound::Included(self.start),
            match self.end {
                Some(e) => std::ops::Bound::Excluded(e),
                None => std::ops::Bound::Unbounded,
            },
        );
        let result = if self.time.lo > 0 {
            self.log
                .scan_from_time(key, self.time.lo as u64, range)
                .await
        } else {
            self.log.scan(key, range).await
        };
        result.map_err(|e| {
            let invalid = matches!(e, opendata_log::Error::InvalidInput(_));
            TableError::storage(e, invalid)
        })
    }
}

#[async_trait]
impl BatchReader for EntryStream {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        if self.done || self.remaining == Some(0) {
            return Ok(None);
        }
        let want = self
            .remaining
            .map_or(self.batch_size, |r| r.min(self.batch_size));
        let wants = |c: usize| self.projection.contains(&c);
        let (want_key, want_seq, want_time, want_value) = (wants(0), wants(1), wants(2), wants(3));
        let cap = want.min(1024);
        let mut keys = StringBuilder::with_capacity(if want_key { cap } else { 0 }, 0);
        let mut seqs = Int64Builder::with_capacity(if want_seq { cap } else { 0 });
        let mut times = TimestampMillisecondBuilder::with_capacity(if want_time { cap } else { 0 })
            .with_timezone("UTC");
        let mut values = BinaryBuilder::with_capacity(if want_value { cap } else { 0 }, 0);
        let (mut rows, mut bytes) = (0usize, 0usize);
        let (mut read_rows, mut read_bytes) = (0u64, 0usize);
        let (lo, hi) = (self.time.lo, self.time.hi);
        while rows < want && bytes < BATCH_BYTES {
            if self.current.is_none() {
                match self.next_key().await? {
                    Some(key) => {
                        let name = String::from_utf8_lossy(&key).into_owned();
                        self.current = Some((self.open(key).await?, name));
                    }
                    None => {
                        self.done = true;
                        break;
                    }
                }
            }
            let Some((iter, key)) = self.current.as_mut() else {
                break;
            };
            if !iter
                .load()
                .await
                .map_err(|e| TableError::storage(e, false))?
            {
                self.current = None;
                continue;
            }
            // One await per stored chunk; its entries go straight into the columns.
            let key_len = key.len();
            iter.drain_loaded(|sequence, timestamp_ms, value| {
                read_rows += 1;
                read_bytes += value.len() + key_len + 16;
                let ts = timestamp_ms as i64;
                if ts < lo || ts > hi {
                    return true;
                }
                if want_key {
                    keys.append_value(key.as_str());
                }
                if want_seq {
                    seqs.append_value(sequence as i64);
                }
                if want_time {
                    times.append_value(ts);
                }
                if want_value {
                    values.append_value(value);
                }
                rows += 1;
                bytes += value.len() + key_len;
                rows < want && bytes < BATCH_BYTES
            })
            .map_err(|e| TableError::storage(e, false))?;
        }
        self.counters.add_read(read_rows, read_bytes);
        if rows == 0 {
            return Ok(None);
        }
        if let Some(r) = &mut self.remaining {
            *r -= rows;
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.projection.len());
        for &c in &self.projection {
            columns.push(match c {
                0 => Arc::new(keys.finish()),
                1 => Arc::new(seqs.finish()),
                2 => Arc::new(times.finish()),
                _ => Arc::new(values.finish()),
            });
        }
        let options =
            datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(Some(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &options,
        )?))
    }
}

/// The sink of `INSERT INTO log.entries`.
struct LogSink {
    log: LogHandle,
    schema: SchemaRef,
}

impl fmt::Debug for LogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LogSink")
    }
}

impl DisplayAs for LogSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LogSink: log.entries")
    }
}

fn bytes_column(array: &ArrayRef, name: &str) -> Result<Vec<Option<Bytes>>> {
    let a = array.as_any();
    let out = if let Some(s) = a.downcast_ref::<StringArray>() {
        s.iter()
            .map(|v| v.map(|v| Bytes::copy_from_slice(v.as_bytes())))
            .collect()
    } else if let Some(s) = a.downcast_ref::<LargeStringArray>() {
        s.iter()
            .map(|v| v.map(|v| Bytes::copy_from_slice(v.as_bytes())))
            .collect()
    } else if let Some(s) = a.downcast_ref::<StringViewArray>() {
        s.iter()
            .map(|v| v.map(|v| Bytes::copy_from_slice(v.as_bytes())))
            .collect()
    } else if let Some(b) = a.downcast_ref::<BinaryArray>() {
        b.iter().map(|v| v.map(Bytes::copy_from_slice)).collect()
    } else if let Some(b) = a.downcast_ref::<LargeBinaryArray>() {
        b.iter().map(|v| v.map(Bytes::copy_from_slice)).collect()
    } else {
        return Err(TableError::invalid(format!(
            "log.entries.{name} takes text or bytea, not {}",
            array.data_type()
        )));
    };
    Ok(out)
}

#[async_trait]
impl DataSink for LogSink {
    fn metrics(&self) -> Option<MetricsSet> {
        None
    }

    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(
        &self,
        mut data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> Result<u64> {
        let writer = self
            .log
            .writer()
            .map_err(|_| TableError::read_only("this instance is a read-only replica"))?;
        let mut written = 0u64;
        let mut pending: Vec<Record> = Vec::new();
        while let Some(batch) = data.next().await {
            let batch = batch?;
            for (i, name) in ["sequence", "timestamp"].iter().enumerate() {
                if batch.column(i + 1).null_count() != batch.num_rows() {
                    return Err(TableError::invalid(format!(
                        "log.entries.{name} is assigned by the log: leave it out of the INSERT"
                    )));
                }
            }
            let keys = bytes_column(batch.column(0), "key")?;
            let values = bytes_column(batch.column(3), "value")?;
            for (k, v) in keys.into_iter().zip(values) {
                let (Some(key), Some(value)) = (k, v) else {
                    return Err(TableError::invalid(
                        "log.entries.key and value must not be NULL",
                    ));
                };
                pending.push(Record { key, value });
                if pending.len() >= INSERT_CHUNK {
                    written += append(writer, std::mem::take(&mut pending)).await?;
                }
            }
        }
        if !pending.is_empty() {
            written += append(writer, pending).await?;
        }
        Ok(written)
    }
}

async fn append(writer: &opendata_log::LogDb, records: Vec<Record>) -> Result<u64> {
    let n = records.len() as u64;
    writer.append(records).await.map_err(|e| {
        let invalid = matches!(e, opendata_log::Error::InvalidInput(_));
        TableError::storage(e, invalid)
    })?;
    Ok(n)
}

/// `log.keys`: every key with its newest sequence.
pub struct KeysTable {
    log: LogHandle,
    schema: SchemaRef,
}

impl fmt::Debug for KeysTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("log.keys")
    }
}

impl KeysTable {
    /// The table over `log`.
    pub fn new(log: LogHandle) -> Self {
        Self {
            log,
            schema: keys_schema(),
        }
    }
}

#[async_trait]
impl TableProvider for KeysTable {
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
        Ok(filters
            .iter()
            .map(|f| {
                if filters::string_prefix(f, "key").is_some()
                    || filters::string_set(f, "key").is_some()
                {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let scan = EntryScan::from_filters(filters);
        let projection: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => vec![0, 1],
        };
        let schema = Arc::new(self.schema.project(&projection)?);
        let stream = Arc::new(KeysPartition {
            log: self.log.clone(),
            keys: scan.keys,
            schema: schema.clone(),
            projection,
            batch_size: state.config().batch_size().max(1),
        });
        streaming_scan(schema, vec![stream], limit)
    }
}

struct KeysPartition {
    log: LogHandle,
    keys: Keys,
    schema: SchemaRef,
    projection: Vec<usize>,
    batch_size: usize,
}

impl fmt::Debug for KeysPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("log.keys")
    }
}

impl PartitionStream for KeysPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        struct State {
            log: LogHandle,
            prefix: Vec<u8>,
            only: Option<Vec<Bytes>>,
            after: Option<Bytes>,
            done: bool,
            schema: SchemaRef,
            projection: Vec<usize>,
            batch_size: usize,
        }
        let (prefix, only) = match &self.keys {
            Keys::Set(keys) => (Vec::new(), Some(keys.clone())),
            Keys::Prefix(p) => (p.clone(), None),
        };
        let state = State {
            log: self.log.clone(),
            prefix,
            only,
            after: None,
            done: false,
            schema: self.schema.clone(),
            projection: self.projection.clone(),
            batch_size: self.batch_size,
        };
        let stream = futures::stream::try_unfold(state, |mut s| async move {
            loop {
                if s.done {
                    return Ok(None);
                }
                let page = match &mut s.only {
                    // A key set: each key looked up by listing from just before it.
                    Some(keys) => {
                        let mut found = Vec::new();
                        for k in std::mem::take(keys) {
                            let p = s
                                .log
                                .list_keys(&k, None, 1)
                                .await
                                .map_err(|e| TableError::storage(e, false))?;
                            found.extend(p.keys.into_iter().filter(|i| i.key == k));
                        }
                        s.done = true;
                        found
                    }
                    None => {
                        let p = s
                            .log
                            .list_keys(&s.prefix, s.after.as_deref(), s.batch_size)
                            .await
                            .map_err(|e| TableError::storage(e, false))?;
                        match p.next_after {
                            Some(a) => s.after = Some(a),
                            None => s.done = true,
                        }
                        p.keys
                    }
                };
                if page.is_empty() {
                    continue;
                }
                let mut columns: Vec<ArrayRef> = Vec::new();
                for &c in &s.projection {
                    columns.push(if c == 0 {
                        let mut b = StringBuilder::new();
                        for k in &page {
                            b.append_value(String::from_utf8_lossy(&k.key));
                        }
                        Arc::new(b.finish())
                    } else {
                        let mut b = Int64Builder::new();
                        for k in &page {
                            b.append_value(k.last_sequence as i64);
                        }
                        Arc::new(b.finish())
                    });
                }
                let options = datafusion::arrow::array::RecordBatchOptions::new()
                    .with_row_count(Some(page.len()));
                let batch = RecordBatch::try_new_with_options(s.schema.clone(), columns, &options)
                    .map_err(DataFusionError::from)?;
                return Ok(Some((batch, s)));
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}
