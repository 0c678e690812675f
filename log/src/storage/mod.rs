//! The log database on SlateDB: the writer ([`LogDb`]), the replica ([`LogDbReader`]),
//! the read path they share, and tail following.

mod follow;
mod read;
mod replica;
mod retention;
mod topics;
mod writer;

pub use follow::LogFollower;
#[doc(hidden)]
pub use read::ReadCore;
pub use read::{LogIterator, LogRead};
pub use replica::LogDbReader;
pub use topics::{MAX_PARTITIONS, MAX_TOPIC_NAME, validate_topic_name};
pub use writer::LogDb;

/// The database's directory name under the storage root.
pub const DATABASE: &str = "log";

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
