//! The time series storage end to end: writes, reads, out-of-order and duplicate
//! samples, restarts, bucket closing, indexes in storage, retention and replicas.

#![allow(clippy::unwrap_used)]

use opendata_common::{StorageConfig, StorageRoot};
use opendata_timeseries::histogram::CUSTOM_BUCKETS_SCHEMA;
use opendata_timeseries::model::{
    Exemplar, FloatHistogram, HistogramSample, Labels, MatchKind, Matcher, MetricMetadata,
    MetricType, Sample, SeriesSamples, WriteBatch,
};
use opendata_timeseries::storage::Config;
use opendata_timeseries::storage::Querier;
use opendata_timeseries::{Error, TimeSeriesConfig, TimeSeriesDb, TimeSeriesDbReader};

const HOUR: i64 = 3_600_000;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn config() -> TimeSeriesConfig {
    TimeSeriesConfig {
        bucket_secs: 3600,
        out_of_order_secs: 600,
        retention_secs: 0,
        maintenance_interval_secs: 3600,
        ..Default::default()
    }
}

fn series(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> SeriesSamples {
    SeriesSamples {
        histograms: Vec::new(),
        exemplars: Vec::new(),
        created_timestamp_ms: None,
        labels: Labels::from_pairs(pairs.iter().copied()),
        samples: samples
            .iter()
            .map(|&(t, v)| Sample {
                timestamp_ms: t,
                value: v,
            })
            .collect(),
    }
}

fn batch(series: Vec<SeriesSamples>) -> WriteBatch {
    WriteBatch {
        series,
        metadata: vec![],
    }
}

async fn read_all(db: &TimeSeriesDb, matchers: &[Matcher]) -> Vec<(Labels, Vec<(i64, u64)>)> {
    db.querier()
        .select(matchers, i64::MIN / 4, i64::MAX / 4)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap()
        .into_iter()
        .map(|s| {
            let v = s
                .samples
                .iter()
                .map(|x| (x.timestamp_ms, x.value.to_bits()))
                .collect();
            (s.labels, v)
        })
        .collect()
}

fn m(kind: MatchKind, name: &str, value: &str) -> Matcher {
    Matcher::new(kind, name, value).unwrap()
}

async fn open_local(dir: &std::path::Path, cfg: TimeSeriesConfig) -> TimeSeriesDb {
    TimeSeriesDb::open(Config {
        storage: StorageConfig::local(dir),
        timeseries: cfg,
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn should_read_back_written_samples_with_out_of_order_and_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_local(dir.path(), config()).await;
    let t0 = now() - HOUR / 2;
    let up = [("__name__", "up"), ("job", "api")];
    db.write(batch(vec![series(
        &up,
        &[(t0, 1.0), (t0 + 15_000, 2.0), (t0 + 30_000, 3.0)],
    )]))
    .await
    .unwrap();
    // Out of order, a duplicate timestamp (last write wins) and a stale marker.
    let stale = f64::from_bits(0x7ff0_0000_0000_0002);
    db.write(batch(vec![series(
        &up,
        &[(t0 + 7_000, 9.0), (t0 + 15_000, 20.0), (t0 + 45_000, stale)],
    )]))
    .await
    .unwrap();
    let got = read_all(&db, &[Matcher::equal("__name__", "up")]).await;
    assert_eq!(got.len(), 1);
    let want: Vec<(i64, u64)> = vec![
        (t0, 1f64.to_bits()),
        (t0 + 7_000, 9f64.to_bits()),
        (t0 + 15_000, 20f64.to_bits()),
        (t0 + 30_000, 3f64.to_bits()),
        (t0 + 45_000, 0x7ff0_0000_0000_0002),
    ];
    assert_eq!(got[0].1, want);
    // Range restriction.
    let part = db
        .querier()
        .select(&[Matcher::equal("job", "api")], t0 + 7_000, t0 + 15_000)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(part[0].samples.len(), 2);
    db.close().await.unwrap();
}

#[tokio::test]
async fn should_survive_restart_close_buckets_and_answer_from_stored_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = (now() / HOUR - 5) * HOUR; // start of an hour bucket, 5 h ago
    let mut expected = Vec::new();
    {
        let db = open_local(dir.path(), config()).await;
        for i in 0..4 {
            let job = if i % 2 == 0 { "api" } else { "web" };
            let name = format!("m{i}");
            let pairs = [("__name__", name.as_str()), ("job", job), ("i", "x")];
            let samples: Vec<(i64, f64)> = (0..20)
                .map(|k| (t0 + k * 60_000, (i * 100 + k) as f64))
                .collect();
            db.write(batch(vec![series(&pairs, &samples)]))
                .await
                .unwrap();
            expected.push(series(&pairs, &samples));
        }
        // Dropped without close: everything acknowledged must come back from the WAL.
    }
    let db = open_local(dir.path(), config()).await;
    let got = read_all(&db, &[]).await;
    assert_eq!(got.len(), 4);
    // Move time forward: the first bucket closes (its samples go into chunks).
    let later = series(
        &[("__name__", "m0"), ("job", "api"), ("i", "x")],
        &[(t0 + 2 * HOUR, 1.0)],
    );
    db.write(batch(vec![later])).await.unwrap();
    db.maintain().await.unwrap();
    let (open, closed) = db.querier().bucket_counts();
    assert_eq!((open, closed), (1, 1), "first bucket closed");
    // Samples for the closed bucket are refused, the rest of the request written.
    let outcome = db
        .write(batch(vec![series(
            &[("__name__", "m0"), ("job", "api"), ("i", "x")],
            &[(t0 + 1, 5.0), (t0 + 2 * HOUR + 1, 6.0)],
        )]))
        .await
        .unwrap();
    assert_eq!(outcome.out_of_bounds, 1);
    assert_eq!(outcome.samples, 1);
    assert!(
        outcome
            .first_out_of_bounds
            .unwrap()
            .contains("out-of-order window")
    );

    let q = db.querier();
    let api = read_all(&db, &[m(MatchKind::Equal, "job", "api")]).await;
    assert_eq!(api.len(), 2);
    assert_eq!(api[0].1.len(), 22, "20 stored + 2 in the head for m0");
    assert_eq!(
        read_all(&db, &[m(MatchKind::Regex, "__name__", "m[13]")])
            .await
            .len(),
        2
    );
    assert_eq!(
        read_all(&db, &[m(MatchKind::NotRegex, "job", "a.*")])
            .await
            .len(),
        2
    );
    assert_eq!(
        read_all(
            &db,
            &[
                m(MatchKind::Equal, "nope", ""),
                m(MatchKind::NotEqual, "job", "web")
            ]
        )
        .await
        .len(),
        2
    );
    assert_eq!(
        read_all(&db, &[m(MatchKind::Regex, "job", "api|web")])
            .await
            .len(),
        4
    );
    assert_eq!(
        read_all(&db, &[m(MatchKind::Equal, "job", "none")])
            .await
            .len(),
        0
    );
    let names = q
        .label_names(&[], i64::MIN / 4, i64::MAX / 4, 0)
        .await
        .unwrap();
    assert_eq!(names, vec!["__name__", "i", "job"]);
    let values = q
        .label_values(
            "__name__",
            &[m(MatchKind::Equal, "job", "web")],
            i64::MIN / 4,
            i64::MAX / 4,
            0,
        )
        .await
        .unwrap();
    assert_eq!(values, vec!["m1", "m3"]);
    let first_bucket_only = q.series(&[], t0, t0 + HOUR - 1, 0).await.unwrap();
    assert_eq!(first_bucket_only.len(), 4);
    assert_eq!(
        q.series(&[], t0 + 2 * HOUR, t0 + 2 * HOUR + 5, 0)
            .await
            .unwrap()
            .len(),
        1
    );
    db.close().await.unwrap();

    // Reopen: the closed bucket is read from storage, ids are not reused.
    let db = open_local(dir.path(), config()).await;
    let got = read_all(&db, &[m(MatchKind::Equal, "__name__", "m2")]).await;
    let want: Vec<(i64, u64)> = expected[2]
        .samples
        .iter()
        .map(|s| (s.timestamp_ms, s.value.to_bits()))
        .collect();
    assert_eq!(got[0].1, want);
    db.write(batch(vec![series(
        &[("__name__", "fresh")],
        &[(t0 + 2 * HOUR + 10, 1.0)],
    )]))
    .await
    .unwrap();
    assert_eq!(read_all(&db, &[]).await.len(), 5);
    db.close().await.unwrap();
}

#[tokio::test]
async fn should_flush_open_buckets_and_keep_reading_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_local(dir.path(), config()).await;
    let t0 = now() - HOUR / 2;
    let pairs = [("__name__", "g")];
    db.write(batch(vec![series(&pairs, &[(t0, 1.0), (t0 + 1000, 2.0)])]))
        .await
        .unwrap();
    db.flush_head().await.unwrap();
    // Overwrite a flushed sample and add more: the head wins over the chunk.
    db.write(batch(vec![series(
        &pairs,
        &[(t0 + 1000, 5.0), (t0 + 2000, 3.0)],
    )]))
    .await
    .unwrap();
    let want = vec![
        (t0, 1f64.to_bits()),
        (t0 + 1000, 5f64.to_bits()),
        (t0 + 2000, 3f64.to_bits()),
    ];
    assert_eq!(read_all(&db, &[]).await[0].1, want);
    db.close().await.unwrap();
    let db = open_local(dir.path(), config()).await;
    assert_eq!(read_all(&db, &[]).await[0].1, want);
    db.close().await.unwrap();
}

#[tokio::test]
async fn should_persist_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let meta = MetricMetadata {
        metric: "http_requests_total".into(),
        metric_type: MetricType::Counter,
        help: "Requests.".into(),
        unit: "".into(),
    };
    {
        let db = open_local(dir.path(), config()).await;
        let out = db
            .write(WriteBatch {
                series: vec![],
                metadata: vec![meta.clone()],
            })
            .await
            .unwrap();
        assert_eq!(out.metadata, 1);
        db.close().await.unwrap();
    }
    let db = open_local(dir.path(), config()).await;
    assert_eq!(
        db.querier().metadata(None, 0).await.unwrap(),
        vec![meta.clone()]
    );
    assert_eq!(
        db.querier()
            .metadata(Some("http_requests_total"), 0)
            .await
            .unwrap(),
        vec![meta]
    );
    db.close().await.unwrap();
}

