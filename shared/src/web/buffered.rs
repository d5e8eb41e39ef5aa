//! Answers that reach the client whole. API Gateway buffers a function's answer, so an event
//! stream asked through it would arrive only when it ends. The Lambda adapter marks such
//! requests [`Buffered`]; a stream route asked on one answers `307 Temporary Redirect` to the
//! same path and query on the streaming URL (`STATUS_STREAM_BASE_URL`, the status function's
//! URL), which an `EventSource` follows with its token.

use crate::context::AppContext;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, LOCATION};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Marks a request whose answer is buffered whole before the client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffered;

/// Middleware of the stream routes: a buffered request is sent to the streaming URL, when there
/// is one (without, the stream is served and arrives whole at its end).
pub async fn redirect_streams(State(ctx): State<AppContext>, req: Request, next: Next) -> Response {
    let streams = ctx.config.status.status_stream_base_url.as_deref();
    match (req.extensions().get::<Buffered>(), streams) {
        (Some(Buffered), Some(base)) => {
            let target = format!(
                "{base}{}",
                req.uri().path_and_query().map_or("", |p| p.as_str())
            );
            (
                StatusCode::TEMPORARY_REDIRECT,
                [(LOCATION, target), (CACHE_CONTROL, "no-store".to_owned())],
            )
                .into_response()
        }
        _ => next.run(req).await,
    }
}
