//! The Kafka wire protocol over the log database (`[kafka]`; off unless
//! `kafka.listen` is set).
//!
//! A topic partition is a log key (`topic/partition`) with dense offsets kept by the
//! log database itself (see `opendata_log::LogDb::produce`), so what Kafka clients
//! produce is readable through `/api/v1/log/scan`, and what the HTTP API appends to a
//! partition's key is fetched by Kafka consumers. This module only speaks the
//! protocol: framing, versions, record batches ([`records`]) and the group
//! coordinator ([`groups`]). The server is a one-broker cluster (node 0) that leads
//! every partition; durability comes from the object store, not from replicas.

mod connection;
pub mod groups;
pub mod records;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use opendata_log::LogHandle;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::server::auth::Tokens;

/// `[kafka]`: the Kafka listener and its limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaServerConfig {
    /// Address of the Kafka listener; unset, Kafka is not served.
    pub listen: Option<SocketAddr>,
    /// Host clients are told to connect to (default: the listen address's IP, or
    /// `localhost` when listening on every interface).
    pub advertised_host: Option<String>,
    /// Port clients are told to connect to (default: the bound port).
    pub advertised_port: Option<u16>,
    /// Client connections at once; further ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// Largest request frame, in bytes; a larger one closes the connection before it is
    /// read (Kafka's `socket.request.max.bytes`).
    pub max_request_bytes: usize,
    /// What the compressed record batches of one produce request may decompress to,
    /// all together, in bytes (`MESSAGE_TOO_LARGE` past it).
    pub max_decompressed_bytes: usize,
    /// Requests a connection may have in flight (read but not yet answered).
    pub max_in_flight: usize,
    /// Most bytes one Fetch response carries.
    pub max_fetch_bytes: usize,
    /// Longest a Fetch may wait for data, whatever the client asks.
    pub max_fetch_wait_ms: u64,
    /// Create a topic when a client asks for an unknown one (Kafka's
    /// `auto.create.topics.enable`).
    pub auto_create_topics: bool,
    /// Partitions of an auto-created topic, and of CreateTopics with -1.
    pub default_partitions: u32,
    /// Shortest session timeout a group member may ask for.
    pub group_min_session_timeout_ms: u64,
    /// Longest session timeout a group member may ask for.
    pub group_max_session_timeout_ms: u64,
    /// How long an empty group waits for more members before its first rebalance.
    pub group_initial_rebalance_delay_ms: u64,
    /// Members one group may have.
    pub group_max_members: usize,
    /// Groups the coordinator tracks at once.
    pub max_groups: usize,
}

impl Default for KafkaServerConfig {
    fn default() -> Self {
        Self {
            listen: None,
            advertised_host: None,
            advertised_port: None,
            max_connections: 1024,
            max_request_bytes: 16 * 1024 * 1024,
            max_decompressed_bytes: 64 * 1024 * 1024,
            max_in_flight: 16,
            max_fetch_bytes: 32 * 1024 * 1024,
            max_fetch_wait_ms: 30_000,
            auto_create_topics: true,
            default_partitions: 1,
            group_min_session_timeout_ms: 1_000,
            group_max_session_timeout_ms: 300_000,
            group_initial_rebalance_delay_ms: 500,
            group_max_members: 1_000,
            max_groups: 10_000,
        }
    }
}

impl KafkaServerConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_request_bytes < 1024 {
            return Err("kafka.max_request_bytes must be at least 1024".into());
        }
        if self.max_decompressed_bytes == 0 || self.max_fetch_bytes == 0 {
            return Err(
                "kafka.max_decompressed_bytes and kafka.max_fetch_bytes must be positive".into(),
            );
        }
        if self.default_partitions == 0 || self.default_partitions > opendata_log::MAX_PARTITIONS {
            return Err(format!(
                "kafka.default_partitions must be 1 to {}",
                opendata_log::MAX_PARTITIONS
            ));
        }
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms {
            return Err("kafka.group_min_session_timeout_ms exceeds the maximum".into());
        }
        Ok(())
    }

    fn group_max_session_timeout(&self) -> Duration {
        Duration::from_millis(self.group_max_session_timeout_ms)
    }
}

