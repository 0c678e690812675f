//! Decoding and validating Prometheus remote-write requests (1.0 and 2.0).
//!
//! The body is snappy block-compressed protobuf. The protocol version comes from the
//! `Content-Type` (`application/x-protobuf;proto=io.prometheus.write.v2.Request` for 2.0;
//! no `proto` parameter, or `proto=prometheus.WriteRequest`, for 1.0). Validation is all
//! or nothing: a request with any invalid series is rejected whole, so nothing of it is
//! half-written.
//!
//! [`encode_v1`] is the inverse, for clients and tests.
//!
//! Rules: every series has at least one label and a metric name; label names are
//! non-empty and match `[a-zA-Z_][a-zA-Z0-9_]*` (`__name__` values match
//! `[a-zA-Z_:][a-zA-Z0-9_:]*`); names are sorted and unique; labels with empty values are
//! dropped (Prometheus treats them as absent); 2.0 symbol references must be in range.
//! Exemplars are decoded here and checked where they are stored: a bad exemplar (an
//! invalid label name, labels over 128 characters) is refused alone, as Prometheus does.

use std::collections::HashMap;

use prost::Message;

use super::proto::{self, v1, v2};
use opendata_timeseries::error::{Error, Result};
use opendata_timeseries::histogram::MAX_BUCKETS;
use opendata_timeseries::model::{
    CounterResetHint, Exemplar, FloatHistogram, HistogramSample, Label, Labels, METRIC_NAME,
    MetricMetadata, MetricType, Sample, SeriesSamples, WriteBatch, valid_label_name,
};

/// The remote-write protocol version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteWriteVersion {
    /// 1.0: `prometheus.WriteRequest`.
    V1,
    /// 2.0: `io.prometheus.write.v2.Request`.
    V2,
}

impl RemoteWriteVersion {
    /// The version a `Content-Type` header asks for; `None` header means 1.0.
    pub fn from_content_type(content_type: Option<&str>) -> Result<Self> {
        let Some(ct) = content_type else {
            return Ok(RemoteWriteVersion::V1);
        };
        let mut parts = ct.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        if media != "application/x-protobuf" {
            return Err(Error::Unsupported(format!(
                "remote write needs Content-Type application/x-protobuf, got '{ct}'"
            )));
        }
        for param in parts {
            if let Some((k, v)) = param.split_once('=')
                && k.trim().eq_ignore_ascii_case("proto")
            {
                return match v.trim().trim_matches('"') {
                    "prometheus.WriteRequest" => Ok(RemoteWriteVersion::V1),
                    "io.prometheus.write.v2.Request" => Ok(RemoteWriteVersion::V2),
                    other => Err(Error::Unsupported(format!(
                        "unknown remote write message '{other}': use prometheus.WriteRequest or io.prometheus.write.v2.Request"
                    ))),
                };
            }
        }
        Ok(RemoteWriteVersion::V1)
    }
}

/// About how many bytes decoding `body` holds at its peak: the decompressed protobuf,
/// the messages decoded from it and the batch built from those (each about the size of
/// the protobuf). A body that is not snappy estimates 0: decoding refuses it at once.
pub fn decoded_size_estimate(body: &[u8]) -> u64 {
    let len = snap::raw::decompress_len(body).unwrap_or(0) as u64;
    len.saturating_mul(3)
}

/// Decompresses and decodes a remote-write body, refusing bodies that decompress to more
/// than `max_decoded_bytes`.
pub fn decode(
    body: &[u8],
    version: RemoteWriteVersion,
    max_decoded_bytes: usize,
) -> Result<WriteBatch> {
    let len = snap::raw::decompress_len(body)
        .map_err(|e| Error::BadData(format!("body is not snappy-compressed: {e}")))?;
    if len > max_decoded_bytes {
        return Err(Error::TooLarge(format!(
            "body decompresses to {len} bytes; the limit is {max_decoded_bytes}"
        )));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| Error::BadData(format!("body is not valid snappy: {e}")))?;
    match version {
        RemoteWriteVersion::V1 => {
            let req = v1::WriteRequest::decode(raw.as_slice())
                .map_err(|e| Error::BadData(format!("invalid prometheus.WriteRequest: {e}")))?;
            from_v1(req)
        }
        RemoteWriteVersion::V2 => {
            let req = v2::Request::decode(raw.as_slice()).map_err(|e| {
                Error::BadData(format!("invalid io.prometheus.write.v2.Request: {e}"))
            })?;
            from_v2(req)
        }
    }
}

fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Validates one series' labels (given in wire order) and returns them sorted.
fn validate_labels(index: usize, pairs: Vec<(String, String)>) -> Result<Labels> {
    let mut labels = Vec::with_capacity(pairs.len());
    let mut previous: Option<String> = None;
    for (name, value) in pairs {
        if name.is_empty() {
            return Err(Error::BadData(format!("series {index}: empty label name")));
        }
        if !valid_label_name(&name) {
            return Err(Error::BadData(format!(
                "series {index}: invalid label name '{name}'"
            )));
        }
        if let Some(prev) = &previous {
            match prev.as_str().cmp(name.as_str()) {
                std::cmp::Ordering::Equal => {
                    return Err(Error::BadData(format!(
                        "series {index}: duplicate label name '{name}'"
                    )));
                }
                std::cmp::Ordering::Greater => {
                    return Err(Error::BadData(format!(
                        "series {index}: labels are not sorted by name ('{prev}' before '{name}')"
                    )));
                }
                std::cmp::Ordering::Less => {}
            }
        }
        previous = Some(name.clone());
        if value.is_empty() {
            continue;
        }
        if name == METRIC_NAME && !valid_metric_name(&value) {
            return Err(Error::BadData(format!(
                "series {index}: invalid metric name '{value}'"
            )));
        }
        labels.push(Label { name, value });
    }
    let labels = Labels::from_sorted(labels);
    if labels.metric_name().is_none() {
        return Err(Error::BadData(format!(
            "series {index}: no metric name (__name__ label)"
        )));
    }
    Ok(labels)
}

/// Expands spans and counts (deltas for integer histograms, absolute for float ones)
/// into sparse (index, count) buckets. `what` names the side in errors.
fn expand_buckets(
    index: usize,
    spans: &[proto::BucketSpan],
    deltas: &[i64],
    counts: &[f64],
    integer: bool,
    what: &str,
) -> Result<Vec<(i32, f64)>> {
    let total: u64 = spans.iter().map(|s| u64::from(s.length)).sum();
    let have = if integer { deltas.len() } else { counts.len() };
    if total != have as u64 {
        return Err(Error::BadData(format!(
            "series {index}: histogram {what} spans hold {total} buckets but {have} counts were sent"
        )));
    }
    if total > MAX_BUCKETS as u64 {
        return Err(Error::BadData(format!(
            "series {index}: histogram has {total} {what} buckets; the limit is {MAX_BUCKETS}"
        )));
    }
    let mut out = Vec::with_capacity(total as usize);
    let mut idx: i64 = 0;
    let mut k = 0usize;
    let mut running: i64 = 0;
    for (n, span) in spans.iter().enumerate() {
        idx += i64::from(span.offset);
        if n > 0 && span.offset < 0 {
            return Err(Error::BadData(format!(
                "series {index}: histogram {what} span {n} has a negative offset"
            )));
        }
        for _ in 0..span.length {
            let i = i32::try_from(idx).map_err(|_| {
                Error::BadData(format!(
                    "series {index}: histogram {what} bucket index out of range"
                ))
            })?;
            let count = if integer {
                running = running.checked_add(deltas[k]).ok_or_else(|| {
                    Error::BadData(format!(
                        "series {index}: histogram {what} bucket count overflows"
                    ))
                })?;
                if running < 0 {
                    return Err(Error::BadData(format!(
                        "series {index}: histogram {what} bucket {i} has a negative count ({running})"
                    )));
                }
                running as f64
            } else {
                counts[k]
            };
            out.push((i, count));
            k += 1;
            idx += 1;
        }
    }
    Ok(out)
}

/// The custom bounds of every exponential histogram: none, shared.
static NO_BOUNDS: std::sync::LazyLock<std::sync::Arc<[f64]>> =
    std::sync::LazyLock::new(|| std::sync::Arc::from(Vec::new()));

