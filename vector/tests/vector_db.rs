//! End-to-end tests of `VectorDb` on real storage (memory and local directory).

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashSet};

use opendata_common::{Durability, StorageConfig, StorageRoot};
use opendata_vector::index::kmeans::Rng;
use opendata_vector::{
    AttributePatch, AttributeType, AttributeValue, CollectionSpec, Error, FieldSelection, Filter,
    Metric, SearchPlan, SearchRequest, VectorConfig, VectorDb, VectorRecord,
};
use serde_json::json;

fn small_config() -> VectorConfig {
    VectorConfig {
        initial_build_size: 400,
        target_posting_size: 64,
        max_posting_size: 128,
        min_posting_size: 8,
        default_nprobe: 8,
        exact_filter_limit: 50,
        ..VectorConfig::default()
    }
}

/// `n` points around `clusters` random centres.
fn clustered(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    let centres: Vec<Vec<f32>> = (0..clusters)
        .map(|_| (0..dim).map(|_| rng.unit() as f32 * 10.0).collect())
        .collect();
    (0..n)
        .map(|_| {
            let c = &centres[rng.below(clusters)];
            c.iter().map(|x| x + (rng.unit() as f32 - 0.5)).collect()
        })
        .collect()
}

fn spec() -> CollectionSpec {
    CollectionSpec::new("things", 8, Metric::L2)
        .with_attribute("color", AttributeType::String)
        .with_attribute("size", AttributeType::Integer)
        .with_attribute("price", AttributeType::Float)
        .with_attribute("tags", AttributeType::StringList)
        .with_attribute("ok", AttributeType::Bool)
}

fn record(i: usize, v: Vec<f32>) -> VectorRecord {
    let colors = ["red", "green", "blue"];
    let mut r = VectorRecord::new(format!("v{i}"), v)
        .with_attribute("color", AttributeValue::String(colors[i % 3].into()))
        .with_attribute("size", AttributeValue::Integer((i % 10) as i64))
        .with_attribute("price", AttributeValue::Float(i as f64 / 10.0))
        .with_attribute(
            "tags",
            AttributeValue::StringList(vec![format!("t{}", i % 7), "all".into()]),
        );
    if i.is_multiple_of(2) {
        r = r.with_attribute("ok", AttributeValue::Bool(i.is_multiple_of(4)));
    }
    r
}

fn exact_top(data: &[(String, Vec<f32>)], q: &[f32], k: usize) -> Vec<String> {
    let mut d: Vec<(f32, &String)> = data
        .iter()
        .map(|(id, v)| (v.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum(), id))
        .collect();
    d.sort_by(|a, b| a.0.total_cmp(&b.0));
    d.into_iter().take(k).map(|x| x.1.clone()).collect()
}

async fn memory_db(config: VectorConfig) -> VectorDb {
    let root = StorageRoot::new(StorageConfig::in_memory()).unwrap();
    VectorDb::open(&root, config).await.unwrap()
}

