//! The web console: a hand-written, dependency-free front end for all three databases,
//! compiled into the binary and served at `/` on the main port.
//!
//! | path | what |
//! |---|---|
//! | `/` | `index.html`, the page shell; the views are hash routes (`#/timeseries?...`) |
//! | `/console/app.js` | the whole application |
//! | `/console/style.css` | its style sheet |
//! | `/console/favicon.svg` | the icon |
//!
//! The console talks to the server only through the public HTTP APIs (the same ones
//! `curl` and the client libraries use), so every view is also an example of them. The
//! files hold no data, so they are served without a token; the console asks for one
//! when an API answers 401 and sends it as `Authorization: Bearer`.
//!
//! Responses carry a strict `Content-Security-Policy` (scripts, styles and connections
//! from this origin only, no framing), `X-Content-Type-Options: nosniff`, and an `ETag`
//! so a browser revalidates instead of downloading again.

use std::sync::LazyLock;

use axum::Router;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// One compiled-in file.
pub struct Asset {
    /// The URL path it is served at.
    pub path: &'static str,
    /// Its media type.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static str,
}

/// Every file of the console.
pub const ASSETS: [Asset; 4] = [
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("assets/index.html"),
    },
    Asset {
        path: "/console/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/app.js"),
    },
    Asset {
        path: "/console/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("assets/style.css"),
    },
    Asset {
        path: "/console/favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("assets/favicon.svg"),
    },
];

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The `ETag` of every asset: a hash of the build's bytes.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let mut hasher = std::hash::DefaultHasher::new();
            std::hash::Hasher::write(&mut hasher, a.body.as_bytes());
            let h = std::hash::Hasher::finish(&hasher);
            HeaderValue::from_str(&format!("\"{h:016x}\"")).expect("hex is a valid header")
        })
        .collect()
});

/// Whether `path` is one of the console's files (served without a token).
pub fn is_asset(path: &str) -> bool {
    ASSETS.iter().any(|a| a.path == path)
}

/// Total bytes of the console's files.
pub fn assets_bytes() -> usize {
    ASSETS.iter().map(|a| a.body.len()).sum()
}

fn serve(index: usize, headers: &HeaderMap) -> Response {
    let asset = &ASSETS[index];
    let etag = ETAGS[index].clone();
    let fresh = headers.get(IF_NONE_MATCH).is_some_and(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii() == etag.as_bytes())
    });
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.body.into_response()
    };
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    h.insert(ETAG, etag);
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// The console's routes.
pub fn router() -> Router {
    let mut router = Router::new();
    for (i, asset) in ASSETS.iter().enumerate() {
        router = router.route(
            asset.path,
            get(move |headers: HeaderMap| async move { serve(i, &headers) }),
        );
    }
    router
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn should_serve_every_asset_with_its_type_and_revalidate_by_etag() {
        let app = router();
        for asset in &ASSETS {
            let resp = app
                .clone()
                .oneshot(Request::get(asset.path).body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{}", asset.path);
            assert_eq!(resp.headers()[CONTENT_TYPE], asset.content_type);
            assert!(
                resp.headers()[CONTENT_SECURITY_POLICY]
                    .to_str()
                    .unwrap()
                    .contains("script-src 'self'")
            );
            let etag = resp.headers()[ETAG].clone();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body.len(), asset.body.len());
            let again = app
                .clone()
                .oneshot(
                    Request::get(asset.path)
                        .header(IF_NONE_MATCH, etag)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{}", asset.path);
        }
    }

    #[test]
    fn should_stay_small_and_self_contained() {
        assert!(assets_bytes() < 300 * 1024, "{} bytes", assets_bytes());
        for asset in &ASSETS {
            // Nothing is fetched from anywhere but this server.
            for needle in ["http://", "https://", "//cdn", "@import"] {
                let hits: Vec<&str> = asset
                    .body
                    .lines()
                    .filter(|l| l.contains(needle) && !l.contains("www.w3.org/2000/svg"))
                    .collect();
                assert!(hits.is_empty(), "{} refers outside: {hits:?}", asset.path);
            }
        }
    }

    #[test]
    fn should_know_its_own_paths() {
        assert!(is_asset("/"));
        assert!(is_asset("/console/app.js"));
        assert!(!is_asset("/console/../metrics"));
        assert!(!is_asset("/api/v1/query"));
    }
}
