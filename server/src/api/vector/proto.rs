//! Protobuf messages of the vector HTTP API (package `opendata.vector.v1`), written with
//! prost's derive so no code generator is needed. Send them with
//! `Content-Type: application/protobuf` (or `application/x-protobuf`); answers come in the
//! same format unless `Accept` names another. Errors are always the JSON error envelope.
//!
//! ```proto
//! syntax = "proto3";
//! package opendata.vector.v1;
//!
//! message CollectionSpec  { string name = 1; uint32 dimension = 2; string metric = 3;
//!                           map<string, string> attributes = 4; }   // name -> type
//! message CollectionInfo  { CollectionSpec spec = 1; uint64 vectors = 2; uint64 postings = 3;
//!                           uint64 posting_entries = 4; uint64 index_memory_bytes = 5; }
//! message ListCollectionsResponse { repeated CollectionInfo collections = 1; }
//! message DropCollectionResponse  { string name = 1; }
//!
//! message StringList      { repeated string values = 1; }
//! message AttributeValue  { oneof value { string string_value = 1; int64 int_value = 2;
//!                           double float_value = 3; bool bool_value = 4;
//!                           StringList string_list_value = 5; } }
//! message Vector          { string id = 1; repeated float values = 2;
//!                           map<string, AttributeValue> attributes = 3; }
//! message UpsertRequest   { repeated Vector vectors = 1; string durability = 2; } // "remote" (default) | "memory"
//! message WriteResponse   { uint64 count = 1; uint64 missing = 2; }
//! message Patch           { string id = 1; map<string, AttributeValue> set = 2; repeated string unset = 3; }
//! message PatchRequest    { repeated Patch patches = 1; string durability = 2; }
//! message DeleteRequest   { repeated string ids = 1; string filter = 2; string durability = 3; } // filter: JSON text
//! message GetRequest      { repeated string ids = 1; repeated string fields = 2; }
//! message GetResponse     { repeated Vector vectors = 1; repeated string missing = 2; }
//!
//! message SearchRequest   { repeated float vector = 1; uint32 k = 2; optional uint32 nprobe = 3;
//!                           optional double recall_target = 4; string filter = 5; // JSON text
//!                           repeated string fields = 6; }
//! message SearchHit       { string id = 1; float score = 2; repeated float vector = 3;
//!                           map<string, AttributeValue> attributes = 4; }
//! message SearchStats     { string plan = 1; uint64 postings_probed = 2; uint64 candidates_scored = 3;
//!                           optional uint64 filter_matches = 4; }
//! message SearchResponse  { repeated SearchHit hits = 1; SearchStats stats = 2; }
//! message SearchBatchRequest  { repeated SearchRequest queries = 1; }
//! message SearchBatchResponse { repeated SearchResponse results = 1; }
//! ```
//!
//! A `k` of 0 in a protobuf search means "not given" (the default, 10).

use std::collections::BTreeMap;

use prost::Message;

use opendata_vector::model;

/// A collection's definition.
#[derive(Clone, PartialEq, Message)]
pub struct CollectionSpec {
    /// The collection's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Components of every vector.
    #[prost(uint32, tag = "2")]
    pub dimension: u32,
    /// `l2`, `cosine` or `dot`.
    #[prost(string, tag = "3")]
    pub metric: String,
    /// Attribute name to type (`string`, `integer`, `float`, `bool`, `string_list`).
    #[prost(btree_map = "string, string", tag = "4")]
    pub attributes: BTreeMap<String, String>,
}

/// What a collection holds.
#[derive(Clone, PartialEq, Message)]
pub struct CollectionInfo {
    /// The definition.
    #[prost(message, optional, tag = "1")]
    pub spec: Option<CollectionSpec>,
    /// Live vectors.
    #[prost(uint64, tag = "2")]
    pub vectors: u64,
    /// Posting lists.
    #[prost(uint64, tag = "3")]
    pub postings: u64,
    /// Posting-list entries.
    #[prost(uint64, tag = "4")]
    pub posting_entries: u64,
    /// Bytes of the in-memory index.
    #[prost(uint64, tag = "5")]
    pub index_memory_bytes: u64,
}

/// Answer to `GET /collections`.
#[derive(Clone, PartialEq, Message)]
pub struct ListCollectionsResponse {
    /// Every collection, by name.
    #[prost(message, repeated, tag = "1")]
    pub collections: Vec<CollectionInfo>,
}

/// Answer to `DELETE /collections/{name}`.
#[derive(Clone, PartialEq, Message)]
pub struct DropCollectionResponse {
    /// The collection dropped.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// A list of strings (the `string_list` attribute type).
#[derive(Clone, PartialEq, Message)]
pub struct StringList {
    /// The strings.
    #[prost(string, repeated, tag = "1")]
    pub values: Vec<String>,
}

/// A typed attribute value.
#[derive(Clone, PartialEq, Message)]
pub struct AttributeValue {
    /// The value; absent is an error.
    #[prost(oneof = "attribute_value::Value", tags = "1, 2, 3, 4, 5")]
    pub value: Option<attribute_value::Value>,
}

/// The cases of [`AttributeValue`].
pub mod attribute_value {
    /// One typed value.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        /// A string.
        #[prost(string, tag = "1")]
        StringValue(String),
        /// An integer.
        #[prost(int64, tag = "2")]
        IntValue(i64),
        /// A float.
        #[prost(double, tag = "3")]
        FloatValue(f64),
        /// A boolean.
        #[prost(bool, tag = "4")]
        BoolValue(bool),
        /// A list of strings.
        #[prost(message, tag = "5")]
        StringListValue(super::StringList),
    }
}

