//! A deterministic, node-exporter-like workload: series, samples and remote-write
//! requests for benchmarks and tests.
//!
//! Series are spread over targets (`instance="host-NNNN:9100"`, `job="node"`), each
//! exposing [`SERIES_PER_TARGET`] series of a fixed family mix modelled on a Linux host
//! running node_exporter next to a small HTTP service:
//!
//! - counters with jittered increments: `node_cpu_seconds_total{cpu,mode}` (two decimals,
//!   as node_exporter reports them), `node_network_receive_bytes_total{device}`,
//!   `node_disk_read_bytes_total{device}` (integers), ... Idle devices and rare events
//!   (`steal`, `*_errs_total`) hold still or move rarely, as on real hosts;
//! - gauges, most of which hold still between scrapes (`node_filesystem_size_bytes`,
//!   `node_memory_MemTotal_bytes`, `node_network_mtu_bytes`, ...), some change now and
//!   then (`node_filesystem_avail_bytes`), and a minority move on every scrape
//!   (`node_load1` with two decimals, `node_memory_MemAvailable_bytes` in whole kB, scrape
//!   durations at full float precision);
//! - classic histograms, `http_request_duration_seconds{handler,method,code}` with
//!   `_bucket{le=...}` (cumulative, `+Inf` equal to `_count`), `_sum` and `_count`.
//!
//! The same latencies are also available as native histograms
//! ([`Workload::histogram_sample`], not part of [`Workload::batches`]): one series per
//! classic histogram, named `http_request_duration_seconds` as Prometheus names the
//! native form of a family, schema 3 (eight buckets per octave), with the buckets the
//! latency distribution populates (a few dozen) each an integer counter.
//!
//! All series of a target share one timestamp per scrape, as Prometheus stamps a whole
//! scrape: scrape `i` of target `t` is at `start_ms + i * interval_ms + jitter(t, i)` with
//! the jitter uniform in `±jitter_ms`.
//!
//! Everything is a pure function of the [`WorkloadConfig`]: the per-series parameters are
//! drawn from a small seeded PRNG when the workload is built, and the value of a series at
//! a scrape is computed in closed form from a hash of `(seed, series, scrape)`, so any
//! sample can be asked for in any order and the same configuration always gives the same
//! bytes.
//!
//! ```
//! use opendata_testing::workload::{Workload, WorkloadConfig};
//!
//! let workload = Workload::new(WorkloadConfig { series: 2_000, ..Default::default() });
//! assert_eq!(workload.series_count(), 2_000);
//! // 200 series x 10 samples per request, 20 scrapes: 10 requests per time slice, 2 slices.
//! let requests: Vec<_> = workload.batches(200, 10, 20).collect();
//! assert_eq!(requests.len(), 20);
//! assert_eq!(requests[0].series.len(), 200);
//! ```
//!
//! The server's API layer turns these batches into remote-write bodies
//! (`opendata_server::api::timeseries::remote_write::encode_v1`).

use std::f64::consts::TAU;

use std::sync::Arc;

use opendata_timeseries::histogram::exponential_upper_bound;
use opendata_timeseries::model::{
    FloatHistogram, HistogramSample, Labels, METRIC_NAME, MetricMetadata, MetricType, Sample,
    SeriesSamples, WriteBatch,
};

/// The schema of the native histograms.
pub const NATIVE_SCHEMA: i32 = 3;

/// The number of series every target exposes.
pub const SERIES_PER_TARGET: usize = 1_000;

/// The `le` bounds of the histograms' finite buckets (a `+Inf` bucket follows).
pub const HISTOGRAM_BOUNDS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets per histogram, `+Inf` included.
const BUCKETS: usize = HISTOGRAM_BOUNDS.len() + 1;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadConfig {
    /// Target number of series; rounded up to whole targets of [`SERIES_PER_TARGET`].
    pub series: usize,
    /// Scrape interval in milliseconds.
    pub interval_ms: i64,
    /// Per-scrape timestamp jitter: each scrape of a target is up to this many
    /// milliseconds early or late. Clamped below half the interval so that timestamps
    /// always increase.
    pub jitter_ms: i64,
    /// Nominal timestamp of scrape 0, in milliseconds since the Unix epoch.
    pub start_ms: i64,
    /// Seed of everything random.
    pub seed: u64,
}

