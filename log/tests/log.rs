//! The log database's Rust API, end to end on real storage.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use opendata_common::{Durability, StorageConfig, StorageRoot};
use opendata_log::{
    AppendOptions, Condition, Config, Error, LogConfig, LogDb, LogDbReader, LogFollower, LogRead,
    Record,
};

fn rec(key: &str, value: &str) -> Record {
    Record {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Bytes::copy_from_slice(value.as_bytes()),
    }
}

async fn open_memory(log: LogConfig) -> (StorageRoot, LogDb) {
    let root = StorageRoot::new(StorageConfig::in_memory()).unwrap();
    let db = LogDb::open_in(&root, log).await.unwrap();
    (root, db)
}

async fn values<R: LogRead>(
    r: &R,
    key: &str,
    range: impl std::ops::RangeBounds<u64>,
) -> Vec<(u64, String)> {
    let mut iter = r
        .scan(Bytes::copy_from_slice(key.as_bytes()), range)
        .await
        .unwrap();
    let mut out = Vec::new();
    while let Some(e) = iter.next().await.unwrap() {
        out.push((e.sequence, String::from_utf8(e.value.to_vec()).unwrap()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_append_and_scan_each_key_as_its_own_log() {
    let (_root, db) = open_memory(LogConfig::default()).await;
    let seqs = db
        .append(vec![rec("a", "a1"), rec("b", "b1"), rec("a", "a2")])
        .await
        .unwrap();
    assert_eq!(seqs, vec![0, 1, 2]);
    let more = db.append(vec![rec("b", "b2")]).await.unwrap();
    assert!(more[0] > seqs[2]);
    assert_eq!(
        values(&db, "a", ..).await,
        vec![(0, "a1".into()), (2, "a2".into())]
    );
    assert_eq!(
        values(&db, "b", ..).await,
        vec![(1, "b1".into()), (more[0], "b2".into())]
    );
    assert_eq!(values(&db, "a", 1..).await, vec![(2, "a2".into())]);
    assert_eq!(values(&db, "a", ..2).await, vec![(0, "a1".into())]);
    assert!(values(&db, "missing", ..).await.is_empty());
    assert_eq!(db.count(Bytes::from("a"), ..).await.unwrap(), 2);
    assert_eq!(db.count(Bytes::from("b"), 2..).await.unwrap(), 1);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_keep_binary_keys_apart_from_their_prefixes() {
    let (_root, db) = open_memory(LogConfig::default()).await;
    let keys: Vec<Bytes> = vec![
        Bytes::from_static(b"k"),
        Bytes::from_static(b"k\0"),
        Bytes::from_static(b"k\0\xff"),
        Bytes::from_static(b"k\x01"),
    ];
    for (i, k) in keys.iter().enumerate() {
        db.append(vec![Record {
            key: k.clone(),
            value: Bytes::from(i.to_string()),
        }])
        .await
        .unwrap();
    }
    for (i, k) in keys.iter().enumerate() {
        let got = db
            .scan(k.clone(), ..)
            .await
            .unwrap()
            .collect(10)
            .await
            .unwrap();
        assert_eq!(got.len(), 1, "key {k:?}");
        assert_eq!(got[0].value, Bytes::from(i.to_string()));
    }
    let page = db.list_keys(b"k\0", None, 10).await.unwrap();
    assert_eq!(
        page.keys.iter().map(|k| k.key.clone()).collect::<Vec<_>>(),
        keys[1..3].to_vec()
    );
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_page_through_keys_without_loading_them_all() {
    let (_root, db) = open_memory(LogConfig::default()).await;
    let mut records = Vec::new();
    for i in 0..250 {
        records.push(rec(&format!("user-{i:04}"), "x"));
    }
    records.push(rec("other", "x"));
    db.append(records).await.unwrap();
    let mut all = Vec::new();
    let mut after: Option<Bytes> = None;
    loop {
        let page = db.list_keys(b"user-", after.as_deref(), 100).await.unwrap();
        assert!(page.keys.len() <= 100);
        all.extend(page.keys.iter().map(|k| k.key.clone()));
        match page.next_after {
            Some(a) => after = Some(a),
            None => break,
        }
    }
    assert_eq!(all.len(), 250);
    assert!(all.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(all[0], Bytes::from("user-0000"));
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_reject_conflicting_conditional_appends_and_write_nothing() {
    let (_root, db) = open_memory(LogConfig::default()).await;
    let cond = |last| AppendOptions {
        condition: Some(Condition {
            key: Bytes::from("k"),
            last_sequence: last,
        }),
        ..Default::default()
    };
    let first = db
        .append_with(vec![rec("k", "1")], cond(None))
        .await
        .unwrap();
    let err = db
        .append_with(vec![rec("k", "dup")], cond(None))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    let second = db
        .append_with(vec![rec("k", "2")], cond(Some(first.sequences[0])))
        .await
        .unwrap();
    let err = db
        .append_with(vec![rec("k", "stale")], cond(Some(first.sequences[0])))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("last sequence {}", second.sequences[0])),
        "{err}"
    );
    assert_eq!(
        values(&db, "k", ..)
            .await
            .iter()
            .map(|v| v.1.clone())
            .collect::<Vec<_>>(),
        vec!["1", "2"]
    );

    // Racing producers: exactly one wins each round.
    let mut last = second.sequences[0];
    for _ in 0..5 {
        let a = db.append_with(vec![rec("k", "a")], cond(Some(last)));
        let b = db.append_with(vec![rec("k", "b")], cond(Some(last)));
        let (a, b) = tokio::join!(a, b);
        assert!(a.is_ok() ^ b.is_ok(), "exactly one must win");
        last = a.or(b).unwrap().sequences[0];
    }
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_reject_bad_input_without_touching_stored_data() {
    let (_root, db) = open_memory(LogConfig {
        max_key_bytes: 8,
        max_value_bytes: 16,
        max_records_per_append: 3,
        ..Default::default()
    })
    .await;
    db.append(vec![rec("k", "ok")]).await.unwrap();
    for (records, needle) in [
        (vec![], "at least one record"),
        (vec![rec("", "x")], "key must not be empty"),
        (vec![rec("123456789", "x")], "key is 9 bytes"),
        (
            vec![rec("k", "x"), rec("k", "12345678901234567")],
            "record 1: value is 17 bytes",
        ),
        (
            vec![rec("k", "1"), rec("k", "2"), rec("k", "3"), rec("k", "4")],
            "maximum is 3",
        ),
    ] {
        let err = db.append(records).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err}");
        assert!(err.to_string().contains(needle), "{err} lacks {needle}");
    }
    assert_eq!(values(&db, "k", ..).await, vec![(0, "ok".into())]);
    let (hi, lo) = (5u64, 2u64);
    assert!(db.scan(Bytes::from("k"), hi..lo).await.is_err());
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_seal_segments_by_size_and_scan_across_them() {
    let (_root, db) = open_memory(LogConfig {
        seal_bytes: 100,
        ..Default::default()
    })
    .await;
    let mut expected = Vec::new();
    for i in 0..30 {
        let v = format!("value-{i:03}-padding-padding");
        let seq = db.append(vec![rec("k", &v)]).await.unwrap()[0];
        expected.push((seq, v));
    }
    let segments = db.list_segments().await.unwrap();
    assert!(segments.len() > 3, "{segments:?}");
    assert!(
        segments
            .windows(2)
            .all(|w| w[0].end_sequence == Some(w[1].start_sequence))
    );
    assert_eq!(segments.last().unwrap().end_sequence, None);
    assert_eq!(values(&db, "k", ..).await, expected);
    let mid = expected[10].0;
    assert_eq!(values(&db, "k", mid..).await, expected[10..].to_vec());
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_drop_whole_segments_by_size_retention() {
    let (_root, db) = open_memory(LogConfig {
        seal_bytes: 1000,
        retention_bytes: 3000,
        retention_check_secs: 3600,
        ..Default::default()
    })
    .await;
    let payload = "x".repeat(99);
    for _ in 0..100 {
        db.append(vec![rec("k", &payload)]).await.unwrap();
    }
    let before = db.list_segments().await.unwrap();
    let dropped = db.enforce_retention().await.unwrap();
    assert!(!dropped.is_empty());
    let after = db.list_segments().await.unwrap();
    // Every segment was kept or dropped; retention may also have sealed the full
    // current segment, opening one new, empty segment.
    assert!(
        before
            .iter()
            .all(|s| dropped.contains(&s.id) ^ after.iter().any(|a| a.id == s.id))
    );
    assert!(
        after
            .iter()
            .filter(|a| !before.iter().any(|b| b.id == a.id))
            .count()
            <= 1
    );
    let remaining = db.count(Bytes::from("k"), ..).await.unwrap();
    assert!(remaining * 100 <= 3000 + 1000, "{remaining} entries remain");
    assert!(remaining > 0);
    // The oldest remaining entry starts where the oldest remaining segment does.
    let first = db
        .scan(Bytes::from("k"), ..)
        .await
        .unwrap()
        .next()
        .await
        .unwrap()
        .unwrap();
    assert!(first.sequence >= after[0].start_sequence);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_drop_expired_segments_by_time_retention_and_forget_their_keys() {
    let (_root, db) = open_memory(LogConfig {
        seal_interval_secs: 1,
        retention_secs: 1,
        retention_check_secs: 3600,
        ..Default::default()
    })
    .await;
    db.append(vec![rec("old", "1")]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    db.append(vec![rec("new", "2")]).await.unwrap();
    assert_eq!(db.list_segments().await.unwrap().len(), 2);
    // The first segment's newest entry is older than the second's start, which is
    // not yet a second old.
    assert!(db.enforce_retention().await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(db.enforce_retention().await.unwrap(), vec![0]);
    assert!(values(&db, "old", ..).await.is_empty());
    assert_eq!(values(&db, "new", ..).await.len(), 1);
    let keys = db.list_keys(b"", None, 10).await.unwrap();
    assert_eq!(
        keys.keys.iter().map(|k| k.key.clone()).collect::<Vec<_>>(),
        vec![Bytes::from("new")]
    );
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_scan_from_a_timestamp() {
    let (_root, db) = open_memory(LogConfig::default()).await;
    let first = db
        .append_with(vec![rec("k", "early")], AppendOptions::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = db
        .append_with(vec![rec("k", "late")], AppendOptions::default())
        .await
        .unwrap();
    assert!(second.timestamp_ms > first.timestamp_ms);
    let got = db
        .scan_from_time(Bytes::from("k"), second.timestamp_ms, ..)
        .await
        .unwrap()
        .collect(10)
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].value, Bytes::from("late"));
    assert_eq!(got[0].timestamp_ms, second.timestamp_ms);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_wake_followers_without_polling() {
    let (_root, db) = open_memory(LogConfig::default()).await;
    let mut follower = LogFollower::new(db.clone(), Bytes::from("k"), 0);
    let empty = follower
        .next_batch(10, Duration::from_millis(50))
        .await
        .unwrap();
    assert!(empty.is_empty());
    let writer = db.clone();
    let task = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        writer
            .append(vec![rec("other", "x"), rec("k", "hello")])
            .await
            .unwrap()
    });
    let started = std::time::Instant::now();
    let got = follower
        .next_batch(10, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].value, Bytes::from("hello"));
    assert!(started.elapsed() < Duration::from_secs(5));
    let seqs = task.await.unwrap();
    assert_eq!(follower.position(), seqs[1] + 1);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_continue_sequences_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        storage: StorageConfig::local(dir.path()),
        log: LogConfig::default(),
    };
    let db = LogDb::open(config.clone()).await.unwrap();
    let a = db.append(vec![rec("k", "1"), rec("k", "2")]).await.unwrap();
    db.close().await.unwrap();
    let db = LogDb::open(config.clone()).await.unwrap();
    let b = db.append(vec![rec("k", "3")]).await.unwrap();
    // A clean close gives back the unused block, so sequences continue.
    assert_eq!(b[0], a[1] + 1);
    // Without a clean close, sequences skip ahead but never repeat.
    db.flush().await.unwrap();
    drop(db);
    let db = LogDb::open(config).await.unwrap();
    let c = db.append(vec![rec("k", "4")]).await.unwrap();
    assert!(c[0] > b[0]);
    assert_eq!(
        values(&db, "k", ..)
            .await
            .iter()
            .map(|v| v.1.as_str())
            .collect::<Vec<_>>(),
        vec!["1", "2", "3", "4"]
    );
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_let_a_replica_follow_durable_appends() {
    let mut storage = StorageConfig::in_memory();
    storage.replica_poll_interval_ms = 50;
    let root = StorageRoot::new(storage).unwrap();
    let db = LogDb::open_in(&root, LogConfig::default()).await.unwrap();
    db.append(vec![rec("k", "1")]).await.unwrap();
    let replica = LogDbReader::open_in(&root).await.unwrap();
    assert_eq!(values(&replica, "k", ..).await.len(), 1);
    let mut follower = LogFollower::new(replica.clone(), Bytes::from("k"), 1);
    db.append_with(
        vec![rec("k", "2")],
        AppendOptions {
            durability: Durability::Remote,
            condition: None,
        },
    )
    .await
    .unwrap();
    let got = follower
        .next_batch(10, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].value, Bytes::from("2"));
    assert_eq!(replica.list_segments().await.unwrap().len(), 1);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_acknowledge_memory_durability_appends() {
    let (_root, db) = open_memory(LogConfig::default()).await;
    let r = db
        .append_with(
            vec![rec("k", "fast")],
            AppendOptions {
                durability: Durability::Memory,
                condition: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        values(&db, "k", ..).await,
        vec![(r.sequences[0], "fast".into())]
    );
    db.flush().await.unwrap();
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_split_large_appends_into_chunks_and_scan_inside_them() {
    let (_root, db) = open_memory(LogConfig::default()).await;
    // 10,000 records in one append: more than one chunk's worth for "big"; interleaved
    // with another key so sequences of "big" are not contiguous.
    let records: Vec<Record> = (0..10_000)
        .map(|i| {
            if i % 10 == 3 {
                rec("other", &format!("o{i}"))
            } else {
                rec("big", &format!("v{i}"))
            }
        })
        .collect();
    let seqs = db.append(records).await.unwrap();
    let big: Vec<u64> = (0..10_000)
        .filter(|i| i % 10 != 3)
        .map(|i| seqs[i])
        .collect();
    assert_eq!(db.count(Bytes::from("big"), ..).await.unwrap(), 9_000);
    assert_eq!(db.count(Bytes::from("other"), ..).await.unwrap(), 1_000);
    // A range that starts and ends inside chunks, on sequences of the other key.
    let from = seqs[4_003];
    let to = seqs[6_003];
    let got = values(&db, "big", from..to).await;
    let expected: Vec<u64> = big
        .iter()
        .copied()
        .filter(|s| *s >= from && *s < to)
        .collect();
    assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), expected);
    assert_eq!(got[0].1, "v4004");
    assert_eq!(
        db.count(Bytes::from("big"), from..to).await.unwrap(),
        expected.len() as u64
    );
    let keys = db.list_keys(b"", None, 10).await.unwrap();
    assert_eq!(keys.keys[0].last_sequence, *big.last().unwrap());
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_expire_an_idle_log_without_new_appends() {
    let (_root, db) = open_memory(LogConfig {
        seal_interval_secs: 1,
        retention_secs: 1,
        retention_check_secs: 3600,
        ..Default::default()
    })
    .await;
    db.append(vec![rec("quiet", "1")]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Nothing appended since: retention seals the old open segment itself...
    assert!(db.enforce_retention().await.unwrap().is_empty());
    assert_eq!(db.list_segments().await.unwrap().len(), 2);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // ...and drops it once its successor is older than the retention period.
    assert_eq!(db.enforce_retention().await.unwrap(), vec![0]);
    assert!(values(&db, "quiet", ..).await.is_empty());
    assert!(db.list_keys(b"", None, 10).await.unwrap().keys.is_empty());
    // Appends keep working in the fresh segment.
    let seq = db.append(vec![rec("quiet", "2")]).await.unwrap()[0];
    assert_eq!(values(&db, "quiet", ..).await, vec![(seq, "2".to_string())]);
    db.close().await.unwrap();
}

/// Entries through `load` and `drain_loaded`, taking at most `take` per drain call.
async fn drained(mut iter: opendata_log::LogIterator, take: usize) -> Vec<(u64, u64, Vec<u8>)> {
    let mut out = Vec::new();
    while iter.load().await.unwrap() {
        let mut n = 0;
        iter.drain_loaded(|seq, ts, payload| {
            out.push((seq, ts, payload.to_vec()));
            n += 1;
            n < take
        })
        .unwrap();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_drain_loaded_chunks_as_next_returns_entries() {
    let (_root, db) = open_memory(LogConfig::default()).await;
    let key = Bytes::from_static(b"k");
    let mut seqs = Vec::new();
    let mut times = Vec::new();
    for batch in 0..12 {
        // Chunks of one to four entries, interleaved with another key's, at
        // increasing append times.
        let records = (0..(batch % 4 + 1))
            .flat_map(|i| [rec("k", &format!("v{batch}-{i}")), rec("other", "x")])
            .collect();
        seqs.extend(db.append(records).await.unwrap());
        tokio::time::sleep(Duration::from_millis(3)).await;
        let mut it = db.scan(key.clone(), ..).await.unwrap();
        while let Some(e) = it.next().await.unwrap() {
            times.push(e.timestamp_ms);
        }
    }
    times.sort_unstable();
    times.dedup();
    let (first, last) = (seqs[0], *seqs.last().unwrap());
    let bounds: Vec<u64> = (first..=last + 1).step_by(3).collect();
    for &lo in &bounds {
        for &hi in bounds.iter().filter(|h| **h >= lo) {
            let mut expected = Vec::new();
            let mut it = db.scan(key.clone(), lo..hi).await.unwrap();
            while let Some(e) = it.next().await.unwrap() {
                expected.push((e.sequence, e.timestamp_ms, e.value.to_vec()));
            }
            for take in [1, 2, usize::MAX] {
                let got = drained(db.scan(key.clone(), lo..hi).await.unwrap(), take).await;
                assert_eq!(got, expected, "range {lo}..{hi}, {take} per drain");
            }
        }
    }
    for &t in &times {
        let mut expected = Vec::new();
        let mut it = db.scan_from_time(key.clone(), t, ..).await.unwrap();
        while let Some(e) = it.next().await.unwrap() {
            expected.push((e.sequence, e.timestamp_ms, e.value.to_vec()));
        }
        assert!(!expected.is_empty() && expected.iter().all(|e| e.1 >= t));
        let got = drained(db.scan_from_time(key.clone(), t, ..).await.unwrap(), 2).await;
        assert_eq!(got, expected, "from time {t}");
    }
}
