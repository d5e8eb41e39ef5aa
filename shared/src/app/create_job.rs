//! Job creation, the only place a job is born: the model and its options are validated, the
//! owner's daily FAL quota is taken (and refunded when the creation does not happen), an
//! idempotency key replays the job it created before, and a batch is created with its jobs in
//! one transaction. A job may be created while its file is still pending: it then waits, and
//! ingestion releases it (or fails it with the ingestion error). Creation writes the job first
//! and reads the file again afterwards, so a job is never missed by both sides of that race.

use super::enqueue::{Handover, enqueue_if_ready};
use super::error::AppError;
use crate::context::AppContext;
use crate::domain::models::{self, ModelSpec};
use crate::domain::{Batch, BatchId, FileId, FileStatus, GenerationJob, JobOptions, UploadedFile};
use crate::fal::guard;
use crate::ports::CreateOutcome;
use chrono::Utc;
use serde::Deserialize;

/// What a client asks for: a job on one of its files, a model type (the default when absent)
/// and options (the body of `POST /api/v1/jobs`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "file_id": "6f0d6c2e-3a8b-4f7e-9b1a-2c4d5e6f7a8b", "model_type": "relief",
    "options": {"face_limit": 20000, "formats": ["glb", "usdz"]}
}))]
pub struct CreateJobRequest {
    /// A file of the caller (ready, or pending: the job then waits for it).
    #[schema(value_type = uuid::Uuid)]
    pub file_id: FileId,
    /// One of the catalog's model types; the default when absent.
    #[serde(default)]
    #[schema(value_type = Option<ModelType>)]
    pub model_type: Option<String>,
    #[serde(default)]
    pub options: Option<JobOptions>,
}

pub use crate::domain::models::ModelType;

/// The catalog entry for `model_type` (the default when absent), if this deployment runs it.
pub fn resolve_model(
    ctx: &AppContext,
    model_type: Option<&str>,
) -> Result<&'static ModelSpec, AppError> {
    // Absent is the default; anything else, an empty string included, must name a model (the
    // schema's enum has no empty value).
    let id = model_type.unwrap_or_else(|| models::default_model(ctx.config.fal_configured()));
    let spec = models::find(id).ok_or_else(|| {
        let known: Vec<&str> = models::CATALOG.iter().map(|m| m.id).collect();
        AppError::invalid(
            format!("unknown model_type {id:?}; known: {}", known.join(", ")),
            Some("model_type"),
        )
    })?;
    if models::is_available(spec, ctx.config.fal_configured()) {
        Ok(spec)
    } else {
        Err(AppError::ModelUnavailable(id.to_owned()))
    }
}

/// Checks option values, and that `model` takes every option that is set. `at` is where the
/// options sit in the request (`options`, `generate.options`, or empty for form fields), so an
/// error's `field` is the option's whole path.
pub fn validate_options(model: &ModelSpec, options: &JobOptions, at: &str) -> Result<(), AppError> {
    let path = |field: &str| {
        if at.is_empty() {
            field.to_owned()
        } else {
            format!("{at}.{field}")
        }
    };
    options.validate().map_err(|(field, reason)| {
        AppError::invalid(format!("{field} {reason}"), Some(&path(field)))
    })?;
    if let (Some(limit), Some(max)) = (options.face_limit, model.face_limit_max)
        && limit > max
    {
        return Err(AppError::OptionAboveModelLimit {
            model: model.id,
            field: path("face_limit"),
            max,
        });
    }
    match model.unsupported_option(options) {
        Some(field) => Err(AppError::UnsupportedOption {
            model: model.id,
            field: path(&field),
            accepted: model.accepted_options.join(", "),
        }),
        None => Ok(()),
    }
}

/// Takes `count` jobs from the caller's daily quota when they will run (and be paid for) at
/// FAL; `QUOTA_EXCEEDED` when that would go over it.
async fn take_quota(
    ctx: &AppContext,
    model: &ModelSpec,
    owner: &str,
    count: usize,
) -> Result<(), AppError> {
    if !ctx.config.fal_configured() || !model.runs_at_fal() {
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
            Err(AppError::QuotaExceeded {
                limit,
                used,
                retry_after_secs: (midnight - now).num_seconds().max(1) as u64,
            })
        }
    }
}

