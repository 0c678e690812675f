//! The public data model: collections, records, filters, searches.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The longest collection name, in bytes.
pub const MAX_COLLECTION_NAME: usize = 128;
/// The longest vector id, in bytes.
pub const MAX_ID_BYTES: usize = 512;
/// The largest dimension a collection may have.
pub const MAX_DIMENSION: u32 = 4096;
/// The longest attribute name, in bytes.
pub const MAX_ATTRIBUTE_NAME: usize = 128;
/// The longest string attribute value (each element of a list), in bytes.
pub const MAX_STRING_VALUE: usize = 4096;
/// The most `k` a search may ask for.
pub const MAX_K: usize = 10_000;
/// Names that cannot be attributes: they are the filter language's combinators.
pub const RESERVED_ATTRIBUTE_NAMES: [&str; 3] = ["and", "or", "not"];

/// How vectors are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Euclidean distance; scores are the distance (smaller is nearer).
    L2,
    /// Cosine similarity; scores are the similarity in [-1, 1] (larger is nearer).
    /// Vectors are stored normalised, so a zero vector is rejected.
    Cosine,
    /// Inner product; scores are the dot product (larger is nearer).
    Dot,
}

impl Metric {
    /// The metric's name as the API spells it.
    pub fn name(self) -> &'static str {
        match self {
            Metric::L2 => "l2",
            Metric::Cosine => "cosine",
            Metric::Dot => "dot",
        }
    }

    /// Parses `l2`, `euclidean`, `cosine`, `dot` or `ip`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "l2" | "euclidean" => Ok(Metric::L2),
            "cosine" => Ok(Metric::Cosine),
            "dot" | "ip" | "inner_product" => Ok(Metric::Dot),
            other => Err(Error::invalid(format!(
                "unknown metric {other:?}; expected l2, cosine or dot"
            ))),
        }
    }

    pub(crate) fn as_u8(self) -> u8 {
        match self {
            Metric::L2 => 1,
            Metric::Cosine => 2,
            Metric::Dot => 3,
        }
    }

    pub(crate) fn from_u8(b: u8) -> Option<Self> {
        match b {
            1 => Some(Metric::L2),
            2 => Some(Metric::Cosine),
            3 => Some(Metric::Dot),
            _ => None,
        }
    }

    /// Whether larger scores are nearer.
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::L2)
    }
}

/// The type of an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttributeType {
    /// UTF-8 string.
    String,
    /// Signed 64-bit integer.
    Integer,
    /// 64-bit float (finite).
    Float,
    /// Boolean.
    Bool,
    /// A list of strings, filtered with `contains`.
    StringList,
}

