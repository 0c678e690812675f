//! `vector.<collection>` tables and the `vector_search(...)` table function.
//!
//! A collection's table has `id`, one column per declared attribute (an attribute
//! named `id` or `vector` is `attr_id` / `attr_vector`), and `vector`. Comparisons of
//! attributes with literals (`=`, `<>`, `<`, `<=`, `>`, `>=`, `IN`, `BETWEEN`) are
//! pushed down as the collection's filter, evaluated on its bitmap indexes, so only
//! matching records are read; `id = ...` / `id IN (...)` reads just those records.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanBuilder, Float32Builder, Float64Array, Float64Builder, Int64Builder,
    ListArray, ListBuilder, RecordBatch, RecordBatchOptions, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{SchemaProvider, Session, TableFunctionImpl};
use datafusion::common::ScalarValue;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use opendata_vector::filter::{Bound, Filter};
use opendata_vector::model::{
    AttributeType, AttributeValue, CollectionSpec, FieldSelection, SearchRequest, VectorRecord,
};
use opendata_vector::{VectorDb, VectorHandle};

use crate::error::TableError;
use crate::filters::{self, Cmp};
use crate::metrics::ScanCounters;
use crate::scan::streaming_scan;

/// Records read per storage page of a collection scan.
const PAGE: usize = 1_024;
/// The largest `k` of `vector_search`.
pub const MAX_SEARCH_K: usize = 10_000;

/// The column name of an attribute.
fn column_name(attribute: &str) -> String {
    if attribute == "id" || attribute == "vector" {
        format!("attr_{attribute}")
    } else {
        attribute.to_string()
    }
}

fn arrow_type(t: AttributeType) -> DataType {
    match t {
        AttributeType::String => DataType::Utf8,
        AttributeType::Integer => DataType::Int64,
        AttributeType::Float => DataType::Float64,
        AttributeType::Bool => DataType::Boolean,
        AttributeType::StringList => {
            DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
        }
    }
}

fn vector_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Float32, true)))
}

/// The schema of a collection's table.
pub fn collection_schema(spec: &CollectionSpec) -> SchemaRef {
    let mut fields = vec![Field::new("id", DataType::Utf8, false)];
    for (name, t) in &spec.attributes {
        fields.push(Field::new(column_name(name), arrow_type(*t), true));
    }
    fields.push(Field::new("vector", vector_type(), false));
    Arc::new(Schema::new(fields))
}

/// The `vector` schema: one table per collection, listed live.
pub struct VectorSchema {
    db: VectorHandle,
    counters: ScanCounters,
}

impl fmt::Debug for VectorSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("vector")
    }
}

impl VectorSchema {
    /// The schema over `db`.
    pub fn new(db: VectorHandle, counters: ScanCounters) -> Self {
        Self { db, counters }
    }
}

#[async_trait]
impl SchemaProvider for VectorSchema {
    fn table_names(&self) -> Vec<String> {
        self.db.handle().collection_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Ok(spec) = self.db.handle().collection_spec(name) else {
            return Ok(None);
        };
        Ok(Some(Arc::new(CollectionTable {
            db: self.db.handle().clone(),
            schema: collection_schema(&spec),
            spec,
            counters: self.counters.clone(),
        })))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.db.handle().collection_spec(name).is_ok()
    }
}

/// One collection as a table.
pub struct CollectionTable {
    db: VectorDb,
    spec: CollectionSpec,
    schema: SchemaRef,
    counters: ScanCounters,
}

impl fmt::Debug for CollectionTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vector.{}", self.spec.name)
    }
}

/// The attribute a column is, with its type.
fn attribute_of<'a>(spec: &'a CollectionSpec, column: &str) -> Option<(&'a String, AttributeType)> {
    spec.attributes
        .iter()
        .find(|(name, _)| column_name(name) == column)
        .map(|(n, t)| (n, *t))
}

