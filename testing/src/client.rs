//! One HTTP client for tests against a running server: requests by path, answers as
//! the status and the parsed JSON (or the raw bytes).

use reqwest::Method;
use serde_json::Value;

/// A client for one server.
#[derive(Clone)]
pub struct TestClient {
    base: String,
    http: reqwest::Client,
}

impl TestClient {
    /// A client for the server at `base` (`http://127.0.0.1:PORT`).
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            http: reqwest::Client::new(),
        }
    }

    /// A client for the server at `base` that shares `http`'s connection pool.
    pub fn with(http: &reqwest::Client, base: impl AsRef<str>) -> Self {
        Self {
            base: base.as_ref().to_string(),
            http: http.clone(),
        }
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The underlying client, for requests the helpers do not cover.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The URL of `path` (a path with its query string) on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The server's `/metrics`, in the Prometheus text format.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of one series in `/metrics`, named as it is printed
    /// (`opendata_pool_admitted_total{pool="log"}`); `None` if it is absent.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        metric_value(&self.metrics().await, series)
    }

    /// Sends `method` to `path` with an optional JSON body; returns the status and the
    /// answer parsed as JSON (a test fails if it is not JSON).
    pub async fn json(&self, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        (status, v)
    }

    /// `GET path`, answered in JSON.
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        self.json(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body, answered in JSON.
    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        self.json(Method::POST, path, Some(body)).await
    }

    /// `POST path` with a form-encoded body, answered in JSON.
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        (status, v)
    }

    /// `POST path` with raw bytes and the given headers; returns the status and the raw
    /// answer, or the transport error (a server may answer a refused body before reading
    /// all of it and close the connection).
    pub async fn post_bytes(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(u16, bytes::Bytes), reqwest::Error> {
        let mut req = self.http.post(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.body(body).send().await?;
        let status = resp.status().as_u16();
        Ok((status, resp.bytes().await?))
    }

    /// Remote-writes a snappy-compressed protobuf body with `content_type`; returns the
    /// status and the answer's text (status 0 and the error when the transport failed).
    pub async fn remote_write(&self, body: Vec<u8>, content_type: &str) -> (u16, String) {
        let headers = [
            ("content-type", content_type),
            ("content-encoding", "snappy"),
            ("x-prometheus-remote-write-version", "0.1.0"),
        ];
        match self.post_bytes("/api/v1/write", &headers, body).await {
            Ok((status, bytes)) => (status, String::from_utf8_lossy(&bytes).into_owned()),
            Err(e) => (0, e.to_string()),
        }
    }
}

/// The value of `series` (a name with its labels, as printed) in Prometheus text `text`.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}
