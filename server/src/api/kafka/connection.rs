//! One Kafka client connection: size-prefixed frames in, responses out in request
//! order. Produce requests are queued on the log's commit path as they are read, so a
//! client's pipelined batches share group commits; every other request runs in order
//! once the ones before it have been answered (as a Kafka broker does per connection).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures::future::BoxFuture;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::fetch_response::FetchableTopicResponse;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::OffsetForLeaderTopicResult;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use opendata_common::storage::Durability;
use opendata_log::{GroupOffset, LogRead, ProducerBatch, TopicInfo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::groups::{self, Join};
use super::records::{self, BatchError};
use super::{Shared, versions};
use crate::server::auth::{Access, Grant};

/// Kafka error codes.
pub mod code {
    pub const NONE: i16 = 0;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const INVALID_REQUIRED_ACKS: i16 = 21;
    pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
    pub const GROUP_AUTHORIZATION_FAILED: i16 = 30;
    pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
    pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
    pub const ILLEGAL_SASL_STATE: i16 = 34;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    pub const INVALID_CONFIG: i16 = 40;
    pub const INVALID_REQUEST: i16 = 42;
    pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
    pub const SASL_AUTHENTICATION_FAILED: i16 = 58;
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const REQUEST_TIMED_OUT: i16 = 7;
}

/// Topic configs a client may set; anything else is `INVALID_CONFIG`.
pub const TOPIC_CONFIGS: &[(&str, &str)] = &[
    ("cleanup.policy", "delete"),
    ("message.timestamp.type", "CreateTime"),
    ("retention.ms", "-1"),
    ("retention.bytes", "-1"),
    ("max.message.bytes", "1048588"),
];

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn topic_name(v: &str) -> TopicName {
    TopicName(s(v))
}

/// Per-connection state.
struct Conn {
    shared: Arc<Shared>,
    peer: String,
    /// The SASL state: `None` before authentication (when tokens are configured).
    grant: Option<Grant>,
    sasl_mechanism_ok: bool,
    client_id: String,
}

type Pending = BoxFuture<'static, Option<BytesMut>>;

/// Serves one connection until the client closes it or breaks the protocol.
pub async fn serve<S>(stream: S, shared: Arc<Shared>, peer: String) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let max = shared.config.max_request_bytes;
    let (tx, mut rx) = mpsc::channel::<Pending>(shared.config.max_in_flight.max(1));
    let writer = tokio::spawn(async move {
        while let Some(pending) = rx.recv().await {
            if let Some(frame) = pending.await
                && wr.write_all(&frame).await.is_err()
            {
                return;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut conn = Conn {
        grant: if shared.tokens.is_empty() {
            Some(Grant::anonymous())
        } else {
            None
        },
        shared,
        peer,
        sasl_mechanism_ok: false,
        client_id: String::new(),
    };
    let result = async {
        loop {
            let size = match rd.read_i32().await {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            };
            if size < 8 || size as usize > max {
                tracing::debug!(peer = %conn.peer, size, "Kafka request size out of bounds; closing");
                return Ok(());
            }
            // The frame is held until its answer is written: reserve it first, and close
            // the connection (the client reconnects and retries) when the server's
            // memory budget is spent, rather than buffering without bound.
            let reservation = match conn.shared.budget.reserve(size as u64) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(peer = %conn.peer, size, error = %e, "Kafka request refused: memory budget spent; closing");
                    return Ok(());
                }
            };
            let mut body = vec![0u8; size as usize];
            rd.read_exact(&mut body).await?;
            let Some(pending) = conn.handle(Bytes::from(body)) else {
                return Ok(());
            };
            let pending: Pending = Box::pin(async move {
                let out = pending.await;
                drop(reservation);
                out
            });
            if tx.send(pending).await.is_err() {
                return Ok(());
            }
        }
    }
    .await;
    drop(tx);
    let _ = writer.await;
    result
}

fn frame<T: Encodable>(
    correlation_id: i32,
    header_version: i16,
    version: i16,
    body: &T,
) -> Option<BytesMut> {
    let mut out = BytesMut::with_capacity(64);
    out.put_i32(0);
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    if let Err(e) = header
        .encode(&mut out, header_version)
        .and_then(|()| body.encode(&mut out, version))
    {
        tracing::warn!(error = %e, version, "a Kafka response could not be encoded");
        return None;
    }
    let len = (out.len() - 4) as i32;
    out[0..4].copy_from_slice(&len.to_be_bytes());
    Some(out)
}

fn log_code(e: &opendata_log::Error) -> i16 {
    use opendata_log::Error as E;
    match e {
        E::InvalidInput(_) => code::INVALID_REQUEST,
        E::NotFound(_) => code::UNKNOWN_TOPIC_OR_PARTITION,
        E::AlreadyExists(_) => code::TOPIC_ALREADY_EXISTS,
        E::ProducerFenced { .. } => code::INVALID_PRODUCER_EPOCH,
        E::OutOfOrderSequence { .. } => code::OUT_OF_ORDER_SEQUENCE_NUMBER,
        E::Storage(opendata_common::Error::Backpressure(_)) => code::REQUEST_TIMED_OUT,
        E::Storage(_) => code::KAFKA_STORAGE_ERROR,
        _ => code::UNKNOWN_SERVER_ERROR,
    }
}

impl Conn {
    /// Decodes one request and returns its pending response; `None` closes the
    /// connection (an unknown API or a malformed header, as Kafka does).
    fn handle(&mut self, mut body: Bytes) -> Option<Pending> {
        let api = body.get(0..2).map(|b| i16::from_be_bytes([b[0], b[1]]))?;
        let version = body.get(2..4).map(|b| i16::from_be_bytes([b[0], b[1]]))?;
        let Ok(key) = ApiKey::try_from(api) else {
            tracing::debug!(peer = %self.peer, api, "unknown Kafka API; closing");
            return None;
        };
        let header_version = key.request_header_version(version);
        let header = match RequestHeader::decode(&mut body, header_version) {
            Ok(h) => h,
            Err(e) => {
                tracing::debug!(peer = %self.peer, error = %e, "bad Kafka request header; closing");
                return None;
            }
        };
        let cid = header.correlation_id;
        if let Some(c) = &header.client_id {
            self.client_id = c.to_string();
        }
        let resp_header = key.response_header_version(version);
        let supported = versions(key);
        if supported.is_none_or(|(lo, hi)| version < lo || version > hi) {
            if key == ApiKey::ApiVersions {
                let mut r = ApiVersionsResponse::default();
                r.error_code = code::UNSUPPORTED_VERSION;
                r.api_keys = api_list();
                return Some(Box::pin(async move { frame(cid, 0, 0, &r) }));
            }
            tracing::debug!(peer = %self.peer, ?key, version, "unsupported Kafka API version; closing");
            return None;
        }
        if self.grant.is_none()
            && !matches!(
                key,
                ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
            )
        {
            tracing::debug!(peer = %self.peer, ?key, "Kafka request before SASL authentication; closing");
            return None;
        }
        macro_rules! req {
            ($t:ty) => {
                match <$t>::decode(&mut body, version) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::debug!(peer = %self.peer, ?key, error = %e, "malformed Kafka request; closing");
                        return None;
                    }
                }
            };
        }
        macro_rules! answer {
            ($fut:expr) => {{
                let fut = $fut;
                Some(Box::pin(async move {
                    let r = fut.await;
                    frame(cid, resp_header, version, &r)
                }) as Pending)
            }};
        }
        let shared = self.shared.clone();
        match key {
            ApiKey::ApiVersions => {
                let mut r = ApiVersionsResponse::default();
                r.api_keys = api_list();
                answer!(async move { r })
            }
            ApiKey::SaslHandshake => {
                let req = req!(SaslHandshakeRequest);
                let mut r = SaslHandshakeResponse::default();
                r.mechanisms = vec![s("PLAIN")];
                if req.mechanism.as_str() == "PLAIN" {
                    self.sasl_mechanism_ok = true;
                } else {
                    r.error_code = code::UNSUPPORTED_SASL_MECHANISM;
                }
                answer!(async move { r })
            }
            ApiKey::SaslAuthenticate => {
                let req = req!(SaslAuthenticateRequest);
                let mut r = SaslAuthenticateResponse::default();
                if !self.sasl_mechanism_ok {
                    r.error_code = code::ILLEGAL_SASL_STATE;
                    r.error_message = Some(s("send SaslHandshake with PLAIN first"));
                } else {
                    // PLAIN: authzid NUL authcid NUL password; the password is a token.
                    let parts: Vec<&[u8]> = req.auth_bytes.split(|b| *b == 0).collect();
                    let grant = (parts.len() == 3)
                        .then(|| shared.tokens.grant(parts[2]))
                        .flatten();
                    match grant {
                        Some(g) => self.grant = Some(g),
                        None => {
                            r.error_code = code::SASL_AUTHENTICATION_FAILED;
                            r.error_message = Some(s(
                                "authentication failed: the password must be an API token",
                            ));
                        }
                    }
                }
                answer!(async move { r })
            }
            ApiKey::Metadata => {
                let req = req!(MetadataRequest);
                let grant = self.grant.clone();
                answer!(metadata(shared, req, version, grant))
            }
            ApiKey::Produce => {
                let req = req!(ProduceRequest);
                let grant = self.grant.clone();
                let acks = req.acks;
                let fut = produce(shared, req, grant);
                if acks == 0 {
                    // No response at all for acks=0, as in Kafka.
                    return Some(Box::pin(async move {
                        fut.await;
                        None
                    }));
                }
                answer!(fut)
            }
            ApiKey::Fetch => {
                let req = req!(FetchRequest);
                let grant = self.grant.clone();
                answer!(fetch(shared, req, version, grant))
            }
            ApiKey::ListOffsets => {
                let req = req!(ListOffsetsRequest);
                answer!(list_offsets(shared, req, version))
            }
            ApiKey::OffsetForLeaderEpoch => {
                let req = req!(OffsetForLeaderEpochRequest);
                answer!(offset_for_leader_epoch(shared, req))
            }
            ApiKey::CreateTopics => {
                let req = req!(CreateTopicsRequest);
                let grant = self.grant.clone();
                answer!(create_topics(shared, req, version, grant))
            }
            ApiKey::DeleteTopics => {
                let req = req!(DeleteTopicsRequest);
                let grant = self.grant.clone();
                answer!(delete_topics(shared, req, version, grant))
            }
            ApiKey::CreatePartitions => {
                let req = req!(CreatePartitionsRequest);
                let grant = self.grant.clone();
                answer!(create_partitions(shared, req, grant))
            }
            ApiKey::DescribeConfigs => {
                let req = req!(DescribeConfigsRequest);
                answer!(describe_configs(shared, req))
            }
            ApiKey::InitProducerId => {
                let req = req!(InitProducerIdRequest);
                let grant = self.grant.clone();
                answer!(init_producer_id(shared, req, grant))
            }
            ApiKey::FindCoordinator => {
                let req = req!(FindCoordinatorRequest);
                answer!(find_coordinator(shared, req, version))
            }
            ApiKey::JoinGroup => {
                let req = req!(JoinGroupRequest);
                let client = self.client_id.clone();
                let peer = self.peer.clone();
                answer!(join_group(shared, req, version, client, peer))
            }
            ApiKey::SyncGroup => {
                let req = req!(SyncGroupRequest);
                answer!(sync_group(shared, req, version))
            }
            ApiKey::Heartbeat => {
                let req = req!(HeartbeatRequest);
                answer!(async move {
                    let mut r = HeartbeatResponse::default();
                    r.error_code = match &shared.coordinator {
                        Some(c) => c.heartbeat(&req.group_id.0, &req.member_id, req.generation_id),
                        None => code::COORDINATOR_NOT_AVAILABLE,
                    };
                    r
                })
            }
            ApiKey::LeaveGroup => {
                let req = req!(LeaveGroupRequest);
                answer!(leave_group(shared, req, version))
            }
            ApiKey::OffsetCommit => {
                let req = req!(OffsetCommitRequest);
                let grant = self.grant.clone();
                answer!(offset_commit(shared, req, grant))
            }
            ApiKey::OffsetFetch => {
                let req = req!(OffsetFetchRequest);
                answer!(offset_fetch(shared, req, version))
            }
            ApiKey::DescribeGroups => {
                let req = req!(DescribeGroupsRequest);
                answer!(describe_groups(shared, req))
            }
            ApiKey::ListGroups => {
                let _req = req!(ListGroupsRequest);
                answer!(list_groups(shared, version))
            }
            ApiKey::DeleteGroups => {
                let req = req!(DeleteGroupsRequest);
                let grant = self.grant.clone();
                answer!(delete_groups(shared, req, grant))
            }
            _ => None,
        }
    }
}

