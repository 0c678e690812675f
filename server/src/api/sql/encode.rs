//! Arrow results as PostgreSQL rows, and the engine's errors as PostgreSQL errors.

use std::sync::Arc;

use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use opendata_sql::datafusion::arrow::array::{
    Array, ArrayRef, MapArray, RecordBatch, StringBuilder,
};
use opendata_sql::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use opendata_sql::datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use pgwire::api::portal::Format;
use pgwire::api::results::FieldInfo;
use pgwire::error::{ErrorInfo, PgWireResult};
use pgwire::messages::data::DataRow;

/// An error as the client sees it: severity `ERROR`, the SQLSTATE and the message.
pub(crate) fn error(code: &str, message: impl Into<String>) -> ErrorInfo {
    ErrorInfo::new("ERROR".to_owned(), code.to_owned(), message.into())
}

/// The engine's error with its SQLSTATE.
pub(crate) fn engine_error(e: &opendata_sql::Error) -> ErrorInfo {
    let message = match e {
        opendata_sql::Error::DataFusion(e) => opendata_sql::error::message(e),
        other => other.to_string(),
    };
    error(e.sqlstate(), message)
}

/// The schema a client is shown: maps (`labels`) become JSON text, which every
/// PostgreSQL client reads.
pub(crate) fn wire_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Map(..) => Field::new(f.name(), DataType::Utf8, true),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// The row description of `schema` in `format`.
pub(crate) fn fields(schema: &Schema, format: &Format) -> Result<Arc<Vec<FieldInfo>>, ErrorInfo> {
    arrow_schema_to_pg_fields(&wire_schema(schema), format, None)
        .map(Arc::new)
        .map_err(|e| error("0A000", format!("a result column cannot be sent: {e}")))
}

/// `batch` with its maps turned into JSON text.
pub(crate) fn wire_batch(batch: RecordBatch) -> Result<RecordBatch, ErrorInfo> {
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::Map(..)))
    {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Map(..) => map_to_json(c),
            _ => Ok(c.clone()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(wire_schema(&batch.schema()), columns)
        .map_err(|e| error("XX000", format!("converting a result batch: {e}")))
}

fn map_to_json(column: &ArrayRef) -> Result<ArrayRef, ErrorInfo> {
    let bad = |e: &dyn std::fmt::Display| error("XX000", format!("formatting a map column: {e}"));
    let map = column
        .as_any()
        .downcast_ref::<MapArray>()
        .ok_or_else(|| bad(&"not a map array"))?;
    let options = FormatOptions::default();
    let keys = ArrayFormatter::try_new(map.keys().as_ref(), &options).map_err(|e| bad(&e))?;
    let values = ArrayFormatter::try_new(map.values().as_ref(), &options).map_err(|e| bad(&e))?;
    let offsets = map.value_offsets();
    let mut out = StringBuilder::with_capacity(map.len(), map.len() * 32);
    for row in 0..map.len() {
        if map.is_null(row) {
            out.append_null();
            continue;
        }
        let mut object = serde_json::Map::new();
        for i in offsets[row] as usize..offsets[row + 1] as usize {
            let value = if map.values().is_null(i) {
                serde_json::Value::Null
            } else {
                serde_json::Value::String(values.value(i).to_string())
            };
            object.insert(keys.value(i).to_string(), value);
        }
        out.append_value(serde_json::Value::Object(object).to_string());
    }
    Ok(Arc::new(out.finish()))
}

/// The rows of `batch`, encoded for `fields`.
pub(crate) fn rows(
    fields: Arc<Vec<FieldInfo>>,
    batch: RecordBatch,
) -> Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send + Sync> {
    encode_recordbatch(fields, batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opendata_sql::datafusion::arrow::array::{MapBuilder, StringArray};

    #[test]
    fn should_send_maps_as_json_objects() {
        let mut builder = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        builder.keys().append_value("job");
        builder.values().append_value("api \"x\"");
        builder.append(true).unwrap();
        builder.append(false).unwrap();
        let map: ArrayRef = Arc::new(builder.finish());
        let schema = Arc::new(Schema::new(vec![Field::new(
            "labels",
            map.data_type().clone(),
            true,
        )]));
        let batch = RecordBatch::try_new(schema, vec![map]).unwrap();
        let out = wire_batch(batch).unwrap();
        let text = out
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(text.value(0), r#"{"job":"api \"x\""}"#);
        assert!(text.is_null(1));
        let described = fields(&out.schema(), &Format::UnifiedText).unwrap();
        assert_eq!(described[0].datatype(), &pgwire::api::Type::TEXT);
    }
}