#[tokio::test]
async fn should_refuse_a_different_bucket_width() {
    let dir = tempfile::tempdir().unwrap();
    open_local(dir.path(), config())
        .await
        .close()
        .await
        .unwrap();
    let err = TimeSeriesDb::open(Config {
        storage: StorageConfig::local(dir.path()),
        timeseries: TimeSeriesConfig {
            bucket_secs: 7200,
            ..config()
        },
    })
    .await
    .err()
    .unwrap();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("bucket")),
        "{err}"
    );
}

#[tokio::test]
async fn should_refuse_samples_past_retention_or_far_in_the_future() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TimeSeriesConfig {
        retention_secs: 3 * 3600,
        ..config()
    };
    let db = open_local(dir.path(), cfg).await;
    let t = now();
    let out = db
        .write(batch(vec![series(
            &[("__name__", "x")],
            &[(t - 4 * HOUR, 1.0), (t, 2.0), (t + 2 * HOUR, 3.0)],
        )]))
        .await
        .unwrap();
    assert_eq!((out.samples, out.out_of_bounds), (1, 2));
    let err = db
        .write(batch(vec![series(
            &[("__name__", "x")],
            &[(i64::MAX, 1.0)],
        )]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BadData(_)), "{err}");
    db.close().await.unwrap();
}