/// Every API we answer with its version range (see [`versions`]).
fn api_list() -> Vec<ApiVersion> {
    ApiKey::iter()
        .filter_map(|k| {
            versions(k).map(|(lo, hi)| {
                let mut v = ApiVersion::default();
                v.api_key = k as i16;
                v.min_version = lo;
                v.max_version = hi;
                v
            })
        })
        .collect()
}

fn allowed(grant: &Option<Grant>, access: Access) -> bool {
    grant.as_ref().is_some_and(|g| g.allows("log", access))
}

async fn topics_of(shared: &Shared) -> BTreeMap<String, TopicInfo> {
    // The writer knows its topics without a storage read; a replica reads them.
    if let Ok(w) = shared.log.writer() {
        return w.topic_snapshot();
    }
    match shared.log.list_topics().await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "listing topics failed");
            BTreeMap::new()
        }
    }
}

fn broker(shared: &Shared) -> MetadataResponseBroker {
    let mut b = MetadataResponseBroker::default();
    b.node_id = BrokerId(0);
    b.host = s(&shared.advertised.0);
    b.port = i32::from(shared.advertised.1);
    b
}

fn topic_metadata(t: &TopicInfo, version: i16) -> MetadataResponseTopic {
    let mut mt = MetadataResponseTopic::default();
    mt.name = Some(topic_name(&t.name));
    if version >= 10 {
        mt.topic_id = uuid::Uuid::from_bytes(t.id);
    }
    mt.partitions = (0..t.partitions)
        .map(|p| {
            let mut mp = MetadataResponsePartition::default();
            mp.partition_index = p as i32;
            mp.leader_id = BrokerId(0);
            if version >= 7 {
                mp.leader_epoch = 0;
            }
            mp.replica_nodes = vec![BrokerId(0)];
            mp.isr_nodes = vec![BrokerId(0)];
            mp
        })
        .collect();
    mt
}