impl AttributeType {
    /// The type's name as the API spells it.
    pub fn name(self) -> &'static str {
        match self {
            AttributeType::String => "string",
            AttributeType::Integer => "integer",
            AttributeType::Float => "float",
            AttributeType::Bool => "bool",
            AttributeType::StringList => "string_list",
        }
    }

    /// Parses a type name (`string`, `integer`/`int`, `float`, `bool`, `string_list`).
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "string" | "str" => Ok(AttributeType::String),
            "integer" | "int" => Ok(AttributeType::Integer),
            "float" | "double" => Ok(AttributeType::Float),
            "bool" | "boolean" => Ok(AttributeType::Bool),
            "string_list" | "list<string>" | "[string]" => Ok(AttributeType::StringList),
            other => Err(Error::invalid(format!(
                "unknown attribute type {other:?}; expected string, integer, float, bool or string_list"
            ))),
        }
    }

    pub(crate) fn as_u8(self) -> u8 {
        match self {
            AttributeType::String => 1,
            AttributeType::Integer => 2,
            AttributeType::Float => 3,
            AttributeType::Bool => 4,
            AttributeType::StringList => 5,
        }
    }

    pub(crate) fn from_u8(b: u8) -> Option<Self> {
        match b {
            1 => Some(AttributeType::String),
            2 => Some(AttributeType::Integer),
            3 => Some(AttributeType::Float),
            4 => Some(AttributeType::Bool),
            5 => Some(AttributeType::StringList),
            _ => None,
        }
    }
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum AttributeValue {
    /// A string.
    String(String),
    /// An integer.
    Integer(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A list of strings.
    StringList(Vec<String>),
}

impl AttributeValue {
    /// The value's type.
    pub fn attribute_type(&self) -> AttributeType {
        match self {
            AttributeValue::String(_) => AttributeType::String,
            AttributeValue::Integer(_) => AttributeType::Integer,
            AttributeValue::Float(_) => AttributeType::Float,
            AttributeValue::Bool(_) => AttributeType::Bool,
            AttributeValue::StringList(_) => AttributeType::StringList,
        }
    }

    /// Converts a JSON value to an attribute of type `ty`, naming `name` in errors.
    /// Integers are accepted for float attributes.
    pub fn from_json(name: &str, ty: AttributeType, v: &serde_json::Value) -> Result<Self> {
        use serde_json::Value;
        let wrong = || {
            Error::invalid(format!(
                "attribute {name:?} is {}, got {}",
                ty.name(),
                json_kind(v)
            ))
        };
        let value = match (ty, v) {
            (AttributeType::String, Value::String(s)) => AttributeValue::String(s.clone()),
            (AttributeType::Integer, Value::Number(n)) => {
                AttributeValue::Integer(n.as_i64().ok_or_else(wrong)?)
            }
            (AttributeType::Float, Value::Number(n)) => {
                AttributeValue::Float(n.as_f64().ok_or_else(wrong)?)
            }
            (AttributeType::Bool, Value::Bool(b)) => AttributeValue::Bool(*b),
            (AttributeType::StringList, Value::Array(items)) => AttributeValue::StringList(
                items
                    .iter()
                    .map(|i| match i {
                        Value::String(s) => Ok(s.clone()),
                        other => Err(Error::invalid(format!(
                            "attribute {name:?} is string_list, got an element that is {}",
                            json_kind(other)
                        ))),
                    })
                    .collect::<Result<_>>()?,
            ),
            _ => return Err(wrong()),
        };
        value.check(name, ty)?;
        Ok(value)
    }

    /// Checks the value has type `ty` (an integer is accepted as a float and converted)
    /// and its limits, naming `name` in errors.
    pub fn check(&self, name: &str, ty: AttributeType) -> Result<()> {
        if self.attribute_type() != ty
            && !(ty == AttributeType::Float && matches!(self, AttributeValue::Integer(_)))
        {
            return Err(Error::invalid(format!(
                "attribute {name:?} is {}, got {}",
                ty.name(),
                self.attribute_type().name()
            )));
        }
        match self {
            AttributeValue::String(s) if s.len() > MAX_STRING_VALUE => {
                Err(Error::invalid(format!(
                    "attribute {name:?}: string of {} bytes is longer than {MAX_STRING_VALUE}",
                    s.len()
                )))
            }
            AttributeValue::Float(f) if !f.is_finite() => Err(Error::invalid(format!(
                "attribute {name:?}: float must be finite, got {f}"
            ))),
            AttributeValue::StringList(items) => {
                if let Some(s) = items.iter().find(|s| s.len() > MAX_STRING_VALUE) {
                    return Err(Error::invalid(format!(
                        "attribute {name:?}: list element of {} bytes is longer than {MAX_STRING_VALUE}",
                        s.len()
                    )));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Converts to `ty` after [`check`](Self::check): integers become floats.
    pub(crate) fn coerce(self, ty: AttributeType) -> Self {
        match (ty, self) {
            (AttributeType::Float, AttributeValue::Integer(i)) => AttributeValue::Float(i as f64),
            (_, v) => v,
        }
    }

    /// The value as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

pub(crate) fn json_kind(v: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a float",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The definition of a collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionSpec {
    /// The collection's name: 1 to 128 bytes of `[A-Za-z0-9_.-]`.
    pub name: String,
    /// The number of components of every vector.
    pub dimension: u32,
    /// How vectors are compared.
    pub metric: Metric,
    /// The attributes records may carry, by name.
    #[serde(default)]
    pub attributes: BTreeMap<String, AttributeType>,
}

impl CollectionSpec {
    /// A collection with no attributes.
    pub fn new(name: impl Into<String>, dimension: u32, metric: Metric) -> Self {
        Self {
            name: name.into(),
            dimension,
            metric,
            attributes: BTreeMap::new(),
        }
    }

    /// Adds an attribute.
    pub fn with_attribute(mut self, name: impl Into<String>, ty: AttributeType) -> Self {
        self.attributes.insert(name.into(), ty);
        self
    }

    /// Checks the definition.
    pub fn validate(&self) -> Result<()> {
        validate_collection_name(&self.name)?;
        if self.dimension == 0 || self.dimension > MAX_DIMENSION {
            return Err(Error::invalid(format!(
                "dimension must be between 1 and {MAX_DIMENSION}, got {}",
                self.dimension
            )));
        }
        for name in self.attributes.keys() {
            if name.is_empty() || name.len() > MAX_ATTRIBUTE_NAME {
                return Err(Error::invalid(format!(
                    "attribute name {name:?} must be 1 to {MAX_ATTRIBUTE_NAME} bytes"
                )));
            }
            if RESERVED_ATTRIBUTE_NAMES.contains(&name.as_str()) {
                return Err(Error::invalid(format!(
                    "attribute name {name:?} is reserved by the filter language"
                )));
            }
        }
        Ok(())
    }

    /// Checks one vector: dimension and finite components.
    pub fn check_vector(&self, id: &str, vector: &[f32]) -> Result<()> {
        if vector.len() != self.dimension as usize {
            return Err(Error::invalid(format!(
                "vector {id:?} has dimension {}, collection {:?} has dimension {}",
                vector.len(),
                self.name,
                self.dimension
            )));
        }
        if let Some(i) = vector.iter().position(|x| !x.is_finite()) {
            return Err(Error::invalid(format!(
                "vector {id:?} component {i} is {}; components must be finite",
                vector[i]
            )));
        }
        if self.metric == Metric::Cosine && vector.iter().all(|x| *x == 0.0) {
            return Err(Error::invalid(format!(
                "vector {id:?} is all zeros, which has no cosine similarity"
            )));
        }
        Ok(())
    }

    /// Checks records to upsert: ids, dimensions, finite components, attributes typed
    /// against the schema; for the cosine metric the vectors are normalized. The one
    /// validation of an upsert, whether it comes from the Rust API or a wire format.
    pub fn check_records(
        &self,
        mut records: Vec<VectorRecord>,
    ) -> Result<Checked<Vec<VectorRecord>>> {
        for (i, r) in records.iter_mut().enumerate() {
            validate_id(&r.id)
                .map_err(|e| Error::invalid(format!("vectors[{i}]: {}", strip(e))))?;
            self.check_vector(&r.id, &r.vector)?;
            r.attributes = self.check_attributes(&r.id, std::mem::take(&mut r.attributes))?;
            if self.metric == Metric::Cosine {
                crate::index::distance::normalize(&mut r.vector);
            }
        }
        Ok(Checked {
            value: records,
            spec: self.clone(),
        })
    }

    /// Checks attribute patches: ids, the attributes set (typed against the schema) and
    /// unset (known, and not also set). The one validation of a patch.
    pub fn check_patches(
        &self,
        mut patches: Vec<AttributePatch>,
    ) -> Result<Checked<Vec<AttributePatch>>> {
        for (i, p) in patches.iter_mut().enumerate() {
            validate_id(&p.id)
                .map_err(|e| Error::invalid(format!("patches[{i}]: {}", strip(e))))?;
            p.set = self.check_attributes(&p.id, std::mem::take(&mut p.set))?;
            if let Some(name) = p.unset.iter().find(|n| !self.attributes.contains_key(*n)) {
                return Err(Error::invalid(format!(
                    "vector {:?}: cannot unset unknown attribute {name:?}",
                    p.id
                )));
            }
            if let Some(name) = p.unset.iter().find(|n| p.set.contains_key(*n)) {
                return Err(Error::invalid(format!(
                    "vector {:?}: attribute {name:?} is both set and unset",
                    p.id
                )));
            }
        }
        Ok(Checked {
            value: patches,
            spec: self.clone(),
        })
    }

    /// Checks and types a record's attributes against the schema.
    pub fn check_attributes(
        &self,
        id: &str,
        attributes: BTreeMap<String, AttributeValue>,
    ) -> Result<BTreeMap<String, AttributeValue>> {
        attributes
            .into_iter()
            .map(|(name, value)| {
                let ty = *self.attributes.get(&name).ok_or_else(|| {
                    Error::invalid(format!(
                        "vector {id:?}: unknown attribute {name:?} (collection {:?} has {})",
                        self.name,
                        describe_names(self.attributes.keys())
                    ))
                })?;
                value
                    .check(&name, ty)
                    .map_err(|e| Error::invalid(format!("vector {id:?}: {}", strip(e))))?;
                Ok((name, value.coerce(ty)))
            })
            .collect()
    }

    /// Types JSON attributes against the schema.
    pub fn attributes_from_json(
        &self,
        id: &str,
        map: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<BTreeMap<String, AttributeValue>> {
        map.iter()
            .map(|(name, v)| {
                let ty = *self.attributes.get(name).ok_or_else(|| {
                    Error::invalid(format!(
                        "vector {id:?}: unknown attribute {name:?} (collection {:?} has {})",
                        self.name,
                        describe_names(self.attributes.keys())
                    ))
                })?;
                let value = AttributeValue::from_json(name, ty, v)
                    .map_err(|e| Error::invalid(format!("vector {id:?}: {}", strip(e))))?;
                Ok((name.clone(), value))
            })
            .collect()
    }
}

fn strip(e: Error) -> String {
    match e {
        Error::InvalidInput(m) => m,
        other => other.to_string(),
    }
}

fn describe_names<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<_> = names.map(|n| format!("{n:?}")).collect();
    if names.is_empty() {
        "no attributes".to_string()
    } else {
        names.join(", ")
    }
}

/// Checks a collection name.
pub fn validate_collection_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_COLLECTION_NAME {
        return Err(Error::invalid(format!(
            "collection name must be 1 to {MAX_COLLECTION_NAME} bytes, got {}",
            name.len()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(Error::invalid(format!(
            "collection name {name:?} contains {c:?}; use letters, digits, '_', '-' and '.'"
        )));
    }
    Ok(())
}

/// Checks a vector id.
pub fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid("vector id must not be empty"));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(Error::invalid(format!(
            "vector id of {} bytes is longer than the {MAX_ID_BYTES}-byte limit",
            id.len()
        )));
    }
    Ok(())
}

/// What a collection holds, as described by the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectionInfo {
    /// The definition.
    #[serde(flatten)]
    pub spec: CollectionSpec,
    /// Live vectors.
    pub vectors: u64,
    /// Posting lists (clusters); 0 while the collection is still a flat list.
    pub postings: u64,
    /// Posting-list entries, counting boundary replicas and entries not yet cleaned.
    pub posting_entries: u64,
    /// Bytes of the in-memory index (centroids, their routing table, live and
    /// posting bookkeeping); the posting lists themselves stay in storage.
    pub index_memory_bytes: u64,
}

/// A vector with its id and attributes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VectorRecord {
    /// The caller's id.
    pub id: String,
    /// The vector. For cosine collections, the stored (normalised) vector.
    pub vector: Vec<f32>,
    /// Attributes by name.
    pub attributes: BTreeMap<String, AttributeValue>,
}

impl VectorRecord {
    /// A record without attributes.
    pub fn new(id: impl Into<String>, vector: Vec<f32>) -> Self {
        Self {
            id: id.into(),
            vector,
            attributes: BTreeMap::new(),
        }
    }

    /// Adds an attribute.
    pub fn with_attribute(mut self, name: impl Into<String>, value: AttributeValue) -> Self {
        self.attributes.insert(name.into(), value);
        self
    }
}

/// A change to one record's attributes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AttributePatch {
    /// The record's id.
    pub id: String,
    /// Attributes to set (added or replaced).
    pub set: BTreeMap<String, AttributeValue>,
    /// Attributes to remove.
    pub unset: Vec<String>,
}

/// The outcome of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct WriteResult {
    /// Records written (upsert, patch) or removed (delete).
    pub count: u64,
    /// Of those, records that did not exist (upsert: inserted; patch/delete: ids not found).
    pub missing: u64,
}

/// Which fields a search or get returns besides id and score.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelection {
    /// Return the vector.
    pub vector: bool,
    /// Return these attributes; `None` returns all of them.
    pub attributes: Option<Vec<String>>,
}