#[tokio::test]
async fn should_keep_colliding_label_sets_apart_and_ids_unique_across_restarts() {
    // Many distinct series: every one reads back with its own samples.
    let dir = tempfile::tempdir().unwrap();
    let t = now() - 1000;
    for round in 0..2 {
        let db = open_local(dir.path(), config()).await;
        let mut all = Vec::new();
        for i in 0..500 {
            let v = format!("{round}-{i}");
            all.push(series(
                &[("__name__", "s"), ("v", v.as_str())],
                &[(t, i as f64)],
            ));
        }
        db.write(batch(all)).await.unwrap();
        let got = read_all(&db, &[Matcher::equal("__name__", "s")]).await;
        assert_eq!(got.len(), 500 * (round + 1));
        for (labels, samples) in got {
            let v = labels.get("v").unwrap();
            let i: f64 = v.split('-').nth(1).unwrap().parse().unwrap();
            assert_eq!(samples, vec![(t, i.to_bits())], "{v}");
        }
        db.close().await.unwrap();
    }
}

#[tokio::test]
async fn should_let_a_replica_follow_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let storage = StorageConfig {
        replica_poll_interval_ms: 50,
        ..StorageConfig::local(dir.path())
    };
    let root = StorageRoot::new(storage).unwrap();
    let db = TimeSeriesDb::open_in(&root, config()).await.unwrap();
    let t = now() - 60_000;
    db.write(batch(vec![series(&[("__name__", "a")], &[(t, 1.0)])]))
        .await
        .unwrap();
    let replica = TimeSeriesDbReader::open_in(&root, config()).await.unwrap();
    let q = replica.querier();
    assert_eq!(
        q.series(&[], i64::MIN / 4, i64::MAX / 4, 0)
            .await
            .unwrap()
            .len(),
        1
    );
    db.write(batch(vec![series(&[("__name__", "b")], &[(t, 2.0)])]))
        .await
        .unwrap();
    db.flush_head().await.unwrap();
    db.write(batch(vec![series(
        &[("__name__", "a")],
        &[(t + 1000, 3.0)],
    )]))
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let got = q
            .select(&[], i64::MIN / 4, i64::MAX / 4)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let total: usize = got.iter().map(|s| s.samples.len()).sum();
        if got.len() == 2 && total == 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "replica saw {got:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    db.close().await.unwrap();
}

