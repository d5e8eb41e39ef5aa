//! The status function: where a task (a job, or a batch of jobs) stands, as one JSON answer or
//! as a Server-Sent Events stream with one frame per change, heartbeats, and an end after the
//! terminal event (or, when the server stops, a `shutdown` frame). Each answer is a `task_snapshot` of `image2model_shared::app::task_status`;
//! the stream polls it, so it works the same under Lambda response streaming as in the local
//! server.

mod view;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use image2model_shared::AppContext;
use image2model_shared::app::AppError;
use image2model_shared::app::task_status::{Snapshot, Viewer, task_snapshot};
use image2model_shared::domain::JobId;
use image2model_shared::web::buffered::{self, Buffered};
use image2model_shared::web::extract::{ApiQuery, JobIdParam};
use image2model_shared::web::links::{Origin, task_links, task_token};
use image2model_shared::web::openapi::ApiErrors;
use image2model_shared::web::views::SizedJson;
use image2model_shared::web::{ApiError, Caller, rate_limit};
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;
use tokio::time::Instant;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use view::{
    FailedEventData, Heartbeat, LinkedTaskStatus, StatusAnswer, StreamEnd, StreamEvent, TaskGone,
};

pub fn router(ctx: &AppContext) -> OpenApiRouter<AppContext> {
    // Requests without a credential (the public view) are rate limited per client address.
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(sse))
        .routes(routes!(stream))
        .route_layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            rate_limit::limit_keyless,
        ))
}

/// Who asks: the key's caller, else the token's holder, else (when public) anyone.
fn viewer(
    ctx: &AppContext,
    caller: Option<Caller>,
    token: Option<String>,
) -> Result<Viewer, ApiError> {
    match (caller, token) {
        (Some(caller), _) => Ok(Viewer::Caller(caller)),
        (None, Some(token)) => Ok(Viewer::Token(token)),
        (None, None) if ctx.config.status.public_task_status => Ok(Viewer::Public),
        (None, None) => Err(ApiError::Unauthorized),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct StatusParams {
    /// The signed token of `status_url`/`events_url`: opens this task without a key.
    token: Option<String>,
}

/// Where a job or batch stands.
#[utoipa::path(
    get, path = "/api/v1/status/tasks/{task_id}/status", tag = "status", operation_id = "task_status",
    params(("task_id" = uuid::Uuid, Path, description = "A job's or a batch's id"), StatusParams),
    security(("bearer" = []), ("api_key" = []), ()),
    responses((status = 200, body = StatusAnswer, description = "The owner's view (with the links, to a key's holder); without a key or token (`PUBLIC_TASK_STATUS`) the public view: no result, filenames or error text"), ApiErrors),
)]
async fn status(
    State(ctx): State<AppContext>,
    caller: Option<Caller>,
    origin: Origin,
    JobIdParam(id): JobIdParam,
    ApiQuery(params): ApiQuery<StatusParams>,
) -> Result<SizedJson<StatusAnswer>, ApiError> {
    let viewer = viewer(&ctx, caller, params.token)?;
    let snapshot = task_snapshot(&ctx, &viewer, id).await?;
    let answer = match viewer {
        Viewer::Public => StatusAnswer::Public(view::public_status(&snapshot)),
        // A token's holder already has the links: new ones would outlive the token's expiry.
        Viewer::Token(_) => StatusAnswer::Owner(Box::new(LinkedTaskStatus {
            status: view::owner_status(&snapshot),
            links: None.into(),
        })),
        Viewer::Caller(_) => StatusAnswer::Owner(Box::new(LinkedTaskStatus {
            status: view::owner_status(&snapshot),
            links: Some(task_links(&ctx, &origin, id, &snapshot.owner)).into(),
        })),
    };
    // An owner's answer with its links is about a kilobyte, a batch's more.
    Ok(SizedJson(answer, 2048))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct StreamParams {
    /// Longest the stream stays open, in seconds (at most `SSE_MAX_SECONDS`, also when larger,
    /// however it is written).
    #[param(value_type = Option<f64>, exclusive_minimum = 0)]
    timeout: Option<String>,
    /// The signed token of `events_url`: opens this task without a key.
    token: Option<String>,
}

/// A job's or batch's changes as Server-Sent Events: `task_queued`, `task_progress`,
/// `task_completed`, `task_failed`, `heartbeat`, `timeout`, `shutdown`; the stream ends after the
/// terminal event.
#[utoipa::path(
    get, path = "/api/v1/status/tasks/{task_id}/sse", tag = "status", operation_id = "task_events",
    params(("task_id" = uuid::Uuid, Path, description = "A job's or a batch's id"), StreamParams),
    security(("bearer" = []), ("api_key" = []), ()),
    responses(
        (status = 200, body = StreamEvent, content_type = "text/event-stream", description = "The events: `event:` is the `event` of `StreamEvent` and `data:` its `data` as JSON (`task_queued`, `task_progress`, `task_completed` carry `TaskEvent`, or `PublicTaskEvent` without a credential; `task_failed` also `TaskGone`; `heartbeat` carries `Heartbeat`; `timeout` and `shutdown` `StreamEnd`). Each status change has an `id:`, the task's version (send it back as `Last-Event-ID` to resume); the `task_failed` of a task deleted while followed has none"),
        (status = 204, description = "A reconnect whose `Last-Event-ID` names the task's terminal event: nothing more will come"),
        (status = 307, description = "Asked where answers are buffered (on AWS, the HTTP API's address), once the key or token and the task are checked: the same stream on the streaming URL, which `events_url` names, with the query as asked, or with a fresh `token` for a key's holder (a redirect across origins drops `Authorization`); an `EventSource` follows it", headers(("location" = String, description = "The stream on the streaming URL"))),
        ApiErrors,
    ),
)]
async fn sse(
    State(ctx): State<AppContext>,
    caller: Option<Caller>,
    asked: Asked,
    id: JobIdParam,
    params: ApiQuery<StreamParams>,
) -> Result<Response, ApiError> {
    events(ctx, caller, asked, id, params).await
}

