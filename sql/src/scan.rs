//! What every table scan shares: the plan node over its partitions, and the stream a
//! partition's batch reader becomes.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::Result;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};

/// The plan of a scan: `partitions` streamed side by side (no order, finite),
/// stopped after `limit` rows.
pub(crate) fn streaming_scan(
    schema: SchemaRef,
    partitions: Vec<Arc<dyn PartitionStream>>,
    limit: Option<usize>,
) -> Result<Arc<dyn ExecutionPlan>> {
    Ok(Arc::new(StreamingTableExec::try_new(
        schema,
        partitions,
        None,
        Vec::new(),
        false,
        limit,
    )?))
}

/// A partition's reader: batch after batch, `None` at the end.
#[async_trait]
pub(crate) trait BatchReader: Send + 'static {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>>;
}

/// The record batch stream of `reader`.
pub(crate) fn batch_stream<R: BatchReader>(
    schema: SchemaRef,
    reader: R,
) -> SendableRecordBatchStream {
    let stream = futures::stream::try_unfold(reader, |mut r| async move {
        Ok(r.next_batch().await?.map(|b| (b, r)))
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}
