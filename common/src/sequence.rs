//! Durable sequence allocation in blocks.
//!
//! Sequences are handed out from an in-memory counter. Whenever an allocation passes
//! the end of the reserved block, a new block end is put into the same write batch as
//! the data that uses the new sequences, so the reservation is durable exactly when
//! that data is. On open, allocation resumes at the stored block end: sequences never
//! repeat across restarts, and a crash skips at most one block.
//!
//! ```text
//! block record value: ┌────────────────────────────────┐
//!                     │ reserved end (exclusive) u64 BE│
//!                     └────────────────────────────────┘
//! ```

use bytes::Bytes;

use crate::encoding::get_u64;
use crate::error::{DecodeError, Result};
use crate::storage::{StorageReader, WriteOps};

/// Hands out increasing `u64` sequences, reserving them durably in blocks.
#[derive(Debug, Clone)]
pub struct SequenceAllocator {
    key: Bytes,
    next: u64,
    reserved_end: u64,
    block_size: u64,
}

impl SequenceAllocator {
    /// Loads the allocator stored at `key`; a missing record starts at 0.
    pub async fn load(reader: &StorageReader, key: Bytes, block_size: u64) -> Result<Self> {
        let reserved_end = match reader.get(&key).await? {
            Some(value) => Self::decode(&value)?,
            None => 0,
        };
        Ok(Self {
            key,
            next: reserved_end,
            reserved_end,
            block_size: block_size.max(1),
        })
    }

    /// Decodes a block record value.
    pub fn decode(value: &[u8]) -> Result<u64, DecodeError> {
        let mut cur = value;
        let end = get_u64(&mut cur)?;
        if !cur.is_empty() {
            return Err(DecodeError::new("sequence block", "trailing bytes"));
        }
        Ok(end)
    }

    /// The next sequence that will be handed out.
    pub fn peek(&self) -> u64 {
        self.next
    }

    /// Reserves `n` consecutive sequences and returns the first. If they pass the end
    /// of the reserved block, the new block record is added to `ops`, which must be
    /// written in the same batch as the data that uses the sequences.
    pub fn allocate(&mut self, n: u64, ops: &mut WriteOps) -> u64 {
        let first = self.next;
        let end = first.checked_add(n).expect("sequence space exhausted");
        if end > self.reserved_end {
            self.reserved_end = end.saturating_add(self.block_size);
            ops.put(
                self.key.clone(),
                Bytes::copy_from_slice(&self.reserved_end.to_be_bytes()),
            );
        }
        self.next = end;
        first
    }
}

impl SequenceAllocator {
    /// Shrinks the reservation to what was actually handed out, adding the block record
    /// to `ops`. Called on a clean shutdown so a restart does not skip the rest of the
    /// block.
    pub fn release_unused(&mut self, ops: &mut WriteOps) {
        if self.reserved_end != self.next {
            self.reserved_end = self.next;
            ops.put(
                self.key.clone(),
                Bytes::copy_from_slice(&self.reserved_end.to_be_bytes()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_write_block_record_only_when_block_is_exhausted() {
        let mut a = SequenceAllocator {
            key: Bytes::from_static(b"k"),
            next: 0,
            reserved_end: 0,
            block_size: 10,
        };
        let mut ops = WriteOps::new();
        assert_eq!(a.allocate(3, &mut ops), 0);
        assert_eq!(ops.len(), 1);
        let mut ops = WriteOps::new();
        assert_eq!(a.allocate(5, &mut ops), 3);
        assert!(ops.is_empty());
        assert_eq!(a.allocate(20, &mut ops), 8);
        assert_eq!(ops.len(), 1);
        assert_eq!(a.peek(), 28);
        let mut ops = WriteOps::new();
        a.release_unused(&mut ops);
        assert_eq!(ops.len(), 1);
        let mut ops = WriteOps::new();
        a.release_unused(&mut ops);
        assert!(ops.is_empty());
        assert!(SequenceAllocator::decode(&[1, 2]).is_err());
    }
}