/// Creates `name` with the default partition count, for auto-creation; tolerates a
/// concurrent creation.
async fn auto_create(shared: &Shared, name: &str) -> Result<TopicInfo, i16> {
    let Ok(w) = shared.log.writer() else {
        return Err(code::UNKNOWN_TOPIC_OR_PARTITION);
    };
    match w
        .create_topic(name, shared.config.default_partitions, BTreeMap::new())
        .await
    {
        Ok(t) => Ok(t),
        Err(opendata_log::Error::AlreadyExists(_)) => topics_of(shared)
            .await
            .remove(name)
            .ok_or(code::UNKNOWN_TOPIC_OR_PARTITION),
        Err(opendata_log::Error::InvalidInput(_)) => Err(code::INVALID_TOPIC_EXCEPTION),
        Err(e) => Err(log_code(&e)),
    }
}

async fn metadata(
    shared: Arc<Shared>,
    req: MetadataRequest,
    version: i16,
    grant: Option<Grant>,
) -> MetadataResponse {
    let mut r = MetadataResponse::default();
    r.brokers = vec![broker(&shared)];
    if version >= 2 {
        r.cluster_id = Some(s("opendata"));
    }
    if version >= 1 {
        r.controller_id = BrokerId(0);
    }
    let topics = topics_of(&shared).await;
    let wanted: Option<Vec<String>> = match &req.topics {
        None => None,
        Some(list) if list.is_empty() && version == 0 => None,
        Some(list) => Some(
            list.iter()
                .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                .collect(),
        ),
    };
    match wanted {
        None => {
            r.topics = topics
                .values()
                .map(|t| topic_metadata(t, version))
                .collect()
        }
        Some(names) => {
            let auto = shared.config.auto_create_topics
                && (version < 4 || req.allow_auto_topic_creation)
                && allowed(&grant, Access::Admin);
            for name in names {
                let mt = match topics.get(&name) {
                    Some(t) => topic_metadata(t, version),
                    None if auto => match auto_create(&shared, &name).await {
                        Ok(t) => topic_metadata(&t, version),
                        Err(c) => {
                            let mut mt = MetadataResponseTopic::default();
                            mt.name = Some(topic_name(&name));
                            mt.error_code = c;
                            mt
                        }
                    },
                    None => {
                        let mut mt = MetadataResponseTopic::default();
                        mt.name = Some(topic_name(&name));
                        mt.error_code = code::UNKNOWN_TOPIC_OR_PARTITION;
                        mt
                    }
                };
                r.topics.push(mt);
            }
        }
    }
    r
}

