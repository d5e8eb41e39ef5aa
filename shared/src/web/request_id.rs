//! The id of the request being handled: taken from a plain `X-Request-Id` header or made up,
//! kept in a task-local for the duration of the request so that logs and the error envelope can
//! name it without passing it around.

use axum::extract::Request;
use http::{HeaderName, HeaderValue};
use std::future::Future;

tokio::task_local! {
    static REQUEST_ID: HeaderValue;
}

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// [`REQUEST_ID_HEADER`] as a header name.
pub const HEADER: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);

/// The id of the request being handled, or an empty string outside a request.
pub fn current_request_id() -> String {
    REQUEST_ID
        .try_with(|id| as_text(id).to_owned())
        .unwrap_or_default()
}

/// Runs `handling` with `id` as the current request id.
pub async fn scope<F: Future>(id: HeaderValue, handling: F) -> F::Output {
    REQUEST_ID.scope(id, handling).await
}

/// A request id as text (every id is plain ASCII: [`plain_request_id`] or a UUID).
pub fn as_text(id: &HeaderValue) -> &str {
    id.to_str().unwrap_or_default()
}

/// A new request id: a random UUID.
pub fn new_request_id() -> HeaderValue {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("unnamed"))
}

/// A client-supplied request id is kept only if it is short and plain.
pub fn incoming_request_id(req: &Request) -> Option<HeaderValue> {
    let value = req.headers().get(REQUEST_ID_HEADER)?;
    plain_request_id(value.to_str().ok()?).then(|| value.clone())
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
