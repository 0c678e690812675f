//! Wire messages of the log HTTP API.
//!
//! Each message is a protobuf message (package `opendata.log.v1`, written with prost's
//! derive so no code generator is needed) and has the proto3 JSON mapping: camelCase
//! field names, `bytes` as base64, 64-bit integers as strings on output (numbers are
//! accepted on input). Plain `application/json` is the same mapping.
//!
//! ```proto
//! message Record        { bytes key = 1; bytes value = 2; }
//! message AppendRequest { repeated Record records = 1; bool await_durable = 2;
//!                         optional uint64 expected_last_sequence = 3; bool expect_empty = 4;
//!                         bytes condition_key = 5; }
//! message AppendResponse{ repeated uint64 sequences = 1; uint64 timestamp_ms = 2; }
//! message Entry         { bytes key = 1; uint64 sequence = 2; uint64 timestamp_ms = 3; bytes value = 4; }
//! message ScanResponse  { repeated Entry entries = 1; optional uint64 next_sequence = 2; }
//! message CountResponse { uint64 count = 1; }
//! message KeyInfo       { bytes key = 1; uint64 last_sequence = 2; }
//! message KeysResponse  { repeated KeyInfo keys = 1; bytes next_after = 2; bool has_more = 3; }
//! message Segment       { uint32 id = 1; uint64 start_sequence = 2; optional uint64 end_sequence = 3;
//!                         uint64 start_time_ms = 4; }
//! message SegmentsResponse { repeated Segment segments = 1; }
//! message GroupOffset   { string topic = 1; uint32 partition = 2; uint64 offset = 3;
//!                         string metadata = 4; uint64 commit_time_ms = 5; }
//! message GroupOffsets  { repeated GroupOffset offsets = 1; }
//! message GroupsResponse{ repeated string groups = 1; }
//! ```

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use prost::Message;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::api::negotiate::{Decode, Encode};

/// Serde helpers for proto3 JSON: base64 bytes and 64-bit integers.
pub mod pj {
    use super::*;

    /// `bytes` as base64.
    pub fn ser_bytes<S: Serializer>(v: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    /// `bytes` from base64 (standard or URL-safe alphabet, padded or not).
    pub fn de_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let s = String::deserialize(d)?;
        decode_base64(&s).map_err(serde::de::Error::custom)
    }

    /// `uint64` as a decimal string.
    pub fn ser_u64<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    /// `uint64` from a number or a decimal string.
    pub fn de_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum N {
            Num(u64),
            Str(String),
        }
        match N::deserialize(d)? {
            N::Num(n) => Ok(n),
            N::Str(s) => s.parse().map_err(|_| {
                serde::de::Error::custom(format!("'{s}' is not an unsigned 64-bit integer"))
            }),
        }
    }

    /// `optional uint64`.
    pub fn ser_opt_u64<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&v.to_string()),
            None => s.serialize_none(),
        }
    }

    /// `optional uint64` from a number, a string or null.
    pub fn de_opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        #[derive(Deserialize)]
        struct W(#[serde(deserialize_with = "de_u64")] u64);
        Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
    }

    /// `repeated uint64` as strings.
    pub fn ser_vec_u64<S: Serializer>(v: &[u64], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|n| n.to_string()))
    }

    /// `repeated uint64` from numbers or strings.
    pub fn de_vec_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
        #[derive(Deserialize)]
        struct W(#[serde(deserialize_with = "de_u64")] u64);
        Ok(Vec::<W>::deserialize(d)?.into_iter().map(|w| w.0).collect())
    }
}

/// Decodes base64 in the standard or URL-safe alphabet, with or without padding.
pub fn decode_base64(s: &str) -> Result<Bytes, String> {
    let mut buf = bytes::BytesMut::new();
    decode_into(&mut buf, s)?;
    Ok(buf.freeze())
}

fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        s.to_string()
    } else {
        let mut end = n;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    }
}

/// A record to append.
#[derive(Clone, PartialEq, Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Record {
    /// The log key.
    #[prost(bytes = "bytes", tag = "1")]
    #[serde(serialize_with = "pj::ser_bytes", deserialize_with = "pj::de_bytes")]
    pub key: Bytes,
    /// The payload.
    #[prost(bytes = "bytes", tag = "2")]
    #[serde(
        default,
        serialize_with = "pj::ser_bytes",
        deserialize_with = "pj::de_bytes"
    )]
    pub value: Bytes,
}

