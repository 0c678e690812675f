//! `opendata vector import | search`: a client for a running server's vector API.

pub mod io;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Args, Subcommand};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use prost::Message;
use serde_json::{Map, Value, json};

use self::io::{FileFormat, FileRecord, NpyReader};
use crate::api::vector::proto;
use crate::error::{Result, ServerError};

const PREFIX: &str = "/api/v1/vector/collections";

/// Where the server is and which collection to use.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Base URL of the server.
    #[arg(
        long,
        alias = "server",
        env = "OPENDATA_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// Bearer token for a server with authentication.
    #[arg(long, env = "OPENDATA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The collection.
    #[arg(long)]
    pub collection: String,
}

/// Vector subcommands.
#[derive(Debug, Subcommand)]
pub enum VectorCommand {
    /// Upload the vectors of a .fvecs, .npy or .jsonl file (ids of .fvecs and .npy rows
    /// are their 0-based row numbers; JSON Lines without an id get their line index).
    Import(ImportArgs),
    /// Find the nearest neighbours of one vector and print them.
    Search(SearchArgs),
}

/// Options of `opendata vector import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub target: Target,
    /// Create the collection first (an identical existing one is fine).
    #[arg(long)]
    pub create: bool,
    /// Dimension of the created collection [default: the file's].
    #[arg(long, requires = "create")]
    pub dimension: Option<u32>,
    /// Metric of the created collection: l2, cosine or dot.
    #[arg(long, default_value = "l2", requires = "create")]
    pub metric: String,
    /// An attribute of the created collection, as NAME:TYPE (repeatable), e.g. color:string.
    #[arg(long = "attribute", value_name = "NAME:TYPE", requires = "create")]
    pub attributes: Vec<String>,
    /// Vectors per upsert request.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    /// Upsert requests in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Acknowledge each batch once in memory (`memory`) instead of durable (`remote`).
    #[arg(long, default_value = "remote")]
    pub durability: String,
    /// Do not draw a progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// The file: .fvecs, .npy or .jsonl.
    pub file: PathBuf,
}

/// Options of `opendata vector search`.
#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub target: Target,
    /// The query vector as a JSON array, e.g. '[0.1, 0.2]'.
    #[arg(
        long,
        conflicts_with = "query_file",
        required_unless_present = "query_file"
    )]
    pub vector: Option<String>,
    /// Take the query vector from this .fvecs, .npy or .jsonl file.
    #[arg(long)]
    pub query_file: Option<PathBuf>,
    /// Which row of --query-file (0-based).
    #[arg(long, default_value_t = 0, requires = "query_file")]
    pub query_row: u64,
    /// How many neighbours.
    #[arg(short, long, default_value_t = 10)]
    pub k: usize,
    /// Posting lists to probe.
    #[arg(long)]
    pub nprobe: Option<usize>,
    /// Recall@k to aim for, in (0, 1].
    #[arg(long)]
    pub recall_target: Option<f64>,
    /// A filter in the JSON filter language, e.g. '{"color":"red"}'.
    #[arg(long)]
    pub filter: Option<String>,
    /// Fields to show besides id and score: vector, attributes, * or attribute names
    /// (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    pub fields: Vec<String>,
    /// Print the answer as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(target: &Target) -> Result<Self> {
        Ok(Self {
            http: super::http_client(target.token.as_deref())?,
            base: target.url.trim_end_matches('/').to_string(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{PREFIX}{path}", self.base)
    }

    /// Sends a request, retrying (with backoff) while the server answers 429 or 503.
    async fn send(&self, make: impl Fn() -> reqwest::RequestBuilder) -> Result<Bytes> {
        let mut attempt = 0u32;
        loop {
            let resp = make()
                .send()
                .await
                .map_err(|e| ServerError::Client(format!("cannot reach {}: {e}", self.base)))?;
            let status = resp.status();
            let body = resp
                .bytes()
                .await
                .map_err(|e| ServerError::Client(format!("reading response: {e}")))?;
            if status.is_success() {
                return Ok(body);
            }
            if (status == 429 || status == 503) && attempt < 20 {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt.min(10)))).await;
                continue;
            }
            let message = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            return Err(ServerError::Client(format!(
                "server answered {status}: {message}"
            )));
        }
    }

    async fn post_json(&self, path: &str, body: &Value) -> Result<Value> {
        let text = body.to_string();
        let bytes = self
            .send(|| {
                self.http
                    .post(self.url(path))
                    .header("content-type", "application/json")
                    .body(text.clone())
            })
            .await?;
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ServerError::Client(format!("bad response: {e}")))?;
        Ok(v.get("data").cloned().unwrap_or(Value::Null))
    }

    async fn post_proto<M: Message + Default>(&self, path: &str, body: Vec<u8>) -> Result<M> {
        let body = Bytes::from(body);
        let bytes = self
            .send(|| {
                self.http
                    .post(self.url(path))
                    .header("content-type", "application/protobuf")
                    .body(body.clone())
            })
            .await?;
        M::decode(bytes).map_err(|e| ServerError::Client(format!("bad response: {e}")))
    }
}

