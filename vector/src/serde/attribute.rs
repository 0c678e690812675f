//! Attribute values: their order-preserving form in bitmap-index keys, and their
//! tagged form inside vector records.
//!
//! ```text
//! index key: [0x03][0x01][0x80][collection id u32 BE][0x15] name (escaped bytes) tag value
//!   tag 1 string   value: escaped bytes (0x00 → 0x00 0xFF, terminated by 0x00 0x00)
//!   tag 2 integer  value: i64, sign bit flipped, u64 BE
//!   tag 3 float    value: f64 sortable (sign-flipped IEEE bits, u64 BE)
//!   tag 4 bool     value: u8 0 or 1
//!   (string_list elements are indexed as strings, one key per distinct element)
//! index value: roaring delta of internal ids (merge: adds then removes)
//!
//! exists key: [0x03][0x01][0x80][collection id u32 BE][0x16] name (escaped bytes)
//!
//! in a vector record:
//!   ┌──────┬────────────────────────────────────────────────────────────────┐
//!   │ tag  │ 1 string: len u32 LE, bytes   2 integer: i64 LE   3 float: f64 LE│
//!   │ u8   │ 4 bool: u8   5 string_list: count u32 LE, (len u32 LE, bytes)×n │
//!   └──────┴────────────────────────────────────────────────────────────────┘
//! ```

use bytes::Bytes;
use opendata_common::DecodeError;
use opendata_common::encoding::prefix_successor;

use super::{ATTRIBUTE_VALUE, Cursor, PREFIX};
use crate::model::AttributeValue;

/// The values an attribute value is indexed under (one per list element).
pub fn index_values(value: &AttributeValue) -> Vec<AttributeValue> {
    match value {
        AttributeValue::StringList(items) => {
            let mut items = items.clone();
            items.sort();
            items.dedup();
            items.into_iter().map(AttributeValue::String).collect()
        }
        other => vec![other.clone()],
    }
}

/// The key prefix of every index key of attribute `name`.
pub fn name_prefix(collection: u32, name: &str) -> Vec<u8> {
    PREFIX
        .segmented(collection, ATTRIBUTE_VALUE)
        .bytes(name.as_bytes())
        .into_vec()
}

/// Appends the tag and order-preserving form of a scalar value.
pub fn put_scalar(out: &mut Vec<u8>, value: &AttributeValue) {
    use opendata_common::encoding::{put_bytes, put_f64, put_i64};
    match value {
        AttributeValue::String(s) => {
            out.push(1);
            put_bytes(out, s.as_bytes());
        }
        AttributeValue::Integer(i) => {
            out.push(2);
            put_i64(out, *i);
        }
        AttributeValue::Float(f) => {
            out.push(3);
            put_f64(out, *f);
        }
        AttributeValue::Bool(b) => {
            out.push(4);
            out.push(u8::from(*b));
        }
        AttributeValue::StringList(_) => unreachable!("lists are indexed by element"),
    }
}

/// The index key of one scalar value of attribute `name`.
pub fn value_key(collection: u32, name: &str, value: &AttributeValue) -> Bytes {
    let mut key = name_prefix(collection, name);
    put_scalar(&mut key, value);
    Bytes::from(key)
}

/// The first key after every key that starts with `key`.
pub fn after_prefix(key: &[u8]) -> Bytes {
    Bytes::from(prefix_successor(key).unwrap_or_else(|| vec![0xFF; key.len() + 1]))
}

/// Appends a value in its vector-record form.
pub fn put_value(out: &mut Vec<u8>, value: &AttributeValue) {
    match value {
        AttributeValue::String(s) => {
            out.push(1);
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        AttributeValue::Integer(i) => {
            out.push(2);
            out.extend_from_slice(&i.to_le_bytes());
        }
        AttributeValue::Float(f) => {
            out.push(3);
            out.extend_from_slice(&f.to_le_bytes());
        }
        AttributeValue::Bool(b) => {
            out.push(4);
            out.push(u8::from(*b));
        }
        AttributeValue::StringList(items) => {
            out.push(5);
            out.extend_from_slice(&(items.len() as u32).to_le_bytes());
            for s in items {
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
}

pub(crate) fn get_value(c: &mut Cursor<'_>) -> Result<AttributeValue, DecodeError> {
    Ok(match c.u8()? {
        1 => {
            let n = c.u32()? as usize;
            AttributeValue::String(c.string(n)?)
        }
        2 => AttributeValue::Integer(i64::from_le_bytes(c.take(8)?.try_into().expect("8"))),
        3 => AttributeValue::Float(f64::from_le_bytes(c.take(8)?.try_into().expect("8"))),
        4 => match c.u8()? {
            0 => AttributeValue::Bool(false),
            1 => AttributeValue::Bool(true),
            _ => return Err(c.err("bool is not 0 or 1")),
        },
        5 => {
            let n = c.u32()? as usize;
            if n > c.buf.len() / 4 {
                return Err(c.err("list longer than the record"));
            }
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                let len = c.u32()? as usize;
                items.push(c.string(len)?);
            }
            AttributeValue::StringList(items)
        }
        t => return Err(c.err(&format!("unknown attribute tag {t}"))),
    })
}
