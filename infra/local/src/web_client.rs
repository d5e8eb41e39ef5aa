//! The web client, served by the local server from files embedded in the binary (no build
//! step, no CDN): `GET /` answers browsers (`Accept: text/html`) with the page and everyone else
//! with the API's banner; `/web/...` are its script, style and the vendored three.js and
//! openapi-fetch (the client the script calls the API through).

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The page's own policy: scripts and styles from this origin; fetches and images from it, from
/// `storage` (the origin signed storage URLs name, which a browser may reach under another
/// name, `localhost` for `127.0.0.1`) and the blob: URLs the glTF loader makes of textures.
fn page_policy(storage: &str) -> String {
    format!(
        "default-src 'self'; img-src 'self' data: blob: {storage}; connect-src 'self' blob: {storage}; \
         style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )
}

/// The origin (`scheme://host[:port]`) of a base URL, if it is a plain one.
fn origin_of(base_url: &str) -> Option<&str> {
    let rest = base_url
        .strip_prefix("http://")
        .or_else(|| base_url.strip_prefix("https://"))?;
    let end = base_url.len() - rest.len() + rest.find('/').unwrap_or(rest.len());
    let origin = &base_url[..end];
    origin
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b":/.-[]".contains(&b))
        .then_some(origin)
}

/// The policy header for a server whose signed URLs start with `base_url`.
pub fn policy(base_url: &str) -> HeaderValue {
    HeaderValue::from_str(&page_policy(origin_of(base_url).unwrap_or("")))
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"))
}

/// (path under `/web/`, content type, bytes).
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../web/style.css"),
    ),
    (
        "vendor/three/three.module.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/vendor/three/three.module.min.js"),
    ),
    (
        "vendor/three/examples/jsm/loaders/GLTFLoader.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/vendor/three/examples/jsm/loaders/GLTFLoader.js"),
    ),
    (
        "vendor/three/examples/jsm/controls/OrbitControls.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/vendor/three/examples/jsm/controls/OrbitControls.js"),
    ),
    (
        "vendor/three/examples/jsm/utils/BufferGeometryUtils.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/vendor/three/examples/jsm/utils/BufferGeometryUtils.js"),
    ),
    (
        "vendor/three/LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../web/vendor/three/LICENSE"),
    ),
    (
        "vendor/openapi-fetch/index.mjs",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/vendor/openapi-fetch/index.mjs"),
    ),
    (
        "vendor/openapi-fetch/LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../web/vendor/openapi-fetch/LICENSE"),
    ),
];

const INDEX: &[u8] = include_bytes!("../web/index.html");

fn file(content_type: &'static str, bytes: &'static [u8], policy: HeaderValue) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_SECURITY_POLICY, policy),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        bytes,
    )
        .into_response()
}

async fn asset(State(policy): State<HeaderValue>, Path(path): Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == path) {
        Some((_, content_type, bytes)) => file(content_type, bytes, policy),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The assets under `/web/`.
pub fn router(policy: HeaderValue) -> Router {
    Router::new()
        .route("/web/{*path}", get(asset))
        .with_state(policy)
}

/// In front of the API: `GET /` from a browser is the page.
pub async fn page_for_browsers(
    State(policy): State<HeaderValue>,
    req: Request,
    next: Next,
) -> Response {
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if req.uri().path() == "/" && req.method() == axum::http::Method::GET && wants_html {
        return file("text/html; charset=utf-8", INDEX, policy);
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_may_reach_the_origin_signed_urls_name() {
        assert_eq!(
            origin_of("http://127.0.0.1:8000"),
            Some("http://127.0.0.1:8000")
        );
        assert_eq!(
            origin_of("https://files.example/base"),
            Some("https://files.example")
        );
        assert_eq!(origin_of("ftp://x"), None);
        assert_eq!(origin_of("http://x; script-src *"), None);
        let value = policy("http://127.0.0.1:8000");
        let text = value.to_str().unwrap();
        assert!(
            text.contains("connect-src 'self' blob: http://127.0.0.1:8000;"),
            "{text}"
        );
    }

    #[test]
    fn every_file_the_page_loads_is_served() {
        let page = String::from_utf8_lossy(INDEX);
        let app = String::from_utf8_lossy(FILES[0].2);
        for reference in page
            .split("\"/web/")
            .skip(1)
            .chain(app.split("from './").skip(1))
        {
            let path = reference.split(['"', '\'']).next().unwrap();
            assert!(
                FILES.iter().any(|(name, _, _)| *name == path),
                "{path} is not served"
            );
        }
    }
}
