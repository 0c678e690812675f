//! `opendata log append | scan | tail | keys`: a client for a running server's log API.

use std::io::{BufRead, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use clap::{Args, Subcommand};

use crate::api::log::proto::{
    AppendRequest, AppendResponse, Entry, KeysResponse, Record, ScanResponse,
};
use crate::error::{Result, ServerError};

/// Where the server is and which key to use.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Base URL of the server.
    #[arg(long, env = "OPENDATA_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Bearer token for a server with authentication.
    #[arg(long, env = "OPENDATA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// A log key, as text or base64.
#[derive(Debug, Clone, Args)]
pub struct KeyArg {
    /// The log key, as text.
    #[arg(
        long,
        conflicts_with = "key_base64",
        required_unless_present = "key_base64"
    )]
    pub key: Option<String>,
    /// The log key, base64-encoded (for binary keys).
    #[arg(long)]
    pub key_base64: Option<String>,
}

impl KeyArg {
    fn bytes(&self) -> Result<Bytes> {
        match (&self.key, &self.key_base64) {
            (Some(k), _) => Ok(Bytes::from(k.clone())),
            (None, Some(b)) => {
                crate::api::log::proto::decode_base64(b).map_err(ServerError::Client)
            }
            (None, None) => Err(ServerError::Client("give --key or --key-base64".into())),
        }
    }

    fn query(&self) -> Result<(String, String)> {
        Ok(("key_base64".to_string(), STANDARD.encode(self.bytes()?)))
    }
}

/// Log subcommands.
#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Append records: each --value, or else each line of standard input.
    Append {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        key: KeyArg,
        /// A value to append (repeatable). Without it, lines are read from standard input.
        #[arg(long)]
        value: Vec<String>,
        /// Records per request when reading standard input.
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Acknowledge once in memory instead of once durable in the object store.
        #[arg(long)]
        no_durable: bool,
        /// Only append if the key's last sequence is this.
        #[arg(long, conflicts_with = "expect_empty")]
        expect_last_seq: Option<u64>,
        /// Only append if the key has no entries.
        #[arg(long)]
        expect_empty: bool,
    },
    /// Print a key's entries.
    Scan {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        key: KeyArg,
        /// First sequence.
        #[arg(long, default_value_t = 0)]
        start_seq: u64,
        /// End sequence (exclusive).
        #[arg(long)]
        end_seq: Option<u64>,
        /// Only entries appended at or after this time (ms since the Unix epoch).
        #[arg(long)]
        start_time: Option<u64>,
        /// Most entries to print.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// Print each entry as a JSON line.
        #[arg(long)]
        json: bool,
    },
    /// Print new entries of a key as they arrive (until interrupted).
    Tail {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        key: KeyArg,
        /// Start at this sequence instead of after the key's newest entry.
        #[arg(long)]
        from: Option<u64>,
        /// Print each entry as a JSON line.
        #[arg(long)]
        json: bool,
    },
    /// List keys.
    Keys {
        #[command(flatten)]
        target: Target,
        /// Only keys starting with this text.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Most keys to list.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(target: &Target) -> Result<Self> {
        Ok(Self {
            http: super::http_client(target.token.as_deref())?,
            base: target.server.trim_end_matches('/').to_string(),
        })
    }

    async fn check(resp: reqwest::Response) -> Result<Bytes> {
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| ServerError::Client(format!("reading response: {e}")))?;
        if status.is_success() {
            return Ok(body);
        }
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        Err(ServerError::Client(format!(
            "server answered {status}: {message}"
        )))
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<T> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .query(query)
            .header("accept", "application/protobuf+json")
            .send()
            .await
            .map_err(|e| ServerError::Client(format!("cannot reach {}: {e}", self.base)))?;
        let body = Self::check(resp).await?;
        serde_json::from_slice(&body).map_err(|e| ServerError::Client(format!("bad response: {e}")))
    }

    async fn append(&self, req: &AppendRequest) -> Result<AppendResponse> {
        let resp = self
            .http
            .post(format!("{}/api/v1/log/append", self.base))
            .header("content-type", "application/protobuf+json")
            .body(serde_json::to_vec(req).expect("requests serialize"))
            .send()
            .await
            .map_err(|e| ServerError::Client(format!("cannot reach {}: {e}", self.base)))?;
        let body = Self::check(resp).await?;
        serde_json::from_slice(&body).map_err(|e| ServerError::Client(format!("bad response: {e}")))
    }
}

fn print_entry(out: &mut impl Write, e: &Entry, json: bool) -> Result<()> {
    if json {
        let line = serde_json::json!({
            "key": String::from_utf8_lossy(&e.key),
            "sequence": e.sequence,
            "timestampMs": e.timestamp_ms,
            "value": String::from_utf8_lossy(&e.value),
        });
        writeln!(out, "{line}")?;
    } else {
        writeln!(
            out,
            "{}\t{}\t{}",
            e.sequence,
            e.timestamp_ms,
            String::from_utf8_lossy(&e.value)
        )?;
    }
    Ok(())
}

