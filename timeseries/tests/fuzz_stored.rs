//! Fuzzing the decoders of stored keys and values (write-ahead records, sample chunks,
//! timestamp columns, label sets, index keys, bucket state, metadata, exemplars): random bytes and
//! mutated valid encodings. A corrupt record must be a `DecodeError`, never a panic or
//! an allocation sized by the corrupt bytes.
//!
//! CI runs a bounded number of cases; a long run is
//! `PROPTEST_CASES=1000000 cargo test --release -p opendata-timeseries --test fuzz_stored`.

#![allow(clippy::unwrap_used)]

use opendata_testing::fuzz::{Edit, mutate};
use opendata_timeseries::model::{Exemplar, Labels, MetricMetadata, MetricType, Sample};
use opendata_timeseries::serde::{
    bucket, chunk, dictionary, exemplar, label_names, labels, metadata, postings, series, settings,
    wal,
};
use proptest::prelude::*;

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(any::<Edit>(), 0..6)
}

fn arb_samples() -> impl Strategy<Value = Vec<Sample>> {
    prop::collection::vec((any::<i64>(), any::<u64>()), 1..40).prop_map(|v| {
        let mut t = 1_700_000_000_000i64;
        v.into_iter()
            .map(|(dt, bits)| {
                t = t.wrapping_add(dt % 60_000);
                Sample {
                    timestamp_ms: t,
                    value: f64::from_bits(bits),
                }
            })
            .collect()
    })
}

fn arb_labels() -> impl Strategy<Value = Labels> {
    prop::collection::vec(("[a-z_]{1,8}", ".{0,8}"), 1..5).prop_map(Labels::from_pairs)
}

/// Every value decoder on `bytes`.
fn decode_values(bytes: &[u8]) {
    let _ = wal::decode(bytes);
    let _ = chunk::decode(bytes);
    let _ = chunk::decode_timestamps(bytes);
    let _ = chunk::timestamp_column(bytes);
    let _ = chunk::decode_with_timestamps(bytes, &[1, 2, 3]);
    let _ = labels::decode(bytes);
    let _ = bucket::decode(bytes);
    let _ = settings::decode(bytes);
    let _ = metadata::decode("m".into(), bytes);
    let _ = exemplar::decode(bytes, 0);
}

/// Every key decoder on `bytes`.
fn decode_keys(bytes: &[u8]) {
    let _ = wal::decode_key(bytes);
    let _ = chunk::decode_key(bytes);
    let _ = series::decode_key(bytes);
    let _ = postings::decode_key(bytes);
    let _ = label_names::decode_key(bytes);
    let _ = dictionary::decode_key(bytes);
    let _ = metadata::decode_key(bytes);
    let _ = exemplar::decode_key(bytes);
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn should_decode_or_refuse_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        decode_values(&bytes);
        decode_keys(&bytes);
    }

    #[test]
    fn should_decode_or_refuse_mutated_values(
        samples in arb_samples(),
        ls in arb_labels(),
        id in any::<u32>(),
        edits in edits(),
    ) {
        let mut w = wal::WalBuilder::new();
        w.new_series(id, &ls);
        w.samples(id, &samples);
        w.samples(id.wrapping_add(1), &samples[..1]);
        decode_values(&mutate(w.finish().to_vec(), &edits));
        decode_values(&mutate(chunk::encode(&samples), &edits));
        let times: Vec<i64> = samples.iter().map(|s| s.timestamp_ms).collect();
        let column = chunk::column_id(&times);
        decode_values(&mutate(chunk::encode_values_only(&samples, column), &edits));
        decode_values(&mutate(chunk::encode_timestamps(&times), &edits));
        let values = mutate(chunk::encode_values_only(&samples, column), &edits);
        let _ = chunk::decode_with_timestamps(&values, &times);
        decode_values(&mutate(labels::encode(&ls), &edits));
        decode_values(&mutate(bucket::encode(bucket::BucketState { closed: true, flushed_through: id as u64 }).to_vec(), &edits));
        decode_values(&mutate(settings::encode(7_200_000).to_vec(), &edits));
        let meta = MetricMetadata {
            metric: "m".into(),
            metric_type: MetricType::Counter,
            help: "Help.".into(),
            unit: "seconds".into(),
        };
        decode_values(&mutate(metadata::encode(&meta).to_vec(), &edits));
        let e = Exemplar { labels: ls.clone(), value: samples[0].value, timestamp_ms: samples[0].timestamp_ms };
        decode_values(&mutate(exemplar::encode(&e).to_vec(), &edits));
    }

    #[test]
    fn should_decode_or_refuse_mutated_keys(
        bucket_id in any::<u32>(),
        id in any::<u32>(),
        seq in any::<u64>(),
        name in ".{0,12}",
        value in ".{0,12}",
        edits in edits(),
    ) {
        for key in [
            wal::key(bucket_id, seq),
            chunk::key(bucket_id, id, seq),
            chunk::timestamps_key(bucket_id, seq, seq ^ 1),
            series::key(bucket_id, id),
            postings::key(bucket_id, &name, &value),
            label_names::key(bucket_id, &name),
            dictionary::key(bucket_id, seq, id),
            metadata::key(&name),
            bucket::key(bucket_id),
            exemplar::key(bucket_id, id, seq as i64),
        ] {
            decode_keys(&mutate(key.to_vec(), &edits));
        }
    }
}