/// Decodes, checks and queues every partition's batches now; the future awaits their
/// durability and builds the answer.
fn produce(
    shared: Arc<Shared>,
    req: ProduceRequest,
    grant: Option<Grant>,
) -> BoxFuture<'static, ProduceResponse> {
    type Part = (
        i32,
        Result<
            Vec<BoxFuture<'static, opendata_log::Result<opendata_log::ProduceResult>>>,
            (i16, String),
        >,
    );
    let durability = if req.acks == 0 {
        Durability::Memory
    } else {
        Durability::Remote
    };
    let bad_acks = !matches!(req.acks, -1..=1);
    let mut planned: Vec<(TopicName, Vec<Part>)> = Vec::new();
    // Topic descriptors from the writer's memory: no storage read on the hot path.
    let writer = shared.log.writer().ok().cloned();
    let topics = writer
        .as_ref()
        .map(|w| w.topic_snapshot())
        .unwrap_or_default();
    let mut budget = shared.config.max_decompressed_bytes;
    for t in req.topic_data {
        let name = t.name.0.to_string();
        let info = topics.get(&name);
        let mut parts = Vec::new();
        for p in t.partition_data {
            let idx = p.index;
            let planned_part = (|| {
                if bad_acks {
                    return Err((
                        code::INVALID_REQUIRED_ACKS,
                        format!("acks {} is not -1, 0 or 1", req.acks),
                    ));
                }
                if req.transactional_id.is_some() {
                    return Err((
                        code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                        "transactions are not supported".to_string(),
                    ));
                }
                let Some(w) = &writer else {
                    return Err((
                        code::TOPIC_AUTHORIZATION_FAILED,
                        "this server is a read-only replica: produce to the writer".to_string(),
                    ));
                };
                if !allowed(&grant, Access::Write) {
                    return Err((
                        code::TOPIC_AUTHORIZATION_FAILED,
                        "the token may not write to log".to_string(),
                    ));
                }
                let Some(info) = info else {
                    return Err((
                        code::UNKNOWN_TOPIC_OR_PARTITION,
                        format!("no topic {name:?}"),
                    ));
                };
                if idx < 0 || idx as u32 >= info.partitions {
                    return Err((
                        code::UNKNOWN_TOPIC_OR_PARTITION,
                        format!("topic {name:?} has no partition {idx}"),
                    ));
                }
                let data = p.records.clone().unwrap_or_default();
                let batches = records::decode_batches(&data, &mut budget).map_err(|e| {
                    let c = match &e {
                        BatchError::Corrupt(_) => code::CORRUPT_MESSAGE,
                        BatchError::Unsupported(_) => code::UNSUPPORTED_FOR_MESSAGE_FORMAT,
                        BatchError::TooLarge(_) => code::MESSAGE_TOO_LARGE,
                    };
                    (c, e.to_string())
                })?;
                let append_time = info
                    .configs
                    .get("message.timestamp.type")
                    .is_some_and(|v| v == "LogAppendTime");
                let mut futs = Vec::with_capacity(batches.len());
                for mut b in batches {
                    if append_time {
                        for r in &mut b.records {
                            r.attrs.timestamp_ms = None;
                        }
                    }
                    let producer = (b.producer_id >= 0).then_some(ProducerBatch {
                        producer_id: b.producer_id as u64,
                        epoch: b.producer_epoch,
                        base_sequence: b.base_sequence,
                    });
                    let fut = w
                        .produce_enqueue(&name, idx as u32, b.records, producer, durability)
                        .map_err(|e| (log_code(&e), e.to_string()))?;
                    futs.push(Box::pin(fut) as BoxFuture<'static, _>);
                }
                Ok(futs)
            })();
            parts.push((idx, planned_part));
        }
        planned.push((t.name, parts));
    }
    let append_time_topics: Vec<String> = topics
        .iter()
        .filter(|(_, t)| {
            t.configs
                .get("message.timestamp.type")
                .is_some_and(|v| v == "LogAppendTime")
        })
        .map(|(n, _)| n.clone())
        .collect();
    Box::pin(async move {
        let mut r = ProduceResponse::default();
        for (name, parts) in planned {
            let mut tr = TopicProduceResponse::default();
            let append_time = append_time_topics
                .iter()
                .any(|n| n.as_str() == name.0.as_str());
            for (idx, part) in parts {
                let mut pr = PartitionProduceResponse::default();
                pr.index = idx;
                pr.log_append_time_ms = -1;
                pr.base_offset = -1;
                match part {
                    Err((c, msg)) => {
                        pr.error_code = c;
                        pr.error_message = Some(s(&msg));
                    }
                    Ok(futs) => {
                        let mut first = None;
                        for f in futs {
                            match f.await {
                                Ok(res) => {
                                    first.get_or_insert(res);
                                }
                                Err(e) => {
                                    pr.error_code = log_code(&e);
                                    pr.error_message = Some(s(&e.to_string()));
                                    break;
                                }
                            }
                        }
                        if pr.error_code == code::NONE
                            && let Some(res) = first
                        {
                            pr.base_offset = res.base_offset as i64;
                            if append_time {
                                pr.log_append_time_ms = res.append_ms as i64;
                            }
                        }
                    }
                }
                tr.partition_responses.push(pr);
            }
            tr.name = name;
            r.responses.push(tr);
        }
        r
    })
}

async fn fetch(
    shared: Arc<Shared>,
    req: FetchRequest,
    version: i16,
    grant: Option<Grant>,
) -> FetchResponse {
    let start = Instant::now();
    let wait = Duration::from_millis(
        req.max_wait_ms
            .clamp(0, shared.config.max_fetch_wait_ms as i32) as u64,
    );
    let deadline = start + wait;
    let max_bytes = if req.max_bytes <= 0 {
        i32::MAX as usize
    } else {
        req.max_bytes as usize
    }
    .min(shared.config.max_fetch_bytes);
    let mut changes = shared.log.changes();
    let read_ok = allowed(&grant, Access::Read);
    loop {
        changes.borrow_and_update();
        let topics = topics_of(&shared).await;
        let mut r = FetchResponse::default();
        let mut total = 0usize;
        let mut any_error = false;
        for t in &req.topics {
            let name = t.topic.0.to_string();
            let info = topics.get(&name);
            let append_time = info.is_some_and(|i| {
                i.configs
                    .get("message.timestamp.type")
                    .is_some_and(|v| v == "LogAppendTime")
            });
            let mut tr = FetchableTopicResponse::default();
            tr.topic = t.topic.clone();
            for p in &t.partitions {
                let mut pd = fetch_response::PartitionData::default();
                pd.partition_index = p.partition;
                pd.high_watermark = -1;
                pd.last_stable_offset = -1;
                pd.preferred_read_replica = BrokerId(-1);
                pd.records = Some(Bytes::new());
                if !read_ok {
                    pd.error_code = code::TOPIC_AUTHORIZATION_FAILED;
                    any_error = true;
                    tr.partitions.push(pd);
                    continue;
                }
                let exists =
                    info.is_some_and(|i| p.partition >= 0 && (p.partition as u32) < i.partitions);
                let bounds = if exists {
                    shared
                        .log
                        .partition_offsets(&name, p.partition as u32)
                        .await
                } else {
                    Ok(None)
                };
                let (log_start, end) = match bounds {
                    Ok(Some(b)) => b,
                    Ok(None) => {
                        pd.error_code = code::UNKNOWN_TOPIC_OR_PARTITION;
                        any_error = true;
                        tr.partitions.push(pd);
                        continue;
                    }
                    Err(e) => {
                        pd.error_code = log_code(&e);
                        any_error = true;
                        tr.partitions.push(pd);
                        continue;
                    }
                };
                pd.high_watermark = end as i64;
                pd.last_stable_offset = end as i64;
                if version >= 5 {
                    pd.log_start_offset = log_start as i64;
                }
                let from = p.fetch_offset;
                if from < log_start as i64 || from > end as i64 {
                    pd.error_code = code::OFFSET_OUT_OF_RANGE;
                    any_error = true;
                    tr.partitions.push(pd);
                    continue;
                }
                if (from as u64) < end && total < max_bytes {
                    let budget = (p.partition_max_bytes.max(1) as usize).min(max_bytes - total);
                    match shared
                        .log
                        .read_partition(&name, p.partition as u32, from as u64, budget)
                        .await
                    {
                        Ok(chunks) => {
                            let mut out = BytesMut::new();
                            for c in &chunks {
                                records::encode_chunk(&mut out, c, append_time);
                            }
                            total += out.len();
                            pd.records = Some(out.freeze());
                        }
                        Err(e) => {
                            pd.error_code = log_code(&e);
                            any_error = true;
                        }
                    }
                }
                tr.partitions.push(pd);
            }
            r.responses.push(tr);
        }
        let now = Instant::now();
        if total >= req.min_bytes.max(1) as usize || any_error || now >= deadline {
            return r;
        }
        // Long poll: woken by appends, not by polling.
        if tokio::time::timeout_at(deadline.into(), changes.changed())
            .await
            .is_err()
        {
            // One last look at the deadline.
            continue;
        }
    }
}

