//! Byte mutations for the fuzz tests: a valid encoding, edited a few bytes at a time,
//! reaches far deeper into a decoder than random bytes do.
//!
//! ```
//! let out = opendata_testing::fuzz::mutate(vec![1, 2, 3], &[(1, 0, 0xff), (0, 2, 0)]);
//! assert_eq!(out, vec![0xfd, 3]);
//! ```

/// One edit: `(position, operation, byte)`. The position wraps around the current
/// length; the operation (mod 4) flips the byte's bits with `byte`, inserts `byte`,
/// removes the byte, or truncates there.
pub type Edit = (usize, u8, u8);

/// Applies `edits` to `bytes` in order.
pub fn mutate(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for &(pos, op, b) in edits {
        if bytes.is_empty() {
            bytes.push(b);
            continue;
        }
        let pos = pos % bytes.len();
        match op % 4 {
            0 => bytes[pos] ^= b.max(1),
            1 => bytes.insert(pos, b),
            2 => {
                bytes.remove(pos);
            }
            _ => bytes.truncate(pos),
        }
    }
    bytes
}