/// `POST /api/v1/log/append`.
#[derive(Clone, PartialEq, Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppendRequest {
    /// Records to append, in order.
    #[prost(message, repeated, tag = "1")]
    pub records: Vec<Record>,
    /// Acknowledge only once durable in the object store (default true in JSON; protobuf
    /// callers get the same default through [`AppendRequest::durable`]).
    #[prost(bool, optional, tag = "2")]
    #[serde(default)]
    pub await_durable: Option<bool>,
    /// Conditional append: the key's last sequence must be this.
    #[prost(uint64, optional, tag = "3")]
    #[serde(
        default,
        serialize_with = "pj::ser_opt_u64",
        deserialize_with = "pj::de_opt_u64"
    )]
    pub expected_last_sequence: Option<u64>,
    /// Conditional append: the key must have no entries.
    #[prost(bool, tag = "4")]
    #[serde(default)]
    pub expect_empty: bool,
    /// The key the condition is about; defaults to the records' key when they share one.
    #[prost(bytes = "bytes", tag = "5")]
    #[serde(
        default,
        serialize_with = "pj::ser_bytes",
        deserialize_with = "pj::de_bytes"
    )]
    pub condition_key: Bytes,
}

impl AppendRequest {
    /// Whether to wait for durability (default: yes).
    pub fn durable(&self) -> bool {
        self.await_durable.unwrap_or(true)
    }
}

/// Answer to an append.
#[derive(Clone, PartialEq, Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppendResponse {
    /// The sequence of each record, in order.
    #[prost(uint64, repeated, tag = "1")]
    #[serde(
        serialize_with = "pj::ser_vec_u64",
        deserialize_with = "pj::de_vec_u64"
    )]
    pub sequences: Vec<u64>,
    /// The append timestamp of every record.
    #[prost(uint64, tag = "2")]
    #[serde(serialize_with = "pj::ser_u64", deserialize_with = "pj::de_u64")]
    pub timestamp_ms: u64,
}

/// An entry read back.
#[derive(Clone, PartialEq, Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The log key.
    #[prost(bytes = "bytes", tag = "1")]
    #[serde(serialize_with = "pj::ser_bytes", deserialize_with = "pj::de_bytes")]
    pub key: Bytes,
    /// The sequence.
    #[prost(uint64, tag = "2")]
    #[serde(serialize_with = "pj::ser_u64", deserialize_with = "pj::de_u64")]
    pub sequence: u64,
    /// Append time, ms since the Unix epoch.
    #[prost(uint64, tag = "3")]
    #[serde(serialize_with = "pj::ser_u64", deserialize_with = "pj::de_u64")]
    pub timestamp_ms: u64,
    /// The payload.
    #[prost(bytes = "bytes", tag = "4")]
    #[serde(serialize_with = "pj::ser_bytes", deserialize_with = "pj::de_bytes")]
    pub value: Bytes,
}

/// Answer to a scan.
#[derive(Clone, PartialEq, Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanResponse {
    /// Entries, oldest first.
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<Entry>,
    /// Where to continue: one past the last entry returned.
    #[prost(uint64, optional, tag = "2")]
    #[serde(
        default,
        serialize_with = "pj::ser_opt_u64",
        deserialize_with = "pj::de_opt_u64"
    )]
    pub next_sequence: Option<u64>,
}

/// Answer to a count.
#[derive(Clone, PartialEq, Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CountResponse {
    /// Number of entries.
    #[prost(uint64, tag = "1")]
    #[serde(serialize_with = "pj::ser_u64", deserialize_with = "pj::de_u64")]
    pub count: u64,
}

/// A listed key.
#[derive(Clone, PartialEq, Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyInfo {
    /// The key.
    #[prost(bytes = "bytes", tag = "1")]
    #[serde(serialize_with = "pj::ser_bytes", deserialize_with = "pj::de_bytes")]
    pub key: Bytes,
    /// Its newest entry's sequence.
    #[prost(uint64, tag = "2")]
    #[serde(serialize_with = "pj::ser_u64", deserialize_with = "pj::de_u64")]
    pub last_sequence: u64,
}

/// Answer to a key listing.
#[derive(Clone, PartialEq, Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeysResponse {
    /// Keys, ascending.
    #[prost(message, repeated, tag = "1")]
    pub keys: Vec<KeyInfo>,
    /// Pass as `after` (base64) for the next page.
    #[prost(bytes = "bytes", tag = "2")]
    #[serde(serialize_with = "pj::ser_bytes", deserialize_with = "pj::de_bytes")]
    pub next_after: Bytes,
    /// Whether another page follows.
    #[prost(bool, tag = "3")]
    pub has_more: bool,
}

