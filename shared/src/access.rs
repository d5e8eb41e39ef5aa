//! Ownership checks: a caller sees only its own files, jobs and batches; anyone else's id reads
//! as not found. The admin key sees everything.

use crate::auth::Caller;
use crate::context::AppContext;
use crate::domain::{Batch, BatchId, FileId, GenerationJob, JobId, UploadedFile};
use crate::error::ApiError;

fn visible(caller: &Caller, owner: &str) -> bool {
    caller.is_admin || caller.owner == owner
}

/// Any job, whoever owns it (administrators' routes); `JOB_NOT_FOUND` when there is none.
pub async fn any_job(ctx: &AppContext, id: JobId) -> Result<GenerationJob, ApiError> {
    ctx.store
        .get_job(id)
        .await?
        .ok_or_else(|| ApiError::JobNotFound(id.to_string()))
}

pub async fn owned_job(
    ctx: &AppContext,
    caller: &Caller,
    id: JobId,
) -> Result<GenerationJob, ApiError> {
    match any_job(ctx, id).await? {
        job if visible(caller, &job.owner) => Ok(job),
        _ => Err(ApiError::JobNotFound(id.to_string())),
    }
}

pub async fn owned_file(
    ctx: &AppContext,
    caller: &Caller,
    id: FileId,
) -> Result<UploadedFile, ApiError> {
    match ctx.store.get_file(id).await? {
        Some(file) if visible(caller, &file.owner) => Ok(file),
        _ => Err(ApiError::FileNotFound(id.to_string())),
    }
}

/// A task id names a job or a batch.
pub enum Task {
    Job(Box<GenerationJob>),
    Batch(Batch, Vec<GenerationJob>),
}

/// Resolves a task id to the caller's job, or else to the caller's batch with its jobs.
pub async fn owned_task(ctx: &AppContext, caller: &Caller, id: JobId) -> Result<Task, ApiError> {
    if let Some(job) = ctx.store.get_job(id).await? {
        return if visible(caller, &job.owner) {
            Ok(Task::Job(Box::new(job)))
        } else {
            Err(ApiError::JobNotFound(id.to_string()))
        };
    }
    let batch_id = BatchId::from_uuid(id.as_uuid());
    match ctx.store.get_batch(batch_id).await? {
        Some(batch) if visible(caller, &batch.owner) => {
            let mut jobs = Vec::with_capacity(batch.job_ids.len());
            for job_id in &batch.job_ids {
                if let Some(job) = ctx.store.get_job(*job_id).await? {
                    jobs.push(job);
                }
            }
            Ok(Task::Batch(batch, jobs))
        }
        _ => Err(ApiError::JobNotFound(id.to_string())),
    }
}
