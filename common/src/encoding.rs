//! Order-preserving encodings for keys.
//!
//! Every encoding here has the property that comparing the encoded bytes
//! lexicographically gives the same answer as comparing the values, so keys built
//! from them sort the way the values do in SlateDB. Decoders take a cursor
//! (`&mut &[u8]`), consume exactly what they decode, and return a [`DecodeError`]
//! on malformed input instead of panicking.
//!
//! | encoding | bytes | order |
//! |---|---|---|
//! | [`put_bytes`] | escaped, terminated byte string | byte-wise, shorter prefix first |
//! | [`put_i64`] | 8 bytes, sign bit flipped, big-endian | numeric |
//! | [`put_f64`] | 8 bytes, IEEE-754 total order | `f64::total_cmp` |
//! | [`put_varint`] | 1 to 9 bytes, length in the first byte | numeric |
//! | [`put_u16`]/[`put_u32`]/[`put_u64`] | fixed big-endian | numeric |

use crate::error::DecodeError;

/// Escape byte: `0x00` inside a byte string is written as `0x00 0xFF`.
const ESCAPE: u8 = 0x00;
const ESCAPED_ZERO: u8 = 0xFF;
/// Terminator: a byte string ends with `0x00 0x01`.
const TERMINATOR: u8 = 0x01;

/// Appends `value` as an escaped, terminated byte string.
///
/// ```text
/// every 0x00 in the value -> 0x00 0xFF
/// end of the value        -> 0x00 0x01
/// ```
///
/// The encoding of a string is a prefix of the encoding of every string it is a
/// prefix of, up to the terminator, so [`escape_prefix`] gives a scan prefix that
/// matches all strings that start with a given prefix.
pub fn put_bytes(buf: &mut Vec<u8>, value: &[u8]) {
    put_escaped(buf, value);
    buf.push(ESCAPE);
    buf.push(TERMINATOR);
}

/// Appends the escaped form of `value` without a terminator: the scan prefix of every
/// byte string that starts with `value`.
pub fn escape_prefix(buf: &mut Vec<u8>, value: &[u8]) {
    put_escaped(buf, value);
}

fn put_escaped(buf: &mut Vec<u8>, value: &[u8]) {
    buf.reserve(value.len() + 2);
    let mut rest = value;
    while let Some(pos) = rest.iter().position(|b| *b == ESCAPE) {
        buf.extend_from_slice(&rest[..pos]);
        buf.push(ESCAPE);
        buf.push(ESCAPED_ZERO);
        rest = &rest[pos + 1..];
    }
    buf.extend_from_slice(rest);
}

/// Decodes an escaped, terminated byte string written by [`put_bytes`].
pub fn get_bytes(cursor: &mut &[u8]) -> Result<Vec<u8>, DecodeError> {
    let input = *cursor;
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let Some(pos) = input[i..].iter().position(|b| *b == ESCAPE) else {
            return Err(DecodeError::new("byte string", "missing terminator"));
        };
        out.extend_from_slice(&input[i..i + pos]);
        let at = i + pos;
        match input.get(at + 1) {
            Some(&ESCAPED_ZERO) => {
                out.push(0);
                i = at + 2;
            }
            Some(&TERMINATOR) => {
                *cursor = &input[at + 2..];
                return Ok(out);
            }
            Some(other) => {
                return Err(DecodeError::new(
                    "byte string",
                    format!("invalid escape sequence 0x00 0x{other:02x}"),
                ));
            }
            None => return Err(DecodeError::truncated("byte string")),
        }
    }
}

/// Appends `value` as 8 bytes whose unsigned order is the signed order of `value`.
pub fn put_i64(buf: &mut Vec<u8>, value: i64) {
    buf.extend_from_slice(&((value as u64) ^ (1 << 63)).to_be_bytes());
}

/// Decodes an `i64` written by [`put_i64`].
pub fn get_i64(cursor: &mut &[u8]) -> Result<i64, DecodeError> {
    Ok((get_u64(cursor)? ^ (1 << 63)) as i64)
}

