//! Prometheus remote-write wire messages, declared with prost's derive (no code
//! generator). Only the fields this database reads are declared; protobuf skips the rest
//! when decoding. The native-histogram message is the same in 1.0 and 2.0
//! ([`Histogram`]).

/// A native histogram sample, as both remote-write versions send it.
///
/// ```proto
/// message Histogram {
///   oneof count { uint64 count_int = 1; double count_float = 2; }
///   double sum = 3; sint32 schema = 4; double zero_threshold = 5;
///   oneof zero_count { uint64 zero_count_int = 6; double zero_count_float = 7; }
///   repeated BucketSpan negative_spans = 8; repeated sint64 negative_deltas = 9;
///   repeated double negative_counts = 10; repeated BucketSpan positive_spans = 11;
///   repeated sint64 positive_deltas = 12; repeated double positive_counts = 13;
///   ResetHint reset_hint = 14; int64 timestamp = 15; repeated double custom_values = 16;
/// }
/// message BucketSpan { sint32 offset = 1; uint32 length = 2; }
/// ```
///
/// Integer histograms carry bucket counts as deltas (each bucket's count minus the
/// previous bucket's), float histograms as absolute counts.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    /// Observations: integer or float.
    #[prost(oneof = "Count", tags = "1, 2")]
    pub count: Option<Count>,
    /// Sum of observations.
    #[prost(double, tag = "3")]
    pub sum: f64,
    /// Bucket schema.
    #[prost(sint32, tag = "4")]
    pub schema: i32,
    /// Zero bucket half-width.
    #[prost(double, tag = "5")]
    pub zero_threshold: f64,
    /// Zero bucket count: integer or float.
    #[prost(oneof = "ZeroCount", tags = "6, 7")]
    pub zero_count: Option<ZeroCount>,
    /// Negative bucket spans.
    #[prost(message, repeated, tag = "8")]
    pub negative_spans: Vec<BucketSpan>,
    /// Negative bucket count deltas (integer histograms).
    #[prost(sint64, repeated, tag = "9")]
    pub negative_deltas: Vec<i64>,
    /// Negative bucket counts (float histograms).
    #[prost(double, repeated, tag = "10")]
    pub negative_counts: Vec<f64>,
    /// Positive bucket spans.
    #[prost(message, repeated, tag = "11")]
    pub positive_spans: Vec<BucketSpan>,
    /// Positive bucket count deltas (integer histograms).
    #[prost(sint64, repeated, tag = "12")]
    pub positive_deltas: Vec<i64>,
    /// Positive bucket counts (float histograms).
    #[prost(double, repeated, tag = "13")]
    pub positive_counts: Vec<f64>,
    /// Counter reset hint (0 unknown, 1 yes, 2 no, 3 gauge).
    #[prost(int32, tag = "14")]
    pub reset_hint: i32,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
    /// Custom bucket upper bounds (schema -53).
    #[prost(double, repeated, tag = "16")]
    pub custom_values: Vec<f64>,
}

/// The count of a [`Histogram`].
#[derive(Clone, Copy, PartialEq, prost::Oneof)]
pub enum Count {
    /// Integer histogram.
    #[prost(uint64, tag = "1")]
    CountInt(u64),
    /// Float histogram.
    #[prost(double, tag = "2")]
    CountFloat(f64),
}

/// The zero count of a [`Histogram`].
#[derive(Clone, Copy, PartialEq, prost::Oneof)]
pub enum ZeroCount {
    /// Integer histogram.
    #[prost(uint64, tag = "6")]
    ZeroCountInt(u64),
    /// Float histogram.
    #[prost(double, tag = "7")]
    ZeroCountFloat(f64),
}

/// A run of consecutive buckets: `offset` from the end of the previous span (from index
/// 0 for the first), `length` buckets.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct BucketSpan {
    /// Gap before the span.
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    /// Buckets in the span.
    #[prost(uint32, tag = "2")]
    pub length: u32,
}

