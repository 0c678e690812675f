//! What the server's integration tests share: the real binary as a process (from the
//! test-support crate), and small helpers.
#![allow(dead_code, unused_imports)]

pub use opendata_testing::TestClient;
pub use opendata_testing::process::{ServerProcess, free_port, s3_args, s3_args_for};

/// Percent-encodes a query parameter value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The real binary on an in-memory store, with `extra` arguments; the directory holds
/// its log and must outlive it.
pub async fn memory_server(extra: &[&str]) -> (tempfile::TempDir, ServerProcess) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--object-store", "memory://"];
    args.extend_from_slice(extra);
    let server = ServerProcess::start(&args, &dir.path().join("server.log")).await;
    (dir, server)
}