async fn list_offsets(
    shared: Arc<Shared>,
    req: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let mut r = ListOffsetsResponse::default();
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut tr = ListOffsetsTopicResponse::default();
        for p in t.partitions {
            let mut pr = ListOffsetsPartitionResponse::default();
            pr.partition_index = p.partition_index;
            pr.timestamp = -1;
            pr.offset = -1;
            if version >= 4 {
                pr.leader_epoch = 0;
            }
            if p.partition_index < 0 {
                pr.error_code = code::UNKNOWN_TOPIC_OR_PARTITION;
                tr.partitions.push(pr);
                continue;
            }
            let part = p.partition_index as u32;
            let bounds = shared.log.partition_offsets(&name, part).await;
            match bounds {
                Ok(None) => pr.error_code = code::UNKNOWN_TOPIC_OR_PARTITION,
                Err(e) => pr.error_code = log_code(&e),
                Ok(Some((start, end))) => match p.timestamp {
                    -1 => pr.offset = end as i64,
                    -2 => pr.offset = start as i64,
                    ts if ts >= 0 => match shared.log.offset_for_time(&name, part, ts).await {
                        Ok(Some((o, t))) => {
                            pr.offset = o as i64;
                            pr.timestamp = t;
                        }
                        Ok(None) => {}
                        Err(e) => pr.error_code = log_code(&e),
                    },
                    _ => pr.error_code = code::INVALID_REQUEST,
                },
            }
            tr.partitions.push(pr);
        }
        tr.name = t.name;
        r.topics.push(tr);
    }
    r
}

async fn offset_for_leader_epoch(
    shared: Arc<Shared>,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    // There is one leader epoch (0) for all time: its end offset is the log end.
    let mut r = OffsetForLeaderEpochResponse::default();
    for t in req.topics {
        let name = t.topic.0.to_string();
        let mut tr = OffsetForLeaderTopicResult::default();
        for p in t.partitions {
            let mut e = offset_for_leader_epoch_response::EpochEndOffset::default();
            e.partition = p.partition;
            e.leader_epoch = 0;
            e.end_offset = -1;
            let bounds = if p.partition >= 0 {
                shared
                    .log
                    .partition_offsets(&name, p.partition as u32)
                    .await
            } else {
                Ok(None)
            };
            match bounds {
                Ok(Some((_, end))) => e.end_offset = end as i64,
                Ok(None) => e.error_code = code::UNKNOWN_TOPIC_OR_PARTITION,
                Err(err) => e.error_code = log_code(&err),
            }
            tr.partitions.push(e);
        }
        tr.topic = t.topic;
        r.topics.push(tr);
    }
    r
}