/// Remote write 1.0: `prometheus.WriteRequest`.
///
/// ```proto
/// message WriteRequest   { repeated TimeSeries timeseries = 1; reserved 2; repeated MetricMetadata metadata = 3; }
/// message TimeSeries     { repeated Label labels = 1; repeated Sample samples = 2; repeated Exemplar exemplars = 3;
///                          repeated Histogram histograms = 4; }
/// message Exemplar       { repeated Label labels = 1; double value = 2; int64 timestamp = 3; }
/// message Label          { string name = 1; string value = 2; }
/// message Sample         { double value = 1; int64 timestamp = 2; }
/// message MetricMetadata { MetricType type = 1; string metric_family_name = 2; string help = 4; string unit = 5; }
/// ```
pub mod v1 {
    /// A write request.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        /// Series and samples.
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
        /// Metric metadata.
        #[prost(message, repeated, tag = "3")]
        pub metadata: Vec<MetricMetadata>,
    }

    /// A series with samples.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        /// Labels, sorted by name.
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        /// Samples.
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
        /// Exemplars.
        #[prost(message, repeated, tag = "3")]
        pub exemplars: Vec<Exemplar>,
        /// Native histogram samples.
        #[prost(message, repeated, tag = "4")]
        pub histograms: Vec<super::Histogram>,
    }

    /// An exemplar.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Exemplar {
        /// Its labels (e.g. `trace_id`).
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        /// Value.
        #[prost(double, tag = "2")]
        pub value: f64,
        /// Milliseconds since the Unix epoch.
        #[prost(int64, tag = "3")]
        pub timestamp: i64,
    }

    /// A label.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        /// Name.
        #[prost(string, tag = "1")]
        pub name: String,
        /// Value.
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// A sample.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        /// Value.
        #[prost(double, tag = "1")]
        pub value: f64,
        /// Milliseconds since the Unix epoch.
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }

    /// Metadata of a metric family.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricMetadata {
        /// Type (0 unknown, 1 counter, 2 gauge, 3 histogram, 4 gauge histogram, 5 summary, 6 info, 7 stateset).
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        /// Metric family name.
        #[prost(string, tag = "2")]
        pub metric_family_name: String,
        /// Help text.
        #[prost(string, tag = "4")]
        pub help: String,
        /// Unit.
        #[prost(string, tag = "5")]
        pub unit: String,
    }
}

/// Remote write 2.0: `io.prometheus.write.v2.Request`, with interned strings.
///
/// ```proto
/// message Request    { reserved 1 to 3; repeated string symbols = 4; repeated TimeSeries timeseries = 5; }
/// message TimeSeries { repeated uint32 labels_refs = 1; repeated Sample samples = 2; repeated Histogram histograms = 3;
///                      repeated Exemplar exemplars = 4; Metadata metadata = 5; int64 created_timestamp = 6; }
/// message Sample     { double value = 1; int64 timestamp = 2; }
/// message Exemplar   { repeated uint32 labels_refs = 1; double value = 2; int64 timestamp = 3; }
/// message Metadata   { MetricType type = 1; uint32 help_ref = 3; uint32 unit_ref = 4; }
/// ```
pub mod v2 {
    /// A write request.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Request {
        /// The string table; entry 0 is the empty string.
        #[prost(string, repeated, tag = "4")]
        pub symbols: Vec<String>,
        /// Series and samples.
        #[prost(message, repeated, tag = "5")]
        pub timeseries: Vec<TimeSeries>,
    }

    /// A series with samples.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        /// Label name and value references into `symbols`, in pairs.
        #[prost(uint32, repeated, tag = "1")]
        pub labels_refs: Vec<u32>,
        /// Samples.
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
        /// Native histogram samples.
        #[prost(message, repeated, tag = "3")]
        pub histograms: Vec<super::Histogram>,
        /// Exemplars.
        #[prost(message, repeated, tag = "4")]
        pub exemplars: Vec<Exemplar>,
        /// Metadata of the series' metric.
        #[prost(message, optional, tag = "5")]
        pub metadata: Option<Metadata>,
        /// When the series started counting (ms; 0: not given).
        #[prost(int64, tag = "6")]
        pub created_timestamp: i64,
    }

    /// A sample.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        /// Value.
        #[prost(double, tag = "1")]
        pub value: f64,
        /// Milliseconds since the Unix epoch.
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }

    /// An exemplar.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Exemplar {
        /// Label name and value references into `symbols`, in pairs.
        #[prost(uint32, repeated, tag = "1")]
        pub labels_refs: Vec<u32>,
        /// Value.
        #[prost(double, tag = "2")]
        pub value: f64,
        /// Milliseconds since the Unix epoch.
        #[prost(int64, tag = "3")]
        pub timestamp: i64,
    }

    /// Metadata.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Metadata {
        /// Type (numbered as in 1.0).
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        /// Help text reference into `symbols`.
        #[prost(uint32, tag = "3")]
        pub help_ref: u32,
        /// Unit reference into `symbols`.
        #[prost(uint32, tag = "4")]
        pub unit_ref: u32,
    }
}
