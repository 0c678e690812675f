//! Prometheus remote-write wire messages, declared with prost's derive (no code
//! generator). Only the fields this database reads are declared; protobuf skips the rest
//! (native histograms) when decoding.

/// Remote write 1.0: `prometheus.WriteRequest`.
///
/// ```proto
/// message WriteRequest   { repeated TimeSeries timeseries = 1; reserved 2; repeated MetricMetadata metadata = 3; }
/// message TimeSeries     { repeated Label labels = 1; repeated Sample samples = 2; repeated Exemplar exemplars = 3; }
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
