//! Query-string parameters with errors that name the parameter.

use bytes::Bytes;

use super::proto::decode_base64;
use crate::api::{ApiError, ApiResult};

/// Parsed `?a=b&c=d` parameters.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn parse(query: Option<&str>) -> ApiResult<Self> {
        let q = query.unwrap_or("");
        Ok(Params(
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }

    fn get(&self, name: &str) -> ApiResult<Option<&str>> {
        let mut found = self.0.iter().filter(|(k, _)| k == name);
        let first = found.next().map(|(_, v)| v.as_str());
        if found.next().is_some() {
            return Err(ApiError::bad_data(format!(
                "parameter '{name}' is given more than once"
            )));
        }
        Ok(first)
    }

    /// A binary value given as `name` (text) or `name_base64`.
    pub(crate) fn bytes(&self, name: &str) -> ApiResult<Option<Bytes>> {
        let b64_name = format!("{name}_base64");
        match (self.get(name)?, self.get(&b64_name)?) {
            (Some(_), Some(_)) => Err(ApiError::bad_data(format!(
                "give '{name}' or '{b64_name}', not both"
            ))),
            (Some(text), None) => Ok(Some(Bytes::copy_from_slice(text.as_bytes()))),
            (None, Some(b64)) => decode_base64(b64)
                .map(Some)
                .map_err(|e| ApiError::bad_data(format!("parameter '{b64_name}': {e}"))),
            (None, None) => Ok(None),
        }
    }

    /// A required, non-empty key.
    pub(crate) fn key(&self, name: &str) -> ApiResult<Bytes> {
        match self.bytes(name)? {
            Some(k) if !k.is_empty() => Ok(k),
            Some(_) => Err(ApiError::bad_data(format!(
                "parameter '{name}' must not be empty"
            ))),
            None => Err(ApiError::bad_data(format!(
                "missing parameter '{name}' (or '{name}_base64' for binary keys)"
            ))),
        }
    }

    /// The required key and the optional `start_seq` (default 0) and `end_seq`
    /// (exclusive), checked so the range is not reversed.
    pub(crate) fn key_and_range(&self) -> ApiResult<(Bytes, u64, Option<u64>)> {
        let key = self.key("key")?;
        let start = self.u64("start_seq")?.unwrap_or(0);
        let end = self.u64("end_seq")?;
        if end.is_some_and(|e| e < start) {
            return Err(ApiError::bad_data(
                "end_seq must not be less than start_seq",
            ));
        }
        Ok((key, start, end))
    }

    pub(crate) fn u64(&self, name: &str) -> ApiResult<Option<u64>> {
        match self.get(name)? {
            None => Ok(None),
            Some(v) => v.trim().parse::<u64>().map(Some).map_err(|_| {
                ApiError::bad_data(format!(
                    "parameter '{name}': '{v}' is not a non-negative integer"
                ))
            }),
        }
    }

    pub(crate) fn bool(&self, name: &str) -> ApiResult<Option<bool>> {
        match self.get(name)? {
            None => Ok(None),
            Some("true" | "1" | "") => Ok(Some(true)),
            Some("false" | "0") => Ok(Some(false)),
            Some(v) => Err(ApiError::bad_data(format!(
                "parameter '{name}': '{v}' is not true or false"
            ))),
        }
    }

    pub(crate) fn limit(&self, name: &str, default: usize, max: usize) -> ApiResult<usize> {
        match self.u64(name)? {
            None => Ok(default),
            Some(0) => Err(ApiError::bad_data(format!(
                "parameter '{name}' must be at least 1"
            ))),
            Some(n) if n as usize > max => Err(ApiError::bad_data(format!(
                "parameter '{name}' is {n}; the maximum is {max}"
            ))),
            Some(n) => Ok(n as usize),
        }
    }

    pub(crate) fn reject_unknown(&self, known: &[&str]) -> ApiResult<()> {
        for (k, _) in &self.0 {
            if !known.contains(&k.as_str()) {
                return Err(ApiError::bad_data(format!(
                    "unknown parameter '{k}'; expected one of: {}",
                    known.join(", ")
                )));
            }
        }
        Ok(())
    }
}