impl FieldSelection {
    /// The attributes of `attrs` this selection asks for.
    pub fn select(
        &self,
        mut attrs: BTreeMap<String, AttributeValue>,
    ) -> BTreeMap<String, AttributeValue> {
        match &self.attributes {
            None => attrs,
            Some(names) => names.iter().filter_map(|n| attrs.remove_entry(n)).collect(),
        }
    }

    /// All attributes and the vector.
    pub fn all() -> Self {
        Self {
            vector: true,
            attributes: None,
        }
    }

    /// Only id and score.
    pub fn none() -> Self {
        Self {
            vector: false,
            attributes: Some(Vec::new()),
        }
    }

    /// Parses a field list: `*` (everything), `vector`, `attributes` (all of them) or
    /// attribute names. An empty list returns only ids and scores.
    pub fn parse(fields: &[String], spec: &CollectionSpec) -> Result<Self> {
        let mut sel = Self::none();
        for f in fields {
            match f.as_str() {
                "*" => return Ok(Self::all()),
                "vector" => sel.vector = true,
                "attributes" => sel.attributes = None,
                "id" | "score" => {}
                name if spec.attributes.contains_key(name) => {
                    if let Some(list) = sel.attributes.as_mut() {
                        list.push(name.to_string());
                    }
                }
                other => {
                    return Err(Error::invalid(format!(
                        "unknown field {other:?}; expected vector, attributes, * or an attribute name"
                    )));
                }
            }
        }
        Ok(sel)
    }

