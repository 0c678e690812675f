//! The one mapping from errors to HTTP responses, for every database and protocol.
//!
//! Every error response has the Prometheus-style envelope
//! `{"status":"error","errorType":"...","error":"..."}`; 429 and 503 carry
//! `Retry-After`. Each engine's error type converts into an [`ApiError`] here and only
//! here.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use opendata_common::Error;
use opendata_timeseries::promql::QueryError;
use serde::Serialize;

/// A `Result` whose error is an [`ApiError`].
pub type ApiResult<T> = std::result::Result<T, ApiError>;

/// An error answered over HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A short machine-readable class, e.g. `bad_data`.
    pub error_type: &'static str,
    /// What went wrong, for a person.
    pub message: String,
}

#[derive(Serialize)]
struct Envelope<'a> {
    status: &'static str,
    #[serde(rename = "errorType")]
    error_type: &'a str,
    error: &'a str,
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: StatusCode, error_type: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            error_type,
            message: message.into(),
        }
    }

    /// 400: the request is malformed or invalid.
    pub fn bad_data(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_data", message)
    }

    /// 404: no such resource.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409: the request conflicts with the current state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 413: the request body is too large.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }

    /// 415: the request's content type is not supported.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "bad_data", message)
    }

    /// 429: too many requests; retry later.
    pub fn too_many_requests(message: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "unavailable", message)
    }

    /// 503: the service cannot answer now; retry later.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 401: the request needs a valid token.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: the token does not allow this request.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 403: this instance is a read-only replica.
    pub fn read_only() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "read_only",
            "this server is a read-only replica; send writes to the writer",
        )
    }

    /// 500: an internal fault.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.error_type,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        match &err {
            Error::Backpressure(_) => Self::too_many_requests(err.to_string()),
            Error::Fenced | Error::Closed | Error::Unavailable(_) => {
                Self::unavailable(err.to_string())
            }
            Error::ReadOnly => Self::read_only(),
            Error::Storage(e) if matches!(e.kind(), slatedb::ErrorKind::Unavailable) => {
                Self::unavailable(err.to_string())
            }
            Error::ObjectStore(_) => Self::unavailable(err.to_string()),
            Error::Config(_) | Error::Decode(_) | Error::Storage(_) | Error::Internal(_) => {
                tracing::error!(error = %err, "internal error");
                Self::internal(err.to_string())
            }
        }
    }
}

impl From<opendata_log::Error> for ApiError {
    fn from(err: opendata_log::Error) -> Self {
        use opendata_log::Error as E;
        match err {
            E::InvalidInput(msg) => ApiError::bad_data(msg),
            E::Conflict { .. } | E::AlreadyExists(_) => ApiError::conflict(err.to_string()),
            E::NotFound(_) => ApiError::not_found(err.to_string()),
            E::ProducerFenced { .. } | E::OutOfOrderSequence { .. } => {
                ApiError::conflict(err.to_string())
            }
            E::Storage(e) => e.into(),
            E::Corrupt(_) | E::RetryCondition => ApiError::internal(err.to_string()),
        }
    }
}

impl From<opendata_timeseries::Error> for ApiError {
    fn from(err: opendata_timeseries::Error) -> Self {
        use opendata_timeseries::Error as E;
        match err {
            E::BadData(_) | E::OutOfBounds(_) => ApiError::bad_data(err.to_string()),
            E::Unsupported(_) => ApiError::unsupported_media_type(err.to_string()),
            E::TooLarge(_) => ApiError::too_large(err.to_string()),
            E::Config(_) => ApiError::internal(err.to_string()),
            E::Storage(e) => e.into(),
        }
    }
}

/// A PromQL error keeps the engine's Prometheus error type and status; a parse error
/// names the `query` parameter as Prometheus does.
impl From<QueryError> for ApiError {
    fn from(err: QueryError) -> Self {
        match err {
            QueryError::Storage(e) => ApiError::from(e),
            QueryError::Parse(e) => ApiError::bad_data(format!("invalid parameter \"query\": {e}")),
            other => ApiError::new(
                StatusCode::from_u16(other.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                other.error_type(),
                other.to_string(),
            ),
        }
    }
}

/// A spent memory budget: retry later.
impl From<opendata_common::budget::BudgetSpent> for ApiError {
    fn from(err: opendata_common::budget::BudgetSpent) -> Self {
        ApiError::unavailable(err.to_string())
    }
}

impl From<opendata_vector::Error> for ApiError {
    fn from(err: opendata_vector::Error) -> Self {
        use opendata_vector::Error as E;
        match err {
            E::InvalidInput(msg) => ApiError::bad_data(msg),
            E::CollectionNotFound(_) => ApiError::not_found(err.to_string()),
            E::CollectionExists(_) => ApiError::conflict(err.to_string()),
            E::ReadOnly => ApiError::read_only(),
            E::Storage(e) => e.into(),
            E::Corrupt(_) => ApiError::internal(err.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Envelope {
            status: "error",
            error_type: self.error_type,
            error: &self.message,
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS
            || self.status == StatusCode::SERVICE_UNAVAILABLE
        {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_map_vector_errors_to_statuses() {
        use opendata_vector::Error;
        for (err, status) in [
            (Error::invalid("bad"), StatusCode::BAD_REQUEST),
            (Error::CollectionNotFound("c".into()), StatusCode::NOT_FOUND),
            (Error::CollectionExists("c".into()), StatusCode::CONFLICT),
            (Error::ReadOnly, StatusCode::FORBIDDEN),
        ] {
            let api: ApiError = err.into();
            assert_eq!(api.status, status);
        }
        let api: ApiError = Error::invalid("vector \"a\" component 2 is NaN").into();
        assert_eq!(api.message, "vector \"a\" component 2 is NaN");
    }
}
