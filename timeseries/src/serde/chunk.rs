//! Sample chunks: a run of one series' samples in a few bits each.
//!
//! Stored chunks are keyed by bucket, series and the write sequence of the flush that
//! wrote them:
//!
//! ```text
//! key:   ┌──────┬──────┬──────┬───────────────┬──────┬──────────────────┬─────────────────────┐
//!        │ 0x02 │ 0x01 │ 0x80 │ bucket u32 BE │ 0x20 │ series id u32 BE │ flush seq u64 BE    │
//!        └──────┴──────┴──────┴───────────────┴──────┴──────────────────┴─────────────────────┘
//! value: the chunk below, timestamps strictly increasing
//! ```
//!
//! A series' chunks in a bucket are adjacent (one seek reads them), and when two of them
//! hold the same timestamp the one with the higher flush sequence was written later and
//! wins. The value is:
//!
//! ```text
//! ┌──────────────────────────┬──────────────┬──────────────────────────────────────────┐
//! │ version (hi 4) mode (lo 4)│ count LEB128 │ bit stream: timestamps, then values       │
//! └──────────────────────────┴──────────────┴──────────────────────────────────────────┘
//! ```
//!
//! **Timestamps**: the first as 64 raw bits; the first delta and then each
//! delta-of-delta in a signed bucket (below). A 15 s scrape with a few milliseconds of
//! jitter costs 1 to 6 bits per timestamp.
//!
//! **Values**, by mode, whichever encodes smaller:
//! - `0` XOR: the first value's 64 bits, then each value XOR the previous: `0` when equal;
//!   `10` + the meaningful bits when they fit the previous leading/trailing-zero window;
//!   `11` + 6 bits of leading zeros + 6 bits of (length − 1) + the meaningful bits. Any
//!   float round-trips bit-exact, NaN payloads (the stale marker) included.
//! - `1` decimal: when every value is exactly an integer divided by `10^k` (`k ≤ 9`, the
//!   integer below 2^53, e.g. 12.5 or 0.001 or 42): 4 bits of `k`, the first integer as 64
//!   raw bits, then the first delta and each delta-of-delta in signed buckets. A gauge
//!   that holds still costs 1 bit per sample; a counter rising by similar amounts a few.
//!
//! **Signed buckets** (zigzag-encoded value `z`): `0` for 0; `10`+4 bits (z < 16);
//! `110`+8 (z < 256); `1110`+16; `11110`+32; `11111`+64.

use opendata_common::DecodeError;
use opendata_common::encoding::{get_leb128, put_leb128};

use bytes::Bytes;

use super::bits::{BitReader, BitWriter};
use super::{CHUNK, Fnv64, PREFIX, TIMESTAMPS};
use crate::model::Sample;

/// Key of the chunk of series `id` in `bucket` written by flush `seq`.
pub fn key(bucket: u32, id: u32, seq: u64) -> Bytes {
    PREFIX.segmented(bucket, CHUNK).u32(id).u64(seq).build()
}

/// Scan prefix of the chunks of series `id` in `bucket`.
pub fn series_prefix(bucket: u32, id: u32) -> Bytes {
    PREFIX.segmented(bucket, CHUNK).u32(id).build()
}

/// Decodes (series id, flush sequence) from a chunk key: a float chunk's, or a
/// histogram chunk's (`histogram_chunk.rs`: the same key with one more byte).
pub fn decode_key(key: &[u8]) -> Result<(u32, u64), DecodeError> {
    let mut parsed = PREFIX.parse(key)?.expect_record_type(CHUNK)?;
    let id = parsed.read_u32()?;
    let seq = parsed.read_u64()?;
    if parsed.remaining() == [super::histogram_chunk::KEY_SUFFIX] {
        parsed.read_u8()?;
    }
    parsed.finish()?;
    Ok((id, seq))
}