    /// Whether any attribute is asked for.
    pub fn wants_attributes(&self) -> bool {
        self.attributes.as_ref().is_none_or(|a| !a.is_empty())
    }
}

/// A nearest-neighbour query.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    /// The query vector.
    pub vector: Vec<f32>,
    /// How many neighbours to return.
    pub k: usize,
    /// How many posting lists to probe at most; `None` uses `recall_target` or the
    /// collection's default.
    pub nprobe: Option<usize>,
    /// A recall@k the search should reach; picks `nprobe` from the collection's
    /// calibration. Ignored when `nprobe` is given.
    pub recall_target: Option<f64>,
    /// Only records matching this filter.
    pub filter: Option<crate::filter::Filter>,
    /// Which fields to return.
    pub fields: FieldSelection,
}

impl SearchRequest {
    /// A query for the `k` nearest neighbours of `vector`, returning ids and scores.
    pub fn new(vector: Vec<f32>, k: usize) -> Self {
        Self {
            vector,
            k,
            nprobe: None,
            recall_target: None,
            filter: None,
            fields: FieldSelection::none(),
        }
    }

    /// Checks the request against the collection's definition: the one validation of a
    /// search, whether it comes from the Rust API or a wire format. `what` names the
    /// query in errors (`query`, `queries[3]`). For the cosine metric the checked query
    /// vector is normalized.
    pub fn check(mut self, spec: &CollectionSpec, what: &str) -> Result<CheckedSearch> {
        spec.check_vector(what, &self.vector)?;
        if self.k == 0 || self.k > MAX_K {
            return Err(Error::invalid(format!(
                "{what}: k must be between 1 and {MAX_K}, got {}",
                self.k
            )));
        }
        if self.nprobe == Some(0) {
            return Err(Error::invalid(format!(
                "{what}: nprobe must be at least 1, got 0"
            )));
        }
        if let Some(r) = self.recall_target
            && !(r > 0.0 && r <= 1.0)
        {
            return Err(Error::invalid(format!(
                "{what}: recall_target must be in (0, 1], got {r}"
            )));
        }
        if spec.metric == Metric::Cosine {
            crate::index::distance::normalize(&mut self.vector);
        }
        Ok(Checked {
            value: self,
            spec: spec.clone(),
        })
    }
}