/// A literal as a value of the attribute's type.
fn attribute_value(t: AttributeType, v: &ScalarValue) -> Option<AttributeValue> {
    match t {
        AttributeType::String | AttributeType::StringList => {
            filters::string_of(v).map(|s| AttributeValue::String(s.to_string()))
        }
        AttributeType::Integer => filters::int_literal(v, false)
            .and_then(|(n, _)| i64::try_from(n).ok().map(AttributeValue::Integer)),
        AttributeType::Float => match v {
            ScalarValue::Float64(Some(f)) if f.is_finite() => Some(AttributeValue::Float(*f)),
            ScalarValue::Float32(Some(f)) if f.is_finite() => {
                Some(AttributeValue::Float(*f as f64))
            }
            other => {
                filters::int_literal(other, false).map(|(n, _)| AttributeValue::Float(n as f64))
            }
        },
        AttributeType::Bool => match v {
            ScalarValue::Boolean(Some(b)) => Some(AttributeValue::Bool(*b)),
            _ => None,
        },
    }
}

/// A predicate on a scalar attribute as the collection's filter.
fn attribute_filter(spec: &CollectionSpec, e: &Expr) -> Option<Filter> {
    if let Some((c, cmp, v)) = filters::comparison(e) {
        let (name, t) = attribute_of(spec, filters::column_of(c)?)?;
        if t == AttributeType::StringList {
            return None;
        }
        let value = attribute_value(t, v)?;
        let numeric = matches!(t, AttributeType::Integer | AttributeType::Float);
        let bound = |inclusive| Bound {
            value: value.clone(),
            inclusive,
        };
        return Some(match cmp {
            Cmp::Eq => Filter::Eq(name.clone(), value),
            Cmp::NotEq => Filter::Ne(name.clone(), value),
            Cmp::Lt | Cmp::LtEq if numeric => Filter::Range {
                field: name.clone(),
                lower: None,
                upper: Some(bound(cmp == Cmp::LtEq)),
            },
            Cmp::Gt | Cmp::GtEq if numeric => Filter::Range {
                field: name.clone(),
                lower: Some(bound(cmp == Cmp::GtEq)),
                upper: None,
            },
            _ => return None,
        });
    }
    match e {
        Expr::InList(list) if !list.negated => {
            let (name, t) = attribute_of(spec, filters::column_of(&list.expr)?)?;
            if t == AttributeType::StringList
                || list.list.len() > opendata_vector::filter::MAX_IN_VALUES
            {
                return None;
            }
            let values: Option<Vec<AttributeValue>> = list
                .list
                .iter()
                .map(|i| filters::literal_of(i).and_then(|v| attribute_value(t, v)))
                .collect();
            Some(Filter::In(name.clone(), values?))
        }
        Expr::Between(b) if !b.negated => {
            let (name, t) = attribute_of(spec, filters::column_of(&b.expr)?)?;
            if !matches!(t, AttributeType::Integer | AttributeType::Float) {
                return None;
            }
            let lo = attribute_value(t, filters::literal_of(&b.low)?)?;
            let hi = attribute_value(t, filters::literal_of(&b.high)?)?;
            Some(Filter::Range {
                field: name.clone(),
                lower: Some(Bound {
                    value: lo,
                    inclusive: true,
                }),
                upper: Some(Bound {
                    value: hi,
                    inclusive: true,
                }),
            })
        }
        _ => None,
    }
}

#[async_trait]
impl TableProvider for CollectionTable {
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
                if attribute_filter(&self.spec, f).is_some()
                    || filters::string_set(f, "id").is_some()
                {
                    TableProviderFilterPushDown::Exact
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
        let mut ids: Option<Vec<String>> = None;
        let mut conditions = Vec::new();
        for f in filters {
            if let Some(set) = filters::string_set(f, "id") {
                ids = Some(match ids {
                    None => set,
                    Some(prev) => prev.into_iter().filter(|i| set.contains(i)).collect(),
                });
            } else if let Some(c) = attribute_filter(&self.spec, f) {
                conditions.push(c);
            }
        }
        let filter = match conditions.len() {
            0 => None,
            1 => conditions.pop(),
            _ => Some(Filter::And(conditions)),
        };
        let projection: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let schema = Arc::new(self.schema.project(&projection)?);
        let columns = Columns::new(&self.spec, &projection);
        let stream = Arc::new(CollectionPartition {
            db: self.db.clone(),
            collection: self.spec.name.clone(),
            ids,
            filter,
            columns,
            schema: schema.clone(),
            batch_size: state.config().batch_size().clamp(1, PAGE),
            counters: self.counters.clone(),
        });
        streaming_scan(schema, vec![stream], limit)
    }
}