#[tokio::test]
async fn should_drop_buckets_older_than_retention() {
    let dir = tempfile::tempdir().unwrap();
    let t = now();
    {
        let db = open_local(
            dir.path(),
            TimeSeriesConfig {
                retention_secs: 6 * 3600,
                ..config()
            },
        )
        .await;
        db.write(batch(vec![
            series(&[("__name__", "old")], &[(t - 3 * HOUR, 1.0)]),
            series(&[("__name__", "new")], &[(t - 1000, 2.0)]),
        ]))
        .await
        .unwrap();
        db.maintain().await.unwrap(); // the old bucket closes into storage
        assert_eq!(db.querier().bucket_counts(), (1, 1));
        db.close().await.unwrap();
    }
    // Reopened with a shorter retention: the old bucket goes, whole.
    let db = open_local(
        dir.path(),
        TimeSeriesConfig {
            retention_secs: 3600,
            ..config()
        },
    )
    .await;
    db.maintain().await.unwrap();
    assert_eq!(db.querier().bucket_counts(), (1, 0));
    let got = read_all(&db, &[]).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.metric_name(), Some("new"));
    db.close().await.unwrap();
    let db = open_local(
        dir.path(),
        TimeSeriesConfig {
            retention_secs: 3600,
            ..config()
        },
    )
    .await;
    assert_eq!(
        read_all(&db, &[]).await.len(),
        1,
        "the dropped bucket stays dropped"
    );
    db.close().await.unwrap();
}

fn exemplar(trace: &str, value: f64, t: i64) -> Exemplar {
    Exemplar {
        labels: Labels::from_pairs([("trace_id", trace)]),
        value,
        timestamp_ms: t,
    }
}

async fn exemplars_of(q: &Querier, name: &str) -> Vec<(String, f64, i64)> {
    q.exemplars(
        &[Matcher::equal("__name__", name)],
        i64::MIN / 4,
        i64::MAX / 4,
        1000,
    )
    .await
    .unwrap()
    .into_iter()
    .flat_map(|s| s.exemplars)
    .map(|e| {
        (
            e.labels.get("trace_id").unwrap().to_string(),
            e.value,
            e.timestamp_ms,
        )
    })
    .collect()
}

