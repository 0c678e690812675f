//! Request bodies as they arrive (JSON or protobuf), and their conversion into the
//! engine's requests, checked against a collection's schema by the engine's own checks.
//! Bodies are read by the API's one content negotiation ([`crate::api::Negotiated`]).

use std::collections::BTreeMap;

use bytes::Bytes;
use opendata_common::Durability;
use opendata_vector::model::{
    self, AttributePatch, AttributeType, Checked, CheckedSearch, CollectionSpec, FieldSelection,
    MAX_K, Metric, SearchRequest, VectorRecord,
};
use opendata_vector::{Error, Filter, Result};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::proto;
use crate::api::negotiate::Decode;

/// The default `k` of a search.
pub const DEFAULT_K: usize = 10;
/// The most queries one batch search may hold.
pub const MAX_BATCH_QUERIES: usize = 1_000;

fn json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> std::result::Result<T, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("the body is empty".to_string());
    }
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

/// Parses a durability name; empty means the default (`remote`).
pub fn parse_durability(s: &str) -> Result<Durability> {
    match s.to_ascii_lowercase().as_str() {
        "" | "remote" => Ok(Durability::Remote),
        "memory" => Ok(Durability::Memory),
        other => Err(Error::invalid(format!(
            "unknown durability {other:?}; expected remote or memory"
        ))),
    }
}

// ---------------------------------------------------------------------------------------
// Collections