/// What each output column is.
#[derive(Debug, Clone)]
enum Column {
    Id,
    Score,
    Attribute(String, AttributeType),
    Vector,
}

#[derive(Debug, Clone)]
struct Columns(Vec<Column>);

impl Columns {
    /// The columns of a collection table (`id`, attributes, `vector`), projected.
    fn new(spec: &CollectionSpec, projection: &[usize]) -> Self {
        let mut all = vec![Column::Id];
        all.extend(
            spec.attributes
                .iter()
                .map(|(n, t)| Column::Attribute(n.clone(), *t)),
        );
        all.push(Column::Vector);
        Self(projection.iter().map(|&i| all[i].clone()).collect())
    }

    fn fields(&self) -> FieldSelection {
        let mut attributes = Vec::new();
        let mut vector = false;
        for c in &self.0 {
            match c {
                Column::Attribute(n, _) => attributes.push(n.clone()),
                Column::Vector => vector = true,
                _ => {}
            }
        }
        FieldSelection {
            vector,
            attributes: Some(attributes),
        }
    }

    fn build(
        &self,
        schema: &SchemaRef,
        records: &[VectorRecord],
        scores: Option<&[f32]>,
    ) -> Result<RecordBatch> {
        let mut out: Vec<ArrayRef> = Vec::with_capacity(self.0.len());
        for c in &self.0 {
            out.push(match c {
                Column::Id => {
                    let mut b = StringBuilder::new();
                    for r in records {
                        b.append_value(&r.id);
                    }
                    Arc::new(b.finish())
                }
                Column::Score => {
                    let scores = scores.unwrap_or(&[]);
                    Arc::new(Float64Array::from_iter_values(
                        scores.iter().map(|s| *s as f64),
                    ))
                }
                Column::Vector => {
                    let mut b = ListBuilder::new(Float32Builder::new());
                    for r in records {
                        b.values().append_slice(&r.vector);
                        b.append(true);
                    }
                    Arc::new(b.finish())
                }
                Column::Attribute(name, t) => attribute_array(records, name, *t),
            });
        }
        let options = RecordBatchOptions::new().with_row_count(Some(records.len()));
        Ok(RecordBatch::try_new_with_options(
            schema.clone(),
            out,
            &options,
        )?)
    }
}