#[tokio::test]
async fn should_store_exemplars_with_their_samples_bounded_and_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TimeSeriesConfig {
        max_exemplars_per_bucket: 3,
        ..config()
    };
    // Two minutes ago, with the next two seconds in the same hour bucket.
    let mut t = now() - 120_000;
    if (t + 2_000) / HOUR != t / HOUR {
        t -= 5_000;
    }
    {
        let db = open_local(dir.path(), cfg.clone()).await;
        let mut s = series(&[("__name__", "req_total")], &[(t, 1.0), (t + 1_000, 2.0)]);
        s.exemplars = vec![
            exemplar("aa", 1.0, t),
            // Over 128 characters of labels: refused alone.
            exemplar(&"x".repeat(130), 1.5, t + 500),
            exemplar("bb", 2.0, t + 1_000),
        ];
        // An exemplar for a series with no samples anywhere: refused.
        let mut lonely = series(&[("__name__", "lonely")], &[]);
        lonely.exemplars = vec![exemplar("cc", 3.0, t)];
        let out = db.write(batch(vec![s, lonely])).await.unwrap();
        assert_eq!(
            (out.samples, out.exemplars, out.exemplars_refused),
            (2, 2, 2)
        );
        // An exemplar-only series entry, as Prometheus sends them, for a known series.
        let mut only = series(&[("__name__", "req_total")], &[]);
        only.exemplars = vec![exemplar("dd", 2.5, t + 700)];
        let out = db.write(batch(vec![only.clone()])).await.unwrap();
        assert_eq!((out.exemplars, out.exemplars_refused), (1, 0));
        // The bucket's allowance (3) is used up.
        only.exemplars = vec![exemplar("ee", 2.6, t + 800)];
        let out = db.write(batch(vec![only])).await.unwrap();
        assert_eq!((out.exemplars, out.exemplars_refused), (0, 1));
        let got = exemplars_of(&db.querier(), "req_total").await;
        assert_eq!(
            got,
            [
                ("aa".to_string(), 1.0, t),
                ("dd".to_string(), 2.5, t + 700),
                ("bb".to_string(), 2.0, t + 1_000)
            ]
        );
        // A time range picks the exemplars inside it.
        let some = db
            .querier()
            .exemplars(
                &[Matcher::equal("__name__", "req_total")],
                t + 1,
                t + 1_000,
                1000,
            )
            .await
            .unwrap();
        assert_eq!(some[0].exemplars.len(), 2);
        // The limit cuts the answer.
        let cut = db
            .querier()
            .exemplars(&[], i64::MIN / 4, i64::MAX / 4, 2)
            .await
            .unwrap();
        assert_eq!(cut.iter().map(|s| s.exemplars.len()).sum::<usize>(), 2);
        assert!(exemplars_of(&db.querier(), "lonely").await.is_empty());
        db.close().await.unwrap();
    }
    // Reopened: the exemplars are there, and so is the count against the allowance.
    let db = open_local(dir.path(), cfg).await;
    assert_eq!(exemplars_of(&db.querier(), "req_total").await.len(), 3);
    let mut more = series(&[("__name__", "req_total")], &[(t + 2_000, 3.0)]);
    more.exemplars = vec![exemplar("ff", 3.0, t + 2_000)];
    let out = db.write(batch(vec![more])).await.unwrap();
    assert_eq!(
        (out.samples, out.exemplars, out.exemplars_refused),
        (1, 0, 1)
    );
    // After a flush of the head, the exemplars still read back.
    db.flush_head().await.unwrap();
    assert_eq!(exemplars_of(&db.querier(), "req_total").await.len(), 3);
    db.close().await.unwrap();
}