const VERSION: u8 = 1;
const MODE_XOR: u8 = 0;
const MODE_DECIMAL: u8 = 1;
/// Header flag: the chunk holds values only; its timestamps are in a timestamp column.
const SHARED_TIMESTAMPS: u8 = 0x08;
const MAX_SCALE: usize = 9;
const POW10: [f64; MAX_SCALE + 1] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
/// Integers of the decimal mode stay below 2^53 so `i as f64` is exact.
const MAX_DECIMAL_INT: f64 = 9_007_199_254_740_992.0;

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

pub(crate) fn put_signed(w: &mut BitWriter, v: i64) {
    let z = zigzag(v);
    if z == 0 {
        w.bit(false);
    } else if z < 1 << 4 {
        w.write(0b10, 2);
        w.write(z, 4);
    } else if z < 1 << 8 {
        w.write(0b110, 3);
        w.write(z, 8);
    } else if z < 1 << 16 {
        w.write(0b1110, 4);
        w.write(z, 16);
    } else if z < 1 << 32 {
        w.write(0b11110, 5);
        w.write(z, 32);
    } else {
        w.write(0b11111, 5);
        w.write(z, 64);
    }
}

pub(crate) fn get_signed(r: &mut BitReader<'_>) -> Result<i64, DecodeError> {
    let mut ones = 0;
    while ones < 5 && r.bit()? {
        ones += 1;
    }
    let z = match ones {
        0 => 0,
        1 => r.read(4)?,
        2 => r.read(8)?,
        3 => r.read(16)?,
        4 => r.read(32)?,
        _ => r.read(64)?,
    };
    Ok(unzigzag(z))
}

/// Writes `first`, then the first delta and the delta-of-deltas of `values`.
pub(crate) fn put_series(w: &mut BitWriter, values: impl Iterator<Item = i64>) {
    let mut prev = None;
    let mut prev_delta = 0i64;
    for (i, v) in values.enumerate() {
        match prev {
            None => w.write(v as u64, 64),
            Some(p) => {
                let delta = v.wrapping_sub(p);
                if i == 1 {
                    put_signed(w, delta);
                } else {
                    put_signed(w, delta.wrapping_sub(prev_delta));
                }
                prev_delta = delta;
            }
        }
        prev = Some(v);
    }
}

pub(crate) fn get_series(r: &mut BitReader<'_>, count: usize) -> Result<Vec<i64>, DecodeError> {
    let mut out: Vec<i64> = Vec::with_capacity(count);
    let mut prev_delta = 0i64;
    for i in 0..count {
        let v = match i {
            0 => r.read(64)? as i64,
            1 => {
                prev_delta = get_signed(r)?;
                out[0].wrapping_add(prev_delta)
            }
            _ => {
                prev_delta = prev_delta.wrapping_add(get_signed(r)?);
                out[i - 1].wrapping_add(prev_delta)
            }
        };
        out.push(v);
    }
    Ok(out)
}

fn put_xor(w: &mut BitWriter, values: &[f64]) {
    let mut prev = 0u64;
    // (leading, trailing) of the current window; None until the first non-zero XOR.
    let mut window: Option<(u32, u32)> = None;
    for (i, v) in values.iter().enumerate() {
        let bits = v.to_bits();
        if i == 0 {
            w.write(bits, 64);
            prev = bits;
            continue;
        }
        let x = bits ^ prev;
        prev = bits;
        if x == 0 {
            w.bit(false);
            continue;
        }
        w.bit(true);
        let leading = x.leading_zeros();
        let trailing = x.trailing_zeros();
        match window {
            Some((l, t)) if leading >= l && trailing >= t => {
                w.bit(false);
                w.write(x >> t, 64 - l - t);
            }
            _ => {
                w.bit(true);
                let len = 64 - leading - trailing;
                w.write(u64::from(leading), 6);
                w.write(u64::from(len - 1), 6);
                w.write(x >> trailing, len);
                window = Some((leading, trailing));
            }
        }
    }
}