#[tokio::test]
async fn should_upsert_search_get_patch_and_delete_in_a_flat_collection() {
    let db = memory_db(small_config()).await;
    db.create_collection(spec()).await.unwrap();
    let data = clustered(100, 8, 4, 1);
    let records: Vec<_> = data
        .iter()
        .enumerate()
        .map(|(i, v)| record(i, v.clone()))
        .collect();
    let res = db
        .upsert("things", records, Durability::Remote)
        .await
        .unwrap();
    assert_eq!((res.count, res.missing), (100, 100));
    let found = db
        .search("things", SearchRequest::new(data[5].clone(), 3))
        .await
        .unwrap();
    assert_eq!(found.stats.plan, SearchPlan::Flat);
    assert_eq!(found.hits[0].id, "v5");
    assert!(found.hits[0].score.abs() < 1e-3);
    assert!(found.hits[0].score <= found.hits[1].score);

    let got = db
        .get(
            "things",
            &["v7".into(), "nope".into()],
            &FieldSelection::all(),
        )
        .await
        .unwrap();
    let v7 = got[0].as_ref().unwrap();
    assert_eq!(v7.vector, data[7]);
    assert_eq!(
        v7.attributes["color"],
        AttributeValue::String("green".into())
    );
    assert!(got[1].is_none());

    // Replace v7's vector: found at the new place, not the old.
    let far = vec![100.0; 8];
    let res = db
        .upsert(
            "things",
            vec![VectorRecord::new("v7", far.clone())],
            Durability::Remote,
        )
        .await
        .unwrap();
    assert_eq!((res.count, res.missing), (1, 0));
    let hit = db
        .search("things", SearchRequest::new(far.clone(), 1))
        .await
        .unwrap();
    assert_eq!(hit.hits[0].id, "v7");
    let near_old = db
        .search("things", SearchRequest::new(data[7].clone(), 1))
        .await
        .unwrap();
    assert_ne!(near_old.hits[0].id, "v7");

    // Patch attributes.
    let res = db
        .patch(
            "things",
            vec![
                AttributePatch {
                    id: "v1".into(),
                    set: BTreeMap::from([("color".into(), AttributeValue::String("pink".into()))]),
                    unset: vec!["size".into()],
                },
                AttributePatch {
                    id: "ghost".into(),
                    ..Default::default()
                },
            ],
            Durability::Remote,
        )
        .await
        .unwrap();
    assert_eq!((res.count, res.missing), (1, 1));
    let s = db.collection_spec("things").unwrap();
    let pink = Filter::from_json(&json!({"color": "pink"}), &s).unwrap();
    let mut req = SearchRequest::new(data[1].clone(), 5);
    req.filter = Some(pink);
    req.fields = FieldSelection::all();
    let hits = db.search("things", req).await.unwrap().hits;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].id, "v1");
    assert!(!hits[0].attributes.contains_key("size"));

    // Delete by id and by filter.
    let res = db
        .delete(
            "things",
            vec!["v5".into(), "ghost".into()],
            Durability::Remote,
        )
        .await
        .unwrap();
    assert_eq!((res.count, res.missing), (1, 1));
    let found = db
        .search("things", SearchRequest::new(data[5].clone(), 1))
        .await
        .unwrap();
    assert_ne!(found.hits[0].id, "v5");
    let size3 = Filter::from_json(&json!({"size": 3}), &s).unwrap();
    let res = db
        .delete_by_filter("things", size3.clone(), Durability::Remote)
        .await
        .unwrap();
    assert_eq!(res.count, 10);
    let info = db.describe_collection("things").await.unwrap();
    assert_eq!(info.vectors, 100 - 1 - 10);
    let mut req = SearchRequest::new(data[3].clone(), 10);
    req.filter = Some(size3);
    assert!(db.search("things", req).await.unwrap().hits.is_empty());
    db.close().await.unwrap();
}

