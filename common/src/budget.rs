//! A process-wide memory budget: work that would hold much memory reserves it first,
//! and fails fast when the budget is spent, instead of the process growing until the
//! kernel ends it.
//!
//! The budget counts what requests hold while they run (PromQL samples and points,
//! decoded request bodies), not the databases' own caches, which have sizes of their
//! own. A reservation is returned when it is dropped.
//!
//! ```
//! use opendata_common::budget::MemoryBudget;
//!
//! let budget = MemoryBudget::new(1000);
//! let mut a = budget.reserve(600).unwrap();
//! assert!(budget.reserve(600).is_err());
//! a.shrink(400);
//! let b = budget.reserve(600).unwrap();
//! assert_eq!(budget.used(), 800);
//! drop((a, b));
//! assert_eq!(budget.used(), 0);
//! // A budget of 0 is unlimited.
//! assert!(MemoryBudget::new(0).reserve(u64::MAX / 2).is_ok());
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a reservation was refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the server's memory budget is spent ({used} of {limit} bytes held by running requests; \
     {wanted} more were asked for); retry later"
)]
pub struct BudgetSpent {
    /// Bytes held when it was refused.
    pub used: u64,
    /// The budget.
    pub limit: u64,
    /// Bytes asked for.
    pub wanted: u64,
}

#[derive(Debug, Default)]
struct Inner {
    limit: u64,
    used: AtomicU64,
    refused: AtomicU64,
}

/// The budget, shared by everything that reserves from it. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct MemoryBudget(Arc<Inner>);

impl MemoryBudget {
    /// A budget of `limit` bytes (0: unlimited).
    pub fn new(limit: u64) -> Self {
        Self(Arc::new(Inner {
            limit,
            ..Inner::default()
        }))
    }

    /// The budget in bytes (0: unlimited).
    pub fn limit(&self) -> u64 {
        self.0.limit
    }

    /// Bytes reserved now.
    pub fn used(&self) -> u64 {
        self.0.used.load(Ordering::Relaxed)
    }

    /// Reservations refused so far.
    pub fn refused(&self) -> u64 {
        self.0.refused.load(Ordering::Relaxed)
    }

    fn take(&self, bytes: u64) -> Result<(), BudgetSpent> {
        let before = self.0.used.fetch_add(bytes, Ordering::Relaxed);
        if self.0.limit > 0 && before.saturating_add(bytes) > self.0.limit {
            self.0.used.fetch_sub(bytes, Ordering::Relaxed);
            self.0.refused.fetch_add(1, Ordering::Relaxed);
            return Err(BudgetSpent {
                used: before,
                limit: self.0.limit,
                wanted: bytes,
            });
        }
        Ok(())
    }

    /// Reserves `bytes`, or fails at once when that would pass the budget.
    pub fn reserve(&self, bytes: u64) -> Result<Reservation, BudgetSpent> {
        self.take(bytes)?;
        Ok(Reservation {
            budget: self.clone(),
            bytes,
        })
    }
}

/// Bytes reserved from a [`MemoryBudget`], returned when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: MemoryBudget,
    bytes: u64,
}

impl Reservation {
    /// An empty reservation that can grow.
    pub fn empty(budget: &MemoryBudget) -> Self {
        Self {
            budget: budget.clone(),
            bytes: 0,
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Reserves `bytes` more.
    pub fn grow(&mut self, bytes: u64) -> Result<(), BudgetSpent> {
        self.budget.take(bytes)?;
        self.bytes += bytes;
        Ok(())
    }

    /// Reserves `bytes` more even past the budget: for memory that is already held
    /// (the budget then refuses others until it is returned).
    pub fn force_grow(&mut self, bytes: u64) {
        self.budget.0.used.fetch_add(bytes, Ordering::Relaxed);
        self.bytes += bytes;
    }

    /// Returns `bytes` of the reservation.
    pub fn shrink(&mut self, bytes: u64) {
        let bytes = bytes.min(self.bytes);
        self.bytes -= bytes;
        self.budget.0.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.0.used.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}
