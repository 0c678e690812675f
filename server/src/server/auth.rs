//! Bearer-token authentication with scopes per database.
//!
//! With no tokens configured every request is allowed. With tokens, every request but
//! `/-/healthy`, `/-/ready` and the console's static files (`/`, `/console/...`; they hold
//! no data, and the console asks for a token when the APIs answer 401) needs one, as `Authorization: Bearer <token>` (or HTTP
//! basic auth with the token as the password, for clients that only do basic auth), and
//! the token needs the scope of what the request does:
//!
//! | request | scope |
//! |---|---|
//! | log: `POST /api/v1/log/append` | `log:write` |
//! | log: every other route | `log:read` |
//! | time series: `POST /api/v1/write` | `timeseries:write` |
//! | time series: every other `/api/v1/...` route (queries, series, labels, metadata, status) | `timeseries:read` |
//! | vector: upsert, patch, delete | `vector:write` |
//! | vector: create or drop a collection | `vector:admin` |
//! | vector: list, describe, get, search | `vector:read` |
//! | `/metrics`, `/api/v1/server/status` and unknown paths | any valid token |
//!
//! `write` includes `read`, `admin` includes both, and `*` stands for every database.

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use crate::api::ApiError;
use crate::config::AuthConfig;

/// What a request does to a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Reads.
    Read,
    /// Writes data.
    Write,
    /// Creates or drops collections.
    Admin,
}

impl Access {
    /// The scope suffix: `read`, `write` or `admin`.
    pub fn name(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Admin => "admin",
        }
    }
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Nothing: health and readiness.
    Nothing,
    /// Any valid token.
    AnyToken,
    /// A scope on a database.
    Scope(&'static str, Access),
}

/// What a request with `method` on `path` needs.
pub fn needs(method: &Method, path: &str) -> Needs {
    if path == "/-/healthy" || path == "/-/ready" || crate::console::is_asset(path) {
        return Needs::Nothing;
    }
    if path == "/api/v1/server/status" {
        return Needs::AnyToken;
    }
    if let Some(rest) = path.strip_prefix("/api/v1/log/") {
        let access = if rest == "append"
            || (rest.starts_with("groups/") && (method == Method::PUT || method == Method::DELETE))
        {
            Access::Write
        } else {
            Access::Read
        };
        return Needs::Scope("log", access);
    }
    if let Some(rest) = path.strip_prefix("/api/v1/vector/collections") {
        let access = if rest.is_empty() || rest == "/" {
            if method == Method::POST {
                Access::Admin
            } else {
                Access::Read
            }
        } else if method == Method::DELETE {
            Access::Admin
        } else if method == Method::POST
            && (rest.ends_with("/upsert") || rest.ends_with("/patch") || rest.ends_with("/delete"))
        {
            Access::Write
        } else {
            Access::Read
        };
        return Needs::Scope("vector", access);
    }
    if path == "/api/v1/write" {
        return Needs::Scope("timeseries", Access::Write);
    }
    if path.starts_with("/api/v1/") && !path.starts_with("/api/v1/vector") {
        return Needs::Scope("timeseries", Access::Read);
    }
    Needs::AnyToken
}

/// One parsed scope.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Scope {
    /// A database, or `None` for `*`.
    database: Option<String>,
    access: Access,
}

impl Scope {
    fn parse(s: &str) -> Result<Self, String> {
        let (db, access) = s
            .split_once(':')
            .ok_or_else(|| format!("scope {s:?}: expected <database>:<read|write|admin>"))?;
        let access = match access {
            "read" => Access::Read,
            "write" => Access::Write,
            "admin" => Access::Admin,
            other => return Err(format!("scope {s:?}: unknown access {other:?}")),
        };
        let database = match db {
            "*" => None,
            "log" | "timeseries" | "vector" => Some(db.to_string()),
            other => return Err(format!("scope {s:?}: unknown database {other:?}")),
        };
        Ok(Self { database, access })
    }

    fn allows(&self, database: &str, access: Access) -> bool {
        self.database.as_deref().is_none_or(|d| d == database) && self.access >= access
    }
}

/// A configured token.
#[derive(Debug, Clone)]
struct Token {
    name: String,
    secret: Vec<u8>,
    scopes: Vec<Scope>,
}