fn check_configs(configs: &BTreeMap<String, String>) -> Result<(), String> {
    for (k, v) in configs {
        if !TOPIC_CONFIGS.iter().any(|(n, _)| n == k) {
            return Err(format!(
                "topic config {k:?} is not supported; supported: {}",
                TOPIC_CONFIGS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let ok = match k.as_str() {
            "cleanup.policy" => v == "delete",
            "message.timestamp.type" => v == "CreateTime" || v == "LogAppendTime",
            _ => v.parse::<i64>().is_ok(),
        };
        if !ok {
            return Err(format!("topic config {k}={v:?} is not valid here"));
        }
    }
    Ok(())
}

async fn create_topics(
    shared: Arc<Shared>,
    req: CreateTopicsRequest,
    version: i16,
    grant: Option<Grant>,
) -> CreateTopicsResponse {
    let mut r = CreateTopicsResponse::default();
    for t in req.topics {
        let mut tr = CreatableTopicResult::default();
        let name = t.name.0.to_string();
        let partitions = if t.num_partitions == -1 {
            shared.config.default_partitions as i32
        } else {
            t.num_partitions
        };
        let configs: BTreeMap<String, String> = t
            .configs
            .iter()
            .filter_map(|c| {
                c.value
                    .as_ref()
                    .map(|v| (c.name.to_string(), v.to_string()))
            })
            .collect();
        let outcome: Result<Option<TopicInfo>, (i16, String)> = async {
            let w = shared.log.writer().map_err(|_| {
                (code::CLUSTER_AUTHORIZATION_FAILED, "this server is a read-only replica".to_string())
            })?;
            if !allowed(&grant, Access::Admin) {
                return Err((code::TOPIC_AUTHORIZATION_FAILED, "the token may not create topics".to_string()));
            }
            opendata_log::validate_topic_name(&name)
                .map_err(|e| (code::INVALID_TOPIC_EXCEPTION, e.to_string()))?;
            if partitions < 1 || partitions as u32 > opendata_log::MAX_PARTITIONS {
                return Err((code::INVALID_PARTITIONS, format!("{partitions} partitions")));
            }
            if !(t.replication_factor == -1 || t.replication_factor >= 1) {
                return Err((code::INVALID_REPLICATION_FACTOR, "replication factor must be -1 or at least 1 (durability comes from the object store)".to_string()));
            }
            if !t.assignments.is_empty() {
                return Err((code::INVALID_REQUEST, "manual replica assignments are not supported".to_string()));
            }
            check_configs(&configs).map_err(|m| (code::INVALID_CONFIG, m))?;
            if req.validate_only {
                return Ok(None);
            }
            w.create_topic(&name, partitions as u32, configs.clone())
                .await
                .map(Some)
                .map_err(|e| (log_code(&e), e.to_string()))
        }
        .await;
        match outcome {
            Ok(info) => {
                if version >= 5 {
                    tr.num_partitions = partitions;
                    tr.replication_factor = 1;
                }
                if let Some(info) = info
                    && version >= 7
                {
                    tr.topic_id = uuid::Uuid::from_bytes(info.id);
                }
            }
            Err((c, m)) => {
                tr.error_code = c;
                if version >= 1 {
                    tr.error_message = Some(s(&m));
                }
            }
        }
        tr.name = t.name;
        r.topics.push(tr);
    }
    r
}

async fn delete_topics(
    shared: Arc<Shared>,
    req: DeleteTopicsRequest,
    version: i16,
    grant: Option<Grant>,
) -> DeleteTopicsResponse {
    let mut r = DeleteTopicsResponse::default();
    let names: Vec<String> = req
        .topic_names
        .iter()
        .map(|n| n.0.to_string())
        .chain(
            req.topics
                .iter()
                .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string())),
        )
        .collect();
    for name in names {
        let mut dr = DeletableTopicResult::default();
        dr.name = Some(topic_name(&name));
        let res = match shared.log.writer() {
            Err(_) => Err((
                code::CLUSTER_AUTHORIZATION_FAILED,
                "read-only replica".to_string(),
            )),
            Ok(_) if !allowed(&grant, Access::Admin) => Err((
                code::TOPIC_AUTHORIZATION_FAILED,
                "the token may not delete topics".to_string(),
            )),
            Ok(w) => w
                .delete_topic(&name)
                .await
                .map_err(|e| (log_code(&e), e.to_string())),
        };
        if let Err((c, m)) = res {
            dr.error_code = c;
            if version >= 5 {
                dr.error_message = Some(s(&m));
            }
        }
        r.responses.push(dr);
    }
    r
}

async fn create_partitions(
    shared: Arc<Shared>,
    req: CreatePartitionsRequest,
    grant: Option<Grant>,
) -> CreatePartitionsResponse {
    let mut r = CreatePartitionsResponse::default();
    for t in req.topics {
        let mut tr = CreatePartitionsTopicResult::default();
        let name = t.name.0.to_string();
        let res = match shared.log.writer() {
            Err(_) => Err((
                code::CLUSTER_AUTHORIZATION_FAILED,
                "read-only replica".to_string(),
            )),
            Ok(_) if !allowed(&grant, Access::Admin) => Err((
                code::TOPIC_AUTHORIZATION_FAILED,
                "the token may not alter topics".to_string(),
            )),
            Ok(_) if t.count < 1 => {
                Err((code::INVALID_PARTITIONS, format!("{} partitions", t.count)))
            }
            Ok(_) if req.validate_only => Ok(()),
            Ok(w) => w
                .create_partitions(&name, t.count as u32)
                .await
                .map(|_| ())
                .map_err(|e| {
                    let c = match e {
                        opendata_log::Error::InvalidInput(_) => code::INVALID_PARTITIONS,
                        ref other => log_code(other),
                    };
                    (c, e.to_string())
                }),
        };
        if let Err((c, m)) = res {
            tr.error_code = c;
            tr.error_message = Some(s(&m));
        }
        tr.name = t.name;
        r.results.push(tr);
    }
    r
}

async fn describe_configs(
    shared: Arc<Shared>,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let mut r = DescribeConfigsResponse::default();
    let topics = topics_of(&shared).await;
    for res in req.resources {
        let mut out = DescribeConfigsResult::default();
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name.clone();
        let entries: Vec<(String, String, bool)> = match res.resource_type {
            2 => match topics.get(res.resource_name.as_str()) {
                Some(t) => TOPIC_CONFIGS
                    .iter()
                    .map(|(k, d)| match t.configs.get(*k) {
                        Some(v) => (k.to_string(), v.clone(), false),
                        None => (k.to_string(), d.to_string(), true),
                    })
                    .collect(),
                None => {
                    out.error_code = code::UNKNOWN_TOPIC_OR_PARTITION;
                    out.error_message = Some(s("no such topic"));
                    Vec::new()
                }
            },
            4 => vec![
                (
                    "num.partitions".into(),
                    shared.config.default_partitions.to_string(),
                    true,
                ),
                (
                    "auto.create.topics.enable".into(),
                    shared.config.auto_create_topics.to_string(),
                    true,
                ),
                (
                    "socket.request.max.bytes".into(),
                    shared.config.max_request_bytes.to_string(),
                    true,
                ),
            ],
            _ => {
                out.error_code = code::INVALID_REQUEST;
                out.error_message =
                    Some(s("only topic (2) and broker (4) resources are described"));
                Vec::new()
            }
        };
        for (k, v, default) in entries {
            if let Some(keys) = &res.configuration_keys
                && !keys.iter().any(|x| x.as_str() == k)
            {
                continue;
            }
            let mut c = DescribeConfigsResourceResult::default();
            c.name = s(&k);
            c.value = Some(s(&v));
            c.read_only = res.resource_type == 4;
            c.config_source = if default { 5 } else { 1 };
            out.configs.push(c);
        }
        r.results.push(out);
    }
    r
}

async fn init_producer_id(
    shared: Arc<Shared>,
    req: InitProducerIdRequest,
    grant: Option<Grant>,
) -> InitProducerIdResponse {
    let mut r = InitProducerIdResponse::default();
    r.producer_id = ProducerId(-1);
    r.producer_epoch = -1;
    if req.transactional_id.is_some() {
        r.error_code = code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
        return r;
    }
    let w = match shared.log.writer() {
        Ok(w) if allowed(&grant, Access::Write) => w,
        _ => {
            r.error_code = code::CLUSTER_AUTHORIZATION_FAILED;
            return r;
        }
    };
    // A producer bumping its epoch keeps its id (KIP-360); a new one gets a fresh id.
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX {
        r.producer_id = req.producer_id;
        r.producer_epoch = req.producer_epoch + 1;
        return r;
    }
    match w.init_producer_id().await {
        Ok(id) => {
            r.producer_id = ProducerId(id as i64);
            r.producer_epoch = 0;
        }
        Err(e) => r.error_code = log_code(&e),
    }
    r
}

async fn find_coordinator(
    shared: Arc<Shared>,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let mut r = FindCoordinatorResponse::default();
    let ok = shared.coordinator.is_some() && req.key_type == 0;
    let err = if ok {
        code::NONE
    } else if req.key_type != 0 {
        code::INVALID_REQUEST
    } else {
        code::COORDINATOR_NOT_AVAILABLE
    };
    let host = s(&shared.advertised.0);
    let port = i32::from(shared.advertised.1);
    if version >= 4 {
        for key in req.coordinator_keys {
            let mut c = find_coordinator_response::Coordinator::default();
            c.key = key;
            c.node_id = BrokerId(if ok { 0 } else { -1 });
            c.host = host.clone();
            c.port = port;
            c.error_code = err;
            r.coordinators.push(c);
        }
    } else {
        r.error_code = err;
        r.node_id = BrokerId(if ok { 0 } else { -1 });
        r.host = host;
        r.port = port;
    }
    r
}

async fn join_group(
    shared: Arc<Shared>,
    req: JoinGroupRequest,
    version: i16,
    client_id: String,
    peer: String,
) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default();
    let Some(c) = &shared.coordinator else {
        r.error_code = code::COORDINATOR_NOT_AVAILABLE;
        r.generation_id = -1;
        return r;
    };
    let rebalance = if version >= 1 {
        req.rebalance_timeout_ms
    } else {
        req.session_timeout_ms
    };
    let res = c
        .join(Join {
            group: req.group_id.0.to_string(),
            member_id: req.member_id.to_string(),
            group_instance_id: req.group_instance_id.as_ref().map(|g| g.to_string()),
            client_id,
            client_host: peer,
            session_timeout: Duration::from_millis(req.session_timeout_ms.max(0) as u64),
            rebalance_timeout: Duration::from_millis(rebalance.max(0) as u64)
                .min(shared.config.group_max_session_timeout()),
            protocol_type: req.protocol_type.to_string(),
            protocols: req
                .protocols
                .iter()
                .map(|p| (p.name.to_string(), p.metadata.clone()))
                .collect(),
            require_known_member: version >= 4,
        })
        .await;
    r.error_code = res.error;
    r.generation_id = res.generation;
    if version >= 7 {
        r.protocol_type = res.protocol_type.as_deref().map(s);
    }
    r.protocol_name = res.protocol.as_deref().map(s);
    r.leader = s(&res.leader);
    r.member_id = s(&res.member_id);
    r.members = res
        .members
        .into_iter()
        .map(|(id, inst, meta)| {
            let mut m = JoinGroupResponseMember::default();
            m.member_id = s(&id);
            m.group_instance_id = inst.as_deref().map(s);
            m.metadata = meta;
            m
        })
        .collect();
    r
}

