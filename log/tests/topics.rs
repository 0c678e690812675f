//! Topics: dense offsets, Kafka attributes, idempotent producers, group offsets and
//! retention, end to end on real storage.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use bytes::Bytes;
use opendata_common::{Durability, StorageConfig, StorageRoot};
use opendata_log::{
    Error, GroupOffset, LogConfig, LogDb, LogDbReader, LogRead, PartitionRecord, ProducerBatch,
    Record, RecordAttrs,
};

fn precord(value: &str, key: Option<&str>, ts: Option<i64>) -> PartitionRecord {
    PartitionRecord {
        value: Bytes::copy_from_slice(value.as_bytes()),
        attrs: RecordAttrs {
            timestamp_ms: ts,
            key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            headers: vec![(Bytes::from("h"), Some(Bytes::from(value.to_string())))],
            null_value: false,
        },
    }
}

async fn all<R: LogRead>(
    r: &R,
    topic: &str,
    p: u32,
    from: u64,
) -> Vec<(u64, String, Option<RecordAttrs>)> {
    let mut out = Vec::new();
    let mut next = from;
    loop {
        let chunks = r.read_partition(topic, p, next, 1 << 20).await.unwrap();
        if chunks.is_empty() {
            return out;
        }
        for c in chunks {
            for (i, v) in c.values.iter().enumerate() {
                let a = c.attrs.as_ref().map(|a| a[i].clone());
                out.push((
                    c.base_offset + i as u64,
                    String::from_utf8(v.to_vec()).unwrap(),
                    a,
                ));
            }
            next = c.base_offset + c.values.len() as u64;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_give_dense_offsets_to_produced_and_plain_appends_alike() {
    let root = StorageRoot::new(StorageConfig::in_memory()).unwrap();
    let db = LogDb::open_in(&root, LogConfig::default()).await.unwrap();
    db.create_topic("orders", 2, BTreeMap::new()).await.unwrap();
    let r = db
        .produce(
            "orders",
            0,
            vec![
                precord("a", Some("k1"), Some(5)),
                precord("b", None, Some(7)),
            ],
            None,
            Durability::Remote,
        )
        .await
        .unwrap();
    assert_eq!(r.base_offset, 0);
    // Another key in between takes global sequences, not partition offsets.
    db.append(vec![Record {
        key: Bytes::from("other"),
        value: Bytes::from("x"),
    }])
    .await
    .unwrap();
    // A plain append to the partition's key gets the next offset.
    db.append(vec![Record {
        key: Bytes::from("orders/0"),
        value: Bytes::from("c"),
    }])
    .await
    .unwrap();
    let r = db
        .produce(
            "orders",
            0,
            vec![precord("d", None, None)],
            None,
            Durability::Remote,
        )
        .await
        .unwrap();
    assert_eq!(r.base_offset, 3);
    let got = all(&db, "orders", 0, 0).await;
    let values: Vec<(u64, &str)> = got.iter().map(|(o, v, _)| (*o, v.as_str())).collect();
    assert_eq!(values, vec![(0, "a"), (1, "b"), (2, "c"), (3, "d")]);
    assert_eq!(got[0].2.as_ref().unwrap().key, Some(Bytes::from("k1")));
    assert_eq!(got[0].2.as_ref().unwrap().timestamp_ms, Some(5));
    assert!(got[2].2.is_none(), "a plain append has no attributes");
    // Reading from the middle of a chunk starts at that offset.
    let tail = all(&db, "orders", 0, 1).await;
    assert_eq!(tail.first().unwrap().0, 1);
    assert_eq!(
        db.partition_offsets("orders", 0).await.unwrap(),
        Some((0, 4))
    );
    assert_eq!(
        db.partition_offsets("orders", 1).await.unwrap(),
        Some((0, 0))
    );
    assert_eq!(db.partition_offsets("orders", 2).await.unwrap(), None);
    // By time: the first record at or after the timestamp.
    assert_eq!(
        db.offset_for_time("orders", 0, 6).await.unwrap(),
        Some((1, 7))
    );
    // The same data through the plain log API.
    let mut it = db.scan(Bytes::from("orders/0"), ..).await.unwrap();
    let mut n = 0;
    while it.next().await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 4);

    // Offsets continue after a restart, and a replica reads the same.
    db.close().await.unwrap();
    let db = LogDb::open_in(&root, LogConfig::default()).await.unwrap();
    let r = db
        .produce(
            "orders",
            0,
            vec![precord("e", None, None)],
            None,
            Durability::Remote,
        )
        .await
        .unwrap();
    assert_eq!(r.base_offset, 4);
    let replica = LogDbReader::open_in(&root).await.unwrap();
    assert_eq!(replica.list_topics().await.unwrap()["orders"].partitions, 2);
    assert_eq!(all(&replica, "orders", 0, 0).await.len(), 5);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_drop_idempotent_retries_and_refuse_gaps_across_restarts() {
    let root = StorageRoot::new(StorageConfig::in_memory()).unwrap();
    let db = LogDb::open_in(&root, LogConfig::default()).await.unwrap();
    db.create_topic("t", 1, BTreeMap::new()).await.unwrap();
    let id = db.init_producer_id().await.unwrap();
    let batch = |seq| {
        Some(ProducerBatch {
            producer_id: id,
            epoch: 0,
            base_sequence: seq,
        })
    };
    let recs = |n: usize| {
        (0..n)
            .map(|i| precord(&format!("v{i}"), None, None))
            .collect::<Vec<_>>()
    };
    let first = db
        .produce("t", 0, recs(3), batch(0), Durability::Remote)
        .await
        .unwrap();
    assert!(!first.duplicate);
    let second = db
        .produce("t", 0, recs(2), batch(3), Durability::Remote)
        .await
        .unwrap();
    assert_eq!(second.base_offset, 3);
    db.close().await.unwrap();

    let db = LogDb::open_in(&root, LogConfig::default()).await.unwrap();
    // The retry of a written batch is recognised after the restart.
    let retry = db
        .produce("t", 0, recs(2), batch(3), Durability::Remote)
        .await
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.base_offset, 3);
    assert_eq!(db.partition_offsets("t", 0).await.unwrap(), Some((0, 5)));
    // A gap is refused; the next batch is accepted.
    let gap = db
        .produce("t", 0, recs(1), batch(9), Durability::Remote)
        .await;
    assert!(
        matches!(gap, Err(Error::OutOfOrderSequence { .. })),
        "{gap:?}"
    );
    db.produce("t", 0, recs(1), batch(5), Durability::Remote)
        .await
        .unwrap();
    // An older epoch is fenced once a newer one wrote.
    db.produce(
        "t",
        0,
        recs(1),
        Some(ProducerBatch {
            producer_id: id,
            epoch: 1,
            base_sequence: 0,
        }),
        Durability::Remote,
    )
    .await
    .unwrap();
    let fenced = db
        .produce("t", 0, recs(1), batch(6), Durability::Remote)
        .await;
    assert!(
        matches!(fenced, Err(Error::ProducerFenced { .. })),
        "{fenced:?}"
    );
    // A new producer id is never reused.
    assert!(db.init_producer_id().await.unwrap() > id);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_manage_topics_and_group_offsets() {
    let root = StorageRoot::new(StorageConfig::in_memory()).unwrap();
    let db = LogDb::open_in(&root, LogConfig::default()).await.unwrap();
    assert!(matches!(
        db.create_topic("bad/name", 1, BTreeMap::new()).await,
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        db.create_topic("t", 0, BTreeMap::new()).await,
        Err(Error::InvalidInput(_))
    ));
    db.create_topic(
        "t",
        1,
        BTreeMap::from([("retention.ms".into(), "1000".into())]),
    )
    .await
    .unwrap();
    assert!(matches!(
        db.create_topic("t", 1, BTreeMap::new()).await,
        Err(Error::AlreadyExists(_))
    ));
    // A key written outside a topic cannot be adopted silently.
    db.append(vec![Record {
        key: Bytes::from("busy/0"),
        value: Bytes::from("x"),
    }])
    .await
    .unwrap();
    assert!(matches!(
        db.create_topic("busy", 1, BTreeMap::new()).await,
        Err(Error::InvalidInput(_))
    ));

    db.create_partitions("t", 3).await.unwrap();
    assert!(db.create_partitions("t", 2).await.is_err());
    db.produce(
        "t",
        2,
        vec![precord("p2", None, None)],
        None,
        Durability::Remote,
    )
    .await
    .unwrap();
    assert!(matches!(
        db.produce(
            "t",
            3,
            vec![precord("x", None, None)],
            None,
            Durability::Remote
        )
        .await,
        Err(Error::NotFound(_))
    ));

    let offsets = vec![GroupOffset {
        topic: "t".into(),
        partition: 2,
        offset: 1,
        leader_epoch: -1,
        metadata: "m".into(),
        commit_ms: 9,
    }];
    db.commit_group_offsets("g", &offsets, Durability::Remote)
        .await
        .unwrap();
    assert_eq!(db.group_offsets("g").await.unwrap(), offsets);
    assert_eq!(db.list_groups().await.unwrap(), vec!["g".to_string()]);
    let replica = LogDbReader::open_in(&root).await.unwrap();
    assert_eq!(replica.group_offsets("g").await.unwrap(), offsets);

    db.delete_topic("t").await.unwrap();
    assert!(db.list_topics().await.unwrap().is_empty());
    assert!(
        db.group_offsets("g").await.unwrap().is_empty(),
        "offsets of a deleted topic go too"
    );
    assert_eq!(db.count(Bytes::from("t/2"), ..).await.unwrap(), 0);
    // The name can be used again, from offset 0.
    db.create_topic("t", 1, BTreeMap::new()).await.unwrap();
    let r = db
        .produce(
            "t",
            0,
            vec![precord("again", None, None)],
            None,
            Durability::Remote,
        )
        .await
        .unwrap();
    assert_eq!(r.base_offset, 0);
    assert_eq!(db.delete_group_offsets("g").await.unwrap(), 0);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_advance_the_log_start_offset_when_retention_drops_segments() {
    let root = StorageRoot::new(StorageConfig::in_memory()).unwrap();
    let config = LogConfig {
        seal_bytes: 500,
        retention_bytes: 1500,
        retention_check_secs: 3600,
        ..Default::default()
    };
    let db = LogDb::open_in(&root, config).await.unwrap();
    db.create_topic("t", 1, BTreeMap::new()).await.unwrap();
    let payload = "y".repeat(97);
    for _ in 0..60 {
        db.produce(
            "t",
            0,
            vec![precord(&payload, None, None)],
            None,
            Durability::Remote,
        )
        .await
        .unwrap();
    }
    let dropped = db.enforce_retention().await.unwrap();
    assert!(!dropped.is_empty());
    let (start, end) = db.partition_offsets("t", 0).await.unwrap().unwrap();
    assert_eq!(end, 60, "the end offset survives retention");
    assert!(start > 0, "the log start offset moved");
    let got = all(&db, "t", 0, start).await;
    assert_eq!(got.first().unwrap().0, start);
    assert_eq!(got.last().unwrap().0, 59);
    assert!(
        got.windows(2).all(|w| w[1].0 == w[0].0 + 1),
        "dense after the start"
    );
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_apply_a_topics_own_retention_bytes_and_ms() {
    let root = StorageRoot::new(StorageConfig::in_memory()).unwrap();
    let db = LogDb::open_in(
        &root,
        LogConfig {
            retention_check_secs: 3600,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    db.create_topic(
        "small",
        1,
        BTreeMap::from([("retention.bytes".into(), "250".into())]),
    )
    .await
    .unwrap();
    db.create_topic(
        "short",
        1,
        BTreeMap::from([("retention.ms".into(), "0".into())]),
    )
    .await
    .unwrap();
    db.create_topic("all", 1, BTreeMap::new()).await.unwrap();
    let payload = "z".repeat(100);
    for t in ["small", "short", "all"] {
        for _ in 0..5 {
            db.produce(
                t,
                0,
                vec![precord(&payload, None, None)],
                None,
                Durability::Remote,
            )
            .await
            .unwrap();
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    db.enforce_retention().await.unwrap();
    // 250 bytes keep the newest two records of 100 bytes.
    assert_eq!(
        db.partition_offsets("small", 0).await.unwrap(),
        Some((3, 5))
    );
    // Everything expired but the newest chunk, which keeps the end readable.
    assert_eq!(
        db.partition_offsets("short", 0).await.unwrap(),
        Some((4, 5))
    );
    assert_eq!(db.partition_offsets("all", 0).await.unwrap(), Some((0, 5)));
    assert_eq!(all(&db, "small", 0, 3).await.len(), 2);
    db.close().await.unwrap();
}
