//! The data model: series identified by label sets, float and native-histogram samples,
//! metric metadata.

pub use crate::histogram::{CounterResetHint, FloatHistogram, HistogramSample};

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

    /// Labels already sorted by name with unique names and no empty values. The
    /// caller has checked that (decoders do, with errors that name the problem); debug
    /// builds assert it.
    pub fn from_sorted(labels: Vec<Label>) -> Self {
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

    /// Bytes these labels hold in memory, approximately (names, values and the
    /// strings' headers), for memory accounting.
    pub fn memory_size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self
                .0
                .iter()
                .map(|l| std::mem::size_of::<Label>() + l.name.len() + l.value.len())
                .sum::<usize>()
    }
}

/// Something at a timestamp: a float or a histogram sample.
pub(crate) trait Timed: Clone {
    fn ts(&self) -> i64;
}

impl Timed for Sample {
    fn ts(&self) -> i64 {
        self.timestamp_ms
    }
}

impl Timed for HistogramSample {
    fn ts(&self) -> i64 {
        self.timestamp_ms
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
    /// Its native-histogram samples, in the order received.
    pub histograms: Vec<HistogramSample>,
    /// Its exemplars: a sample's value with labels that point elsewhere (a trace id).
    pub exemplars: Vec<Exemplar>,
    /// When the series (a counter, a histogram or a summary) started counting, in ms
    /// (remote write 2.0's `created_timestamp`). With the
    /// `created-timestamp-zero-ingestion` feature it becomes a zero sample at that time.
    pub created_timestamp_ms: Option<i64>,
}

/// Whether `name` is a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Longest exemplar label set, in characters of names and values together (Prometheus's
/// limit). Longer exemplars are refused, not the request.
pub const MAX_EXEMPLAR_LABEL_CHARS: usize = 128;

/// An exemplar of a series: a value at a time, with its own labels (usually a trace id).
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    /// Its labels, e.g. `trace_id`.
    pub labels: Labels,
    /// The value it exemplifies.
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

/// A series and its exemplars, as a query answers them.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesExemplars {
    /// The series' labels.
    pub labels: Labels,
    /// Its exemplars in time order.
    pub exemplars: Vec<Exemplar>,
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

    /// The number remote write's `MetricType` enum gives this type (the inverse of
    /// [`MetricType::from_wire`]).
    pub fn to_wire(self) -> i32 {
        match self {
            MetricType::Unknown => 0,
            MetricType::Counter => 1,
            MetricType::Gauge => 2,
            MetricType::Histogram => 3,
            MetricType::GaugeHistogram => 4,
            MetricType::Summary => 5,
            MetricType::Info => 6,
            MetricType::StateSet => 7,
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
    /// Number of float samples in the batch.
    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|s| s.samples.len()).sum()
    }

    /// Number of histogram samples in the batch.
    pub fn histogram_count(&self) -> usize {
        self.series.iter().map(|s| s.histograms.len()).sum()
    }
}

/// How a [`Matcher`] compares a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchKind {
    /// `name="value"`.
    Equal,
    /// `name!="value"`.
    NotEqual,
    /// `name=~"regex"`.
    Regex,
    /// `name!~"regex"`.
    NotRegex,
}

/// A label matcher, as in a PromQL selector.
///
/// A series without the label is treated as having the empty value, as Prometheus does:
/// `job=""` selects series without `job`, and `job!~"a.*"` selects them too. Regexes are
/// fully anchored (`^(?s:regex)$`: they must match the whole value, and `.` matches any
/// character, newline included) with RE2 syntax.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label name.
    pub name: String,
    /// The comparison.
    pub kind: MatchKind,
    /// The value or regex source.
    pub value: String,
    regex: Option<regex::Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.kind == other.kind && self.value == other.value
    }
}

