//! Starting and stopping the real `opendata` binary in tests.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running `opendata serve` process.
pub struct ServerProcess {
    pub child: Child,
    pub port: u16,
    pub base: String,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl ServerProcess {
    /// Starts `opendata serve` with `args` (plus `--listen`) and waits until healthy.
    pub async fn start(args: &[&str], log_path: &Path) -> ServerProcess {
        let port = free_port();
        let log = std::fs::File::create(log_path).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_opendata"))
            .arg("serve")
            .args(args)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("OPENDATA_LOG_LEVEL", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the opendata binary starts");
        let server = ServerProcess {
            child,
            port,
            base: format!("http://127.0.0.1:{port}"),
        };
        server.wait_healthy(log_path).await;
        server
    }

    async fn wait_healthy(&self, log_path: &Path) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client.get(format!("{}/-/healthy", self.base)).send().await
                && r.status().is_success()
            {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "server did not become healthy; log:\n{}",
                    std::fs::read_to_string(log_path).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(mut self) -> ExitStatus {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Arguments that put the server on the S3 emulator, if the test setup started one.
pub fn s3_args(test: &str) -> Option<Vec<String>> {
    let config = opendata_common::testing::s3_config(test)?;
    s3_args_for(&config)
}

/// Arguments that put the server on the S3 store of `config`.
pub fn s3_args_for(config: &opendata_common::StorageConfig) -> Option<Vec<String>> {
    match config.object_store.clone() {
        opendata_common::ObjectStoreConfig::S3 {
            bucket,
            prefix,
            endpoint,
            ..
        } => Some(vec![
            "--object-store".into(),
            format!("s3://{bucket}/{prefix}"),
            "--s3-endpoint".into(),
            endpoint.expect("emulator endpoint"),
        ]),
        _ => None,
    }
}

pub fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}