fn attribute_array(records: &[VectorRecord], name: &str, t: AttributeType) -> ArrayRef {
    let get = |r: &VectorRecord| r.attributes.get(name).cloned();
    match t {
        AttributeType::String => {
            let mut b = StringBuilder::new();
            for r in records {
                match get(r) {
                    Some(AttributeValue::String(s)) => b.append_value(s),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        AttributeType::Integer => {
            let mut b = Int64Builder::new();
            for r in records {
                match get(r) {
                    Some(AttributeValue::Integer(n)) => b.append_value(n),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        AttributeType::Float => {
            let mut b = Float64Builder::new();
            for r in records {
                match get(r) {
                    Some(AttributeValue::Float(f)) => b.append_value(f),
                    Some(AttributeValue::Integer(n)) => b.append_value(n as f64),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        AttributeType::Bool => {
            let mut b = BooleanBuilder::new();
            for r in records {
                match get(r) {
                    Some(AttributeValue::Bool(v)) => b.append_value(v),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        AttributeType::StringList => {
            let mut b = ListBuilder::new(StringBuilder::new());
            for r in records {
                match get(r) {
                    Some(AttributeValue::StringList(items)) => {
                        for i in items {
                            b.values().append_value(i);
                        }
                        b.append(true);
                    }
                    _ => b.append(false),
                }
            }
            Arc::new(b.finish())
        }
    }
}

struct CollectionPartition {
    db: VectorDb,
    collection: String,
    ids: Option<Vec<String>>,
    filter: Option<Filter>,
    columns: Columns,
    schema: SchemaRef,
    batch_size: usize,
    counters: ScanCounters,
}

impl fmt::Debug for CollectionPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vector.{} filter {:?}", self.collection, self.filter)
    }
}

impl PartitionStream for CollectionPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        struct State {
            db: VectorDb,
            collection: String,
            ids: Option<Vec<String>>,
            filter: Option<Filter>,
            columns: Columns,
            fields: FieldSelection,
            schema: SchemaRef,
            batch_size: usize,
            after: Option<u32>,
            done: bool,
            counters: ScanCounters,
        }
        let state = State {
            db: self.db.clone(),
            collection: self.collection.clone(),
            ids: self.ids.clone(),
            filter: self.filter.clone(),
            fields: self.columns.fields(),
            columns: self.columns.clone(),
            schema: self.schema.clone(),
            batch_size: self.batch_size,
            after: None,
            done: false,
            counters: self.counters.clone(),
        };
        let stream = futures::stream::try_unfold(state, |mut s| async move {
            loop {
                if s.done {
                    return Ok(None);
                }
                let records: Vec<VectorRecord> = if let Some(ids) = s.ids.take() {
                    s.done = true;
                    let found =
                        s.db.get(&s.collection, &ids, &FieldSelection::all())
                            .await
                            .map_err(|e| TableError::storage(e, true))?;
                    let matcher = s.filter.clone();
                    let mut out = Vec::new();
                    for r in found.into_iter().flatten() {
                        if let Some(f) = &matcher
                            && !matches_filter(f, &r.attributes)
                        {
                            continue;
                        }
                        out.push(r);
                    }
                    out
                } else {
                    let (records, next) =
                        s.db.scan(
                            &s.collection,
                            s.after,
                            s.batch_size,
                            &s.fields,
                            s.filter.as_ref(),
                        )
                        .await
                        .map_err(|e| TableError::storage(e, false))?;
                    match next {
                        Some(n) => s.after = Some(n),
                        None => s.done = true,
                    }
                    records
                };
                if records.is_empty() {
                    continue;
                }
                let bytes: usize = records
                    .iter()
                    .map(|r| r.vector.len() * 4 + r.id.len())
                    .sum();
                s.counters.add_read(records.len() as u64, bytes);
                let batch = s.columns.build(&s.schema, &records, None)?;
                return Ok(Some((batch, s)));
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}

/// Whether a record's attributes match a filter (for records fetched by id, where the
/// bitmap indexes are not consulted).
fn matches_filter(f: &Filter, attrs: &BTreeMap<String, AttributeValue>) -> bool {
    use std::cmp::Ordering;
    let num = |v: &AttributeValue| match v {
        AttributeValue::Integer(n) => Some(*n as f64),
        AttributeValue::Float(f) => Some(*f),
        _ => None,
    };
    let eq = |a: &AttributeValue, b: &AttributeValue| match (a, b) {
        (AttributeValue::StringList(items), AttributeValue::String(s)) => items.contains(s),
        (a, b) => match (num(a), num(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    };
    match f {
        Filter::Eq(n, v) => attrs.get(n).is_some_and(|a| eq(a, v)),
        Filter::Ne(n, v) => attrs.get(n).is_some_and(|a| !eq(a, v)),
        Filter::In(n, vs) => attrs.get(n).is_some_and(|a| vs.iter().any(|v| eq(a, v))),
        Filter::NotIn(n, vs) => attrs.get(n).is_some_and(|a| !vs.iter().any(|v| eq(a, v))),
        Filter::Range {
            field,
            lower,
            upper,
        } => {
            let Some(x) = attrs.get(field).and_then(num) else {
                return false;
            };
            let ok = |b: &Bound, want: Ordering| {
                num(&b.value).is_some_and(|y| match x.partial_cmp(&y) {
                    Some(Ordering::Equal) => b.inclusive,
                    Some(o) => o == want,
                    None => false,
                })
            };
            lower.as_ref().is_none_or(|b| ok(b, Ordering::Greater))
                && upper.as_ref().is_none_or(|b| ok(b, Ordering::Less))
        }
        Filter::Contains(n, s) => {
            matches!(attrs.get(n), Some(AttributeValue::StringList(items)) if items.contains(s))
        }
        Filter::Exists(n) => attrs.contains_key(n),
        Filter::And(all) => all.iter().all(|f| matches_filter(f, attrs)),
        Filter::Or(any) => any.iter().any(|f| matches_filter(f, attrs)),
        Filter::Not(inner) => !matches_filter(inner, attrs),
    }
}

/// `vector_search(collection, query_vector, k [, filter])`: the `k` nearest records
/// as rows of `id`, `score`, the attributes, and `vector`. `query_vector` is an array
/// (`[0.1, 0.2]` or `ARRAY[...]`) or its JSON text; `filter` is the collection's JSON
/// filter language as text.
pub struct VectorSearchFunction {
    db: VectorHandle,
}

impl fmt::Debug for VectorSearchFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("vector_search()")
    }
}

impl VectorSearchFunction {
    /// The function over `db`.
    pub fn new(db: VectorHandle) -> Self {
        Self { db }
    }
}

fn vector_arg(v: &ScalarValue) -> Result<Vec<f32>> {
    let bad = || {
        TableError::invalid(
            "vector_search: query_vector must be an array of numbers, such as [0.1, 0.2], or its JSON text",
        )
    };
    match v {
        ScalarValue::List(list) => {
            let list: &ListArray = list.as_ref();
            if list.len() != 1 || list.is_null(0) {
                return Err(bad());
            }
            let values = list.value(0);
            let values =
                datafusion::arrow::compute::cast(&values, &DataType::Float64).map_err(|_| bad())?;
            let values = values
                .as_any()
                .downcast_ref::<Float64Array>()
                .ok_or_else(bad)?;
            if values.null_count() > 0 {
                return Err(bad());
            }
            Ok(values.values().iter().map(|f| *f as f32).collect())
        }
        other => {
            let text = filters::string_of(other).ok_or_else(bad)?;
            serde_json::from_str::<Vec<f32>>(text).map_err(|_| bad())
        }
    }
}

impl TableFunctionImpl for VectorSearchFunction {
    fn call(&self, args: &[Expr]) -> Result<Arc<dyn TableProvider>> {
        if !(3..=4).contains(&args.len()) {
            return Err(TableError::invalid(
                "vector_search takes (collection, query_vector, k [, filter])",
            ));
        }
        let literal = |i: usize, what: &str| -> Result<ScalarValue> {
            crate::engine::fold_literal(&args[i]).ok_or_else(|| {
                TableError::invalid(format!("vector_search: {what} must be a constant"))
            })
        };
        let collection = literal(0, "collection")?;
        let collection = filters::string_of(&collection)
            .ok_or_else(|| TableError::invalid("vector_search: collection must be text"))?
            .to_string();
        let db = self.db.handle();
        let spec = db
            .collection_spec(&collection)
            .map_err(|e| TableError::storage(e, true))?;
        let vector = vector_arg(&literal(1, "query_vector")?)?;
        let k = match filters::int_literal(&literal(2, "k")?, false) {
            Some((k, _)) if (1..=MAX_SEARCH_K as i128).contains(&k) => k as usize,
            _ => {
                return Err(TableError::invalid(format!(
                    "vector_search: k must be an integer from 1 to {MAX_SEARCH_K}"
                )));
            }
        };
        let filter = if args.len() == 4 {
            let f = literal(3, "filter")?;
            let text = filters::string_of(&f)
                .ok_or_else(|| TableError::invalid("vector_search: filter must be JSON text"))?;
            Some(Filter::from_json_str(text, &spec).map_err(|e| TableError::storage(e, true))?)
        } else {
            None
        };
        let mut request = SearchRequest::new(vector, k);
        request.filter = filter;
        request.fields = FieldSelection::all();
        // Check now, so a wrong dimension fails at planning with the database's words.
        request
            .clone()
            .check(&spec, "query_vector")
            .map_err(|e| TableError::storage(e, true))?;
        let mut fields = vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("score", DataType::Float64, false),
        ];
        for (name, t) in &spec.attributes {
            fields.push(Field::new(column_name(name), arrow_type(*t), true));
        }
        fields.push(Field::new("vector", vector_type(), false));
        Ok(Arc::new(SearchTable {
            db: db.clone(),
            schema: Arc::new(Schema::new(fields)),
            spec,
            request,
        }))
    }
}

pub(crate) struct SearchTable {
    db: VectorDb,
    spec: CollectionSpec,
    request: SearchRequest,
    schema: SchemaRef,
}

impl fmt::Debug for SearchTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vector_search({}, k={})", self.spec.name, self.request.k)
    }
}

#[async_trait]
impl TableProvider for SearchTable {
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
        let projection: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let schema = Arc::new(self.schema.project(&projection)?);
        let mut all = vec![Column::Id, Column::Score];
        all.extend(
            self.spec
                .attributes
                .iter()
                .map(|(n, t)| Column::Attribute(n.clone(), *t)),
        );
        all.push(Column::Vector);
        let columns = Columns(projection.iter().map(|&i| all[i].clone()).collect());
        let mut request = self.request.clone();
        request.fields = columns.fields();
        let response = self
            .db
            .search(&self.spec.name, request)
            .await
            .map_err(|e| TableError::storage(e, true))?;
        let records: Vec<VectorRecord> = response
            .hits
            .iter()
            .map(|h| VectorRecord {
                id: h.id.clone(),
                vector: h.vector.clone().unwrap_or_default(),
                attributes: h.attributes.clone(),
            })
            .collect();
        let scores: Vec<f32> = response.hits.iter().map(|h| h.score).collect();
        let batch = columns.build(&schema, &records, Some(&scores))?;
        let table = datafusion::datasource::MemTable::try_new(schema, vec![vec![batch]])?;
        table.scan(state, None, &[], limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};
    use opendata_vector::model::Metric;

    fn spec() -> CollectionSpec {
        CollectionSpec::new("docs", 2, Metric::L2)
            .with_attribute("color", AttributeType::String)
            .with_attribute("size", AttributeType::Integer)
            .with_attribute("id", AttributeType::String)
    }

    #[test]
    fn should_push_attribute_comparisons_down_as_filters() {
        let s = spec();
        assert_eq!(
            attribute_filter(&s, &col("color").eq(lit("red"))),
            Some(Filter::Eq(
                "color".into(),
                AttributeValue::String("red".into())
            ))
        );
        assert!(matches!(
            attribute_filter(&s, &col("size").gt_eq(lit(3i64))),
            Some(Filter::Range {
                lower: Some(_),
                upper: None,
                ..
            })
        ));
        // Strings are not ranged; unknown columns are not attributes.
        assert_eq!(attribute_filter(&s, &col("color").gt(lit("a"))), None);
        assert_eq!(attribute_filter(&s, &col("nope").eq(lit(1i64))), None);
        assert!(attribute_filter(&s, &col("attr_id").eq(lit("x"))).is_some());
    }

    #[test]
    fn should_match_fetched_records_like_the_index_does() {
        let mut attrs = BTreeMap::new();
        attrs.insert("size".to_string(), AttributeValue::Integer(5));
        let ge5 = Filter::Range {
            field: "size".into(),
            lower: Some(Bound {
                value: AttributeValue::Integer(5),
                inclusive: true,
            }),
            upper: None,
        };
        assert!(matches_filter(&ge5, &attrs));
        assert!(!matches_filter(
            &Filter::Ne("color".into(), AttributeValue::String("x".into())),
            &attrs
        ));
    }
}