/// The same events (the old API's path).
#[utoipa::path(
    get, path = "/api/v1/status/tasks/{task_id}/stream", tag = "status", operation_id = "task_stream",
    params(("task_id" = uuid::Uuid, Path, description = "A job's or a batch's id"), StreamParams),
    security(("bearer" = []), ("api_key" = []), ()),
    responses(
        (status = 200, body = StreamEvent, content_type = "text/event-stream", description = "The events: `event:` is the `event` of `StreamEvent` and `data:` its `data` as JSON (`task_queued`, `task_progress`, `task_completed` carry `TaskEvent`, or `PublicTaskEvent` without a credential; `task_failed` also `TaskGone`; `heartbeat` carries `Heartbeat`; `timeout` and `shutdown` `StreamEnd`). Each status change has an `id:`, the task's version (send it back as `Last-Event-ID` to resume); the `task_failed` of a task deleted while followed has none"),
        (status = 204, description = "A reconnect whose `Last-Event-ID` names the task's terminal event: nothing more will come"),
        (status = 307, description = "Asked where answers are buffered (on AWS, the HTTP API's address), once the key or token and the task are checked: the same stream on the streaming URL, which `events_url` names, with the query as asked, or with a fresh `token` for a key's holder (a redirect across origins drops `Authorization`); an `EventSource` follows it", headers(("location" = String, description = "The stream on the streaming URL"))),
        ApiErrors,
    ),
)]
async fn stream(
    State(ctx): State<AppContext>,
    caller: Option<Caller>,
    asked: Asked,
    id: JobIdParam,
    params: ApiQuery<StreamParams>,
) -> Result<Response, ApiError> {
    events(ctx, caller, asked, id, params).await
}

/// How a stream was asked for: its headers, its path, and whether its answer is buffered.
struct Asked {
    headers: HeaderMap,
    path: String,
    buffered: bool,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Asked {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self {
            headers: parts.headers.clone(),
            path: parts.uri.path().to_owned(),
            buffered: parts.extensions.get::<Buffered>().is_some(),
        })
    }
}

struct StreamState {
    ctx: AppContext,
    viewer: Viewer,
    id: JobId,
    /// The state the client last saw (a reconnect's `Last-Event-ID`, or the last frame).
    last: Option<Snapshot>,
    /// The snapshot read when the stream opened, not yet compared or sent: the first frame
    /// comes from it, without a second read.
    opening: Option<Snapshot>,
    last_frame: Instant,
    deadline: Instant,
    done: bool,
    /// No frame sent yet: the first carries the `retry:` hint.
    first: bool,
}