#[tokio::test]
async fn should_answer_every_filter_operator() {
    let db = memory_db(small_config()).await;
    db.create_collection(spec()).await.unwrap();
    let data = clustered(60, 8, 3, 2);
    let records: Vec<_> = data
        .iter()
        .enumerate()
        .map(|(i, v)| record(i, v.clone()))
        .collect();
    db.upsert("things", records.clone(), Durability::Remote)
        .await
        .unwrap();
    let s = db.collection_spec("things").unwrap();
    let check = |f: serde_json::Value, pred: &dyn Fn(&VectorRecord) -> bool| {
        let expected: HashSet<String> = records
            .iter()
            .filter(|r| pred(r))
            .map(|r| r.id.clone())
            .collect();
        (Filter::from_json(&f, &s).unwrap(), expected, f)
    };
    let int = |r: &VectorRecord, k: &str| match r.attributes.get(k) {
        Some(AttributeValue::Integer(i)) => Some(*i),
        _ => None,
    };
    let float = |r: &VectorRecord| match r.attributes.get("price") {
        Some(AttributeValue::Float(f)) => *f,
        _ => f64::NAN,
    };
    let color = |r: &VectorRecord| match r.attributes.get("color") {
        Some(AttributeValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    let cases = vec![
        check(json!({"color": "red"}), &|r| color(r) == "red"),
        check(json!({"color": {"ne": "red"}}), &|r| color(r) != "red"),
        check(json!({"size": {"in": [1, 2]}}), &|r| {
            matches!(int(r, "size"), Some(1 | 2))
        }),
        check(json!({"size": {"not_in": [1, 2]}}), &|r| {
            !matches!(int(r, "size"), Some(1 | 2))
        }),
        check(json!({"size": {"lt": 3}}), &|r| int(r, "size").unwrap() < 3),
        check(json!({"size": {"lte": 3}}), &|r| {
            int(r, "size").unwrap() <= 3
        }),
        check(json!({"size": {"gt": 7}}), &|r| int(r, "size").unwrap() > 7),
        check(json!({"size": {"gte": 7}}), &|r| {
            int(r, "size").unwrap() >= 7
        }),
        check(json!({"price": {"gte": 1.5, "lt": 3}}), &|r| {
            (1.5..3.0).contains(&float(r))
        }),
        check(json!({"price": {"lt": -1}}), &|_| false),
        check(json!({"tags": {"contains": "t3"}}), &|r| {
            r.id[1..].parse::<usize>().unwrap() % 7 == 3
        }),
        check(json!({"ok": {"exists": true}}), &|r| {
            r.attributes.contains_key("ok")
        }),
        check(json!({"ok": {"exists": false}}), &|r| {
            !r.attributes.contains_key("ok")
        }),
        check(json!({"ok": true}), &|r| {
            r.attributes.get("ok") == Some(&AttributeValue::Bool(true))
        }),
        check(
            json!({"or": [{"color": "red"}, {"size": {"gte": 8}}]}),
            &|r| color(r) == "red" || int(r, "size").unwrap() >= 8,
        ),
        check(
            json!({"and": [{"color": "red"}, {"not": {"size": {"gte": 8}}}]}),
            &|r| color(r) == "red" && int(r, "size").unwrap() < 8,
        ),
        check(json!({"color": "red", "size": 3}), &|r| {
            color(r) == "red" && int(r, "size") == Some(3)
        }),
    ];
    for (filter, expected, text) in cases {
        let mut req = SearchRequest::new(data[0].clone(), 100);
        req.filter = Some(filter);
        let got: HashSet<String> = db
            .search("things", req)
            .await
            .unwrap()
            .hits
            .into_iter()
            .map(|h| h.id)
            .collect();
        assert_eq!(got, expected, "{text}");
    }
}

#[tokio::test]
async fn should_cluster_split_and_keep_recall_as_the_collection_grows() {
    let db = memory_db(small_config()).await;
    db.create_collection(spec()).await.unwrap();
    let data = clustered(6000, 8, 40, 3);
    let all: Vec<(String, Vec<f32>)> = data
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("v{i}"), v.clone()))
        .collect();
    for chunk in all.chunks(500) {
        let records = chunk
            .iter()
            .map(|(id, v)| VectorRecord::new(id.clone(), v.clone()))
            .collect();
        db.upsert("things", records, Durability::Memory)
            .await
            .unwrap();
        db.maintain("things").await.unwrap();
    }
    let info = db.describe_collection("things").await.unwrap();
    assert_eq!(info.vectors, 6000);
    // 400 records picked the first ~7 centroids; growth split them.
    assert!(info.postings > 40, "{info:?}");
    assert!(info.posting_entries >= 6000, "{info:?}");
    let queries = clustered(100, 8, 40, 3);
    let mut hits = 0;
    for q in &queries {
        let truth = exact_top(&all, q, 10);
        let mut req = SearchRequest::new(q.clone(), 10);
        req.nprobe = Some(16);
        let res = db.search("things", req).await.unwrap();
        assert_eq!(res.stats.plan, SearchPlan::Probe);
        hits += res.hits.iter().filter(|h| truth.contains(&h.id)).count();
    }
    let recall = hits as f64 / 1000.0;
    assert!(recall >= 0.9, "recall {recall}");

    // Delete half; maintenance cleans dead entries out of the posting lists.
    let gone: Vec<String> = (0..6000).step_by(2).map(|i| format!("v{i}")).collect();
    db.delete("things", gone.clone(), Durability::Remote)
        .await
        .unwrap();
    db.maintain("things").await.unwrap();
    let info = db.describe_collection("things").await.unwrap();
    assert_eq!(info.vectors, 3000);
    assert!(info.posting_entries < 6000, "{info:?}");
    let gone: HashSet<String> = gone.into_iter().collect();
    for q in queries.iter().take(20) {
        let res = db
            .search("things", SearchRequest::new(q.clone(), 10))
            .await
            .unwrap();
        assert_eq!(res.hits.len(), 10);
        assert!(res.hits.iter().all(|h| !gone.contains(&h.id)));
    }
    let curve = db.calibrate("things").await.unwrap();
    assert!(!curve.is_empty());
    assert!(curve.windows(2).all(|w| w[0].0 < w[1].0));
    db.close().await.unwrap();
}