/// A segment.
#[derive(Clone, PartialEq, Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Segment {
    /// Segment id.
    #[prost(uint32, tag = "1")]
    pub id: u32,
    /// First sequence it may hold.
    #[prost(uint64, tag = "2")]
    #[serde(serialize_with = "pj::ser_u64", deserialize_with = "pj::de_u64")]
    pub start_sequence: u64,
    /// First sequence of the next segment; absent for the open segment.
    #[prost(uint64, optional, tag = "3")]
    #[serde(
        default,
        serialize_with = "pj::ser_opt_u64",
        deserialize_with = "pj::de_opt_u64"
    )]
    pub end_sequence: Option<u64>,
    /// When it was opened.
    #[prost(uint64, tag = "4")]
    #[serde(serialize_with = "pj::ser_u64", deserialize_with = "pj::de_u64")]
    pub start_time_ms: u64,
}

/// Answer to a segment listing.
#[derive(Clone, PartialEq, Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentsResponse {
    /// Segments, oldest first.
    #[prost(message, repeated, tag = "1")]
    pub segments: Vec<Segment>,
}

/// A consumer group's committed offset in one topic partition.
#[derive(Clone, PartialEq, Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupOffset {
    /// The topic.
    #[prost(string, tag = "1")]
    pub topic: String,
    /// The partition.
    #[prost(uint32, tag = "2")]
    #[serde(default)]
    pub partition: u32,
    /// The next offset the group reads.
    #[prost(uint64, tag = "3")]
    #[serde(serialize_with = "pj::ser_u64", deserialize_with = "pj::de_u64")]
    pub offset: u64,
    /// Free-form metadata.
    #[prost(string, tag = "4")]
    #[serde(default)]
    pub metadata: String,
    /// When it was committed (ms since the Unix epoch; ignored on input).
    #[prost(uint64, tag = "5")]
    #[serde(
        default,
        serialize_with = "pj::ser_u64",
        deserialize_with = "pj::de_u64"
    )]
    pub commit_time_ms: u64,
}

/// A group's committed offsets (the answer to a read, and the body of a commit).
#[derive(Clone, PartialEq, Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupOffsets {
    /// One per topic partition.
    #[prost(message, repeated, tag = "1")]
    pub offsets: Vec<GroupOffset>,
}

/// Every group with committed offsets.
#[derive(Clone, PartialEq, Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupsResponse {
    /// Group names, ascending.
    #[prost(string, repeated, tag = "1")]
    pub groups: Vec<String>,
}

fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

macro_rules! wire_message {
    ($($t:ty),*) => {$(
        impl Decode for $t {
            fn from_json(bytes: &[u8]) -> Result<Self, String> {
                from_json(bytes)
            }
            fn from_protobuf(bytes: Bytes) -> Result<Self, String> {
                <$t>::decode(bytes).map_err(|e| e.to_string())
            }
        }
        impl Encode for $t {
            fn to_json(&self) -> Vec<u8> {
                serde_json::to_vec(self).expect("wire messages always serialize")
            }
            fn to_protobuf(&self) -> Vec<u8> {
                self.encode_to_vec()
            }
        }
    )*};
}

impl Decode for AppendRequest {
    fn from_json(bytes: &[u8]) -> Result<Self, String> {
        append_request_from_json(bytes)
    }
    fn from_protobuf(bytes: Bytes) -> Result<Self, String> {
        AppendRequest::decode(bytes).map_err(|e| e.to_string())
    }
}

impl Encode for AppendRequest {
    fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("wire messages always serialize")
    }
    fn to_protobuf(&self) -> Vec<u8> {
        self.encode_to_vec()
    }
}

/// The JSON form of an append, borrowing its strings from the body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AppendRequestJson<'a> {
    #[serde(borrow)]
    records: Vec<RecordJson<'a>>,
    #[serde(default)]
    await_durable: Option<bool>,
    #[serde(default, deserialize_with = "pj::de_opt_u64")]
    expected_last_sequence: Option<u64>,
    #[serde(default)]
    expect_empty: bool,
    #[serde(default, borrow)]
    condition_key: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordJson<'a> {
    #[serde(borrow)]
    key: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    value: Option<std::borrow::Cow<'a, str>>,
}

