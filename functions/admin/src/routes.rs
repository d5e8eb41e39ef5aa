//! HTTP routes of the admin function. Every route takes the [`Admin`] extractor: no key is 401,
//! a user key is 403. Besides ours, the old API's operator routes in their shapes (disk usage,
//! system health, file lists, a job's cleanup) and its log routes, answered 410 (`logs.rs`).

use crate::views::{
    CleanupAnswer, ComponentHealth, DeadLetters, DeletedJob, DeletedTask, Directory,
    DirectoryUsage, DiskUsage, FileListing, JobTotals, Limits, ListedObject, PurgeAnswer,
    RetriedJob, Spend, Stats, SystemHealth, SystemState,
};
use axum::Json;
use axum::extract::State;
use chrono::Utc;
use image2model_shared::AppContext;
use image2model_shared::app::cleanup::{CleanupPass, cleanup};
use image2model_shared::app::delete_job::delete_job;
use image2model_shared::app::health::check_all;
use image2model_shared::app::list_jobs::{ListParams, list_jobs};
use image2model_shared::app::purge_task::purge_task;
use image2model_shared::app::retry_job::retry_job;
use image2model_shared::app::stats::{fal_overview, job_counts};
use image2model_shared::app::storage_usage::{PrefixUsage, prefix_usage, storage_disk};
use image2model_shared::app::sweep::SweepReport;
use image2model_shared::app::sweep::sweep;
use image2model_shared::domain::models::{self, CATALOG};
use image2model_shared::domain::{JobId, RESULTS_PREFIX, UPLOADS_PREFIX};
use image2model_shared::fal::guard;
use image2model_shared::host::round2;
use image2model_shared::ports::StorageLocation;
use image2model_shared::web::extract::{ApiJson, ApiOptionalJson, ApiQuery, JobIdParam};
use image2model_shared::web::openapi::ApiErrors;
use image2model_shared::web::views::JobPage;
use image2model_shared::web::{Admin, ApiError};
use serde::Deserialize;
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// A cleanup on demand answers within API Gateway's 30 s; what is left goes in the next call or
/// the sweeper's round (the answer's `complete` says which).
const CLEANUP_BUDGET: Duration = Duration::from_secs(20);

pub fn router() -> OpenApiRouter<AppContext> {
    OpenApiRouter::new()
        .routes(routes!(all_jobs))
        .routes(routes!(remove_job))
        .routes(routes!(retry))
        .routes(routes!(stats))
        .routes(routes!(run_cleanup))
        .routes(routes!(run_sweep))
        .routes(routes!(dead_letters))
        .routes(routes!(disk_usage))
        .routes(routes!(system_health))
        .routes(routes!(list_files))
        .routes(routes!(cleanup_job))
        .routes(routes!(delete_job_files))
        .merge(crate::logs::router())
}

const MIB: f64 = 1024.0 * 1024.0;

fn megabytes(bytes: u64) -> f64 {
    round2(bytes as f64 / MIB)
}