#[tokio::test]
async fn should_persist_collections_and_index_across_reopen_and_follow_on_a_replica() {
    let dir = tempfile::tempdir().unwrap();
    let root = StorageRoot::new(StorageConfig::local(dir.path())).unwrap();
    let data = clustered(1500, 8, 10, 4);
    {
        let db = VectorDb::open(&root, small_config()).await.unwrap();
        db.create_collection(spec()).await.unwrap();
        let records = data
            .iter()
            .enumerate()
            .map(|(i, v)| record(i, v.clone()))
            .collect();
        db.upsert("things", records, Durability::Remote)
            .await
            .unwrap();
        db.maintain("things").await.unwrap();
        db.close().await.unwrap();
    }
    let db = VectorDb::open(&root, small_config()).await.unwrap();
    let info = db.describe_collection("things").await.unwrap();
    assert_eq!(info.vectors, 1500);
    assert!(info.postings > 1);
    assert_eq!(info.spec, spec());
    // A different definition of the same name is refused; the same one is accepted.
    assert!(matches!(
        db.create_collection(CollectionSpec::new("things", 9, Metric::L2))
            .await,
        Err(Error::CollectionExists(_))
    ));
    db.create_collection(spec()).await.unwrap();
    let res = db
        .search("things", SearchRequest::new(data[42].clone(), 1))
        .await
        .unwrap();
    assert_eq!(res.hits[0].id, "v42");

    let replica = VectorDb::open_replica(&root, small_config()).await.unwrap();
    assert!(replica.is_read_only());
    assert!(matches!(
        replica
            .upsert(
                "things",
                vec![VectorRecord::new("x", vec![0.0; 8])],
                Durability::Remote
            )
            .await,
        Err(Error::ReadOnly)
    ));
    db.create_collection(CollectionSpec::new("later", 2, Metric::Cosine))
        .await
        .unwrap();
    db.upsert(
        "things",
        vec![VectorRecord::new("new", vec![50.0; 8])],
        Durability::Remote,
    )
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let seen = replica
            .search("things", SearchRequest::new(vec![50.0; 8], 1))
            .await
            .map(|r| r.hits.first().map(|h| h.id.clone()));
        if matches!(seen, Ok(Some(ref id)) if id == "new")
            && replica.describe_collection("later").await.is_ok()
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "replica never saw the write"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    db.drop_collection("things").await.unwrap();
    assert!(matches!(
        db.describe_collection("things").await,
        Err(Error::CollectionNotFound(_))
    ));
    replica.close().await.unwrap();
    db.close().await.unwrap();
}

#[tokio::test]
async fn should_reject_bad_input_without_touching_stored_data() {
    let db = memory_db(small_config()).await;
    db.create_collection(spec()).await.unwrap();
    db.upsert(
        "things",
        vec![VectorRecord::new("keep", vec![1.0; 8])],
        Durability::Remote,
    )
    .await
    .unwrap();
    let bad: Vec<(Vec<VectorRecord>, &str)> = vec![
        (vec![VectorRecord::new("a", vec![1.0; 7])], "dimension 7"),
        (
            vec![VectorRecord::new("a", {
                let mut v = vec![1.0; 8];
                v[3] = f32::NAN;
                v
            })],
            "component 3 is NaN",
        ),
        (
            vec![VectorRecord::new("a", {
                let mut v = vec![1.0; 8];
                v[0] = f32::INFINITY;
                v
            })],
            "component 0 is inf",
        ),
        (
            vec![
                VectorRecord::new("a", vec![1.0; 8])
                    .with_attribute("nope", AttributeValue::Bool(true)),
            ],
            "unknown attribute \"nope\"",
        ),
        (
            vec![
                VectorRecord::new("a", vec![1.0; 8])
                    .with_attribute("size", AttributeValue::String("big".into())),
            ],
            "attribute \"size\" is integer",
        ),
        (
            vec![VectorRecord::new("x".repeat(513), vec![1.0; 8])],
            "longer than the 512-byte limit",
        ),
        (
            // A good record and a bad one: neither is written.
            vec![
                VectorRecord::new("keep", vec![9.0; 8]),
                VectorRecord::new("b", vec![1.0; 3]),
            ],
            "dimension 3",
        ),
    ];
    for (records, needle) in bad {
        let err = db
            .upsert("things", records, Durability::Remote)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err}");
        assert!(err.to_string().contains(needle), "{err} lacks {needle}");
    }
    let got = db
        .get("things", &["keep".into()], &FieldSelection::all())
        .await
        .unwrap();
    assert_eq!(got[0].as_ref().unwrap().vector, vec![1.0; 8]);
    assert_eq!(db.describe_collection("things").await.unwrap().vectors, 1);
    let err = db
        .search("things", SearchRequest::new(vec![1.0; 8], 0))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("k must be"), "{err}");
    assert!(matches!(
        db.search("nope", SearchRequest::new(vec![1.0; 8], 1)).await,
        Err(Error::CollectionNotFound(_))
    ));
    for bad in [
        CollectionSpec::new("", 2, Metric::L2),
        CollectionSpec::new("a b", 2, Metric::L2),
        CollectionSpec::new("ok", 0, Metric::L2),
        CollectionSpec::new("ok", 2, Metric::L2).with_attribute("and", AttributeType::Bool),
    ] {
        assert!(matches!(
            db.create_collection(bad).await,
            Err(Error::InvalidInput(_))
        ));
    }
}

