//! The id of the request being handled: taken from a plain `X-Request-Id` header or made up,
//! kept in a task-local for the duration of the request so that logs and the error envelope can
//! name it without passing it around.

use axum::extract::Request;
use std::future::Future;

tokio::task_local! {
    static REQUEST_ID: String;
}

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of the request being handled, or an empty string outside a request.
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// Runs `handling` with `id` as the current request id.
pub async fn scope<F: Future>(id: String, handling: F) -> F::Output {
    REQUEST_ID.scope(id, handling).await
}

/// A client-supplied request id is kept only if it is short and plain.
pub fn incoming_request_id(req: &Request) -> Option<String> {
    let raw = req.headers().get(REQUEST_ID_HEADER)?.to_str().ok()?;
    plain_request_id(raw).then(|| raw.to_owned())
}

/// Whether `id` may name a request: 1 to 64 letters, digits and `-_.=` (API Gateway's ids end
/// in `=`).
pub fn plain_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='))
}