/// Every owner's jobs, newest first, a page at a time.
#[utoipa::path(
    get, path = "/api/v1/admin/jobs", tag = "admin", operation_id = "admin_list_jobs",
    params(ListParams), security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = JobPage, description = "A page of every owner's jobs"), ApiErrors),
)]
async fn all_jobs(
    State(ctx): State<AppContext>,
    _: Admin,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<JobPage>, ApiError> {
    let list = list_jobs(&ctx, params, None).await?;
    Ok(Json(JobPage::from(&list)))
}

/// Jobs by status, queue depth, FAL's state, spend, limits.
#[utoipa::path(
    get, path = "/api/v1/admin/stats", tag = "admin", operation_id = "admin_stats",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Stats, description = "Jobs, the queue, FAL, spend and limits"), ApiErrors),
)]
async fn stats(State(ctx): State<AppContext>, _: Admin) -> Result<Json<Stats>, ApiError> {
    let (by_status, total) = job_counts(&ctx).await?;
    let depth = ctx.queue.depth().await?;
    let now = Utc::now();
    let fal = fal_overview(&ctx, now).await?;
    let spend = guard::daily_spend(ctx.store.as_ref(), 7, now).await?;
    Ok(Json(Stats {
        jobs: JobTotals { total, by_status },
        queue: depth,
        fal,
        spend: Spend {
            today_usd: spend.first().map_or(0.0, |d| d.estimated_usd),
            daily: spend,
            prices_usd: CATALOG
                .iter()
                .map(|m| (m.id, m.price_per_run_usd))
                .collect(),
        },
        models_available: models::available_ids(ctx.config.fal_configured()),
        limits: Limits {
            max_upload_bytes: ctx.config.limits.max_upload_bytes,
            max_pixels: ctx.config.limits.max_pixels,
            max_files: ctx.config.limits.max_files,
            rate_limit_per_minute: ctx.config.limits.rate_limit_per_minute,
            job_deadline_seconds: ctx.config.jobs.job_deadline.as_secs(),
            generation_timeout_seconds: ctx.config.fal.generation_timeout.as_secs(),
            daily_job_quota: ctx.config.fal.daily_quota,
        },
        timestamp: now,
    }))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CleanupRequest {
    /// Age in hours beyond which things are deleted; 24 when absent, as the old API had it.
    #[schema(minimum = 0, maximum = 87600)]
    hours: Option<f64>,
    #[serde(default)]
    dry_run: bool,
}

/// Deletes (or, with `dry_run`, lists) uploads, results and records older than `hours`, never
/// a file a live job needs, and objects no record points at. No body means `{hours: 24,
/// dry_run: false}`. The answer carries the old API's fields beside ours.
#[utoipa::path(
    post, path = "/api/v1/admin/cleanup", tag = "admin", operation_id = "admin_cleanup",
    request_body(content = Option<CleanupRequest>, description = "Optional: no body is `{hours: 24, dry_run: false}`"),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = CleanupAnswer, description = "What was (or, dry, would be) deleted"), ApiErrors),
)]
async fn run_cleanup(
    State(ctx): State<AppContext>,
    _: Admin,
    ApiOptionalJson(request): ApiOptionalJson<CleanupRequest>,
) -> Result<Json<CleanupAnswer>, ApiError> {
    let hours = request.hours.unwrap_or(24.0);
    if !(0.0..=24.0 * 3650.0).contains(&hours) {
        return Err(ApiError::validation(
            "hours must be between 0 and 87600",
            Some("hours"),
        ));
    }
    let older_than = Duration::from_secs_f64(hours * 3600.0);
    let pass = CleanupPass {
        older_than,
        dry_run: request.dry_run,
        budget: CLEANUP_BUDGET,
    };
    let report = cleanup(&ctx, pass, Utc::now()).await?;
    Ok(Json(CleanupAnswer {
        files_removed: report.objects.len(),
        freed_space_mb: megabytes(report.bytes),
        directories_removed: report.batches.len(),
        errors: Vec::new(),
        cleanup_hours: hours,
        timestamp: Utc::now(),
        report,
    }))
}

/// One prefix in the old API's `disk-usage` shape; the disk figures are those of the file
/// system holding the objects, or null (with `disk_note`) when they are in S3.
fn directory_usage(ctx: &AppContext, usage: &PrefixUsage) -> DirectoryUsage {
    let disk = storage_disk(ctx);
    DirectoryUsage {
        path: usage.path.clone(),
        size_mb: megabytes(usage.bytes),
        size_bytes: usage.bytes,
        file_count: usage.objects.len(),
        directory_count: usage.directory_count,
        disk_total_gb: disk.map(|d| d.disk_total_gb),
        disk_used_gb: disk.map(|d| d.disk_used_gb),
        disk_free_gb: disk.map(|d| d.disk_free_gb),
        disk_usage_percent: disk.map(|d| d.disk_usage_percent),
        disk_note: matches!(ctx.storage.location(), StorageLocation::Bucket(_))
            .then_some("objects are in S3: there is no disk to measure"),
    }
}

async fn measure_disk_usage(ctx: &AppContext) -> Result<DiskUsage, ApiError> {
    let uploads = prefix_usage(ctx, UPLOADS_PREFIX).await?;
    let results = prefix_usage(ctx, RESULTS_PREFIX).await?;
    Ok(DiskUsage {
        upload_dir: directory_usage(ctx, &uploads),
        output_dir: directory_usage(ctx, &results),
        timestamp: Utc::now(),
    })
}