/// A record: id, vector and attributes.
#[derive(Clone, PartialEq, Message)]
pub struct Vector {
    /// The caller's id.
    #[prost(string, tag = "1")]
    pub id: String,
    /// The components (empty in answers that did not ask for the vector).
    #[prost(float, repeated, tag = "2")]
    pub values: Vec<f32>,
    /// Attributes by name.
    #[prost(btree_map = "string, message", tag = "3")]
    pub attributes: BTreeMap<String, AttributeValue>,
}

/// `POST /collections/{name}/upsert`.
#[derive(Clone, PartialEq, Message)]
pub struct UpsertRequest {
    /// Records to insert or replace.
    #[prost(message, repeated, tag = "1")]
    pub vectors: Vec<Vector>,
    /// `remote` (default when empty) or `memory`.
    #[prost(string, tag = "2")]
    pub durability: String,
}

/// Answer to upsert, patch and delete.
#[derive(Clone, PartialEq, Message)]
pub struct WriteResponse {
    /// Records written or removed.
    #[prost(uint64, tag = "1")]
    pub count: u64,
    /// Of those, records that did not exist.
    #[prost(uint64, tag = "2")]
    pub missing: u64,
}

/// A change to one record's attributes.
#[derive(Clone, PartialEq, Message)]
pub struct Patch {
    /// The record's id.
    #[prost(string, tag = "1")]
    pub id: String,
    /// Attributes to add or replace.
    #[prost(btree_map = "string, message", tag = "2")]
    pub set: BTreeMap<String, AttributeValue>,
    /// Attributes to remove.
    #[prost(string, repeated, tag = "3")]
    pub unset: Vec<String>,
}

/// `POST /collections/{name}/patch`.
#[derive(Clone, PartialEq, Message)]
pub struct PatchRequest {
    /// The changes.
    #[prost(message, repeated, tag = "1")]
    pub patches: Vec<Patch>,
    /// `remote` (default when empty) or `memory`.
    #[prost(string, tag = "2")]
    pub durability: String,
}

/// `POST /collections/{name}/delete`: ids, or a filter (JSON text), not both.
#[derive(Clone, PartialEq, Message)]
pub struct DeleteRequest {
    /// Ids to delete.
    #[prost(string, repeated, tag = "1")]
    pub ids: Vec<String>,
    /// A filter in the JSON filter language, as text.
    #[prost(string, tag = "2")]
    pub filter: String,
    /// `remote` (default when empty) or `memory`.
    #[prost(string, tag = "3")]
    pub durability: String,
}

/// `POST /collections/{name}/get`.
#[derive(Clone, PartialEq, Message)]
pub struct GetRequest {
    /// Ids to read.
    #[prost(string, repeated, tag = "1")]
    pub ids: Vec<String>,
    /// Fields to return (empty: vector and every attribute).
    #[prost(string, repeated, tag = "2")]
    pub fields: Vec<String>,
}

/// Answer to a get.
#[derive(Clone, PartialEq, Message)]
pub struct GetResponse {
    /// The records found, in the order asked.
    #[prost(message, repeated, tag = "1")]
    pub vectors: Vec<Vector>,
    /// The ids not found.
    #[prost(string, repeated, tag = "2")]
    pub missing: Vec<String>,
}

/// `POST /collections/{name}/search`.
#[derive(Clone, PartialEq, Message)]
pub struct SearchRequest {
    /// The query vector.
    #[prost(float, repeated, tag = "1")]
    pub vector: Vec<f32>,
    /// Neighbours to return; 0 means the default (10).
    #[prost(uint32, tag = "2")]
    pub k: u32,
    /// Posting lists to probe.
    #[prost(uint32, optional, tag = "3")]
    pub nprobe: Option<u32>,
    /// Recall@k to aim for, in (0, 1].
    #[prost(double, optional, tag = "4")]
    pub recall_target: Option<f64>,
    /// A filter in the JSON filter language, as text (empty: none).
    #[prost(string, tag = "5")]
    pub filter: String,
    /// Fields to return besides id and score.
    #[prost(string, repeated, tag = "6")]
    pub fields: Vec<String>,
}

/// One search result.
#[derive(Clone, PartialEq, Message)]
pub struct SearchHit {
    /// The record's id.
    #[prost(string, tag = "1")]
    pub id: String,
    /// The score in the metric's terms.
    #[prost(float, tag = "2")]
    pub score: f32,
    /// The vector, if asked for.
    #[prost(float, repeated, tag = "3")]
    pub vector: Vec<f32>,
    /// The attributes asked for.
    #[prost(btree_map = "string, message", tag = "4")]
    pub attributes: BTreeMap<String, AttributeValue>,
}

