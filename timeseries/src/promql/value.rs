//! Query result values.
//!
//! Float points are kept apart from (future) native-histogram points, as Prometheus
//! does: a series carries a list of float points and, when native histograms arrive, a
//! list of histogram points beside it.

use crate::model::Labels;

/// One point of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    /// The series' labels.
    pub labels: Labels,
    /// Evaluation timestamp in milliseconds.
    pub t: i64,
    /// The value.
    pub f: f64,
}

/// A series of a range vector or of a range query's result.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    /// The series' labels.
    pub labels: Labels,
    /// `(timestamp ms, value)` in increasing time order.
    pub floats: Vec<(i64, f64)>,
}

/// A query's value, by Prometheus's result types.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar at a timestamp.
    Scalar {
        /// Timestamp in milliseconds.
        t: i64,
        /// The value.
        f: f64,
    },
    /// A string at a timestamp.
    String {
        /// Timestamp in milliseconds.
        t: i64,
        /// The string.
        s: String,
    },
    /// An instant vector.
    Vector(Vec<InstantSample>),
    /// A range vector, or a range query's result.
    Matrix(Vec<RangeSeries>),
}

impl Value {
    /// Prometheus's `resultType`.
    pub fn result_type(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}