/// What uploads and results take (the old API's shape): `upload_dir` and `output_dir` with
/// size, files, folders and the disk's figures.
#[utoipa::path(
    get, path = "/api/v1/admin/disk-usage", tag = "admin", operation_id = "admin_disk_usage",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = DiskUsage, description = "Uploads and results with their sizes and the disk's figures"), ApiErrors),
)]
async fn disk_usage(State(ctx): State<AppContext>, _: Admin) -> Result<Json<DiskUsage>, ApiError> {
    Ok(Json(measure_disk_usage(&ctx).await?))
}

/// `healthy`, `warning` past 80 % disk use, `critical` past 90 % or when a component of
/// readiness fails (the old API's thresholds), with the reasons.
#[utoipa::path(
    get, path = "/api/v1/admin/system-health", tag = "admin", operation_id = "admin_system_health",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = SystemHealth, description = "The state, its reasons, the disk and each component"), ApiErrors),
)]
async fn system_health(
    State(ctx): State<AppContext>,
    _: Admin,
) -> Result<Json<SystemHealth>, ApiError> {
    let checks = check_all(&ctx).await;
    let disk = storage_disk(&ctx);
    let mut warnings = Vec::new();
    let mut status = SystemState::Healthy;
    if let Some(disk) = disk {
        let used = disk.disk_usage_percent;
        if used > 90.0 {
            status = SystemState::Critical;
            warnings.push(format!("Critical: disk usage at {used:.1}%"));
        } else if used > 80.0 {
            status = SystemState::Warning;
            warnings.push(format!("Warning: disk usage at {used:.1}%"));
        }
    }
    for failed in checks.iter().filter(|c| !c.ok) {
        status = SystemState::Critical;
        warnings.push(format!("Critical: {} is unavailable", failed.component));
    }
    let disk_usage = if checks
        .iter()
        .any(|c| c.component == "object_storage" && !c.ok)
    {
        None
    } else {
        Some(measure_disk_usage(&ctx).await?)
    };
    let components = checks
        .iter()
        .map(|c| ComponentHealth {
            name: c.component,
            healthy: c.ok,
            response_time_ms: round2(c.elapsed_ms),
        })
        .collect();
    Ok(Json(SystemHealth {
        status,
        disk_usage,
        warnings,
        components,
        timestamp: Utc::now(),
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListFilesParams {
    #[param(inline)]
    directory: Directory,
    /// How many items, newest first (100 when absent).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// The objects of `uploads` or `results`, newest first (the old API's shape): `{directory,
/// total_size_mb, total_files, items: [{path, size_mb, modified, is_directory, file_count}]}`.
#[utoipa::path(
    get, path = "/api/v1/admin/list-files", tag = "admin", operation_id = "admin_list_files",
    params(ListFilesParams), security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = FileListing, description = "The folder's objects, newest first"), ApiErrors),
)]
async fn list_files(
    State(ctx): State<AppContext>,
    _: Admin,
    ApiQuery(params): ApiQuery<ListFilesParams>,
) -> Result<Json<FileListing>, ApiError> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::validation(
            "limit must be between 1 and 1000",
            Some("limit"),
        ));
    }
    let prefix = match params.directory {
        Directory::Uploads => UPLOADS_PREFIX,
        Directory::Results => RESULTS_PREFIX,
    };
    let usage = prefix_usage(&ctx, prefix).await?;
    let items = usage
        .objects
        .iter()
        .take(limit)
        .map(|o| {
            let modified = o.last_modified.timestamp_millis() as f64 / 1000.0;
            ListedObject {
                path: o.key.clone(),
                size_mb: megabytes(o.size),
                size_bytes: o.size,
                modified: modified.to_string(),
                is_directory: false,
                file_count: None,
                content_type: o.content_type.clone(),
            }
        })
        .collect();
    Ok(Json(FileListing {
        directory: params.directory,
        total_size_mb: megabytes(usage.bytes),
        total_files: usage.objects.len(),
        path: usage.path,
        items,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CleanupJobRequest {
    /// A job's or a batch's id.
    #[schema(value_type = uuid::Uuid)]
    job_id: JobId,
}

/// Removes a job (or a batch and its jobs) with its models and the uploads no other job uses
/// (the old API's shape: `{job_id, freed_space_mb, files_removed, errors, timestamp}`).
#[utoipa::path(
    post, path = "/api/v1/admin/cleanup-job", tag = "admin", operation_id = "admin_cleanup_job",
    request_body = CleanupJobRequest, security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = PurgeAnswer, description = "What was removed"), ApiErrors),
)]
async fn cleanup_job(
    State(ctx): State<AppContext>,
    _: Admin,
    ApiJson(request): ApiJson<CleanupJobRequest>,
) -> Result<Json<PurgeAnswer>, ApiError> {
    let report = purge_task(&ctx, request.job_id).await?;
    Ok(Json(PurgeAnswer {
        job_id: request.job_id,
        freed_space_mb: megabytes(report.bytes),
        files_removed: report.objects.len(),
        errors: Vec::new(),
        timestamp: Utc::now(),
        jobs: report.jobs,
        files: report.files,
        objects: report.objects,
    }))
}