/// Decodes an append request from JSON with one allocation for all keys and values:
/// the strings are borrowed from the body, and every base64 field is decoded into one
/// shared buffer that the records slice.
fn append_request_from_json(bytes: &[u8]) -> Result<AppendRequest, String> {
    let parsed: AppendRequestJson<'_> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let estimate: usize = parsed
        .records
        .iter()
        .map(|r| r.key.len() + r.value.as_ref().map_or(0, |v| v.len()))
        .sum::<usize>()
        / 4
        * 3
        + parsed.records.len() * 6;
    let mut buf = bytes::BytesMut::with_capacity(estimate);
    let mut spans = Vec::with_capacity(parsed.records.len());
    for (i, r) in parsed.records.iter().enumerate() {
        let key = decode_into(&mut buf, &r.key).map_err(|e| format!("records[{i}].key: {e}"))?;
        let value = match &r.value {
            Some(v) => decode_into(&mut buf, v).map_err(|e| format!("records[{i}].value: {e}"))?,
            None => (buf.len(), buf.len()),
        };
        spans.push((key, value));
    }
    let shared = buf.freeze();
    let records = spans
        .into_iter()
        .map(|((ks, ke), (vs, ve))| Record {
            key: shared.slice(ks..ke),
            value: shared.slice(vs..ve),
        })
        .collect();
    let condition_key = match parsed.condition_key {
        Some(k) => decode_base64(&k).map_err(|e| format!("conditionKey: {e}"))?,
        None => Bytes::new(),
    };
    Ok(AppendRequest {
        records,
        await_durable: parsed.await_durable,
        expected_last_sequence: parsed.expected_last_sequence,
        expect_empty: parsed.expect_empty,
        condition_key,
    })
}

/// Appends the decoded form of base64 `text` to `buf` and returns its span.
fn decode_into(buf: &mut bytes::BytesMut, text: &str) -> Result<(usize, usize), String> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let text = text.trim();
    let start = buf.len();
    let room = text.len() / 4 * 3 + 3;
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        buf.resize(start + room, 0);
        if let Ok(n) = engine.decode_slice(text, &mut buf[start..]) {
            buf.truncate(start + n);
            return Ok((start, start + n));
        }
    }
    buf.truncate(start);
    Err(format!("'{}' is not valid base64", truncate(text, 64)))
}

wire_message!(
    AppendResponse,
    ScanResponse,
    CountResponse,
    KeysResponse,
    SegmentsResponse,
    GroupOffsets,
    GroupsResponse
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn should_parse_the_quickstart_body() {
        let body = br#"{"records":[{"key":"b3JkZXJz","value":"b3JkZXItMQ=="},{"key":"b3JkZXJz","value":"b3JkZXItMg=="}],"awaitDurable":true}"#;
        let req = AppendRequest::from_protobuf_json(body).unwrap();
        assert_eq!(req.records.len(), 2);
        assert_eq!(req.records[0].key, Bytes::from("orders"));
        assert_eq!(req.records[1].value, Bytes::from("order-2"));
        assert!(req.durable());
    }

    #[test]
    fn should_reject_bad_base64_and_unknown_fields() {
        let err = AppendRequest::from_protobuf_json(br#"{"records":[{"key":"!!!"}]}"#).unwrap_err();
        assert!(err.contains("base64"), "{err}");
        let err = AppendRequest::from_protobuf_json(br#"{"recrods":[]}"#).unwrap_err();
        assert!(err.contains("recrods"), "{err}");
    }

    proptest! {
        #[test]
        fn should_roundtrip_append_requests(keys in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 1..8), proptest::collection::vec(any::<u8>(), 0..8)), 0..4), durable in any::<Option<bool>>(), exp in any::<Option<u64>>()) {
            let req = AppendRequest {
                records: keys.into_iter().map(|(k, v)| Record { key: Bytes::from(k), value: Bytes::from(v) }).collect(),
                await_durable: durable,
                expected_last_sequence: exp,
                expect_empty: false,
                condition_key: Bytes::new(),
            };
            prop_assert_eq!(&AppendRequest::from_protobuf(Bytes::from(req.to_protobuf())).unwrap(), &req);
            prop_assert_eq!(&AppendRequest::from_protobuf_json(&req.to_protobuf_json()).unwrap(), &req);
        }

        #[test]
        fn should_never_panic_on_garbage(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = AppendRequest::from_protobuf(Bytes::from(data.clone()));
            let _ = AppendRequest::from_protobuf_json(&data);
        }
    }
}