/// Appends `value` as 8 bytes ordered like [`f64::total_cmp`]: negative NaN, negative
/// infinity, negative numbers, -0.0, +0.0, positive numbers, infinity, NaN. Every bit
/// pattern, including NaN payloads, survives the round trip.
pub fn put_f64(buf: &mut Vec<u8>, value: f64) {
    let bits = value.to_bits();
    let key = if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    };
    buf.extend_from_slice(&key.to_be_bytes());
}

/// Decodes an `f64` written by [`put_f64`].
pub fn get_f64(cursor: &mut &[u8]) -> Result<f64, DecodeError> {
    let key = get_u64(cursor)?;
    let bits = if key >> 63 == 1 {
        key & !(1 << 63)
    } else {
        !key
    };
    Ok(f64::from_bits(bits))
}

/// Largest value a varint stores in its single first byte.
const VARINT_MAX_INLINE: u64 = 0xF7;

/// Appends `value` as an order-preserving variable-length integer.
///
/// ```text
/// 0x00..=0xF7          the value itself (0 to 247), one byte
/// 0xF8 + (n - 1), b1..bn  n = 1..=8 big-endian bytes, the fewest that hold the value
/// ```
///
/// A larger value never has fewer bytes, and the first byte grows with the length,
/// so byte order is numeric order. Decoding rejects non-minimal forms, so every value
/// has exactly one encoding.
pub fn put_varint(buf: &mut Vec<u8>, value: u64) {
    if value <= VARINT_MAX_INLINE {
        buf.push(value as u8);
        return;
    }
    let n = 8 - (value.leading_zeros() as usize / 8);
    buf.push(0xF8 + (n as u8 - 1));
    buf.extend_from_slice(&value.to_be_bytes()[8 - n..]);
}

/// Decodes a varint written by [`put_varint`].
pub fn get_varint(cursor: &mut &[u8]) -> Result<u64, DecodeError> {
    let (&first, rest) = cursor
        .split_first()
        .ok_or_else(|| DecodeError::truncated("varint"))?;
    if u64::from(first) <= VARINT_MAX_INLINE {
        *cursor = rest;
        return Ok(u64::from(first));
    }
    let n = usize::from(first - 0xF8) + 1;
    if rest.len() < n {
        return Err(DecodeError::truncated("varint"));
    }
    let mut be = [0u8; 8];
    be[8 - n..].copy_from_slice(&rest[..n]);
    let value = u64::from_be_bytes(be);
    let minimal = if n == 1 {
        value > VARINT_MAX_INLINE
    } else {
        rest[0] != 0
    };
    if !minimal {
        return Err(DecodeError::new("varint", "non-minimal encoding"));
    }
    *cursor = &rest[n..];
    Ok(value)
}

