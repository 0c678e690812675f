//! HTTP pieces every database's routes share: the JSON error envelope with its status
//! codes, content negotiation between JSON, protobuf and protobuf-JSON, and a body
//! extractor that turns size-limit and read failures into proper errors.

mod error;
mod negotiate;

pub use error::{ApiError, ApiResult};
pub use negotiate::{ApiMessage, Body, Format, Negotiated};