impl Matcher {
    /// A matcher; fails with a message when a regex does not compile.
    pub fn new(
        kind: MatchKind,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, String> {
        let name = name.into();
        let value = value.into();
        let regex = match kind {
            MatchKind::Regex | MatchKind::NotRegex => Some(
                regex::RegexBuilder::new(&format!("^(?s:{value})$"))
                    .size_limit(1 << 22)
                    .build()
                    .map_err(|e| format!("invalid regex '{value}' for label {name}: {e}"))?,
            ),
            _ => None,
        };
        Ok(Self {
            name,
            kind,
            value,
            regex,
        })
    }

    /// `name="value"`.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self::new(MatchKind::Equal, name, value).expect("equality matchers always build")
    }

    /// True when `value` (the empty string for an absent label) matches.
    pub fn matches(&self, value: &str) -> bool {
        match self.kind {
            MatchKind::Equal => value == self.value,
            MatchKind::NotEqual => value != self.value,
            MatchKind::Regex => self.regex.as_ref().is_some_and(|r| r.is_match(value)),
            MatchKind::NotRegex => !self.regex.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// True when a series without the label matches.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// For a regex that is a plain alternation of literals (`a|b|c`), the literals: such
    /// matchers are answered with point reads instead of a scan of every value.
    pub fn literal_alternatives(&self) -> Option<Vec<String>> {
        if !matches!(self.kind, MatchKind::Regex) {
            return None;
        }
        const META: &[char] = &[
            '.', '+', '*', '?', '(', ')', '[', ']', '{', '}', '^', '$', '\\',
        ];
        if self.value.contains(META) {
            return None;
        }
        Some(self.value.split('|').map(str::to_string).collect())
    }

    /// True when the series with `labels` matches.
    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matches(labels.get(&self.name).unwrap_or(""))
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match self.kind {
            MatchKind::Equal => "=",
            MatchKind::NotEqual => "!=",
            MatchKind::Regex => "=~",
            MatchKind::NotRegex => "!~",
        };
        write!(f, "{}{}{:?}", self.name, op, self.value)
    }
}

/// A series and its samples in a time range, in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The labels.
    pub labels: Labels,
    /// Samples in increasing timestamp order, one per timestamp.
    pub samples: Vec<Sample>,
    /// Native-histogram samples in increasing timestamp order, one per timestamp (a
    /// timestamp holds a float or a histogram, not both).
    pub histograms: Vec<HistogramSample>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_anchor_regex_matchers_on_both_ends() {
        let m = Matcher::new(MatchKind::Regex, "job", "api|web").unwrap();
        assert!(m.matches("api") && m.matches("web"));
        assert!(!m.matches("xapi") && !m.matches("api2") && !m.matches(""));
        let m = Matcher::new(MatchKind::Regex, "job", "a.c").unwrap();
        assert!(m.matches("a\nc"));
        assert_eq!(m.literal_alternatives(), None);
        let m = Matcher::new(MatchKind::Regex, "job", "api|web").unwrap();
        assert_eq!(
            m.literal_alternatives(),
            Some(vec!["api".into(), "web".into()])
        );
    }

    #[test]
    fn should_treat_absent_labels_as_empty() {
        let labels = Labels::from_pairs([("__name__", "up")]);
        assert!(Matcher::equal("job", "").matches_labels(&labels));
        assert!(
            Matcher::new(MatchKind::NotRegex, "job", "a.*")
                .unwrap()
                .matches_labels(&labels)
        );
        assert!(
            !Matcher::new(MatchKind::NotEqual, "job", "")
                .unwrap()
                .matches_labels(&labels)
        );
    }

    #[test]
    fn should_report_bad_regexes() {
        let err = Matcher::new(MatchKind::Regex, "job", "a(").unwrap_err();
        assert!(err.contains("invalid regex"), "{err}");
    }

    #[test]
    fn should_sort_and_dedupe_pairs() {
        let l = Labels::from_pairs([("b", "1"), ("a", "2"), ("b", "3"), ("c", "")]);
        assert_eq!(l.as_slice().len(), 2);
        assert_eq!(l.get("b"), Some("3"));
        assert_eq!(l.get("c"), None);
    }
}