fn read_error(path: &Path, e: io::ReadError) -> ServerError {
    let shown = path.display().to_string();
    let message = e.to_string();
    if message.contains(&shown) {
        ServerError::Client(message)
    } else {
        ServerError::Client(format!("{shown}: {message}"))
    }
}

/// A JSON attribute as a typed protobuf value (by its JSON kind; the server types it
/// against the collection's schema, turning integers into floats where needed).
fn attribute_to_proto(id: &str, name: &str, v: &Value) -> Result<proto::AttributeValue> {
    use proto::attribute_value::Value as V;
    let value = match v {
        Value::String(s) => V::StringValue(s.clone()),
        Value::Bool(b) => V::BoolValue(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => V::IntValue(i),
            None => V::FloatValue(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::Array(items) => V::StringListValue(proto::StringList {
            values: items
                .iter()
                .map(|i| match i {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(ServerError::Client(format!(
                        "vector {id:?}: attribute {name:?}: list elements must be strings, got {other}"
                    ))),
                })
                .collect::<Result<_>>()?,
        }),
        other => {
            return Err(ServerError::Client(format!(
                "vector {id:?}: attribute {name:?}: {other} is not a string, number, bool or list of strings"
            )));
        }
    };
    Ok(proto::AttributeValue { value: Some(value) })
}

fn record_to_proto(r: FileRecord) -> Result<proto::Vector> {
    let attributes = r
        .attributes
        .iter()
        .map(|(k, v)| Ok((k.clone(), attribute_to_proto(&r.id, k, v)?)))
        .collect::<Result<_>>()?;
    Ok(proto::Vector {
        id: r.id,
        values: r.vector,
        attributes,
    })
}

/// How many vectors `path` holds, when the format tells cheaply.
fn count_hint(path: &Path, dimension: usize) -> Option<u64> {
    match FileFormat::from_path(path).ok()? {
        FileFormat::Fvecs => {
            let len = std::fs::metadata(path).ok()?.len();
            Some(len / (4 + 4 * dimension as u64))
        }
        FileFormat::Npy => {
            let f = std::fs::File::open(path).ok()?;
            let r = NpyReader::new(std::io::BufReader::new(f)).ok()?;
            Some(r.header().rows)
        }
        FileFormat::JsonLines => None,
    }
}

fn parse_attribute_arg(s: &str) -> Result<(String, String)> {
    let (name, ty) = s.split_once(':').ok_or_else(|| {
        ServerError::Client(format!(
            "--attribute {s:?}: expected NAME:TYPE, e.g. color:string"
        ))
    })?;
    Ok((name.to_string(), ty.to_string()))
}

async fn import(args: ImportArgs) -> Result<()> {
    let client = Arc::new(Client::new(&args.target)?);
    let name = args.target.collection.clone();
    let path = args.file.clone();
    // Fail early on an unknown extension or an unreadable file.
    let dimension = io::first_dimension(&path).map_err(|e| read_error(&path, e))?;
    if args.create {
        let dim = args.dimension.unwrap_or(dimension as u32);
        let mut attributes = Map::new();
        for a in &args.attributes {
            let (n, t) = parse_attribute_arg(a)?;
            attributes.insert(n, Value::String(t));
        }
        client
            .post_json(
                "",
                &json!({"name": name, "dimension": dim, "metric": args.metric, "attributes": attributes}),
            )
            .await?;
    }
    let total = count_hint(&path, dimension);
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        let bar = match total {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::new_spinner(),
        };
        let template = if total.is_some() {
            "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} vectors ({per_sec}, eta {eta})"
        } else {
            "{spinner} [{elapsed_precise}] {human_pos} vectors ({per_sec})"
        };
        bar.set_style(
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    };

    // A reader thread turns the file into encoded batches; `concurrency` uploads run at once.
    let concurrency = args.concurrency.max(1);
    let batch_size = args.batch_size.max(1);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<(usize, Vec<u8>)>>(concurrency * 2);
    let durability = args.durability.clone();
    let reader_path = path.clone();
    let reader = std::thread::spawn(move || {
        let records = match io::open(&reader_path) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.blocking_send(Err(read_error(&reader_path, e)));
                return;
            }
        };
        let mut batch = Vec::with_capacity(batch_size);
        let flush = |batch: &mut Vec<proto::Vector>| {
            let req = proto::UpsertRequest {
                vectors: std::mem::take(batch),
                durability: durability.clone(),
            };
            (req.vectors.len(), req.encode_to_vec())
        };
        for r in records {
            let item = r
                .map_err(|e| read_error(&reader_path, e))
                .and_then(record_to_proto);
            match item {
                Ok(v) => batch.push(v),
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
            if batch.len() >= batch_size && tx.blocking_send(Ok(flush(&mut batch))).is_err() {
                return;
            }
        }
        if !batch.is_empty() {
            let _ = tx.blocking_send(Ok(flush(&mut batch)));
        }
    });

    let started = Instant::now();
    let upsert_path = format!("/{name}/upsert");
    let batches = Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let mut uploads = batches
        .map(|item| {
            let client = client.clone();
            let upsert_path = upsert_path.clone();
            async move {
                let (n, body) = item?;
                let r: proto::WriteResponse = client.post_proto(&upsert_path, body).await?;
                Ok::<_, ServerError>((n, r))
            }
        })
        .buffer_unordered(concurrency);
    let (mut sent, mut new) = (0u64, 0u64);
    let mut failure = None;
    while let Some(r) = uploads.next().await {
        match r {
            Ok((n, resp)) => {
                sent += n as u64;
                new += resp.missing;
                bar.inc(n as u64);
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    drop(uploads);
    let _ = reader.join();
    bar.finish_and_clear();
    if let Some(e) = failure {
        return Err(ServerError::Client(format!(
            "import stopped after {sent} vectors: {e}"
        )));
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "imported {sent} vectors ({new} new) into {name:?} in {secs:.1}s ({:.0} vectors/s)",
        sent as f64 / secs.max(1e-9)
    );
    Ok(())
}

/// The query vector: from --vector, or row --query-row of --query-file.
fn query_vector(args: &SearchArgs) -> Result<Vec<f32>> {
    if let Some(text) = &args.vector {
        let v: Vec<f64> = serde_json::from_str(text).map_err(|e| {
            ServerError::Client(format!("--vector must be a JSON array of numbers: {e}"))
        })?;
        return Ok(v.into_iter().map(|x| x as f32).collect());
    }
    let path = args
        .query_file
        .as_ref()
        .ok_or_else(|| ServerError::Client("give --vector or --query-file".into()))?;
    let mut records = io::open(path).map_err(|e| read_error(path, e))?;
    let mut row = 0u64;
    loop {
        match records.next() {
            Some(Ok(r)) if row == args.query_row => return Ok(r.vector),
            Some(Ok(_)) => row += 1,
            Some(Err(e)) => return Err(read_error(path, e)),
            None => {
                return Err(ServerError::Client(format!(
                    "{}: has {row} rows; --query-row {} is past the end",
                    path.display(),
                    args.query_row
                )));
            }
        }
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The hits of a search answer as a table: rank, id, score, then the fields asked for.
pub fn format_table(data: &Value) -> String {
    let hits = data["hits"].as_array().cloned().unwrap_or_default();
    let mut attr_names: Vec<String> = Vec::new();
    for h in &hits {
        if let Some(a) = h["attributes"].as_object() {
            for k in a.keys() {
                if !attr_names.contains(k) {
                    attr_names.push(k.clone());
                }
            }
        }
    }
    attr_names.sort();
    let show_vector = hits.iter().any(|h| h.get("vector").is_some());
    let mut header = vec!["rank".to_string(), "id".to_string(), "score".to_string()];
    header.extend(attr_names.iter().cloned());
    if show_vector {
        header.push("vector".to_string());
    }
    let mut rows = vec![header];
    for (i, h) in hits.iter().enumerate() {
        let mut row = vec![
            (i + 1).to_string(),
            cell(&h["id"]),
            h["score"]
                .as_f64()
                .map_or_else(|| cell(&h["score"]), |s| format!("{s:.6}")),
        ];
        for a in &attr_names {
            row.push(h["attributes"].get(a).map(cell).unwrap_or_default());
        }
        if show_vector {
            let v = h["vector"].as_array().cloned().unwrap_or_default();
            let shown: Vec<String> = v
                .iter()
                .take(4)
                .map(|x| {
                    x.as_f64()
                        .map_or_else(|| cell(x), |f| (f as f32).to_string())
                })
                .collect();
            let more = if v.len() > 4 {
                format!(", … ({} more)", v.len() - 4)
            } else {
                String::new()
            };
            row.push(format!("[{}{more}]", shown.join(", ")));
        }
        rows.push(row);
    }
    let cols = rows[0].len();
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, s)| {
                if c + 1 == cols {
                    s.clone()
                } else {
                    format!("{s:<w$}", w = widths[c])
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    let s = &data["stats"];
    if s.is_object() {
        out.push_str(&format!(
            "plan {}, {} posting lists probed, {} candidates scored",
            cell(&s["plan"]),
            s["postings_probed"],
            s["candidates_scored"]
        ));
        if let Some(m) = s.get("filter_matches") {
            out.push_str(&format!(", {m} filter matches"));
        }
        out.push('\n');
    }
    out
}

async fn search(args: SearchArgs) -> Result<()> {
    let client = Client::new(&args.target)?;
    let vector = query_vector(&args)?;
    let mut body = json!({"vector": vector, "k": args.k, "fields": args.fields});
    if let Some(n) = args.nprobe {
        body["nprobe"] = json!(n);
    }
    if let Some(r) = args.recall_target {
        body["recall_target"] = json!(r);
    }
    if let Some(f) = &args.filter {
        let f: Value = serde_json::from_str(f)
            .map_err(|e| ServerError::Client(format!("--filter is not valid JSON: {e}")))?;
        body["filter"] = f;
    }
    let started = Instant::now();
    let data = client
        .post_json(&format!("/{}/search", args.target.collection), &body)
        .await?;
    let elapsed = started.elapsed();
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&data).unwrap_or_default()
        )?;
    } else {
        write!(out, "{}", format_table(&data))?;
        writeln!(out, "{:.1} ms", elapsed.as_secs_f64() * 1000.0)?;
    }
    Ok(())
}

impl VectorCommand {
    /// Runs the command against the server.
    pub async fn run(self) -> Result<()> {
        match self {
            VectorCommand::Import(args) => import(args).await,
            VectorCommand::Search(args) => search(args).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_convert_json_attributes_by_kind() {
        use proto::attribute_value::Value as V;
        let v = attribute_to_proto("a", "n", &json!(3)).unwrap();
        assert_eq!(v.value, Some(V::IntValue(3)));
        let v = attribute_to_proto("a", "n", &json!(2.5)).unwrap();
        assert_eq!(v.value, Some(V::FloatValue(2.5)));
        let v = attribute_to_proto("a", "n", &json!(["x", "y"])).unwrap();
        assert_eq!(
            v.value,
            Some(V::StringListValue(proto::StringList {
                values: vec!["x".into(), "y".into()]
            }))
        );
        let e = attribute_to_proto("a", "n", &json!(null)).unwrap_err();
        assert!(e.to_string().contains("attribute \"n\""), "{e}");
        let e = attribute_to_proto("a", "n", &json!([1])).unwrap_err();
        assert!(e.to_string().contains("must be strings"), "{e}");
    }

    #[test]
    fn should_print_hits_as_a_table() {
        let data = json!({
            "hits": [
                {"id": "a", "score": 0.5, "attributes": {"color": "red"}, "vector": [1.0, 2.0]},
                {"id": "bb", "score": 1.25, "attributes": {"size": 3}, "vector": [1, 2, 3, 4, 5]}
            ],
            "stats": {"plan": "flat", "postings_probed": 0, "candidates_scored": 2}
        });
        let t = format_table(&data);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "rank  id  score     color  size  vector");
        assert!(lines[1].starts_with("1     a   0.500000  red"), "{t}");
        assert!(lines[2].contains("[1, 2, 3, 4, … (1 more)]"), "{t}");
        assert!(lines[3].contains("plan flat"), "{t}");
    }

    #[test]
    fn should_read_the_query_row_of_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q.fvecs");
        let mut f = std::fs::File::create(&p).unwrap();
        io::write_fvecs(&mut f, &[vec![1.0, 2.0], vec![3.0, 4.0]]).unwrap();
        drop(f);
        let args = |row| SearchArgs {
            target: Target {
                url: "http://x".into(),
                token: None,
                collection: "c".into(),
            },
            vector: None,
            query_file: Some(p.clone()),
            query_row: row,
            k: 10,
            nprobe: None,
            recall_target: None,
            filter: None,
            fields: vec![],
            json: false,
        };
        assert_eq!(query_vector(&args(1)).unwrap(), vec![3.0, 4.0]);
        let e = query_vector(&args(2)).unwrap_err().to_string();
        assert!(e.contains("past the end"), "{e}");
        let mut a = args(0);
        a.vector = Some("[1, 2.5]".into());
        assert_eq!(query_vector(&a).unwrap(), vec![1.0, 2.5]);
        a.vector = Some("nope".into());
        assert!(
            query_vector(&a)
                .unwrap_err()
                .to_string()
                .contains("--vector")
        );
    }
}
