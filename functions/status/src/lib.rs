//! The status function: where a task (a job, or a batch of jobs) stands, as one JSON answer or
//! as a Server-Sent Events stream with one frame per change, heartbeats, and an end after the
//! terminal event. Each answer is a `task_snapshot` of `image2model_shared::app::task_status`;
//! the stream polls it, so it works the same under Lambda response streaming as in the local
//! server.

mod view;

use axum::extract::State;
use axum::response::sse::{Event, Sse};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::stream::{self, Stream};
use image2model_shared::AppContext;
use image2model_shared::app::AppError;
use image2model_shared::app::task_status::{Snapshot, task_snapshot};
use image2model_shared::domain::JobId;
use image2model_shared::web::extract::{ApiQuery, JobIdParam};
use image2model_shared::web::{ApiError, Caller};
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;
use tokio::time::Instant;

pub fn router() -> Router<AppContext> {
    Router::new()
        .route("/api/v1/status/tasks/{task_id}/status", get(status))
        .route("/api/v1/status/tasks/{task_id}/sse", get(events))
        .route("/api/v1/status/tasks/{task_id}/stream", get(events))
}

async fn status(
    State(ctx): State<AppContext>,
    caller: Caller,
    JobIdParam(id): JobIdParam,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(view::to_json(
        &task_snapshot(&ctx, &caller, id).await?,
    )))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamParams {
    /// Longest the stream stays open, in seconds.
    timeout: Option<f64>,
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
    State(ctx): State<AppContext>,
    caller: Caller,
    JobIdParam(id): JobIdParam,
    ApiQuery(params): ApiQuery<StreamParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let max = ctx.config.sse_max_duration;
    let timeout = match params.timeout {
        None => max,
        Some(secs) if secs > 0.0 && secs.is_finite() => Duration::from_secs_f64(secs).min(max),
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

fn frame(name: &str, data: &serde_json::Value) -> Result<Event, Infallible> {
    Ok(Event::default().event(name).data(data.to_string()))
}

/// Waits for the next change, heartbeat or the end of the stream.
async fn next_frame(mut s: StreamState) -> Option<(Result<Event, Infallible>, StreamState)> {
    if s.done {
        return None;
    }
    let config = s.ctx.config.clone();
    loop {
        if s.last.is_some() {
            if Instant::now() >= s.deadline {
                s.done = true;
                let data = serde_json::json!({"task_id": s.id, "message": "stream timeout reached", "timestamp": chrono::Utc::now()});
                return Some((frame("timeout", &data), s));
            }
            tokio::time::sleep(
                config
                    .sse_poll_interval
                    .min(s.deadline.saturating_duration_since(Instant::now())),
            )
            .await;
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
                let data = serde_json::json!({"task_id": s.id, "status": "deleted", "message": "the task no longer exists", "timestamp": chrono::Utc::now()});
                return Some((frame("task_failed", &data), s));
            }
            Err(err) => {
                tracing::warn!(task_id = %s.id, error = %err, "status poll failed; retrying")
            }
        }
        if s.last_frame.elapsed() >= config.sse_heartbeat {
            s.last_frame = Instant::now();
            let data = serde_json::json!({"task_id": s.id, "timestamp": chrono::Utc::now()});
            return Some((frame("heartbeat", &data), s));
        }
        if s.last.is_none() {
            // The first snapshot failed: wait a poll interval before trying again.
            tokio::time::sleep(config.sse_poll_interval).await;
        }
    }
}