/// `POST /collections`: a collection definition, with lenient metric and type names.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateBody {
    /// The name.
    pub name: String,
    /// The dimension.
    pub dimension: u32,
    /// The metric's name (`l2` when empty).
    pub metric: String,
    /// Attribute name to type name.
    pub attributes: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateJson {
    name: String,
    dimension: u32,
    #[serde(default)]
    metric: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

impl Decode for CreateBody {
    fn from_json(bytes: &[u8]) -> std::result::Result<Self, String> {
        let j: CreateJson = json(bytes)?;
        Ok(Self {
            name: j.name,
            dimension: j.dimension,
            metric: j.metric.unwrap_or_default(),
            attributes: j.attributes,
        })
    }

    fn from_protobuf(bytes: Bytes) -> std::result::Result<Self, String> {
        let p: proto::CollectionSpec = proto::decode(bytes)?;
        Ok(Self {
            name: p.name,
            dimension: p.dimension,
            metric: p.metric,
            attributes: p.attributes,
        })
    }
}

impl CreateBody {
    /// The checked definition.
    pub fn to_spec(&self) -> Result<CollectionSpec> {
        let metric = if self.metric.is_empty() {
            Metric::L2
        } else {
            Metric::parse(&self.metric)?
        };
        let mut spec = CollectionSpec::new(self.name.clone(), self.dimension, metric);
        for (name, ty) in &self.attributes {
            let ty = AttributeType::parse(&ty.to_ascii_lowercase())
                .map_err(|e| Error::invalid(format!("attribute {name:?}: {}", message(e))))?;
            spec.attributes.insert(name.clone(), ty);
        }
        spec.validate()?;
        Ok(spec)
    }
}

/// The text of an error without its `invalid request: ` prefix.
pub fn message(e: Error) -> String {
    match e {
        Error::InvalidInput(m) => m,
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// Writes

/// Attributes as they arrived: untyped JSON, or typed protobuf values.
#[derive(Debug, Clone, PartialEq)]
pub enum WireAttributes {
    /// From JSON: typed against the schema by [`CollectionSpec::attributes_from_json`].
    Json(Map<String, Value>),
    /// From protobuf: `None` for a value whose oneof is unset.
    Typed(BTreeMap<String, Option<model::AttributeValue>>),
}

impl Default for WireAttributes {
    fn default() -> Self {
        WireAttributes::Json(Map::new())
    }
}

impl WireAttributes {
    fn from_proto(map: BTreeMap<String, proto::AttributeValue>) -> Self {
        WireAttributes::Typed(map.into_iter().map(|(k, v)| (k, v.to_model())).collect())
    }

    /// The attributes as typed values: JSON values typed by the schema, protobuf values
    /// as they are (the engine checks both), naming `id` in errors.
    pub fn typed(
        self,
        spec: &CollectionSpec,
        id: &str,
    ) -> Result<BTreeMap<String, model::AttributeValue>> {
        match self {
            WireAttributes::Json(map) => spec.attributes_from_json(id, &map),
            WireAttributes::Typed(map) => map
                .into_iter()
                .map(|(name, v)| {
                    v.map(|v| (name.clone(), v)).ok_or_else(|| {
                        Error::invalid(format!("vector {id:?}: attribute {name:?} has no value"))
                    })
                })
                .collect(),
        }
    }
}

/// One record of an upsert.
#[derive(Debug, Clone, PartialEq)]
pub struct WireRecord {
    /// The id.
    pub id: String,
    /// The vector.
    pub vector: Vec<f32>,
    /// The attributes.
    pub attributes: WireAttributes,
}

/// `POST /collections/{name}/upsert`.
#[derive(Debug, Clone, PartialEq)]
pub struct UpsertBody {
    /// The records.
    pub records: Vec<WireRecord>,
    /// The durability's name (empty: remote).
    pub durability: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpsertJson {
    vectors: Vec<RecordJson>,
    #[serde(default)]
    durability: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordJson {
    id: String,
    vector: Vec<f32>,
    #[serde(default)]
    attributes: Option<Map<String, Value>>,
}

impl Decode for UpsertBody {
    fn from_json(bytes: &[u8]) -> std::result::Result<Self, String> {
        let j: UpsertJson = json(bytes)?;
        Ok(Self {
            records: j
                .vectors
                .into_iter()
                .map(|r| WireRecord {
                    id: r.id,
                    vector: r.vector,
                    attributes: WireAttributes::Json(r.attributes.unwrap_or_default()),
                })
                .collect(),
            durability: j.durability.unwrap_or_default(),
        })
    }

    fn from_protobuf(bytes: Bytes) -> std::result::Result<Self, String> {
        let p: proto::UpsertRequest = proto::decode(bytes)?;
        Ok(Self {
            records: p
                .vectors
                .into_iter()
                .map(|v| WireRecord {
                    id: v.id,
                    vector: v.values,
                    attributes: WireAttributes::from_proto(v.attributes),
                })
                .collect(),
            durability: p.durability,
        })
    }
}

impl UpsertBody {
    /// Checks every record against `spec`: ids, dimensions, finite components, attributes.
    pub fn to_records(
        self,
        spec: &CollectionSpec,
    ) -> Result<(Checked<Vec<VectorRecord>>, Durability)> {
        let durability = parse_durability(&self.durability)?;
        let records = self
            .records
            .into_iter()
            .map(|r| {
                let attributes = r.attributes.typed(spec, &r.id)?;
                Ok(VectorRecord {
                    id: r.id,
                    vector: r.vector,
                    attributes,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((spec.check_records(records)?, durability))
    }
}

/// One patch as it arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct WirePatch {
    /// The id.
    pub id: String,
    /// Attributes to set.
    pub set: WireAttributes,
    /// Attributes to remove.
    pub unset: Vec<String>,
}

/// `POST /collections/{name}/patch`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchBody {
    /// The patches.
    pub patches: Vec<WirePatch>,
    /// The durability's name.
    pub durability: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchJson {
    patches: Vec<PatchItemJson>,
    #[serde(default)]
    durability: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchItemJson {
    id: String,
    #[serde(default)]
    set: Option<Map<String, Value>>,
    #[serde(default)]
    unset: Vec<String>,
}

impl Decode for PatchBody {
    fn from_json(bytes: &[u8]) -> std::result::Result<Self, String> {
        let j: PatchJson = json(bytes)?;
        Ok(Self {
            patches: j
                .patches
                .into_iter()
                .map(|p| WirePatch {
                    id: p.id,
                    set: WireAttributes::Json(p.set.unwrap_or_default()),
                    unset: p.unset,
                })
                .collect(),
            durability: j.durability.unwrap_or_default(),
        })
    }

    fn from_protobuf(bytes: Bytes) -> std::result::Result<Self, String> {
        let p: proto::PatchRequest = proto::decode(bytes)?;
        Ok(Self {
            patches: p
                .patches
                .into_iter()
                .map(|p| WirePatch {
                    id: p.id,
                    set: WireAttributes::from_proto(p.set),
                    unset: p.unset,
                })
                .collect(),
            durability: p.durability,
        })
    }
}

impl PatchBody {
    /// Every patch, checked by the engine against `spec`.
    pub fn to_patches(
        self,
        spec: &CollectionSpec,
    ) -> Result<(Checked<Vec<AttributePatch>>, Durability)> {
        let durability = parse_durability(&self.durability)?;
        let patches = self
            .patches
            .into_iter()
            .map(|p| {
                let set = p.set.typed(spec, &p.id)?;
                Ok(AttributePatch {
                    id: p.id,
                    set,
                    unset: p.unset,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((spec.check_patches(patches)?, durability))
    }
}

/// What a delete names.
#[derive(Debug, Clone, PartialEq)]
pub enum DeleteTarget {
    /// These ids.
    Ids(Vec<String>),
    /// Every record matching the filter (JSON, parsed against the schema later).
    Filter(Value),
}

/// `POST /collections/{name}/delete`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteBody {
    /// Ids or a filter.
    pub target: DeleteTarget,
    /// The durability's name.
    pub durability: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteJson {
    #[serde(default)]
    ids: Option<Vec<String>>,
    #[serde(default)]
    filter: Option<Value>,
    #[serde(default)]
    durability: Option<String>,
}

const DELETE_ONE_OF: &str = "a delete names exactly one of \"ids\" and \"filter\"";

impl Decode for DeleteBody {
    fn from_json(bytes: &[u8]) -> std::result::Result<Self, String> {
        let j: DeleteJson = json(bytes)?;
        let target = match (j.ids, j.filter) {
            (Some(ids), None) => DeleteTarget::Ids(ids),
            (None, Some(f)) => DeleteTarget::Filter(f),
            _ => return Err(DELETE_ONE_OF.to_string()),
        };
        Ok(Self {
            target,
            durability: j.durability.unwrap_or_default(),
        })
    }

    fn from_protobuf(bytes: Bytes) -> std::result::Result<Self, String> {
        let p: proto::DeleteRequest = proto::decode(bytes)?;
        let target = match (p.ids.is_empty(), p.filter.trim().is_empty()) {
            (false, true) => DeleteTarget::Ids(p.ids),
            (true, false) => DeleteTarget::Filter(
                serde_json::from_str(&p.filter)
                    .map_err(|e| format!("filter is not valid JSON: {e}"))?,
            ),
            _ => return Err(DELETE_ONE_OF.to_string()),
        };
        Ok(Self {
            target,
            durability: p.durability,
        })
    }
}

/// Checks ids of a delete or get.
pub fn check_ids(ids: &[String]) -> Result<()> {
    for (i, id) in ids.iter().enumerate() {
        model::validate_id(id).map_err(|e| Error::invalid(format!("ids[{i}]: {}", message(e))))?;
    }
    Ok(())
}

/// `POST /collections/{name}/get`.
#[derive(Debug, Clone, PartialEq)]
pub struct GetBody {
    /// Ids to read.
    pub ids: Vec<String>,
    /// Fields; `None` returns everything.
    pub fields: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetJson {
    ids: Vec<String>,
    #[serde(default)]
    fields: Option<Vec<String>>,
}

impl Decode for GetBody {
    fn from_json(bytes: &[u8]) -> std::result::Result<Self, String> {
        let j: GetJson = json(bytes)?;
        Ok(Self {
            ids: j.ids,
            fields: j.fields,
        })
    }

    fn from_protobuf(bytes: Bytes) -> std::result::Result<Self, String> {
        let p: proto::GetRequest = proto::decode(bytes)?;
        Ok(Self {
            ids: p.ids,
            fields: (!p.fields.is_empty()).then_some(p.fields),
        })
    }
}

/// The fields of a get: all when none are named.
pub fn get_fields(fields: Option<&[String]>, spec: &CollectionSpec) -> Result<FieldSelection> {
    match fields {
        None => Ok(FieldSelection::all()),
        Some(f) => FieldSelection::parse(f, spec),
    }
}

// ---------------------------------------------------------------------------------------
// Searches

/// A search as it arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchBody {
    /// The query vector.
    pub vector: Vec<f32>,
    /// `k`, if given.
    pub k: Option<i64>,
    /// `nprobe`, if given.
    pub nprobe: Option<i64>,
    /// The recall target, if given.
    pub recall_target: Option<f64>,
    /// The filter, if given.
    pub filter: Option<Value>,
    /// Fields to return.
    pub fields: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchJson {
    vector: Vec<f32>,
    #[serde(default)]
    k: Option<i64>,
    #[serde(default)]
    nprobe: Option<i64>,
    #[serde(default)]
    recall_target: Option<f64>,
    #[serde(default)]
    filter: Option<Value>,
    #[serde(default)]
    fields: Vec<String>,
}

impl From<SearchJson> for SearchBody {
    fn from(j: SearchJson) -> Self {
        Self {
            vector: j.vector,
            k: j.k,
            nprobe: j.nprobe,
            recall_target: j.recall_target,
            filter: j.filter.filter(|f| !f.is_null()),
            fields: j.fields,
        }
    }
}

impl SearchBody {
    fn from_proto(p: proto::SearchRequest) -> std::result::Result<Self, String> {
        let filter = if p.filter.trim().is_empty() {
            None
        } else {
            Some(
                serde_json::from_str(&p.filter)
                    .map_err(|e| format!("filter is not valid JSON: {e}"))?,
            )
        };
        Ok(Self {
            vector: p.vector,
            k: (p.k != 0).then_some(i64::from(p.k)),
            nprobe: p.nprobe.map(i64::from),
            recall_target: p.recall_target,
            filter,
            fields: p.fields,
        })
    }

    /// The search, checked by the engine against `spec` ([`SearchRequest::check`]);
    /// `what` names the query in errors.
    pub fn to_request(self, spec: &CollectionSpec, what: &str) -> Result<CheckedSearch> {
        // Counts that cannot be one (negative, or beyond the platform's range) are refused
        // here, with the engine's wording; every other check is the engine's.
        let k = match self.k {
            None => DEFAULT_K,
            Some(k) => usize::try_from(k).map_err(|_| {
                Error::invalid(format!("{what}: k must be between 1 and {MAX_K}, got {k}"))
            })?,
        };
        let nprobe = match self.nprobe {
            Some(n) if n < 1 => {
                return Err(Error::invalid(format!(
                    "{what}: nprobe must be at least 1, got {n}"
                )));
            }
            Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            None => None,
        };
        let filter = self
            .filter
            .as_ref()
            .map(|f| Filter::from_json(f, spec))
            .transpose()?;
        let fields = FieldSelection::parse(&self.fields, spec)?;
        SearchRequest {
            vector: self.vector,
            k,
            nprobe,
            recall_target: self.recall_target,
            filter,
            fields,
        }
        .check(spec, what)
    }
}

impl Decode for SearchBody {
    fn from_json(bytes: &[u8]) -> std::result::Result<Self, String> {
        json::<SearchJson>(bytes).map(Into::into)
    }

    fn from_protobuf(bytes: Bytes) -> std::result::Result<Self, String> {
        Self::from_proto(proto::decode(bytes)?)
    }
}

/// `POST /collections/{name}/search/batch`.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchBatchBody {
    /// The searches.
    pub queries: Vec<SearchBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchBatchJson {
    queries: Vec<SearchJson>,
}

impl Decode for SearchBatchBody {
    fn from_json(bytes: &[u8]) -> std::result::Result<Self, String> {
        let j: SearchBatchJson = json(bytes)?;
        Ok(Self {
            queries: j.queries.into_iter().map(Into::into).collect(),
        })
    }

    fn from_protobuf(bytes: Bytes) -> std::result::Result<Self, String> {
        let p: proto::SearchBatchRequest = proto::decode(bytes)?;
        Ok(Self {
            queries: p
                .queries
                .into_iter()
                .map(SearchBody::from_proto)
                .collect::<std::result::Result<_, _>>()?,
        })
    }
}

impl SearchBatchBody {
    /// The checked searches.
    pub fn to_requests(self, spec: &CollectionSpec) -> Result<Vec<CheckedSearch>> {
        if self.queries.len() > MAX_BATCH_QUERIES {
            return Err(Error::invalid(format!(
                "a batch of {} queries is larger than {MAX_BATCH_QUERIES}",
                self.queries.len()
            )));
        }
        self.queries
            .into_iter()
            .enumerate()
            .map(|(i, q)| q.to_request(spec, &format!("queries[{i}]")))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Format;
    use crate::api::negotiate::decode;
    use proptest::prelude::*;
    use prost::Message;
    use serde_json::json;

    fn spec() -> CollectionSpec {
        CollectionSpec::new("c", 3, Metric::L2)
            .with_attribute("color", AttributeType::String)
            .with_attribute("size", AttributeType::Integer)
            .with_attribute("price", AttributeType::Float)
            .with_attribute("ok", AttributeType::Bool)
            .with_attribute("tags", AttributeType::StringList)
    }

    fn err<T: std::fmt::Debug>(r: Result<T>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn should_read_a_create_body_leniently() {
        let body = CreateBody::from_json(
            br#"{"name":"docs","dimension":4,"metric":"Euclidean","attributes":{"color":"string","size":"int","tags":"string_list","ok":"Boolean"}}"#,
        )
        .unwrap();
        let spec = body.to_spec().unwrap();
        assert_eq!(spec.metric, Metric::L2);
        assert_eq!(spec.attributes["size"], AttributeType::Integer);
        assert_eq!(spec.attributes["ok"], AttributeType::Bool);
        let pb = proto::CollectionSpec::from_model(&spec).encode_to_vec();
        assert_eq!(
            CreateBody::from_protobuf(Bytes::from(pb))
                .unwrap()
                .to_spec()
                .unwrap(),
            spec
        );
    }

    #[test]
    fn should_reject_bad_collection_definitions() {
        for (body, needle) in [
            (
                json!({"name":"x","dimension":0}),
                "dimension must be between",
            ),
            (
                json!({"name":"x","dimension":2,"metric":"hamming"}),
                "unknown metric",
            ),
            (
                json!({"name":"x","dimension":2,"attributes":{"a":"date"}}),
                "attribute \"a\": unknown attribute type",
            ),
            (
                json!({"name":"x","dimension":2,"attributes":{"and":"string"}}),
                "reserved",
            ),
            (json!({"name":"a/b","dimension":2}), "contains '/'"),
        ] {
            let b = CreateBody::from_json(body.to_string().as_bytes()).unwrap();
            let e = err(b.to_spec());
            assert!(e.contains(needle), "{body}: {e}");
        }
        let e = CreateBody::from_json(br#"{"name":"x","dimension":-1}"#).unwrap_err();
        assert!(e.contains("-1"), "{e}");
        let e = CreateBody::from_json(br#"{"name":"x","dimension":2,"metirc":"l2"}"#).unwrap_err();
        assert!(e.contains("metirc"), "{e}");
    }

    #[test]
    fn should_type_json_and_protobuf_upserts_alike() {
        let j = UpsertBody::from_json(
            json!({"vectors":[{"id":"a","vector":[1,2,3],"attributes":{"color":"red","size":3,"price":2,"ok":true,"tags":["x","y"]}}]})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        let mut attrs = BTreeMap::new();
        for (k, v) in [
            ("color", model::AttributeValue::String("red".into())),
            ("size", model::AttributeValue::Integer(3)),
            ("price", model::AttributeValue::Integer(2)),
            ("ok", model::AttributeValue::Bool(true)),
            (
                "tags",
                model::AttributeValue::StringList(vec!["x".into(), "y".into()]),
            ),
        ] {
            attrs.insert(k.to_string(), proto::AttributeValue::from_model(&v));
        }
        let p = proto::UpsertRequest {
            vectors: vec![proto::Vector {
                id: "a".into(),
                values: vec![1.0, 2.0, 3.0],
                attributes: attrs,
            }],
            durability: "memory".into(),
        };
        let p = UpsertBody::from_protobuf(Bytes::from(p.encode_to_vec())).unwrap();
        let (jr, jd) = j.to_records(&spec()).unwrap();
        let (pr, pd) = p.to_records(&spec()).unwrap();
        assert_eq!(jr, pr);
        assert_eq!(jd, Durability::Remote);
        assert_eq!(pd, Durability::Memory);
        assert_eq!(
            jr[0].attributes["price"],
            model::AttributeValue::Float(2.0),
            "integers become floats for float attributes"
        );
    }

    #[test]
    fn should_name_the_problem_in_bad_upserts() {
        let s = spec();
        let long = "x".repeat(513);
        for (body, needle) in [
            (
                json!({"vectors":[{"id":"a","vector":[1,2]}]}),
                "vector \"a\" has dimension 2",
            ),
            (
                json!({"vectors":[{"id":"a","vector":[1,2,3],"attributes":{"colour":"red"}}]}),
                "unknown attribute \"colour\"",
            ),
            (
                json!({"vectors":[{"id":"a","vector":[1,2,3],"attributes":{"size":"big"}}]}),
                "attribute \"size\" is integer",
            ),
            (
                json!({"vectors":[{"id":long,"vector":[1,2,3]}]}),
                "longer than the 512-byte limit",
            ),
            (json!({"vectors":[{"id":"","vector":[1,2,3]}]}), "empty"),
            (
                json!({"vectors":[],"durability":"disk"}),
                "unknown durability",
            ),
            (
                json!({"vectors":[{"id":"a","vector":[1e39,2,3]}]}),
                "vector \"a\" component 0 is inf",
            ),
        ] {
            let b = UpsertBody::from_json(body.to_string().as_bytes()).unwrap();
            let e = err(b.to_records(&s));
            assert!(e.contains(needle), "{needle}: {e}");
        }
        // JSON numbers beyond f64 fail while parsing, with a message that says so.
        let e = decode::<UpsertBody>(
            Format::Json,
            Bytes::from_static(br#"{"vectors":[{"id":"a","vector":[1e999,2,3]}]}"#),
        )
        .unwrap_err();
        assert!(e.contains("number out of range"), "{e}");
        let e = decode::<UpsertBody>(Format::Json, Bytes::new()).unwrap_err();
        assert!(e.contains("empty"), "{e}");
    }

    #[test]
    fn should_reject_non_finite_protobuf_components_naming_id_and_component() {
        for (bad, shown) in [(f32::NAN, "NaN"), (f32::INFINITY, "inf")] {
            let p = proto::UpsertRequest {
                vectors: vec![
                    proto::Vector {
                        id: "ok".into(),
                        values: vec![1.0, 2.0, 3.0],
                        attributes: BTreeMap::new(),
                    },
                    proto::Vector {
                        id: "bad".into(),
                        values: vec![1.0, 2.0, bad],
                        attributes: BTreeMap::new(),
                    },
                ],
                durability: String::new(),
            };
            let b = UpsertBody::from_protobuf(Bytes::from(p.encode_to_vec())).unwrap();
            let e = err(b.to_records(&spec()));
            assert!(e.contains("vector \"bad\" component 2"), "{e}");
            assert!(e.contains(shown), "{e}");
        }
        // An attribute with no value set.
        let mut attrs = BTreeMap::new();
        attrs.insert("color".to_string(), proto::AttributeValue { value: None });
        let p = proto::UpsertRequest {
            vectors: vec![proto::Vector {
                id: "a".into(),
                values: vec![1.0, 2.0, 3.0],
                attributes: attrs,
            }],
            durability: String::new(),
        };
        let b = UpsertBody::from_protobuf(Bytes::from(p.encode_to_vec())).unwrap();
        assert!(err(b.to_records(&spec())).contains("has no value"));
        // A non-finite float attribute.
        let mut attrs = BTreeMap::new();
        attrs.insert(
            "price".to_string(),
            proto::AttributeValue::from_model(&model::AttributeValue::Float(f64::NAN)),
        );
        let p = proto::UpsertRequest {
            vectors: vec![proto::Vector {
                id: "a".into(),
                values: vec![1.0, 2.0, 3.0],
                attributes: attrs,
            }],
            durability: String::new(),
        };
        let b = UpsertBody::from_protobuf(Bytes::from(p.encode_to_vec())).unwrap();
        assert!(err(b.to_records(&spec())).contains("must be finite"));
    }

    #[test]
    fn should_check_patches() {
        let s = spec();
        let b = PatchBody::from_json(
            br#"{"patches":[{"id":"a","set":{"color":"blue"},"unset":["size"]}]}"#,
        )
        .unwrap();
        let (p, _) = b.to_patches(&s).unwrap();
        assert_eq!(p[0].unset, vec!["size".to_string()]);
        for (body, needle) in [
            (
                json!({"patches":[{"id":"a","unset":["nope"]}]}),
                "unknown attribute \"nope\"",
            ),
            (
                json!({"patches":[{"id":"a","set":{"size":1.5}}]}),
                "attribute \"size\" is integer",
            ),
            (
                json!({"patches":[{"id":"a","set":{"size":1},"unset":["size"]}]}),
                "both set and unset",
            ),
        ] {
            let b = PatchBody::from_json(body.to_string().as_bytes()).unwrap();
            let e = err(b.to_patches(&s));
            assert!(e.contains(needle), "{needle}: {e}");
        }
    }

    #[test]
    fn should_want_exactly_one_delete_target() {
        assert_eq!(
            DeleteBody::from_json(br#"{"ids":["a"]}"#).unwrap().target,
            DeleteTarget::Ids(vec!["a".into()])
        );
        assert_eq!(
            DeleteBody::from_json(br#"{"filter":{"color":"red"}}"#)
                .unwrap()
                .target,
            DeleteTarget::Filter(json!({"color":"red"}))
        );
        for body in [r#"{}"#, r#"{"ids":["a"],"filter":{"color":"red"}}"#] {
            let e = DeleteBody::from_json(body.as_bytes()).unwrap_err();
            assert!(e.contains("exactly one"), "{e}");
        }
        let p = proto::DeleteRequest {
            ids: vec![],
            filter: r#"{"size":{"gt":3}}"#.into(),
            durability: String::new(),
        };
        assert_eq!(
            DeleteBody::from_protobuf(Bytes::from(p.encode_to_vec()))
                .unwrap()
                .target,
            DeleteTarget::Filter(json!({"size":{"gt":3}}))
        );
        let p = proto::DeleteRequest {
            ids: vec![],
            filter: "{nope".into(),
            durability: String::new(),
        };
        let e = DeleteBody::from_protobuf(Bytes::from(p.encode_to_vec())).unwrap_err();
        assert!(e.contains("filter is not valid JSON"), "{e}");
    }

    #[test]
    fn should_check_searches() {
        let s = spec();
        let b = SearchBody::from_json(
            br#"{"vector":[1,2,3],"k":5,"nprobe":4,"filter":{"color":"red"},"fields":["vector","color"]}"#,
        )
        .unwrap();
        let r = b.to_request(&s, "query").unwrap();
        assert_eq!(r.k, 5);
        assert_eq!(r.nprobe, Some(4));
        assert!(r.filter.is_some());
        assert!(r.fields.vector);
        assert_eq!(r.fields.attributes, Some(vec!["color".to_string()]));
        let r = SearchBody::from_json(br#"{"vector":[1,2,3]}"#)
            .unwrap()
            .to_request(&s, "query")
            .unwrap();
        assert_eq!(r.k, DEFAULT_K);
        assert_eq!(r.fields, FieldSelection::none());
        for (body, needle) in [
            (json!({"vector":[1,2,3],"k":0}), "k must be between 1 and"),
            (
                json!({"vector":[1,2,3],"k":10001}),
                "k must be between 1 and",
            ),
            (
                json!({"vector":[1,2,3],"nprobe":0}),
                "nprobe must be at least 1",
            ),
            (
                json!({"vector":[1,2,3],"recall_target":1.5}),
                "recall_target must be in (0, 1]",
            ),
            (
                json!({"vector":[1,2,3],"recall_target":0}),
                "recall_target must be in (0, 1]",
            ),
            (
                json!({"vector":[1,2,3],"filter":{"size":"big"}}),
                "filter: attribute \"size\" is integer",
            ),
            (
                json!({"vector":[1,2,3],"filter":{"nope":1}}),
                "unknown attribute \"nope\"",
            ),
            (
                json!({"vector":[1,2,3],"fields":["colour"]}),
                "unknown field",
            ),
            (json!({"vector":[1,2]}), "has dimension 2"),
        ] {
            let b = SearchBody::from_json(body.to_string().as_bytes()).unwrap();
            let e = err(b.to_request(&s, "query"));
            assert!(e.contains(needle), "{needle}: {e}");
        }
        let e = SearchBatchBody::from_json(br#"{"queries":[{"vector":[1,2,3]},{"vector":[1]}]}"#)
            .unwrap()
            .to_requests(&s)
            .unwrap_err()
            .to_string();
        assert!(e.contains("queries[1]"), "{e}");
    }

    #[test]
    fn should_read_protobuf_searches_like_json_ones() {
        let s = spec();
        let p = proto::SearchRequest {
            vector: vec![1.0, 2.0, 3.0],
            k: 7,
            nprobe: Some(3),
            recall_target: None,
            filter: r#"{"tags":{"contains":"x"}}"#.into(),
            fields: vec!["attributes".into()],
        };
        let batch = proto::SearchBatchRequest {
            queries: vec![p.clone(), p.clone()],
        };
        let from_pb = SearchBody::from_protobuf(Bytes::from(p.encode_to_vec()))
            .unwrap()
            .to_request(&s, "q")
            .unwrap();
        let from_json = SearchBody::from_json(
            br#"{"vector":[1,2,3],"k":7,"nprobe":3,"filter":{"tags":{"contains":"x"}},"fields":["attributes"]}"#,
        )
        .unwrap()
        .to_request(&s, "q")
        .unwrap();
        assert_eq!(from_pb, from_json);
        let b = SearchBatchBody::from_protobuf(Bytes::from(batch.encode_to_vec()))
            .unwrap()
            .to_requests(&s)
            .unwrap();
        assert_eq!(b, vec![from_json.clone(), from_json]);
        // k = 0 in protobuf means "not given".
        let p = proto::SearchRequest {
            k: 0,
            filter: String::new(),
            ..p
        };
        let r = SearchBody::from_protobuf(Bytes::from(p.encode_to_vec()))
            .unwrap()
            .to_request(&s, "q")
            .unwrap();
        assert_eq!(r.k, DEFAULT_K);
        assert!(r.filter.is_none());
    }

    fn attr_strategy() -> impl Strategy<Value = model::AttributeValue> {
        prop_oneof![
            ".{0,8}".prop_map(model::AttributeValue::String),
            any::<i64>().prop_map(model::AttributeValue::Integer),
            any::<f64>().prop_map(model::AttributeValue::Float),
            any::<bool>().prop_map(model::AttributeValue::Bool),
            proptest::collection::vec(".{0,4}", 0..3).prop_map(model::AttributeValue::StringList),
        ]
    }

    proptest! {
        #[test]
        fn should_roundtrip_protobuf_vectors(
            id in ".{1,16}",
            values in proptest::collection::vec(any::<f32>(), 0..16),
            attrs in proptest::collection::btree_map("[a-z]{1,6}", attr_strategy(), 0..4),
        ) {
            let v = proto::Vector {
                id,
                values,
                attributes: proto::attributes_from_model(&attrs),
            };
            let back = proto::Vector::decode(v.encode_to_vec().as_slice()).unwrap();
            prop_assert_eq!(back.values.len(), v.values.len());
            for (a, b) in back.values.iter().zip(&v.values) {
                prop_assert_eq!(a.to_bits(), b.to_bits());
            }
            let typed: BTreeMap<_, _> = back.attributes.iter().map(|(k, v)| (k.clone(), v.to_model().unwrap())).collect();
            prop_assert_eq!(typed.len(), attrs.len());
            for (k, v) in &attrs {
                match (v, &typed[k]) {
                    (model::AttributeValue::Float(a), model::AttributeValue::Float(b)) => prop_assert_eq!(a.to_bits(), b.to_bits()),
                    (a, b) => prop_assert_eq!(a, b),
                }
            }
        }

        #[test]
        fn should_never_panic_on_garbage(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let b = Bytes::from(data.clone());
            let _ = UpsertBody::from_protobuf(b.clone());
            let _ = UpsertBody::from_json(&data);
            let _ = SearchBody::from_protobuf(b.clone());
            let _ = SearchBatchBody::from_protobuf(b.clone());
            let _ = DeleteBody::from_protobuf(b.clone());
            let _ = PatchBody::from_protobuf(b.clone());
            let _ = GetBody::from_protobuf(b.clone());
            let _ = CreateBody::from_protobuf(b);
        }
    }
}