/// The same removal under the old API's other route: `{message, freed_space_mb,
/// files_removed}`; 404 `JOB_NOT_FOUND` when there is no such job or batch.
#[utoipa::path(
    delete, path = "/api/v1/admin/delete-job/{job_id}", tag = "admin", operation_id = "admin_delete_job_files",
    params(("job_id" = uuid::Uuid, Path, description = "A job's or a batch's id")),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = DeletedTask, description = "What was removed, in the old API's shape"), ApiErrors),
)]
async fn delete_job_files(
    State(ctx): State<AppContext>,
    _: Admin,
    JobIdParam(id): JobIdParam,
) -> Result<Json<DeletedTask>, ApiError> {
    let report = purge_task(&ctx, id).await?;
    Ok(Json(DeletedTask {
        message: format!("Job {id} deleted with {} file(s)", report.objects.len()),
        freed_space_mb: megabytes(report.bytes),
        files_removed: report.objects.len(),
        job_id: id,
        jobs: report.jobs,
    }))
}

/// Runs the sweeper now: overdue jobs failed, lost messages re-sent, missed uploads ingested.
#[utoipa::path(
    post, path = "/api/v1/admin/sweep", tag = "admin", operation_id = "admin_sweep",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = SweepReport, description = "What the sweep did"), ApiErrors),
)]
async fn run_sweep(State(ctx): State<AppContext>, _: Admin) -> Result<Json<SweepReport>, ApiError> {
    Ok(Json(sweep(&ctx, Utc::now()).await?))
}

/// Puts a failed or cancelled job back in the queue.
#[utoipa::path(
    post, path = "/api/v1/admin/jobs/{job_id}/retry", tag = "admin", operation_id = "admin_retry_job",
    params(("job_id" = uuid::Uuid, Path, description = "The job's id")),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = RetriedJob, description = "The job, queued again"), ApiErrors),
)]
async fn retry(
    State(ctx): State<AppContext>,
    _: Admin,
    JobIdParam(id): JobIdParam,
) -> Result<Json<RetriedJob>, ApiError> {
    let (job, enqueued) = retry_job(&ctx, id).await?;
    Ok(Json(RetriedJob {
        job_id: id,
        status: job.status,
        file_ready: enqueued,
    }))
}

/// Deletes a job (cancelled first when live) and its model.
#[utoipa::path(
    delete, path = "/api/v1/admin/jobs/{job_id}", tag = "admin", operation_id = "admin_delete_job",
    params(("job_id" = uuid::Uuid, Path, description = "The job's id")),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = DeletedJob, description = "The job is gone"), ApiErrors),
)]
async fn remove_job(
    State(ctx): State<AppContext>,
    _: Admin,
    JobIdParam(id): JobIdParam,
) -> Result<Json<DeletedJob>, ApiError> {
    let status_before = delete_job(&ctx, id).await?;
    Ok(Json(DeletedJob {
        job_id: id,
        deleted: true,
        status_before,
    }))
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
    responses((status = 200, body = DeadLetters, description = "The dead letters, newest first"), ApiErrors),
)]
async fn dead_letters(
    State(ctx): State<AppContext>,
    _: Admin,
    ApiQuery(params): ApiQuery<DeadLetterParams>,
) -> Result<Json<DeadLetters>, ApiError> {
    let limit = params.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::validation(
            "limit must be between 1 and 500",
            Some("limit"),
        ));
    }
    let letters = ctx.queue.dead_letters(limit).await?;
    Ok(Json(DeadLetters {
        count: letters.len(),
        dead_letters: letters,
    }))
}
