//! Job creation. A job may be created while its file is still pending: it then waits, and
//! ingestion releases it (or fails it with the ingestion error). Creation writes the job first
//! and reads the file again afterwards, so a job is never missed by both sides of that race.

use chrono::Utc;
use image2model_shared::domain::job::DEFAULT_MODEL_TYPE;
use image2model_shared::domain::models::{self, ModelSpec};
use image2model_shared::domain::{
    Batch, BatchId, FileId, FileStatus, GenerationJob, JobError, JobOptions, UploadedFile,
};
use image2model_shared::fal::guard;
use image2model_shared::pipeline::{enqueue_job, fail_job};
use image2model_shared::ports::CreateOutcome;
use image2model_shared::{ApiError, AppContext};
use serde::Deserialize;

/// Body of `POST /api/v1/jobs` and `POST /api/v1/generate/3d-model`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateJobRequest {
    pub file_id: FileId,
    #[serde(default)]
    pub model_type: Option<String>,
    #[serde(default)]
    pub options: Option<JobOptions>,
}

/// The catalog entry for `model_type` (the default when absent), if this deployment runs it.
pub fn resolve_model(
    ctx: &AppContext,
    model_type: Option<&str>,
) -> Result<&'static ModelSpec, ApiError> {
    let id = model_type
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .unwrap_or(DEFAULT_MODEL_TYPE);
    let spec = models::find(id).ok_or_else(|| {
        let known: Vec<&str> = models::CATALOG.iter().map(|m| m.id).collect();
        ApiError::validation(
            format!("unknown model_type {id:?}; known: {}", known.join(", ")),
            Some("model_type"),
        )
    })?;
    if models::is_available(spec, ctx.config.fal_configured()) {
        Ok(spec)
    } else {
        Err(ApiError::ModelUnavailable(id.to_owned()))
    }
}

/// Checks option values, and that `model` takes every option that is set.
pub fn validate_options(model: &ModelSpec, options: &JobOptions) -> Result<(), ApiError> {
    options.validate().map_err(|(field, reason)| {
        ApiError::validation(format!("{field} {reason}"), Some(field))
    })?;
    match model.unsupported_option(options) {
        Some(field) => Err(ApiError::validation(
            format!(
                "{field} is not an option of {} (it takes: {})",
                model.id,
                model.accepted_options.join(", ")
            ),
            Some(&field),
        )),
        None => Ok(()),
    }
}

/// Takes `count` jobs from the caller's daily quota when they will run (and be paid for) at
/// FAL; `QUOTA_EXCEEDED` when that would go over it.
async fn take_quota(ctx: &AppContext, owner: &str, count: usize) -> Result<(), ApiError> {
    if !ctx.config.fal_configured() {
        return Ok(());
    }
    let now = Utc::now();
    let limit = ctx.config.fal.daily_quota;
    match guard::take_quota(ctx.store.as_ref(), owner, count as u64, limit, now).await? {
        Ok(_) => Ok(()),
        Err(used) => {
            let midnight = (now.date_naive() + chrono::Days::new(1))
                .and_hms_opt(0, 0, 0)
                .map_or(now, |t| t.and_utc());
            Err(ApiError::QuotaExceeded {
                limit,
                used,
                retry_after_secs: (midnight - now).num_seconds().max(1) as u64,
            })
        }
    }
}

/// Gives quota back for jobs that were not created after all.
async fn refund_quota(ctx: &AppContext, owner: &str, count: usize) {
    if ctx.config.fal_configured()
        && let Err(err) =
            guard::refund_quota(ctx.store.as_ref(), owner, count as u64, Utc::now()).await
    {
        tracing::warn!(owner, error = %err, "quota not refunded");
    }
}

fn validate_idempotency_key(key: &str) -> Result<(), ApiError> {
    let ok = !key.is_empty() && key.len() <= 128 && key.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(
            "Idempotency-Key must be 1 to 128 visible ASCII characters",
            Some("Idempotency-Key"),
        ))
    }
}

fn ensure_usable(file: &UploadedFile) -> Result<(), ApiError> {
    if file.status == FileStatus::Rejected {
        let reason = file.rejection.as_ref().map_or_else(
            || "rejected".to_owned(),
            |r| format!("{}: {}", r.code, r.message),
        );
        return Err(ApiError::FileNotReady {
            file_id: file.file_id.to_string(),
            status: file.status.as_str(),
            reason,
        });
    }
    Ok(())
}

