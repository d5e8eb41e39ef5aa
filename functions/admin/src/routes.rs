//! HTTP routes of the admin function. Every route takes the [`Admin`] extractor: no key is 401,
//! a user key is 403.

use axum::Json;
use axum::extract::State;
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
use image2model_shared::web::openapi::ApiErrors;
use image2model_shared::web::views::job_list_json;
use image2model_shared::web::{Admin, ApiError};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppContext> {
    OpenApiRouter::new()
        .routes(routes!(all_jobs))
        .routes(routes!(remove_job))
        .routes(routes!(retry))
        .routes(routes!(stats))
        .routes(routes!(run_cleanup))
        .routes(routes!(run_sweep))
        .routes(routes!(dead_letters))
}

/// Every owner's jobs, newest first, a page at a time.
#[utoipa::path(
    get, path = "/api/v1/admin/jobs", tag = "admin", operation_id = "admin_list_jobs",
    params(ListParams), security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Object, description = "`{jobs, next_cursor, limit}`"), ApiErrors),
)]
async fn all_jobs(
    State(ctx): State<AppContext>,
    _: Admin,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let list = list_jobs(&ctx, params, None).await?;
    Ok(Json(job_list_json(&list)))
}

/// Jobs by status, queue depth, FAL's state, spend, limits.
#[utoipa::path(
    get, path = "/api/v1/admin/stats", tag = "admin", operation_id = "admin_stats",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Object, description = "`{jobs, queue, fal, spend, models_available, limits, timestamp}`"), ApiErrors),
)]
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CleanupRequest {
    /// Age in hours beyond which things are deleted; the retention period by default.
    #[schema(minimum = 0, maximum = 87600)]
    hours: Option<f64>,
    #[serde(default)]
    dry_run: bool,
}

/// Deletes (or, with `dry_run`, lists) uploads, results and records older than `hours`, never
/// a file a live job needs, and objects no record points at.
#[utoipa::path(
    post, path = "/api/v1/admin/cleanup", tag = "admin", operation_id = "admin_cleanup",
    request_body = CleanupRequest, security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Object, description = "`{dry_run, cutoff, files, jobs, batches, objects, bytes}`"), ApiErrors),
)]
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

/// Runs the sweeper now: overdue jobs failed, lost messages re-sent, missed uploads ingested.
#[utoipa::path(
    post, path = "/api/v1/admin/sweep", tag = "admin", operation_id = "admin_sweep",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Object, description = "`{requeued, timed_out, ingested}`"), ApiErrors),
)]
async fn run_sweep(State(ctx): State<AppContext>, _: Admin) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(sweep(&ctx, Utc::now()).await?)))
}

/// Puts a failed or cancelled job back in the queue.
#[utoipa::path(
    post, path = "/api/v1/admin/jobs/{job_id}/retry", tag = "admin", operation_id = "admin_retry_job",
    params(("job_id" = uuid::Uuid, Path, description = "The job's id")),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Object, description = "`{job_id, status, file_ready}`"), ApiErrors),
)]
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

/// Deletes a job (cancelled first when live) and its model.
#[utoipa::path(
    delete, path = "/api/v1/admin/jobs/{job_id}", tag = "admin", operation_id = "admin_delete_job",
    params(("job_id" = uuid::Uuid, Path, description = "The job's id")),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Object, description = "`{job_id, deleted, status_before}`"), ApiErrors),
)]
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DeadLetterParams {
    /// How many, newest first.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// Messages that kept failing and were set aside.
#[utoipa::path(
    get, path = "/api/v1/admin/dead-letters", tag = "admin", operation_id = "admin_dead_letters",
    params(DeadLetterParams), security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Object, description = "`{count, dead_letters}`"), ApiErrors),
)]
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