#[tokio::test]
async fn should_report_cosine_similarity_and_dot_product_scores() {
    let db = memory_db(small_config()).await;
    db.create_collection(CollectionSpec::new("cos", 2, Metric::Cosine))
        .await
        .unwrap();
    db.create_collection(CollectionSpec::new("dot", 2, Metric::Dot))
        .await
        .unwrap();
    let recs = vec![
        VectorRecord::new("x", vec![2.0, 0.0]),
        VectorRecord::new("y", vec![0.0, 3.0]),
    ];
    db.upsert("cos", recs.clone(), Durability::Remote)
        .await
        .unwrap();
    db.upsert("dot", recs, Durability::Remote).await.unwrap();
    let r = db
        .search("cos", SearchRequest::new(vec![1.0, 1.0], 2))
        .await
        .unwrap();
    assert!((r.hits[0].score - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-5);
    let r = db
        .search("dot", SearchRequest::new(vec![1.0, 2.0], 2))
        .await
        .unwrap();
    assert_eq!(r.hits[0].id, "y");
    assert!((r.hits[0].score - 6.0).abs() < 1e-5);
    assert!((r.hits[1].score - 2.0).abs() < 1e-5);
    let err = db
        .upsert(
            "cos",
            vec![VectorRecord::new("z", vec![0.0, 0.0])],
            Durability::Remote,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("all zeros"), "{err}");
}

#[tokio::test]
async fn should_store_a_boundary_vector_in_the_posting_lists_of_both_sides() {
    let db = memory_db(small_config()).await;
    db.create_collection(CollectionSpec::new("two", 4, Metric::L2))
        .await
        .unwrap();
    // Two tight blobs far apart, clustered first.
    let mut rng = Rng::new(11);
    let blobs: Vec<VectorRecord> = (0..600)
        .map(|i| {
            let base = if i % 2 == 0 { 0.0 } else { 10.0 };
            VectorRecord::new(
                format!("b{i}"),
                (0..4).map(|_| base + rng.unit() as f32 * 0.1).collect(),
            )
        })
        .collect();
    db.upsert("two", blobs, Durability::Remote).await.unwrap();
    db.maintain("two").await.unwrap();
    let before = db.describe_collection("two").await.unwrap();
    assert!(before.postings >= 2);
    // Vectors on the boundary are nearly equidistant from both blobs' centroids, and
    // neither centroid is "behind" the other: each goes into two lists.
    let middle: Vec<VectorRecord> = (0..10)
        .map(|i| VectorRecord::new(format!("m{i}"), vec![5.0 + i as f32 * 0.001; 4]))
        .collect();
    db.upsert("two", middle, Durability::Remote).await.unwrap();
    let after = db.describe_collection("two").await.unwrap();
    assert_eq!(after.vectors, 610);
    assert!(
        after.posting_entries >= before.posting_entries + 20,
        "{before:?} -> {after:?}"
    );
    // Found with one probe from either side.
    for side in [4.0f32, 6.0] {
        let mut req = SearchRequest::new(vec![side; 4], 1);
        req.nprobe = Some(1);
        let hit = &db.search("two", req).await.unwrap().hits[0];
        assert!(hit.id.starts_with('m'), "{side}: {}", hit.id);
    }
}