/// A remote-write histogram as a model sample.
fn histogram_sample(index: usize, h: &proto::Histogram) -> Result<HistogramSample> {
    let (integer, count) = match h.count {
        Some(proto::Count::CountInt(c)) => (true, c as f64),
        Some(proto::Count::CountFloat(c)) => (false, c),
        None => (
            !h.positive_deltas.is_empty()
                || !h.negative_deltas.is_empty()
                || h.positive_counts.is_empty() && h.negative_counts.is_empty(),
            0.0,
        ),
    };
    let zero_count = match h.zero_count {
        Some(proto::ZeroCount::ZeroCountInt(c)) => c as f64,
        Some(proto::ZeroCount::ZeroCountFloat(c)) => c,
        None => 0.0,
    };
    let positive = expand_buckets(
        index,
        &h.positive_spans,
        &h.positive_deltas,
        &h.positive_counts,
        integer,
        "positive",
    )?;
    let negative = expand_buckets(
        index,
        &h.negative_spans,
        &h.negative_deltas,
        &h.negative_counts,
        integer,
        "negative",
    )?;
    let histogram = FloatHistogram {
        counter_reset_hint: CounterResetHint::from_wire(h.reset_hint),
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count,
        count,
        sum: h.sum,
        positive,
        negative,
        custom_values: if h.custom_values.is_empty() {
            NO_BOUNDS.clone()
        } else {
            std::sync::Arc::from(h.custom_values.as_slice())
        },
    };
    histogram.validate().map_err(|why| {
        Error::BadData(format!(
            "series {index}: histogram sample at {} ms: {why}",
            h.timestamp
        ))
    })?;
    Ok(HistogramSample {
        timestamp_ms: h.timestamp,
        histogram: std::sync::Arc::new(histogram),
    })
}

/// A model histogram as the remote-write message (float counts).
pub fn histogram_message(s: &HistogramSample) -> proto::Histogram {
    let h = &s.histogram;
    let spans = |b: &[(i32, f64)]| -> (Vec<proto::BucketSpan>, Vec<f64>) {
        let mut spans: Vec<proto::BucketSpan> = Vec::new();
        let mut prev_end: Option<i32> = None;
        for &(i, _) in b {
            match (prev_end, spans.last_mut()) {
                (Some(end), Some(last)) if i == end => last.length += 1,
                (Some(end), _) => spans.push(proto::BucketSpan {
                    offset: i - end,
                    length: 1,
                }),
                (None, _) => spans.push(proto::BucketSpan {
                    offset: i,
                    length: 1,
                }),
            }
            prev_end = Some(i + 1);
        }
        (spans, b.iter().map(|x| x.1).collect())
    };
    let (positive_spans, positive_counts) = spans(&h.positive);
    let (negative_spans, negative_counts) = spans(&h.negative);
    proto::Histogram {
        count: Some(proto::Count::CountFloat(h.count)),
        sum: h.sum,
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count: Some(proto::ZeroCount::ZeroCountFloat(h.zero_count)),
        negative_spans,
        negative_deltas: Vec::new(),
        negative_counts,
        positive_spans,
        positive_deltas: Vec::new(),
        positive_counts,
        reset_hint: h.counter_reset_hint.to_wire(),
        timestamp: s.timestamp_ms,
        custom_values: h.custom_values.to_vec(),
    }
}