/// The versions of each API we answer: `None` for APIs we do not serve.
///
/// Produce stops at v11 and Fetch at v12: later versions name topics by id only.
pub fn versions(key: ApiKey) -> Option<(i16, i16)> {
    let ours = ours(key)?;
    // Never beyond what the protocol crate can encode.
    let known = key.valid_versions();
    let range = (ours.0.max(known.min), ours.1.min(known.max));
    (range.0 <= range.1).then_some(range)
}

fn ours(key: ApiKey) -> Option<(i16, i16)> {
    Some(match key {
        ApiKey::Produce => (3, 11),
        ApiKey::Fetch => (4, 12),
        ApiKey::ListOffsets => (1, 6),
        ApiKey::Metadata => (0, 12),
        ApiKey::OffsetCommit => (0, 8),
        ApiKey::OffsetFetch => (0, 8),
        ApiKey::FindCoordinator => (0, 4),
        ApiKey::JoinGroup => (0, 9),
        ApiKey::Heartbeat => (0, 4),
        ApiKey::LeaveGroup => (0, 5),
        ApiKey::SyncGroup => (0, 5),
        ApiKey::DescribeGroups => (0, 5),
        ApiKey::ListGroups => (0, 4),
        ApiKey::SaslHandshake => (0, 1),
        ApiKey::ApiVersions => (0, 3),
        ApiKey::CreateTopics => (0, 7),
        ApiKey::DeleteTopics => (0, 6),
        ApiKey::InitProducerId => (0, 4),
        ApiKey::OffsetForLeaderEpoch => (2, 4),
        ApiKey::DescribeConfigs => (0, 4),
        ApiKey::SaslAuthenticate => (0, 2),
        ApiKey::CreatePartitions => (0, 3),
        ApiKey::DeleteGroups => (0, 2),
        _ => return None,
    })
}

/// What every connection shares.
pub(crate) struct Shared {
    log: LogHandle,
    config: KafkaServerConfig,
    tokens: Arc<Tokens>,
    /// The group coordinator (the writer only: replicas answer
    /// `COORDINATOR_NOT_AVAILABLE`).
    coordinator: Option<groups::Coordinator>,
    /// (host, port) in Metadata and FindCoordinator answers.
    advertised: (String, u16),
    /// What running requests may hold (`limits.memory_budget_bytes`): every request
    /// frame is reserved from it until its answer is written.
    budget: opendata_common::budget::MemoryBudget,
}

/// Starts the Kafka listener on `tcp`; it stops when `stop` turns true.
pub fn listen(
    tcp: TcpListener,
    log: LogHandle,
    config: KafkaServerConfig,
    tokens: Arc<Tokens>,
    budget: opendata_common::budget::MemoryBudget,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let addr = tcp.local_addr()?;
    let host = config.advertised_host.clone().unwrap_or_else(|| {
        if addr.ip().is_unspecified() {
            "localhost".to_string()
        } else {
            addr.ip().to_string()
        }
    });
    let port = config.advertised_port.unwrap_or(addr.port());
    let coordinator = (!log.is_replica()).then(|| {
        groups::Coordinator::new(groups::GroupLimits {
            min_session_timeout: Duration::from_millis(config.group_min_session_timeout_ms),
            max_session_timeout: Duration::from_millis(config.group_max_session_timeout_ms),
            initial_rebalance_delay: Duration::from_millis(config.group_initial_rebalance_delay_ms),
            max_members: config.group_max_members,
            max_groups: config.max_groups,
        })
    });
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let shared = Arc::new(Shared {
        log,
        config,
        tokens,
        coordinator,
        advertised: (host, port),
        budget,
    });
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            while connections.try_join_next().is_some() {}
            let slot = tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
            };
            let accepted = tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                accepted = tcp.accept() => accepted,
            };
            let (socket, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a Kafka connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = socket.set_nodelay(true);
            let shared = shared.clone();
            connections.spawn(async move {
                let _slot = slot;
                if let Err(e) = connection::serve(socket, shared, peer.to_string()).await {
                    tracing::debug!(%peer, error = %e, "Kafka connection ended with an error");
                }
            });
        }
        connections.shutdown().await;
    });
    Ok((addr, task))
}
