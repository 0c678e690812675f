//! The Kafka protocol with real clients: Debian's `kcat` (librdkafka) and the
//! confluent-kafka Python client, against the real binary on a local directory.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use support::{ServerProcess, free_port, kafka_python, kcat_binary};

/// A server with the Kafka listener on `kafka_port`, data in `data`.
async fn start(dir: &std::path::Path, kafka_port: u16, extra: &[&str]) -> ServerProcess {
    let data = dir.join("data").display().to_string();
    let listen = format!("127.0.0.1:{kafka_port}");
    let mut args = vec![
        "--object-store",
        data.as_str(),
        "--kafka-listen",
        listen.as_str(),
    ];
    args.extend_from_slice(extra);
    ServerProcess::start(&args, &dir.join("server.log")).await
}

fn kcat(kcat: &str, args: &[&str], input: Option<&str>) -> String {
    let mut child = Command::new(kcat)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        if let Some(text) = input {
            stdin.write_all(text.as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kcat {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_produce_and_consume_with_kcat_with_every_codec() {
    let Some(kc) = kcat_binary() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = start(dir.path(), port, &[]).await;
    let broker = format!("127.0.0.1:{port}");
    let b = broker.as_str();

    // Every codec, with keys and headers; the topic is created on first use.
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let input = format!("k1:{codec}-one\nk2:{codec}-two\n");
        kcat(
            &kc,
            &[
                "-b", b, "-P", "-t", "codecs", "-z", codec, "-K", ":", "-H", "h=v",
            ],
            Some(&input),
        );
    }
    let out = kcat(
        &kc,
        &[
            "-b",
            b,
            "-C",
            "-t",
            "codecs",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%o|%k|%h|%s\n",
        ],
        None,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 10, "{out}");
    for (i, codec) in ["none", "gzip", "snappy", "lz4", "zstd"].iter().enumerate() {
        assert_eq!(lines[2 * i], format!("{}|k1|h=v|{codec}-one", 2 * i));
        assert_eq!(
            lines[2 * i + 1],
            format!("{}|k2|h=v|{codec}-two", 2 * i + 1)
        );
    }
    // By offset, and a count.
    let out = kcat(
        &kc,
        &[
            "-b", b, "-C", "-t", "codecs", "-o", "7", "-c", "2", "-f", "%o %s\n",
        ],
        None,
    );
    assert_eq!(out, "7 lz4-two\n8 zstd-one\n");
    // By timestamp: the record's own CreateTime is kept.
    let out = kcat(
        &kc,
        &[
            "-b",
            b,
            "-C",
            "-t",
            "codecs",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%T\n",
        ],
        None,
    );
    let times: Vec<i64> = out.lines().map(|l| l.parse().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    let at = times[6];
    let out = kcat(
        &kc,
        &[
            "-b",
            b,
            "-C",
            "-t",
            "codecs",
            "-o",
            &format!("s@{at}"),
            "-c",
            "1",
            "-f",
            "%o\n",
        ],
        None,
    );
    let first_at: usize = out.trim().parse().unwrap();
    assert!(first_at <= 6 && times[first_at] >= at, "{out}");
    // Metadata lists the topic with its one broker.
    let out = kcat(&kc, &["-b", b, "-L"], None);
    assert!(out.contains("topic \"codecs\" with 1 partitions"), "{out}");
    assert!(
        out.contains(&format!("broker 0 at 127.0.0.1:{port}")),
        "{out}"
    );

    // One store: the HTTP API reads what Kafka wrote, Kafka reads what HTTP appended.
    let client = reqwest::Client::new();
    let scan: Value = client
        .get(format!("{}/api/v1/log/scan", server.base))
        .query(&[("key", "codecs/0")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first = STANDARD
        .decode(scan["entries"][0]["value"].as_str().unwrap())
        .unwrap();
    assert_eq!(first, b"none-one");
    let resp = client
        .post(format!("{}/api/v1/log/append", server.base))
        .header("content-type", "application/json")
        .body(json!({"records": [{"key": STANDARD.encode("codecs/0"), "value": STANDARD.encode("from-http")}]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let out = kcat(
        &kc,
        &[
            "-b", b, "-C", "-t", "codecs", "-o", "10", "-c", "1", "-f", "%o %s\n",
        ],
        None,
    );
    assert_eq!(out, "10 from-http\n");

    // Committed offsets set over HTTP are where a Kafka consumer group starts.
    let resp = client
        .put(format!("{}/api/v1/log/groups/http-readers", server.base))
        .header("content-type", "application/json")
        .body(json!({"offsets": [{"topic": "codecs", "partition": 0, "offset": 8}]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let out = kcat(
        &kc,
        &[
            "-b",
            b,
            "-G",
            "http-readers",
            "codecs",
            "-e",
            "-f",
            "%o %s\n",
        ],
        None,
    );
    assert_eq!(out, "8 zstd-one\n9 zstd-two\n10 from-http\n");
    let groups: Value = client
        .get(format!("{}/api/v1/log/groups/http-readers", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        groups["offsets"][0]["offset"], "11",
        "kcat committed what it read: {groups}"
    );
    let resp = client
        .put(format!("{}/api/v1/log/groups/http-readers", server.base))
        .header("content-type", "application/json")
        .body(json!({"offsets": [{"topic": "missing", "partition": 0, "offset": 1}]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    // Out of range: kcat is told (and does not hang).
    let err = Command::new(&kc)
        .args(["-b", b, "-C", "-t", "codecs", "-o", "99", "-e", "-q"])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&err.stderr).to_string() + &String::from_utf8_lossy(&err.stdout);
    assert!(
        text.contains("out of range")
            || text.contains("Out of range")
            || !err.status.success()
            || text.is_empty(),
        "{text}"
    );
    drop(server);
}

fn python_lines(
    python: &str,
    args: &[&str],
) -> (std::process::Child, std::thread::JoinHandle<Vec<Value>>) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/kafka_client.py");
    let mut child = Command::new(python)
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect()
    });
    (child, reader)
}

fn run_python(python: &str, args: &[&str]) -> Vec<Value> {
    let (mut child, reader) = python_lines(python, args);
    let status = child.wait().unwrap();
    assert!(status.success(), "kafka_client.py {args:?} failed");
    reader.join().unwrap()
}

fn of_kind<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["kind"] == kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_consume_every_record_once_across_a_rebalance_and_a_restart() {
    let Some(py) = kafka_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = start(dir.path(), port, &[]).await;
    let b = format!("127.0.0.1:{port}");
    const N: usize = 2000;

    let produced = tokio::task::spawn_blocking({
        let (py, b) = (py.clone(), b.clone());
        move || run_python(&py, &["produce", &b, "grp", "4", &N.to_string()])
    })
    .await
    .unwrap();
    let acked = of_kind(&produced, "acked");
    assert_eq!(acked.len(), N, "every record acknowledged");
    // Dense offsets per partition, from 0.
    let mut per_part: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for a in &acked {
        per_part
            .entry(a["partition"].as_i64().unwrap())
            .or_default()
            .push(a["offset"].as_i64().unwrap());
    }
    assert_eq!(
        per_part.len(),
        4,
        "the keys spread over the four partitions"
    );
    for offsets in per_part.values_mut() {
        offsets.sort();
        assert!(
            offsets.iter().enumerate().all(|(i, o)| *o == i as i64),
            "dense offsets"
        );
    }

    let phase1 = tokio::task::spawn_blocking({
        let (py, b) = (py.clone(), b.clone());
        move || run_python(&py, &["group", &b, "grp", "g1", &N.to_string()])
    })
    .await
    .unwrap();
    let assigned = of_kind(&phase1, "assigned");
    assert_eq!(
        assigned.len(),
        1,
        "both consumers held partitions at once: {phase1:?}"
    );
    let c1: BTreeSet<i64> = assigned[0]["c1"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let c2: BTreeSet<i64> = assigned[0]["c2"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert!(
        c1.is_disjoint(&c2) && c1.len() + c2.len() == 4,
        "{c1:?} {c2:?}"
    );
    let left = of_kind(&phase1, "left");
    let c2_after = left.iter().find(|l| l["by"] == "c2").unwrap();
    assert_eq!(
        c2_after["assignment"].as_array().unwrap().len(),
        4,
        "c2 took over every partition"
    );

    // The committed offsets survive a SIGKILL of the server.
    server.kill();
    let server = start(dir.path(), port, &[]).await;
    let groups: Value = reqwest::get(format!("{}/api/v1/log/groups/g1", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // What phase 1 committed: one past the last offset it consumed, per partition.
    let mut expected: BTreeMap<i64, i64> = BTreeMap::new();
    for l in of_kind(&phase1, "consumed") {
        let e = expected
            .entry(l["partition"].as_i64().unwrap())
            .or_default();
        *e = (*e).max(l["offset"].as_i64().unwrap() + 1);
    }
    let committed: BTreeMap<i64, i64> = groups["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["partition"].as_i64().unwrap(),
                o["offset"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(committed, expected, "{groups}");
    let phase2 = tokio::task::spawn_blocking({
        let (py, b) = (py.clone(), b.clone());
        move || run_python(&py, &["consume-rest", &b, "grp", "g1"])
    })
    .await
    .unwrap();

    let mut seen: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    for l in of_kind(&phase1, "consumed")
        .into_iter()
        .chain(of_kind(&phase2, "consumed"))
    {
        *seen
            .entry((
                l["partition"].as_i64().unwrap(),
                l["offset"].as_i64().unwrap(),
            ))
            .or_default() += 1;
    }
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "consumed twice: {dups:?}");
    assert_eq!(seen.len(), N, "every record consumed by the group");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_keep_every_acknowledged_record_after_sigkill_without_duplicates() {
    let Some(py) = kafka_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = start(dir.path(), port, &[]).await;
    let b = format!("127.0.0.1:{port}");
    let (mut child, reader) = python_lines(&py, &["produce-for", &b, "crash", "6"]);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The producer keeps retrying its in-flight batches against the restarted server.
    let server = start(dir.path(), port, &[]).await;
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success());
    let lines = reader.join().unwrap();
    let acked = of_kind(&lines, "acked");
    assert!(
        acked.len() > 1000,
        "too few acknowledged records ({}) to prove anything",
        acked.len()
    );
    let done = of_kind(&lines, "done");
    assert_eq!(done[0]["unflushed"], 0);

    let kc = kcat_binary();
    // Read back everything with the Python client's own view: offsets and values.
    let mut stored: BTreeMap<i64, String> = BTreeMap::new();
    let client = reqwest::Client::new();
    let (start_off, end_off) = {
        let mut from = 0u64;
        loop {
            let body: Value = client
                .get(format!("{}/api/v1/log/scan", server.base))
                .query(&[
                    ("key", "crash/0"),
                    ("start_seq", &from.to_string()),
                    ("limit", "10000"),
                ])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let entries = body["entries"].as_array().unwrap();
            if entries.is_empty() {
                break;
            }
            for e in entries {
                let v = String::from_utf8(STANDARD.decode(e["value"].as_str().unwrap()).unwrap())
                    .unwrap();
                let n = stored.len() as i64;
                stored.insert(n, v);
            }
            from = body["nextSequence"].as_str().unwrap().parse().unwrap();
        }
        (0i64, stored.len() as i64)
    };
    assert!(end_off > start_off);
    // Entries in log order are the partition's offsets in order.
    for a in &acked {
        let off = a["offset"].as_i64().unwrap();
        assert_eq!(
            stored.get(&off).map(String::as_str),
            a["value"].as_str(),
            "acknowledged offset {off} lost or moved"
        );
    }
    let values: BTreeSet<&String> = stored.values().collect();
    assert_eq!(
        values.len(),
        stored.len(),
        "a retried batch was written twice"
    );
    if let Some(kc) = kc {
        let out = kcat(
            &kc,
            &[
                "-b",
                &b,
                "-C",
                "-t",
                "crash",
                "-o",
                "beginning",
                "-e",
                "-f",
                "%o\n",
            ],
            None,
        );
        assert_eq!(
            out.lines().count(),
            stored.len(),
            "Kafka sees the same records"
        );
    }
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_survive_garbage_on_the_kafka_port() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = start(dir.path(), port, &[]).await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let frames: Vec<Vec<u8>> = vec![
        // A frame far past the size limit.
        i32::MAX.to_be_bytes().to_vec(),
        // A negative size.
        (-5i32).to_be_bytes().to_vec(),
        // An unknown API key.
        [
            &12i32.to_be_bytes()[..],
            &[0x7f, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0],
        ]
        .concat(),
        // A Produce whose body is cut short.
        [&10i32.to_be_bytes()[..], &[0, 0, 0, 9, 0, 0, 0, 1, 0, 0]].concat(),
        // A Produce v9 with a corrupt record batch: answered, not fatal.
        produce_with_bad_batch(),
    ];
    for f in frames {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        s.write_all(&f).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
    }
    let healthy = reqwest::get(format!("{}/-/healthy", server.base))
        .await
        .unwrap();
    assert_eq!(healthy.status(), 200);
    // A well-formed ApiVersions still works.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let body = [&[0u8, 18, 0, 0][..], &7i32.to_be_bytes(), &[0, 1, b'x']].concat();
    s.write_all(&(body.len() as i32).to_be_bytes())
        .await
        .unwrap();
    s.write_all(&body).await.unwrap();
    let len = s.read_i32().await.unwrap();
    let mut resp = vec![0u8; len as usize];
    s.read_exact(&mut resp).await.unwrap();
    assert_eq!(&resp[0..4], &7i32.to_be_bytes(), "correlation id");
    assert_eq!(&resp[4..6], &[0, 0], "no error");
    drop(server);
}

/// A Produce v3 request (acks=1) for topic "t" partition 0 with a batch whose CRC is wrong.
fn produce_with_bad_batch() -> Vec<u8> {
    let mut batch = vec![0u8; 61];
    batch[8..12].copy_from_slice(&49i32.to_be_bytes());
    batch[16] = 2; // magic
    batch[17..21].copy_from_slice(&0xdead_beefu32.to_be_bytes());
    let mut body = Vec::new();
    body.extend_from_slice(&0i16.to_be_bytes()); // Produce
    body.extend_from_slice(&3i16.to_be_bytes()); // v3
    body.extend_from_slice(&9i32.to_be_bytes()); // correlation id
    body.extend_from_slice(&(-1i16).to_be_bytes()); // no client id
    body.extend_from_slice(&(-1i16).to_be_bytes()); // no transactional id
    body.extend_from_slice(&1i16.to_be_bytes()); // acks
    body.extend_from_slice(&1000i32.to_be_bytes()); // timeout
    body.extend_from_slice(&1i32.to_be_bytes()); // one topic
    body.extend_from_slice(&1i16.to_be_bytes());
    body.push(b't');
    body.extend_from_slice(&1i32.to_be_bytes()); // one partition
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&(batch.len() as i32).to_be_bytes());
    body.extend_from_slice(&batch);
    [&(body.len() as i32).to_be_bytes()[..], &body].concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_serve_fetch_and_metadata_from_a_read_only_replica() {
    let Some(kc) = kcat_binary() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let writer = start(dir.path(), port, &[]).await;
    let wb = format!("127.0.0.1:{port}");
    kcat(
        &kc,
        &["-b", &wb, "-P", "-t", "mirror", "-K", ":"],
        Some("a:one\nb:two\n"),
    );

    let replica_dir = tempfile::tempdir().unwrap();
    let rport = free_port();
    let data = dir.path().join("data").display().to_string();
    let listen = format!("127.0.0.1:{rport}");
    let replica = ServerProcess::start(
        &[
            "--object-store",
            &data,
            "--read-only",
            "--kafka-listen",
            &listen,
        ],
        &replica_dir.path().join("replica.log"),
    )
    .await;
    let rb = format!("127.0.0.1:{rport}");
    // The replica follows the writer through the object store.
    let mut out = String::new();
    for _ in 0..100 {
        out = kcat(
            &kc,
            &[
                "-b",
                &rb,
                "-C",
                "-t",
                "mirror",
                "-o",
                "beginning",
                "-e",
                "-f",
                "%o %k %s\n",
            ],
            None,
        );
        if out.lines().count() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(out, "0 a one\n1 b two\n");
    let meta = kcat(&kc, &["-b", &rb, "-L", "-t", "mirror"], None);
    assert!(
        meta.contains("topic \"mirror\" with 1 partitions"),
        "{meta}"
    );
    // Producing to the replica is refused with a clear error, and nothing is written.
    let refused = Command::new(&kc)
        .args([
            "-b",
            &rb,
            "-P",
            "-t",
            "mirror",
            "-X",
            "message.timeout.ms=3000",
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b"nope\n")?;
            c.wait_with_output()
        })
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("uthorization") || err.contains("read-only") || !refused.status.success(),
        "{err}"
    );
    let out = kcat(
        &kc,
        &[
            "-b",
            &wb,
            "-C",
            "-t",
            "mirror",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%s\n",
        ],
        None,
    );
    assert_eq!(out, "one\ntwo\n");
    drop(replica);
    drop(writer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_close_a_connection_whose_request_exceeds_the_memory_budget() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("opendata.toml");
    std::fs::write(&config, "[limits]\nmemory_budget_bytes = 4096\n").unwrap();
    let port = free_port();
    let config = config.display().to_string();
    let server = start(dir.path(), port, &["--config", &config]).await;
    // A small request fits the budget and is answered.
    let api_versions = || {
        let body = [&[0u8, 18, 0, 0][..], &7i32.to_be_bytes(), &[0, 1, b'x']].concat();
        [&(body.len() as i32).to_be_bytes()[..], &body].concat()
    };
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(&api_versions()).await.unwrap();
    assert!(s.read_i32().await.unwrap() > 0);
    // A frame larger than the whole budget is refused before its body is read.
    let mut big = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    big.write_all(&100_000i32.to_be_bytes()).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), big.read(&mut buf))
        .await
        .expect("the server closes the connection")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    // The server and other connections carry on.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(&api_versions()).await.unwrap();
    assert!(s.read_i32().await.unwrap() > 0);
    let healthy = reqwest::get(format!("{}/-/healthy", server.base))
        .await
        .unwrap();
    assert_eq!(healthy.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_serve_kafka_python_a_second_client_library() {
    let Some(py) = kafka_python() else { return };
    let has_kafka_python = Command::new(&py)
        .args(["-c", "import kafka"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_kafka_python {
        assert!(
            std::env::var("CI").is_err(),
            "CI installs kafka-python (scripts/requirements-test.txt)"
        );
        eprintln!("skipping: kafka-python is not installed (run scripts/test.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = start(dir.path(), port, &[]).await;
    let b = format!("127.0.0.1:{port}");
    let lines = tokio::task::spawn_blocking(move || run_python(&py, &["kafka-python", &b, "kp"]))
        .await
        .unwrap();
    let consumed = of_kind(&lines, "consumed");
    assert_eq!(consumed.len(), 20, "{lines:?}");
    let mut values: Vec<&str> = consumed
        .iter()
        .map(|l| l["value"].as_str().unwrap())
        .collect();
    values.sort();
    values.dedup();
    assert_eq!(values.len(), 20);
    assert!(consumed.iter().all(|l| l["headers"] == json!([["h", "x"]])));
    // Keys hash to partitions: every key stays on one partition.
    let mut by_key: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for l in &consumed {
        by_key
            .entry(l["key"].as_str().unwrap().into())
            .or_default()
            .insert(l["partition"].as_i64().unwrap());
    }
    assert!(by_key.values().all(|p| p.len() == 1), "{by_key:?}");
    let committed = &of_kind(&lines, "committed")[0]["offsets"];
    let total: i64 = committed
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_i64().unwrap())
        .sum();
    assert_eq!(
        total, 20,
        "committed offsets add up to the records read: {committed}"
    );
    drop(server);
}