fn from_v1(req: v1::WriteRequest) -> Result<WriteBatch> {
    let mut series = Vec::with_capacity(req.timeseries.len());
    for (i, ts) in req.timeseries.into_iter().enumerate() {
        let labels = validate_labels(
            i,
            ts.labels.into_iter().map(|l| (l.name, l.value)).collect(),
        )?;
        let samples = ts
            .samples
            .into_iter()
            .map(|s| Sample {
                timestamp_ms: s.timestamp,
                value: s.value,
            })
            .collect();
        let histograms = ts
            .histograms
            .iter()
            .map(|h| histogram_sample(i, h))
            .collect::<Result<Vec<_>>>()?;
        // Exemplars are checked where they are stored: a bad one is refused alone, as
        // Prometheus does, not the request.
        let exemplars = ts
            .exemplars
            .into_iter()
            .map(|e| Exemplar {
                labels: Labels::from_pairs(e.labels.into_iter().map(|l| (l.name, l.value))),
                value: e.value,
                timestamp_ms: e.timestamp,
            })
            .collect();
        series.push(SeriesSamples {
            histograms,
            labels,
            samples,
            exemplars,
            created_timestamp_ms: None,
        });
    }
    let mut metadata = Vec::with_capacity(req.metadata.len());
    for (i, m) in req.metadata.into_iter().enumerate() {
        if !valid_metric_name(&m.metric_family_name) {
            return Err(Error::BadData(format!(
                "metadata {i}: invalid metric family name '{}'",
                m.metric_family_name
            )));
        }
        metadata.push(MetricMetadata {
            metric: m.metric_family_name,
            metric_type: MetricType::from_wire(m.r#type),
            help: m.help,
            unit: m.unit,
        });
    }
    Ok(WriteBatch { series, metadata })
}

fn from_v2(req: v2::Request) -> Result<WriteBatch> {
    if req.symbols.first().is_some_and(|s| !s.is_empty()) {
        return Err(Error::BadData("symbols[0] must be the empty string".into()));
    }
    let symbol = |i: usize, r: u32| -> Result<&String> {
        req.symbols.get(r as usize).ok_or_else(|| {
            Error::BadData(format!(
                "series {i}: symbol reference {r} is out of range ({} symbols)",
                req.symbols.len()
            ))
        })
    };
    // (name, value) pairs from references in pairs; `what` names them in errors.
    let pairs = |i: usize, refs: &[u32], what: &str| -> Result<Vec<(String, String)>> {
        if !refs.len().is_multiple_of(2) {
            return Err(Error::BadData(format!(
                "series {i}: {what} has an odd length"
            )));
        }
        refs.chunks_exact(2)
            .map(|p| Ok((symbol(i, p[0])?.clone(), symbol(i, p[1])?.clone())))
            .collect()
    };
    let mut series = Vec::with_capacity(req.timeseries.len());
    let mut metadata: HashMap<String, MetricMetadata> = HashMap::new();
    for (i, ts) in req.timeseries.iter().enumerate() {
        let labels = validate_labels(i, pairs(i, &ts.labels_refs, "labels_refs")?)?;
        if let Some(md) = &ts.metadata {
            let metric_type = MetricType::from_wire(md.r#type);
            let help = symbol(i, md.help_ref)?.clone();
            let unit = symbol(i, md.unit_ref)?.clone();
            if metric_type != MetricType::Unknown || !help.is_empty() || !unit.is_empty() {
                let metric = labels.metric_name().expect("validated").to_string();
                metadata.insert(
                    metric.clone(),
                    MetricMetadata {
                        metric,
                        metric_type,
                        help,
                        unit,
                    },
                );
            }
        }
        let samples = ts
            .samples
            .iter()
            .map(|s| Sample {
                timestamp_ms: s.timestamp,
                value: s.value,
            })
            .collect();
        let histograms = ts
            .histograms
            .iter()
            .map(|h| histogram_sample(i, h))
            .collect::<Result<Vec<_>>>()?;
        let mut exemplars = Vec::with_capacity(ts.exemplars.len());
        for e in &ts.exemplars {
            exemplars.push(Exemplar {
                labels: Labels::from_pairs(pairs(i, &e.labels_refs, "an exemplar's labels_refs")?),
                value: e.value,
                timestamp_ms: e.timestamp,
            });
        }
        series.push(SeriesSamples {
            histograms,
            labels,
            samples,
            exemplars,
            // 0 is "not set" in protobuf.
            created_timestamp_ms: (ts.created_timestamp != 0).then_some(ts.created_timestamp),
        });
    }
    let mut metadata: Vec<MetricMetadata> = metadata.into_values().collect();
    metadata.sort_by(|a, b| a.metric.cmp(&b.metric));
    Ok(WriteBatch { series, metadata })
}

/// The remote-write 1.0 message of a batch.
pub fn to_remote_write_v1(batch: &WriteBatch) -> v1::WriteRequest {
    v1::WriteRequest {
        timeseries: batch
            .series
            .iter()
            .map(|s| v1::TimeSeries {
                histograms: s.histograms.iter().map(histogram_message).collect(),
                exemplars: s
                    .exemplars
                    .iter()
                    .map(|e| v1::Exemplar {
                        labels: e
                            .labels
                            .as_slice()
                            .iter()
                            .map(|l| v1::Label {
                                name: l.name.clone(),
                                value: l.value.clone(),
                            })
                            .collect(),
                        value: e.value,
                        timestamp: e.timestamp_ms,
                    })
                    .collect(),
                labels: s
                    .labels
                    .as_slice()
                    .iter()
                    .map(|l| v1::Label {
                        name: l.name.clone(),
                        value: l.value.clone(),
                    })
                    .collect(),
                samples: s
                    .samples
                    .iter()
                    .map(|x| v1::Sample {
                        value: x.value,
                        timestamp: x.timestamp_ms,
                    })
                    .collect(),
            })
            .collect(),
        metadata: batch
            .metadata
            .iter()
            .map(|m| v1::MetricMetadata {
                r#type: m.metric_type.to_wire(),
                metric_family_name: m.metric.clone(),
                help: m.help.clone(),
                unit: m.unit.clone(),
            })
            .collect(),
    }
}

/// The remote-write 1.0 body of a batch: the protobuf, snappy block-compressed.
pub fn encode_v1(batch: &WriteBatch) -> Vec<u8> {
    let raw = to_remote_write_v1(batch).encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("a remote-write request fits snappy's input limit")
}

#[cfg(test)]
mod tests {
    use super::*;
    use opendata_timeseries::model::STALE_NAN_BITS;
    use proptest::prelude::*;

    fn compress(bytes: &[u8]) -> Vec<u8> {
        snap::raw::Encoder::new().compress_vec(bytes).unwrap()
    }

    fn v1_series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> v1::TimeSeries {
        v1::TimeSeries {
            histograms: vec![],
            exemplars: vec![],
            labels: labels
                .iter()
                .map(|(n, v)| v1::Label {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            samples: samples
                .iter()
                .map(|(t, v)| v1::Sample {
                    value: *v,
                    timestamp: *t,
                })
                .collect(),
        }
    }

    fn decode_v1(ts: Vec<v1::TimeSeries>) -> Result<WriteBatch> {
        let req = v1::WriteRequest {
            timeseries: ts,
            metadata: vec![],
        };
        decode(
            &compress(&req.encode_to_vec()),
            RemoteWriteVersion::V1,
            1 << 20,
        )
    }

    #[test]
    fn should_negotiate_the_version_from_the_content_type() {
        assert_eq!(
            RemoteWriteVersion::from_content_type(None).unwrap(),
            RemoteWriteVersion::V1
        );
        assert_eq!(
            RemoteWriteVersion::from_content_type(Some("application/x-protobuf")).unwrap(),
            RemoteWriteVersion::V1
        );
        assert_eq!(
            RemoteWriteVersion::from_content_type(Some(
                "application/x-protobuf;proto=io.prometheus.write.v2.Request"
            ))
            .unwrap(),
            RemoteWriteVersion::V2
        );
        assert!(matches!(
            RemoteWriteVersion::from_content_type(Some("application/x-protobuf;proto=foo.Bar")),
            Err(Error::Unsupported(_))
        ));
        assert!(matches!(
            RemoteWriteVersion::from_content_type(Some("application/json")),
            Err(Error::Unsupported(_))
        ));
    }

    #[test]
    fn should_keep_stale_markers_bit_exact() {
        let stale = f64::from_bits(STALE_NAN_BITS);
        let batch = decode_v1(vec![v1_series(
            &[("__name__", "up"), ("job", "a")],
            &[(1, stale), (2, 1.5)],
        )])
        .unwrap();
        assert_eq!(batch.series[0].samples[0].value.to_bits(), STALE_NAN_BITS);
        assert!(opendata_timeseries::model::is_stale_marker(
            batch.series[0].samples[0].value
        ));
        assert_eq!(batch.series[0].labels.get("job"), Some("a"));
    }

    #[test]
    fn should_reject_bad_series_whole() {
        for (labels, needle) in [
            (vec![("__name__", "up"), ("", "x")], "empty label name"),
            (
                vec![("__name__", "up"), ("1bad", "x")],
                "invalid label name",
            ),
            (
                vec![("__name__", "up"), ("job", "a"), ("job", "b")],
                "duplicate label name",
            ),
            (vec![("job", "a"), ("__name__", "up")], "not sorted"),
            (vec![("job", "a")], "no metric name"),
            (vec![("__name__", "bad-name")], "invalid metric name"),
        ] {
            let err = decode_v1(vec![
                v1_series(&[("__name__", "ok")], &[(1, 1.0)]),
                v1_series(&labels, &[(1, 1.0)]),
            ])
            .unwrap_err();
            assert!(matches!(err, Error::BadData(_)), "{err}");
            assert!(err.to_string().contains(needle), "{err} lacks {needle}");
            assert!(err.to_string().contains("series 1"), "{err}");
        }
    }

    #[test]
    fn should_drop_labels_with_empty_values() {
        let batch = decode_v1(vec![v1_series(
            &[("__name__", "up"), ("empty", ""), ("job", "a")],
            &[(1, 1.0)],
        )])
        .unwrap();
        assert_eq!(batch.series[0].labels.len(), 2);
        assert_eq!(batch.series[0].labels.get("empty"), None);
    }

    #[test]
    fn should_reject_bodies_that_are_not_snappy_or_protobuf_or_too_large() {
        assert!(matches!(
            decode(b"hello", RemoteWriteVersion::V1, 1 << 20),
            Err(Error::BadData(_))
        ));
        let garbage = compress(&[0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(
            decode(&garbage, RemoteWriteVersion::V1, 1 << 20),
            Err(Error::BadData(_))
        ));
        let big = compress(&vec![0u8; 10_000]);
        assert!(matches!(
            decode(&big, RemoteWriteVersion::V1, 1000),
            Err(Error::TooLarge(_))
        ));
    }

    #[test]
    fn should_expand_integer_histogram_deltas_and_refuse_bad_ones() {
        let mut h = proto::Histogram {
            count: Some(proto::Count::CountInt(6)),
            sum: 10.0,
            schema: 1,
            zero_threshold: 0.0,
            zero_count: None,
            negative_spans: vec![],
            negative_deltas: vec![],
            negative_counts: vec![],
            positive_spans: vec![
                proto::BucketSpan {
                    offset: -1,
                    length: 2,
                },
                proto::BucketSpan {
                    offset: 3,
                    length: 1,
                },
            ],
            positive_deltas: vec![1, 2, -1],
            positive_counts: vec![],
            reset_hint: 0,
            timestamp: 5,
            custom_values: vec![],
        };
        let got = histogram_sample(0, &h).unwrap();
        assert_eq!(got.histogram.positive, vec![(-1, 1.0), (0, 3.0), (4, 2.0)]);
        h.positive_deltas = vec![1, -2, 1];
        let err = histogram_sample(3, &h).unwrap_err().to_string();
        assert!(err.contains("negative count"), "{err}");
        h.positive_deltas = vec![1];
        let err = histogram_sample(3, &h).unwrap_err().to_string();
        assert!(err.contains("spans hold 3 buckets but 1 counts"), "{err}");
        h.positive_deltas = vec![1, 1, 1];
        h.schema = 12;
        let err = histogram_sample(3, &h).unwrap_err().to_string();
        assert!(err.contains("schema 12"), "{err}");
    }

    #[test]
    fn should_decode_v2_symbols_and_metadata() {
        let req = v2::Request {
            symbols: vec![
                "".into(),
                "__name__".into(),
                "http_requests_total".into(),
                "job".into(),
                "api".into(),
                "Requests.".into(),
            ],
            timeseries: vec![v2::TimeSeries {
                histograms: vec![],
                created_timestamp: 0,
                exemplars: vec![],
                labels_refs: vec![1, 2, 3, 4],
                samples: vec![v2::Sample {
                    value: 7.0,
                    timestamp: 1000,
                }],
                metadata: Some(v2::Metadata {
                    r#type: 1,
                    help_ref: 5,
                    unit_ref: 0,
                }),
            }],
        };
        let batch = decode(
            &compress(&req.encode_to_vec()),
            RemoteWriteVersion::V2,
            1 << 20,
        )
        .unwrap();
        assert_eq!(
            batch.series[0].labels.metric_name(),
            Some("http_requests_total")
        );
        assert_eq!(batch.series[0].labels.get("job"), Some("api"));
        assert_eq!(batch.metadata.len(), 1);
        assert_eq!(batch.metadata[0].metric_type, MetricType::Counter);
        assert_eq!(batch.metadata[0].help, "Requests.");

        let mut bad = req.clone();
        bad.timeseries[0].labels_refs = vec![1, 99];
        let err = decode(
            &compress(&bad.encode_to_vec()),
            RemoteWriteVersion::V2,
            1 << 20,
        )
        .unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
        let mut odd = req.clone();
        odd.timeseries[0].labels_refs = vec![1, 2, 3];
        assert!(
            decode(
                &compress(&odd.encode_to_vec()),
                RemoteWriteVersion::V2,
                1 << 20
            )
            .is_err()
        );
        let mut first = req;
        first.symbols[0] = "x".into();
        assert!(
            decode(
                &compress(&first.encode_to_vec()),
                RemoteWriteVersion::V2,
                1 << 20
            )
            .is_err()
        );
    }

    /// A series as (labels sorted by name, samples as timestamp and value bits).
    type ArbSeries = (Vec<(String, String)>, Vec<(i64, u64)>);

    fn arb_series() -> impl Strategy<Value = ArbSeries> {
        (
            proptest::collection::btree_map("[a-z_][a-z0-9_]{0,6}", "[ -~]{1,8}", 0..4),
            "[a-z_:][a-z0-9_:]{0,8}",
            proptest::collection::vec((any::<i64>(), any::<u64>()), 0..5),
        )
            .prop_map(|(mut labels, name, samples)| {
                labels.insert(METRIC_NAME.to_string(), name);
                (labels.into_iter().collect(), samples)
            })
    }

    proptest! {
        #[test]
        fn should_roundtrip_v1_and_v2(series in proptest::collection::vec(arb_series(), 0..4)) {
            let v1req = v1::WriteRequest {
                timeseries: series.iter().map(|(labels, samples)| v1::TimeSeries {
                    histograms: vec![],
                    exemplars: vec![],
                    labels: labels.iter().map(|(n, v)| v1::Label { name: n.clone(), value: v.clone() }).collect(),
                    samples: samples.iter().map(|(t, bits)| v1::Sample { value: f64::from_bits(*bits), timestamp: *t }).collect(),
                }).collect(),
                metadata: vec![],
            };
            let a = decode(&compress(&v1req.encode_to_vec()), RemoteWriteVersion::V1, 1 << 20).unwrap();
            let mut symbols = vec![String::new()];
            let mut index = HashMap::new();
            let mut sym = |s: &str| -> u32 {
                *index.entry(s.to_string()).or_insert_with(|| { symbols.push(s.to_string()); (symbols.len() - 1) as u32 })
            };
            let timeseries: Vec<v2::TimeSeries> = series.iter().map(|(labels, samples)| v2::TimeSeries {
                histograms: vec![],
                created_timestamp: 0,
                exemplars: vec![],
                labels_refs: labels.iter().flat_map(|(n, v)| [sym(n), sym(v)]).collect(),
                samples: samples.iter().map(|(t, bits)| v2::Sample { value: f64::from_bits(*bits), timestamp: *t }).collect(),
                metadata: None,
            }).collect();
            let v2req = v2::Request { symbols, timeseries };
            let b = decode(&compress(&v2req.encode_to_vec()), RemoteWriteVersion::V2, 1 << 20).unwrap();
            prop_assert_eq!(a.series.len(), series.len());
            for ((sa, sb), (labels, samples)) in a.series.iter().zip(&b.series).zip(&series) {
                prop_assert_eq!(&sa.labels, &sb.labels);
                prop_assert_eq!(sa.labels.len(), labels.len());
                let bits: Vec<(i64, u64)> = sa.samples.iter().map(|s| (s.timestamp_ms, s.value.to_bits())).collect();
                prop_assert_eq!(&bits, samples);
                let bits_b: Vec<(i64, u64)> = sb.samples.iter().map(|s| (s.timestamp_ms, s.value.to_bits())).collect();
                prop_assert_eq!(&bits_b, samples);
            }
        }

        #[test]
        fn should_round_trip_histograms_through_the_wire_message(
            schema in -4i32..=8,
            pos in proptest::collection::btree_map(-30i32..30, 1u32..1000, 0..8),
            neg in proptest::collection::btree_map(-30i32..30, 1u32..1000, 0..4),
            zero in 0u32..10,
            hint in 0i32..4,
        ) {
            let positive: Vec<(i32, f64)> = pos.into_iter().map(|(i, c)| (i, c as f64)).collect();
            let negative: Vec<(i32, f64)> = neg.into_iter().map(|(i, c)| (i, c as f64)).collect();
            let count = positive.iter().chain(&negative).map(|b| b.1).sum::<f64>() + zero as f64;
            let h = HistogramSample {
                timestamp_ms: 1234,
                histogram: std::sync::Arc::new(FloatHistogram {
                    counter_reset_hint: CounterResetHint::from_wire(hint),
                    schema,
                    zero_threshold: 0.001,
                    zero_count: zero as f64,
                    count,
                    sum: 1.5,
                    positive,
                    negative,
                    custom_values: std::sync::Arc::from(Vec::new()),
                }),
            };
            let back = histogram_sample(0, &histogram_message(&h)).unwrap();
            prop_assert_eq!(back, h);
        }

        #[test]
        fn should_never_panic_on_garbage(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&data, RemoteWriteVersion::V1, 1 << 20);
            let _ = decode(&data, RemoteWriteVersion::V2, 1 << 20);
            let _ = decode(&compress(&data), RemoteWriteVersion::V1, 1 << 20);
            let _ = decode(&compress(&data), RemoteWriteVersion::V2, 1 << 20);
        }
    }

    // The workload generator's bodies, through the encoder and back through the decoder.
    use opendata_testing::workload::{Workload, WorkloadConfig};

    #[test]
    fn should_generate_identical_bytes_for_the_same_seed() {
        let encode_all = |seed| {
            let w = Workload::new(WorkloadConfig {
                series: 2_000,
                seed,
                ..Default::default()
            });
            w.batches(200, 10, 30)
                .map(|b| encode_v1(&b))
                .collect::<Vec<_>>()
        };
        let a = encode_all(7);
        assert_eq!(a, encode_all(7));
        assert_ne!(a, encode_all(8));
    }

    #[test]
    fn should_round_trip_through_remote_write_decoding() {
        let w = Workload::new(WorkloadConfig {
            series: 3_000,
            ..Default::default()
        });
        for batch in w.batches(500, 7, 14).chain([w.metadata_batch()]) {
            let body = encode_v1(&batch);
            let decoded = decode(&body, RemoteWriteVersion::V1, 64 << 20).unwrap();
            assert_eq!(decoded, batch);
        }
        let md = w.metadata_batch();
        assert!(
            md.metadata
                .iter()
                .any(|m| m.metric == "http_request_duration_seconds"
                    && m.metric_type == MetricType::Histogram
                    && m.unit == "seconds")
        );
        let names: std::collections::HashSet<&str> =
            md.metadata.iter().map(|m| m.metric.as_str()).collect();
        assert_eq!(names.len(), md.metadata.len());
        for s in 0..opendata_testing::workload::SERIES_PER_TARGET {
            let name = w.labels(s).metric_name().unwrap();
            let family = if name.starts_with("http_request_duration_seconds_") {
                "http_request_duration_seconds"
            } else {
                name
            };
            assert!(names.contains(family), "no metadata for {name}");
        }
    }
}
