//! HTTP routes of the admin function. Every route takes the [`Admin`] extractor: no key is 401,
//! a user key is 403.

use axum::extract::State;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::Utc;
use image2model_shared::AppContext;
use image2model_shared::app::cleanup::cleanup;
use image2model_shared::app::delete_job::delete_job;
use image2model_shared::app::list_jobs::{ListParams, list_jobs};
use image2model_shared::app::retry_job::retry_job;
use image2model_shared::app::stats::{fal_overview, job_counts};
use image2model_shared::app::sweep::sweep;
use image2model_shared::domain::models::{self, CATALOG};
use image2model_shared::fal::guard;
use image2model_shared::web::extract::{ApiJson, ApiQuery, JobIdParam};
use image2model_shared::web::views::job_list_json;
use image2model_shared::web::{Admin, ApiError};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

pub fn router() -> Router<AppContext> {
    Router::new()
        .route("/api/v1/admin/jobs", get(all_jobs))
        .route("/api/v1/admin/jobs/{job_id}", delete(remove_job))
        .route("/api/v1/admin/jobs/{job_id}/retry", post(retry))
        .route("/api/v1/admin/stats", get(stats))
        .route("/api/v1/admin/cleanup", post(run_cleanup))
        .route("/api/v1/admin/sweep", post(run_sweep))
        .route("/api/v1/admin/dead-letters", get(dead_letters))
}

async fn all_jobs(
    State(ctx): State<AppContext>,
    _: Admin,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let list = list_jobs(&ctx, params, None).await?;
    Ok(Json(job_list_json(&list)))
}

async fn stats(State(ctx): State<AppContext>, _: Admin) -> Result<Json<Value>, ApiError> {
    let (by_status, total) = job_counts(&ctx).await?;
    let depth = ctx.queue.depth().await?;
    let now = Utc::now();
    let fal = fal_overview(&ctx, now).await?;
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
        "models_available": models::available_ids(ctx.config.fal_configured()),
        "limits": {
            "max_upload_bytes": ctx.config.max_upload_bytes,
            "max_pixels": ctx.config.max_pixels,
            "max_files": ctx.config.max_files,
            "rate_limit_per_minute": ctx.config.rate_limit_per_minute,
            "job_deadline_seconds": ctx.config.job_deadline.as_secs(),
            "generation_timeout_seconds": ctx.config.fal.generation_timeout.as_secs(),
            "daily_job_quota": ctx.config.fal.daily_quota,
        },
        "timestamp": now,
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
) -> Result<Json<Value>, ApiError> {
    let older_than = match request.hours {
        None => ctx.config.retention,
        Some(h) if (0.0..=24.0 * 3650.0).contains(&h) => Duration::from_secs_f64(h * 3600.0),
        Some(_) => {
            return Err(ApiError::validation(
                "hours must be between 0 and 87600",
                Some("hours"),
            ));
        }
    };
    let report = cleanup(&ctx, older_than, request.dry_run, Utc::now()).await?;
    Ok(Json(json!(report)))
}

async fn run_sweep(State(ctx): State<AppContext>, _: Admin) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(sweep(&ctx, Utc::now()).await?)))
}

async fn retry(
    State(ctx): State<AppContext>,
    _: Admin,
    JobIdParam(id): JobIdParam,
) -> Result<Json<Value>, ApiError> {
    let (job, enqueued) = retry_job(&ctx, id).await?;
    Ok(Json(
        json!({ "job_id": id, "status": job.status, "file_ready": enqueued }),
    ))
}

async fn remove_job(
    State(ctx): State<AppContext>,
    _: Admin,
    JobIdParam(id): JobIdParam,
) -> Result<Json<Value>, ApiError> {
    let status_before = delete_job(&ctx, id).await?;
    Ok(Json(
        json!({ "job_id": id, "deleted": true, "status_before": status_before }),
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
