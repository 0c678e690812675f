//! Configuration of the time series database (the `[timeseries]` section of the
//! server's configuration).

use serde::{Deserialize, Serialize};

/// Settings of the time series database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeSeriesConfig {
    /// Width of a time bucket in seconds. Fixed when the database is created: reopening
    /// with another width is refused.
    pub bucket_secs: u64,
    /// How far behind the newest sample a bucket still takes samples, in seconds. A bucket
    /// closes (its samples go into chunks, and later samples for it are refused as out of
    /// bounds) once the newest sample is this far past its end.
    pub out_of_order_secs: u64,
    /// Refuse samples more than this many seconds ahead of the server's clock (they would
    /// close every open bucket).
    pub max_future_secs: u64,
    /// Drop whole buckets whose end is older than this many seconds (0: keep forever).
    pub retention_secs: u64,
    /// How often retention and bucket closing run, in seconds.
    pub maintenance_interval_secs: u64,
    /// Flush an open bucket's write-ahead records into chunks once they hold this many
    /// samples, so reopening replays at most about this many (0: only when it closes).
    pub flush_samples: u64,
    /// Largest decompressed remote-write body, in bytes.
    pub max_decoded_bytes: usize,
    /// Samples kept uncompressed per series in memory before they are sealed into a chunk.
    pub head_chunk_samples: usize,
    /// How many series ids are reserved per durable block record.
    pub series_id_block: u64,
    /// Most exemplars kept per bucket (0: exemplars are not stored). Past it, a bucket's
    /// further exemplars are refused (counted in the write's outcome), not its samples.
    pub max_exemplars_per_bucket: u64,
    /// Experimental features switched on, by Prometheus's `--enable-feature` names (see
    /// [`FEATURES`]); the PromQL ones are off by default, as in Prometheus.
    pub enable_features: Vec<String>,
    /// Limits and defaults of the PromQL engine (`[timeseries.query]`).
    pub query: QueryConfig,
}

/// Limits and defaults of the PromQL engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryConfig {
    /// How far back an instant vector selector looks for a sample, in milliseconds
    /// (Prometheus's `--query.lookback-delta`).
    pub lookback_delta_ms: u64,
    /// Longest a query may run, in milliseconds; a request's `timeout` can only shorten it.
    pub timeout_ms: u64,
    /// Most samples a query may hold in memory at once (Prometheus's `--query.max-samples`).
    pub max_samples: u64,
    /// Most series a query may return (0: no limit).
    pub max_series: u64,
    /// Most steps a subquery may evaluate per series (Prometheus's 11,000 points per
    /// series of a range query, applied to subqueries too).
    pub max_points_per_series: u64,
    /// Longest accepted query text, in bytes.
    pub max_query_bytes: usize,
    /// Deepest accepted nesting of a query: the deepest parenthesis, bracket or brace
    /// plus the number of operators (a bound on the depth of its syntax tree, so no
    /// query drives the parser or the evaluator's recursion deep).
    pub max_query_depth: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            lookback_delta_ms: 5 * 60 * 1000,
            timeout_ms: 2 * 60 * 1000,
            max_samples: 50_000_000,
            max_series: 1_000_000,
            max_points_per_series: 11_000,
            max_query_bytes: 256 * 1024,
            max_query_depth: 512,
        }
    }
}

impl Default for TimeSeriesConfig {
    fn default() -> Self {
        Self {
            bucket_secs: 2 * 3600,
            out_of_order_secs: 3600,
            max_future_secs: 3600,
            retention_secs: 15 * 24 * 3600,
            maintenance_interval_secs: 10,
            flush_samples: 50_000_000,
            max_decoded_bytes: 256 * 1024 * 1024,
            head_chunk_samples: 120,
            series_id_block: 1 << 16,
            max_exemplars_per_bucket: 100_000,
            enable_features: Vec::new(),
            query: QueryConfig::default(),
        }
    }
}

