//! The real `opendata` binary in tests: started on a free loopback port, waited for
//! until healthy, then stopped with SIGTERM or killed with SIGKILL.
//!
//! The binary is `$OPENDATA_BIN` when set, otherwise the `opendata` that cargo built
//! beside the running test (`target/<profile>/opendata`; cargo builds a package's
//! binaries before its integration tests).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use opendata_common::{ObjectStoreConfig, StorageConfig};

/// A running `opendata serve` process.
pub struct ServerProcess {
    /// The process.
    pub child: Child,
    /// The port it listens on.
    pub port: u16,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `opendata` binary the tests run.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("OPENDATA_BIN") {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/<test> -> target/<profile>/opendata
    let exe = std::env::current_exe().unwrap();
    let mut dir = exe.parent().unwrap().to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(format!("opendata{}", std::env::consts::EXE_SUFFIX))
}

impl ServerProcess {
    /// Starts `opendata serve` with `args` (plus `--listen`), its log in `log_path`, and
    /// waits until it is healthy.
    pub async fn start(args: &[&str], log_path: &Path) -> ServerProcess {
        Self::start_binary(&binary(), args, log_path).await
    }

    /// Starts `<binary> serve` with `args` (plus `--listen`), its log in `log_path`, and
    /// waits until it is healthy.
    pub async fn start_binary(binary: &Path, args: &[&str], log_path: &Path) -> ServerProcess {
        let port = free_port();
        let log = std::fs::File::create(log_path).unwrap();
        let child = Command::new(binary)
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
    let config = crate::s3::s3_config(test)?;
    s3_args_for(&config)
}

/// Arguments that put the server on the S3 store of `config`.
pub fn s3_args_for(config: &StorageConfig) -> Option<Vec<String>> {
    match config.object_store.clone() {
        ObjectStoreConfig::S3 {
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

/// An external program under test (Prometheus, Alertmanager, ...), killed when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `candidate` if running it with `probe` succeeds; else `None` outside CI (with a
/// notice) and a panic under CI (`CI` set), where the test command installs it.
fn required_tool(candidate: String, probe: &[&str], what: &str, hint: &str) -> Option<String> {
    let found = Command::new(&candidate)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some(candidate);
    }
    let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    if in_ci {
        panic!("this test needs {what} ('{candidate}' not usable): {hint}");
    }
    eprintln!("skipping: {what} is not installed (run scripts/test.sh)");
    None
}

/// The Prometheus binary (`$OPENDATA_TEST_PROMETHEUS`, else `prometheus` on the path),
/// or `None` outside CI when it is not installed. Under CI (`CI` set) a missing
/// Prometheus fails the test: the test command installs Debian's package.
pub fn prometheus_binary() -> Option<String> {
    required_tool(
        std::env::var("OPENDATA_TEST_PROMETHEUS").unwrap_or_else(|_| "prometheus".to_string()),
        &["--version"],
        "Prometheus",
        "scripts/test.sh installs Debian's prometheus package",
    )
}

/// PostgreSQL's `psql` (`$OPENDATA_TEST_PSQL`, else `psql` on the path), or `None`
/// outside CI when it is not installed; under CI a missing `psql` fails the test.
pub fn psql_binary() -> Option<String> {
    required_tool(
        std::env::var("OPENDATA_TEST_PSQL").unwrap_or_else(|_| "psql".to_string()),
        &["--version"],
        "psql",
        "scripts/test.sh installs Debian's postgresql-client package",
    )
}

/// A Python with the psycopg driver (`$OPENDATA_TEST_PYTHON`, which scripts/test.sh
/// points at its virtual environment, else `python3`), or `None` outside CI when it
/// lacks psycopg; under CI that fails the test.
pub fn psycopg_python() -> Option<String> {
    required_tool(
        std::env::var("OPENDATA_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string()),
        &["-c", "import psycopg"],
        "Python with psycopg",
        "scripts/test.sh installs psycopg into its virtual environment",
    )
}

/// Debian's `kcat` (`$OPENDATA_TEST_KCAT`, else `kcat` on the path), or `None` outside CI
/// when it is not installed; under CI a missing `kcat` fails the test.
pub fn kcat_binary() -> Option<String> {
    required_tool(
        std::env::var("OPENDATA_TEST_KCAT").unwrap_or_else(|_| "kcat".to_string()),
        &["-V"],
        "kcat",
        "scripts/test.sh installs Debian's kcat package",
    )
}

/// A Python with the confluent-kafka client (`$OPENDATA_TEST_PYTHON`, else `python3`),
/// or `None` outside CI when it lacks it; under CI that fails the test.
pub fn kafka_python() -> Option<String> {
    required_tool(
        std::env::var("OPENDATA_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string()),
        &["-c", "import confluent_kafka"],
        "Python with confluent-kafka",
        "scripts/test.sh installs confluent-kafka into its virtual environment",
    )
}
