//! Content negotiation: one place that decides how request bodies are read and
//! responses written.
//!
//! | content type | meaning |
//! |---|---|
//! | `application/json` (or none) | the database's plain JSON form |
//! | `application/protobuf`, `application/x-protobuf` | binary protobuf |
//! | `application/protobuf+json` | the protobuf message in proto3's JSON mapping (bytes as base64, camelCase names) |
//!
//! Requests are decoded by their `Content-Type`. Responses use the `Accept` header when
//! it names one of these types, otherwise the request's own content type, otherwise JSON.
//!
//! Two answer styles share it: the log API answers with the bare message
//! ([`Format::respond`]), the vector API wraps JSON answers in
//! `{"status":"success","data":...}` ([`Format::respond_enveloped`]); errors have one
//! shape everywhere ([`super::ApiError`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use serde_json::{Value, json};

use super::error::ApiError;
use crate::server::pool::WorkPool;

/// Bodies of at least this many bytes are decoded on the route's work pool rather than
/// on the I/O runtime.
pub const POOLED_DECODE_BYTES: usize = 64 * 1024;

/// The work pool a route's large bodies are decoded on (none: decoded in place). A
/// route's state provides it with `FromRef`.
#[derive(Debug, Clone, Default)]
pub struct DecodePool(pub Option<Arc<WorkPool>>);

impl FromRef<()> for DecodePool {
    fn from_ref(_: &()) -> Self {
        DecodePool(None)
    }
}

/// A wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `application/json`.
    #[default]
    Json,
    /// `application/protobuf`.
    Protobuf,
    /// `application/protobuf+json`.
    ProtobufJson,
}

impl Format {
    /// The format a media type names, `None` for anything else.
    pub fn from_media_type(value: &str) -> Option<Format> {
        let essence = value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/json" | "text/json" => Some(Format::Json),
            "application/protobuf"
            | "application/x-protobuf"
            | "application/vnd.google.protobuf" => Some(Format::Protobuf),
            "application/protobuf+json" | "application/x-protobuf+json" => {
                Some(Format::ProtobufJson)
            }
            _ => None,
        }
    }

    /// The media type to send in `Content-Type`.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Protobuf => "application/protobuf",
            Format::ProtobufJson => "application/protobuf+json",
        }
    }

    /// The format of a request body, from its `Content-Type`. A missing or
    /// form/plain-text content type is read as JSON (so `curl -d` works); anything else
    /// unknown is an error.
    pub fn of_request(headers: &HeaderMap) -> Result<Format, ApiError> {
        let Some(value) = headers.get(CONTENT_TYPE) else {
            return Ok(Format::Json);
        };
        let value = value
            .to_str()
            .map_err(|_| ApiError::bad_data("Content-Type header is not valid text"))?;
        if let Some(format) = Format::from_media_type(value) {
            return Ok(format);
        }
        let essence = value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence.is_empty()
            || essence == "application/x-www-form-urlencoded"
            || essence == "text/plain"
        {
            return Ok(Format::Json);
        }
        Err(ApiError::unsupported_media_type(format!(
            "unsupported Content-Type '{value}': use application/json, application/protobuf or application/protobuf+json"
        )))
    }

    /// The format to answer in: the first supported type in `Accept`, else `fallback`.
    pub fn of_response(headers: &HeaderMap, fallback: Format) -> Format {
        headers
            .get_all(ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find_map(Format::from_media_type)
            .unwrap_or(fallback)
    }

    /// Encodes `value` in this format as a 200 response: the bare message.
    pub fn respond<T: Encode>(self, value: &T) -> Response {
        self.respond_with_status(StatusCode::OK, value)
    }

    /// Encodes `value` in this format with the given status.
    pub fn respond_with_status<T: Encode>(self, status: StatusCode, value: &T) -> Response {
        let body = match self {
            Format::Json => value.to_json(),
            Format::Protobuf => value.to_protobuf(),
            Format::ProtobufJson => value.to_protobuf_json(),
        };
        (
            status,
            [(CONTENT_TYPE, HeaderValue::from_static(self.media_type()))],
            body,
        )
            .into_response()
    }
}

impl Format {
    /// An answer in the enveloped style: for JSON (and protobuf-JSON),
    /// `{"status":"success","data":<json()>}`; for protobuf, the message `proto()`
    /// builds. Only the one asked for is built.
    pub fn respond_enveloped<M: prost::Message>(
        self,
        status: StatusCode,
        json: impl FnOnce() -> Value,
        proto: impl FnOnce() -> M,
    ) -> Response {
        let (media, body) = match self {
            Format::Protobuf => (self.media_type(), proto().encode_to_vec()),
            Format::Json | Format::ProtobufJson => (
                Format::Json.media_type(),
                serde_json::to_vec(&json!({"status": "success", "data": json()}))
                    .unwrap_or_default(),
            ),
        };
        (
            status,
            [(CONTENT_TYPE, HeaderValue::from_static(media))],
            body,
        )
            .into_response()
    }
}

/// The response format chosen for this request (from `Accept`, then `Content-Type`).
impl<S: Send + Sync> FromRequestParts<S> for Format {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let fallback = Format::of_request(&parts.headers).unwrap_or_default();
        Ok(Format::of_response(&parts.headers, fallback))
    }
}

/// A request body that can be read in every supported format.
pub trait Decode: Sized {
    /// Decodes plain JSON.
    fn from_json(bytes: &[u8]) -> Result<Self, String>;
    /// Decodes binary protobuf. Taking `Bytes` lets `bytes` fields share the body's
    /// memory instead of copying it.
    fn from_protobuf(bytes: Bytes) -> Result<Self, String>;
    /// Decodes the proto3 JSON mapping; by default the same as plain JSON.
    fn from_protobuf_json(bytes: &[u8]) -> Result<Self, String> {
        Self::from_json(bytes)
    }
}

