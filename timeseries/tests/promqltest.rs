//! Runs the upstream Prometheus PromQL conformance scripts (`.test` files) against our
//! storage and PromQL engine.
//!
//! The scripts live outside the repository: `$PROMQLTEST_DIR`, or by default
//! `../shared/promqltest` next to the workspace root. `PROMQLTEST_FILE=<substring>`
//! restricts the run to matching files; `PROMQLTEST_VERBOSE=1` prints every failure
//! (by default the first 5 per file). The summary table goes to stderr directly, so it
//! shows with or without `--nocapture`.
//!
//! Every eval must pass, native histograms included (evals that involve them are still
//! counted apart in the table), and every line of every script must be understood.

#![allow(clippy::unwrap_used)]

#[path = "promqltest/script.rs"]
mod script;

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use opendata_common::StorageConfig;
use opendata_timeseries::config::QueryConfig;
use opendata_timeseries::histogram::CUSTOM_BUCKETS_SCHEMA;
use opendata_timeseries::model::{
    FloatHistogram, HistogramSample, Labels, STALE_NAN_BITS, Sample, SeriesSamples, WriteBatch,
};
use opendata_timeseries::promql::{
    Engine, Features, QueryError, QueryOptions, QueryResult, Value, parser,
};
use opendata_timeseries::storage::Config;
use opendata_timeseries::{Querier, TimeSeriesConfig, TimeSeriesDb};

use script::{
    AnnotationExpectation, Command, Eval, EvalKind, Expected, Point, SeriesLine, parse_script,
};

/// Relative tolerance of float comparisons (as upstream's).
const EPSILON: f64 = 1e-6;
/// Failures printed per file unless `PROMQLTEST_VERBOSE=1`.
const PRINTED_FAILURES: usize = 5;
/// A query running longer than this fails its eval instead of hanging the run.
const QUERY_TIMEOUT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------
// Locating the scripts
// ---------------------------------------------------------------------------------------

fn script_dir() -> PathBuf {
    match std::env::var_os("PROMQLTEST_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("..")
            .join("shared")
            .join("promqltest"),
    }
}

fn script_files() -> Vec<PathBuf> {
    let dir = script_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "the PromQL test scripts are missing: cannot read {} ({e}); set PROMQLTEST_DIR \
             to the folder holding the upstream .test files",
            dir.display()
        )
    });
    let filter = std::env::var("PROMQLTEST_FILE").ok();
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("reading the script folder").path())
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .filter(|p| {
            filter
                .as_deref()
                .is_none_or(|f| p.file_name().unwrap().to_string_lossy().contains(f))
        })
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no .test files in {}{}",
        dir.display(),
        filter.map_or(String::new(), |f| format!(
            " matching PROMQLTEST_FILE={f:?}"
        ))
    );
    files
}

