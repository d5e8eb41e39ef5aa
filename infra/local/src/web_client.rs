//! The web client, served by the local server from files embedded in the binary (no build
//! step, no CDN): `GET /` answers browsers (`Accept: text/html`) with the page and everyone else
//! with the API's banner; `/web/...` are its script, style and the vendored three.js.

use axum::Router;
use axum::extract::{Path, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The page's own policy: scripts, styles and fetches from this origin (and the blob: URLs
/// the glTF loader makes of embedded textures).
const PAGE_POLICY: &str = "default-src 'self'; img-src 'self' data: blob:; connect-src 'self' blob:; \
     style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

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
];

const INDEX: &[u8] = include_bytes!("../web/index.html");

fn file(content_type: &'static str, bytes: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(PAGE_POLICY),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        bytes,
    )
        .into_response()
}

async fn asset(Path(path): Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == path) {
        Some((_, content_type, bytes)) => file(content_type, bytes),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The assets under `/web/`.
pub fn router() -> Router {
    Router::new().route("/web/{*path}", get(asset))
}

/// In front of the API: `GET /` from a browser is the page.
pub async fn page_for_browsers(req: Request, next: Next) -> Response {
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if req.uri().path() == "/" && req.method() == axum::http::Method::GET && wants_html {
        return file("text/html; charset=utf-8", INDEX);
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

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
