//! A fault-injecting object store, for tests and chaos runs (`[storage.faults]`).
//!
//! It wraps the configured store and, for the operations chosen, adds latency, fails a
//! fraction of calls, makes a fraction hang until they time out, or makes the whole
//! store unreachable for a window of time. The choices come from a seeded generator, so
//! a run can be repeated.
//!
//! ```toml
//! [storage.faults]
//! operations = ["put"]        # put, get, list, delete, copy; empty: all
//! error_rate = 0.01           # a share of calls fails at once
//! latency_ms = 20             # added to every call
//! timeout_rate = 0.001        # a share of calls hangs for timeout_ms, then fails
//! timeout_ms = 30000
//! unreachable_after_secs = 60 # from start: every call fails for unreachable_for_secs
//! unreachable_for_secs = 10
//! seed = 1
//! ```

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use slatedb::object_store::path::Path;
use slatedb::object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// A kind of object-store call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultOp {
    /// Puts, conditional puts and multipart uploads.
    Put,
    /// Gets and ranged gets.
    Get,
    /// Listings.
    List,
    /// Deletes.
    Delete,
    /// Copies and renames.
    Copy,
}

/// What to inject. Every field defaults to "nothing".
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// The calls faults apply to; empty: every call.
    pub operations: Vec<FaultOp>,
    /// Share (0 to 1) of calls that fail at once.
    pub error_rate: f64,
    /// Milliseconds added to every call.
    pub latency_ms: u64,
    /// Share (0 to 1) of calls that hang for `timeout_ms`, then fail.
    pub timeout_rate: f64,
    /// How long a timed-out call hangs, in milliseconds.
    pub timeout_ms: u64,
    /// Seconds after the store is opened at which it becomes unreachable (with
    /// `unreachable_for_secs` > 0).
    pub unreachable_after_secs: u64,
    /// Seconds the store stays unreachable: every call fails.
    pub unreachable_for_secs: u64,
    /// Seed of the generator that picks failing calls.
    pub seed: u64,
}

impl FaultConfig {
    /// Checks the settings.
    pub fn validate(&self) -> std::result::Result<(), String> {
        for (name, rate) in [
            ("error_rate", self.error_rate),
            ("timeout_rate", self.timeout_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!(
                    "storage.faults.{name} must be between 0 and 1, got {rate}"
                ));
            }
        }
        Ok(())
    }
}

/// The error every injected fault answers with.
#[derive(Debug)]
struct Injected(&'static str);

impl fmt::Display for Injected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "injected fault: {}", self.0)
    }
}

impl std::error::Error for Injected {}

fn injected(what: &'static str) -> slatedb::object_store::Error {
    slatedb::object_store::Error::Generic {
        store: "faults",
        source: Box::new(Injected(what)),
    }
}

/// An object store that injects the faults of a [`FaultConfig`] into another.
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    config: FaultConfig,
    opened: Instant,
    state: AtomicU64,
    injected: AtomicU64,
}

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyStore")
            .field("config", &self.config)
            .finish()
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

impl FaultyStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ObjectStore>, config: FaultConfig) -> Self {
        let seed = config.seed;
        Self {
            inner,
            config,
            opened: Instant::now(),
            state: AtomicU64::new(seed ^ 0x9e37_79b9_7f4a_7c15),
            injected: AtomicU64::new(0),
        }
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    /// A uniform number in `[0, 1)` (splitmix64 over a shared counter).
    fn next_unit(&self) -> f64 {
        let mut z = self
            .state
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    fn applies(&self, op: FaultOp) -> bool {
        self.config.operations.is_empty() || self.config.operations.contains(&op)
    }

    fn unreachable(&self) -> bool {
        let c = &self.config;
        if c.unreachable_for_secs == 0 {
            return false;
        }
        let elapsed = self.opened.elapsed();
        let from = Duration::from_secs(c.unreachable_after_secs);
        elapsed >= from && elapsed < from + Duration::from_secs(c.unreachable_for_secs)
    }

    /// Waits and fails as the configuration says, before a call of kind `op`.
    async fn before(&self, op: FaultOp) -> Result<()> {
        if !self.applies(op) {
            return Ok(());
        }
        let c = &self.config;
        if c.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(c.latency_ms)).await;
        }
        if self.unreachable() {
            self.injected.fetch_add(1, Ordering::Relaxed);
            return Err(injected("the store is unreachable"));
        }
        if c.timeout_rate > 0.0 && self.next_unit() < c.timeout_rate {
            self.injected.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(c.timeout_ms)).await;
            return Err(injected("the call timed out"));
        }
        if c.error_rate > 0.0 && self.next_unit() < c.error_rate {
            self.injected.fetch_add(1, Ordering::Relaxed);
            return Err(injected("the call failed"));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.before(FaultOp::Put).await?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.before(FaultOp::Put).await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.before(FaultOp::Get).await?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.before(FaultOp::Get).await?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        if self.applies(FaultOp::Delete) && self.unreachable() {
            self.injected.fetch_add(1, Ordering::Relaxed);
            return futures::stream::once(async { Err(injected("the store is unreachable")) })
                .boxed();
        }
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        if self.applies(FaultOp::List) && self.unreachable() {
            self.injected.fetch_add(1, Ordering::Relaxed);
            return futures::stream::once(async { Err(injected("the store is unreachable")) })
                .boxed();
        }
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.before(FaultOp::List).await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.before(FaultOp::Copy).await?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.before(FaultOp::Copy).await?;
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use slatedb::object_store::memory::InMemory;
    use slatedb::object_store::{ObjectStoreExt, PutPayload};

    use super::*;

    fn store(config: FaultConfig) -> FaultyStore {
        FaultyStore::new(Arc::new(InMemory::new()), config)
    }

    #[tokio::test]
    async fn should_fail_the_chosen_share_of_calls() {
        let s = store(FaultConfig {
            operations: vec![FaultOp::Put],
            error_rate: 0.5,
            seed: 7,
            ..Default::default()
        });
        let mut failed = 0;
        for i in 0..400 {
            let path = Path::from(format!("k{i}"));
            if s.put(&path, PutPayload::from_static(b"v")).await.is_err() {
                failed += 1;
            } else {
                // Gets are not faulted: what was put is there.
                assert!(s.get(&path).await.is_ok());
            }
        }
        assert!((150..250).contains(&failed), "{failed} of 400 failed");
        assert_eq!(s.injected(), failed);
    }

    #[tokio::test]
    async fn should_be_unreachable_for_a_window_then_recover() {
        let s = store(FaultConfig {
            unreachable_after_secs: 0,
            unreachable_for_secs: 1,
            ..Default::default()
        });
        let path = Path::from("k");
        let err = s
            .put(&path, PutPayload::from_static(b"v"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("unreachable"), "{err}");
        assert!(s.list_with_delimiter(None).await.is_err());
        tokio::time::sleep(Duration::from_millis(1100)).await;
        s.put(&path, PutPayload::from_static(b"v")).await.unwrap();
        assert!(s.get(&path).await.is_ok());
    }

    #[tokio::test]
    async fn should_add_latency() {
        let s = store(FaultConfig {
            latency_ms: 50,
            ..Default::default()
        });
        let started = Instant::now();
        s.put(&Path::from("k"), PutPayload::from_static(b"v"))
            .await
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn should_check_rates() {
        let bad = FaultConfig {
            error_rate: 1.5,
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().contains("error_rate"));
    }
}
