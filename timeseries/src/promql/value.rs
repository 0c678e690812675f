//! Query result values.
//!
//! Float points are kept apart from native-histogram points, as Prometheus does: a
//! series carries a list of float points and a list of histogram points beside it.

use std::sync::Arc;

use crate::model::{FloatHistogram, Labels};

/// One point of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    /// The series' labels.
    pub labels: Labels,
    /// Evaluation timestamp in milliseconds.
    pub t: i64,
    /// The value (when `h` is `None`).
    pub f: f64,
    /// The native histogram, when the point is one.
    pub h: Option<Arc<FloatHistogram>>,
}

/// A series of a range vector or of a range query's result.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    /// The series' labels.
    pub labels: Labels,
    /// `(timestamp ms, value)` in increasing time order.
    pub floats: Vec<(i64, f64)>,
    /// `(timestamp ms, histogram)` in increasing time order.
    pub histograms: Vec<(i64, Arc<FloatHistogram>)>,
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
