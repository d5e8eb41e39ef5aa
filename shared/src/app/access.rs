//! Ownership: a caller sees only its own files, jobs and batches; anyone else's id reads as not
//! found. The admin key sees everything.

use super::error::AppError;
use crate::context::AppContext;
use crate::domain::{Batch, BatchId, FileId, GenerationJob, JobId, UploadedFile};
use crate::keys::Caller;

fn visible(caller: &Caller, owner: &str) -> bool {
    caller.is_admin || caller.owner == owner
}

/// Any job, whoever owns it (administrators' routes); `JobNotFound` when there is none.
pub async fn any_job(ctx: &AppContext, id: JobId) -> Result<GenerationJob, AppError> {
    ctx.store
        .get_job(id)
        .await?
        .ok_or(AppError::JobNotFound(id))
}

pub async fn owned_job(
    ctx: &AppContext,
    caller: &Caller,
    id: JobId,
) -> Result<GenerationJob, AppError> {
    match any_job(ctx, id).await? {
        job if visible(caller, &job.owner) => Ok(job),
        _ => Err(AppError::JobNotFound(id)),
    }
}

pub async fn owned_file(
    ctx: &AppContext,
    caller: &Caller,
    id: FileId,
) -> Result<UploadedFile, AppError> {
    match ctx.store.get_file(id).await? {
        Some(file) if visible(caller, &file.owner) => Ok(file),
        _ => Err(AppError::FileNotFound(id)),
    }
}

/// A task id names a job or a batch.
pub enum Task {
    Job(Box<GenerationJob>),
    Batch(Batch, Vec<GenerationJob>),
}

impl Task {
    /// Who owns the task.
    pub fn owner(&self) -> &str {
        match self {
            Self::Job(job) => &job.owner,
            Self::Batch(batch, _) => &batch.owner,
        }
    }

    /// The jobs behind the task: one for a job, every job of a batch.
    pub fn into_jobs(self) -> Vec<GenerationJob> {
        match self {
            Self::Job(job) => vec![*job],
            Self::Batch(_, jobs) => jobs,
        }
    }
}

/// Any task, whoever owns it (a token holder's or the public view, checked by the caller).
pub async fn any_task(ctx: &AppContext, id: JobId) -> Result<Task, AppError> {
    let admin = Caller {
        owner: crate::keys::ADMIN_OWNER.to_owned(),
        is_admin: true,
    };
    owned_task(ctx, &admin, id).await
}

/// Resolves a task id to the caller's job, or else to the caller's batch with its jobs.
pub async fn owned_task(ctx: &AppContext, caller: &Caller, id: JobId) -> Result<Task, AppError> {
    if let Some(job) = ctx.store.get_job(id).await? {
        return if visible(caller, &job.owner) {
            Ok(Task::Job(Box::new(job)))
        } else {
            Err(AppError::JobNotFound(id))
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
        _ => Err(AppError::JobNotFound(id)),
    }
}