/// What one token may do, for protocols that authenticate once per connection (the
/// PostgreSQL wire protocol, where the token is the password).
#[derive(Debug, Clone)]
pub struct Grant {
    /// The token's name (never its secret).
    pub name: String,
    scopes: Vec<Scope>,
}

impl Grant {
    /// Everything allowed: what a connection gets when no token is configured.
    pub fn anonymous() -> Self {
        Self {
            name: "anonymous".into(),
            scopes: vec![Scope {
                database: None,
                access: Access::Admin,
            }],
        }
    }

    /// True when the token has `access` (or more) on `database`.
    pub fn allows(&self, database: &str, access: Access) -> bool {
        self.scopes.iter().any(|s| s.allows(database, access))
    }
}

/// The configured tokens.
#[derive(Debug, Clone, Default)]
pub struct Tokens(Vec<Token>);

/// Compares without stopping at the first difference, so the time taken does not tell
/// how much of a guess was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Tokens {
    /// Checks and keeps the tokens of `config`.
    pub fn new(config: &AuthConfig) -> Result<Self, String> {
        let mut tokens = Vec::new();
        for t in &config.tokens {
            if t.token.len() < 16 {
                return Err(format!(
                    "auth token {:?}: a token needs at least 16 characters",
                    t.name
                ));
            }
            if t.scopes.is_empty() {
                return Err(format!("auth token {:?} has no scopes", t.name));
            }
            let scopes = t
                .scopes
                .iter()
                .map(|s| Scope::parse(s).map_err(|e| format!("auth token {:?}: {e}", t.name)))
                .collect::<Result<_, _>>()?;
            tokens.push(Token {
                name: t.name.clone(),
                secret: t.token.as_bytes().to_vec(),
                scopes,
            });
        }
        Ok(Self(tokens))
    }

    /// True when no token is configured: every request is allowed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn find(&self, secret: &[u8]) -> Option<&Token> {
        let mut found = None;
        for t in &self.0 {
            if same(&t.secret, secret) {
                found = Some(t);
            }
        }
        found
    }

    /// The grant of the token whose secret is `secret`, if any.
    pub fn grant(&self, secret: &[u8]) -> Option<Grant> {
        self.find(secret).map(|t| Grant {
            name: t.name.clone(),
            scopes: t.scopes.clone(),
        })
    }

    /// Decides a request: `Ok` or the error to answer with.
    pub fn authorize(
        &self,
        method: &Method,
        path: &str,
        authorization: Option<&HeaderValue>,
    ) -> Result<(), ApiError> {
        if self.is_empty() {
            return Ok(());
        }
        let needed = needs(method, path);
        if needed == Needs::Nothing {
            return Ok(());
        }
        let secret = authorization
            .and_then(|v| v.to_str().ok())
            .and_then(secret_of)
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "this server needs a token: send Authorization: Bearer <token>",
                )
            })?;
        let token = self
            .find(&secret)
            .ok_or_else(|| ApiError::unauthorized("the token is not valid"))?;
        match needed {
            Needs::Scope(db, access) if !token.scopes.iter().any(|s| s.allows(db, access)) => {
                Err(ApiError::forbidden(format!(
                    "token {:?} does not have the {db}:{} scope this request needs",
                    token.name,
                    access.name()
                )))
            }
            _ => Ok(()),
        }
    }
}

/// The secret of an `Authorization` header: a bearer token, or a basic-auth password.
fn secret_of(header: &str) -> Option<Vec<u8>> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.as_bytes().to_vec());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let colon = decoded.iter().position(|b| *b == b':')?;
        return Some(decoded[colon + 1..].to_vec());
    }
    None
}

