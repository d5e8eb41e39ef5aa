//! The status function: where a task (a job, or a batch of jobs) stands, as one JSON answer or
//! as a Server-Sent Events stream with one frame per change, heartbeats, and an end after the
//! terminal event (or, when the server stops, a `shutdown` frame). Each answer is a `task_snapshot` of `image2model_shared::app::task_status`;
//! the stream polls it, so it works the same under Lambda response streaming as in the local
//! server.

mod view;

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event, Sse};
use futures_util::stream::{self, Stream};
use image2model_shared::AppContext;
use image2model_shared::app::AppError;
use image2model_shared::app::task_status::{Snapshot, task_snapshot};
use image2model_shared::domain::JobId;
use image2model_shared::web::extract::{ApiQuery, JobIdParam};
use image2model_shared::web::openapi::ApiErrors;
use image2model_shared::web::{ApiError, Caller};
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;
use tokio::time::Instant;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use view::EventName;

pub fn router() -> OpenApiRouter<AppContext> {
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(sse))
        .routes(routes!(stream))
}

/// One Server-Sent Event of a task's stream.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Describes the frames `frame` writes, for the document.
struct StreamEvent {
    event: EventName,
    /// JSON: the task's status for `task_*` events (`{task_id, status, progress, message,
    /// current, total, total_files, completed_files, failed_files, result, error, error_code,
    /// timestamp}`, `summary` on completion), `{task_id, timestamp, message?}` for the others;
    /// `timestamp` in epoch milliseconds.
    #[schema(content_media_type = "application/json")]
    data: String,
}

/// Where a job or batch stands.
#[utoipa::path(
    get, path = "/api/v1/status/tasks/{task_id}/status", tag = "status", operation_id = "task_status",
    params(("task_id" = uuid::Uuid, Path, description = "A job's or a batch's id")),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Object, description = "`{task_id, status, progress, message, result, error}` (+ `jobs` for a batch)"), ApiErrors),
)]
async fn status(
    State(ctx): State<AppContext>,
    caller: Caller,
    JobIdParam(id): JobIdParam,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(view::to_json(
        &task_snapshot(&ctx, &caller, id).await?,
    )))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct StreamParams {
    /// Longest the stream stays open, in seconds (at most `SSE_MAX_SECONDS`, also when larger).
    #[param(exclusive_minimum = 0)]
    timeout: Option<f64>,
}

/// A job's or batch's changes as Server-Sent Events: `task_queued`, `task_progress`,
/// `task_completed`, `task_failed`, `heartbeat`, `timeout`, `shutdown`; the stream ends after the
/// terminal event.
#[utoipa::path(
    get, path = "/api/v1/status/tasks/{task_id}/sse", tag = "status", operation_id = "task_events",
    params(("task_id" = uuid::Uuid, Path, description = "A job's or a batch's id"), StreamParams),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = StreamEvent, content_type = "text/event-stream", description = "The events, each `data` JSON"), ApiErrors),
)]
async fn sse(
    State(ctx): State<AppContext>,
    caller: Caller,
    id: JobIdParam,
    params: ApiQuery<StreamParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>> + use<>>, ApiError> {
    events(ctx, caller, id, params).await
}

/// The same events (the old API's path).
#[utoipa::path(
    get, path = "/api/v1/status/tasks/{task_id}/stream", tag = "status", operation_id = "task_stream",
    params(("task_id" = uuid::Uuid, Path, description = "A job's or a batch's id"), StreamParams),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = StreamEvent, content_type = "text/event-stream", description = "The events, each `data` JSON"), ApiErrors),
)]
async fn stream(
    State(ctx): State<AppContext>,
    caller: Caller,
    id: JobIdParam,
    params: ApiQuery<StreamParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>> + use<>>, ApiError> {
    events(ctx, caller, id, params).await
}

struct StreamState {
    ctx: AppContext,
    caller: Caller,
    id: JobId,
    last: Option<Snapshot>,
    last_frame: Instant,
    deadline: Instant,
    done: bool,
}

async fn events(
    ctx: AppContext,
    caller: Caller,
    JobIdParam(id): JobIdParam,
    ApiQuery(params): ApiQuery<StreamParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>> + use<>>, ApiError> {
    let max = ctx.config.sse_max_duration;
    let timeout = match params.timeout {
        None => max,
        // Anything longer than the longest stream (however long) is the longest stream.
        Some(secs) if secs > 0.0 && secs.is_finite() => {
            Duration::try_from_secs_f64(secs).map_or(max, |d| d.min(max))
        }
        Some(_) => {
            return Err(ApiError::validation(
                "timeout must be a positive number of seconds",
                Some("timeout"),
            ));
        }
    };
    // Refuse unknown or foreign ids before the stream starts.
    task_snapshot(&ctx, &caller, id).await?;
    let now = Instant::now();
    let state = StreamState {
        ctx,
        caller,
        id,
        last: None,
        last_frame: now,
        deadline: now + timeout,
        done: false,
    };
    Ok(Sse::new(stream::unfold(state, next_frame)))
}

fn frame(name: EventName, data: &serde_json::Value) -> Result<Event, Infallible> {
    Ok(Event::default().event(name.as_str()).data(data.to_string()))
}

/// Waits for the next change, heartbeat or the end of the stream.
async fn next_frame(mut s: StreamState) -> Option<(Result<Event, Infallible>, StreamState)> {
    if s.done {
        return None;
    }
    let config = s.ctx.config.clone();
    loop {
        if s.ctx.shutdown.is_triggered() {
            // The server is stopping: a last frame, and the stream ends (EventSource reconnects).
            s.done = true;
            let data = serde_json::json!({"task_id": s.id, "message": "the server is shutting down; reconnect", "timestamp": view::timestamp_ms()});
            return Some((frame(EventName::Shutdown, &data), s));
        }
        if s.last.is_some() {
            if Instant::now() >= s.deadline {
                s.done = true;
                let data = serde_json::json!({"task_id": s.id, "message": "stream timeout reached", "timestamp": view::timestamp_ms()});
                return Some((frame(EventName::Timeout, &data), s));
            }
            let pause = config
                .sse_poll_interval
                .min(s.deadline.saturating_duration_since(Instant::now()));
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = s.ctx.shutdown.triggered() => continue,
            }
        }
        match task_snapshot(&s.ctx, &s.caller, s.id).await {
            Ok(current) if s.last.as_ref().is_none_or(|last| last.changed(&current)) => {
                s.done = current.is_terminal();
                s.last_frame = Instant::now();
                let event = frame(view::event_name(&current), &view::to_event_json(&current));
                s.last = Some(current);
                return Some((event, s));
            }
            Ok(_) => {}
            Err(AppError::JobNotFound(_)) => {
                s.done = true;
                let data = serde_json::json!({"task_id": s.id, "status": "deleted", "message": "the task no longer exists", "timestamp": view::timestamp_ms()});
                return Some((frame(EventName::TaskFailed, &data), s));
            }
            Err(err) => {
                tracing::warn!(task_id = %s.id, error = %err, "status poll failed; retrying")
            }
        }
        if s.last_frame.elapsed() >= config.sse_heartbeat {
            s.last_frame = Instant::now();
            let data = serde_json::json!({"task_id": s.id, "timestamp": view::timestamp_ms()});
            return Some((frame(EventName::Heartbeat, &data), s));
        }
        if s.last.is_none() {
            // The first snapshot failed: wait a poll interval before trying again.
            tokio::time::sleep(config.sse_poll_interval).await;
        }
    }
}
