//! The data model: series identified by label sets, float samples, metric metadata.

/// The label holding a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// Prometheus's stale marker: a NaN with this exact bit pattern ends a series. It is
/// stored and returned bit-exact.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// True for the stale marker (and only it: other NaNs are ordinary values).
pub fn is_stale_marker(value: f64) -> bool {
    value.to_bits() == STALE_NAN_BITS
}

/// A label: a name and a value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    /// The name.
    pub name: String,
    /// The value (never empty: an empty value means the label is absent).
    pub value: String,
}

/// A series' label set, sorted by name, names unique.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Labels(Vec<Label>);

impl Labels {
    /// Labels from `(name, value)` pairs in any order: sorted by name, empty values
    /// dropped (an empty value means the label is absent), and for a repeated name the
    /// last pair kept. Names are not validated here; remote-write decoding validates them.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let mut labels: Vec<Label> = pairs
            .into_iter()
            .map(|(n, v)| Label {
                name: n.into(),
                value: v.into(),
            })
            .collect();
        // Stable sort keeps the input order within a name; keep the last of each name.
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out: Vec<Label> = Vec::with_capacity(labels.len());
        for l in labels {
            match out.last_mut() {
                Some(last) if last.name == l.name => *last = l,
                _ => out.push(l),
            }
        }
        out.retain(|l| !l.value.is_empty());
        Labels(out)
    }

    /// Labels already sorted by name with unique names (checked by the caller).
    pub(crate) fn from_sorted(labels: Vec<Label>) -> Self {
        debug_assert!(labels.windows(2).all(|w| w[0].name < w[1].name));
        Labels(labels)
    }

    /// The labels, sorted by name.
    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    /// The value of label `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    /// The metric name (`__name__`), if any.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A float sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The value; NaN payloads (the stale marker among them) are kept bit-exact.
    pub value: f64,
}

/// A series and samples to add to it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSamples {
    /// The series' labels.
    pub labels: Labels,
    /// Its samples, in the order received.
    pub samples: Vec<Sample>,
}

/// The type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MetricType {
    /// Not given.
    #[default]
    Unknown,
    /// A counter.
    Counter,
    /// A gauge.
    Gauge,
    /// A histogram.
    Histogram,
    /// A gauge histogram.
    GaugeHistogram,
    /// A summary.
    Summary,
    /// An info metric.
    Info,
    /// A state set.
    StateSet,
}

impl MetricType {
    /// The type for a remote-write enum value (the same numbering in 1.0 and 2.0).
    pub fn from_wire(value: i32) -> MetricType {
        match value {
            1 => MetricType::Counter,
            2 => MetricType::Gauge,
            3 => MetricType::Histogram,
            4 => MetricType::GaugeHistogram,
            5 => MetricType::Summary,
            6 => MetricType::Info,
            7 => MetricType::StateSet,
            _ => MetricType::Unknown,
        }
    }

    /// The name Prometheus's metadata API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Unknown => "unknown",
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
        }
    }
}

/// Metadata of a metric family.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MetricMetadata {
    /// The metric family name.
    pub metric: String,
    /// Its type.
    pub metric_type: MetricType,
    /// Help text.
    pub help: String,
    /// Unit.
    pub unit: String,
}

/// Everything one write request carries, validated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WriteBatch {
    /// Series with their samples.
    pub series: Vec<SeriesSamples>,
    /// Metric metadata.
    pub metadata: Vec<MetricMetadata>,
}

impl WriteBatch {
    /// Number of samples in the batch.
    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|s| s.samples.len()).sum()
    }
}
