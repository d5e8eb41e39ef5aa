//! Answers that reach the client whole. API Gateway buffers a function's answer, so an event
//! stream asked through it would arrive only when it ends. The Lambda adapter marks such
//! requests [`Buffered`]; a stream route asked on one answers [`redirect`]: `307 Temporary
//! Redirect` to the same stream on the streaming URL (`STATUS_STREAM_BASE_URL`, the status
//! function's URL), which an `EventSource` follows.

use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, LOCATION};
use axum::response::{IntoResponse, Response};

/// Marks a request whose answer is buffered whole before the client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffered;

/// `307` to `path` on `base` with the query parameters of `query` that have a value. The path
/// and values come from a parsed request, so the `Location` is always a valid header value.
pub fn redirect(base: &str, path: &str, query: &[(&str, Option<&str>)]) -> Response {
    let present: Vec<(&str, &str)> = query
        .iter()
        .filter_map(|(name, value)| value.map(|v| (*name, v)))
        .collect();
    let query = serde_urlencoded::to_string(&present).unwrap_or_default();
    let target = if query.is_empty() {
        format!("{base}{path}")
    } else {
        format!("{base}{path}?{query}")
    };
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(LOCATION, target), (CACHE_CONTROL, "no-store".to_owned())],
    )
        .into_response()
}
