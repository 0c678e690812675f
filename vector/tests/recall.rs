//! Recall floors on generated clustered data (the CI-sized version of
//! `benches/vector_bench.rs`), and the correctness of searches after replacements and
//! deletes, each against exact answers computed by brute force.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use opendata_common::{Durability, StorageConfig, StorageRoot};
use opendata_testing::dataset::{self, Clustered, ClusteredSpec, Neighbours};
use opendata_vector::{
    AttributeType, AttributeValue, CollectionSpec, Filter, Metric, SearchRequest, VectorConfig,
    VectorDb, VectorRecord,
};
use serde_json::json;

const K: usize = 10;

async fn open(dir: &std::path::Path) -> VectorDb {
    let root = StorageRoot::new(StorageConfig::local(dir)).unwrap();
    VectorDb::open(&root, VectorConfig::default())
        .await
        .unwrap()
}

fn spec(name: &str, dim: usize) -> CollectionSpec {
    CollectionSpec::new(name, dim as u32, Metric::L2)
        .with_attribute("bucket", AttributeType::Integer)
}

fn record(id: usize, vector: &[f32], bucket: i64) -> VectorRecord {
    VectorRecord::new(id.to_string(), vector.to_vec())
        .with_attribute("bucket", AttributeValue::Integer(bucket))
}

/// Upserts every base vector with its bucket, in batches of 1,000.
async fn load(db: &VectorDb, name: &str, data: &Clustered, base: &[f32], durability: Durability) {
    let dim = data.dim();
    let n = base.len() / dim;
    for first in (0..n).step_by(1_000) {
        let records = (first..(first + 1_000).min(n))
            .map(|i| record(i, &base[i * dim..(i + 1) * dim], data.bucket(i) as i64))
            .collect();
        let out = db.upsert(name, records, durability).await.unwrap();
        assert_eq!(out.count as usize, (first + 1_000).min(n) - first);
    }
}

fn ids(hits: &[opendata_vector::SearchHit]) -> Vec<u32> {
    hits.iter().map(|h| h.id.parse().unwrap()).collect()
}

/// Every query searched one at a time with `request`; the mean recall@10 against
/// `truth`. Also checks each answer: at most `K` hits, nearest first, and none that
/// `allowed` rejects.
async fn recall(
    db: &VectorDb,
    name: &str,
    queries: &[f32],
    dim: usize,
    truth: &Neighbours,
    request: impl Fn(Vec<f32>) -> SearchRequest,
    allowed: impl Fn(u32) -> bool,
) -> f64 {
    let mut found = Vec::new();
    for q in queries.chunks_exact(dim) {
        let resp = db.search(name, request(q.to_vec())).await.unwrap();
        assert!(resp.hits.len() <= K);
        assert!(
            resp.hits.windows(2).all(|w| w[0].score <= w[1].score),
            "hits should be nearest first: {:?}",
            resp.hits
        );
        let hit_ids = ids(&resp.hits);
        if let Some(bad) = hit_ids.iter().find(|&&i| !allowed(i)) {
            panic!("search returned id {bad}, which it must not");
        }
        found.push(hit_ids);
    }
    truth.mean_recall(&found, K)
}

/// 100,000 × 128 clustered vectors, 200 queries: recall@10 ≥ 0.90 at the default
/// settings, ≥ 0.95 when asked for it or with a larger nprobe, and ≥ 0.90 with filters
/// matching 1% and 10% of the vectors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_reach_the_recall_floor_on_100k_clustered_vectors() {
    let (n, dim, nq) = (100_000, 128, 200);
    let data = Clustered::new(ClusteredSpec::new(11, n, dim));
    let base = data.base();
    let queries = data.queries(nq);
    let truth = dataset::exact_knn(&base, &queries, dim, K, |_| true);
    let truth_1pct = dataset::exact_knn(&base, &queries, dim, K, |i| data.bucket(i) == 7);
    let truth_10pct = dataset::exact_knn(&base, &queries, dim, K, |i| data.bucket(i) < 10);

    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    let spec = spec("recall", dim);
    db.create_collection(spec.clone()).await.unwrap();
    load(&db, "recall", &data, &base, Durability::Memory).await;
    db.maintain("recall").await.unwrap();
    let info = db.describe_collection("recall").await.unwrap();
    assert_eq!(info.vectors, n as u64);
    assert!(
        info.postings > 1,
        "100,000 vectors should be clustered: {info:?}"
    );
    assert!(info.posting_entries >= n as u64, "{info:?}");

    let any = |_: u32| true;
    let default = recall(
        &db,
        "recall",
        &queries,
        dim,
        &truth,
        |v| SearchRequest::new(v, K),
        any,
    )
    .await;
    assert!(
        default >= 0.90,
        "recall@10 at the default settings is {default:.4}, below 0.90"
    );

    let targeted = recall(
        &db,
        "recall",
        &queries,
        dim,
        &truth,
        |v| {
            let mut r = SearchRequest::new(v, K);
            r.recall_target = Some(0.95);
            r
        },
        any,
    )
    .await;
    assert!(
        targeted >= 0.95,
        "recall@10 asking for 0.95 is {targeted:.4}"
    );

    let wide = recall(
        &db,
        "recall",
        &queries,
        dim,
        &truth,
        |v| {
            let mut r = SearchRequest::new(v, K);
            r.nprobe = Some(64);
            r
        },
        any,
    )
    .await;
    assert!(wide >= 0.95, "recall@10 at nprobe 64 is {wide:.4}");

    for (filter, truth, keep) in [
        (
            json!({"bucket": 7}),
            &truth_1pct,
            Box::new(|b: u32| b == 7) as Box<dyn Fn(u32) -> bool>,
        ),
        (
            json!({"bucket": {"lt": 10}}),
            &truth_10pct,
            Box::new(|b: u32| b < 10),
        ),
    ] {
        let f = Filter::from_json(&filter, &spec).unwrap();
        let got = recall(
            &db,
            "recall",
            &queries,
            dim,
            truth,
            |v| {
                let mut r = SearchRequest::new(v, K);
                r.filter = Some(f.clone());
                r
            },
            |id| keep(data.bucket(id as usize)),
        )
        .await;
        assert!(
            got >= 0.90,
            "recall@10 with filter {filter} is {got:.4}, below 0.90"
        );
    }
    db.close().await.unwrap();
}

