//! Collecting SlateDB's metrics and rendering them in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use parking_lot::Mutex;
use slatedb_common::metrics::{DefaultMetricsRecorder, MetricValue};

/// One database's recorder: `(database, role, recorder)`.
type Registered = (String, String, Arc<DefaultMetricsRecorder>);

/// The metrics recorders of every database opened from one [`crate::StorageRoot`].
#[derive(Clone, Default)]
pub struct MetricsRegistry {
    recorders: Arc<Mutex<Vec<Registered>>>,
}

impl MetricsRegistry {
    pub(crate) fn register(
        &self,
        database: &str,
        role: &str,
        recorder: Arc<DefaultMetricsRecorder>,
    ) {
        let mut recorders = self.recorders.lock();
        recorders.retain(|(d, r, _)| !(d == database && r == role));
        recorders.push((database.to_string(), role.to_string(), recorder));
    }

    /// Appends every SlateDB metric, labelled with `database` and `role`, to `out` in
    /// the Prometheus text exposition format. Names are SlateDB's with `.` turned into `_`.
    pub fn render(&self, out: &mut String) {
        // name -> (type, help, lines)
        let mut families: BTreeMap<String, (&'static str, String, Vec<String>)> = BTreeMap::new();
        for (database, role, recorder) in self.recorders.lock().iter() {
            for metric in recorder.snapshot().all() {
                let name = sanitize_name(&metric.name);
                let mut labels: Vec<(String, String)> = vec![
                    ("database".into(), database.clone()),
                    ("role".into(), role.clone()),
                ];
                labels.extend(
                    metric
                        .labels
                        .iter()
                        .map(|(k, v)| (sanitize_name(k), v.clone())),
                );
                let kind = match metric.value {
                    MetricValue::Counter(_) => "counter",
                    MetricValue::Gauge(_) | MetricValue::UpDownCounter(_) => "gauge",
                    MetricValue::Histogram { .. } => "histogram",
                };
                let family = families
                    .entry(name.clone())
                    .or_insert_with(|| (kind, metric.description.clone(), Vec::new()));
                match &metric.value {
                    MetricValue::Counter(v) => family
                        .2
                        .push(format!("{name}{} {v}", fmt_labels(&labels, None))),
                    MetricValue::Gauge(v) | MetricValue::UpDownCounter(v) => family
                        .2
                        .push(format!("{name}{} {v}", fmt_labels(&labels, None))),
                    MetricValue::Histogram {
                        count,
                        sum,
                        boundaries,
                        bucket_counts,
                        ..
                    } => {
                        let mut cumulative = 0u64;
                        for (i, bound) in boundaries.iter().enumerate() {
                            cumulative += bucket_counts.get(i).copied().unwrap_or(0);
                            family.2.push(format!(
                                "{name}_bucket{} {cumulative}",
                                fmt_labels(&labels, Some(&fmt_float(*bound)))
                            ));
                        }
                        family.2.push(format!(
                            "{name}_bucket{} {count}",
                            fmt_labels(&labels, Some("+Inf"))
                        ));
                        family.2.push(format!(
                            "{name}_sum{} {}",
                            fmt_labels(&labels, None),
                            fmt_float(*sum)
                        ));
                        family
                            .2
                            .push(format!("{name}_count{} {count}", fmt_labels(&labels, None)));
                    }
                }
            }
        }
        for (name, (kind, help, lines)) in families {
            let _ = writeln!(out, "# HELP {name} {}", escape_help(&help));
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for line in lines {
                out.push_str(&line);
                out.push('\n');
            }
        }
    }
}

/// Turns any string into a valid Prometheus metric or label name.
pub fn sanitize_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) || out.is_empty() {
        out.insert(0, '_');
    }
    out
}

/// Escapes a label value for the text format.
pub fn escape_label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

fn fmt_float(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else if v.is_nan() {
        "NaN".into()
    } else {
        format!("{v}")
    }
}

fn fmt_labels(labels: &[(String, String)], le: Option<&str>) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{k}=\"{}\"", escape_label_value(v));
    }
    if let Some(le) = le {
        let _ = write!(s, ",le=\"{le}\"");
    }
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use slatedb_common::metrics::MetricsRecorder;

    #[test]
    fn should_render_counters_and_histograms() {
        let registry = MetricsRegistry::default();
        let rec = Arc::new(DefaultMetricsRecorder::new());
        rec.register_counter("slatedb.db.write_ops", "writes \"done\"", &[("kind", "a")])
            .increment(3);
        let h = rec.register_histogram("slatedb.lat", "latency", &[], &[1.0, 2.0]);
        h.record(0.5);
        h.record(1.5);
        h.record(5.0);
        registry.register("log", "writer", rec);
        let mut out = String::new();
        registry.render(&mut out);
        assert!(out.contains("# TYPE slatedb_db_write_ops counter"), "{out}");
        assert!(
            out.contains("slatedb_db_write_ops{database=\"log\",role=\"writer\",kind=\"a\"} 3"),
            "{out}"
        );
        assert!(
            out.contains("slatedb_lat_bucket{database=\"log\",role=\"writer\",le=\"1\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("slatedb_lat_bucket{database=\"log\",role=\"writer\",le=\"2\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("slatedb_lat_bucket{database=\"log\",role=\"writer\",le=\"+Inf\"} 3"),
            "{out}"
        );
        assert!(
            out.contains("slatedb_lat_count{database=\"log\",role=\"writer\"} 3"),
            "{out}"
        );
    }

    #[test]
    fn should_sanitize_names() {
        assert_eq!(sanitize_name("slatedb.db.get-ops"), "slatedb_db_get_ops");
        assert_eq!(sanitize_name("1x"), "_1x");
    }
}