/// How a search ran.
#[derive(Clone, PartialEq, Message)]
pub struct SearchStats {
    /// `flat`, `probe` or `exact_filtered`.
    #[prost(string, tag = "1")]
    pub plan: String,
    /// Posting lists read.
    #[prost(uint64, tag = "2")]
    pub postings_probed: u64,
    /// Distances computed.
    #[prost(uint64, tag = "3")]
    pub candidates_scored: u64,
    /// Records the filter matched.
    #[prost(uint64, optional, tag = "4")]
    pub filter_matches: Option<u64>,
}

/// Answer to a search.
#[derive(Clone, PartialEq, Message)]
pub struct SearchResponse {
    /// Hits, nearest first.
    #[prost(message, repeated, tag = "1")]
    pub hits: Vec<SearchHit>,
    /// What the search did.
    #[prost(message, optional, tag = "2")]
    pub stats: Option<SearchStats>,
}

/// `POST /collections/{name}/search/batch`.
#[derive(Clone, PartialEq, Message)]
pub struct SearchBatchRequest {
    /// The searches.
    #[prost(message, repeated, tag = "1")]
    pub queries: Vec<SearchRequest>,
}

/// Answer to a batch search, one result per query in order.
#[derive(Clone, PartialEq, Message)]
pub struct SearchBatchResponse {
    /// The results.
    #[prost(message, repeated, tag = "1")]
    pub results: Vec<SearchResponse>,
}

impl AttributeValue {
    /// Wraps a model value.
    pub fn from_model(v: &model::AttributeValue) -> Self {
        use attribute_value::Value;
        let value = match v {
            model::AttributeValue::String(s) => Value::StringValue(s.clone()),
            model::AttributeValue::Integer(i) => Value::IntValue(*i),
            model::AttributeValue::Float(f) => Value::FloatValue(*f),
            model::AttributeValue::Bool(b) => Value::BoolValue(*b),
            model::AttributeValue::StringList(l) => {
                Value::StringListValue(StringList { values: l.clone() })
            }
        };
        Self { value: Some(value) }
    }

    /// The model value (untyped against a schema yet); `None` when the oneof is empty.
    pub fn to_model(&self) -> Option<model::AttributeValue> {
        use attribute_value::Value;
        Some(match self.value.as_ref()? {
            Value::StringValue(s) => model::AttributeValue::String(s.clone()),
            Value::IntValue(i) => model::AttributeValue::Integer(*i),
            Value::FloatValue(f) => model::AttributeValue::Float(*f),
            Value::BoolValue(b) => model::AttributeValue::Bool(*b),
            Value::StringListValue(l) => model::AttributeValue::StringList(l.values.clone()),
        })
    }
}

/// Model attributes as protobuf values.
pub fn attributes_from_model(
    attrs: &BTreeMap<String, model::AttributeValue>,
) -> BTreeMap<String, AttributeValue> {
    attrs
        .iter()
        .map(|(k, v)| (k.clone(), AttributeValue::from_model(v)))
        .collect()
}

impl CollectionSpec {
    /// The protobuf form of a model spec.
    pub fn from_model(spec: &model::CollectionSpec) -> Self {
        Self {
            name: spec.name.clone(),
            dimension: spec.dimension,
            metric: spec.metric.name().to_string(),
            attributes: spec
                .attributes
                .iter()
                .map(|(k, t)| (k.clone(), t.name().to_string()))
                .collect(),
        }
    }
}

impl CollectionInfo {
    /// The protobuf form of a model description.
    pub fn from_model(info: &model::CollectionInfo) -> Self {
        Self {
            spec: Some(CollectionSpec::from_model(&info.spec)),
            vectors: info.vectors,
            postings: info.postings,
            posting_entries: info.posting_entries,
            index_memory_bytes: info.index_memory_bytes,
        }
    }
}

impl SearchResponse {
    /// The protobuf form of a model search response.
    pub fn from_model(r: &model::SearchResponse) -> Self {
        Self {
            hits: r
                .hits
                .iter()
                .map(|h| SearchHit {
                    id: h.id.clone(),
                    score: h.score,
                    vector: h.vector.clone().unwrap_or_default(),
                    attributes: attributes_from_model(&h.attributes),
                })
                .collect(),
            stats: Some(SearchStats {
                plan: plan_name(r.stats.plan).to_string(),
                postings_probed: r.stats.postings_probed as u64,
                candidates_scored: r.stats.candidates_scored as u64,
                filter_matches: r.stats.filter_matches,
            }),
        }
    }
}

/// The API's name of a search plan.
pub fn plan_name(plan: model::SearchPlan) -> &'static str {
    match plan {
        model::SearchPlan::Flat => "flat",
        model::SearchPlan::Probe => "probe",
        model::SearchPlan::ExactFiltered => "exact_filtered",
    }
}

/// Decodes any message, with prost's error as text.
pub fn decode<M: Message + Default>(bytes: bytes::Bytes) -> Result<M, String> {
    M::decode(bytes).map_err(|e| e.to_string())
}