/// 20,000 vectors; a tenth deleted and a tenth replaced with vectors elsewhere. Before
/// and after maintenance: deleted ids never come back (not even searched for at their
/// old place), replaced ids are found at their new place and not at their old one, and
/// recall against the exact answers over the live data holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_forget_deleted_and_move_replaced_vectors() {
    let (n, dim, nq) = (20_000, 64, 100);
    let data = Clustered::new(ClusteredSpec::new(5, n, dim));
    let mut base = data.base();
    let queries = data.queries(nq);
    let row = |v: &[f32], i: usize| v[i * dim..(i + 1) * dim].to_vec();

    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    let spec = spec("churn", dim);
    db.create_collection(spec.clone()).await.unwrap();
    load(&db, "churn", &data, &base, Durability::Remote).await;
    db.maintain("churn").await.unwrap();

    // Deleted: ids ≡ 0 (mod 10). Replaced: ids ≡ 3 (mod 10), each by a vector drawn
    // from the query stream (so not a copy of any base vector), with bucket 500.
    let deleted: Vec<usize> = (0..n).step_by(10).collect();
    let replaced: Vec<usize> = (3..n).step_by(10).collect();
    let old = base.clone();
    let mut fresh = vec![0f32; dim];
    let mut records = Vec::new();
    for (j, &i) in replaced.iter().enumerate() {
        data.query_vector(nq + j, &mut fresh);
        base[i * dim..(i + 1) * dim].copy_from_slice(&fresh);
        records.push(record(i, &fresh, 500));
    }
    for chunk in records.chunks(1_000) {
        let out = db
            .upsert("churn", chunk.to_vec(), Durability::Remote)
            .await
            .unwrap();
        assert_eq!(out.count as usize, chunk.len());
        assert_eq!(out.missing, 0, "replacements replace");
    }
    let out = db
        .delete(
            "churn",
            deleted.iter().map(|i| i.to_string()).collect(),
            Durability::Remote,
        )
        .await
        .unwrap();
    assert_eq!((out.count as usize, out.missing), (deleted.len(), 0));

    let gone: HashSet<u32> = deleted.iter().map(|&i| i as u32).collect();
    let truth = dataset::exact_knn(&base, &queries, dim, K, |i| i % 10 != 0);
    let filter500 = Filter::from_json(&json!({"bucket": 500}), &spec).unwrap();

    for phase in ["before maintenance", "after maintenance"] {
        if phase == "after maintenance" {
            db.maintain("churn").await.unwrap();
        }
        let info = db.describe_collection("churn").await.unwrap();
        assert_eq!(info.vectors as usize, n - deleted.len(), "{phase}");

        let got = db
            .get(
                "churn",
                &deleted[..50]
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>(),
                &Default::default(),
            )
            .await
            .unwrap();
        assert!(
            got.iter().all(Option::is_none),
            "{phase}: deleted ids still readable"
        );

        // Deleted ids are not found even at their old place.
        for &i in deleted.iter().step_by(20) {
            let mut r = SearchRequest::new(row(&old, i), K);
            r.nprobe = Some(32);
            let hits = ids(&db.search("churn", r).await.unwrap().hits);
            assert!(
                hits.iter().all(|h| !gone.contains(h)),
                "{phase}: a deleted id came back: {hits:?}"
            );
        }

        // Replaced ids are found at their new place, alone there, with their new bucket,
        // and not at their old place.
        let mut missed = 0;
        for &i in replaced.iter().step_by(10) {
            let hits = db
                .search("churn", SearchRequest::new(row(&base, i), K))
                .await
                .unwrap()
                .hits;
            if hits.first().map(|h| h.id.as_str()) != Some(i.to_string().as_str()) {
                missed += 1;
            } else {
                assert!(
                    hits[0].score.abs() < 1e-3,
                    "{phase}: id {i} at its own place scores {}",
                    hits[0].score
                );
            }
            let mut r = SearchRequest::new(row(&base, i), 1);
            r.filter = Some(filter500.clone());
            let hits = db.search("churn", r).await.unwrap().hits;
            assert_eq!(hits.len(), 1, "{phase}");
            assert_eq!(
                hits[0].id,
                i.to_string(),
                "{phase}: bucket 500 holds the replacements"
            );

            let hits = db
                .search("churn", SearchRequest::new(row(&old, i), K))
                .await
                .unwrap()
                .hits;
            assert!(
                hits.iter().all(|h| h.id != i.to_string() || h.score > 1e-3),
                "{phase}: replaced id {i} still found at its old place"
            );
        }
        // Exact matches of a live vector: allow one miss in 200 for approximation.
        assert!(
            missed <= 1,
            "{phase}: {missed} of 200 replaced vectors not found first at their new place"
        );

        let r = recall(
            &db,
            "churn",
            &queries,
            dim,
            &truth,
            |v| SearchRequest::new(v, K),
            |id| !gone.contains(&id),
        )
        .await;
        assert!(r >= 0.90, "{phase}: recall@10 over the live data is {r:.4}");
    }
    db.close().await.unwrap();
}