impl LogCommand {
    /// Runs the command against the server.
    pub async fn run(self) -> Result<()> {
        let stdout = std::io::stdout();
        match self {
            LogCommand::Append {
                target,
                key,
                value,
                batch,
                no_durable,
                expect_last_seq,
                expect_empty,
            } => {
                let client = Client::new(&target)?;
                let key = key.bytes()?;
                let make = |values: Vec<String>| AppendRequest {
                    records: values
                        .into_iter()
                        .map(|v| Record {
                            key: key.clone(),
                            value: Bytes::from(v),
                        })
                        .collect(),
                    await_durable: Some(!no_durable),
                    expected_last_sequence: expect_last_seq,
                    expect_empty,
                    condition_key: Bytes::new(),
                };
                let mut out = stdout.lock();
                if !value.is_empty() {
                    let resp = client.append(&make(value)).await?;
                    for s in resp.sequences {
                        writeln!(out, "{s}")?;
                    }
                    return Ok(());
                }
                let stdin = std::io::stdin();
                let mut pending = Vec::new();
                for line in stdin.lock().lines() {
                    pending.push(line?);
                    if pending.len() >= batch.max(1) {
                        let resp = client.append(&make(std::mem::take(&mut pending))).await?;
                        for s in resp.sequences {
                            writeln!(out, "{s}")?;
                        }
                    }
                }
                if !pending.is_empty() {
                    let resp = client.append(&make(pending)).await?;
                    for s in resp.sequences {
                        writeln!(out, "{s}")?;
                    }
                }
                Ok(())
            }
            LogCommand::Scan {
                target,
                key,
                start_seq,
                end_seq,
                start_time,
                limit,
                json,
            } => {
                let client = Client::new(&target)?;
                let mut out = stdout.lock();
                let mut next = start_seq;
                let mut left = limit;
                while left > 0 {
                    let mut q = vec![
                        key.query()?,
                        ("start_seq".into(), next.to_string()),
                        ("limit".into(), left.min(10_000).to_string()),
                    ];
                    if let Some(e) = end_seq {
                        q.push(("end_seq".into(), e.to_string()));
                    }
                    if let Some(t) = start_time {
                        q.push(("start_time".into(), t.to_string()));
                    }
                    let resp: ScanResponse = client.get("/api/v1/log/scan", &q).await?;
                    if resp.entries.is_empty() {
                        break;
                    }
                    for e in &resp.entries {
                        print_entry(&mut out, e, json)?;
                    }
                    left -= resp.entries.len();
                    next = resp.next_sequence.unwrap_or(next);
                }
                Ok(())
            }
            LogCommand::Tail {
                target,
                key,
                from,
                json,
            } => {
                let client = Client::new(&target)?;
                let mut next = match from {
                    Some(f) => f,
                    None => {
                        let raw = key.bytes()?;
                        let q = vec![
                            ("prefix_base64".to_string(), STANDARD.encode(&raw)),
                            ("limit".to_string(), "1".to_string()),
                        ];
                        let keys: KeysResponse = client.get("/api/v1/log/keys", &q).await?;
                        keys.keys
                            .iter()
                            .find(|k| k.key == raw)
                            .map_or(0, |k| k.last_sequence + 1)
                    }
                };
                loop {
                    let q = vec![
                        key.query()?,
                        ("start_seq".into(), next.to_string()),
                        ("follow".into(), "true".into()),
                        ("timeout_ms".into(), "30000".into()),
                    ];
                    let resp: ScanResponse = client.get("/api/v1/log/scan", &q).await?;
                    let mut out = stdout.lock();
                    for e in &resp.entries {
                        print_entry(&mut out, e, json)?;
                    }
                    out.flush()?;
                    next = resp.next_sequence.unwrap_or(next);
                }
            }
            LogCommand::Keys {
                target,
                prefix,
                limit,
            } => {
                let client = Client::new(&target)?;
                let mut out = stdout.lock();
                let mut after: Option<Bytes> = None;
                let mut left = limit;
                while left > 0 {
                    let mut q = vec![
                        (
                            "prefix_base64".to_string(),
                            STANDARD.encode(prefix.as_bytes()),
                        ),
                        ("limit".to_string(), left.min(10_000).to_string()),
                    ];
                    if let Some(a) = &after {
                        q.push(("after_base64".to_string(), STANDARD.encode(a)));
                    }
                    let resp: KeysResponse = client.get("/api/v1/log/keys", &q).await?;
                    for k in &resp.keys {
                        writeln!(
                            out,
                            "{}\t{}",
                            String::from_utf8_lossy(&k.key),
                            k.last_sequence
                        )?;
                    }
                    left = left.saturating_sub(resp.keys.len());
                    if !resp.has_more {
                        break;
                    }
                    after = Some(resp.next_after);
                }
                Ok(())
            }
        }
    }
}
