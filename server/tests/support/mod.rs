//! What the server's integration tests share: the real binary as a process (from the
//! test-support crate), and small helpers.
#![allow(dead_code, unused_imports)]

pub use opendata_testing::TestClient;
pub use opendata_testing::process::{ServerProcess, free_port, s3_args, s3_args_for};

pub fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}