/// An answer that can be written in every supported format.
pub trait Encode {
    /// Encodes plain JSON.
    fn to_json(&self) -> Vec<u8>;
    /// Encodes binary protobuf.
    fn to_protobuf(&self) -> Vec<u8>;
    /// Encodes the proto3 JSON mapping; by default the same as plain JSON.
    fn to_protobuf_json(&self) -> Vec<u8> {
        self.to_json()
    }
}

/// Decodes a body in `format`, with the message the API answers a bad body with.
pub fn decode<T: Decode>(format: Format, bytes: Bytes) -> Result<T, String> {
    match format {
        Format::Json => T::from_json(&bytes),
        Format::Protobuf => T::from_protobuf(bytes),
        Format::ProtobufJson => T::from_protobuf_json(&bytes),
    }
    .map_err(|e| {
        let hint = if e.contains("number out of range") {
            " (numbers must be finite and fit a 64-bit float)"
        } else {
            ""
        };
        format!("invalid {} body: {e}{hint}", format.media_type())
    })
}

/// The raw request body. Reading failures become [`ApiError`]s: a body over the
/// server's limit is a 413 with a JSON envelope.
#[derive(Debug, Clone)]
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(Body(bytes)),
            Err(rejection) => {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Err(ApiError::too_large(
                        "request body is larger than the server's limit (max_body_bytes)",
                    ))
                } else {
                    Err(ApiError::bad_data(format!(
                        "cannot read request body: {}",
                        rejection.body_text()
                    )))
                }
            }
        }
    }
}

/// A request body decoded by its `Content-Type`, with the format the response should use.
#[derive(Debug, Clone)]
pub struct Negotiated<T> {
    /// The decoded message.
    pub value: T,
    /// The response format (from `Accept`, else the request's format).
    pub response: Format,
}

/// Decodes on the state's [`DecodePool`] when the body has at least
/// [`POOLED_DECODE_BYTES`], so that a large body does not hold an I/O worker (and is
/// admitted, or refused with 503, like the pool's other work).
impl<S, T> FromRequest<S> for Negotiated<T>
where
    S: Send + Sync,
    T: Decode + Send + 'static,
    DecodePool: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let request_format = Format::of_request(req.headers())?;
        let response = Format::of_response(req.headers(), request_format);
        let Body(bytes) = Body::from_request(req, state).await?;
        let value = match DecodePool::from_ref(state).0 {
            Some(pool) if bytes.len() >= POOLED_DECODE_BYTES => {
                pool.run(async move { decode(request_format, bytes) })
                    .await?
            }
            _ => decode(request_format, bytes),
        }
        .map_err(ApiError::bad_data)?;
        Ok(Negotiated { value, response })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn should_pick_request_format_from_content_type() {
        assert_eq!(Format::of_request(&headers(&[])).unwrap(), Format::Json);
        assert_eq!(
            Format::of_request(&headers(&[(
                "content-type",
                "application/protobuf+json; charset=utf-8"
            )]))
            .unwrap(),
            Format::ProtobufJson
        );
        assert_eq!(
            Format::of_request(&headers(&[("content-type", "application/x-protobuf")])).unwrap(),
            Format::Protobuf
        );
        let err = Format::of_request(&headers(&[("content-type", "image/png")])).unwrap_err();
        assert_eq!(err.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn should_prefer_accept_then_request_format() {
        let h = headers(&[("accept", "text/html, application/protobuf")]);
        assert_eq!(Format::of_response(&h, Format::Json), Format::Protobuf);
        let h = headers(&[("accept", "*/*")]);
        assert_eq!(
            Format::of_response(&h, Format::ProtobufJson),
            Format::ProtobufJson
        );
    }

    /// A body of `n` bytes that decodes to its length, recording the thread it ran on.
    struct Sized_(usize, String);

    impl Decode for Sized_ {
        fn from_json(bytes: &[u8]) -> Result<Self, String> {
            let thread = std::thread::current().name().unwrap_or("").to_string();
            Ok(Sized_(bytes.len(), thread))
        }
        fn from_protobuf(bytes: Bytes) -> Result<Self, String> {
            Self::from_json(&bytes)
        }
    }

    #[tokio::test]
    async fn should_decode_large_bodies_on_the_pool() {
        use axum::Router;
        use axum::routing::post;
        use tower::ServiceExt;

        #[derive(Clone)]
        struct State(Arc<WorkPool>);
        impl FromRef<State> for DecodePool {
            fn from_ref(s: &State) -> Self {
                DecodePool(Some(s.0.clone()))
            }
        }
        let pool = Arc::new(WorkPool::new("decode", Default::default()).unwrap());
        let app = Router::new()
            .route(
                "/",
                post(|b: Negotiated<Sized_>| async move { format!("{} {}", b.value.0, b.value.1) }),
            )
            .with_state(State(pool.clone()));
        for (n, pooled) in [(10, false), (POOLED_DECODE_BYTES, true)] {
            let req = axum::http::Request::post("/")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(vec![b' '; n]))
                .unwrap();
            let res = app.clone().oneshot(req).await.unwrap();
            let body = axum::body::to_bytes(res.into_body(), 1 << 20)
                .await
                .unwrap();
            let text = String::from_utf8(body.to_vec()).unwrap();
            assert!(text.starts_with(&format!("{n} ")), "{text}");
            assert_eq!(text.contains("decode-pool"), pooled, "{n} bytes: {text}");
        }
        let mut out = String::new();
        WorkPool::render(&[&pool], &mut out);
        assert!(
            out.contains("opendata_pool_admitted_total{pool=\"decode\"} 1"),
            "{out}"
        );
    }
}