impl Default for WorkloadConfig {
    /// 10,000 series scraped every 15 s with ±3 ms jitter, from 2024-01-01T00:00:00Z,
    /// seed 1.
    fn default() -> Self {
        WorkloadConfig {
            series: 10_000,
            interval_ms: 15_000,
            jitter_ms: 3,
            start_ms: 1_704_067_200_000,
            seed: 1,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Randomness: splitmix64, as a stream and as a hash.

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform number in `[0, 1)` from 53 random bits.
fn to_unit(bits: u64) -> f64 {
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Hash of `(seed, a, b)`, uniform in `[0, 1)`.
fn unit_hash(seed: u64, a: u64, b: u64) -> f64 {
    to_unit(mix(
        seed ^ mix(a.wrapping_mul(GOLDEN) ^ mix(b.wrapping_add(GOLDEN)))
    ))
}

/// splitmix64 as a stream.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Rng {
        Rng(mix(seed ^ mix(stream.wrapping_add(0x5eed))))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    fn unit(&mut self) -> f64 {
        to_unit(self.next_u64())
    }

    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Log-uniform in `[lo, hi]` (both positive): as many values per decade.
    fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        (lo.ln() + (hi.ln() - lo.ln()) * self.unit()).exp()
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

// Salts separating the hash domains of per-scrape randomness.
const SALT_JITTER: u64 = 0x6a17_7e12;
const SALT_HIST: u64 = 0x4157_0a11;
const SALT_NATIVE: u64 = 0x0a71_7e5c;

// ---------------------------------------------------------------------------------------
// Series models.

/// How values are rounded, like the sources exporters read them from.
#[derive(Debug, Clone, Copy)]
enum Quant {
    /// Full float precision.
    Exact,
    /// This many decimal digits (0 for integers).
    Decimals(i32),
    /// A multiple of this (e.g. 1024 for kB-based memory figures).
    Multiple(f64),
}

impl Quant {
    fn round(self, v: f64) -> f64 {
        match self {
            Quant::Exact => v,
            Quant::Decimals(d) => {
                let p = 10f64.powi(d);
                (v * p).round() / p
            }
            Quant::Multiple(q) => (v / q).round() * q,
        }
    }

    /// Rounding down, so that a non-decreasing input stays non-decreasing.
    fn floor(self, v: f64) -> f64 {
        match self {
            Quant::Exact => v,
            Quant::Decimals(d) => {
                let p = 10f64.powi(d);
                (v * p).floor() / p
            }
            Quant::Multiple(q) => (v / q).floor() * q,
        }
    }
}

/// How one series' value evolves.
#[derive(Debug, Clone, Copy)]
enum Model {
    /// Never changes.
    Constant(f64),
    /// `start + per_scrape * i + wobble * u(i)`, rounded down. With `wobble <=
    /// per_scrape` it never decreases; increments vary in `per_scrape ± wobble`.
    Counter {
        start: f64,
        per_scrape: f64,
        wobble: f64,
        quant: Quant,
    },
    /// `base + amplitude * sin(TAU * i / period + phase) + noise * (u(i) - 0.5)`,
    /// clamped to `[lo, hi]` and rounded: moves on every scrape.
    Wave {
        base: f64,
        amplitude: f64,
        period: f64,
        phase: f64,
        noise: f64,
        lo: f64,
        hi: f64,
        quant: Quant,
    },
    /// Piecewise constant: holds for `hold` scrapes, then takes
    /// `base + drift * epoch + noise * (u(epoch) - 0.5)`, clamped and rounded.
    Stepped {
        base: f64,
        drift: f64,
        noise: f64,
        hold: u32,
        offset: u32,
        lo: f64,
        hi: f64,
        quant: Quant,
    },
    /// The scrape's wall clock in seconds, at sub-millisecond precision
    /// (`node_time_seconds`).
    WallClock,
    /// Cumulative count of histogram `hist` up to bucket `le` (an index into
    /// `HISTOGRAM_BOUNDS`, `BUCKETS - 1` for `+Inf`).
    Bucket { hist: u32, le: u8 },
    /// Observation count of histogram `hist`.
    HistCount { hist: u32 },
    /// Observation sum of histogram `hist`.
    HistSum { hist: u32 },
}

/// One classic histogram: each bucket's own (non-cumulative) count is a counter; the sum
/// adds each bucket's count times a representative value in the bucket.
#[derive(Debug, Clone)]
struct Hist {
    start: [f64; BUCKETS],
    per_scrape: [f64; BUCKETS],
    mean: [f64; BUCKETS],
    /// The native form: schema-3 bucket index, start count, count per scrape and a
    /// representative latency of each populated bucket.
    native: Vec<(i32, f64, f64, f64)>,
    /// Labels of the native series.
    labels: Labels,
    target: u32,
}

#[derive(Debug, Clone)]
struct SeriesDef {
    labels: Labels,
    target: u32,
    model: Model,
}

/// A generated workload: the series of every target and their samples at any scrape.
#[derive(Debug, Clone)]
pub struct Workload {
    cfg: WorkloadConfig,
    targets: usize,
    series: Vec<SeriesDef>,
    hists: Vec<Hist>,
    metadata: Vec<MetricMetadata>,
}

impl Workload {
    /// Builds the series of `ceil(cfg.series / SERIES_PER_TARGET)` targets. The jitter
    /// is clamped to `[0, (interval_ms - 1) / 2]`.
    ///
    /// # Panics
    ///
    /// If `cfg.interval_ms` is not positive.
    pub fn new(mut cfg: WorkloadConfig) -> Workload {
        assert!(cfg.interval_ms > 0, "the scrape interval must be positive");
        cfg.jitter_ms = cfg.jitter_ms.clamp(0, (cfg.interval_ms - 1) / 2);
        let targets = cfg.series.div_ceil(SERIES_PER_TARGET);
        let mut series = Vec::with_capacity(targets * SERIES_PER_TARGET);
        let mut hists = Vec::new();
        let mut metadata = Vec::new();
        for t in 0..targets {
            let before = series.len();
            let mut b = TargetBuilder {
                target: t as u32,
                instance: format!("host-{:04}:9100", t + 1),
                hostname: format!("host-{:04}", t + 1),
                interval_s: cfg.interval_ms as f64 / 1000.0,
                rng: Rng::new(cfg.seed, t as u64),
                series: &mut series,
                hists: &mut hists,
                metadata: (t == 0).then_some(&mut metadata),
            };
            b.build();
            debug_assert_eq!(series.len() - before, SERIES_PER_TARGET);
        }
        Workload {
            cfg,
            targets,
            series,
            hists,
            metadata,
        }
    }

    /// The configuration (with the jitter as clamped).
    pub fn config(&self) -> &WorkloadConfig {
        &self.cfg
    }

    /// Number of series: `targets() * SERIES_PER_TARGET`.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Number of targets (instances).
    pub fn targets(&self) -> usize {
        self.targets
    }

    /// The labels of series `series` (`0..series_count()`).
    pub fn labels(&self, series: usize) -> &Labels {
        &self.series[series].labels
    }

    /// The target series `series` belongs to.
    pub fn target_of(&self, series: usize) -> usize {
        self.series[series].target as usize
    }

    /// Metadata (type, help, unit) of every metric family, once each.
    pub fn metadata(&self) -> &[MetricMetadata] {
        &self.metadata
    }

    /// A request carrying only the metadata, as Prometheus sends it apart from samples.
    pub fn metadata_batch(&self) -> WriteBatch {
        WriteBatch {
            series: Vec::new(),
            metadata: self.metadata.clone(),
        }
    }

    /// The timestamp of scrape `scrape` of target `target`:
    /// `start_ms + scrape * interval_ms + jitter`, jitter uniform in `±jitter_ms`.
    pub fn timestamp(&self, target: usize, scrape: u64) -> i64 {
        let j = self.cfg.jitter_ms;
        let jitter = if j == 0 {
            0
        } else {
            let u = unit_hash(self.cfg.seed ^ SALT_JITTER, target as u64, scrape);
            (u * (2 * j + 1) as f64) as i64 - j
        };
        self.cfg.start_ms + scrape as i64 * self.cfg.interval_ms + jitter
    }

    /// The sample of series `series` at scrape `scrape`.
    pub fn sample(&self, series: usize, scrape: u64) -> Sample {
        let def = &self.series[series];
        let timestamp_ms = self.timestamp(def.target as usize, scrape);
        Sample {
            timestamp_ms,
            value: self.value(series, def.model, scrape, timestamp_ms),
        }
    }

    /// The samples of every series at scrape `scrape`, indexed by series.
    pub fn scrape(&self, scrape: u64) -> Vec<Sample> {
        (0..self.series.len())
            .map(|s| self.sample(s, scrape))
            .collect()
    }

    /// Number of requests [`Workload::batches`] yields per time slice.
    pub fn requests_per_slice(&self, series_per_request: usize) -> usize {
        self.series.len().div_ceil(series_per_request.max(1))
    }

    /// Remote-write batches covering scrapes `0..scrapes` of every series, in time order:
    /// the first `samples_per_series` scrapes of all series (in requests of
    /// `series_per_request` series, [`Workload::requests_per_slice`] of them), then the
    /// next `samples_per_series` scrapes, and so on; the last slice may be shorter.
    /// Samples of a series within a batch are in time order. No metadata is attached
    /// (see [`Workload::metadata_batch`]).
    ///
    /// # Panics
    ///
    /// If `series_per_request` or `samples_per_series` is zero.
    pub fn batches(
        &self,
        series_per_request: usize,
        samples_per_series: usize,
        scrapes: u64,
    ) -> Batches<'_> {
        assert!(
            series_per_request > 0,
            "series_per_request must be positive"
        );
        assert!(
            samples_per_series > 0,
            "samples_per_series must be positive"
        );
        Batches {
            workload: self,
            series_per_request,
            samples_per_series: samples_per_series as u64,
            scrapes,
            first_scrape: 0,
            first_series: 0,
        }
    }

    /// The batch of series `series` (a range of series indexes) over scrapes `scrapes`.
    pub fn batch(
        &self,
        series: std::ops::Range<usize>,
        scrapes: std::ops::Range<u64>,
    ) -> WriteBatch {
        let series = series
            .map(|s| SeriesSamples {
                histograms: Vec::new(),
                exemplars: Vec::new(),
                created_timestamp_ms: None,
                labels: self.series[s].labels.clone(),
                samples: scrapes.clone().map(|i| self.sample(s, i)).collect(),
            })
            .collect();
        WriteBatch {
            series,
            metadata: Vec::new(),
        }
    }

    fn value(&self, series: usize, model: Model, i: u64, timestamp_ms: i64) -> f64 {
        let seed = self.cfg.seed;
        let u = || unit_hash(seed, series as u64, i);
        match model {
            Model::Constant(v) => v,
            Model::Counter {
                start,
                per_scrape,
                wobble,
                quant,
            } => quant.floor(start + per_scrape * i as f64 + wobble * u()),
            Model::Wave {
                base,
                amplitude,
                period,
                phase,
                noise,
                lo,
                hi,
                quant,
            } => {
                let v = base + amplitude * (TAU * i as f64 / period + phase).sin();
                quant.round((v + noise * (u() - 0.5)).clamp(lo, hi))
            }
            Model::Stepped {
                base,
                drift,
                noise,
                hold,
                offset,
                lo,
                hi,
                quant,
            } => {
                let epoch = (i + offset as u64) / hold.max(1) as u64;
                let n = unit_hash(seed, series as u64, epoch ^ 0x57e9_0000_0000_0000);
                let v = base + drift * epoch as f64 + noise * (n - 0.5);
                quant.round(v.clamp(lo, hi))
            }
            Model::WallClock => {
                let sub_ms = 0.000_9 * u();
                timestamp_ms as f64 / 1000.0 + sub_ms
            }
            Model::Bucket { hist, le } => (0..=le as usize)
                .map(|k| self.hist_component(hist, k, i))
                .sum(),
            Model::HistCount { hist } => {
                (0..BUCKETS).map(|k| self.hist_component(hist, k, i)).sum()
            }
            Model::HistSum { hist } => {
                let h = &self.hists[hist as usize];
                (0..BUCKETS)
                    .map(|k| self.hist_component(hist, k, i) * h.mean[k])
                    .sum()
            }
        }
    }

    /// Number of native histogram series ([`Workload::histogram_sample`]): one per
    /// classic histogram, 28 per target.
    pub fn histogram_count(&self) -> usize {
        self.hists.len()
    }

    /// The labels of native histogram `hist`.
    pub fn histogram_labels(&self, hist: usize) -> &Labels {
        &self.hists[hist].labels
    }

    /// Native histogram `hist` at scrape `scrape` (stamped with its target's scrape
    /// timestamp): an integer counter histogram of schema 3.
    pub fn histogram_sample(&self, hist: usize, scrape: u64) -> HistogramSample {
        let h = &self.hists[hist];
        let mut positive = Vec::with_capacity(h.native.len());
        let (mut count, mut sum) = (0.0, 0.0);
        for (j, &(index, start, rate, mean)) in h.native.iter().enumerate() {
            let u = unit_hash(
                self.cfg.seed ^ SALT_NATIVE,
                hist as u64 * 1024 + j as u64,
                scrape,
            );
            let c = (start + rate * scrape as f64 + 0.9 * rate * u).floor();
            if c > 0.0 {
                positive.push((index, c));
                count += c;
                sum += c * mean;
            }
        }
        HistogramSample {
            timestamp_ms: self.timestamp(h.target as usize, scrape),
            histogram: Arc::new(FloatHistogram {
                schema: NATIVE_SCHEMA,
                zero_threshold: 2.938735877055719e-39,
                count,
                sum,
                positive,
                ..Default::default()
            }),
        }
    }

    /// The native histograms `hists` over scrapes `scrapes`, as one write.
    pub fn histogram_batch(
        &self,
        hists: std::ops::Range<usize>,
        scrapes: std::ops::Range<u64>,
    ) -> WriteBatch {
        let series = hists
            .map(|h| SeriesSamples {
                labels: self.hists[h].labels.clone(),
                samples: Vec::new(),
                histograms: scrapes
                    .clone()
                    .map(|i| self.histogram_sample(h, i))
                    .collect(),
                exemplars: Vec::new(),
                created_timestamp_ms: None,
            })
            .collect();
        WriteBatch {
            series,
            metadata: Vec::new(),
        }
    }

    /// The (non-cumulative) count of bucket `k` of histogram `hist` at scrape `i`: an
    /// integer counter.
    fn hist_component(&self, hist: u32, k: usize, i: u64) -> f64 {
        let h = &self.hists[hist as usize];
        let u = unit_hash(
            self.cfg.seed ^ SALT_HIST,
            hist as u64 * BUCKETS as u64 + k as u64,
            i,
        );
        let r = h.per_scrape[k];
        (h.start[k] + r * i as f64 + 0.9 * r * u).floor()
    }
}

/// The iterator of [`Workload::batches`].
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    workload: &'a Workload,
    series_per_request: usize,
    samples_per_series: u64,
    scrapes: u64,
    first_scrape: u64,
    first_series: usize,
}

impl Iterator for Batches<'_> {
    type Item = WriteBatch;

    fn next(&mut self) -> Option<WriteBatch> {
        let n = self.workload.series_count();
        if n == 0 || self.first_scrape >= self.scrapes {
            return None;
        }
        let series_end = (self.first_series + self.series_per_request).min(n);
        let scrape_end = (self.first_scrape + self.samples_per_series).min(self.scrapes);
        let batch = self
            .workload
            .batch(self.first_series..series_end, self.first_scrape..scrape_end);
        if series_end == n {
            self.first_series = 0;
            self.first_scrape = scrape_end;
        } else {
            self.first_series = series_end;
        }
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.workload.series_count();
        if n == 0 || self.first_scrape >= self.scrapes {
            return (0, Some(0));
        }
        let per_slice = n.div_ceil(self.series_per_request);
        let slices_left = (self.scrapes - self.first_scrape).div_ceil(self.samples_per_series);
        let done_in_slice = self.first_series / self.series_per_request;
        let left = slices_left as usize * per_slice - done_in_slice;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Batches<'_> {}

// ---------------------------------------------------------------------------------------
// Remote write.

// ---------------------------------------------------------------------------------------
// The family mix of one target.

struct TargetBuilder<'a> {
    target: u32,
    instance: String,
    hostname: String,
    interval_s: f64,
    rng: Rng,
    series: &'a mut Vec<SeriesDef>,
    hists: &'a mut Vec<Hist>,
    /// Set for the first target only: where family metadata is recorded.
    metadata: Option<&'a mut Vec<MetricMetadata>>,
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

impl TargetBuilder<'_> {
    fn family(&mut self, name: &str, metric_type: MetricType, help: &str, unit: &str) {
        if let Some(md) = self.metadata.as_deref_mut() {
            debug_assert!(md.iter().all(|m| m.metric != name), "family {name} twice");
            md.push(MetricMetadata {
                metric: name.to_string(),
                metric_type,
                help: help.to_string(),
                unit: unit.to_string(),
            });
        }
    }

    fn add(&mut self, name: &str, extra: &[(&str, &str)], model: Model) {
        let labels = Labels::from_pairs(
            [
                (METRIC_NAME, name),
                ("job", "node"),
                ("instance", self.instance.as_str()),
            ]
            .into_iter()
            .chain(extra.iter().copied()),
        );
        self.series.push(SeriesDef {
            labels,
            target: self.target,
            model,
        });
    }

    /// A counter growing by `rate` per second on average, started `uptime_s` ago.
    fn counter(&mut self, rate: f64, uptime_s: f64, quant: Quant) -> Model {
        let per_scrape = rate * self.interval_s;
        let wobble = per_scrape * self.rng.uniform(0.3, 0.95);
        Model::Counter {
            start: quant.floor(rate * uptime_s * self.rng.uniform(0.8, 1.2)),
            per_scrape,
            wobble,
            quant,
        }
    }

    /// A counter whose rate is drawn log-uniformly from `(lo, hi)`.
    fn counter_in(&mut self, (lo, hi): (f64, f64), uptime_s: f64, quant: Quant) -> Model {
        let rate = self.rng.log_uniform(lo, hi);
        self.counter(rate, uptime_s, quant)
    }

    /// A moving gauge whose base is drawn uniformly from `(lo, hi)`.
    fn wave_in(
        &mut self,
        (lo, hi): (f64, f64),
        rel_amplitude: f64,
        rel_noise: f64,
        quant: Quant,
    ) -> Model {
        let base = self.rng.uniform(lo, hi);
        self.wave(base, rel_amplitude, rel_noise, quant)
    }

    /// A gauge moving on every scrape around `base`.
    fn wave(&mut self, base: f64, rel_amplitude: f64, rel_noise: f64, quant: Quant) -> Model {
        Model::Wave {
            base,
            amplitude: base * rel_amplitude,
            period: self.rng.uniform(60.0, 2_000.0),
            phase: self.rng.uniform(0.0, TAU),
            noise: base * rel_noise,
            lo: 0.0,
            hi: f64::MAX,
            quant,
        }
    }

    /// A gauge that holds for `hold_lo..hold_hi` scrapes at a time.
    fn stepped(
        &mut self,
        base: f64,
        rel_drift: f64,
        rel_noise: f64,
        (hold_lo, hold_hi): (u64, u64),
        quant: Quant,
    ) -> Model {
        let hold = (hold_lo + self.rng.below(hold_hi - hold_lo + 1)) as u32;
        Model::Stepped {
            base,
            drift: base * rel_drift,
            noise: base * rel_noise,
            hold,
            offset: self.rng.below(hold as u64) as u32,
            lo: 0.0,
            hi: f64::MAX,
            quant,
        }
    }

    fn build(&mut self) {
        let uptime = self.rng.uniform(1.0, 200.0) * 86_400.0;
        self.cpu(uptime);
        self.network(uptime);
        self.disks(uptime);
        self.filesystems();
        self.memory();
        self.load();
        self.vmstat(uptime);
        self.netstat(uptime);
        self.hwmon();
        self.collectors();
        self.misc(uptime);
        self.histograms(uptime);
    }

    fn cpu(&mut self, uptime: f64) {
        const CPUS: usize = 16;
        let busy = self.rng.uniform(0.03, 0.6);
        let virtualized = self.rng.chance(0.5);
        self.family(
            "node_cpu_seconds_total",
            MetricType::Counter,
            "Seconds the CPUs spent in each mode.",
            "seconds",
        );
        for cpu in 0..CPUS {
            let c = cpu.to_string();
            let load = busy * self.rng.uniform(0.7, 1.3);
            let shares = [
                ("iowait", 0.02 * load),
                ("irq", 0.0),
                ("nice", if self.rng.chance(0.2) { 0.002 } else { 0.0 }),
                ("softirq", 0.03 * load),
                ("steal", if virtualized { 0.004 } else { 0.0 }),
                ("system", 0.25 * load),
                ("user", 0.65 * load),
            ];
            let idle = 1.0 - shares.iter().map(|s| s.1).sum::<f64>();
            let model = self.counter(idle, uptime, Quant::Decimals(2));
            self.add(
                "node_cpu_seconds_total",
                &[("cpu", &c), ("mode", "idle")],
                model,
            );
            for (mode, rate) in shares {
                let model = self.counter(rate, uptime, Quant::Decimals(2));
                self.add(
                    "node_cpu_seconds_total",
                    &[("cpu", &c), ("mode", mode)],
                    model,
                );
            }
        }
        self.family(
            "node_cpu_guest_seconds_total",
            MetricType::Counter,
            "Seconds the CPUs spent in guests (VMs) for each mode.",
            "seconds",
        );
        for cpu in 0..CPUS {
            for mode in ["nice", "user"] {
                self.add(
                    "node_cpu_guest_seconds_total",
                    &[("cpu", &cpu.to_string()), ("mode", mode)],
                    Model::Constant(0.0),
                );
            }
        }
        self.family(
            "node_cpu_scaling_frequency_hertz",
            MetricType::Gauge,
            "Current scaled CPU thread frequency in hertz.",
            "hertz",
        );
        let max_hz = *self.rng.pick(&[2.1e9, 2.6e9, 3.0e9, 3.5e9]);
        for cpu in 0..CPUS {
            let model = self.wave(max_hz * 0.7, 0.2, 0.3, Quant::Multiple(1_000.0));
            self.add(
                "node_cpu_scaling_frequency_hertz",
                &[("cpu", &cpu.to_string())],
                model,
            );
        }
        for (name, help) in [
            (
                "node_softnet_processed_total",
                "Number of processed packets.",
            ),
            ("node_softnet_dropped_total", "Number of dropped packets."),
            (
                "node_softnet_times_squeezed_total",
                "Number of times processing packets ran out of quota.",
            ),
        ] {
            self.family(name, MetricType::Counter, help, "");
            for cpu in 0..CPUS {
                let rate = match name {
                    "node_softnet_processed_total" => self.rng.log_uniform(10.0, 5_000.0),
                    "node_softnet_dropped_total" => 0.0,
                    _ => self.rng.log_uniform(1e-4, 0.05),
                };
                let model = self.counter(rate, uptime, Quant::Decimals(0));
                self.add(name, &[("cpu", &cpu.to_string())], model);
            }
        }
    }

    fn network(&mut self, uptime: f64) {
        // (device, bytes/s, up)
        let devices = [
            ("docker0", self.rng.log_uniform(1e2, 1e5), 1.0),
            ("eth0", self.rng.log_uniform(1e4, 5e7), 1.0),
            ("eth1", 0.0, 0.0),
            ("lo", self.rng.log_uniform(1e3, 1e6), 1.0),
            ("veth3a1f2c9", self.rng.log_uniform(1e2, 1e5), 1.0),
            ("veth9b7e6d4", self.rng.log_uniform(1e1, 1e4), 1.0),
        ];
        for dir in ["receive", "transmit"] {
            for (what, help) in [
                ("bytes", "Network device statistic {}_bytes."),
                ("packets", "Network device statistic {}_packets."),
                ("errs", "Network device statistic {}_errs."),
                ("drop", "Network device statistic {}_drop."),
            ] {
                let name = format!("node_network_{dir}_{what}_total");
                let help = help.replace("{}", dir);
                let unit = if what == "bytes" { "bytes" } else { "" };
                self.family(&name, MetricType::Counter, &help, unit);
                for &(dev, bytes_rate, _) in &devices {
                    let rate = match what {
                        "bytes" => bytes_rate * self.rng.uniform(0.3, 1.5),
                        "packets" => bytes_rate / self.rng.uniform(300.0, 1_400.0),
                        "errs" => 0.0,
                        _ if bytes_rate > 0.0 => self.rng.log_uniform(1e-5, 1e-2),
                        _ => 0.0,
                    };
                    let model = self.counter(rate, uptime, Quant::Decimals(0));
                    self.add(&name, &[("device", dev)], model);
                }
            }
        }
        for (name, help, unit) in [
            (
                "node_network_up",
                "Value is 1 if operstate is 'up', 0 otherwise.",
                "",
            ),
            (
                "node_network_mtu_bytes",
                "Network device property mtu_bytes.",
                "bytes",
            ),
            (
                "node_network_speed_bytes",
                "Network device property speed_bytes.",
                "bytes",
            ),
        ] {
            self.family(name, MetricType::Gauge, help, unit);
            for &(dev, _, up) in &devices {
                let v = match name {
                    "node_network_up" => up,
                    "node_network_mtu_bytes" if dev == "lo" => 65_536.0,
                    "node_network_mtu_bytes" => 1_500.0,
                    _ if dev == "lo" => 0.0,
                    _ => 1.25e9,
                };
                self.add(name, &[("device", dev)], Model::Constant(v));
            }
        }
    }

    fn disks(&mut self, uptime: f64) {
        let devices = ["dm-0", "dm-1", "nvme0n1", "nvme1n1", "sda", "sdb"];
        let activity: Vec<(f64, f64)> = devices
            .iter()
            .map(|_| {
                (
                    self.rng.log_uniform(1e2, 5e6),
                    self.rng.log_uniform(1e3, 2e7),
                )
            })
            .collect();
        let families: [(&str, &str, &str); 7] = [
            (
                "node_disk_reads_completed_total",
                "The total number of reads completed successfully.",
                "",
            ),
            (
                "node_disk_writes_completed_total",
                "The total number of writes completed successfully.",
                "",
            ),
            (
                "node_disk_read_bytes_total",
                "The total number of bytes read successfully.",
                "bytes",
            ),
            (
                "node_disk_written_bytes_total",
                "The total number of bytes written successfully.",
                "bytes",
            ),
            (
                "node_disk_read_time_seconds_total",
                "The total number of seconds spent by all reads.",
                "seconds",
            ),
            (
                "node_disk_write_time_seconds_total",
                "This is the total number of seconds spent by all writes.",
                "seconds",
            ),
            (
                "node_disk_io_time_seconds_total",
                "Total seconds spent doing I/Os.",
                "seconds",
            ),
        ];
        for (name, help, unit) in families {
            self.family(name, MetricType::Counter, help, unit);
            for (d, &(read, written)) in devices.iter().zip(&activity) {
                let (rate, quant) = match name {
                    "node_disk_reads_completed_total" => (read / 16_384.0, Quant::Decimals(0)),
                    "node_disk_writes_completed_total" => (written / 8_192.0, Quant::Decimals(0)),
                    "node_disk_read_bytes_total" => (read, Quant::Multiple(512.0)),
                    "node_disk_written_bytes_total" => (written, Quant::Multiple(512.0)),
                    "node_disk_read_time_seconds_total" => {
                        (read / 16_384.0 * 2e-4, Quant::Decimals(3))
                    }
                    "node_disk_write_time_seconds_total" => {
                        (written / 8_192.0 * 5e-4, Quant::Decimals(3))
                    }
                    _ => (((read + written) / 5e7).min(0.9), Quant::Decimals(3)),
                };
                let model = self.counter(rate, uptime, quant);
                self.add(name, &[("device", d)], model);
            }
        }
        self.family(
            "node_disk_io_now",
            MetricType::Gauge,
            "The number of I/Os currently in progress.",
            "",
        );
        for d in devices {
            let model = self.wave(0.2, 0.2, 1.5, Quant::Decimals(0));
            self.add("node_disk_io_now", &[("device", d)], model);
        }
    }

    fn filesystems(&mut self) {
        // (device, fstype, mountpoint, size in GiB)
        let mounts: [(&str, &str, &str, f64); 10] = [
            ("/dev/mapper/vg0-home", "ext4", "/home", 200.0),
            ("/dev/nvme0n1p1", "ext4", "/var/lib/docker", 500.0),
            ("/dev/nvme1n1p1", "ext4", "/var/log", 100.0),
            ("/dev/sda1", "ext4", "/", 50.0),
            ("/dev/sda2", "vfat", "/boot/efi", 0.5),
            ("/dev/sdb1", "xfs", "/data", 2_000.0),
            ("tmpfs", "tmpfs", "/dev/shm", 16.0),
            ("tmpfs", "tmpfs", "/run", 3.2),
            ("tmpfs", "tmpfs", "/run/lock", 0.005),
            ("tmpfs", "tmpfs", "/run/user/1000", 3.2),
        ];
        let props: Vec<(f64, f64, bool)> = mounts
            .iter()
            .map(|m| {
                let size = (m.3 * GIB / 4_096.0).round() * 4_096.0;
                let used = self.rng.uniform(0.02, 0.8);
                let busy = m.1 != "vfat" && m.2 != "/run/lock" && self.rng.chance(0.6);
                (size, used, busy)
            })
            .collect();
        let families: [(&str, &str, &str); 6] = [
            (
                "node_filesystem_avail_bytes",
                "Filesystem space available to non-root users in bytes.",
                "bytes",
            ),
            ("node_filesystem_files", "Filesystem total file nodes.", ""),
            (
                "node_filesystem_files_free",
                "Filesystem total free file nodes.",
                "",
            ),
            (
                "node_filesystem_free_bytes",
                "Filesystem free space in bytes.",
                "bytes",
            ),
            (
                "node_filesystem_readonly",
                "Filesystem read-only status.",
                "",
            ),
            (
                "node_filesystem_size_bytes",
                "Filesystem size in bytes.",
                "bytes",
            ),
        ];
        for (name, help, unit) in families {
            self.family(name, MetricType::Gauge, help, unit);
            for (m, &(size, used, busy)) in mounts.iter().zip(&props) {
                let files = (size / 16_384.0).floor();
                let free = size * (1.0 - used);
                let model = match name {
                    "node_filesystem_size_bytes" => Model::Constant(size),
                    "node_filesystem_readonly" => Model::Constant(0.0),
                    "node_filesystem_files" => Model::Constant(files),
                    _ if !busy => Model::Constant(match name {
                        "node_filesystem_avail_bytes" => (free - size * 0.05).max(0.0),
                        "node_filesystem_free_bytes" => free,
                        _ => (files * (1.0 - used * 0.3)).floor(),
                    }),
                    "node_filesystem_avail_bytes" => {
                        let base = (free - size * 0.05).max(0.0);
                        self.stepped(base, -1e-6, 1e-4, (2, 20), Quant::Multiple(4_096.0))
                    }
                    "node_filesystem_free_bytes" => {
                        self.stepped(free, -1e-6, 1e-4, (2, 20), Quant::Multiple(4_096.0))
                    }
                    _ => self.stepped(
                        files * (1.0 - used * 0.3),
                        -1e-7,
                        1e-5,
                        (4, 40),
                        Quant::Decimals(0),
                    ),
                };
                self.add(
                    name,
                    &[("device", m.0), ("fstype", m.1), ("mountpoint", m.2)],
                    model,
                );
            }
        }
    }

    fn memory(&mut self) {
        let total = *self.rng.pick(&[8.0, 16.0, 32.0, 64.0, 128.0]) * GIB;
        let total = total - 200.0 * 1024.0 * 1024.0; // what the kernel keeps
        let avail = self.rng.uniform(0.2, 0.8);
        const KB: Quant = Quant::Multiple(1_024.0);
        // (field, kind, fraction of MemTotal): 'c' constant, 's' stepped, 'w' moving.
        let fields: [(&str, char, f64); 44] = [
            ("Active", 's', 0.3),
            ("Active_anon", 'w', 0.2),
            ("Active_file", 'w', 0.1),
            ("AnonHugePages", 's', 0.01),
            ("AnonPages", 'w', 0.25),
            ("Bounce", 'c', 0.0),
            ("Buffers", 's', 0.01),
            ("Cached", 'w', avail * 0.6),
            ("CommitLimit", 'c', 0.5),
            ("Committed_AS", 'w', 0.6),
            ("DirectMap1G", 'c', 0.75),
            ("DirectMap2M", 'c', 0.24),
            ("DirectMap4k", 'c', 0.01),
            ("Dirty", 'w', 1e-5),
            ("HardwareCorrupted", 'c', 0.0),
            ("HugePages_Free", 'c', 0.0),
            ("HugePages_Rsvd", 'c', 0.0),
            ("HugePages_Surp", 'c', 0.0),
            ("HugePages_Total", 'c', 0.0),
            ("Hugepagesize", 'c', 0.0),
            ("Inactive", 's', 0.3),
            ("Inactive_anon", 's', 0.02),
            ("Inactive_file", 'w', 0.25),
            ("KernelStack", 's', 5e-4),
            ("Mapped", 's', 0.02),
            ("MemAvailable", 'w', avail),
            ("MemFree", 'w', avail * 0.4),
            ("MemTotal", 'c', 1.0),
            ("Mlocked", 'c', 1e-5),
            ("NFS_Unstable", 'c', 0.0),
            ("PageTables", 's', 2e-3),
            ("SReclaimable", 'w', 0.03),
            ("SUnreclaim", 's', 0.01),
            ("Shmem", 's', 0.01),
            ("ShmemHugePages", 'c', 0.0),
            ("ShmemPmdMapped", 'c', 0.0),
            ("Slab", 's', 0.04),
            ("SwapCached", 'c', 0.0),
            ("SwapFree", 'c', 0.0),
            ("SwapTotal", 'c', 0.0),
            ("Unevictable", 'c', 1e-4),
            ("VmallocChunk", 'c', 0.0),
            ("VmallocTotal", 'c', 0.0),
            ("VmallocUsed", 's', 1e-3),
        ];
        for (field, kind, fraction) in fields {
            let name = format!("node_memory_{field}_bytes");
            let help = format!("Memory information field {field}_bytes.");
            self.family(&name, MetricType::Gauge, &help, "bytes");
            let base = KB.round(total * fraction);
            let model = match (field, kind) {
                ("Hugepagesize", _) => Model::Constant(2_048.0 * 1_024.0),
                ("VmallocTotal", _) => Model::Constant(34_359_738_367.0 * 1_024.0),
                (_, 'c') => Model::Constant(base),
                (_, 's') => self.stepped(base, 0.0, 0.01, (2, 40), KB),
                _ => self.wave(base, 0.05, 0.01, KB),
            };
            self.add(&name, &[], model);
        }
    }

    fn load(&mut self) {
        let load = self.rng.log_uniform(0.05, 8.0);
        for (name, smooth) in [
            ("node_load1", 1.0),
            ("node_load15", 0.3),
            ("node_load5", 0.5),
        ] {
            self.family(
                name,
                MetricType::Gauge,
                &format!("{}m load average.", &name[9..]),
                "",
            );
            let model = self.wave(load, 0.4 * smooth, 0.3 * smooth, Quant::Decimals(2));
            self.add(name, &[], model);
        }
    }

    fn vmstat(&mut self, uptime: f64) {
        for (field, lo, hi) in [
            ("oom_kill", 0.0, 0.0),
            ("pgfault", 1e2, 1e5),
            ("pgmajfault", 1e-3, 1.0),
            ("pgpgin", 1.0, 1e4),
            ("pgpgout", 10.0, 2e4),
            ("pswpin", 0.0, 0.0),
            ("pswpout", 0.0, 0.0),
        ] {
            let name = format!("node_vmstat_{field}");
            let help = format!("/proc/vmstat information field {field}.");
            self.family(&name, MetricType::Unknown, &help, "");
            let rate = if hi > 0.0 {
                self.rng.log_uniform(lo, hi)
            } else {
                0.0
            };
            let model = self.counter(rate, uptime, Quant::Decimals(0));
            self.add(&name, &[], model);
        }
    }

    fn netstat(&mut self, uptime: f64) {
        // (field, events/s range); 0 means it holds still.
        let fields: [(&str, f64, f64); 30] = [
            ("Icmp6_InErrors", 0.0, 0.0),
            ("Icmp6_InMsgs", 1e-3, 0.1),
            ("Icmp6_OutMsgs", 1e-3, 0.1),
            ("Icmp_InErrors", 0.0, 0.0),
            ("Icmp_InMsgs", 1e-3, 1.0),
            ("Icmp_OutMsgs", 1e-3, 1.0),
            ("Ip6_InOctets", 1.0, 1e4),
            ("Ip6_OutOctets", 1.0, 1e4),
            ("IpExt_InOctets", 1e4, 5e7),
            ("IpExt_OutOctets", 1e4, 5e7),
            ("Ip_Forwarding", -1.0, 1.0),
            ("TcpExt_ListenDrops", 0.0, 0.0),
            ("TcpExt_ListenOverflows", 0.0, 0.0),
            ("TcpExt_SyncookiesFailed", 0.0, 0.0),
            ("TcpExt_SyncookiesRecv", 0.0, 0.0),
            ("TcpExt_SyncookiesSent", 0.0, 0.0),
            ("TcpExt_TCPSynRetrans", 1e-3, 0.1),
            ("TcpExt_TCPTimeouts", 1e-3, 0.5),
            ("Tcp_ActiveOpens", 0.1, 50.0),
            ("Tcp_CurrEstab", -1.0, 0.0),
            ("Tcp_InErrs", 0.0, 0.0),
            ("Tcp_InSegs", 10.0, 5e4),
            ("Tcp_OutRsts", 0.01, 5.0),
            ("Tcp_OutSegs", 10.0, 5e4),
            ("Tcp_PassiveOpens", 0.1, 50.0),
            ("Tcp_RetransSegs", 0.01, 10.0),
            ("Udp6_InDatagrams", 1e-3, 1.0),
            ("Udp_InDatagrams", 0.1, 100.0),
            ("Udp_NoPorts", 1e-3, 0.1),
            ("Udp_OutDatagrams", 0.1, 100.0),
        ];
        for (field, lo, hi) in fields {
            let name = format!("node_netstat_{field}");
            let help = format!("Statistic {}.", field.replace('_', ""));
            self.family(&name, MetricType::Unknown, &help, "");
            let model = if lo < 0.0 {
                if hi > 0.0 {
                    Model::Constant(1.0)
                } else {
                    let base = self.rng.log_uniform(5.0, 2_000.0);
                    self.wave(base, 0.2, 0.05, Quant::Decimals(0))
                }
            } else if hi == 0.0 {
                Model::Constant(if self.rng.chance(0.3) {
                    self.rng.below(50) as f64
                } else {
                    0.0
                })
            } else {
                let rate = self.rng.log_uniform(lo, hi);
                self.counter(rate, uptime, Quant::Decimals(0))
            };
            self.add(&name, &[], model);
        }
    }

    fn hwmon(&mut self) {
        let families: [(&str, &str); 3] = [
            (
                "node_hwmon_temp_celsius",
                "Hardware monitor for temperature (input)",
            ),
            (
                "node_hwmon_temp_crit_celsius",
                "Hardware monitor for temperature (crit)",
            ),
            (
                "node_hwmon_temp_max_celsius",
                "Hardware monitor for temperature (max)",
            ),
        ];
        let sensors: [(&str, &str); 10] = [
            ("nvme_nvme0", "temp1"),
            ("nvme_nvme1", "temp1"),
            ("platform_coretemp_0", "temp1"),
            ("platform_coretemp_0", "temp2"),
            ("platform_coretemp_0", "temp3"),
            ("platform_coretemp_0", "temp4"),
            ("platform_coretemp_0", "temp5"),
            ("platform_coretemp_0", "temp6"),
            ("platform_coretemp_0", "temp7"),
            ("platform_coretemp_0", "temp8"),
        ];
        let ambient = self.rng.uniform(30.0, 55.0);
        for (name, help) in families {
            self.family(name, MetricType::Gauge, help, "celsius");
            for (chip, sensor) in sensors {
                let model = match name {
                    "node_hwmon_temp_celsius" => self.wave(ambient, 0.1, 0.06, Quant::Decimals(0)),
                    "node_hwmon_temp_crit_celsius" => Model::Constant(100.0),
                    _ if chip.starts_with("nvme") => Model::Constant(84.85),
                    _ => Model::Constant(80.0),
                };
                self.add(name, &[("chip", chip), ("sensor", sensor)], model);
            }
        }
    }

    fn collectors(&mut self) {
        const COLLECTORS: [&str; 30] = [
            "arp",
            "bcache",
            "bonding",
            "btrfs",
            "conntrack",
            "cpu",
            "cpufreq",
            "diskstats",
            "dmi",
            "edac",
            "entropy",
            "fibrechannel",
            "filefd",
            "filesystem",
            "hwmon",
            "infiniband",
            "ipvs",
            "loadavg",
            "mdadm",
            "meminfo",
            "netclass",
            "netdev",
            "netstat",
            "nfs",
            "nvme",
            "os",
            "powersupplyclass",
            "pressure",
            "sockstat",
            "time",
        ];
        self.family(
            "node_scrape_collector_duration_seconds",
            MetricType::Gauge,
            "node_exporter: Duration of a collector scrape.",
            "seconds",
        );
        for c in COLLECTORS {
            let base = self.rng.log_uniform(2e-5, 2e-2);
            let model = self.wave(base, 0.1, 0.6, Quant::Exact);
            self.add(
                "node_scrape_collector_duration_seconds",
                &[("collector", c)],
                model,
            );
        }
        self.family(
            "node_scrape_collector_success",
            MetricType::Gauge,
            "node_exporter: Whether a collector succeeded.",
            "",
        );
        for c in COLLECTORS {
            self.add(
                "node_scrape_collector_success",
                &[("collector", c)],
                Model::Constant(1.0),
            );
        }
    }

    fn misc(&mut self, uptime: f64) {
        use MetricType::{Counter, Gauge};
        let now_s = 1.7e9;
        let hostname = self.hostname.clone();
        let single = |b: &mut Self, name: &str, t: MetricType, help: &str, m: Model| {
            let unit = if name.ends_with("_seconds") || name.ends_with("_seconds_total") {
                "seconds"
            } else if name.ends_with("_bytes") {
                "bytes"
            } else {
                ""
            };
            b.family(name, t, help, unit);
            b.add(name, &[], m);
        };
        let boot = (now_s - uptime).floor();
        single(
            self,
            "node_boot_time_seconds",
            Gauge,
            "Node boot time, in unixtime.",
            Model::Constant(boot),
        );
        single(
            self,
            "node_time_seconds",
            Gauge,
            "System time in seconds since epoch (1970).",
            Model::WallClock,
        );
        let m = self.wave_in((1.0, 6.0), 0.3, 0.8, Quant::Decimals(0));
        single(
            self,
            "node_procs_running",
            Gauge,
            "Number of processes in runnable state.",
            m,
        );
        let m = self.wave(0.3, 0.3, 1.0, Quant::Decimals(0));
        single(
            self,
            "node_procs_blocked",
            Gauge,
            "Number of processes blocked waiting for I/O to complete.",
            m,
        );
        let m = self.counter_in((1e3, 1e5), uptime, Quant::Decimals(0));
        single(
            self,
            "node_context_switches_total",
            Counter,
            "Total number of context switches.",
            m,
        );
        let m = self.counter_in((1e3, 5e4), uptime, Quant::Decimals(0));
        single(
            self,
            "node_intr_total",
            Counter,
            "Total number of interrupts serviced.",
            m,
        );
        let m = self.counter_in((0.1, 50.0), uptime, Quant::Decimals(0));
        single(
            self,
            "node_forks_total",
            Counter,
            "Total number of forks.",
            m,
        );
        single(
            self,
            "node_entropy_available_bits",
            Gauge,
            "Bits of available entropy.",
            Model::Constant(256.0),
        );
        self.family(
            "node_uname_info",
            Gauge,
            "Labeled system information as provided by the uname system call.",
            "",
        );
        self.add(
            "node_uname_info",
            &[
                ("domainname", "(none)"),
                ("machine", "x86_64"),
                ("nodename", &hostname),
                ("release", "6.1.0-18-amd64"),
                ("sysname", "Linux"),
                (
                    "version",
                    "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)",
                ),
            ],
            Model::Constant(1.0),
        );
        self.family(
            "node_os_info",
            Gauge,
            "A metric with a constant '1' value labeled by build_id, id, id_like, image_id, image_version, name, pretty_name, variant, variant_id, version, version_codename, version_id.",
            "",
        );
        self.add(
            "node_os_info",
            &[
                ("id", "debian"),
                ("name", "Debian GNU/Linux"),
                ("pretty_name", "Debian GNU/Linux 12 (bookworm)"),
                ("version", "12 (bookworm)"),
                ("version_codename", "bookworm"),
                ("version_id", "12"),
            ],
            Model::Constant(1.0),
        );
        self.family(
            "node_exporter_build_info",
            Gauge,
            "A metric with a constant '1' value labeled by version, revision, branch, goversion from which node_exporter was built, and the goos and goarch for the build.",
            "",
        );
        self.add(
            "node_exporter_build_info",
            &[
                ("branch", "HEAD"),
                ("goarch", "amd64"),
                ("goos", "linux"),
                ("goversion", "go1.21.4"),
                ("revision", "ff7f9d69b645cb691dd3e84dc3afc88f5c006962"),
                ("version", "1.7.0"),
            ],
            Model::Constant(1.0),
        );
        let m = self.counter_in((0.002, 0.05), uptime, Quant::Decimals(2));
        single(
            self,
            "process_cpu_seconds_total",
            Counter,
            "Total user and system CPU time spent in seconds.",
            m,
        );
        let rss = self.rng.uniform(15e6, 40e6);
        let m = self.wave(rss, 0.1, 0.05, Quant::Multiple(4_096.0));
        single(
            self,
            "process_resident_memory_bytes",
            Gauge,
            "Resident memory size in bytes.",
            m,
        );
        let m = self.stepped(rss * 50.0, 0.0, 0.02, (20, 200), Quant::Multiple(4_096.0));
        single(
            self,
            "process_virtual_memory_bytes",
            Gauge,
            "Virtual memory size in bytes.",
            m,
        );
        single(
            self,
            "process_virtual_memory_max_bytes",
            Gauge,
            "Maximum amount of virtual memory available in bytes.",
            Model::Constant(1.8446744073709552e19),
        );
        let m = self.wave(9.0, 0.1, 0.4, Quant::Decimals(0));
        single(
            self,
            "process_open_fds",
            Gauge,
            "Number of open file descriptors.",
            m,
        );
        single(
            self,
            "process_max_fds",
            Gauge,
            "Maximum number of open file descriptors.",
            Model::Constant(1_048_576.0),
        );
        let start = ((now_s - uptime + self.rng.uniform(30.0, 3_600.0)) * 100.0).round() / 100.0;
        single(
            self,
            "process_start_time_seconds",
            Gauge,
            "Start time of the process since unix epoch in seconds.",
            Model::Constant(start),
        );
        let m = self.wave(8.0, 0.1, 0.3, Quant::Decimals(0));
        single(
            self,
            "go_goroutines",
            Gauge,
            "Number of goroutines that currently exist.",
            m,
        );
        let threads = self.rng.uniform(6.0, 14.0).round();
        single(
            self,
            "go_threads",
            Gauge,
            "Number of OS threads created.",
            Model::Constant(threads),
        );
        self.family(
            "go_info",
            Gauge,
            "Information about the Go environment.",
            "",
        );
        self.add("go_info", &[("version", "go1.21.4")], Model::Constant(1.0));
        let m = self.wave_in((2e3, 2e4), 0.1, 0.01, Quant::Decimals(0));
        single(
            self,
            "node_filefd_allocated",
            Gauge,
            "File descriptor statistics: allocated.",
            m,
        );
        single(
            self,
            "node_filefd_maximum",
            Gauge,
            "File descriptor statistics: maximum.",
            Model::Constant(9_223_372_036_854_775_807.0),
        );
        let m = self.wave_in((10.0, 500.0), 0.2, 0.05, Quant::Decimals(0));
        single(
            self,
            "node_sockstat_TCP_inuse",
            Gauge,
            "Number of TCP sockets in state inuse.",
            m,
        );
        let m = self.wave_in((100.0, 2_000.0), 0.2, 0.02, Quant::Decimals(0));
        single(
            self,
            "node_sockstat_sockets_used",
            Gauge,
            "Number of IPv4 sockets in use.",
            m,
        );
        let m = Model::Wave {
            base: 0.0,
            amplitude: 2e-4,
            period: 500.0,
            phase: self.rng.uniform(0.0, TAU),
            noise: 1e-4,
            lo: f64::MIN,
            hi: f64::MAX,
            quant: Quant::Decimals(9),
        };
        single(
            self,
            "node_timex_offset_seconds",
            Gauge,
            "Time offset in between local system and reference clock.",
            m,
        );
        single(
            self,
            "node_timex_sync_status",
            Gauge,
            "Is clock synchronized to a reliable server (1 = yes, 0 = no).",
            Model::Constant(1.0),
        );
        let m = self.wave_in((50.0, 5_000.0), 0.2, 0.02, Quant::Decimals(0));
        single(
            self,
            "node_nf_conntrack_entries",
            Gauge,
            "Number of currently allocated flow entries for connection tracking.",
            m,
        );
        single(
            self,
            "node_nf_conntrack_entries_limit",
            Gauge,
            "Maximum size of connection tracking table.",
            Model::Constant(262_144.0),
        );
        single(
            self,
            "node_textfile_scrape_error",
            Gauge,
            "1 if there was an error opening or reading a file, 0 otherwise",
            Model::Constant(0.0),
        );
        self.family(
            "promhttp_metric_handler_requests_total",
            Counter,
            "Total number of scrapes by HTTP status code.",
            "",
        );
        let scrapes_so_far = (uptime / self.interval_s).floor();
        self.add(
            "promhttp_metric_handler_requests_total",
            &[("code", "200")],
            // Exactly one more scrape each scrape.
            Model::Counter {
                start: scrapes_so_far,
                per_scrape: 1.0,
                wobble: 0.0,
                quant: Quant::Decimals(0),
            },
        );
        for code in ["500", "503"] {
            self.add(
                "promhttp_metric_handler_requests_total",
                &[("code", code)],
                Model::Constant(0.0),
            );
        }
        single(
            self,
            "promhttp_metric_handler_requests_in_flight",
            Gauge,
            "Current number of scrapes being served.",
            Model::Constant(1.0),
        );
        self.family(
            "promhttp_metric_handler_errors_total",
            Counter,
            "Total number of internal errors encountered by the promhttp metric handler.",
            "",
        );
        for cause in ["encoding", "gathering"] {
            self.add(
                "promhttp_metric_handler_errors_total",
                &[("cause", cause)],
                Model::Constant(0.0),
            );
        }
    }

    fn histograms(&mut self, uptime: f64) {
        // (handler, method, typical latency in seconds, requests/s range)
        const HANDLERS: [(&str, &str, f64, f64, f64); 14] = [
            ("/", "GET", 0.002, 0.01, 1.0),
            ("/-/healthy", "GET", 0.0005, 0.1, 0.5),
            ("/-/ready", "GET", 0.0005, 0.1, 0.5),
            ("/api/v1/alerts", "GET", 0.01, 0.001, 0.1),
            ("/api/v1/label/:name/values", "GET", 0.05, 0.01, 2.0),
            ("/api/v1/labels", "GET", 0.03, 0.01, 1.0),
            ("/api/v1/query", "GET", 0.08, 0.5, 50.0),
            ("/api/v1/query_range", "GET", 0.4, 0.1, 20.0),
            ("/api/v1/rules", "GET", 0.01, 0.001, 0.1),
            ("/api/v1/series", "GET", 0.1, 0.01, 2.0),
            ("/api/v1/status/buildinfo", "GET", 0.001, 0.001, 0.05),
            ("/api/v1/targets", "GET", 0.02, 0.001, 0.2),
            ("/api/v1/write", "POST", 0.01, 1.0, 100.0),
            ("/metrics", "GET", 0.005, 0.06, 0.07),
        ];
        const NAME: &str = "http_request_duration_seconds";
        self.family(
            NAME,
            MetricType::Histogram,
            "A histogram of latencies for requests.",
            "seconds",
        );
        for (handler, method, latency, lo, hi) in HANDLERS {
            let rps = self.rng.log_uniform(lo, hi);
            for (code, share, slowdown) in [("200", 1.0, 1.0), ("500", 2e-3, 3.0)] {
                let scale = latency * slowdown * self.rng.uniform(0.7, 1.4);
                let native_labels = Labels::from_pairs([
                    (METRIC_NAME, NAME),
                    ("job", "node"),
                    ("instance", self.instance.as_str()),
                    ("code", code),
                    ("handler", handler),
                    ("method", method),
                ]);
                let hist = self.new_hist(rps * share, scale, uptime, native_labels);
                let bucket = format!("{NAME}_bucket");
                let base = [("code", code), ("handler", handler), ("method", method)];
                for le in 0..BUCKETS {
                    let le_text = HISTOGRAM_BOUNDS
                        .get(le)
                        .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
                    let mut labels = base.to_vec();
                    labels.push(("le", &le_text));
                    self.add(&bucket, &labels, Model::Bucket { hist, le: le as u8 });
                }
                self.add(&format!("{NAME}_sum"), &base, Model::HistSum { hist });
                self.add(&format!("{NAME}_count"), &base, Model::HistCount { hist });
            }
        }
    }

    /// A histogram of `rps` requests per second whose latency is log-logistic around
    /// `scale` seconds.
    fn new_hist(&mut self, rps: f64, scale: f64, uptime: f64, labels: Labels) -> u32 {
        let cdf = |x: f64| 1.0 / (1.0 + (-(x / scale).ln() / 0.6).exp());
        let mut start = [0.0; BUCKETS];
        let mut per_scrape = [0.0; BUCKETS];
        let mut mean = [0.0; BUCKETS];
        let age = uptime * self.rng.uniform(0.01, 1.0);
        let mut below = 0.0;
        for k in 0..BUCKETS {
            let lo = if k == 0 { 0.0 } else { HISTOGRAM_BOUNDS[k - 1] };
            let (hi, p) = match HISTOGRAM_BOUNDS.get(k) {
                Some(&b) => (b, cdf(b) - below),
                None => (lo * 2.0, 1.0 - below),
            };
            below += p;
            let rate = rps * p;
            per_scrape[k] = rate * self.interval_s;
            start[k] = (rate * age).floor();
            // A representative latency inside the bucket, at full float precision.
            mean[k] = lo + (hi - lo) * self.rng.uniform(0.3, 0.7);
        }
        // The native form: schema-3 buckets over the distribution's body (each bucket
        // holding at least 0.2% of the observations), the tails folded into the outer
        // buckets.
        let mut native = Vec::new();
        let lo_index = (scale.log2() * 8.0).floor() as i32 - 80;
        let hi_index = lo_index + 160;
        let mut pending = 0.0;
        for index in lo_index..=hi_index {
            let upper = exponential_upper_bound(index, NATIVE_SCHEMA);
            let lower = exponential_upper_bound(index - 1, NATIVE_SCHEMA);
            let p = cdf(upper) - cdf(lower);
            if p < 2e-3 {
                if native.is_empty() {
                    pending += p;
                } else if let Some(last) = native.last_mut() {
                    // Upper tail: into the last populated bucket.
                    let last: &mut (i32, f64, f64, f64, f64) = last;
                    last.4 += p;
                }
                continue;
            }
            let mean = lower * (upper / lower).powf(self.rng.uniform(0.3, 0.7));
            native.push((index, 0.0, 0.0, mean, p + pending));
            pending = 0.0;
        }
        let native = native
            .into_iter()
            .map(|(index, _, _, mean, p)| {
                let rate = rps * p;
                (index, (rate * age).floor(), rate * self.interval_s, mean)
            })
            .collect();
        self.hists.push(Hist {
            start,
            per_scrape,
            mean,
            native,
            labels,
            target: self.target,
        });
        (self.hists.len() - 1) as u32
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn small() -> Workload {
        Workload::new(WorkloadConfig {
            series: 3_000,
            ..Default::default()
        })
    }

    #[test]
    fn should_give_every_target_the_same_family_mix_of_series_per_target() {
        let w = Workload::new(WorkloadConfig {
            series: 1,
            ..Default::default()
        });
        assert_eq!(w.series_count(), SERIES_PER_TARGET);
        assert_eq!(w.targets(), 1);
    }

    #[test]
    fn should_reach_the_target_series_count() {
        for (asked, targets) in [(0, 0), (10_000, 10), (2_500, 3), (100_000, 100)] {
            let w = Workload::new(WorkloadConfig {
                series: asked,
                ..Default::default()
            });
            assert_eq!(w.targets(), targets);
            assert_eq!(w.series_count(), targets * SERIES_PER_TARGET);
            assert!(w.series_count() >= asked && w.series_count() < asked + SERIES_PER_TARGET);
        }
    }

    #[test]
    fn should_give_every_series_distinct_labels_with_job_and_instance() {
        let w = small();
        let mut seen = std::collections::HashSet::new();
        for s in 0..w.series_count() {
            let l = w.labels(s);
            assert_eq!(l.get("job"), Some("node"));
            let instance = format!("host-{:04}:9100", w.target_of(s) + 1);
            assert_eq!(l.get("instance"), Some(instance.as_str()));
            assert!(l.metric_name().is_some());
            assert!(seen.insert(l.clone()), "duplicate series {l:?}");
        }
    }

    #[test]
    fn should_give_the_same_sample_whatever_the_call_order() {
        let w = small();
        let later: Vec<Sample> = (0..w.series_count()).map(|s| w.sample(s, 17)).collect();
        let _ = w.scrape(3);
        let _ = w.scrape(100);
        assert_eq!(w.scrape(17), later);
    }

    #[test]
    fn should_share_one_timestamp_per_target_scrape_within_the_jitter() {
        let w = small();
        let cfg = w.config().clone();
        for i in 0..50u64 {
            let samples = w.scrape(i);
            for (s, sample) in samples.iter().enumerate() {
                assert_eq!(sample.timestamp_ms, w.timestamp(w.target_of(s), i));
                let nominal = cfg.start_ms + i as i64 * cfg.interval_ms;
                assert!((sample.timestamp_ms - nominal).abs() <= cfg.jitter_ms);
            }
        }
        let jittered =
            (0..50).filter(|&i| w.timestamp(0, i) != cfg.start_ms + i as i64 * cfg.interval_ms);
        assert!(
            jittered.count() > 25,
            "the jitter should usually move timestamps"
        );
    }

    fn types(w: &Workload) -> HashMap<String, MetricType> {
        w.metadata()
            .iter()
            .map(|m| (m.metric.clone(), m.metric_type))
            .collect()
    }

    #[test]
    fn should_keep_counters_monotonic_and_mostly_moving() {
        let w = small();
        let types = types(&w);
        let scrapes: Vec<Vec<Sample>> = (0..200).map(|i| w.scrape(i)).collect();
        let (mut counters, mut moving) = (0, 0);
        for s in 0..w.series_count() {
            let name = w.labels(s).metric_name().unwrap();
            if types.get(name) != Some(&MetricType::Counter) {
                continue;
            }
            counters += 1;
            for i in 1..scrapes.len() {
                assert!(
                    scrapes[i][s].value >= scrapes[i - 1][s].value,
                    "{:?} decreased at scrape {i}",
                    w.labels(s)
                );
            }
            if scrapes[199][s].value > scrapes[0][s].value {
                moving += 1;
            }
        }
        assert!(counters > 300, "{counters} counters");
        assert!(
            moving * 2 > counters,
            "{moving} of {counters} counters moved"
        );
    }

    /// One histogram at one scrape: `(le, bucket)` pairs, count, sum.
    type Observed = (Vec<(f64, f64)>, f64, f64);

    #[test]
    fn should_make_native_histograms_counters_of_a_few_dozen_buckets() {
        let w = Workload::new(WorkloadConfig {
            series: 1_000,
            ..Default::default()
        });
        assert_eq!(w.histogram_count(), 28);
        let mut populated = 0;
        for h in 0..w.histogram_count() {
            assert_eq!(
                w.histogram_labels(h).metric_name(),
                Some("http_request_duration_seconds")
            );
            let a = w.histogram_sample(h, 100);
            let b = w.histogram_sample(h, 101);
            assert!(b.timestamp_ms > a.timestamp_ms);
            assert!(!b.histogram.detect_reset(&a.histogram), "hist {h}");
            assert!(b.histogram.validate().is_ok());
            let total: f64 = b.histogram.positive.iter().map(|x| x.1).sum();
            assert_eq!(total, b.histogram.count);
            populated = populated.max(b.histogram.positive.len());
        }
        assert!((20..=80).contains(&populated), "{populated} buckets");
    }

    #[test]
    fn should_keep_histogram_buckets_cumulative_and_consistent_with_count() {
        let w = small();
        let mut moved = false;
        let mut previous: HashMap<Vec<String>, f64> = HashMap::new();
        for i in 0..100 {
            let samples = w.scrape(i);
            let mut hists: HashMap<String, Observed> = HashMap::new();
            for (s, sample) in samples.iter().enumerate() {
                let l = w.labels(s);
                let name = l.metric_name().unwrap();
                let Some(kind) = name.strip_prefix("http_request_duration_seconds_") else {
                    continue;
                };
                let key = format!(
                    "{}|{}|{}",
                    l.get("instance").unwrap(),
                    l.get("handler").unwrap(),
                    l.get("code").unwrap()
                );
                let e = hists.entry(key).or_default();
                match kind {
                    "bucket" => {
                        let le = l.get("le").unwrap();
                        let le = if le == "+Inf" {
                            f64::INFINITY
                        } else {
                            le.parse().unwrap()
                        };
                        e.0.push((le, sample.value));
                    }
                    "count" => e.1 = sample.value,
                    "sum" => e.2 = sample.value,
                    other => panic!("unexpected {other}"),
                }
                let id: Vec<String> = l.as_slice().iter().map(|x| x.value.clone()).collect();
                if let Some(prev) = previous.insert(id, sample.value) {
                    assert!(sample.value >= prev, "{l:?} decreased");
                    moved |= sample.value > prev;
                }
            }
            assert_eq!(hists.len(), 3 * 28);
            for (key, (mut buckets, count, sum)) in hists {
                buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                assert_eq!(buckets.len(), BUCKETS, "{key}");
                assert!(
                    buckets.windows(2).all(|b| b[0].1 <= b[1].1),
                    "{key} {buckets:?}"
                );
                assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, count), "{key}");
                assert!(buckets.iter().all(|b| b.1.fract() == 0.0));
                assert!(sum >= 0.0 && (count == 0.0) == (sum == 0.0), "{key}");
            }
        }
        assert!(moved);
    }

    #[test]
    fn should_hold_most_gauges_still_between_scrapes() {
        let w = small();
        let types = types(&w);
        let (a, b) = (w.scrape(10), w.scrape(11));
        let gauges: Vec<usize> = (0..w.series_count())
            .filter(|&s| types.get(w.labels(s).metric_name().unwrap()) == Some(&MetricType::Gauge))
            .collect();
        let moved = gauges.iter().filter(|&&s| a[s].value != b[s].value).count();
        assert!(moved > 0);
        assert!(
            moved * 2 < gauges.len(),
            "{moved} of {} gauges moved",
            gauges.len()
        );
        let mem_total = (0..w.series_count())
            .find(|&s| w.labels(s).metric_name() == Some("node_memory_MemTotal_bytes"))
            .unwrap();
        assert_eq!(a[mem_total].value, b[mem_total].value);
    }

    #[test]
    fn should_use_exporter_like_precision() {
        let w = small();
        for i in [0, 1, 57] {
            let samples = w.scrape(i);
            for (s, sample) in samples.iter().enumerate() {
                let name = w.labels(s).metric_name().unwrap();
                let v = sample.value;
                let signed = name == "node_timex_offset_seconds";
                assert!(v.is_finite() && (v >= 0.0 || signed), "{name} = {v}");
                if name == "node_cpu_seconds_total" || name.starts_with("node_load") {
                    let cents = v * 100.0;
                    assert!((cents - cents.round()).abs() < 1e-6, "{name} = {v}");
                }
                if name.ends_with("_bytes_total") || name.starts_with("node_memory_") {
                    assert_eq!(v.fract(), 0.0, "{name} = {v}");
                }
            }
        }
        let load1 = (0..w.series_count())
            .find(|&s| w.labels(s).metric_name() == Some("node_load1"))
            .unwrap();
        assert!((0..20).any(|i| w.sample(load1, i).value.fract() != 0.0));
    }

    #[test]
    fn should_yield_batches_in_time_slices_covering_every_series() {
        let w = small();
        let batches: Vec<WriteBatch> = w.batches(200, 10, 25).collect();
        assert_eq!(w.requests_per_slice(200), 15);
        assert_eq!(batches.len(), 15 * 3);
        assert_eq!(w.batches(200, 10, 25).len(), 45);
        for (slice, requests) in batches.chunks(15).enumerate() {
            let first = slice as u64 * 10;
            let len = if slice == 2 { 5 } else { 10 };
            let mut series = 0;
            for b in requests {
                for s in &b.series {
                    assert_eq!(s.labels, *w.labels(series));
                    let expected: Vec<Sample> =
                        (first..first + len).map(|i| w.sample(series, i)).collect();
                    assert_eq!(s.samples, expected);
                    series += 1;
                }
            }
            assert_eq!(series, w.series_count());
        }
        assert!(batches.iter().all(|b| b.series.len() == 200));
    }
}
