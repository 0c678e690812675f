//! What the server's integration tests share: the real binary as a process (from the
//! test-support crate), and small helpers.
#![allow(dead_code, unused_imports)]

pub use opendata_testing::TestClient;
pub use opendata_testing::process::{
    ServerProcess, free_port, kafka_python, kcat_binary, s3_args, s3_args_for,
};

/// Percent-encodes a query parameter value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The real binary on an in-memory store, with `extra` arguments; the directory holds
/// its log and must outlive it.
pub async fn memory_server(extra: &[&str]) -> (tempfile::TempDir, ServerProcess) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--object-store", "memory://"];
    args.extend_from_slice(extra);
    let server = ServerProcess::start(&args, &dir.path().join("server.log")).await;
    (dir, server)
}

/// A remote-write 1.0 body (snappy protobuf): one series `name{label="v"}` per value,
/// each with `samples` samples `step_ms` apart from `t0` (the k-th sample's value is k).
pub fn remote_write_v1(
    name: &str,
    label: &str,
    values: impl IntoIterator<Item = String>,
    samples: i64,
    t0: i64,
    step_ms: i64,
) -> Vec<u8> {
    use opendata_timeseries::model::{Labels, Sample, SeriesSamples, WriteBatch};
    let batch = WriteBatch {
        series: values
            .into_iter()
            .map(|v| SeriesSamples {
                histograms: Vec::new(),
                exemplars: Vec::new(),
                created_timestamp_ms: None,
                labels: Labels::from_pairs([("__name__", name.to_string()), (label, v)]),
                samples: (0..samples)
                    .map(|k| Sample {
                        timestamp_ms: t0 + k * step_ms,
                        value: k as f64,
                    })
                    .collect(),
            })
            .collect(),
        metadata: vec![],
    };
    opendata_server::api::timeseries::remote_write::encode_v1(&batch)
}