/// Appends `value` as LEB128: 7 bits a byte, least significant first, high bit set on
/// every byte but the last. Compact, not order-preserving: for values, not keys.
pub fn put_leb128(buf: &mut impl bytes::BufMut, mut value: u64) {
    while value >= 0x80 {
        buf.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

/// Decodes a LEB128 integer at `*pos`, advancing it. Truncated input, more than ten
/// bytes or a value over 64 bits is an error.
pub fn get_leb128(buf: &[u8], pos: &mut usize) -> Result<u64, DecodeError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let Some(&b) = buf.get(*pos) else {
            return Err(DecodeError::truncated("LEB128 integer"));
        };
        *pos += 1;
        let bits = u64::from(b & 0x7F);
        if shift == 63 && bits > 1 {
            return Err(DecodeError::new("LEB128 integer", "overflows 64 bits"));
        }
        value |= bits << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(DecodeError::new("LEB128 integer", "longer than 10 bytes"))
}

/// Appends a big-endian `u16`.
pub fn put_u16(buf: &mut Vec<u8>, value: u16) {
    buf.extend_from_slice(&value.to_be_bytes());
}

/// Appends a big-endian `u32`.
pub fn put_u32(buf: &mut Vec<u8>, value: u32) {
    buf.extend_from_slice(&value.to_be_bytes());
}

/// Appends a big-endian `u64`.
pub fn put_u64(buf: &mut Vec<u8>, value: u64) {
    buf.extend_from_slice(&value.to_be_bytes());
}

fn take<const N: usize>(cursor: &mut &[u8], what: &'static str) -> Result<[u8; N], DecodeError> {
    if cursor.len() < N {
        return Err(DecodeError::truncated(what));
    }
    let (head, rest) = cursor.split_at(N);
    *cursor = rest;
    let mut out = [0u8; N];
    out.copy_from_slice(head);
    Ok(out)
}

/// Decodes a single byte.
pub fn get_u8(cursor: &mut &[u8]) -> Result<u8, DecodeError> {
    Ok(take::<1>(cursor, "u8")?[0])
}

/// Decodes a big-endian `u16`.
pub fn get_u16(cursor: &mut &[u8]) -> Result<u16, DecodeError> {
    Ok(u16::from_be_bytes(take(cursor, "u16")?))
}

/// Decodes a big-endian `u32`.
pub fn get_u32(cursor: &mut &[u8]) -> Result<u32, DecodeError> {
    Ok(u32::from_be_bytes(take(cursor, "u32")?))
}

/// Decodes a big-endian `u64`.
pub fn get_u64(cursor: &mut &[u8]) -> Result<u64, DecodeError> {
    Ok(u64::from_be_bytes(take(cursor, "u64")?))
}

/// The smallest byte string greater than every string that starts with `prefix`, or
/// `None` when no such string exists (the prefix is empty or all `0xFF`). It is the
/// exclusive end of a prefix scan.
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc<T>(f: fn(&mut Vec<u8>, T), v: T) -> Vec<u8> {
        let mut buf = Vec::new();
        f(&mut buf, v);
        buf
    }

    proptest! {
        #[test]
        fn should_roundtrip_bytes(v in proptest::collection::vec(any::<u8>(), 0..64), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
            let mut buf = enc(put_bytes, v.as_slice());
            buf.extend_from_slice(&tail);
            let mut cur = buf.as_slice();
            prop_assert_eq!(get_bytes(&mut cur).unwrap(), v);
            prop_assert_eq!(cur, tail.as_slice());
        }

        #[test]
        fn should_preserve_order_of_bytes(a in proptest::collection::vec(0u8..4, 0..8), b in proptest::collection::vec(0u8..4, 0..8)) {
            // Small alphabet with many zeros to exercise escapes and prefixes.
            prop_assert_eq!(enc(put_bytes, a.as_slice()).cmp(&enc(put_bytes, b.as_slice())), a.cmp(&b));
        }

        #[test]
        fn should_match_escaped_prefix(a in proptest::collection::vec(0u8..3, 0..8), b in proptest::collection::vec(0u8..3, 0..8)) {
            let encoded = enc(put_bytes, a.as_slice());
            let prefix = enc(escape_prefix, b.as_slice());
            prop_assert_eq!(encoded.starts_with(&prefix), a.starts_with(&b));
        }

        #[test]
        fn should_roundtrip_and_order_i64(a in any::<i64>(), b in any::<i64>()) {
            let (ea, eb) = (enc(put_i64, a), enc(put_i64, b));
            prop_assert_eq!(get_i64(&mut ea.as_slice()).unwrap(), a);
            prop_assert_eq!(ea.cmp(&eb), a.cmp(&b));
        }

        #[test]
        fn should_roundtrip_and_order_f64(a in any::<u64>().prop_map(f64::from_bits), b in prop_oneof![any::<f64>(), any::<u64>().prop_map(f64::from_bits)]) {
            let (ea, eb) = (enc(put_f64, a), enc(put_f64, b));
            prop_assert_eq!(get_f64(&mut ea.as_slice()).unwrap().to_bits(), a.to_bits());
            prop_assert_eq!(ea.cmp(&eb), a.total_cmp(&b));
        }

        #[test]
        fn should_roundtrip_and_order_varint(a in prop_oneof![0u64..300, any::<u64>()], b in prop_oneof![0u64..300, any::<u64>()]) {
            let (ea, eb) = (enc(put_varint, a), enc(put_varint, b));
            prop_assert_eq!(get_varint(&mut ea.as_slice()).unwrap(), a);
            prop_assert_eq!(ea.cmp(&eb), a.cmp(&b));
        }

        #[test]
        fn should_roundtrip_and_order_fixed(a in any::<u64>(), b in any::<u64>()) {
            let (ea, eb) = (enc(put_u64, a), enc(put_u64, b));
            prop_assert_eq!(get_u64(&mut ea.as_slice()).unwrap(), a);
            prop_assert_eq!(ea.cmp(&eb), a.cmp(&b));
            let (a32, b32) = (a as u32, b as u32);
            let (ea, eb) = (enc(put_u32, a32), enc(put_u32, b32));
            prop_assert_eq!(get_u32(&mut ea.as_slice()).unwrap(), a32);
            prop_assert_eq!(ea.cmp(&eb), a32.cmp(&b32));
            let (a16, b16) = (a as u16, b as u16);
            let (ea, eb) = (enc(put_u16, a16), enc(put_u16, b16));
            prop_assert_eq!(get_u16(&mut ea.as_slice()).unwrap(), a16);
            prop_assert_eq!(ea.cmp(&eb), a16.cmp(&b16));
        }

        #[test]
        fn should_roundtrip_leb128(v in prop_oneof![0u64..300, any::<u64>()], tail in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut buf = Vec::new();
            put_leb128(&mut buf, v);
            let len = buf.len();
            buf.extend_from_slice(&tail);
            let mut pos = 0;
            prop_assert_eq!(get_leb128(&buf, &mut pos).unwrap(), v);
            prop_assert_eq!(pos, len);
        }

        #[test]
        fn should_never_panic_decoding_garbage(data in proptest::collection::vec(any::<u8>(), 0..32)) {
            let _ = get_bytes(&mut data.as_slice());
            let _ = get_varint(&mut data.as_slice());
            let _ = get_i64(&mut data.as_slice());
            let _ = get_f64(&mut data.as_slice());
            let _ = get_u32(&mut data.as_slice());
            let _ = get_leb128(&data, &mut 0);
        }

        #[test]
        fn should_bound_prefix_range(p in proptest::collection::vec(any::<u8>(), 1..6), k in proptest::collection::vec(any::<u8>(), 0..8)) {
            if let Some(end) = prefix_successor(&p) {
                prop_assert!(end.as_slice() > p.as_slice());
                let mut key = p.clone();
                key.extend_from_slice(&k);
                prop_assert!(key.as_slice() < end.as_slice());
            }
        }
    }

    #[test]
    fn should_reject_bad_escape_and_missing_terminator() {
        assert!(get_bytes(&mut &[0x61, 0x00, 0x05][..]).is_err());
        assert!(get_bytes(&mut &[0x61, 0x62][..]).is_err());
        assert!(get_bytes(&mut &[0x61, 0x00][..]).is_err());
    }

    #[test]
    fn should_reject_non_minimal_varint() {
        assert!(get_varint(&mut &[0xF8, 0x05][..]).is_err());
        assert!(get_varint(&mut &[0xF9, 0x00, 0xFF][..]).is_err());
        assert!(get_varint(&mut &[0xF9, 0x01][..]).is_err());
        assert_eq!(get_varint(&mut &[0xF8, 0xF8][..]).unwrap(), 0xF8);
    }

    #[test]
    fn should_have_no_successor_for_all_ff() {
        assert_eq!(prefix_successor(&[0xFF, 0xFF]), None);
        assert_eq!(prefix_successor(&[0x01, 0xFF]), Some(vec![0x02]));
    }
}
