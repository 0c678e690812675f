//! One client connection's state: its grant, its settings, and the signal that
//! cancels its running statement.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::watch;

use super::encode::error;
use crate::server::auth::Grant;
use pgwire::error::ErrorInfo;

/// Cancel signals of every open connection, by process id and secret key (what a
/// PostgreSQL cancel request names).
#[derive(Default)]
pub(crate) struct Cancels(Mutex<HashMap<(i32, Bytes), watch::Sender<u64>>>);

impl Cancels {
    /// Registers a connection; it stays registered while the returned guard lives.
    pub(crate) fn register(
        self: &Arc<Self>,
        pid: i32,
        secret: Bytes,
    ) -> (watch::Receiver<u64>, Registration) {
        let (tx, rx) = watch::channel(0);
        self.0.lock().insert((pid, secret.clone()), tx);
        (
            rx,
            Registration {
                cancels: self.clone(),
                key: (pid, secret),
            },
        )
    }

    /// Cancels the statement running on the connection, if the key matches one.
    pub(crate) fn cancel(&self, pid: i32, secret: Bytes) -> bool {
        match self.0.lock().get(&(pid, secret)) {
            Some(tx) => {
                tx.send_modify(|generation| *generation += 1);
                true
            }
            None => false,
        }
    }

    /// Open connections.
    pub(crate) fn len(&self) -> usize {
        self.0.lock().len()
    }
}

/// Unregisters a connection's cancel signal when the connection goes.
pub(crate) struct Registration {
    cancels: Arc<Cancels>,
    key: (i32, Bytes),
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.cancels.0.lock().remove(&self.key);
    }
}

/// A connection's session, kept in the connection's extensions.
pub(crate) struct Session {
    /// The token the client logged in with (`None` when no tokens are configured).
    pub grant: Option<Grant>,
    /// `SET` values, by lower-case name.
    pub settings: Mutex<HashMap<String, String>>,
    /// Bumped by a cancel request.
    pub cancel: watch::Receiver<u64>,
    /// The default `statement_timeout` (`sql.statement_timeout_secs`).
    pub default_timeout: Duration,
    pub _registration: Registration,
}

impl Session {
    /// The statement timeout in force: `SET statement_timeout`, or the default.
    pub fn timeout(&self) -> Option<Duration> {
        let set = self.settings.lock().get("statement_timeout").cloned();
        let d = match set {
            Some(v) => parse_timeout(&v).unwrap_or(self.default_timeout),
            None => self.default_timeout,
        };
        (!d.is_zero()).then_some(d)
    }

    /// A watcher of this session's cancel signal, armed for the statement starting
    /// now, and its deadline.
    pub fn control(&self) -> Control {
        let mut cancel = self.cancel.clone();
        let generation = *cancel.borrow_and_update();
        Control {
            cancel,
            generation,
            deadline: self.timeout().map(|d| tokio::time::Instant::now() + d),
        }
    }
}

/// `statement_timeout` as PostgreSQL spells it: milliseconds, or a number with a
/// unit (`ms`, `s`, `min`, `h`, `d`). 0 turns the timeout off.
pub(crate) fn parse_timeout(value: &str) -> Result<Duration, ErrorInfo> {
    let v = value.trim().trim_matches('\'');
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let n: f64 = number.parse().map_err(|_| {
        error(
            "22023",
            format!("invalid value for parameter \"statement_timeout\": {value:?}"),
        )
    })?;
    let ms = match unit.trim() {
        "" | "ms" => n,
        "s" => n * 1e3,
        "min" => n * 60e3,
        "h" => n * 3600e3,
        "d" => n * 86400e3,
        other => {
            return Err(error(
                "22023",
                format!(
                    "invalid unit {other:?} for parameter \"statement_timeout\": use ms, s, min, h or d"
                ),
            ));
        }
    };
    if !ms.is_finite() || !(0.0..=2_147_483_647.0).contains(&ms) {
        return Err(error(
            "22023",
            format!(
                "{value} is outside the valid range for parameter \"statement_timeout\" (0 .. 2147483647 ms)"
            ),
        ));
    }
    Ok(Duration::from_millis(ms as u64))
}

/// Ends a statement early when the client cancels it or its timeout passes.
pub(crate) struct Control {
    cancel: watch::Receiver<u64>,
    generation: u64,
    deadline: Option<tokio::time::Instant>,
}

impl Control {
    /// Runs `f` unless the statement is cancelled or times out first.
    pub async fn guard<F: std::future::Future>(&mut self, f: F) -> Result<F::Output, ErrorInfo> {
        let generation = self.generation;
        let cancelled = async {
            if self.cancel.wait_for(|g| *g != generation).await.is_err() {
                // The connection is gone: nothing will cancel.
                std::future::pending::<()>().await;
            }
        };
        let timeout = async {
            match self.deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            v = f => Ok(v),
            _ = cancelled => Err(error("57014", "canceling statement due to user request")),
            _ = timeout => Err(error("57014", "canceling statement due to statement timeout")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_parse_statement_timeouts_as_postgresql_does() {
        assert_eq!(parse_timeout("1500").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_timeout("'2s'").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_timeout("1min").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_timeout("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_timeout("5 fortnights").unwrap_err().code, "22023");
        assert_eq!(parse_timeout("-1").unwrap_err().code, "22023");
        assert_eq!(parse_timeout("99999999999").unwrap_err().code, "22023");
    }

    #[tokio::test]
    async fn should_cancel_only_the_statement_running_when_asked() {
        let cancels = Arc::new(Cancels::default());
        let (rx, registration) = cancels.register(7, Bytes::from_static(b"k"));
        let session = Session {
            grant: None,
            settings: Mutex::new(HashMap::new()),
            cancel: rx,
            default_timeout: Duration::ZERO,
            _registration: registration,
        };
        let mut control = session.control();
        assert!(!cancels.cancel(7, Bytes::from_static(b"wrong")));
        assert!(cancels.cancel(7, Bytes::from_static(b"k")));
        let err = control
            .guard(std::future::pending::<()>())
            .await
            .unwrap_err();
        assert_eq!(err.code, "57014");
        // The next statement starts afresh.
        let mut next = session.control();
        assert_eq!(next.guard(async { 5 }).await.unwrap(), 5);
        drop(session);
        assert_eq!(cancels.len(), 0);
    }
}
