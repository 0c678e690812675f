//! A list of writes to apply atomically.

use bytes::Bytes;
use slatedb::WriteBatch;

/// One write.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Put(Bytes, Bytes),
    Merge(Bytes, Bytes),
    Delete(Bytes),
}

/// Puts, merges and deletes that are applied together, atomically.
///
/// The group-commit path concatenates many callers' `WriteOps` into one SlateDB
/// write batch, in submission order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOps {
    ops: Vec<Op>,
    bytes: usize,
}

impl WriteOps {
    /// No writes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Room for `n` writes.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            ops: Vec::with_capacity(n),
            bytes: 0,
        }
    }

    /// Sets `key` to `value`.
    pub fn put(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) {
        let (key, value) = (key.into(), value.into());
        self.bytes += key.len() + value.len();
        self.ops.push(Op::Put(key, value));
    }

    /// Adds a merge operand for `key`, combined by the database's merge operator.
    pub fn merge(&mut self, key: impl Into<Bytes>, operand: impl Into<Bytes>) {
        let (key, operand) = (key.into(), operand.into());
        self.bytes += key.len() + operand.len();
        self.ops.push(Op::Merge(key, operand));
    }

    /// Deletes `key`.
    pub fn delete(&mut self, key: impl Into<Bytes>) {
        let key = key.into();
        self.bytes += key.len();
        self.ops.push(Op::Delete(key));
    }

    /// The key of every write, in order.
    pub fn keys(&self) -> impl Iterator<Item = &Bytes> {
        self.ops.iter().map(|op| match op {
            Op::Put(k, _) | Op::Merge(k, _) | Op::Delete(k) => k,
        })
    }

    /// Moves every write of `other` to the end of this list.
    pub fn append(&mut self, other: WriteOps) {
        self.bytes += other.bytes;
        if self.ops.is_empty() {
            self.ops = other.ops;
        } else {
            self.ops.extend(other.ops);
        }
    }

    /// The number of writes.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when there are no writes.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Key and value bytes in the list.
    pub fn size_bytes(&self) -> usize {
        self.bytes
    }

    /// The SlateDB batch that applies these writes.
    pub fn into_write_batch(self) -> WriteBatch {
        let mut batch = WriteBatch::new();
        for op in self.ops {
            match op {
                Op::Put(k, v) => batch.put(k, v),
                Op::Merge(k, v) => batch.merge(k, v),
                Op::Delete(k) => batch.delete(k),
            }
        }
        batch
    }
}