/// Gives quota back for jobs that were not created after all.
async fn refund_quota(ctx: &AppContext, model: &ModelSpec, owner: &str, count: usize) {
    if ctx.config.fal_configured()
        && model.runs_at_fal()
        && let Err(err) =
            guard::refund_quota(ctx.store.as_ref(), owner, count as u64, Utc::now()).await
    {
        tracing::warn!(owner, error = %err, "quota not refunded");
    }
}

fn validate_idempotency_key(key: &str) -> Result<(), AppError> {
    let ok = !key.is_empty() && key.len() <= 128 && key.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(AppError::invalid(
            "Idempotency-Key must be 1 to 128 visible ASCII characters",
            Some("Idempotency-Key"),
        ))
    }
}

fn ensure_usable(file: &UploadedFile) -> Result<(), AppError> {
    if file.status == FileStatus::Rejected {
        let reason = file.rejection.as_ref().map_or_else(
            || "rejected".to_owned(),
            |r| format!("{}: {}", r.code, r.message),
        );
        return Err(AppError::FileNotReady {
            file_id: file.file_id,
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
) -> Result<GenerationJob, AppError> {
    let options = request.options.unwrap_or_default();
    let model = resolve_model(ctx, request.model_type.as_deref())?;
    validate_options(model, &options, "options")?;
    if let Some(key) = idempotency_key {
        validate_idempotency_key(key)?;
    }
    let file = match ctx.store.get_file(request.file_id).await? {
        Some(file) if file.owner == owner => file,
        _ => return Err(AppError::FileNotFound(request.file_id)),
    };
    ensure_usable(&file)?;
    let job = GenerationJob::new(file.file_id, owner, model.id, options, None, Utc::now())
        .from_photo(&file.filename);
    take_quota(ctx, model, owner, 1).await?;
    let created = ctx
        .store
        .create_jobs(std::slice::from_ref(&job), None, idempotency_key)
        .await;
    if !matches!(created, Ok(CreateOutcome::Created)) {
        refund_quota(ctx, model, owner, 1).await;
    }
    match created? {
        CreateOutcome::Existing(existing) => {
            let earlier = ctx
                .store
                .get_job(existing)
                .await?
                .ok_or(AppError::JobNotFound(existing))?;
            // The key replays its own request only; another request under it is a client bug.
            let same = (
                earlier.file_id,
                earlier.model_type.as_str(),
                &earlier.options,
            ) == (job.file_id, job.model_type.as_str(), &job.options);
            return if same {
                Ok(earlier)
            } else {
                Err(AppError::IdempotencyKeyReused { job_id: existing })
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
) -> Result<(Batch, Vec<GenerationJob>), AppError> {
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
            .from_photo(&f.filename)
        })
        .collect();
    let batch = Batch {
        batch_id,
        owner: owner.to_owned(),
        job_ids: jobs.iter().map(|j| j.job_id).collect(),
        created_at: now,
    };
    take_quota(ctx, model, owner, jobs.len()).await?;
    if let Err(err) = ctx.store.create_jobs(&jobs, Some(&batch), None).await {
        refund_quota(ctx, model, owner, jobs.len()).await;
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
) -> Result<GenerationJob, AppError> {
    match enqueue_if_ready(ctx, job).await {
        Ok(Handover::Failed(failed)) => Ok(*failed),
        Ok(Handover::Enqueued | Handover::Waiting) => Ok(job.clone()),
        Err(AppError::Queue(err)) => {
            tracing::warn!(job_id = %job.job_id, error = %err, "enqueue failed; the sweeper will retry");
            Ok(job.clone())
        }
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::enqueue::WorkMessage;
    use crate::app::testing::{context, context_with, drain, pending_file, ready_file, stored};
    use crate::domain::models::RELIEF_MODEL;
    use crate::domain::{FileRejection, JobStatus, Texture};
    use crate::fal::guard;

    fn request(
        file_id: FileId,
        model_type: Option<&str>,
        options: Option<JobOptions>,
    ) -> CreateJobRequest {
        CreateJobRequest {
            file_id,
            model_type: model_type.map(str::to_owned),
            options,
        }
    }

    /// A deployment that sends jobs to FAL (so quotas apply) with a daily quota of `quota`.
    fn at_fal(quota: u64) -> crate::app::testing::TestContext {
        context_with(|c| {
            c.fal.enabled = true;
            c.fal.daily_quota = quota;
        })
    }

    async fn used_today(ctx: &AppContext) -> u64 {
        // Taking nothing reads the count without changing it.
        match guard::take_quota(ctx.store.as_ref(), "alice", 0, u64::MAX, Utc::now()).await {
            Ok(Ok(used)) | Ok(Err(used)) => used,
            Err(err) => panic!("{err}"),
        }
    }

    #[tokio::test]
    async fn a_job_on_a_ready_file_is_queued_and_handed_to_the_worker() {
        let t = context();
        let file = ready_file(&t, "alice").await;
        let job = create_job(&t, "alice", request(file.file_id, None, None), None)
            .await
            .unwrap();
        assert_eq!(
            (job.status, job.model_type.as_str()),
            (JobStatus::Queued, RELIEF_MODEL)
        );
        assert_eq!(stored(&t, &job).await.source_filename, Some(file.filename));
        assert_eq!(drain(&t).await, [WorkMessage::generate(job.job_id)]);
    }

    #[tokio::test]
    async fn a_job_on_a_pending_file_waits_and_one_on_a_rejected_file_is_refused() {
        let t = context();
        let pending = pending_file(&t, "alice").await;
        let job = create_job(&t, "alice", request(pending.file_id, None, None), None)
            .await
            .unwrap();
        assert_eq!(job.status, JobStatus::Queued);
        assert!(
            drain(&t).await.is_empty(),
            "ingestion releases it, not creation"
        );

        let rejected = pending
            .reject(FileRejection {
                code: crate::domain::JobErrorCode::InvalidImage,
                message: "truncated".into(),
            })
            .unwrap();
        t.store.update_file(&rejected).await.unwrap();
        let err = create_job(&t, "alice", request(pending.file_id, None, None), None)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, AppError::FileNotReady { status: "rejected", reason, .. } if reason.contains("INVALID_IMAGE")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn anothers_file_reads_as_not_found() {
        let t = context();
        let file = ready_file(&t, "bob").await;
        let err = create_job(&t, "alice", request(file.file_id, None, None), None)
            .await
            .unwrap_err();
        assert!(matches!(err, AppError::FileNotFound(id) if id == file.file_id));
    }

    #[tokio::test]
    async fn models_and_options_are_checked_before_anything_is_written() {
        let t = context();
        let file = ready_file(&t, "alice").await;
        let invalid_field = |err: AppError| match err {
            AppError::Invalid { field, .. } => field,
            other => panic!("{other:?}"),
        };
        let err = create_job(&t, "alice", request(file.file_id, Some("quad"), None), None)
            .await
            .unwrap_err();
        assert_eq!(invalid_field(err).as_deref(), Some("model_type"));
        let err = create_job(
            &t,
            "alice",
            request(file.file_id, Some("tripo3d"), None),
            None,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, AppError::ModelUnavailable(ref m) if m == "tripo3d"),
            "{err:?}"
        );
        for blank in ["", " ", " relief"] {
            let err = create_job(&t, "alice", request(file.file_id, Some(blank), None), None)
                .await
                .unwrap_err();
            assert_eq!(
                invalid_field(err).as_deref(),
                Some("model_type"),
                "{blank:?}"
            );
        }
        let texture = JobOptions {
            texture: Some(Texture::Hd),
            ..JobOptions::default()
        };
        let err = create_job(
            &t,
            "alice",
            request(file.file_id, None, Some(texture)),
            None,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, AppError::UnsupportedOption { ref field, model: "relief", .. } if field == "options.texture"),
            "{err:?}"
        );
        let tiny = JobOptions {
            face_limit: Some(1),
            ..JobOptions::default()
        };
        let err = create_job(&t, "alice", request(file.file_id, None, Some(tiny)), None)
            .await
            .unwrap_err();
        assert_eq!(invalid_field(err).as_deref(), Some("options.face_limit"));
        // More faces than the relief ever makes is refused, not silently capped.
        let beyond = JobOptions {
            face_limit: Some(models::RELIEF_FACE_LIMIT_MAX + 1),
            ..JobOptions::default()
        };
        let err = create_job(&t, "alice", request(file.file_id, None, Some(beyond)), None)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, AppError::OptionAboveModelLimit { model: "relief", field, max: 800_000 } if field == "options.face_limit"),
            "{err:?}"
        );
        for key in ["", "has space", &"k".repeat(129)] {
            let err = create_job(&t, "alice", request(file.file_id, None, None), Some(key))
                .await
                .unwrap_err();
            assert_eq!(
                invalid_field(err).as_deref(),
                Some("Idempotency-Key"),
                "{key:?}"
            );
        }
        let listed = t.store.list_jobs_for_file(file.file_id).await.unwrap();
        assert!(listed.is_empty(), "no refused request wrote a job");
    }

    #[tokio::test]
    async fn an_idempotency_key_replays_its_job_and_refunds_the_quota_it_took_again() {
        let t = at_fal(5);
        let file = ready_file(&t, "alice").await;
        let first = create_job(
            &t,
            "alice",
            request(file.file_id, Some("tripo3d"), None),
            Some("k-1"),
        )
        .await
        .unwrap();
        assert_eq!(used_today(&t).await, 1);
        let again = create_job(
            &t,
            "alice",
            request(file.file_id, Some("tripo3d"), None),
            Some("k-1"),
        )
        .await
        .unwrap();
        assert_eq!(again.job_id, first.job_id);
        assert_eq!(used_today(&t).await, 1, "the replay gave its quota back");
        assert_eq!(
            t.store
                .list_jobs_for_file(file.file_id)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(drain(&t).await, [WorkMessage::generate(first.job_id)]);
        // Another owner's identical key is another job.
        let bobs = ready_file(&t, "bob").await;
        let other = create_job(
            &t,
            "bob",
            request(bobs.file_id, Some("tripo3d"), None),
            Some("k-1"),
        )
        .await
        .unwrap();
        assert_ne!(other.job_id, first.job_id);
        // The same key for another request is refused, and takes no quota.
        let err = create_job(
            &t,
            "alice",
            request(file.file_id, Some("trellis"), None),
            Some("k-1"),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, AppError::IdempotencyKeyReused { job_id } if job_id == first.job_id),
            "{err:?}"
        );
        assert_eq!(used_today(&t).await, 1);
    }

    #[tokio::test]
    async fn the_daily_quota_refuses_what_would_go_over_it_and_counts_nothing_for_it() {
        let t = at_fal(2);
        let file = ready_file(&t, "alice").await;
        for _ in 0..2 {
            create_job(
                &t,
                "alice",
                request(file.file_id, Some("trellis"), None),
                None,
            )
            .await
            .unwrap();
        }
        // The quota comes back at the next UTC midnight.
        let to_midnight = || {
            let now = Utc::now();
            let midnight = (now.date_naive() + chrono::Days::new(1)).and_hms_opt(0, 0, 0);
            (midnight.unwrap().and_utc() - now).num_seconds() as u64
        };
        let before = to_midnight();
        let err = create_job(
            &t,
            "alice",
            request(file.file_id, Some("trellis"), None),
            None,
        )
        .await
        .unwrap_err();
        let after = to_midnight();
        assert!(
            matches!(err, AppError::QuotaExceeded { limit: 2, used: 2, retry_after_secs } if (after..=before + 1).contains(&retry_after_secs)),
            "{err:?}, {after} to {before} s to midnight"
        );
        assert_eq!(used_today(&t).await, 2);
        // A batch that does not fit takes nothing and writes nothing.
        let files = [ready_file(&t, "alice").await];
        let model = models::find("trellis").unwrap();
        let err = create_batch(&t, "alice", &files, model, &JobOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(err, AppError::QuotaExceeded { .. }));
        assert!(
            t.store
                .list_jobs_for_file(files[0].file_id)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_batch_creates_every_job_at_once_and_starts_those_whose_file_is_ready() {
        let t = context();
        let ready = ready_file(&t, "alice").await;
        let pending = pending_file(&t, "alice").await;
        let model = models::find(RELIEF_MODEL).unwrap();
        let (batch, jobs) = create_batch(
            &t,
            "alice",
            &[ready.clone(), pending.clone()],
            model,
            &JobOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(
            batch.job_ids,
            jobs.iter().map(|j| j.job_id).collect::<Vec<_>>()
        );
        let stored_batch = t.store.get_batch(batch.batch_id).await.unwrap().unwrap();
        assert_eq!(stored_batch, batch);
        for (job, file) in jobs.iter().zip([&ready, &pending]) {
            let stored = stored(&t, job).await;
            assert_eq!(stored.batch_id, Some(batch.batch_id));
            assert_eq!(stored.source_filename.as_ref(), Some(&file.filename));
        }
        assert_eq!(drain(&t).await, [WorkMessage::generate(jobs[0].job_id)]);
    }
}
