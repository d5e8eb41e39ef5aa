//! HTTP routes of the admin function. Every route takes the [`Admin`] extractor: no key is 401,
//! a user key is 403.

use crate::maintenance::{MaintenanceError, cleanup, sweep};
use axum::extract::State;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::Utc;
use image2model_shared::access::any_job;
use image2model_shared::auth::Admin;
use image2model_shared::domain::FileStatus;
use image2model_shared::domain::models::{self, CATALOG};
use image2model_shared::extract::{ApiJson, ApiQuery, JobIdParam};
use image2model_shared::fal::guard;
use image2model_shared::listing::{ListParams, list_jobs};
use image2model_shared::pipeline::{UpdateError, enqueue_job, update_job};
use image2model_shared::ports::StoreError;
use image2model_shared::{ApiError, AppContext};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

pub fn router() -> Router<AppContext> {
    Router::new()
        .route("/api/v1/admin/jobs", get(all_jobs))
        .route("/api/v1/admin/jobs/{job_id}", delete(delete_job))
        .route("/api/v1/admin/jobs/{job_id}/retry", post(retry_job))
        .route("/api/v1/admin/stats", get(stats))
        .route("/api/v1/admin/cleanup", post(run_cleanup))
        .route("/api/v1/admin/sweep", post(run_sweep))
        .route("/api/v1/admin/dead-letters", get(dead_letters))
}

impl From<MaintenanceError> for AdminError {
    fn from(err: MaintenanceError) -> Self {
        Self(ApiError::Unavailable {
            component: "maintenance",
            reason: err.to_string(),
        })
    }
}

/// Lets maintenance errors use `?` in handlers while responses stay [`ApiError`]s.
struct AdminError(ApiError);

impl From<ApiError> for AdminError {
    fn from(err: ApiError) -> Self {
        Self(err)
    }
}

impl From<StoreError> for AdminError {
    fn from(err: StoreError) -> Self {
        Self(err.into())
    }
}

impl axum::response::IntoResponse for AdminError {
    fn into_response(self) -> axum::response::Response {
        self.0.into_response()
    }
}

async fn all_jobs(
    State(ctx): State<AppContext>,
    _: Admin,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<Value>, ApiError> {
    list_jobs(&ctx, params, None).await.map(Json)
}

async fn stats(State(ctx): State<AppContext>, _: Admin) -> Result<Json<Value>, ApiError> {
    let counts = ctx.store.count_jobs_by_status().await?;
    let depth = ctx.queue.depth().await?;
    let total: u64 = counts.values().sum();
    let by_status: serde_json::Map<String, Value> = counts
        .iter()
        .map(|(s, n)| (s.as_str().to_owned(), json!(n)))
        .collect();
    let available: Vec<&str> = CATALOG
        .iter()
        .filter(|m| models::is_available(m, ctx.config.fal_configured()))
        .map(|m| m.id)
        .collect();
    let now = Utc::now();
    let fal = image2model_shared::fal::overview(&ctx, now).await?;
    let spend = guard::daily_spend(ctx.store.as_ref(), 7, now).await?;
    Ok(Json(json!({
        "jobs": { "total": total, "by_status": by_status },
        "queue": depth,
        "fal": fal,
        "spend": {
            "today_usd": spend.first().map_or(0.0, |d| d.estimated_usd),
            "daily": spend,
            "prices_usd": CATALOG.iter().map(|m| (m.id, m.price_per_run_usd)).collect::<std::collections::BTreeMap<_, _>>(),
        },
        "models_available": available,
        "limits": {
            "max_upload_bytes": ctx.config.max_upload_bytes,
            "max_pixels": ctx.config.max_pixels,
            "max_files": ctx.config.max_files,
            "rate_limit_per_minute": ctx.config.rate_limit_per_minute,
            "job_deadline_seconds": ctx.config.job_deadline.as_secs(),
            "generation_timeout_seconds": ctx.config.fal.generation_timeout.as_secs(),
            "daily_job_quota": ctx.config.fal.daily_quota,
        },
        "timestamp": Utc::now(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CleanupRequest {
    /// Age in hours beyond which things are deleted; the retention period by default.
    hours: Option<f64>,
    #[serde(default)]
    dry_run: bool,
}

async fn run_cleanup(
    State(ctx): State<AppContext>,
    _: Admin,
    ApiJson(request): ApiJson<CleanupRequest>,
) -> Result<Json<Value>, AdminError> {
    let older_than = match request.hours {
        None => ctx.config.retention,
        Some(h) if (0.0..=24.0 * 3650.0).contains(&h) => Duration::from_secs_f64(h * 3600.0),
        Some(_) => {
            return Err(
                ApiError::validation("hours must be between 0 and 87600", Some("hours")).into(),
            );
        }
    };
    let report = cleanup(&ctx, older_than, request.dry_run, Utc::now()).await?;
    Ok(Json(json!(report)))
}

async fn run_sweep(State(ctx): State<AppContext>, _: Admin) -> Result<Json<Value>, AdminError> {
    Ok(Json(json!(sweep(&ctx, Utc::now()).await?)))
}

async fn retry_job(
    State(ctx): State<AppContext>,
    _: Admin,
    JobIdParam(id): JobIdParam,
) -> Result<Json<Value>, ApiError> {
    let job = any_job(&ctx, id).await?;
    let reopened = job
        .reopen(Utc::now())
        .map_err(|_| ApiError::JobStateConflict {
            job_id: id.to_string(),
            status: job.status.as_str(),
            action: "retried",
        })?;
    ctx.store.reopen_job(&reopened).await?;
    let file_ready = ctx
        .store
        .get_file(job.file_id)
        .await?
        .is_some_and(|f| f.status == FileStatus::Ready);
    if file_ready {
        enqueue_job(ctx.queue.as_ref(), id).await?;
    }
    tracing::info!(job_id = %id, "job retried by an administrator");
    Ok(Json(
        json!({ "job_id": id, "status": reopened.status, "file_ready": file_ready }),
    ))
}

async fn delete_job(
    State(ctx): State<AppContext>,
    _: Admin,
    JobIdParam(id): JobIdParam,
) -> Result<Json<Value>, ApiError> {
    let job = any_job(&ctx, id).await?;
    if !job.status.is_terminal() {
        // Cancel first so a running worker discards its result instead of completing.
        let now = Utc::now();
        match update_job(ctx.store.as_ref(), id, |j| {
            if j.status.is_terminal() {
                Ok(None)
            } else {
                j.cancel(now).map(Some)
            }
        })
        .await
        {
            Ok(_) | Err(UpdateError::NotFound) => {}
            Err(UpdateError::Store(e)) => return Err(e.into()),
            Err(_) => return Err(ApiError::Conflict),
        }
    }
    let settled = ctx.store.get_job(id).await?.unwrap_or(job);
    if let Some(result) = &settled.result {
        ctx.storage.delete(&result.object_key).await?;
    }
    ctx.store.delete_job(id).await?;
    tracing::info!(job_id = %id, "job deleted by an administrator");
    Ok(Json(
        json!({ "job_id": id, "deleted": true, "status_before": settled.status }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadLetterParams {
    limit: Option<usize>,
}

async fn dead_letters(
    State(ctx): State<AppContext>,
    _: Admin,
    ApiQuery(params): ApiQuery<DeadLetterParams>,
) -> Result<Json<Value>, ApiError> {
    let limit = params.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::validation(
            "limit must be between 1 and 500",
            Some("limit"),
        ));
    }
    let letters = ctx.queue.dead_letters(limit).await?;
    Ok(Json(
        json!({ "count": letters.len(), "dead_letters": letters }),
    ))
}