/// A request checked against its collection's definition by the engine's one validation
/// ([`SearchRequest::check`], [`CollectionSpec::check_records`],
/// [`CollectionSpec::check_patches`]): what the engine runs. Reads as the request it holds.
/// The engine runs it only against a collection with the same definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked<T> {
    pub(crate) value: T,
    pub(crate) spec: CollectionSpec,
}

impl<T> Checked<T> {
    /// The definition the request was checked against.
    pub fn spec(&self) -> &CollectionSpec {
        &self.spec
    }

    /// The checked request.
    pub fn into_inner(self) -> T {
        self.value
    }

    /// Fails unless `spec` is the definition this was checked against (the collection
    /// could have been dropped and created again in between).
    pub(crate) fn for_spec(&self, spec: &CollectionSpec) -> Result<&T> {
        if self.spec != *spec {
            return Err(Error::invalid(format!(
                "collection {:?} changed after the request was checked; send it again",
                spec.name
            )));
        }
        Ok(&self.value)
    }
}

impl<T> std::ops::Deref for Checked<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

/// A search checked against its collection.
pub type CheckedSearch = Checked<SearchRequest>;

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    /// The record's id.
    pub id: String,
    /// The score in the metric's own terms: L2 distance, cosine similarity or dot product.
    pub score: f32,
    /// The vector, if asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
    /// The attributes asked for.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, AttributeValue>,
}

/// How a search was executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchPlan {
    /// The collection has no clusters yet: every record was scanned.
    Flat,
    /// Posting lists were probed (with the filter applied while scanning, if any).
    Probe,
    /// The filter's matching set was small enough to scan exactly.
    ExactFiltered,
}

/// What a search did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SearchStats {
    /// The plan chosen.
    pub plan: SearchPlan,
    /// Posting lists read.
    pub postings_probed: usize,
    /// Entries whose distance was computed.
    pub candidates_scored: usize,
    /// Records the filter matched (when filtered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_matches: Option<u64>,
}

/// A search's results, nearest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchResponse {
    /// The hits, nearest first.
    pub hits: Vec<SearchHit>,
    /// How the search ran.
    pub stats: SearchStats,
}