#[tokio::test]
async fn should_serve_exemplars_from_a_replica() {
    let dir = tempfile::tempdir().unwrap();
    let storage = StorageConfig {
        replica_poll_interval_ms: 50,
        ..StorageConfig::local(dir.path())
    };
    let root = StorageRoot::new(storage).unwrap();
    let db = TimeSeriesDb::open_in(&root, config()).await.unwrap();
    let t = now() - 60_000;
    let mut s = series(&[("__name__", "a")], &[(t, 1.0)]);
    s.exemplars = vec![exemplar("r1", 1.0, t)];
    db.write(batch(vec![s])).await.unwrap();
    let replica = TimeSeriesDbReader::open_in(&root, config()).await.unwrap();
    let mut s = series(&[("__name__", "a")], &[(t + 1_000, 2.0)]);
    s.exemplars = vec![exemplar("r2", 2.0, t + 1_000)];
    db.write(batch(vec![s])).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let got = exemplars_of(&replica.querier(), "a").await;
        if got.len() == 2 {
            assert_eq!(got[1], ("r2".to_string(), 2.0, t + 1_000));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "replica saw {got:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    db.close().await.unwrap();
}

#[tokio::test]
async fn should_write_a_zero_at_the_created_timestamp_when_the_feature_is_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = now() - 120_000;
    if (t + 2_000) / HOUR != t / HOUR || (t - 30_000) / HOUR != t / HOUR {
        t -= 40_000;
    }
    let with_ct = |name: &str, ct: i64, samples: &[(i64, f64)]| {
        let mut s = series(&[("__name__", name)], samples);
        s.created_timestamp_ms = Some(ct);
        s
    };
    // Off (the default): the created timestamp is ignored.
    {
        let db = open_local(dir.path(), config()).await;
        let out = db
            .write(batch(vec![with_ct("off_total", t - 30_000, &[(t, 5.0)])]))
            .await
            .unwrap();
        assert_eq!(out.samples, 1);
        let got = read_all(&db, &[Matcher::equal("__name__", "off_total")]).await;
        assert_eq!(got[0].1, vec![(t, 5f64.to_bits())]);
        db.close().await.unwrap();
    }
    let cfg = TimeSeriesConfig {
        enable_features: vec!["created-timestamp-zero-ingestion".into()],
        ..config()
    };
    let db = open_local(dir.path(), cfg.clone()).await;
    let out = db
        .write(batch(vec![with_ct(
            "req_total",
            t - 30_000,
            &[(t, 5.0), (t + 1_000, 6.0)],
        )]))
        .await
        .unwrap();
    // The zero sample is not one the client sent: not counted.
    assert_eq!((out.samples, out.out_of_bounds), (2, 0));
    let want = vec![
        (t - 30_000, 0f64.to_bits()),
        (t, 5f64.to_bits()),
        (t + 1_000, 6f64.to_bits()),
    ];
    let got = read_all(&db, &[Matcher::equal("__name__", "req_total")]).await;
    assert_eq!(got[0].1, want);
    // The same created timestamp again, with a later sample: the series already has
    // newer samples, so no second zero (nothing is overwritten).
    db.write(batch(vec![with_ct(
        "req_total",
        t - 30_000,
        &[(t + 2_000, 7.0)],
    )]))
    .await
    .unwrap();
    let got = read_all(&db, &[Matcher::equal("__name__", "req_total")]).await;
    assert_eq!(got[0].1.len(), 4);
    assert_eq!(got[0].1[1], (t, 5f64.to_bits()));
    // A created timestamp at or after the first sample, or past retention, is ignored
    // without refusing anything.
    let out = db
        .write(batch(vec![
            with_ct("late_total", t, &[(t, 1.0)]),
            with_ct("ancient_total", i64::MIN / 8, &[(t, 1.0)]),
        ]))
        .await
        .unwrap();
    assert_eq!((out.samples, out.out_of_bounds), (2, 0));
    assert_eq!(
        read_all(&db, &[Matcher::equal("__name__", "ancient_total")]).await[0].1,
        vec![(t, 1f64.to_bits())]
    );
    db.close().await.unwrap();
    // The zero sample is durable like the others.
    let db = open_local(dir.path(), cfg).await;
    let got = read_all(&db, &[Matcher::equal("__name__", "req_total")]).await;
    assert_eq!(got[0].1[0], (t - 30_000, 0f64.to_bits()));
    db.close().await.unwrap();
}

#[test]
fn should_refuse_an_unknown_feature() {
    let cfg = TimeSeriesConfig {
        enable_features: vec!["time-travel".into()],
        ..config()
    };
    let err = cfg.validate().unwrap_err();
    assert!(err.contains("unknown feature \"time-travel\""), "{err}");
    assert!(err.contains("created-timestamp-zero-ingestion"), "{err}");
}

fn hist(count: f64, schema: i32, buckets: &[(i32, f64)]) -> std::sync::Arc<FloatHistogram> {
    std::sync::Arc::new(FloatHistogram {
        schema,
        count,
        sum: count * 1.5,
        zero_threshold: 0.001,
        positive: buckets.to_vec(),
        ..Default::default()
    })
}

fn hseries(name: &str, samples: &[(i64, std::sync::Arc<FloatHistogram>)]) -> SeriesSamples {
    SeriesSamples {
        histograms: samples
            .iter()
            .map(|(t, h)| HistogramSample {
                timestamp_ms: *t,
                histogram: h.clone(),
            })
            .collect(),
        ..series(&[("__name__", name)], &[])
    }
}