/// Creates one job for a file of `owner`. With an idempotency key used before, returns that job.
pub async fn create_job(
    ctx: &AppContext,
    owner: &str,
    request: CreateJobRequest,
    idempotency_key: Option<&str>,
) -> Result<GenerationJob, ApiError> {
    let options = request.options.unwrap_or_default();
    let model = resolve_model(ctx, request.model_type.as_deref())?;
    validate_options(model, &options)?;
    if let Some(key) = idempotency_key {
        validate_idempotency_key(key)?;
    }
    let file = match ctx.store.get_file(request.file_id).await? {
        Some(file) if file.owner == owner => file,
        _ => return Err(ApiError::FileNotFound(request.file_id.to_string())),
    };
    ensure_usable(&file)?;
    let job = GenerationJob::new(file.file_id, owner, model.id, options, None, Utc::now());
    take_quota(ctx, owner, 1).await?;
    let created = ctx
        .store
        .create_jobs(std::slice::from_ref(&job), None, idempotency_key)
        .await;
    if !matches!(created, Ok(CreateOutcome::Created)) {
        refund_quota(ctx, owner, 1).await;
    }
    match created? {
        CreateOutcome::Existing(existing) => {
            return match ctx.store.get_job(existing).await? {
                Some(job) => Ok(job),
                None => Err(ApiError::JobNotFound(existing.to_string())),
            };
        }
        CreateOutcome::Created => {}
    }
    tracing::info!(job_id = %job.job_id, file_id = %file.file_id, model_type = model.id, "job created");
    start_when_ready(ctx, &job).await
}

/// Creates one job per file under a new batch, atomically, and starts those whose file is ready.
pub async fn create_batch(
    ctx: &AppContext,
    owner: &str,
    files: &[UploadedFile],
    model: &ModelSpec,
    options: &JobOptions,
) -> Result<(Batch, Vec<GenerationJob>), ApiError> {
    let now = Utc::now();
    let batch_id = BatchId::new();
    let jobs: Vec<GenerationJob> = files
        .iter()
        .map(|f| {
            GenerationJob::new(
                f.file_id,
                owner,
                model.id,
                options.clone(),
                Some(batch_id),
                now,
            )
        })
        .collect();
    let batch = Batch {
        batch_id,
        owner: owner.to_owned(),
        job_ids: jobs.iter().map(|j| j.job_id).collect(),
        created_at: now,
    };
    take_quota(ctx, owner, jobs.len()).await?;
    if let Err(err) = ctx.store.create_jobs(&jobs, Some(&batch), None).await {
        refund_quota(ctx, owner, jobs.len()).await;
        return Err(err.into());
    }
    let mut started = Vec::with_capacity(jobs.len());
    for job in &jobs {
        started.push(start_when_ready(ctx, job).await?);
    }
    Ok((batch, started))
}

/// Enqueues a new job whose file is ready; fails it if the file was rejected in the meantime;
/// leaves it waiting for ingestion otherwise. A failed enqueue is logged, not fatal: the
/// sweeper enqueues queued jobs that sat too long.
async fn start_when_ready(
    ctx: &AppContext,
    job: &GenerationJob,
) -> Result<GenerationJob, ApiError> {
    let file = ctx.store.get_file(job.file_id).await?;
    match file.as_ref().map(|f| (f.status, f.rejection.clone())) {
        Some((FileStatus::Ready, _)) => {
            if let Err(err) = enqueue_job(ctx.queue.as_ref(), job.job_id).await {
                tracing::warn!(job_id = %job.job_id, error = %err, "enqueue failed; the sweeper will retry");
            }
            Ok(job.clone())
        }
        Some((FileStatus::Rejected, rejection)) => {
            let error = rejection.map_or_else(
                || JobError::new("FILE_REJECTED", "the file was rejected"),
                |r| JobError::new(r.code, r.message),
            );
            fail_job(ctx.store.as_ref(), job.job_id, &error)
                .await
                .map_err(|e| ApiError::Unavailable {
                    component: "store",
                    reason: e.to_string(),
                })
        }
        _ => Ok(job.clone()),
    }
}
