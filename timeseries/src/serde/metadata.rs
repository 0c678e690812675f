//! Metric metadata: one record per metric family, overwritten when it changes.
//!
//! ```text
//! key:   ┌──────┬──────┬──────┬───────────────────────────────┐
//!        │ 0x02 │ 0x01 │ 0x03 │ metric family name (escaped)  │
//!        └──────┴──────┴──────┴───────────────────────────────┘
//! value: ┌─────────┬──────────┬──────────────────────┬──────────────────────┐
//!        │ 0x01 v. │ type u8  │ help len LEB128, help │ unit len LEB128, unit │
//!        └─────────┴──────────┴──────────────────────┴──────────────────────┘
//! ```
//!
//! The type byte uses the remote-write numbering (0 unknown, 1 counter, 2 gauge,
//! 3 histogram, 4 gauge histogram, 5 summary, 6 info, 7 state set).

use bytes::Bytes;
use opendata_common::DecodeError;

use super::{METADATA, PREFIX, get_str, put_str};
use crate::model::{MetricMetadata, MetricType};

const VERSION: u8 = 1;

/// Key of the metadata of `metric`.
pub fn key(metric: &str) -> Bytes {
    PREFIX.record(METADATA).bytes(metric.as_bytes()).build()
}

/// Prefix of every metadata key.
pub fn prefix() -> Bytes {
    PREFIX.record(METADATA).build()
}

/// Decodes the metric name from a metadata key.
pub fn decode_key(key: &[u8]) -> Result<String, DecodeError> {
    let mut parsed = PREFIX.parse(key)?.expect_record_type(METADATA)?;
    let name = parsed.read_bytes()?;
    parsed.finish()?;
    String::from_utf8(name).map_err(|_| DecodeError::new("metadata key", "name is not UTF-8"))
}

fn type_byte(t: MetricType) -> u8 {
    match t {
        MetricType::Unknown => 0,
        MetricType::Counter => 1,
        MetricType::Gauge => 2,
        MetricType::Histogram => 3,
        MetricType::GaugeHistogram => 4,
        MetricType::Summary => 5,
        MetricType::Info => 6,
        MetricType::StateSet => 7,
    }
}

/// Encodes the value of `meta` (its name is in the key).
pub fn encode(meta: &MetricMetadata) -> Bytes {
    let mut out = Vec::with_capacity(4 + meta.help.len() + meta.unit.len());
    out.push(VERSION);
    out.push(type_byte(meta.metric_type));
    put_str(&mut out, meta.help.as_bytes());
    put_str(&mut out, meta.unit.as_bytes());
    Bytes::from(out)
}

/// Decodes a metadata value for metric `metric`.
pub fn decode(metric: String, value: &[u8]) -> Result<MetricMetadata, DecodeError> {
    if value.len() < 2 || value[0] != VERSION {
        return Err(DecodeError::new("metadata", "unknown version"));
    }
    if value[1] > 7 {
        return Err(DecodeError::new("metadata", "unknown metric type"));
    }
    let metric_type = MetricType::from_wire(value[1] as i32);
    let mut pos = 2;
    let help = get_str(value, &mut pos, "metadata")?;
    let unit = get_str(value, &mut pos, "metadata")?;
    if pos != value.len() {
        return Err(DecodeError::new("metadata", "trailing bytes"));
    }
    Ok(MetricMetadata {
        metric,
        metric_type,
        help,
        unit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn should_round_trip_metadata(name in "[a-z_:]{1,20}", t in 0i32..8, help in ".{0,40}", unit in ".{0,8}") {
            let meta = MetricMetadata { metric: name.clone(), metric_type: MetricType::from_wire(t), help, unit };
            prop_assert_eq!(decode_key(&key(&name)).unwrap(), name.clone());
            prop_assert_eq!(decode(name, &encode(&meta)).unwrap(), meta);
        }

        #[test]
        fn should_not_panic_on_arbitrary_metadata(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = decode("m".into(), &bytes);
        }
    }
}