async fn histograms_of(q: &Querier, name: &str) -> Vec<(i64, FloatHistogram)> {
    q.select(
        &[Matcher::equal("__name__", name)],
        i64::MIN / 4,
        i64::MAX / 4,
    )
    .await
    .unwrap()
    .collect()
    .await
    .unwrap()
    .into_iter()
    .flat_map(|s| s.histograms)
    .map(|h| (h.timestamp_ms, FloatHistogram::clone(&h.histogram)))
    .collect()
}

#[tokio::test]
async fn should_store_native_histograms_through_flushes_restarts_and_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let t = now() - 120_000;
    let h1 = hist(3.0, 3, &[(0, 1.0), (5, 2.0)]);
    let h2 = hist(7.0, 3, &[(0, 2.0), (5, 4.0), (9, 1.0)]);
    let h3 = hist(0.25, 3, &[(1, 0.25)]);
    let custom = std::sync::Arc::new(FloatHistogram {
        schema: CUSTOM_BUCKETS_SCHEMA,
        count: 4.0,
        sum: 9.0,
        positive: vec![(0, 1.0), (2, 3.0)],
        custom_values: std::sync::Arc::from(vec![1.0, 5.0]),
        ..Default::default()
    });
    {
        let db = open_local(dir.path(), config()).await;
        let out = db
            .write(batch(vec![
                hseries("h", &[(t, h1.clone()), (t + 15_000, h2.clone())]),
                hseries("c", &[(t, custom.clone())]),
            ]))
            .await
            .unwrap();
        assert_eq!(out.histograms, 3);
        assert_eq!(out.samples, 0);
        // Read from the head.
        let got = histograms_of(&db.querier(), "h").await;
        assert_eq!(got, vec![(t, (*h1).clone()), (t + 15_000, (*h2).clone())]);
        // Into chunks, then one more write in the head, and a float sample at another
        // timestamp of the same series.
        db.flush_head().await.unwrap();
        let mut mixed = hseries("h", &[(t + 30_000, h3.clone())]);
        mixed.samples = vec![Sample {
            timestamp_ms: t + 45_000,
            value: 5.0,
        }];
        db.write(batch(vec![mixed])).await.unwrap();
        let got = histograms_of(&db.querier(), "h").await;
        assert_eq!(got.len(), 3);
        assert_eq!(got[2], (t + 30_000, (*h3).clone()));
        // Closing does not flush the head: the last write comes back from its
        // write-ahead record on open.
        db.close().await.unwrap();
    }
    let db = open_local(dir.path(), config()).await;
    let q = db.querier();
    let got = histograms_of(&q, "h").await;
    assert_eq!(
        got,
        vec![
            (t, (*h1).clone()),
            (t + 15_000, (*h2).clone()),
            (t + 30_000, (*h3).clone())
        ]
    );
    assert_eq!(histograms_of(&q, "c").await, vec![(t, (*custom).clone())]);
    let floats = read_all(&db, &[Matcher::equal("__name__", "h")]).await;
    assert_eq!(floats[0].1, vec![(t + 45_000, 5.0f64.to_bits())]);
    // A replica reads the same.
    let root = StorageRoot::new(StorageConfig::local(dir.path())).unwrap();
    let replica = TimeSeriesDbReader::open_in(&root, config()).await.unwrap();
    assert_eq!(histograms_of(&replica.querier(), "h").await.len(), 3);
    // A histogram written at a float's timestamp replaces it in reads.
    db.write(batch(vec![hseries("h", &[(t + 45_000, h1.clone())])]))
        .await
        .unwrap();
    assert!(
        read_all(&db, &[Matcher::equal("__name__", "h")]).await[0]
            .1
            .is_empty()
    );
    db.close().await.unwrap();
}

#[tokio::test]
async fn should_refuse_invalid_histograms_whole() {
    let db = TimeSeriesDb::open(Config {
        storage: StorageConfig::in_memory(),
        timeseries: config(),
    })
    .await
    .unwrap();
    let bad = std::sync::Arc::new(FloatHistogram {
        schema: 9,
        count: 1.0,
        ..Default::default()
    });
    let err = db
        .write(batch(vec![hseries("h", &[(now(), bad)])]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::BadData(m) if m.contains("schema 9")),
        "{err}"
    );
    assert!(histograms_of(&db.querier(), "h").await.is_empty());
    db.close().await.unwrap();
}