/// The middleware: answers 401 or 403 before any route runs.
pub(crate) async fn authenticate(
    State(tokens): State<std::sync::Arc<Tokens>>,
    request: Request,
    next: Next,
) -> Response {
    match tokens.authorize(
        request.method(),
        request.uri().path(),
        request.headers().get(AUTHORIZATION),
    ) {
        Ok(()) => next.run(request).await,
        Err(e) => {
            let unauthorized = e.status.as_u16() == 401;
            let mut response = e.into_response();
            if unauthorized {
                response.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"opendata\""),
                );
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TokenConfig;

    fn tokens() -> Tokens {
        Tokens::new(&AuthConfig {
            tokens: vec![
                TokenConfig {
                    name: "reader".into(),
                    token: "r".repeat(20),
                    scopes: vec!["*:read".into()],
                },
                TokenConfig {
                    name: "ingest".into(),
                    token: "w".repeat(20),
                    scopes: vec!["timeseries:write".into(), "log:write".into()],
                },
                TokenConfig {
                    name: "admin".into(),
                    token: "a".repeat(20),
                    scopes: vec!["*:admin".into()],
                },
            ],
        })
        .unwrap()
    }

    fn bearer(t: &str) -> HeaderValue {
        HeaderValue::from_str(&format!("Bearer {t}")).unwrap()
    }

    #[test]
    fn should_serve_the_console_files_without_a_token_but_not_the_status() {
        assert_eq!(needs(&Method::GET, "/"), Needs::Nothing);
        assert_eq!(needs(&Method::GET, "/console/app.js"), Needs::Nothing);
        assert_eq!(needs(&Method::GET, "/console/secret"), Needs::AnyToken);
        assert_eq!(
            needs(&Method::GET, "/api/v1/server/status"),
            Needs::AnyToken
        );
        let t = tokens();
        assert_eq!(
            t.authorize(&Method::GET, "/api/v1/server/status", None)
                .unwrap_err()
                .status
                .as_u16(),
            401
        );
        assert!(t.authorize(&Method::GET, "/", None).is_ok());
    }

    #[test]
    fn should_need_the_right_scope() {
        let t = tokens();
        let (r, w, a) = ("r".repeat(20), "w".repeat(20), "a".repeat(20));
        let ok = |m: Method, p: &str, tok: &str| t.authorize(&m, p, Some(&bearer(tok)));
        assert!(ok(Method::GET, "/api/v1/query", &r).is_ok());
        assert!(ok(Method::POST, "/api/v1/query", &r).is_ok());
        assert_eq!(
            ok(Method::POST, "/api/v1/write", &r)
                .unwrap_err()
                .status
                .as_u16(),
            403
        );
        assert!(ok(Method::POST, "/api/v1/write", &w).is_ok());
        assert!(ok(Method::POST, "/api/v1/log/append", &w).is_ok());
        assert!(
            ok(Method::GET, "/api/v1/log/scan", &w).is_ok(),
            "write includes read"
        );
        let e = ok(Method::POST, "/api/v1/vector/collections/c/upsert", &w).unwrap_err();
        assert!(e.message.contains("vector:write"), "{}", e.message);
        assert!(ok(Method::POST, "/api/v1/vector/collections/c/search", &r).is_ok());
        assert_eq!(
            ok(Method::POST, "/api/v1/vector/collections", &r)
                .unwrap_err()
                .status
                .as_u16(),
            403
        );
        assert!(ok(Method::POST, "/api/v1/vector/collections", &a).is_ok());
        assert!(ok(Method::DELETE, "/api/v1/vector/collections/c", &a).is_ok());
        assert!(ok(Method::GET, "/metrics", &r).is_ok());
        // No token, a wrong one, another scheme: 401.
        for h in [
            None,
            Some(bearer("nope")),
            Some(HeaderValue::from_static("Token x")),
        ] {
            let e = t
                .authorize(&Method::GET, "/metrics", h.as_ref())
                .unwrap_err();
            assert_eq!(e.status.as_u16(), 401);
        }
        // Health and readiness need nothing.
        assert!(t.authorize(&Method::GET, "/-/healthy", None).is_ok());
        assert!(t.authorize(&Method::GET, "/-/ready", None).is_ok());
        // Basic auth with the token as the password.
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("grafana:{r}"));
        let h = HeaderValue::from_str(&format!("Basic {basic}")).unwrap();
        assert!(
            t.authorize(&Method::GET, "/api/v1/labels", Some(&h))
                .is_ok()
        );
    }

    #[test]
    fn should_refuse_bad_token_configurations() {
        let bad = |token: &str, scope: &str| {
            Tokens::new(&AuthConfig {
                tokens: vec![TokenConfig {
                    name: "t".into(),
                    token: token.into(),
                    scopes: vec![scope.into()],
                }],
            })
            .unwrap_err()
        };
        assert!(bad("short", "log:read").contains("16 characters"));
        assert!(bad(&"x".repeat(16), "logs:read").contains("unknown database"));
        assert!(bad(&"x".repeat(16), "log:delete").contains("unknown access"));
        assert!(bad(&"x".repeat(16), "log").contains("expected"));
        assert!(Tokens::new(&AuthConfig::default()).unwrap().is_empty());
    }
}