fn get_xor(r: &mut BitReader<'_>, count: usize) -> Result<Vec<f64>, DecodeError> {
    let mut out = Vec::with_capacity(count);
    let mut prev = 0u64;
    let mut window: Option<(u32, u32)> = None;
    for i in 0..count {
        if i == 0 {
            prev = r.read(64)?;
            out.push(f64::from_bits(prev));
            continue;
        }
        if r.bit()? {
            let x = if r.bit()? {
                let leading = r.read(6)? as u32;
                let len = r.read(6)? as u32 + 1;
                if leading + len > 64 {
                    return Err(DecodeError::new(
                        "sample chunk",
                        "XOR window exceeds 64 bits",
                    ));
                }
                let trailing = 64 - leading - len;
                window = Some((leading, trailing));
                r.read(len)? << trailing
            } else {
                let (l, t) = window.ok_or_else(|| {
                    DecodeError::new("sample chunk", "XOR window used before it is set")
                })?;
                r.read(64 - l - t)? << t
            };
            prev ^= x;
        }
        out.push(f64::from_bits(prev));
    }
    Ok(out)
}

/// The smallest scale `k` at which every value is exactly `i / 10^k`, if any.
fn decimal_scale(values: &[f64]) -> Option<usize> {
    let fits = |v: f64, k: usize| -> Option<i64> {
        if !v.is_finite() {
            return None;
        }
        let scaled = (v * POW10[k]).round();
        if scaled.abs() >= MAX_DECIMAL_INT {
            return None;
        }
        let i = scaled as i64;
        ((i as f64 / POW10[k]).to_bits() == v.to_bits()).then_some(i)
    };
    let mut k = 0;
    for v in values {
        while fits(*v, k).is_none() {
            k += 1;
            if k > MAX_SCALE {
                return None;
            }
        }
    }
    values.iter().all(|v| fits(*v, k).is_some()).then_some(k)
}

/// Appends the values to `w` in whichever mode is smaller.
fn put_values(w: BitWriter, values: &[f64]) -> (u8, BitWriter) {
    let base = w.clone();
    let mut xor = w;
    put_xor(&mut xor, values);
    let mut best = (MODE_XOR, xor);
    if let Some(k) = decimal_scale(values) {
        let mut dec = base;
        dec.write(k as u64, 4);
        put_series(
            &mut dec,
            values.iter().map(|v| (v * POW10[k]).round() as i64),
        );
        if dec.bit_len() < best.1.bit_len() {
            best = (MODE_DECIMAL, dec);
        }
    }
    best
}

/// Encodes samples (in the order given; callers sort them and drop duplicates).
pub fn encode(samples: &[Sample]) -> Vec<u8> {
    let values: Vec<f64> = samples.iter().map(|s| s.value).collect();
    let mut w = BitWriter::new();
    put_series(&mut w, samples.iter().map(|s| s.timestamp_ms));
    let (mode, bits) = put_values(w, &values);
    let body = bits.finish();
    let mut out = Vec::with_capacity(body.len() + 6);
    out.push((VERSION << 4) | mode);
    put_leb128(&mut out, samples.len() as u64);
    out.extend_from_slice(&body);
    out
}