fn verbose() -> bool {
    std::env::var("PROMQLTEST_VERBOSE").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Writes to the process's stderr, bypassing the test harness's output capture.
fn report(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

// ---------------------------------------------------------------------------------------
// Storage
// ---------------------------------------------------------------------------------------

async fn open_db() -> TimeSeriesDb {
    let timeseries = TimeSeriesConfig {
        // Keep 1970 data forever, and let a later load add samples at t=0 after an
        // earlier one went days ahead: no retention, an out-of-order window of a century.
        retention_secs: 0,
        out_of_order_secs: 100 * 365 * 24 * 3600,
        maintenance_interval_secs: 3600,
        ..Default::default()
    };
    TimeSeriesDb::open(Config {
        storage: StorageConfig::in_memory(),
        timeseries,
    })
    .await
    .expect("opening an in-memory database")
}

/// What has been loaded since the last `clear` that matters for classification.
#[derive(Default)]
struct Loaded {
    /// Label sets of series with native-histogram samples (not written), and of the
    /// custom-bucket histograms `load_with_nhcb` makes from classic `_bucket` series.
    histogram_series: Vec<Labels>,
}

/// Writes a load block's series, float and histogram samples; with `load_with_nhcb`,
/// also the custom-bucket native histograms made from its classic histograms.
async fn load(
    db: &TimeSeriesDb,
    interval_ms: i64,
    with_nhcb: bool,
    lines: &[SeriesLine],
    loaded: &mut Loaded,
) -> Result<(), String> {
    let mut series = Vec::new();
    let mut expected_samples = 0;
    for line in lines {
        if line.has_histogram() {
            loaded.histogram_series.push(labels_of(line));
        }
        let mut samples = Vec::new();
        let mut histograms = Vec::new();
        for (i, p) in line.points.iter().enumerate() {
            let timestamp_ms = i as i64 * interval_ms;
            match p {
                Point::Float(v) => samples.push(Sample {
                    timestamp_ms,
                    value: *v,
                }),
                Point::Stale => samples.push(Sample {
                    timestamp_ms,
                    value: f64::from_bits(STALE_NAN_BITS),
                }),
                Point::Histogram(h, _) => histograms.push(HistogramSample {
                    timestamp_ms,
                    histogram: h.clone(),
                }),
                Point::Missing => {}
            }
        }
        expected_samples += samples.len() + histograms.len();
        series.push(SeriesSamples {
            histograms,
            exemplars: Vec::new(),
            created_timestamp_ms: None,
            labels: Labels::from_pairs(line.labels.iter().cloned()),
            samples,
        });
    }
    if with_nhcb {
        for s in nhcb(lines, interval_ms) {
            loaded.histogram_series.push(s.labels.clone());
            expected_samples += s.histograms.len();
            series.push(s);
        }
    }
    if series.is_empty() {
        return Ok(());
    }
    let outcome = db
        .write(WriteBatch {
            series,
            metadata: vec![],
        })
        .await
        .map_err(|e| format!("write failed: {e}"))?;
    if outcome.out_of_bounds > 0 {
        return Err(format!(
            "the database refused {} samples (the runner's config is wrong): {}",
            outcome.out_of_bounds,
            outcome.first_out_of_bounds.unwrap_or_default()
        ));
    }
    if outcome.samples + outcome.histograms != expected_samples {
        return Err(format!(
            "wrote {} samples and {} histograms, the load has {expected_samples}",
            outcome.samples, outcome.histograms
        ));
    }
    Ok(())
}

/// `load_with_nhcb`'s conversion: the classic histograms of a load block (`x_bucket`
/// with `le`, `x_count`, `x_sum`) as native histograms with custom buckets, one per
/// timestamp, named `x` with the other labels kept.
fn nhcb(lines: &[SeriesLine], interval_ms: i64) -> Vec<SeriesSamples> {
    #[derive(Default)]
    struct Temp {
        buckets: Vec<(f64, f64)>,
        count: Option<f64>,
        sum: Option<f64>,
    }
    let mut by_base: BTreeMap<Labels, BTreeMap<i64, Temp>> = BTreeMap::new();
    for line in lines {
        let Some(name) = line.metric_name() else {
            continue;
        };
        let (base, kind) = if let Some(b) = name.strip_suffix("_bucket") {
            (b, 0)
        } else if let Some(b) = name.strip_suffix("_count") {
            (b, 1)
        } else if let Some(b) = name.strip_suffix("_sum") {
            (b, 2)
        } else {
            continue;
        };
        let le = line
            .labels
            .iter()
            .rev()
            .find(|(n, _)| n == "le")
            .and_then(|(_, v)| v.trim().parse::<f64>().ok());
        if kind == 0 && le.is_none_or(f64::is_nan) {
            continue;
        }
        let labels = Labels::from_pairs(
            line.labels
                .iter()
                .filter(|(n, _)| n != "le" && n != "__name__")
                .cloned()
                .chain(std::iter::once(("__name__".to_string(), base.to_string()))),
        );
        let per_ts = by_base.entry(labels).or_default();
        for (i, p) in line.points.iter().enumerate() {
            let Point::Float(v) = p else { continue };
            let t = per_ts.entry(i as i64 * interval_ms).or_default();
            match kind {
                0 => t.buckets.push((le.unwrap(), *v)),
                1 => t.count = Some(*v),
                _ => t.sum = Some(*v),
            }
        }
    }
    let mut out = Vec::new();
    for (labels, per_ts) in by_base {
        let mut histograms = Vec::new();
        for (timestamp_ms, mut t) in per_ts {
            if t.buckets.is_empty() {
                continue;
            }
            // Several spellings of one bound (`0.2`, `2e-1`) are one bucket.
            t.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            t.buckets.dedup_by(|later, earlier| {
                if later.0 == earlier.0 {
                    earlier.1 = later.1;
                    true
                } else {
                    false
                }
            });
            let mut custom = Vec::new();
            let mut positive = Vec::new();
            let mut prev = 0.0;
            for (k, (le, cum)) in t.buckets.iter().enumerate() {
                if le.is_finite() {
                    custom.push(*le);
                }
                positive.push((k as i32, cum - prev));
                prev = *cum;
            }
            let has_inf = t.buckets.last().is_some_and(|b| b.0 == f64::INFINITY);
            let count = t.count.unwrap_or(prev);
            if !has_inf {
                positive.push((custom.len() as i32, count - prev));
            }
            histograms.push(HistogramSample {
                timestamp_ms,
                histogram: Arc::new(FloatHistogram {
                    schema: CUSTOM_BUCKETS_SCHEMA,
                    count,
                    sum: t.sum.unwrap_or(0.0),
                    positive,
                    custom_values: Arc::from(custom),
                    ..Default::default()
                }),
            });
        }
        if !histograms.is_empty() {
            out.push(SeriesSamples {
                labels,
                samples: Vec::new(),
                histograms,
                exemplars: Vec::new(),
                created_timestamp_ms: None,
            });
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Classification
// ---------------------------------------------------------------------------------------

/// True if `name` occurs in `query` as a whole identifier (not part of a longer one).
fn mentions(query: &str, name: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    query.match_indices(name).any(|(k, _)| {
        let before = query[..k].chars().next_back();
        let after = query[k + name.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// The selectors of a parsed query, as alternative matcher lists (`or` groups), each
/// with the selector's metric name.
fn selectors(expr: &parser::Expr) -> Vec<Vec<parser::Matcher>> {
    let mut out = Vec::new();
    expr.walk(&mut |e| {
        let vs = match e {
            parser::Expr::VectorSelector(vs) => vs,
            parser::Expr::MatrixSelector(ms) => &ms.vs,
            _ => return true,
        };
        let mut base = vs.matchers.clone();
        if let Some(name) = &vs.name {
            base.push(parser::Matcher {
                op: parser::MatchOp::Equal,
                name: "__name__".into(),
                value: name.clone(),
            });
        }
        if vs.or_matchers.is_empty() {
            out.push(base);
        } else {
            for group in &vs.or_matchers {
                out.push(base.iter().chain(group).cloned().collect());
            }
        }
        true
    });
    out
}

/// Whether a parser matcher matches a label value (regular expressions anchored).
fn matcher_matches(m: &parser::Matcher, value: &str) -> bool {
    let regex =
        |re: &str| regex::Regex::new(&format!("^(?s:{re})$")).is_ok_and(|r| r.is_match(value));
    match m.op {
        parser::MatchOp::Equal => m.value == value,
        parser::MatchOp::NotEqual => m.value != value,
        parser::MatchOp::Re => regex(&m.value),
        parser::MatchOp::NotRe => !regex(&m.value),
    }
}

/// True if some selector of `query` selects one of `series`. A query that does not
/// parse touches them if it names one of their metrics.
fn query_selects(query: &str, series: &[Labels]) -> bool {
    if series.is_empty() {
        return false;
    }
    let options = parser::ParserOptions {
        features: parser::Features::all(),
        or_matchers: true,
        ..Default::default()
    };
    let Ok(expr) = parser::parse_with(query, &options) else {
        return series.iter().any(|labels| match labels.metric_name() {
            Some(name) => mentions(query, name),
            None => true,
        });
    };
    selectors(&expr).iter().any(|matchers| {
        series.iter().any(|labels| {
            matchers
                .iter()
                .all(|m| matcher_matches(m, labels.get(&m.name).unwrap_or("")))
        })
    })
}

/// An eval touches native histograms if it expects a histogram literal, or a selector
/// of its query selects a series loaded (since the last `clear`) with histogram samples.
fn is_native_histogram(eval: &Eval, loaded: &Loaded) -> bool {
    eval.expects_histogram || query_selects(&eval.query, &loaded.histogram_series)
}

// ---------------------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------------------

/// Floats are equal if both are NaN, bitwise equal, or within relative tolerance
/// `EPSILON` (near zero: an absolute tolerance of `EPSILON` times the smallest normal).
fn almost_equal(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b || a.to_bits() == b.to_bits() {
        return true;
    }
    let diff = (a - b).abs();
    let sum = a.abs() + b.abs();
    if a == 0.0 || b == 0.0 || sum < f64::MIN_POSITIVE {
        return diff < EPSILON * f64::MIN_POSITIVE;
    }
    diff / sum.min(f64::MAX) < EPSILON
}

fn fmt_labels(labels: &Labels) -> String {
    let name = labels.metric_name().unwrap_or("");
    let rest: Vec<String> = labels
        .as_slice()
        .iter()
        .filter(|l| l.name != "__name__")
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("{name}{{{}}}", rest.join(", "))
}

/// An expected point: a float, or a histogram and whether its hint must match.
#[derive(Debug, Clone)]
enum Want {
    F(f64),
    H(Arc<FloatHistogram>, bool),
}

impl std::fmt::Display for Want {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Want::F(v) => write!(f, "{v}"),
            Want::H(h, _) => write!(f, "{h}"),
        }
    }
}

/// Histograms are equal as upstream compares them: schema, zero threshold and custom
/// bounds exactly, counts and sum within tolerance, the same non-empty buckets, and the
/// counter-reset hint only when the expectation gives one.
fn histogram_equal(want: &FloatHistogram, hint_set: bool, got: &FloatHistogram) -> bool {
    let nz = |v: &[(i32, f64)]| -> Vec<(i32, f64)> {
        v.iter().copied().filter(|b| b.1 != 0.0).collect()
    };
    let same = |a: &[(i32, f64)], b: &[(i32, f64)]| {
        let (a, b) = (nz(a), nz(b));
        a.len() == b.len()
            && a.iter()
                .zip(&b)
                .all(|(x, y)| x.0 == y.0 && almost_equal(x.1, y.1))
    };
    want.schema == got.schema
        && almost_equal(want.count, got.count)
        && almost_equal(want.sum, got.sum)
        && (!want.uses_custom_buckets() || want.custom_values == got.custom_values)
        && want.zero_threshold == got.zero_threshold
        && almost_equal(want.zero_count, got.zero_count)
        && same(&want.positive, &got.positive)
        && same(&want.negative, &got.negative)
        && (!hint_set || want.counter_reset_hint == got.counter_reset_hint)
}

fn fmt_points(points: &[(i64, f64)]) -> String {
    let shown: Vec<String> = points
        .iter()
        .take(20)
        .map(|(t, v)| format!("{v}@{}s", *t as f64 / 1000.0))
        .collect();
    let more = if points.len() > 20 {
        format!(" ... ({} points)", points.len())
    } else {
        String::new()
    };
    format!("{}{more}", shown.join(" "))
}

fn fmt_hist_points(points: &[(i64, Arc<FloatHistogram>)]) -> String {
    let shown: Vec<String> = points
        .iter()
        .take(10)
        .map(|(t, h)| format!("{h}@{}s", *t as f64 / 1000.0))
        .collect();
    shown.join(" ")
}

fn fmt_wants(points: &[(i64, Want)]) -> String {
    let shown: Vec<String> = points
        .iter()
        .take(20)
        .map(|(t, v)| format!("{v}@{}s", *t as f64 / 1000.0))
        .collect();
    shown.join(" ")
}

fn fmt_value(value: &Value) -> String {
    match value {
        Value::Scalar { t, f } => format!("scalar {f} at {t} ms"),
        Value::String { t, s } => format!("string {s:?} at {t} ms"),
        Value::Vector(v) => {
            let mut lines: Vec<String> = v
                .iter()
                .take(20)
                .map(|s| match &s.h {
                    Some(h) => format!("\n        {} {h} @{}ms", fmt_labels(&s.labels), s.t),
                    None => format!("\n        {} {} @{}ms", fmt_labels(&s.labels), s.f, s.t),
                })
                .collect();
            if v.len() > 20 {
                lines.push(format!("\n        ... ({} series)", v.len()));
            }
            format!("vector of {} series:{}", v.len(), lines.concat())
        }
        Value::Matrix(m) => {
            let mut lines: Vec<String> = m
                .iter()
                .take(20)
                .map(|s| {
                    format!(
                        "\n        {} {} {}",
                        fmt_labels(&s.labels),
                        fmt_points(&s.floats),
                        fmt_hist_points(&s.histograms)
                    )
                })
                .collect();
            if m.len() > 20 {
                lines.push(format!("\n        ... ({} series)", m.len()));
            }
            format!("matrix of {} series:{}", m.len(), lines.concat())
        }
    }
}

fn labels_of(line: &SeriesLine) -> Labels {
    Labels::from_pairs(line.labels.iter().cloned())
}

/// The single value an instant-vector expectation gives.
fn single_value(line: &SeriesLine) -> Result<Want, String> {
    match line.points.as_slice() {
        [Point::Float(v)] => Ok(Want::F(*v)),
        [Point::Stale] => Ok(Want::F(f64::from_bits(STALE_NAN_BITS))),
        [Point::Histogram(h, hint)] => Ok(Want::H(h.clone(), *hint)),
        _ => Err(format!(
            "line {}: an instant result line must hold exactly one value",
            line.line
        )),
    }
}

fn compare_vector(eval: &Eval, at_ms: i64, got: &Value) -> Result<(), String> {
    let Value::Vector(samples) = got else {
        return Err(format!("expected a vector, got {}", fmt_value(got)));
    };
    let mut expected = Vec::new();
    for r in &eval.results {
        match r {
            Expected::Series(s) => expected.push((labels_of(s), single_value(s)?)),
            Expected::Scalar { line, .. } => {
                return Err(format!("line {line}: unexpected scalar line"));
            }
        }
    }
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for s in samples {
        if !seen.insert(&s.labels) {
            problems.push(format!(
                "duplicate series {} in result",
                fmt_labels(&s.labels)
            ));
        }
        if s.t != at_ms {
            problems.push(format!(
                "series {} has timestamp {} ms, expected {at_ms} ms",
                fmt_labels(&s.labels),
                s.t
            ));
        }
    }
    for (labels, value) in &expected {
        let Some(s) = samples.iter().find(|s| s.labels == *labels) else {
            problems.push(format!("missing series {} {value}", fmt_labels(labels)));
            continue;
        };
        let ok = match (value, &s.h) {
            (Want::F(v), None) => almost_equal(s.f, *v),
            (Want::H(w, hint), Some(h)) => histogram_equal(w, *hint, h),
            _ => false,
        };
        if !ok {
            let got = match &s.h {
                Some(h) => h.to_string(),
                None => s.f.to_string(),
            };
            problems.push(format!(
                "series {}: expected {value}, got {got}",
                fmt_labels(labels)
            ));
        }
    }
    for s in samples {
        if !expected.iter().any(|(l, _)| *l == s.labels) {
            problems.push(format!("unexpected series {}", fmt_labels(&s.labels)));
        }
    }
    if problems.is_empty() && eval.ordered {
        let order_ok = expected.len() == samples.len()
            && expected
                .iter()
                .zip(samples)
                .all(|((labels, _), s)| *labels == s.labels);
        if !order_ok {
            problems.push("the series are not in the expected order".into());
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\n      got {}",
            problems.join("\n      "),
            fmt_value(got)
        ))
    }
}

/// Expected series with their `(timestamp ms, value)` points.
type ExpectedMatrix = Vec<(Labels, Vec<(i64, Want)>)>;

/// Expands expected series to `(timestamp, value)` points at `start + i*step`.
fn expand_expected(
    eval: &Eval,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
) -> Result<ExpectedMatrix, String> {
    let mut out = Vec::new();
    for r in &eval.results {
        let Expected::Series(s) = r else {
            return Err("a bare scalar cannot be a range result; write `{} <points>`".into());
        };
        let mut points = Vec::new();
        for (i, p) in s.points.iter().enumerate() {
            let t = start_ms + i as i64 * step_ms;
            let value = match p {
                Point::Missing => continue,
                Point::Float(v) => Want::F(*v),
                Point::Stale => Want::F(f64::from_bits(STALE_NAN_BITS)),
                Point::Histogram(h, hint) => Want::H(h.clone(), *hint),
            };
            if t > end_ms {
                return Err(format!(
                    "line {}: more points than steps from {start_ms} to {end_ms} ms",
                    s.line
                ));
            }
            points.push((t, value));
        }
        out.push((labels_of(s), points));
    }
    Ok(out)
}

fn compare_matrix(expected: &ExpectedMatrix, got: &Value) -> Result<(), String> {
    let Value::Matrix(series) = got else {
        return Err(format!("expected a matrix, got {}", fmt_value(got)));
    };
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for s in series {
        if !seen.insert(&s.labels) {
            problems.push(format!(
                "duplicate series {} in result",
                fmt_labels(&s.labels)
            ));
        }
    }
    for (labels, points) in expected {
        let Some(s) = series.iter().find(|s| s.labels == *labels) else {
            problems.push(format!(
                "missing series {} {}",
                fmt_labels(labels),
                fmt_wants(points)
            ));
            continue;
        };
        let floats: Vec<(i64, f64)> = points
            .iter()
            .filter_map(|(t, w)| match w {
                Want::F(v) => Some((*t, *v)),
                Want::H(..) => None,
            })
            .collect();
        let hists: Vec<(i64, &Arc<FloatHistogram>, bool)> = points
            .iter()
            .filter_map(|(t, w)| match w {
                Want::H(h, hint) => Some((*t, h, *hint)),
                Want::F(_) => None,
            })
            .collect();
        let same = s.floats.len() == floats.len()
            && s.floats
                .iter()
                .zip(&floats)
                .all(|(a, b)| a.0 == b.0 && almost_equal(a.1, b.1))
            && s.histograms.len() == hists.len()
            && s.histograms
                .iter()
                .zip(&hists)
                .all(|(a, b)| a.0 == b.0 && histogram_equal(b.1, b.2, &a.1));
        if !same {
            problems.push(format!(
                "series {}:\n        expected {}\n        got      {} {}",
                fmt_labels(labels),
                fmt_wants(points),
                fmt_points(&s.floats),
                fmt_hist_points(&s.histograms)
            ));
        }
    }
    for s in series {
        if !expected.iter().any(|(l, _)| *l == s.labels) {
            problems.push(format!(
                "unexpected series {} {} {}",
                fmt_labels(&s.labels),
                fmt_points(&s.floats),
                fmt_hist_points(&s.histograms)
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n      "))
    }
}

fn check_annotations(
    kind: &str,
    expectation: &AnnotationExpectation,
    actual: &[String],
) -> Result<(), String> {
    if expectation.none && !actual.is_empty() {
        return Err(format!("expected no {kind}s, got {actual:?}"));
    }
    if expectation.expected.is_empty() {
        return Ok(());
    }
    if actual.is_empty() {
        return Err(format!(
            "expected {kind}s {:?}, got none",
            expectation.expected
        ));
    }
    for e in &expectation.expected {
        if !actual.iter().any(|a| e.matches(a)) {
            return Err(format!("expected a {kind} matching {e:?}, got {actual:?}"));
        }
    }
    for a in actual {
        if !expectation.expected.iter().any(|e| e.matches(a)) {
            return Err(format!("unexpected {kind} {a:?}"));
        }
    }
    Ok(())
}

fn check_result(eval: &Eval, result: &QueryResult) -> Result<(), String> {
    check_annotations("warning", &eval.warn, &result.warnings)?;
    check_annotations("info", &eval.info, &result.infos)?;
    let got = &result.value;
    match eval.kind {
        EvalKind::Range {
            start_ms,
            end_ms,
            step_ms,
        } => compare_matrix(&expand_expected(eval, start_ms, end_ms, step_ms)?, got),
        EvalKind::Instant { at_ms } => {
            if let Some(expected) = &eval.string {
                return match got {
                    Value::String { t, s } if s == expected && *t == at_ms => Ok(()),
                    _ => Err(format!(
                        "expected string {expected:?}, got {}",
                        fmt_value(got)
                    )),
                };
            }
            if let Some((start, end, step)) = eval.range_vector {
                return compare_matrix(&expand_expected(eval, start, end, step)?, got);
            }
            if let [Expected::Scalar { value, .. }] = eval.results.as_slice() {
                return match got {
                    Value::Scalar { t, f } if almost_equal(*f, *value) && *t == at_ms => Ok(()),
                    _ => Err(format!(
                        "expected scalar {value} at {at_ms} ms, got {}",
                        fmt_value(got)
                    )),
                };
            }
            compare_vector(eval, at_ms, got)
        }
    }
}

/// Runs the eval's query; `Ok(None)` is an expected failure that happened.
async fn run_query(
    engine: &Engine,
    querier: &Querier,
    eval: &Eval,
) -> Result<Option<QueryResult>, String> {
    let (engine, querier, query, kind) = (
        engine.clone(),
        querier.clone(),
        eval.query.clone(),
        eval.kind,
    );
    // A task of its own, so that a panicking or hanging query fails only its eval.
    let task = tokio::spawn(async move {
        let options = QueryOptions::default();
        match kind {
            EvalKind::Instant { at_ms } => {
                engine
                    .instant_query(&querier, &query, at_ms, &options)
                    .await
            }
            EvalKind::Range {
                start_ms,
                end_ms,
                step_ms,
            } => {
                engine
                    .range_query(&querier, &query, start_ms, end_ms, step_ms, &options)
                    .await
            }
        }
    });
    let outcome: Result<QueryResult, QueryError> =
        match tokio::time::timeout(QUERY_TIMEOUT, task).await {
            Err(_) => return Err(format!("the query ran longer than {QUERY_TIMEOUT:?}")),
            Ok(Err(join)) => return Err(format!("the engine panicked: {join}")),
            Ok(Ok(r)) => r,
        };
    match (outcome, &eval.fail) {
        (Err(e), Some(m)) => {
            let message = e.to_string();
            if m.matches(&message) {
                Ok(None)
            } else {
                Err(format!(
                    "expected an error matching {m:?}, got error {message:?}"
                ))
            }
        }
        (Err(e), None) => Err(format!("query failed: {e} ({})", e.error_type())),
        (Ok(r), Some(m)) => Err(format!(
            "expected the query to fail ({m:?}), it returned {}",
            fmt_value(&r.value)
        )),
        (Ok(r), None) => Ok(Some(r)),
    }
}

/// Runs one eval: `Ok` if it passed.
async fn run_eval(engine: &Engine, querier: &Querier, eval: &Eval) -> Result<(), String> {
    if !eval.errors.is_empty() {
        return Err(format!(
            "the runner does not understand this eval: {}",
            eval.errors.join("; ")
        ));
    }
    match run_query(engine, querier, eval).await? {
        None => Ok(()),
        Some(result) => check_result(eval, &result),
    }
}

// ---------------------------------------------------------------------------------------
// Running files
// ---------------------------------------------------------------------------------------

#[derive(Default, Clone)]
struct FileStats {
    name: String,
    passed: usize,
    failed: usize,
    native_passed: usize,
    native_failed: usize,
    /// Script lines not understood and runner failures (e.g. a refused load).
    errors: usize,
}

impl FileStats {
    fn add(&mut self, other: &FileStats) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.native_passed += other.native_passed;
        self.native_failed += other.native_failed;
        self.errors += other.errors;
    }
}

async fn run_file(engine: &Engine, path: &std::path::Path) -> FileStats {
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let script = parse_script(&text);
    let mut stats = FileStats {
        name: name.clone(),
        ..Default::default()
    };
    let verbose = verbose();
    let mut details = Vec::new();
    let mut printed = 0;
    for e in &script.errors {
        stats.errors += 1;
        details.push(format!("  {name}: script error: {e}\n"));
    }
    let mut db = open_db().await;
    let mut loaded = Loaded::default();
    for command in &script.commands {
        match command {
            Command::Clear { .. } => {
                db.close().await.expect("closing the database");
                db = open_db().await;
                loaded = Loaded::default();
            }
            Command::Load {
                line,
                interval_ms,
                with_nhcb,
                series,
            } => {
                if let Err(e) = load(&db, *interval_ms, *with_nhcb, series, &mut loaded).await {
                    stats.errors += 1;
                    details.push(format!("  {name}:{line}: load failed: {e}\n"));
                }
            }
            Command::Eval(eval) => {
                let native = is_native_histogram(eval, &loaded);
                let outcome = run_eval(engine, &db.querier(), eval).await;
                if !eval.errors.is_empty() {
                    stats.errors += 1;
                }
                match (&outcome, native) {
                    (Ok(()), false) => stats.passed += 1,
                    (Ok(()), true) => stats.native_passed += 1,
                    (Err(_), false) => stats.failed += 1,
                    (Err(_), true) => stats.native_failed += 1,
                }
                if let Err(e) = outcome {
                    let show = if native {
                        verbose
                    } else {
                        verbose || printed < PRINTED_FAILURES || !eval.errors.is_empty()
                    };
                    if show {
                        if !native {
                            printed += 1;
                        }
                        let tag = if native { " [native histogram]" } else { "" };
                        details.push(format!(
                            "  {name}:{}{tag}: {}\n      {e}\n",
                            eval.line, eval.query
                        ));
                    }
                }
            }
        }
    }
    db.close().await.expect("closing the database");
    let hidden = stats.failed.saturating_sub(printed);
    if hidden > 0 {
        details.push(format!(
            "  {name}: {hidden} more failures (PROMQLTEST_VERBOSE=1 shows all)\n"
        ));
    }
    report(&details.concat());
    stats
}

fn table(rows: &[FileStats], total: &FileStats) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "\n{:<26} {:>7} {:>7} {:>7} {:>10} {:>10} {:>7}\n",
        "file", "evals", "passed", "failed", "nh-passed", "nh-failed", "errors"
    ));
    for r in rows.iter().chain(std::iter::once(total)) {
        out.push_str(&format!(
            "{:<26} {:>7} {:>7} {:>7} {:>10} {:>10} {:>7}\n",
            r.name,
            r.passed + r.failed + r.native_passed + r.native_failed,
            r.passed,
            r.failed,
            r.native_passed,
            r.native_failed,
            r.errors
        ));
    }
    out
}

/// Runs script files with every experimental feature on (as upstream's runner): the
/// rows per file and their total.
fn run_scripts(files: &[PathBuf]) -> (Vec<FileStats>, FileStats) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rows: Vec<FileStats> = runtime.block_on(async {
        let engine = Engine::new(QueryConfig::default()).with_features(Features::all());
        let mut rows = Vec::new();
        for path in files {
            rows.push(run_file(&engine, path).await);
        }
        rows
    });
    let mut total = FileStats {
        name: "TOTAL".into(),
        ..Default::default()
    };
    for r in &rows {
        total.add(r);
    }
    (rows, total)
}

/// The project's own scripts (`tests/promqltest/*.test`), for what the upstream scripts
/// do not cover: every eval of them must pass, native histograms included.
#[test]
fn should_pass_the_projects_own_promql_scripts() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("promqltest");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .test files in {}", dir.display());
    let (rows, total) = run_scripts(&files);
    let summary = table(&rows, &total);
    report(&summary);
    assert!(
        total.failed == 0 && total.native_failed == 0 && total.errors == 0,
        "{} evals and {} native-histogram evals of the project's own scripts failed, {} \
         errors; see the details above",
        total.failed,
        total.native_failed,
        total.errors
    );
}

#[test]
fn should_pass_upstream_promql_conformance_scripts() {
    let files = script_files();
    let (rows, total) = run_scripts(&files);
    let summary = table(&rows, &total);
    report(&summary);
    println!("{summary}");
    // Every eval must pass, native histograms included (they are still counted apart in
    // the table, for information).
    assert!(
        total.failed == 0 && total.native_failed == 0 && total.errors == 0,
        "{} of {} PromQL conformance evals failed, {} of {} of those with native \
         histograms, and {} script or runner errors; see the details above",
        total.failed + total.native_failed,
        total.passed + total.failed + total.native_passed + total.native_failed,
        total.native_failed,
        total.native_passed + total.native_failed,
        total.errors
    );
}

// ---------------------------------------------------------------------------------------
// Unit tests of the script parser and the comparison
// ---------------------------------------------------------------------------------------

mod parser_tests {
    use super::script::*;
    use super::{CUSTOM_BUCKETS_SCHEMA, almost_equal, mentions, nhcb, query_selects};
    use opendata_timeseries::model::Labels;

    fn floats(s: &str) -> Vec<f64> {
        parse_points(s)
            .unwrap()
            .into_iter()
            .map(|p| match p {
                Point::Float(v) => v,
                other => panic!("not a float: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn should_expand_increasing_and_decreasing_points() {
        assert_eq!(floats("1+2x3"), vec![1.0, 3.0, 5.0, 7.0]);
        assert_eq!(floats("1-2x3"), vec![1.0, -1.0, -3.0, -5.0]);
        assert_eq!(floats("-1+1x2"), vec![-1.0, 0.0, 1.0]);
        assert_eq!(floats("0.5+0.5x1 7"), vec![0.5, 1.0, 7.0]);
        assert_eq!(floats("1e-5+1x1"), vec![1e-5, 1.0 + 1e-5]);
    }

    #[test]
    fn should_repeat_a_value_for_axn() {
        assert_eq!(floats("5x3"), vec![5.0; 4]);
        assert_eq!(floats("1.5x0"), vec![1.5]);
    }

    #[test]
    fn should_parse_special_floats() {
        let v = floats("Inf -Inf +Inf inf 1e3 -2.5E+2 .5");
        assert_eq!(
            v,
            vec![
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::INFINITY,
                f64::INFINITY,
                1000.0,
                -250.0,
                0.5
            ]
        );
        assert!(floats("NaN")[0].is_nan());
        assert!(parse_points("abc").is_err());
        assert!(parse_points("1+x3").is_err());
        assert!(parse_points("1+2xq").is_err());
    }

    #[test]
    fn should_expand_missing_and_stale_points() {
        assert_eq!(
            parse_points("1 _ _x3 stale 2").unwrap(),
            vec![
                Point::Float(1.0),
                Point::Missing,
                Point::Missing,
                Point::Missing,
                Point::Missing,
                Point::Stale,
                Point::Float(2.0),
            ]
        );
    }

    #[test]
    fn should_recognise_histogram_literals() {
        let p = parse_points("0 {{schema:0 sum:5 count:4 buckets:[1 2 1]}}x2 3").unwrap();
        assert_eq!(p.len(), 5);
        assert_eq!(p[0], Point::Float(0.0));
        let Point::Histogram(h, hint) = &p[1] else {
            panic!("{p:?}")
        };
        assert!(!hint);
        assert_eq!((h.count, h.sum), (4.0, 5.0));
        assert_eq!(h.positive, vec![(0, 1.0), (1, 2.0), (2, 1.0)]);
        assert_eq!(p[4], Point::Float(3.0));
        let p = parse_points(
            "{{schema:0 sum:4 count:4 buckets:[1 2 1]}}+{{sum:2 count:1 buckets:[1] offset:1}}x10",
        )
        .unwrap();
        assert_eq!(p.len(), 11);
        let Point::Histogram(last, _) = &p[10] else {
            panic!("{p:?}")
        };
        assert_eq!((last.count, last.sum), (14.0, 24.0));
        assert_eq!(last.positive, vec![(0, 1.0), (1, 12.0), (2, 1.0)]);
        let p = parse_points(
            "{{}} {{counter_reset_hint:gauge sum:1 z_bucket_w:0.5 n_buckets:[2] n_offset:-1}}",
        )
        .unwrap();
        let Point::Histogram(g, hint) = &p[1] else {
            panic!("{p:?}")
        };
        assert!(*hint && g.is_gauge());
        assert_eq!(g.zero_threshold, 0.5);
        assert_eq!(g.negative, vec![(-1, 2.0)]);
        assert!(parse_points("{{schema:0 bogus:1}}").is_err());
        assert!(parse_points("{{schema:0 sum:1").is_err());
    }

    #[test]
    fn should_convert_classic_histograms_for_load_with_nhcb() {
        let lines = vec![
            SeriesLine {
                line: 1,
                labels: vec![
                    ("__name__".into(), "h_bucket".into()),
                    ("le".into(), "1".into()),
                ],
                points: vec![Point::Float(1.0), Point::Float(2.0)],
            },
            SeriesLine {
                line: 2,
                labels: vec![
                    ("__name__".into(), "h_bucket".into()),
                    ("le".into(), "+Inf".into()),
                ],
                points: vec![Point::Float(3.0), Point::Float(5.0)],
            },
            SeriesLine {
                line: 3,
                labels: vec![("__name__".into(), "h_sum".into())],
                points: vec![Point::Float(4.0), Point::Float(9.0)],
            },
        ];
        let out = nhcb(&lines, 60_000);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].labels, Labels::from_pairs([("__name__", "h")]));
        let h = &out[0].histograms[1].histogram;
        assert_eq!(out[0].histograms[1].timestamp_ms, 60_000);
        assert_eq!(h.schema, CUSTOM_BUCKETS_SCHEMA);
        assert_eq!(&*h.custom_values, &[1.0]);
        assert_eq!(h.positive, vec![(0, 2.0), (1, 3.0)]);
        assert_eq!((h.count, h.sum), (5.0, 9.0));
    }

    #[test]
    fn should_parse_durations() {
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("5m"), Ok(300_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("10s53ms"), Ok(10_053));
        assert_eq!(parse_duration("100ms"), Ok(100));
        assert_eq!(parse_duration("1d"), Ok(86_400_000));
        assert_eq!(parse_duration("1w1d"), Ok(8 * 86_400_000));
        assert_eq!(parse_duration("1y"), Ok(365 * 86_400_000));
        assert_eq!(parse_duration("1111111s"), Ok(1_111_111_000));
        assert_eq!(parse_duration("90"), Ok(90_000));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("30s1m").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn should_parse_series_selectors() {
        let s = parse_series_line(1, r#"http_requests{job="api", instance="0"}	1 2"#).unwrap();
        assert_eq!(
            s.labels,
            vec![
                ("__name__".to_string(), "http_requests".to_string()),
                ("job".to_string(), "api".to_string()),
                ("instance".to_string(), "0".to_string()),
            ]
        );
        assert_eq!(s.points, vec![Point::Float(1.0), Point::Float(2.0)]);
        let s = parse_series_line(2, r#"{__name__="a", b="x y, {z}"} 3"#).unwrap();
        assert_eq!(s.metric_name(), Some("a"));
        assert_eq!(s.labels[1].1, "x y, {z}");
        let s = parse_series_line(3, "metric 5").unwrap();
        assert_eq!(s.metric_name(), Some("metric"));
        let s = parse_series_line(4, r#"{"my.metric", a="b\"c"} 1"#).unwrap();
        assert_eq!(s.metric_name(), Some("my.metric"));
        assert_eq!(s.labels[1].1, "b\"c");
        assert!(parse_series_line(5, r#"m{a=~"b"} 1"#).is_err());
        assert!(parse_series_line(6, r#"m{a="b" 1"#).is_err());
        assert!(parse_series_line(7, "m").is_err());
    }

    #[test]
    fn should_tell_scalars_from_series() {
        assert_eq!(
            parse_result_line(1, "-0.5").unwrap(),
            Expected::Scalar {
                line: 1,
                value: -0.5
            }
        );
        assert!(matches!(
            parse_result_line(1, "+Inf").unwrap(),
            Expected::Scalar { value, .. } if value == f64::INFINITY
        ));
        assert!(matches!(
            parse_result_line(1, "{} 1").unwrap(),
            Expected::Series(_)
        ));
    }

    #[test]
    fn should_parse_expect_lines() {
        let script = parse_script(
            "load 5m\n  m{a=\"b\"} 1+1x3\n\neval instant at 10m m\n  expect fail msg: boom here\n  \
             expect warn regex: a.*b\n  expect warn\n  expect no_info\n\n\
             eval instant at 0 \"x\"\n  expect string \" Foo \"\n\n\
             eval range from 0 to 10m step 5m m\n  m{a=\"b\"} 1 _ 3\n\n\
             eval_ordered instant at 1m sort(m)\n  expect range vector from 0 to 1m step 30s\n\n\
             clear\n",
        );
        assert!(script.errors.is_empty(), "{:?}", script.errors);
        let evals: Vec<&Eval> = script
            .commands
            .iter()
            .filter_map(|c| match c {
                Command::Eval(e) => Some(&**e),
                _ => None,
            })
            .collect();
        assert_eq!(evals.len(), 4);
        assert_eq!(evals[0].kind, EvalKind::Instant { at_ms: 600_000 });
        assert_eq!(evals[0].fail, Some(MessageMatch::Exact("boom here".into())));
        assert_eq!(
            evals[0].warn.expected,
            vec![MessageMatch::Regex("a.*b".into()), MessageMatch::Any]
        );
        assert!(evals[0].info.none && !evals[0].warn.none);
        assert_eq!(evals[1].string.as_deref(), Some(" Foo "));
        assert_eq!(
            evals[2].kind,
            EvalKind::Range {
                start_ms: 0,
                end_ms: 600_000,
                step_ms: 300_000
            }
        );
        assert_eq!(evals[2].results.len(), 1);
        assert!(evals[3].ordered);
        assert_eq!(evals[3].range_vector, Some((0, 60_000, 30_000)));
        assert!(evals.iter().all(|e| e.errors.is_empty()));
        assert!(matches!(
            script.commands[0],
            Command::Load {
                interval_ms: 300_000,
                ..
            }
        ));
        assert!(matches!(
            script.commands.last(),
            Some(Command::Clear { .. })
        ));
    }

    #[test]
    fn should_treat_old_eval_forms_as_expect_lines() {
        let script = parse_script(
            "eval_fail instant at 0 foo(\neval_warn instant at 0 a\neval_info instant at 0 a\n",
        );
        let evals: Vec<&Eval> = script
            .commands
            .iter()
            .filter_map(|c| match c {
                Command::Eval(e) => Some(&**e),
                _ => None,
            })
            .collect();
        assert_eq!(evals[0].fail, Some(MessageMatch::Any));
        assert_eq!(evals[1].warn.expected, vec![MessageMatch::Any]);
        assert_eq!(evals[2].info.expected, vec![MessageMatch::Any]);
    }

    #[test]
    fn should_report_what_it_does_not_understand() {
        let script = parse_script(
            "load 5m\n  m 1\n  bad{ 1\n\nfrobnicate 1\neval instant at 0 m\n  expect sparkles\n  m{} 1 2\n",
        );
        assert_eq!(script.errors.len(), 2, "{:?}", script.errors);
        let Some(Command::Eval(eval)) = script.commands.last() else {
            panic!("no eval");
        };
        assert_eq!(eval.errors.len(), 1, "{:?}", eval.errors);
        let script = parse_script("eval instant at 0 m\n  expect warn\n  expect no_warn\n");
        let Some(Command::Eval(eval)) = script.commands.last() else {
            panic!("no eval");
        };
        assert_eq!(eval.errors.len(), 1);
        assert!(!parse_script("eval sometime m\n").errors.is_empty());
    }

    #[test]
    fn should_match_messages() {
        assert!(MessageMatch::Any.matches("x"));
        assert!(MessageMatch::Exact("a b".into()).matches("a b"));
        assert!(!MessageMatch::Exact("a b".into()).matches("a b "));
        assert!(
            MessageMatch::Regex(r"got NaN \([0-9]+:[0-9]+\)".into()).matches("x got NaN (1:2)")
        );
    }

    #[test]
    fn should_compare_floats_almost_equal() {
        assert!(almost_equal(f64::NAN, -f64::NAN));
        assert!(almost_equal(1.0, 1.0 + 1e-9));
        assert!(!almost_equal(1.0, 1.0001));
        assert!(almost_equal(f64::INFINITY, f64::INFINITY));
        assert!(!almost_equal(f64::INFINITY, f64::MAX));
        assert!(!almost_equal(0.0, 1e-300));
        assert!(almost_equal(0.0, -0.0));
        assert!(!almost_equal(1.0, f64::NAN));
    }

    #[test]
    fn should_find_metric_names_as_whole_identifiers() {
        assert!(mentions("rate(foo[5m])", "foo"));
        assert!(mentions(r#"{__name__="foo"}"#, "foo"));
        assert!(!mentions("foo_bucket", "foo"));
        assert!(!mentions("my_foo", "foo"));
        assert!(mentions("a + foo", "foo"));
    }

    #[test]
    fn should_classify_queries_by_the_series_they_select() {
        let hist = vec![Labels::from_pairs([("__name__", "m"), ("kind", "hist")])];
        assert!(query_selects("sum(rate(m[5m]))", &hist));
        assert!(query_selects(r#"{__name__=~"m|x"}"#, &hist));
        assert!(query_selects(r#"m{kind="a" or kind="hist"}"#, &hist));
        assert!(!query_selects(r#"m{kind="float"}"#, &hist));
        assert!(!query_selects("m_bucket + other", &hist));
        assert!(query_selects("m +", &hist));
        assert!(!query_selects("m", &[]));
    }
}

mod runner_tests {
    use super::script::{Command, Eval, parse_script};
    use super::*;
    use opendata_timeseries::model::{Matcher, is_stale_marker};
    use opendata_timeseries::promql::{InstantSample, RangeSeries};

    fn evals(text: &str) -> Vec<Eval> {
        let script = parse_script(text);
        assert!(script.errors.is_empty(), "{:?}", script.errors);
        script
            .commands
            .into_iter()
            .filter_map(|c| match c {
                Command::Eval(e) => Some(*e),
                _ => None,
            })
            .collect()
    }

    fn result(value: Value, warnings: &[&str]) -> QueryResult {
        QueryResult {
            value,
            warnings: warnings.iter().map(|w| w.to_string()).collect(),
            infos: vec![],
            samples_loaded: 0,
        }
    }

    fn sample(pairs: &[(&str, &str)], t: i64, f: f64) -> InstantSample {
        InstantSample {
            labels: Labels::from_pairs(pairs.iter().copied()),
            t,
            f,
            h: None,
        }
    }

    #[test]
    fn should_compare_vectors_as_sets_unless_ordered() {
        let e = evals("eval instant at 1m m\n  m{a=\"1\"} 1\n  m{a=\"2\"} NaN\n");
        let got = Value::Vector(vec![
            sample(&[("__name__", "m"), ("a", "2")], 60_000, f64::NAN),
            sample(&[("__name__", "m"), ("a", "1")], 60_000, 1.0 + 1e-9),
        ]);
        assert_eq!(check_result(&e[0], &result(got.clone(), &[])), Ok(()));
        let ordered =
            evals("eval instant at 1m m\n  expect ordered\n  m{a=\"1\"} 1\n  m{a=\"2\"} NaN\n");
        assert!(check_result(&ordered[0], &result(got, &[])).is_err());
        // A wrong value, a missing `__name__`, a wrong timestamp, an extra series.
        for bad in [
            vec![
                sample(&[("__name__", "m"), ("a", "1")], 60_000, 2.0),
                sample(&[("__name__", "m"), ("a", "2")], 60_000, f64::NAN),
            ],
            vec![
                sample(&[("a", "1")], 60_000, 1.0),
                sample(&[("__name__", "m"), ("a", "2")], 60_000, f64::NAN),
            ],
            vec![
                sample(&[("__name__", "m"), ("a", "1")], 0, 1.0),
                sample(&[("__name__", "m"), ("a", "2")], 60_000, f64::NAN),
            ],
            vec![
                sample(&[("__name__", "m"), ("a", "1")], 60_000, 1.0),
                sample(&[("__name__", "m"), ("a", "2")], 60_000, f64::NAN),
                sample(&[("__name__", "m"), ("a", "3")], 60_000, 3.0),
            ],
        ] {
            assert!(check_result(&e[0], &result(Value::Vector(bad), &[])).is_err());
        }
        let empty = evals("eval instant at 1m m\n");
        assert_eq!(
            check_result(&empty[0], &result(Value::Vector(vec![]), &[])),
            Ok(())
        );
        let scalar = Value::Scalar { t: 60_000, f: 1.0 };
        assert!(check_result(&empty[0], &result(scalar, &[])).is_err());
    }

    #[test]
    fn should_compare_scalars_and_strings() {
        let e =
            evals("eval instant at 1m 1\n  1\n\neval instant at 1m \"a\"\n  expect string \"a\"\n");
        let scalar = Value::Scalar { t: 60_000, f: 1.0 };
        assert_eq!(check_result(&e[0], &result(scalar, &[])), Ok(()));
        let string = Value::String {
            t: 60_000,
            s: "a".into(),
        };
        assert_eq!(check_result(&e[1], &result(string.clone(), &[])), Ok(()));
        assert!(check_result(&e[0], &result(string, &[])).is_err());
        let wrong = Value::Scalar { t: 60_000, f: 2.0 };
        assert!(check_result(&e[0], &result(wrong, &[])).is_err());
    }

    #[test]
    fn should_compare_range_results_point_by_point() {
        let e = evals("eval range from 0 to 2m step 1m m\n  m 1 _ 3\n  {} 1+1x2\n");
        let series = |labels: &[(&str, &str)], floats: Vec<(i64, f64)>| RangeSeries {
            labels: Labels::from_pairs(labels.iter().copied()),
            floats,
            histograms: vec![],
        };
        let good = Value::Matrix(vec![
            series(&[], vec![(0, 1.0), (60_000, 2.0), (120_000, 3.0)]),
            series(&[("__name__", "m")], vec![(0, 1.0), (120_000, 3.0)]),
        ]);
        assert_eq!(check_result(&e[0], &result(good, &[])), Ok(()));
        let gap_filled = Value::Matrix(vec![
            series(&[], vec![(0, 1.0), (60_000, 2.0), (120_000, 3.0)]),
            series(
                &[("__name__", "m")],
                vec![(0, 1.0), (60_000, 1.0), (120_000, 3.0)],
            ),
        ]);
        assert!(check_result(&e[0], &result(gap_filled, &[])).is_err());
        let missing = Value::Matrix(vec![series(
            &[],
            vec![(0, 1.0), (60_000, 2.0), (120_000, 3.0)],
        )]);
        assert!(check_result(&e[0], &result(missing, &[])).is_err());
        let too_long = evals("eval range from 0 to 1m step 1m m\n  m 1 2 3\n");
        let got = Value::Matrix(vec![series(
            &[("__name__", "m")],
            vec![(0, 1.0), (60_000, 2.0)],
        )]);
        assert!(check_result(&too_long[0], &result(got, &[])).is_err());
    }

    #[test]
    fn should_check_warnings_both_ways() {
        let e = evals(
            "eval instant at 0 m\n  expect warn msg: w1\n\neval instant at 0 m\n  expect no_warn\n\n\
             eval instant at 0 m\n  expect warn\n\neval instant at 0 m\n",
        );
        let ok =
            |i: usize, w: &[&str]| check_result(&e[i], &result(Value::Vector(vec![]), w)).is_ok();
        assert!(ok(0, &["w1"]));
        assert!(!ok(0, &[]));
        assert!(!ok(0, &["w1", "w2"]));
        assert!(!ok(0, &["w2"]));
        assert!(ok(1, &[]));
        assert!(!ok(1, &["w1"]));
        assert!(ok(2, &["anything"]));
        assert!(!ok(2, &[]));
        assert!(ok(3, &["unchecked"]));
        assert!(ok(3, &[]));
    }

    #[test]
    fn should_load_series_through_storage() {
        let script = parse_script(
            "load 1d\n  far 0+1x30\n\nload 5m\n  m{a=\"b\"} 1 _ stale 4\n  \
             h {{schema:0 sum:1 count:1}} 2\n",
        );
        assert!(script.errors.is_empty(), "{:?}", script.errors);
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let db = open_db().await;
            let mut loaded = Loaded::default();
            for c in &script.commands {
                if let Command::Load {
                    interval_ms,
                    with_nhcb,
                    series,
                    ..
                } = c
                {
                    load(&db, *interval_ms, *with_nhcb, series, &mut loaded)
                        .await
                        .unwrap();
                }
            }
            let read = |name: &'static str| {
                let q = db.querier();
                async move {
                    q.select(&[Matcher::equal("__name__", name)], 0, i64::MAX / 4)
                        .await
                        .unwrap()
                        .collect()
                        .await
                        .unwrap()
                }
            };
            let far = read("far").await;
            assert_eq!(far[0].samples.len(), 31);
            assert_eq!(far[0].samples[30].timestamp_ms, 30 * 86_400_000);
            let m = read("m").await;
            let points: Vec<i64> = m[0].samples.iter().map(|s| s.timestamp_ms).collect();
            assert_eq!(points, vec![0, 600_000, 900_000]);
            assert!(is_stale_marker(m[0].samples[1].value));
            let h = read("h").await;
            assert_eq!(h[0].histograms.len(), 1);
            assert_eq!(h[0].histograms[0].histogram.count, 1.0);
            assert_eq!(h[0].samples.len(), 1);
            assert_eq!(
                loaded.histogram_series,
                vec![Labels::from_pairs([("__name__", "h")])]
            );
            db.close().await.unwrap();
        });
    }
}
