//! Bit-level writer and reader for the chunk codec. Bits are written most significant
//! first; the reader returns a [`DecodeError`] instead of reading past the end.

use opendata_common::DecodeError;

/// Appends bits to a byte vector.
#[derive(Debug, Default, Clone)]
pub struct BitWriter {
    bytes: Vec<u8>,
    /// Bits used in the last byte (0 = the last byte is full or there is none).
    used: u8,
}

impl BitWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes the low `n` bits of `value` (n ≤ 64), most significant first.
    pub fn write(&mut self, value: u64, n: u32) {
        debug_assert!(n <= 64);
        let mut remaining = n;
        while remaining > 0 {
            if self.used == 0 {
                self.bytes.push(0);
            }
            let free = 8 - u32::from(self.used);
            let take = free.min(remaining);
            let shift = remaining - take;
            let chunk = ((value >> shift) & ((1u64 << take) - 1)) as u8;
            let last = self.bytes.last_mut().expect("pushed above");
            *last |= chunk << (free - take);
            self.used = ((u32::from(self.used) + take) % 8) as u8;
            remaining -= take;
        }
    }

    /// Writes one bit.
    pub fn bit(&mut self, set: bool) {
        self.write(u64::from(set), 1);
    }

    /// The bytes written (the last one zero-padded).
    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }

    /// Bits written so far.
    pub fn bit_len(&self) -> usize {
        self.bytes.len() * 8
            - if self.used == 0 {
                0
            } else {
                8 - self.used as usize
            }
    }
}

/// Reads bits written by [`BitWriter`].
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// Reads `n` bits (n ≤ 64).
    pub fn read(&mut self, n: u32) -> Result<u64, DecodeError> {
        debug_assert!(n <= 64);
        if self.pos + n as usize > self.bytes.len() * 8 {
            return Err(DecodeError::truncated("sample chunk"));
        }
        let mut out = 0u64;
        let mut remaining = n;
        while remaining > 0 {
            let byte = self.bytes[self.pos / 8];
            let offset = (self.pos % 8) as u32;
            let avail = 8 - offset;
            let take = avail.min(remaining);
            let bits = (u64::from(byte) >> (avail - take)) & ((1u64 << take) - 1);
            out = if take == 64 {
                bits
            } else {
                (out << take) | bits
            };
            self.pos += take as usize;
            remaining -= take;
        }
        Ok(out)
    }

    /// Reads one bit.
    pub fn bit(&mut self) -> Result<bool, DecodeError> {
        Ok(self.read(1)? == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn should_roundtrip_bit_fields(fields in proptest::collection::vec((any::<u64>(), 1u32..=64), 0..40)) {
            let mut w = BitWriter::new();
            for (v, n) in &fields {
                w.write(*v, *n);
            }
            let total: u32 = fields.iter().map(|f| f.1).sum();
            prop_assert_eq!(w.bit_len(), total as usize);
            let bytes = w.finish();
            let mut r = BitReader::new(&bytes);
            for (v, n) in &fields {
                let mask = if *n == 64 { u64::MAX } else { (1u64 << n) - 1 };
                prop_assert_eq!(r.read(*n).unwrap(), v & mask);
            }
        }
    }

    #[test]
    fn should_not_read_past_the_end() {
        let mut r = BitReader::new(&[0xAB]);
        assert_eq!(r.read(4).unwrap(), 0xA);
        assert!(r.read(5).is_err());
    }
}