async fn sync_group(shared: Arc<Shared>, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
    let mut r = SyncGroupResponse::default();
    let Some(c) = &shared.coordinator else {
        r.error_code = code::COORDINATOR_NOT_AVAILABLE;
        return r;
    };
    let (e, pt, pn, a) = c
        .sync(
            &req.group_id.0,
            &req.member_id,
            req.generation_id,
            req.assignments
                .iter()
                .map(|a| (a.member_id.to_string(), a.assignment.clone()))
                .collect(),
        )
        .await;
    r.error_code = e;
    if version >= 5 {
        r.protocol_type = pt.as_deref().map(s);
        r.protocol_name = pn.as_deref().map(s);
    }
    r.assignment = a;
    r
}

async fn leave_group(
    shared: Arc<Shared>,
    req: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let mut r = LeaveGroupResponse::default();
    let Some(c) = &shared.coordinator else {
        r.error_code = code::COORDINATOR_NOT_AVAILABLE;
        return r;
    };
    if version >= 3 {
        let ids: Vec<String> = req
            .members
            .iter()
            .map(|m| m.member_id.to_string())
            .collect();
        let codes = c.leave(&req.group_id.0, &ids);
        for (m, code) in req.members.into_iter().zip(codes) {
            let mut mr = leave_group_response::MemberResponse::default();
            mr.member_id = m.member_id;
            mr.group_instance_id = m.group_instance_id;
            mr.error_code = code;
            r.members.push(mr);
        }
    } else {
        r.error_code = c.leave(&req.group_id.0, &[req.member_id.to_string()])[0];
    }
    r
}

