//! Storage tests run against every object store: memory, a local directory and the S3
//! emulator that `scripts/test.sh` starts.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use opendata_common::keys::{KeyPrefix, RecordType, Subsystem};
use opendata_common::merge::{I64Add, MergeRouter, RoaringUnion};
use opendata_common::segment::{drop_segment, list_segments};
use opendata_common::sequence::SequenceAllocator;
use opendata_common::storage::{Durability, StorageRoot, WriteOps};
use opendata_common::{Error, StorageConfig};
use roaring::RoaringBitmap;

const P: KeyPrefix = KeyPrefix::new(Subsystem::Log, 1);
const DATA: RecordType = RecordType::new(0x01);
const BITMAP: RecordType = RecordType::new(0x02);
const COUNTER: RecordType = RecordType::new(0x03);
const SEQ: RecordType = RecordType::new(0x04);

fn router() -> MergeRouter {
    MergeRouter::new()
        .route(Subsystem::Log, BITMAP, RoaringUnion)
        .route(Subsystem::Log, COUNTER, I64Add)
}

struct Backend {
    name: &'static str,
    config: StorageConfig,
    _dir: Option<tempfile::TempDir>,
}

fn backends(test: &str) -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let mut out = vec![
        Backend {
            name: "memory",
            config: StorageConfig::in_memory(),
            _dir: None,
        },
        Backend {
            name: "local",
            config: StorageConfig::local(dir.path()),
            _dir: Some(dir),
        },
    ];
    if let Some(config) = opendata_testing::s3_config(test) {
        out.push(Backend {
            name: "s3",
            config,
            _dir: None,
        });
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_write_merge_and_reopen_on_every_store() {
    for backend in backends("reopen") {
        let root = StorageRoot::new(backend.config.clone()).unwrap();
        let storage = root.open_writer("db", Some(router())).await.unwrap();
        let mut ops = WriteOps::new();
        for i in 0..100u64 {
            ops.put(
                P.segmented(0, DATA).u64(i).build(),
                Bytes::from(format!("v{i}")),
            );
        }
        let bm: RoaringBitmap = [1u32, 5].into_iter().collect();
        ops.merge(P.record(BITMAP).build(), RoaringUnion::encode(&bm));
        ops.merge(P.record(COUNTER).build(), I64Add::encode(5));
        storage.write(ops, Durability::Remote).await.unwrap();
        let mut ops = WriteOps::new();
        let bm: RoaringBitmap = [7u32].into_iter().collect();
        ops.merge(P.record(BITMAP).build(), RoaringUnion::encode(&bm));
        ops.merge(P.record(COUNTER).build(), I64Add::encode(-2));
        storage.write(ops, Durability::Remote).await.unwrap();
        storage.close().await.unwrap();

        // The in-memory store is shared by every database opened from one root, so it
        // reopens too.
        let storage = root.open_writer("db", Some(router())).await.unwrap();
        let reader = storage.reader();
        let got = reader
            .get(&P.segmented(0, DATA).u64(42).build())
            .await
            .unwrap();
        assert_eq!(got.as_deref(), Some(&b"v42"[..]), "{}", backend.name);
        let bitmap = RoaringUnion::decode(
            &reader
                .get(&P.record(BITMAP).build())
                .await
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            bitmap.iter().collect::<Vec<_>>(),
            vec![1, 5, 7],
            "{}",
            backend.name
        );
        let counter = I64Add::decode(
            &reader
                .get(&P.record(COUNTER).build())
                .await
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(counter, 3, "{}", backend.name);
        let mut iter = reader.scan_prefix(&P.segment_prefix(0)).await.unwrap();
        let mut n = 0;
        while iter.next().await.unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 100, "{}", backend.name);
        storage.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_coalesce_concurrent_writers_into_few_writes() {
    for backend in backends("group-commit") {
        let root = StorageRoot::new(backend.config.clone()).unwrap();
        let storage = root.open_writer("db", None).await.unwrap();
        let mut tasks = Vec::new();
        for t in 0..64u64 {
            let storage = storage.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..10u64 {
                    let mut ops = WriteOps::new();
                    ops.put(
                        P.record(DATA).u64(t).u64(i).build(),
                        Bytes::from_static(b"x"),
                    );
                    storage.write(ops, Durability::Remote).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let stats = storage.committer().stats();
        assert_eq!(stats.jobs, 640, "{}", backend.name);
        assert!(stats.writes < stats.jobs, "{}: {stats:?}", backend.name);
        assert!(stats.flushes < stats.jobs, "{}: {stats:?}", backend.name);
        let mut iter = storage
            .reader()
            .scan_prefix(&P.record(DATA).build())
            .await
            .unwrap();
        let mut n = 0;
        while iter.next().await.unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 640, "{}", backend.name);
        storage.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_acknowledge_memory_durability_and_flush_later() {
    for backend in backends("memory-durability") {
        let root = StorageRoot::new(backend.config.clone()).unwrap();
        let storage = root.open_writer("db", None).await.unwrap();
        let mut ops = WriteOps::new();
        ops.put(P.record(DATA).build(), Bytes::from_static(b"m"));
        storage.write(ops, Durability::Memory).await.unwrap();
        assert!(
            storage
                .reader()
                .get(&P.record(DATA).build())
                .await
                .unwrap()
                .is_some()
        );
        storage.flush().await.unwrap();
        storage.close().await.unwrap();
        let storage = root.open_writer("db", None).await.unwrap();
        assert!(
            storage
                .reader()
                .get(&P.record(DATA).build())
                .await
                .unwrap()
                .is_some(),
            "{}",
            backend.name
        );
        storage.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_list_and_drop_segments() {
    for backend in backends("segments") {
        let root = StorageRoot::new(backend.config.clone()).unwrap();
        let storage = root.open_writer("db", None).await.unwrap();
        let mut ops = WriteOps::new();
        ops.put(P.record(DATA).build(), Bytes::from_static(b"global"));
        for seg in [1u32, 2, 5, u32::MAX] {
            for i in 0..25u64 {
                ops.put(
                    P.segmented(seg, DATA).u64(i).build(),
                    Bytes::from_static(b"x"),
                );
                ops.put(
                    P.segmented(seg, BITMAP).u64(i).build(),
                    Bytes::from_static(b"y"),
                );
            }
        }
        storage.write(ops, Durability::Remote).await.unwrap();
        let reader = storage.reader();
        assert_eq!(
            list_segments(&reader, P).await.unwrap(),
            vec![1, 2, 5, u32::MAX]
        );
        assert_eq!(
            drop_segment(&storage, P, 2, Durability::Remote)
                .await
                .unwrap(),
            50
        );
        assert_eq!(
            drop_segment(&storage, P, u32::MAX, Durability::Remote)
                .await
                .unwrap(),
            50
        );
        assert_eq!(
            list_segments(&reader, P).await.unwrap(),
            vec![1, 5],
            "{}",
            backend.name
        );
        assert!(
            reader
                .get(&P.segmented(2, DATA).u64(3).build())
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            reader
                .get(&P.segmented(5, DATA).u64(3).build())
                .await
                .unwrap()
                .is_some()
        );
        assert!(reader.get(&P.record(DATA).build()).await.unwrap().is_some());
        storage.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_never_reuse_sequences_across_restarts() {
    for backend in backends("sequences") {
        let root = StorageRoot::new(backend.config.clone()).unwrap();
        let seq_key = P.record(SEQ).build();
        let mut highest = 0;
        for _round in 0..3 {
            let storage = root.open_writer("db", None).await.unwrap();
            let mut alloc = SequenceAllocator::load(&storage.reader(), seq_key.clone(), 100)
                .await
                .unwrap();
            assert!(
                highest == 0 || alloc.peek() > highest,
                "{}: {} <= {highest}",
                backend.name,
                alloc.peek()
            );
            for _ in 0..7 {
                let mut ops = WriteOps::new();
                let first = alloc.allocate(30, &mut ops);
                ops.put(P.record(DATA).u64(first).build(), Bytes::new());
                storage.write(ops, Durability::Remote).await.unwrap();
                highest = first + 29;
            }
            // No close: the reservation must already be durable with the data.
            storage.flush().await.unwrap();
            drop(storage);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_let_replica_follow_the_writer() {
    for backend in backends("replica") {
        let mut config = backend.config.clone();
        config.replica_poll_interval_ms = 50;
        let root = StorageRoot::new(config).unwrap();
        let storage = root.open_writer("db", None).await.unwrap();
        let mut ops = WriteOps::new();
        ops.put(P.record(DATA).u64(1).build(), Bytes::from_static(b"one"));
        storage.write(ops, Durability::Remote).await.unwrap();
        let replica = root.open_replica("db", None).await.unwrap();
        assert!(replica.is_replica());
        assert_eq!(
            replica
                .get(&P.record(DATA).u64(1).build())
                .await
                .unwrap()
                .as_deref(),
            Some(&b"one"[..])
        );
        let mut ops = WriteOps::new();
        ops.put(P.record(DATA).u64(2).build(), Bytes::from_static(b"two"));
        storage.write(ops, Durability::Remote).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if replica
                .get(&P.record(DATA).u64(2).build())
                .await
                .unwrap()
                .is_some()
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: replica never saw the write",
                backend.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        storage.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_fence_the_first_writer_when_a_second_opens() {
    for backend in backends("fencing") {
        if backend.name == "memory" {
            continue;
        }
        let first_root = StorageRoot::new(backend.config.clone()).unwrap();
        let first = first_root.open_writer("db", None).await.unwrap();
        let mut ops = WriteOps::new();
        ops.put(P.record(DATA).u64(1).build(), Bytes::from_static(b"first"));
        first.write(ops, Durability::Remote).await.unwrap();

        // A second process (its own client) opens the same path.
        let second_root = StorageRoot::new(backend.config.clone()).unwrap();
        let second = second_root.open_writer("db", None).await.unwrap();

        let mut ops = WriteOps::new();
        ops.put(P.record(DATA).u64(2).build(), Bytes::from_static(b"stale"));
        let err = first.write(ops, Durability::Remote).await.unwrap_err();
        assert!(
            matches!(err, Error::Fenced),
            "{}: expected fenced, got {err}",
            backend.name
        );
        assert!(err.to_string().contains("another writer"), "{err}");

        // The second writer owns the database and sees the first writer's durable data.
        let got = second
            .reader()
            .get(&P.record(DATA).u64(1).build())
            .await
            .unwrap();
        assert_eq!(got.as_deref(), Some(&b"first"[..]));
        assert!(
            second
                .reader()
                .get(&P.record(DATA).u64(2).build())
                .await
                .unwrap()
                .is_none()
        );
        let mut ops = WriteOps::new();
        ops.put(P.record(DATA).u64(3).build(), Bytes::from_static(b"second"));
        second.write(ops, Durability::Remote).await.unwrap();
        second.close().await.unwrap();
    }
}