/// Encodes only the values of `samples`, whose timestamps are stored once for many
/// series in a timestamp column (see [`encode_timestamps`]) named by `column`:
///
/// ```text
/// ┌─────────────────────────────────────┬──────────────┬────────────────┬────────────┐
/// │ version (hi 4) 0x8|mode (lo 4)      │ count LEB128 │ column u64 BE  │ value bits │
/// └─────────────────────────────────────┴──────────────┴────────────────┴────────────┘
/// ```
pub fn encode_values_only(samples: &[Sample], column: u64) -> Vec<u8> {
    let values: Vec<f64> = samples.iter().map(|s| s.value).collect();
    let (mode, bits) = put_values(BitWriter::new(), &values);
    let body = bits.finish();
    let mut out = Vec::with_capacity(body.len() + 14);
    out.push((VERSION << 4) | SHARED_TIMESTAMPS | mode);
    put_leb128(&mut out, samples.len() as u64);
    out.extend_from_slice(&column.to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// The timestamp column a chunk refers to, if it stores only values.
pub fn timestamp_column(bytes: &[u8]) -> Result<Option<u64>, DecodeError> {
    let header = *bytes
        .first()
        .ok_or_else(|| DecodeError::truncated("sample chunk"))?;
    if header & SHARED_TIMESTAMPS == 0 {
        return Ok(None);
    }
    let mut pos = 1;
    get_leb128(bytes, &mut pos)?;
    let raw = bytes
        .get(pos..pos + 8)
        .ok_or_else(|| DecodeError::truncated("sample chunk"))?;
    Ok(Some(u64::from_be_bytes(raw.try_into().expect("8 bytes"))))
}

/// Decodes a values-only chunk with its timestamp column's timestamps.
pub fn decode_with_timestamps(
    bytes: &[u8],
    timestamps: &[i64],
) -> Result<Vec<Sample>, DecodeError> {
    let header = *bytes
        .first()
        .ok_or_else(|| DecodeError::truncated("sample chunk"))?;
    if header >> 4 != VERSION || header & SHARED_TIMESTAMPS == 0 {
        return Err(DecodeError::new("sample chunk", "not a values-only chunk"));
    }
    let mode = header & 0x07;
    let mut pos = 1;
    let count = get_leb128(bytes, &mut pos)? as usize;
    if count != timestamps.len() {
        return Err(DecodeError::new(
            "sample chunk",
            format!("{count} values but {} timestamps", timestamps.len()),
        ));
    }
    let body = bytes
        .get(pos + 8..)
        .ok_or_else(|| DecodeError::truncated("sample chunk"))?;
    if count == 0 {
        return Ok(Vec::new());
    }
    let mut r = BitReader::new(body);
    let values = get_values(&mut r, mode, count)?;
    Ok(timestamps
        .iter()
        .zip(values)
        .map(|(&timestamp_ms, value)| Sample {
            timestamp_ms,
            value,
        })
        .collect())
}

/// A timestamp column: the timestamps many series of a bucket share (all series of one
/// scrape target, stamped together by the scraper), stored once.
///
/// ```text
/// key:   [0x02][0x01][0x80][bucket u32 BE][0x21][flush seq u64 BE][column u64 BE]
/// value: ┌─────────┬──────────────┬─────────────────────────────────────────────┐
///        │ 0x01 v. │ count LEB128 │ first ts 64 bits, delta, delta-of-deltas... │
///        └─────────┴──────────────┴─────────────────────────────────────────────┘
/// ```
///
/// Columns belong to the flush that wrote them (its sequence is in the key, as in the
/// chunk keys that refer to them). The column id is [`column_id`] of the timestamps; a
/// flush that finds two different columns with the same id stores the second series
/// inline instead.
pub fn encode_timestamps(timestamps: &[i64]) -> Vec<u8> {
    let mut w = BitWriter::new();
    put_series(&mut w, timestamps.iter().copied());
    let body = w.finish();
    let mut out = Vec::with_capacity(body.len() + 6);
    out.push(VERSION);
    put_leb128(&mut out, timestamps.len() as u64);
    out.extend_from_slice(&body);
    out
}

/// Decodes a timestamp column.
pub fn decode_timestamps(bytes: &[u8]) -> Result<Vec<i64>, DecodeError> {
    if bytes.first() != Some(&VERSION) {
        return Err(DecodeError::new("timestamp column", "unknown version"));
    }
    let mut pos = 1;
    let count = get_leb128(bytes, &mut pos)?;
    let body = &bytes[pos..];
    if count > body.len() as u64 * 8 + 1 {
        return Err(DecodeError::new(
            "timestamp column",
            "count exceeds the size",
        ));
    }
    if count == 0 {
        return Ok(Vec::new());
    }
    get_series(&mut BitReader::new(body), count as usize)
}

/// The id of a timestamp column: 64-bit FNV-1a of the timestamps.
pub fn column_id(timestamps: &[i64]) -> u64 {
    let mut h = Fnv64::new();
    for t in timestamps {
        h.write(&t.to_be_bytes());
    }
    h.finish()
}

/// Key of timestamp column `column` written by flush `seq` in `bucket`.
pub fn timestamps_key(bucket: u32, seq: u64, column: u64) -> Bytes {
    PREFIX
        .segmented(bucket, TIMESTAMPS)
        .u64(seq)
        .u64(column)
        .build()
}

fn get_values(r: &mut BitReader<'_>, mode: u8, count: usize) -> Result<Vec<f64>, DecodeError> {
    match mode {
        MODE_XOR => get_xor(r, count),
        MODE_DECIMAL => {
            let k = r.read(4)? as usize;
            if k > MAX_SCALE {
                return Err(DecodeError::new(
                    "sample chunk",
                    format!("decimal scale {k} is too large"),
                ));
            }
            Ok(get_series(r, count)?
                .into_iter()
                .map(|i| i as f64 / POW10[k])
                .collect())
        }
        other => Err(DecodeError::new(
            "sample chunk",
            format!("unknown value mode {other}"),
        )),
    }
}

/// Decodes a chunk. Corrupt or truncated input is a [`DecodeError`], never a panic.
pub fn decode(bytes: &[u8]) -> Result<Vec<Sample>, DecodeError> {
    let header = *bytes
        .first()
        .ok_or_else(|| DecodeError::truncated("sample chunk"))?;
    if header >> 4 != VERSION {
        return Err(DecodeError::new(
            "sample chunk",
            format!("unknown version {}", header >> 4),
        ));
    }
    if header & SHARED_TIMESTAMPS != 0 {
        return Err(DecodeError::new(
            "sample chunk",
            "values-only chunk: decode it with its timestamp column",
        ));
    }
    let mode = header & 0x07;
    let mut pos = 1;
    let count = get_leb128(bytes, &mut pos)?;
    let body = &bytes[pos..];
    // Every sample takes at least two bits: bound the count before allocating.
    if count > (body.len() as u64 * 8) / 2 + 1 {
        return Err(DecodeError::new(
            "sample chunk",
            "sample count exceeds the chunk size",
        ));
    }
    let count = count as usize;
    if count == 0 {
        return Ok(Vec::new());
    }
    let mut r = BitReader::new(body);
    let timestamps = get_series(&mut r, count)?;
    let values = get_values(&mut r, mode, count)?;
    Ok(timestamps
        .into_iter()
        .zip(values)
        .map(|(timestamp_ms, value)| Sample {
            timestamp_ms,
            value,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::STALE_NAN_BITS;
    use proptest::prelude::*;

    fn roundtrip(samples: &[Sample]) -> Vec<Sample> {
        decode(&encode(samples)).unwrap()
    }

    fn bits(samples: &[Sample]) -> Vec<(i64, u64)> {
        samples
            .iter()
            .map(|s| (s.timestamp_ms, s.value.to_bits()))
            .collect()
    }

    fn scrape(n: usize, jitter: i64, value: impl Fn(usize) -> f64) -> Vec<Sample> {
        let mut x = 12345u64;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let j = (x % (2 * jitter as u64 + 1)) as i64 - jitter;
                Sample {
                    timestamp_ms: 1_700_000_000_000 + 15_000 * i as i64 + j,
                    value: value(i),
                }
            })
            .collect()
    }

    #[test]
    fn should_keep_stale_markers_and_special_floats_bit_exact() {
        let specials = [
            f64::from_bits(STALE_NAN_BITS),
            f64::NAN,
            -0.0,
            0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            1e300,
        ];
        let samples: Vec<Sample> = specials
            .iter()
            .enumerate()
            .map(|(i, v)| Sample {
                timestamp_ms: i as i64,
                value: *v,
            })
            .collect();
        assert_eq!(bits(&roundtrip(&samples)), bits(&samples));
    }

    #[test]
    fn should_store_a_still_gauge_in_about_a_byte_per_sample() {
        let samples = scrape(120, 3, |_| 42.5);
        let encoded = encode(&samples);
        assert_eq!(bits(&decode(&encoded).unwrap()), bits(&samples));
        // About 7 bits of jittered timestamp and 1 bit of value per sample, plus the header.
        assert!(
            encoded.len() <= 132,
            "{} bytes for 120 samples",
            encoded.len()
        );
    }

    #[test]
    fn should_pick_decimal_mode_for_decimal_counters() {
        let samples = scrape(120, 3, |i| 1000.0 + i as f64 * 12.25);
        let encoded = encode(&samples);
        assert_eq!(encoded[0] & 0x0F, MODE_DECIMAL);
        assert_eq!(bits(&decode(&encoded).unwrap()), bits(&samples));
        assert!(encoded.len() < 2 * 120, "{} bytes", encoded.len());
    }

    #[test]
    fn should_reject_corrupt_chunks() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[0x20, 1]).is_err());
        assert!(decode(&[0x1F, 1, 0, 0]).is_err());
        let encoded = encode(&scrape(10, 3, |i| i as f64 * 0.1));
        assert!(decode(&encoded[..encoded.len() - 3]).is_err());
        assert!(decode(&[0x10, 0xFF, 0xFF, 0xFF, 0x0F]).is_err());
    }

    proptest! {
        #[test]
        fn should_round_trip_values_only_chunks_with_their_column(
            raw in proptest::collection::vec((0i64..1_000_000, any::<f64>()), 1..200),
        ) {
            let mut ts: Vec<i64> = raw.iter().map(|(t, _)| *t).collect();
            ts.sort();
            ts.dedup();
            let samples: Vec<Sample> = ts.iter().zip(raw.iter()).map(|(&t, (_, v))| Sample { timestamp_ms: t, value: *v }).collect();
            let col = column_id(&ts);
            let bytes = encode_values_only(&samples, col);
            prop_assert_eq!(timestamp_column(&bytes).unwrap(), Some(col));
            let column = decode_timestamps(&encode_timestamps(&ts)).unwrap();
            prop_assert_eq!(&column, &ts);
            let back = decode_with_timestamps(&bytes, &column).unwrap();
            let bits = |s: &[Sample]| s.iter().map(|x| (x.timestamp_ms, x.value.to_bits())).collect::<Vec<_>>();
            prop_assert_eq!(bits(&back), bits(&samples));
            prop_assert!(decode(&bytes).is_err());
            prop_assert!(decode_with_timestamps(&bytes, &column[1..]).is_err());
        }

        #[test]
        fn should_not_panic_on_arbitrary_columns_and_values_only_chunks(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_timestamps(&bytes);
            let _ = timestamp_column(&bytes);
            let _ = decode_with_timestamps(&bytes, &[1, 2, 3]);
        }
    }

    proptest! {
        #[test]
        fn should_round_trip_chunk_keys(bucket in any::<u32>(), id in any::<u32>(), seq in any::<u64>()) {
            let k = key(bucket, id, seq);
            prop_assert_eq!(decode_key(&k).unwrap(), (id, seq));
            prop_assert!(k.starts_with(&series_prefix(bucket, id)));
        }
    }

    proptest! {
        #[test]
        fn should_roundtrip_any_samples_bit_exact(samples in proptest::collection::vec((any::<i64>(), prop_oneof![any::<f64>(), any::<u64>().prop_map(f64::from_bits), (-1000i64..1000, 0usize..4).prop_map(|(i, k)| i as f64 / POW10[k])]), 0..60)) {
            let samples: Vec<Sample> = samples.into_iter().map(|(t, v)| Sample { timestamp_ms: t, value: v }).collect();
            prop_assert_eq!(bits(&roundtrip(&samples)), bits(&samples));
        }

        #[test]
        fn should_roundtrip_scrape_like_series(n in 1usize..200, jitter in 0i64..50, step in prop_oneof![Just(0.0), Just(1.0), Just(0.5), Just(0.001)]) {
            let samples = scrape(n, jitter.max(1), |i| 7.0 + step * i as f64);
            prop_assert_eq!(bits(&roundtrip(&samples)), bits(&samples));
        }

        #[test]
        fn should_never_panic_on_garbage(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&data);
            let mut versioned = data.clone();
            if let Some(b) = versioned.first_mut() {
                *b = (VERSION << 4) | (*b & 1);
            }
            let _ = decode(&versioned);
        }
    }
}