async fn offset_commit(
    shared: Arc<Shared>,
    req: OffsetCommitRequest,
    grant: Option<Grant>,
) -> OffsetCommitResponse {
    let group = req.group_id.0.to_string();
    let check = match (&shared.coordinator, shared.log.writer()) {
        (Some(c), Ok(_)) if allowed(&grant, Access::Write) => {
            c.check_commit(&group, &req.member_id, req.generation_id_or_member_epoch)
        }
        (Some(_), Ok(_)) => code::GROUP_AUTHORIZATION_FAILED,
        _ => code::COORDINATOR_NOT_AVAILABLE,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut offsets = Vec::new();
    if check == code::NONE {
        for t in &req.topics {
            for p in &t.partitions {
                if p.partition_index >= 0 {
                    offsets.push(GroupOffset {
                        topic: t.name.0.to_string(),
                        partition: p.partition_index as u32,
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p
                            .committed_metadata
                            .as_ref()
                            .map(|m| m.to_string())
                            .unwrap_or_default(),
                        commit_ms: now,
                    });
                }
            }
        }
    }
    let stored = if check == code::NONE {
        match shared.log.writer() {
            Ok(w) => w
                .commit_group_offsets(&group, &offsets, Durability::Remote)
                .await
                .map_err(|e| log_code(&e))
                .err()
                .unwrap_or(code::NONE),
            Err(_) => code::COORDINATOR_NOT_AVAILABLE,
        }
    } else {
        check
    };
    let mut r = OffsetCommitResponse::default();
    for t in req.topics {
        let mut tr = OffsetCommitResponseTopic::default();
        for p in t.partitions {
            let mut pr = OffsetCommitResponsePartition::default();
            pr.partition_index = p.partition_index;
            pr.error_code = if p.partition_index < 0 {
                code::UNKNOWN_TOPIC_OR_PARTITION
            } else {
                stored
            };
            tr.partitions.push(pr);
        }
        tr.name = t.name;
        tr.topic_id = t.topic_id;
        r.topics.push(tr);
    }
    r
}

/// A topic and the partitions asked for.
type Wanted = (String, Vec<i32>);

async fn offset_fetch(
    shared: Arc<Shared>,
    req: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    let mut r = OffsetFetchResponse::default();
    // (group, requested topics: None = all committed)
    let requests: Vec<(String, Option<Vec<Wanted>>)> = if version >= 8 {
        req.groups
            .iter()
            .map(|g| {
                (
                    g.group_id.0.to_string(),
                    g.topics.as_ref().map(|ts| {
                        ts.iter()
                            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                            .collect()
                    }),
                )
            })
            .collect()
    } else {
        vec![(
            req.group_id.0.to_string(),
            req.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                    .collect()
            }),
        )]
    };
    for (group, wanted) in requests {
        let (err, committed) = match shared.log.group_offsets(&group).await {
            Ok(c) => (code::NONE, c),
            Err(e) => (log_code(&e), Vec::new()),
        };
        let find = |t: &str, p: i32| {
            committed
                .iter()
                .find(|o| o.topic == t && o.partition as i32 == p)
        };
        let wanted: Vec<Wanted> = match wanted {
            Some(w) => w,
            None => {
                let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                for o in &committed {
                    by_topic
                        .entry(o.topic.clone())
                        .or_default()
                        .push(o.partition as i32);
                }
                by_topic.into_iter().collect()
            }
        };
        if version >= 8 {
            let mut gr = offset_fetch_response::OffsetFetchResponseGroup::default();
            gr.group_id = GroupId(s(&group));
            gr.error_code = err;
            for (t, parts) in &wanted {
                let mut tr = offset_fetch_response::OffsetFetchResponseTopics::default();
                tr.name = topic_name(t);
                for p in parts {
                    let mut pr = offset_fetch_response::OffsetFetchResponsePartitions::default();
                    pr.partition_index = *p;
                    let o = find(t, *p);
                    pr.committed_offset = o.map_or(-1, |o| o.offset);
                    if version >= 5 {
                        pr.committed_leader_epoch = o.map_or(-1, |o| o.leader_epoch);
                    }
                    pr.metadata = Some(s(o.map_or("", |o| o.metadata.as_str())));
                    tr.partitions.push(pr);
                }
                gr.topics.push(tr);
            }
            r.groups.push(gr);
        } else {
            r.error_code = err;
            for (t, parts) in &wanted {
                let mut tr = offset_fetch_response::OffsetFetchResponseTopic::default();
                tr.name = topic_name(t);
                for p in parts {
                    let mut pr = offset_fetch_response::OffsetFetchResponsePartition::default();
                    pr.partition_index = *p;
                    let o = find(t, *p);
                    pr.committed_offset = o.map_or(-1, |o| o.offset);
                    if version >= 5 {
                        pr.committed_leader_epoch = o.map_or(-1, |o| o.leader_epoch);
                    }
                    pr.metadata = Some(s(o.map_or("", |o| o.metadata.as_str())));
                    tr.partitions.push(pr);
                }
                r.topics.push(tr);
            }
        }
    }
    r
}

async fn describe_groups(
    shared: Arc<Shared>,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let mut r = DescribeGroupsResponse::default();
    for g in req.groups {
        let mut d = DescribedGroup::default();
        d.group_id = g.clone();
        match shared.coordinator.as_ref().and_then(|c| c.describe(&g.0)) {
            Some(desc) => {
                d.group_state = s(desc.state);
                d.protocol_type = s(&desc.protocol_type);
                d.protocol_data = s(&desc.protocol);
                d.members = desc
                    .members
                    .into_iter()
                    .map(|(id, inst, client, host, meta, assign)| {
                        let mut m = DescribedGroupMember::default();
                        m.member_id = s(&id);
                        m.group_instance_id = inst.as_deref().map(s);
                        m.client_id = s(&client);
                        m.client_host = s(&host);
                        m.member_metadata = meta;
                        m.member_assignment = assign;
                        m
                    })
                    .collect();
            }
            None => {
                // Known only by its committed offsets (or not at all): "Dead" if none.
                let has = shared
                    .log
                    .group_offsets(&g.0)
                    .await
                    .map(|o| !o.is_empty())
                    .unwrap_or(false);
                d.group_state = s(if has { "Empty" } else { "Dead" });
            }
        }
        r.groups.push(d);
    }
    r
}

async fn list_groups(shared: Arc<Shared>, version: i16) -> ListGroupsResponse {
    let mut r = ListGroupsResponse::default();
    let mut seen: BTreeMap<String, (String, &'static str)> = BTreeMap::new();
    if let Some(c) = &shared.coordinator {
        for (n, pt, st) in c.list() {
            seen.insert(n, (pt, st));
        }
    }
    match shared.log.list_groups().await {
        Ok(stored) => {
            for g in stored {
                seen.entry(g)
                    .or_insert_with(|| ("consumer".to_string(), "Empty"));
            }
        }
        Err(e) => r.error_code = log_code(&e),
    }
    for (n, (pt, st)) in seen {
        let mut lg = ListedGroup::default();
        lg.group_id = GroupId(s(&n));
        lg.protocol_type = s(&pt);
        if version >= 4 {
            lg.group_state = s(st);
        }
        r.groups.push(lg);
    }
    r
}

async fn delete_groups(
    shared: Arc<Shared>,
    req: DeleteGroupsRequest,
    grant: Option<Grant>,
) -> DeleteGroupsResponse {
    let mut r = DeleteGroupsResponse::default();
    for g in req.groups_names {
        let mut res = DeletableGroupResult::default();
        res.group_id = g.clone();
        res.error_code = match (&shared.coordinator, shared.log.writer()) {
            (Some(_), Ok(_)) if !allowed(&grant, Access::Admin) => code::GROUP_AUTHORIZATION_FAILED,
            (Some(c), Ok(w)) => match c.remove_if_empty(&g.0) {
                groups::code::NONE => match w.delete_group_offsets(&g.0).await {
                    Ok(0) => code::GROUP_ID_NOT_FOUND,
                    Ok(_) => code::NONE,
                    Err(e) => log_code(&e),
                },
                other => other,
            },
            _ => code::COORDINATOR_NOT_AVAILABLE,
        };
        r.results.push(res);
    }
    r
}