/// The experimental features `enable_features` may name, as Prometheus names them.
///
/// | feature | what it does |
/// |---|---|
/// | `created-timestamp-zero-ingestion` | a remote-write 2.0 series' `created_timestamp` becomes a sample of 0 at that time, before its first sample, when nothing of the series is newer (as Prometheus does with the same flag) |
/// | `promql-experimental-functions` | PromQL's experimental functions (`limitk`, `limit_ratio`, `info`, `sort_by_label`, `mad_over_time`, `first_over_time`, `ts_of_*_over_time`, `histogram_quantiles`, `double_exponential_smoothing`, `min_of`, `max_of`, `start`, `end`, `range`, `step`, ...) |
/// | `promql-duration-expr` | arithmetic, `step()`, `range()`, `min()` and `max()` in ranges, subquery steps and offsets |
/// | `promql-extended-range-selectors` | the `anchored` and `smoothed` range selector modifiers |
/// | `promql-binop-fill-modifiers` | `fill(v)`, `fill_left(v)` and `fill_right(v)` on binary operators |
pub const FEATURES: [&str; 5] = [
    "created-timestamp-zero-ingestion",
    "promql-experimental-functions",
    "promql-duration-expr",
    "promql-extended-range-selectors",
    "promql-binop-fill-modifiers",
];

impl TimeSeriesConfig {
    /// Whether the experimental feature `name` is switched on.
    pub fn feature(&self, name: &str) -> bool {
        self.enable_features.iter().any(|f| f == name)
    }

    /// The experimental PromQL language features switched on (the `promql-*` names of
    /// `enable_features`), for [`Engine::with_features`](crate::promql::Engine::with_features).
    pub fn promql_features(&self) -> crate::promql::Features {
        crate::promql::Features::from_flags(
            self.enable_features
                .iter()
                .map(String::as_str)
                .filter(|f| f.starts_with("promql-")),
        )
        .unwrap_or_default()
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(f) = self
            .enable_features
            .iter()
            .find(|f| !FEATURES.contains(&f.as_str()))
        {
            return Err(format!(
                "timeseries.enable_features: unknown feature {f:?} (known: {})",
                FEATURES.join(", ")
            ));
        }
        if self.bucket_secs < 60 {
            return Err("timeseries.bucket_secs must be at least 60".into());
        }
        if self.bucket_secs > 30 * 24 * 3600 {
            return Err("timeseries.bucket_secs must be at most 30 days".into());
        }
        if self.maintenance_interval_secs == 0 {
            return Err("timeseries.maintenance_interval_secs must be at least 1".into());
        }
        if self.head_chunk_samples < 8 {
            return Err("timeseries.head_chunk_samples must be at least 8".into());
        }
        if self.series_id_block == 0 {
            return Err("timeseries.series_id_block must be at least 1".into());
        }
        if self.max_decoded_bytes < 1024 {
            return Err("timeseries.max_decoded_bytes must be at least 1024".into());
        }
        if self.query.lookback_delta_ms == 0 {
            return Err("timeseries.query.lookback_delta_ms must be at least 1".into());
        }
        if self.query.timeout_ms == 0 {
            return Err("timeseries.query.timeout_ms must be at least 1".into());
        }
        if self.query.max_samples == 0 {
            return Err("timeseries.query.max_samples must be at least 1".into());
        }
        if self.query.max_query_bytes == 0 || self.query.max_query_depth == 0 {
            return Err(
                "timeseries.query.max_query_bytes and max_query_depth must be at least 1".into(),
            );
        }
        Ok(())
    }

    /// Bucket width in milliseconds.
    pub fn bucket_ms(&self) -> i64 {
        (self.bucket_secs * 1000) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_switch_promql_features_on_by_name() {
        let mut c = TimeSeriesConfig::default();
        assert_eq!(c.promql_features(), crate::promql::Features::default());
        c.enable_features = vec![
            "created-timestamp-zero-ingestion".into(),
            "promql-duration-expr".into(),
            "promql-binop-fill-modifiers".into(),
        ];
        assert!(c.validate().is_ok());
        let f = c.promql_features();
        assert!(f.duration_expressions && f.fill_modifiers);
        assert!(!f.experimental_functions && !f.extended_range_selectors);
        c.enable_features = FEATURES.iter().map(|f| f.to_string()).collect();
        assert!(c.validate().is_ok());
        assert_eq!(c.promql_features(), crate::promql::Features::all());
        c.enable_features = vec!["promql-time-travel".into()];
        assert!(c.validate().is_err());
    }
}