/// How long a browser waits before reconnecting a dropped stream.
const RETRY_HINT: Duration = Duration::from_secs(2);

/// The `Last-Event-ID` a reconnecting `EventSource` sends: the version of the last state it saw.
fn last_event_id(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

async fn events(
    ctx: AppContext,
    caller: Option<Caller>,
    asked: Asked,
    JobIdParam(id): JobIdParam,
    ApiQuery(params): ApiQuery<StreamParams>,
) -> Result<Response, ApiError> {
    let headers = &asked.headers;
    let viewer = viewer(&ctx, caller, params.token.clone())?;
    let max = ctx.config.status.sse_max_duration;
    let timeout = match &params.timeout {
        None => max,
        Some(raw) => stream_timeout(raw, max)?,
    };
    // Refuse unknown or foreign ids (and bad tokens) before the stream starts. A token is
    // checked once: the stream then follows the task as its owner would, so a token expiring
    // mid-stream costs no event (the stream's own length is bounded by `SSE_MAX_SECONDS`).
    let current = task_snapshot(&ctx, &viewer, id).await?;
    let keyed = matches!(viewer, Viewer::Caller(_));
    let viewer = match viewer {
        Viewer::Token(_) => Viewer::Caller(Caller {
            owner: current.owner.clone(),
            is_admin: false,
        }),
        other => other,
    };
    // A reconnect that already saw the current state: its terminal event means the end (204
    // tells EventSource not to reconnect again); otherwise wait for the next change.
    let seen = last_event_id(headers).filter(|seen| *seen == current.version());
    if seen.is_some() && current.is_terminal() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    // Where answers are buffered (API Gateway) the stream is on the streaming URL. A key does
    // not follow the client there (a redirect across origins drops `Authorization`; an
    // `EventSource` sends no header at all), so its holder is sent with a fresh token; a
    // token's holder keeps that token, and the public view needs none.
    if asked.buffered
        && let Some(base) = ctx.config.status.status_stream_base_url.as_deref()
    {
        let token = if keyed {
            Some(task_token(&ctx, id, &current.owner).token)
        } else {
            params.token
        };
        return Ok(buffered::redirect(
            base,
            &asked.path,
            &[
                ("token", token.as_deref()),
                ("timeout", params.timeout.as_deref()),
            ],
        ));
    }
    let now = Instant::now();
    let (last, opening) = match seen {
        Some(_) => (Some(current), None),
        None => (None, Some(current)),
    };
    let state = StreamState {
        ctx,
        viewer,
        id,
        last,
        opening,
        last_frame: now,
        deadline: now + timeout,
        done: false,
        first: true,
    };
    // Proxies (nginx) must pass frames on as they come.
    let mut response = Sse::new(stream::unfold(state, next_frame)).into_response();
    response.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    Ok(response)
}

/// The stream's length from its `timeout`: a positive decimal number of seconds, however it is
/// spelled (`30`, `30.0`, `3e1`). Anything longer than `max` is `max`, also a number too large
/// for a float (`1e400`, 400 digits); what is no such number (`inf`, `NaN`, `0`, `-1`) is
/// refused.
fn stream_timeout(raw: &str, max: Duration) -> Result<Duration, ApiError> {
    let decimal = raw.bytes().any(|b| b.is_ascii_digit())
        && raw
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    match raw.parse::<f64>() {
        Ok(secs) if decimal && secs > 0.0 => {
            Ok(Duration::try_from_secs_f64(secs).map_or(max, |d| d.min(max)))
        }
        _ => Err(ApiError::validation(
            "timeout must be a positive number of seconds",
            Some("timeout"),
        )),
    }
}

fn frame(event: &StreamEvent) -> Event {
    Event::default()
        .event(event.name().as_str())
        .data(event.data())
}

/// Sends `event` (with the `retry:` hint when it is the stream's first).
fn send(mut s: StreamState, event: Event) -> Option<(Result<Event, Infallible>, StreamState)> {
    let event = if std::mem::take(&mut s.first) {
        event.retry(RETRY_HINT)
    } else {
        event
    };
    Some((Ok(event), s))
}

/// Waits for the next change, heartbeat or the end of the stream. The deadline holds whatever
/// the store answers: a stream whose reads keep failing still ends on time.
async fn next_frame(mut s: StreamState) -> Option<(Result<Event, Infallible>, StreamState)> {
    if s.done {
        return None;
    }
    let config = s.ctx.config.clone();
    loop {
        if s.ctx.shutdown.is_triggered() {
            // The server is stopping: a last frame, and the stream ends (EventSource reconnects).
            s.done = true;
            let end = StreamEvent::Shutdown(StreamEnd {
                task_id: s.id,
                message: "the server is shutting down; reconnect",
                timestamp: view::timestamp_ms(),
            });
            return send(s, frame(&end));
        }
        // The snapshot the stream opened with comes first, however short the stream.
        let opening = s.opening.take();
        if opening.is_none() && Instant::now() >= s.deadline {
            s.done = true;
            let end = StreamEvent::Timeout(StreamEnd {
                task_id: s.id,
                message: "stream timeout reached",
                timestamp: view::timestamp_ms(),
            });
            return send(s, frame(&end));
        }
        let read = match opening {
            Some(opening) => Ok(opening),
            None => {
                let pause = config
                    .status
                    .sse_poll_interval
                    .min(s.deadline.saturating_duration_since(Instant::now()));
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = s.ctx.shutdown.triggered() => continue,
                }
                // A read that hangs is bounded by the deadline and the shutdown too.
                tokio::select! {
                    read = tokio::time::timeout_at(s.deadline, task_snapshot(&s.ctx, &s.viewer, s.id)) => match read {
                        Ok(read) => read,
                        Err(_) => continue,
                    },
                    _ = s.ctx.shutdown.triggered() => continue,
                }
            }
        };
        match read {
            Ok(current) if s.last.as_ref().is_none_or(|last| last.changed(&current)) => {
                s.done = current.is_terminal();
                s.last_frame = Instant::now();
                let event = StreamEvent::of(&current, s.viewer.is_public());
                let event = frame(&event).id(current.version().to_string());
                s.last = Some(current);
                return send(s, event);
            }
            Ok(_) => {}
            Err(AppError::JobNotFound(_)) => {
                s.done = true;
                let gone = StreamEvent::TaskFailed(FailedEventData::Gone(TaskGone {
                    task_id: s.id,
                    status: view::Gone::Deleted,
                    progress: 0,
                    message: "the task no longer exists",
                    error: "the task no longer exists",
                    error_code: "JOB_NOT_FOUND",
                    timestamp: view::timestamp_ms(),
                }));
                return send(s, frame(&gone));
            }
            Err(err) => {
                tracing::warn!(task_id = %s.id, error = %err, "status poll failed; retrying")
            }
        }
        if s.last_frame.elapsed() >= config.status.sse_heartbeat {
            s.last_frame = Instant::now();
            let beat = StreamEvent::Heartbeat(Heartbeat {
                task_id: s.id,
                timestamp: view::timestamp_ms(),
            });
            return send(s, frame(&beat));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One number is one answer, whatever its spelling: larger than the longest stream (even
    /// past what a float holds) is the longest stream; what is no positive number is refused.
    #[test]
    fn a_timeout_is_clamped_or_refused_the_same_whatever_its_spelling() {
        let max = Duration::from_secs(300);
        let huge = format!("1{}", "0".repeat(400));
        for clamped in [
            "300",
            "3e2",
            "300.0",
            "1e20",
            "1e308",
            "1e400",
            huge.as_str(),
        ] {
            assert_eq!(stream_timeout(clamped, max).unwrap(), max, "{clamped}");
        }
        for (within, secs) in [("30", 30.0), ("3e1", 30.0), ("0.5", 0.5), ("5E-1", 0.5)] {
            let got = stream_timeout(within, max).unwrap();
            assert_eq!(got, Duration::from_secs_f64(secs), "{within}");
        }
        let tiny = format!("0.{}1", "0".repeat(400));
        for refused in [
            "0", "-1", "-1e400", "0e5", "inf", "Infinity", "NaN", "", "1e", "abc", &tiny,
        ] {
            let err = stream_timeout(refused, max).unwrap_err();
            assert_eq!(err.code(), "VALIDATION_ERROR", "{refused}");
        }
    }
}

#[cfg(test)]
mod route_tests;
